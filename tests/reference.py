"""A plain NumPy backpropagation written by hand, independent of symback's SymPy pipeline.

Activations and costs are coded here from their textbook formulas, so the tests
compare symback's derived-and-lambdified gradients with an implementation that
shares none of its code.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


ACTIVATIONS = {
    "identity": (lambda z: z, lambda z: np.ones_like(z)),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.01 * z), lambda z: np.where(z > 0, 1.0, 0.01)),
    "softplus": (lambda z: np.log1p(np.exp(z)), _sigmoid),
    "elu": (lambda z: np.where(z > 0, z, np.expm1(z)), lambda z: np.where(z > 0, 1.0, np.exp(z))),
    "silu": (lambda z: z * _sigmoid(z), lambda z: _sigmoid(z) * (1 + z * (1 - _sigmoid(z)))),
}

# cost name -> (per-output term, d term / d a, divide by outputs?, examples reduction)
COSTS = {
    "squared_error": (lambda a, y: (a - y) ** 2, lambda a, y: 2 * (a - y), False, "mean"),
    "half_squared_error": (lambda a, y: 0.5 * (a - y) ** 2, lambda a, y: a - y, False, "mean"),
    "ssr": (lambda a, y: (y - a) ** 2, lambda a, y: -2 * (y - a), False, "sum"),
    "mse": (lambda a, y: (a - y) ** 2, lambda a, y: 2 * (a - y), True, "mean"),
    "binary_cross_entropy": (
        lambda a, y: -(y * np.log(a) + (1 - y) * np.log(1 - a)),
        lambda a, y: -y / a + (1 - y) / (1 - a),
        False,
        "mean",
    ),
}


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def gradients(sizes, activations, cost, weights, biases, X, Y):
    """Return (cost, [dW], [db]) for a fully connected network; rows of X are examples."""
    a, zs, acts = X, [], [X]
    for name, W, b in zip(activations, weights, biases):
        z = a @ W.T + b
        a = softmax(z) if name == "softmax" else ACTIVATIONS[name][0](z)
        zs.append(z)
        acts.append(a)
    n = X.shape[0]
    if cost == "categorical_cross_entropy":
        per_example = -(Y * np.log(a)).sum(axis=1)
        delta = a * Y.sum(axis=1, keepdims=True) - Y  # softmax + cross-entropy, from the textbook
        scale = 1.0 / n
    else:
        term, dterm, per_output_mean, reduction = COSTS[cost]
        m = Y.shape[1]
        per_example = term(a, Y).sum(axis=1) / (m if per_output_mean else 1)
        grad_a = dterm(a, Y) / (m if per_output_mean else 1)
        delta = grad_a * ACTIVATIONS[activations[-1]][1](zs[-1])
        scale = 1.0 / n if reduction == "mean" else 1.0
    total = per_example.sum() * scale
    dW, db = [None] * len(weights), [None] * len(weights)
    for layer in range(len(weights) - 1, -1, -1):
        dW[layer] = delta.T @ acts[layer] * scale
        db[layer] = delta.sum(axis=0) * scale
        if layer:
            delta = (delta @ weights[layer]) * ACTIVATIONS[activations[layer - 1]][1](zs[layer - 1])
    return total, dW, db


# --- convolution and recurrence, written position by position from their definitions ---------------------


def _same_left(kernel):
    """PyTorch's 'same' padding puts (K - 1) // 2 zeros on the left of each axis."""
    return [(k - 1) // 2 for k in kernel]


def conv_forward(A, W, b, mode):
    """z[n,o,*j] = sum_c sum_m W[o,c,*m] a[n,c,*(j+m-P)] + b[o]; a is zero outside the input.

    A: (n, c, *positions), W: (o, c, *offsets), b: (o,).  Any number of spatial axes.
    """
    kernel = W.shape[2:]
    left = _same_left(kernel) if mode == "same" else [0] * len(kernel)
    outputs = tuple(N if mode == "same" else N - K + 1 for N, K in zip(A.shape[2:], kernel))
    Z = np.zeros((A.shape[0], W.shape[0], *outputs))
    for j in np.ndindex(*outputs):
        for m in np.ndindex(*kernel):
            source = tuple(jj + mm - p for jj, mm, p in zip(j, m, left))
            if all(0 <= s < N for s, N in zip(source, A.shape[2:])):
                Z[(slice(None), slice(None), *j)] += A[(slice(None), slice(None), *source)] @ W[(slice(None), slice(None), *m)].T
    return Z + b.reshape(1, -1, *([1] * len(kernel)))


def conv_backward(A, W, D, mode):
    """(dC/dA, dC/dW, dC/db) of conv_forward given D = dC/dZ, by the same loops run backwards."""
    kernel = W.shape[2:]
    left = _same_left(kernel) if mode == "same" else [0] * len(kernel)
    dA, dW = np.zeros_like(A), np.zeros_like(W)
    for j in np.ndindex(*D.shape[2:]):
        for m in np.ndindex(*kernel):
            source = tuple(jj + mm - p for jj, mm, p in zip(j, m, left))
            if all(0 <= s < N for s, N in zip(source, A.shape[2:])):
                d = D[(slice(None), slice(None), *j)]  # (n, o)
                dA[(slice(None), slice(None), *source)] += d @ W[(slice(None), slice(None), *m)]
                dW[(slice(None), slice(None), *m)] += d.T @ A[(slice(None), slice(None), *source)]
    return dA, dW, D.sum(axis=(0, *range(2, D.ndim)))


def rnn_forward(X, W, U, b, activation):
    """h_t = f(W h_{t-1} + U x_t + b), h_0 = 0.  X: (n, T, inputs); returns (Z, H), each (n, T, hidden)."""
    f = ACTIVATIONS[activation][0]
    n, T, _ = X.shape
    h = np.zeros((n, W.shape[0]))
    Z, H = np.zeros((n, T, W.shape[0])), np.zeros((n, T, W.shape[0]))
    for t in range(T):
        Z[:, t] = h @ W.T + X[:, t] @ U.T + b
        h = H[:, t] = f(Z[:, t])
    return Z, H


def rnn_backward(X, W, U, Z, H, G, activation):
    """Backpropagation through time given G[n,t] = dC/dh_t from outside the recurrence.

    Returns (dW, dU, db, dX, every dC/dh_t including the paths through later steps).
    """
    df = ACTIVATIONS[activation][1]
    n, T, _ = X.shape
    dW, dU, db = np.zeros_like(W), np.zeros_like(U), np.zeros(W.shape[0])
    dX, dH = np.zeros_like(X), np.zeros_like(H)
    carried = np.zeros((n, W.shape[0]))  # dC/dh_t through h_{t+1}
    for t in range(T - 1, -1, -1):
        dH[:, t] = G[:, t] + carried
        delta = dH[:, t] * df(Z[:, t])
        previous = H[:, t - 1] if t else np.zeros((n, W.shape[0]))
        dW += delta.T @ previous
        dU += delta.T @ X[:, t]
        db += delta.sum(axis=0)
        dX[:, t] = delta @ U
        carried = delta @ W
    return dW, dU, db, dX, dH


def stack_forward(layers, X):
    """The forward pass of a stack of layers, each a plain tuple, returning a list of (z, a) per layer.

    ("conv", W, b, mode, f) | ("rnn", W, U, b, f) | ("dense", W, b, f) | ("softmax", W, b) | ("last", W, b, f)
    | ("residual", W, b, f, back) (dense, then + the activation ``back`` layers down, 0 being X); a layer reads
    the previous activation reshaped to what it needs (conv: (n, c, *positions), rnn: (n, steps, inputs),
    dense: flattened).  X comes shaped for the first layer.
    """
    a, out = X, []
    for layer in layers:
        kind = layer[0]
        if kind == "residual":
            _, W, b, f, back = layer
            z = a @ W.T + b
            a = ACTIVATIONS[f][0](z) + ([X] + [entry[1] for entry in out])[len(out) + 1 - back]
        elif kind == "conv":
            _, W, b, mode, f = layer
            z = conv_forward(a, W, b, mode)
            a = ACTIVATIONS[f][0](z)
        elif kind == "rnn":
            _, W, U, b, f = layer
            z, a = rnn_forward(a, W, U, b, f)
        elif kind == "dense":
            _, W, b, f = layer
            z = a.reshape(len(a), -1) @ W.reshape(len(W), -1).T + b
            a = ACTIVATIONS[f][0](z)
        elif kind == "last":  # dense on the last step of a sequence (n, steps, hidden)
            _, W, b, f = layer
            z = a[:, -1] @ W.T + b
            a = ACTIVATIONS[f][0](z) if f != "softmax" else softmax(z)
        else:  # softmax
            _, W, b = layer
            z = a.reshape(len(a), -1) @ W.reshape(len(W), -1).T + b
            a = softmax(z)
        out.append((z, a))
    return out


def stack_cost(layers, X, Y, cost):
    """The cost of stack_forward's output: the costs of COSTS (mean over examples unless ssr) or
    categorical cross-entropy on a softmax output."""
    a = stack_forward(layers, X)[-1][1]
    if cost == "categorical_cross_entropy":
        return float(-(Y * np.log(a)).sum(axis=1).mean())
    term, _, per_output_mean, reduction = COSTS[cost]
    per_example = term(a, Y).sum(axis=1) / (Y.shape[1] if per_output_mean else 1)
    return float(per_example.mean() if reduction == "mean" else per_example.sum())
