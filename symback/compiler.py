"""Compile derived SymPy expressions into vectorised NumPy kernels.

Every kernel comes from :func:`lambdify`, the one wrapper around
``sympy.lambdify`` (explicit argument order, NumPy module, ``cse=True``).  It
is only ever fed expressions symback built itself: the activation and cost
formulas (parsed by the whitelisting parser) and their SymPy derivatives.

A layer's kernels are scalar expressions in ``z`` (or ``a`` and ``y``) applied
elementwise to whole ``(n_examples, n_neurons)`` arrays; the index sums of the
chain rule become matrix products.  There is no Python loop per example or
per neuron.

>>> import numpy as np
>>> from symback import Network, Parameters, Dataset
>>> net = Network([1, 1, 1], "sigmoid", "squared_error")
>>> compiled = CompiledNetwork(net)
>>> params = Parameters.initialize(net, seed=1)
>>> data = Dataset.from_arrays([0.5], [1.0])
>>> round(compiled.cost(params, data), 6) == round(float(((compiled.predict(params, data.X) - 1) ** 2).sum()), 6)
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from .activations import Z, Activation
from .costs import A, Y
from .data import Dataset
from .network import Network
from .parameters import Parameters

__all__ = ["CompiledNetwork", "ForwardPass", "Gradients", "elementwise", "lambdify"]


def lambdify(arguments: Sequence[sp.Symbol], expression: sp.Expr) -> Callable[..., Any]:
    """``sympy.lambdify`` with symback's settings: fixed argument order, NumPy, common subexpressions.

    Never call it on expressions built from unparsed user text: it uses ``exec``.
    """
    return sp.lambdify(list(arguments), expression, modules="numpy", cse=True, dummify=True)


def elementwise(arguments: Sequence[sp.Symbol], expression: sp.Expr) -> Callable[..., np.ndarray]:
    """A lambdified scalar expression that always returns an array shaped and typed like its first argument.

    Constant derivatives (``1`` for identity) and Piecewise results (integer
    ``select``) would otherwise come back as scalars or in the wrong dtype.
    """
    raw = lambdify(arguments, expression)

    def kernel(first: np.ndarray, *rest: np.ndarray) -> np.ndarray:
        out = raw(first, *rest)
        if isinstance(out, np.ndarray) and out.dtype == first.dtype and out.shape == first.shape:
            return out
        return np.broadcast_to(np.asarray(out, dtype=first.dtype), first.shape)

    kernel.__doc__ = f"Elementwise {expression}"
    return kernel


@dataclass(frozen=True)
class ForwardPass:
    """``zs[l-1]`` and ``activations[l]`` of shape ``(n_examples, n_l)``; ``activations[0]`` is the input."""

    zs: list[np.ndarray]
    activations: list[np.ndarray]

    @property
    def output(self) -> np.ndarray:
        return self.activations[-1]


@dataclass(frozen=True)
class Gradients:
    """``∂C/∂W(l)`` and ``∂C/∂b(l)`` laid out like :class:`~symback.parameters.Parameters`."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]

    def as_parameters(self) -> Parameters:
        return Parameters(list(self.weights), list(self.biases))


class _LayerKernels:
    """σ and σ' of one layer, compiled from the activation's formula and its SymPy derivative."""

    def __init__(self, activation: Activation) -> None:
        self.activation = activation
        if activation.elementwise:
            self.forward = elementwise([Z], activation.formula)
            self.derivative = elementwise([Z], activation.derivative)
        else:
            self.forward = _softmax
            self.derivative = None

    def backward(self, grad_a: np.ndarray, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        """``∂C/∂z`` from ``∂C/∂a``: elementwise σ'(z), or the softmax Jacobian a_j(δ_ij − a_i) contracted."""
        if self.derivative is not None:
            return grad_a * self.derivative(z)
        return a * (grad_a - np.sum(grad_a * a, axis=1, keepdims=True))


def _softmax(z: np.ndarray) -> np.ndarray:
    # Shifting by the row maximum leaves softmax unchanged and keeps exp from overflowing.
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class CompiledNetwork:
    """Forward pass, cost and gradient of a network, from its derived SymPy objects.

    The same objects that a :class:`~symback.derivation.Derivation` shows (σ, σ',
    ``∂C/∂a``) are the ones compiled here, so what is shown cannot drift from what runs.
    """

    def __init__(self, network: Network) -> None:
        self.network = network
        self.layers = [_LayerKernels(activation) for activation in network.activations]
        cost = network.cost
        self.cost_term = elementwise([A, Y], cost.term)
        self.cost_derivative = elementwise([A, Y], cost.derivative)
        self._masks = network.trainable_masks() if network.frozen else None

    def forward(self, params: Parameters, X: np.ndarray) -> ForwardPass:
        a = X
        zs, activations = [], [X]
        for kernels, W, b in zip(self.layers, params.weights, params.biases):
            z = a @ W.T + b
            a = kernels.forward(z)
            zs.append(z)
            activations.append(a)
        return ForwardPass(zs, activations)

    def predict(self, params: Parameters, X: np.ndarray) -> np.ndarray:
        return self.forward(params, X).output

    def example_costs(self, params: Parameters, data: Dataset, forward: ForwardPass | None = None) -> np.ndarray:
        """``C_i`` for every example ``i`` (before the reduction over examples)."""
        forward = forward or self.forward(params, data.X)
        terms = self.cost_term(forward.output, data.Y.astype(forward.output.dtype, copy=False))
        total = terms.sum(axis=1)
        return total / terms.shape[1] if self.network.cost.output_reduction == "mean" else total

    def cost(self, params: Parameters, data: Dataset, forward: ForwardPass | None = None) -> float:
        return float(self._reduce(self.example_costs(params, data, forward)))

    def output_gradient(self, forward: ForwardPass, Y: np.ndarray) -> np.ndarray:
        """``∂C_i/∂a(L)_j`` for every example: the compiled SymPy derivative of the cost term."""
        grad = self.cost_derivative(forward.output, Y.astype(forward.output.dtype, copy=False))
        if self.network.cost.output_reduction == "mean":
            grad = grad / grad.shape[1]
        return grad

    def deltas(self, params: Parameters, data: Dataset, forward: ForwardPass | None = None) -> list[np.ndarray]:
        """``δ(l) = ∂C_i/∂z(l)`` per example (rows), by BP1 and BP2, before the reduction over examples."""
        forward = forward or self.forward(params, data.X)
        L = len(self.layers)
        grad_a = self.output_gradient(forward, data.Y)
        deltas: list[np.ndarray] = [None] * L  # type: ignore[list-item]
        for index in range(L - 1, -1, -1):
            delta = self.layers[index].backward(grad_a, forward.zs[index], forward.activations[index + 1])
            deltas[index] = delta
            if index:
                grad_a = delta @ params.weights[index]
        return deltas

    def gradient(
        self, params: Parameters, data: Dataset, *, forward: ForwardPass | None = None, respect_frozen: bool = True
    ) -> Gradients:
        """``∂C/∂w`` and ``∂C/∂b`` for every parameter (BP3, BP4), reduced over the examples.

        Frozen parameters get a zero gradient unless ``respect_frozen`` is false.
        """
        forward = forward or self.forward(params, data.X)
        deltas = self.deltas(params, data, forward)
        scale = 1.0 / len(data) if self.network.cost.example_reduction == "mean" else 1.0
        weights, biases = [], []
        for index, delta in enumerate(deltas):
            weights.append((delta.T @ forward.activations[index]) * scale)
            biases.append(delta.sum(axis=0) * scale)
        if respect_frozen and self._masks is not None:
            weights = [g * m for g, m in zip(weights, self._masks[0])]
            biases = [g * m for g, m in zip(biases, self._masks[1])]
        return Gradients(weights, biases)

    def _reduce(self, per_example: np.ndarray) -> np.ndarray:
        if self.network.cost.example_reduction == "mean":
            return per_example.mean(axis=0)
        return per_example.sum(axis=0)
