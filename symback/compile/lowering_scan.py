"""Lowering patterns for an index shifted in time: a layer that reads its own output one step back.

The recurrent formula ``z[t, j] = Σ_k W[j,k] h[t−1, k] + Σ_i U[j,i] x[t, i] + b[j]`` reads ``h`` at
``t − 1``, so its derived sums cannot be evaluated all at once: they are *scans*, one whole-batch matrix
product per time step (the loop runs over the steps, never over examples or units).

=======================================================  ===============================================
derived index form                                        lowering
=======================================================  ===============================================
``z[t] = Σ_k W[j,k] h[t−1,k] + Σ_i U[j,i] x[t,i] + b``    :func:`scan_forward`: ``X @ U.T`` for all steps at
                                                          once, then ``h[t] = f(z[t] + h[t−1] @ W.T)``
``∇h[t,κ] = g[t,κ] + Σ_j δ[t+1,j] W[j,κ]``,               :func:`scan_backward`: from the last step back,
``δ[t] = f′(z[t]) ∇h[t]``                                 ``∇h[t] = g[t] + δ[t+1] @ W``
``∂C/∂W = Σ_t δ[t]ᵀ h[t−1]``, ``∂C/∂U = Σ_t δ[t]ᵀ x[t]``   one ``tensordot`` over examples and steps each
``∂C/∂b = Σ_t Σ_n δ[t]``, ``∂C/∂x[t] = δ[t] @ U``
=======================================================  ===============================================

Arrays are ``(examples, steps, features)``.

>>> import numpy as np
>>> X = np.ones((1, 3, 1))
>>> W, U, b = np.array([[0.5]]), np.array([[1.0]]), np.zeros(1)
>>> Z, H = scan_forward(X, W, U, b, lambda z: z)        # h_t = 0.5 h_{t-1} + 1
>>> H[0, :, 0]
array([1.  , 1.5 , 1.75])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ScanGradients", "scan_backward", "scan_forward"]


def scan_forward(X: Any, W: Any, U: Any, b: Any, f: Callable[[Any], Any], *, xp: Any = np) -> tuple[Any, Any]:
    """``(Z, H)`` of every step, each ``(examples, steps, hidden)``; ``h[−1] = 0``."""
    n, steps, _ = X.shape
    Z = xp.tensordot(X, U, axes=([2], [1])) + b  # the input part of every step at once
    H = xp.empty_like(Z)
    for t in range(steps):
        if t:
            Z[:, t] += H[:, t - 1] @ W.T
        H[:, t] = f(Z[:, t])
    return Z, H


@dataclass(frozen=True)
class ScanGradients:
    """The derived sums of backpropagation through time, evaluated."""

    W: Any
    U: Any
    b: Any
    #: ∂C/∂x[t] for every step, (examples, steps, inputs)
    inputs: Any
    #: δ[t] = ∂C/∂z[t] for every step, (examples, steps, hidden)
    deltas: Any
    #: ∇h[t] = ∂C/∂h[t] along every path (through later steps included)
    states: Any


def scan_backward(
    X: Any, H: Any, G: Any, W: Any, U: Any, f_prime: Callable[[Any], Any], *, xp: Any = np
) -> ScanGradients:
    """Backpropagation through time from ``G[n, t] = ∂C/∂h[t]`` of the layers that read the states.

    ``f_prime(t)`` is ``f′(z[t])`` of step ``t`` (the caller's kernel: from ``z`` or from ``h``).
    """
    steps = X.shape[1]
    deltas = xp.empty_like(H)
    states = xp.empty_like(H)
    carried = None  # Σ_j δ[t+1, j] W[j, ·]
    for t in range(steps - 1, -1, -1):
        states[:, t] = G[:, t] if carried is None else G[:, t] + carried
        deltas[:, t] = states[:, t] * f_prime(t)
        carried = deltas[:, t] @ W
    dW = xp.tensordot(deltas[:, 1:], H[:, :-1], axes=([0, 1], [0, 1]))
    dU = xp.tensordot(deltas, X, axes=([0, 1], [0, 1]))
    return ScanGradients(dW, dU, deltas.sum(axis=(0, 1)), deltas @ U, deltas, states)


# --- recognising the derived recurrence --------------------------------------------------------------------


@dataclass(frozen=True)
class StepProduct:
    """``Σ_q P[u, q] · S[t ∓ 1, q]``: one step's matrix product with a parameter block ``P``.

    ``parameter`` is the parameter's IndexedBase and ``block`` its slice (the ranges of its indices:
    ``W = w[:, :hidden]`` of a recurrent layer's ``w = [W | U]``); ``transposed`` when the summed index
    is the parameter's first (``Σ_j δ[t+1, j] W[j, k]`` → ``δ @ W``) rather than its second
    (``Σ_q W[j, q] h[t−1, q]`` → ``h @ Wᵀ``).
    """

    parameter: Any
    block: tuple[slice, ...]
    transposed: bool

    def matrix(self, arrays: Any, slots: Any = None) -> Any:
        """The block as the step multiplies by it; ``slots`` maps the parameter to its place in ``arrays``."""
        block = arrays[self.parameter if slots is None else slots[self.parameter]][self.block]
        return block if self.transposed else block.T

    def __call__(self, state: Any, matrix: Any) -> Any:
        return state @ matrix


def _step_product(term: Any, state: Any, out: tuple, shift: int) -> StepProduct | None:
    """``term`` as Σ_q P[·,·] S[time + shift, q] with the time index ``out[0]`` and the unit ``out[1]``."""
    import sympy as sp

    if not isinstance(term, sp.Sum) or len(term.limits) != 1:
        return None
    (summed, _, _), = term.limits
    factors = sp.Mul.make_args(term.function)
    if len(factors) != 2 or not all(isinstance(f, sp.Indexed) for f in factors):
        return None
    reads = [f for f in factors if f.base == state]
    if len(reads) != 1:
        return None
    (read,) = reads
    (parameter,) = [f for f in factors if f is not read]
    time, unit = out
    if len(read.indices) != 2 or read.indices[0] != time + shift or read.indices[1] != summed:
        return None
    if len(parameter.indices) != 2 or not all(isinstance(i, sp.Idx) for i in parameter.indices):
        return None
    block = tuple(slice(0, int(i.upper) + 1) for i in parameter.indices)
    if parameter.indices == (unit, summed):
        return StepProduct(parameter.base, block, transposed=False)
    if parameter.indices == (summed, unit):
        return StepProduct(parameter.base, block, transposed=True)
    return None


def split_recurrence(expression: Any, state: Any, out: tuple, shift: int) -> tuple[Any, StepProduct] | None:
    """``expression = rest + Σ_q P S[t + shift, q]``: the part a scan must compute step by step, and the
    rest (computed for every step at once).  ``shift`` is −1 for the forward formula (``h[t − 1]``),
    +1 for the derived ∇h (``δ[t + 1]``).  None when the expression does not read ``state`` so.

    >>> import sympy as sp
    >>> t, j, q = sp.Idx("t", 5), sp.Idx("j", 2), sp.Idx("q", 2)
    >>> w, h, b = sp.IndexedBase("w"), sp.IndexedBase("h"), sp.IndexedBase("b")
    >>> rest, step = split_recurrence(b[j] + sp.Sum(w[j, q] * h[t - 1, q], q), h, (t, j), -1)
    >>> rest, step.transposed
    (b[j], False)
    """
    import sympy as sp

    found, rest = None, []
    for term in sp.Add.make_args(expression):
        product = _step_product(term, state, out, shift) if term.has(state) else None
        if product is not None and found is None:
            found = product
        elif term.has(state):
            return None
        else:
            rest.append(term)
    return (sp.Add(*rest), found) if found is not None else None
