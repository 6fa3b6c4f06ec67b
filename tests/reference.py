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
