"""Lowering patterns for shifted indices: the sums a convolution's derivation produces, as array calls.

A convolution's local formula reads its input at a *shifted* index, ``z_j = Σ_m w_m a_{j+m−P} + b``
(``P`` the left padding: 0 for ``valid``, ``(K−1)//2`` for ``same``, as PyTorch pads).  The chain rule
turns it into three sums, each lowered here to one vectorised call on an array namespace ``xp``
(NumPy, or JAX's under ``jit``): no Python loop over examples, positions or channels — only over the
kernel offsets (on JAX that loop is unrolled once, at trace time, into one XLA program).

=====================================  ======================================================
derived index form                     lowering
=====================================  ======================================================
``Σ_c Σ_m W[o,c,m] A[n,c,j+m−P]``      :func:`correlate` — for each kernel offset ``m``, the
                                       zero-padded input's slice at ``m`` times ``W[:, :, m]``
                                       (one ``einsum`` over the channels)
``Σ_o Σ_j D[n,o,j] W[o,c,i−j+P]``      :func:`correlate_transposed` — the *full* correlation
                                       of δ with the flipped kernel (δ padded by K−1−P on
                                       the left), which is what the derivation gives
``Σ_n Σ_j D[n,o,j] A[n,c,j+m−P]``      :func:`kernel_gradient` — for each offset, the padded
                                       input's slice at ``m`` contracted with δ
``Σ_n Σ_j D[n,o,j]``                   :func:`bias_gradient`
=====================================  ======================================================

Arrays are ``(examples, channels, *positions)``; a kernel is ``(out channels, in channels,
*offsets)``.  Any number of spatial axes works (1-D and 2-D are used).

>>> import numpy as np
>>> A = np.arange(5.0).reshape(1, 1, 5)             # one example, one channel: 0 1 2 3 4
>>> W = np.array([[[1.0, -1.0]]])                    # z_j = a_j − a_{j+1}
>>> correlate(A, W, padding(W.shape[2:], "valid"))
array([[[-1., -1., -1., -1.]]])
>>> D = np.ones((1, 1, 4))
>>> correlate_transposed(D, W, padding(W.shape[2:], "valid"), (5,))   # Σ_j δ_j w_{i−j}
array([[[ 1.,  0.,  0.,  0., -1.]]])
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..symbolic.padding import PADDINGS, Padding, output_shape, padding
from .lowering import NUMPY, Kernel, namespace_of, register_contraction, register_pattern

__all__ = [
    "PADDINGS",
    "Padding",
    "bias_gradient",
    "correlate",
    "correlate_transposed",
    "kernel_gradient",
    "output_shape",
    "padding",
    "delta_pattern",
    "offset_pattern",
    "shifted_pattern",
    "shifted_copy",
    "offset_operands",
    "match_shifted",
]

def _padded(xp: Any, array: Any, left: Sequence[int], right: Sequence[int]) -> Any:
    if not any(left) and not any(right):
        return array
    return xp.pad(array, [(0, 0), (0, 0), *zip(left, right)])


def _offsets(kernel: Sequence[int]) -> Iterator[tuple[int, ...]]:
    return itertools.product(*(range(k) for k in kernel))


def _window(array: Any, offset: Sequence[int], size: Sequence[int]) -> Any:
    """``array[:, :, m:m+size]`` on every spatial axis: the input every output position reads at offset m."""
    return array[(slice(None), slice(None), *(slice(m, m + n) for m, n in zip(offset, size)))]


def _letters(rank: int) -> str:
    return "pqrstu"[:rank]


def correlate(A: Any, W: Any, pads: Padding, *, xp: Any = np) -> Any:
    """``Z[n,o,j] = Σ_c Σ_m W[o,c,m] · A[n,c,j+m−P]`` with the input zero-padded by ``pads``.

    The sum over the kernel offsets ``m`` is a loop over the kernel (25 steps for 5×5, whatever the
    batch, the picture or the channels); each step is one whole-array product over the channels,
    reading the padded input through a slice (no copy).  Measured against im2col
    (``sliding_window_view`` + one ``tensordot``) this is 2–5× faster at the digits' shapes, because
    im2col copies every window (benchmarks/bench_conv.py).

    >>> A = np.arange(4.0).reshape(1, 1, 4)
    >>> correlate(A, np.array([[[1.0, 2.0, 3.0]]]), padding((3,), "same"))
    array([[[ 3.,  8., 14.,  8.]]])
    """
    kernel = W.shape[2:]
    padded = _padded(xp, A, pads.left, pads.right)
    outputs = tuple(n - k + 1 for n, k in zip(padded.shape[2:], kernel))
    p = _letters(len(kernel))
    rule = f"nc{p},oc->no{p}"
    Z = None
    for offset in _offsets(kernel):
        term = xp.einsum(rule, _window(padded, offset, outputs), W[(slice(None), slice(None), *offset)])
        Z = term if Z is None else Z + term
    return Z


def correlate_transposed(D: Any, W: Any, pads: Padding, input_shape: Sequence[int], *, xp: Any = np) -> Any:
    """``G[n,c,i] = Σ_o Σ_j D[n,o,j] · W[o,c,i−j+P]``: the gradient reaching the input.

    This is what the chain rule derives for ``∂C/∂a_i``; it equals the full correlation of δ (padded
    by ``K−1−P`` zeros on the left and ``N − N_out + P`` on the right) with the kernel flipped along
    every offset axis and its channel axes swapped.
    """
    spatial = W.ndim - 2
    kernel = W.shape[2:]
    outputs = D.shape[2:]
    left = [k - 1 - p for k, p in zip(kernel, pads.left)]
    right = [n - m + p for n, m, p in zip(input_shape, outputs, pads.left)]
    flipped = xp.flip(W, axis=tuple(range(2, 2 + spatial)))
    return correlate(D, xp.swapaxes(flipped, 0, 1), Padding(tuple(left), tuple(right)), xp=xp)


def kernel_gradient(D: Any, A: Any, pads: Padding, kernel: Sequence[int], *, xp: Any = np) -> Any:
    """``dW[o,c,m] = Σ_n Σ_j D[n,o,j] · A[n,c,j+m−P]``: for each offset, δ against the input it read."""
    padded = _padded(xp, A, pads.left, pads.right)
    outputs = D.shape[2:]
    p = _letters(len(kernel))
    rule = f"no{p},nc{p}->oc"
    space = namespace_of(xp)
    dW = xp.zeros((D.shape[1], A.shape[1], *kernel), dtype=xp.result_type(D, A))
    for offset in _offsets(kernel):
        dW = space.assign(dW, (slice(None), slice(None), *offset), xp.einsum(rule, D, _window(padded, offset, outputs)))
    return dW


def bias_gradient(D: Any, *, xp: Any = np) -> Any:
    """``db[o] = Σ_n Σ_j D[n,o,j]``."""
    return D.sum(axis=(0, *range(2, D.ndim)))


# --- matching the derived index forms -----------------------------------------------------------------------


@dataclass(frozen=True)
class ShiftedKernel:
    """A derived sum recognised as one of the three shifted-index forms, ready to run on arrays.

    ``pattern`` names the form (``correlate``, ``correlate_transposed``, ``kernel_gradient``);
    ``bases`` are the IndexedBases read, in the order ``run`` takes them from ``arrays``.
    """

    pattern: str
    bases: tuple[Any, ...]
    run: Any

    def __call__(self, arrays: Any, out: Any = None) -> Any:
        value = self.run(arrays)
        if out is not None:
            out[...] = value
            return out
        return value


def _affine(index: Any) -> tuple[dict[Any, int], int] | None:
    """``index`` as ``{Idx: coefficient}`` and a constant, when it is ``±i ± j + c``."""
    import sympy as sp

    coefficients: dict[Any, int] = {}
    constant = 0
    for term in sp.Add.make_args(index):
        if term.is_Integer:
            constant += int(term)
            continue
        factor, rest = term.as_coeff_Mul()
        if not isinstance(rest, sp.Idx) or not factor.is_Integer:
            return None
        coefficients[rest] = coefficients.get(rest, 0) + int(factor)
    return coefficients, constant


def match_shifted(
    expression: Any, out: Sequence[Any], batched: Any, *, over_examples: bool = False, key: Any = None, xp: Any = np
) -> ShiftedKernel | None:
    """The kernel of ``expression`` when it is one of the convolution forms a derivation gives, else None.

    ``out`` are the result's indices after the example axis; ``batched`` the IndexedBases with an
    example axis (activations, δ); ``over_examples`` sums the examples too (a parameter gradient);
    ``xp`` the array namespace (or module) the kernel calls.

    >>> import sympy as sp
    >>> o, c, j, m = sp.Idx("o", 2), sp.Idx("c", 1), sp.Idx("j", 4), sp.Idx("m", 3)
    >>> w, a = sp.IndexedBase("w"), sp.IndexedBase("a")
    >>> kernel = match_shifted(sp.Sum(w[o, c, m] * a[c, j + m - 1], c, m), (o, j), {a})
    >>> kernel.pattern
    'correlate'
    >>> kernel({w: np.ones((2, 1, 3)), a: np.ones((1, 1, 4))}).tolist()
    [[[2.0, 3.0, 3.0, 2.0], [2.0, 3.0, 3.0, 2.0]]]
    """
    import sympy as sp

    batched = set(batched)
    coefficient = sp.S.One
    term = expression
    summed: list[Any] = []
    while isinstance(term, sp.Sum):
        summed.extend(limit[0] for limit in term.limits)
        term = term.function
    factors = []
    for factor in sp.Mul.make_args(term):
        if factor.is_number:
            coefficient *= factor
        elif isinstance(factor, sp.Indexed):
            factors.append(factor)
        else:
            return None
    if len(factors) != 2 or not coefficient.is_number:
        return None
    shifted = [f for f in factors if any(not isinstance(i, sp.Idx) for i in f.indices)]
    if len(shifted) != 1:
        return None
    (moved,) = shifted
    (plain,) = [f for f in factors if f is not moved]
    if not all(isinstance(i, sp.Idx) for i in plain.indices) or not isinstance(moved.indices[0], sp.Idx):
        return None
    scale = float(coefficient)
    forms = _forms(plain, moved, tuple(out), batched, over_examples, key or (lambda base: base), xp)
    if forms is None:
        return None
    name, run, bases = forms
    if scale != 1.0:
        unscaled = run
        run = lambda arrays: unscaled(arrays) * scale  # noqa: E731
    return ShiftedKernel(name, bases, run)


def _forms(plain: Any, moved: Any, out: tuple, batched: set, over_examples: bool, key: Any, xp: Any) -> tuple | None:
    """Which of the three forms: forward (kernel plain, input shifted), transposed (δ plain, kernel
    shifted), kernel gradient (δ plain, input shifted, summed over the examples)."""
    w_batched, p_batched = moved.base in batched, plain.base in batched
    if not p_batched and w_batched and not over_examples:
        # Σ_c Σ_m W[o,c,m] A[n,c,j+m−P]: out (o, *j)
        o, c, *offsets = plain.indices
        channel, *shifts = moved.indices
        if not len(offsets) == len(shifts) == len(out) - 1:
            return None
        left = []
        for shift, offset, position in zip(shifts, offsets, out[1:]):
            form = _affine(shift)
            if form is None or form[0] != {position: 1, offset: 1}:
                return None
            left.append(-form[1])
        if channel != c or out[0] != o:
            return None
        kernel = tuple(int(i.upper) + 1 for i in offsets)
        outputs = tuple(int(i.upper) + 1 for i in out[1:])
        W, A = plain.base, moved.base
        w_slot, a_slot = key(W), key(A)

        def forward(arrays: Any) -> Any:
            inputs = arrays[a_slot].shape[2:]
            right = tuple(m - n - l + k - 1 for m, n, l, k in zip(outputs, inputs, left, kernel))
            return correlate(arrays[a_slot], arrays[w_slot], Padding(tuple(left), right), xp=xp)

        return "correlate", forward, (W, A)
    if p_batched and not w_batched and not over_examples:
        # Σ_o Σ_j D[n,o,j] W[o,γ,i−j+P]: out (γ, *i)
        o, *positions = plain.indices
        if len(moved.indices) < 3:
            return None
        head, gamma, *shifts = moved.indices
        if not len(positions) == len(shifts) == len(out) - 1:
            return None
        left = []
        for shift, position, target in zip(shifts, positions, out[1:]):
            form = _affine(shift)
            if form is None or form[0] != {target: 1, position: -1}:
                return None
            left.append(form[1])
        if head != o or gamma != out[0]:
            return None
        inputs = tuple(int(i.upper) + 1 for i in out[1:])
        D, W = plain.base, moved.base
        d_slot, w_slot = key(D), key(W)

        def transposed(arrays: Any) -> Any:
            return correlate_transposed(arrays[d_slot], arrays[w_slot], Padding(tuple(left), tuple(left)), inputs, xp=xp)

        return "correlate_transposed", transposed, (D, W)
    if p_batched and w_batched and over_examples:
        # Σ_n Σ_j D[n,φ,j] A[n,γ,j+μ−P]: out (φ, γ, *μ)
        phi, *positions = plain.indices
        gamma, *shifts = moved.indices
        if not len(positions) == len(shifts) == len(out) - 2:
            return None
        left = []
        for shift, position, offset in zip(shifts, positions, out[2:]):
            form = _affine(shift)
            if form is None or form[0] != {position: 1, offset: 1}:
                return None
            left.append(-form[1])
        if out[:2] != (phi, gamma):
            return None
        kernel = tuple(int(i.upper) + 1 for i in out[2:])
        outputs = tuple(int(i.upper) + 1 for i in positions)
        D, A = plain.base, moved.base
        d_slot, a_slot = key(D), key(A)

        def gradient(arrays: Any) -> Any:
            inputs = arrays[a_slot].shape[2:]
            right = tuple(m - n - l + k - 1 for m, n, l, k in zip(outputs, inputs, left, kernel))
            return kernel_gradient(arrays[d_slot], arrays[a_slot], Padding(tuple(left), right), kernel, xp=xp)

        return "kernel_gradient", gradient, (D, A)
    return None


# --- an index moved by a constant: a shifted, zero-filled view -------------------------------------------------


def _constant_offset(index: Any) -> tuple[Any, int] | None:
    """``(i, c)`` when ``index`` is ``i + c`` for one ``Idx`` i and an integer c (c may be 0); ``(None, c)``
    for a fixed position c (``h[T − 1, k]``: the last step)."""
    import sympy as sp

    if isinstance(index, sp.Idx):
        return index, 0
    if index.is_Integer:
        return None, int(index)
    form = _affine(index)
    if form is None or len(form[0]) != 1:
        return None
    ((idx, coefficient),) = form[0].items()
    return (idx, form[1]) if coefficient == 1 else None


def shifted_copy(array: Any, offsets: Sequence[int], lengths: Sequence[int], *, batched: bool, xp: Any = np) -> Any:
    """``out[..., p] = array[..., p + c]`` along every axis (after the example axis when ``batched``), of
    ``lengths`` positions, zero where ``p + c`` falls outside ``array``.

    >>> shifted_copy(np.array([[1.0, 2.0, 3.0]]), [-1], [4], batched=True)   # h[t − 1], h[−1] = 0
    array([[0., 1., 2., 3.]])
    """
    head = array.shape[:1] if batched else ()
    body = array.shape[1:] if batched else array.shape
    out = xp.zeros((*head, *lengths), dtype=array.dtype)
    target, source = [slice(None)] * len(head), [slice(None)] * len(head)
    for c, length, size in zip(offsets, lengths, body):
        start, stop = max(0, -c), min(length, size - c)
        if stop <= start:
            return out
        target.append(slice(start, stop))
        source.append(slice(start + c, stop + c))
    return namespace_of(xp).assign(out, tuple(target), array[tuple(source)])


def offset_operands(expression: Any, batched: Any, xp: Any = NUMPY) -> tuple[Any, dict[Any, Any]] | None:
    """``expression`` with every Indexed whose index is moved by a constant (``h[t − 1, k]``,
    ``x[t, k − 2]``) replaced by a new base holding the shifted, zero-filled array; None when there is none.

    Returns the rewritten expression and ``{new base: feed(arrays) -> array}``.  What remains has plain
    indices, so the ordinary contraction table lowers it: ``Σ_t δ[n,t,j] h[n,t−1,k]`` becomes
    ``Σ_t δ[n,t,j] h′[n,t,k]``, one BLAS product.
    """
    import sympy as sp

    batched = set(batched)
    replacements: dict[Any, Any] = {}
    feeds: dict[Any, Any] = {}
    for indexed in sorted(expression.atoms(sp.Indexed), key=sp.default_sort_key):
        if all(isinstance(i, sp.Idx) for i in indexed.indices):
            continue
        parts = [_constant_offset(i) for i in indexed.indices]
        if any(p is None for p in parts):
            continue  # a sum of two indices (a convolution's j + m): another pattern's
        base = sp.IndexedBase(f"{indexed.base}~{len(feeds)}", real=True)
        kept = tuple(idx for idx, _ in parts if idx is not None)
        replacements[indexed] = base[kept] if kept else base
        fixed = tuple(None if idx is not None else c for idx, c in parts)
        offsets = [c for idx, c in parts if idx is not None]
        lengths = [int(idx.upper) + 1 for idx, _ in parts if idx is not None]
        feeds[base] = _ShiftFeed(indexed.base, tuple(offsets), tuple(lengths), indexed.base in batched, fixed, xp)
    if not feeds:
        return None
    return expression.xreplace(replacements), feeds


@dataclass(frozen=True)
class _ShiftFeed:
    """The shifted, zero-filled copy of ``arrays[base]`` an offset operand reads."""

    base: Any
    offsets: tuple[int, ...]
    lengths: tuple[int, ...]
    batched: bool
    #: per axis: None for a moved index, else the fixed position read (that axis is dropped)
    fixed: tuple[int | None, ...] = ()
    #: the array namespace the copy is made in
    xp: Any = NUMPY

    def __call__(self, arrays: Any) -> Any:
        return self.copy_of(arrays[self.base])

    def copy_of(self, array: Any) -> Any:
        """The shifted, zero-filled copy of ``array`` (this feed's base's array)."""
        if any(f is not None for f in self.fixed):
            head = (slice(None),) if self.batched else ()
            body = array.shape[1:] if self.batched else array.shape
            if any(f is not None and not 0 <= f < n for f, n in zip(self.fixed, body)):
                array = self.xp.zeros_like(array)[(*head, *(0 if f is not None else slice(None) for f in self.fixed))]
            else:
                array = array[(*head, *(f if f is not None else slice(None) for f in self.fixed))]
        return shifted_copy(array, self.offsets, self.lengths, batched=self.batched, xp=self.xp)


# --- the two entries of the lowering table (symback.compile.lowering.register_pattern) ----------------------------------


def shifted_pattern(
    expression: Any, out: tuple, *, batched: Any, over_examples: bool, lower: Any, key: Any, xp: Any = NUMPY
) -> Any:
    """A convolution's sum (:func:`match_shifted`) as a lowering Kernel, else None."""
    found = match_shifted(expression, out, batched, over_examples=over_examples, key=key, xp=xp)
    if found is None:
        return None
    return Kernel(found, found.pattern, found.bases)


def offset_pattern(
    expression: Any, out: tuple, *, batched: Any, over_examples: bool, lower: Any, key: Any, xp: Any = NUMPY
) -> Any:
    """An expression with indices moved by constants (:func:`offset_operands`): the shifted copies made,
    the rest lowered by the table as usual (the copies appended to the arrays, found from the end)."""
    rewritten = offset_operands(expression, batched, xp)
    if rewritten is None:
        return None
    expression, feeds = rewritten
    copies_batched = {base for base, feed in feeds.items() if feed.batched}
    extra = {base: position - len(feeds) for position, base in enumerate(feeds)}
    inner_key = lambda base: extra[base] if base in extra else key(base)  # noqa: E731
    inner = lower(expression, out, batched=frozenset(batched) | copies_batched, over_examples=over_examples, key=inner_key)
    sources = [(key(feed.base), feed) for feed in feeds.values()]

    def run(arrays: Any, result: Any = None) -> Any:
        copies = [feed.copy_of(arrays[slot]) for slot, feed in sources]
        if isinstance(arrays, dict):  # arrays keyed by base (tests, symbolic checks): the copies by -1, -2, …
            extended = {**arrays, **{position - len(copies): c for position, c in enumerate(copies)}}
        else:  # a compiled network's slot list
            extended = [*arrays, *copies]
        return inner(extended, result)

    return Kernel(run, f"shifted copy, {inner.pattern}", inner.bases)


def _grid_contractions() -> dict[str, Any]:
    """A dense layer reading a grid (a convolution's or recurrent layer's output) as one matrix product:
    the grid axes flattened row-major, which is how the weight lies in memory anyway."""

    def forward(xp: Any, w: Any, a: Any, out: Any = None) -> Any:  # Σ_grid W[j,g] A[n,g] → A @ Wᵀ
        return xp.matmul(a.reshape(len(a), -1), w.reshape(len(w), -1).T, out=out)

    def adjoint(xp: Any, d: Any, w: Any, out: Any = None) -> Any:  # Σ_j D[n,j] W[j,g] → D @ W
        return xp.matmul(d, w.reshape(len(w), -1)).reshape(len(d), *w.shape[1:])

    def gradient(xp: Any, d: Any, a: Any, out: Any = None) -> Any:  # Σ_n D[n,j] A[n,g] → Dᵀ @ A
        flat = None if out is None else out.reshape(out.shape[0], -1)
        value = xp.matmul(d.T, a.reshape(len(a), -1), out=flat)
        return out if out is not None else value.reshape(d.shape[1], *a.shape[1:])

    table = {}
    for grid in ("bc", "bcd"):  # one axis is the dense layer, already in the table
        table[f"a{grid},n{grid}->na"] = forward
        table[f"na,a{grid}->n{grid}"] = adjoint
        table[f"na,n{grid}->a{grid}"] = gradient
    return table


#: Contractions of a dense layer reading a grid, for symback.compile.lowering's table.
GRID_CONTRACTIONS = _grid_contractions()


def delta_pattern(
    expression: Any, out: tuple, *, batched: Any, over_examples: bool, lower: Any, key: Any, xp: Any = NUMPY
) -> Any:
    """``KroneckerDelta(i, c) · rest`` with ``i`` an output index and ``c`` a position: ``rest`` (lowered
    without the axis of ``i``) placed at ``i = c`` of a zero array — what a readout of the last step
    sends back to a sequence (∂C/∂h[t] = δ(t, T−1) · …)."""
    import sympy as sp

    if over_examples or not isinstance(expression, sp.Mul):
        return None
    deltas = [f for f in expression.args if isinstance(f, sp.KroneckerDelta)]
    if len(deltas) != 1:
        return None
    (delta,) = deltas
    first, second = delta.args
    index, position = (first, second) if first in out else (second, first)
    if index not in out or not position.is_Integer:
        return None
    axis = out.index(index)
    rest = lower(expression / delta, tuple(i for i in out if i != index), batched=batched, over_examples=False, key=key)
    shape = tuple(int(i.upper) + 1 for i in out)
    where = int(position)

    def run(arrays: Any, result: Any = None) -> Any:
        value = rest(arrays)
        full = xp.zeros((value.shape[0], *shape), dtype=value.dtype)
        if 0 <= where < shape[axis]:
            full = xp.assign(full, (slice(None),) * (1 + axis) + (where,), value)
        if result is not None:
            result[...] = full
            return result
        return full

    return Kernel(run, f"one-hot {index} = {where}, {rest.pattern}", rest.bases)


# --- registered in the one lowering table (lowering.py imports nothing of symback's, so the kinds'
# patterns register themselves: symback.symbolic.layers_conv imports this module) ---------------------------------

register_pattern(shifted_pattern)
register_pattern(offset_pattern)
register_pattern(delta_pattern)
for _subscripts, _emit in GRID_CONTRACTIONS.items():
    register_contraction(_subscripts, _emit)
