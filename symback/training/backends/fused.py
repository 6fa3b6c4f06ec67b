"""The fused small-batch CPU backend: a whole chunk of training steps as one compiled loop nest.

At batch 1 a NumPy training step is call overhead (about fifteen NumPy calls of 1–2 µs each around a
few µs of arithmetic).  Here the forward pass, the δ recursion, the gradients, the NaN check,
clipping, the tolerance rule and the optimizer update of every step of a chunk run in one function
compiled by numba, with no Python between steps.

The loop nest is *generated*, not written per network: every statement comes from the derived index
expressions of :func:`~symback.symbolic.chain.derive_backward` (``z(l)_j = b_j + Σ_d w_jd a_d``,
``∇a(l)_k = Σ_j δ(l+1)_j w_jk``, ``δ(l)_k = σ'(z_k)·∇a_k``, ``∂C/∂w_jk = δ_j a_k``…): each
``Sum`` becomes a ``for`` loop, each ``Indexed`` an array element, and every elementwise factor is
printed by :class:`_ScalarPrinter` from the same stabilised SymPy forms the NumPy kernels use
(:func:`~symback.compile.compiler.stabilize`: ``logistic``, ``softplus`` as ``logaddexp(0, x)``, ``expm1``,
σ' from ``a`` and ``σ(−z)`` for a sigmoid, the output δ of :class:`~symback.compile.compiler.CompiledNetwork`).
The three rules :mod:`symback.compile.compiler` writes by hand for softmax (its shifted forward pass,
log-softmax for a cost that takes ``log a``, softmax + cross-entropy's ``δ = a·Σy − y``) are
written by hand here too.

Why numba and not C printed by SymPy: both compile the same loops to the same machine code (LLVM
either way, no ``fastmath``: reassociation would change digits), but numba needs no C compiler on
the user's machine, takes NumPy arrays without a wrapper, and its ``cache=True`` keeps the compiled
kernel across runs (the generated source is written, atomically, under a per-user cache folder named
by the hash of the source: ``$XDG_CACHE_HOME/symback/fused``, numba's cache next to it).

Two layouts (:class:`_Emitter`).  Under :data:`BATCH_FROM` examples, one example at a time: a
contraction whose summed index is an array's last (``Σ_d w_jd a_d``) is a dot product summed by four
interleaved accumulators (a summation order like BLAS's own, the same rounding error bound as a plain
loop's); one whose free index is the last (``Σ_j δ_j w_jk``) a sequence of axpy loops, which LLVM
vectorises without reassociating anything.  From :data:`BATCH_FROM` on, the batch at once in NumPy's
layout: each contraction of the lowering's table (:data:`symback.compile.lowering.SOURCES`, the
NumPy backend's own ``a @ w.T``, ``d @ w``, ``d.T @ a``, ``ones @ d``) is that call, BLAS from inside
numba (``np.dot``, through SciPy), and the elementwise statements are loops over the examples.  Why
BLAS there: for 32×625×20 the best loops measured (per-row axpy, a 4-row register tile, 4-example
unrolling) took 124–185 µs against 71–73 µs for OpenBLAS's gemm (NumPy's and numba's ``np.dot`` the
same); without reassociation or FMA contraction (``fastmath``) no loop of ours comes near it.
Results agree with the NumPy backend to rounding (tests/test_fused.py: 1e-12 relative after an
epoch), not bit for bit: the order of additions differs.

Measured (625-20-20-10 sigmoid/SSE/SGD float64, 4,096 examples, one BLAS thread, CPU time, best of
5-7, against a hand-written NumPy step in the same run, 2 shared cores): at load 1, 3.1x at batch 1,
1.3x at 32, 1.0x at 128, 0.94x at 256; at load 5, 3.4x, 1.4x, 1.1x, 1.0x.  From 128 on both are the
same BLAS calls (at 256 the scalar ``exp`` of the exact σ costs the rest); ``auto`` picks this backend
up to 128 (:data:`symback.training.backends.AUTO_FUSED_BATCH`).  Where a batch-1 step's 18.9 µs go
(a chunk of 4,096 steps, best of 5, load 0.7, each part taken out in turn): forward pass, δ recursion and
gradient 8.5 µs, zeroing the gradient 1.4, the screen (finite, max|g|) 5.1, the SGD update 3.9; a
hand-written JAX ``lax.scan`` step takes about 17 µs on the same machine (benchmarks/bench_train.py).

Scope: every layer kind (dense, residual, softmax output, conv1d and conv2d with valid or same padding,
recurrent with the readout of every step or of the last), every registered activation and cost, SGD,
momentum, RMSprop and Adam, ``clip_value``/``clip_norm``, frozen and tied parameters, float64 and float32.
Optimizers without a fused update are refused with one :class:`~symback.errors.SpecError` line (:func:`refusal`).

Grid layers (convolutions, recurrent layers) run one example at a time at every batch size: their sums are
not the lowering table's matrix products, so the batch layout has no BLAS call to make for them.  The
derived expressions are read as they are: a ``Sum`` over several indices (``Σ_c Σ_m w_{f,c,m} x_{c,j+m}``)
is a loop nest, an index shifted by an offset (``j + m − 1``, the flipped kernel's ``−j + k``, ``t − 1``)
is printed as written and guarded where its range can leave the array (a read outside is zero: the
padding, ``h(−1)``), and where a layer reads its own values one step away (``z(t)`` from ``a(t − 1)``, ``∇a(t)``
from ``δ(t + 1)``) the step loop runs outside, in that order.

>>> from symback import Network
>>> from symback.compile.compiler import CompiledNetwork
>>> from symback.training.train import TrainingConfig
>>> runner = make_runner(CompiledNetwork(Network([2, 3, 1], "sigmoid", "mse")), TrainingConfig())
>>> runner.batches_per_call  # Ctrl-C is seen between calls of this many batches
4096
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from ...compile.compiler import COMPLEMENT, LOG_A, CompiledNetwork, Gradients, stabilize
from ...compile.lowering import SOURCES, canonical, contraction_of
from ...errors import SpecError
from ...symbolic.activations import Z
from ...symbolic.chain import grid_tuple
from ...symbolic.costs import A, Y
from ...symbolic.parameters import Parameters
from ..optimizers import SGD, Adam, Momentum, Optimizer, RMSprop
from . import Ran, missing

__all__ = ["FusedRunner", "Ran", "cache_folder", "generate_source", "make_runner", "register_update"]


# -- scalar printing ------------------------------------------------------------------------------


class _ScalarPrinter(PythonCodePrinter):
    """SymPy's Python printer on scalars (``math.exp``…), with symback's stable forms as the helper
    functions of the generated module (numba compiles ``math`` calls and these alike)."""

    def _print_logistic(self, expr: sp.Expr) -> str:
        return f"_logistic({self._print(expr.args[0])})"

    def _print_softplus(self, expr: sp.Expr) -> str:
        return f"_softplus({self._print(expr.args[0])})"

    def _print_expm1(self, expr: sp.Expr) -> str:
        return f"math.expm1({self._print(expr.args[0])})"

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta) -> str:
        # a recurrent readout of the last step: [t = T−1]
        return f"(1.0 if {self._print(expr.args[0])} == {self._print(expr.args[1])} else 0.0)"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        # a float either way: numba would otherwise type (1 if z > 0 else 0) as an integer
        *branches, (default, condition) = expr.args
        printed = f"float({self._print(default)})" if condition == sp.true else "math.nan"
        if condition != sp.true:
            branches = expr.args
        for value, test in reversed(branches):
            printed = f"(float({self._print(value)}) if {self._print(test)} else {printed})"
        return printed



#: The helpers every kernel imports, a generated module of their own (compiled once per session and
#: argument types, and cached, not once per network): σ exact to rounding relatively over the whole
#: range (as symback.compile.compiler.logistic_array), softplus as NumPy's logaddexp(0, x), and the
#: BLAS calls.  Not ``inline="always"``: numba links a callee's LLVM into its caller, where LLVM
#: inlines it anyway; numba's own inlining redid the typing of np.dot in every kernel.
_PRELUDE = '''\
import math
import numpy as np
from numba import njit

_LOW = -709.0  # below it e^{-x} overflows float64: symback.compile.compiler._constants


@njit(cache=True, fastmath=False)
def _logistic(x):
    if x >= _LOW:
        return 1.0 / (1.0 + math.exp(-x))
    return math.exp(min(x, 0.0)) / (1.0 + math.exp(-abs(x)))


@njit(cache=True, fastmath=False)
def _softplus(x):
    if x > 0.0:
        return x + math.log1p(math.exp(-x))
    if x <= 0.0:
        return math.log1p(math.exp(x))
    return x + 0.0  # NaN


# the names the lowering table's source forms call (symback.compile.lowering.SOURCES), on BLAS
@njit(cache=True, fastmath=False)
def matmul(a, b, out):
    return np.dot(a, b, out)


@njit(cache=True, fastmath=False)
def ones(n, dtype):
    return np.ones(n, dtype)
'''


# -- the optimizers' fused updates -------------------------------------------------------------


@dataclass(frozen=True)
class FusedUpdate:
    """One optimizer's update of parameter ``i`` as lines of the generated loop: ``P`` the parameters,
    ``G`` the gradient, ``S0``, ``S1``… its state slots (in ``Optimizer.slots`` order), ``h[0]``,
    ``h[1]``… the numbers ``settings(optimizer)`` gives, ``t`` the step count after this step."""

    lines: tuple[str, ...]
    settings: Callable[[Optimizer], tuple[float, ...]]
    #: Lines run once per step before the loop (bias corrections).
    per_step: tuple[str, ...] = ()


#: Registry: optimizer class -> its fused update (the same arithmetic, in the same order, as its _update).
UPDATES: dict[type, FusedUpdate] = {}


def register_update(kind: type, update: FusedUpdate) -> None:
    """Let the fused backend train with optimizers of class ``kind`` (exactly that class)."""
    UPDATES[kind] = update


register_update(SGD, FusedUpdate(("P[i] -= h[0] * G[i]",), lambda o: (o.learning_rate,)))
register_update(Momentum, FusedUpdate(
    ("S0[i] = S0[i] * h[1] + G[i]", "P[i] -= h[0] * S0[i]"), lambda o: (o.learning_rate, o.beta)
))
register_update(RMSprop, FusedUpdate(
    ("S0[i] = S0[i] * h[1] + h[2] * (G[i] * G[i])", "P[i] -= h[0] * G[i] / (math.sqrt(S0[i]) + h[3])"),
    lambda o: (o.learning_rate, o.rho, 1 - o.rho, o.epsilon),
))
register_update(Adam, FusedUpdate(
    ("S0[i] = S0[i] * h[1] + h[3] * G[i]", "S1[i] = S1[i] * h[2] + h[4] * (G[i] * G[i])",
     "P[i] -= step * S0[i] / (math.sqrt(S1[i] / correction) + h[5])"),
    lambda o: (o.learning_rate, o.beta1, o.beta2, 1 - o.beta1, 1 - o.beta2, o.epsilon),
    ("step = h[0] / (1 - h[1] ** float(t))", "correction = 1 - h[2] ** float(t)"),
))


# -- generation ---------------------------------------------------------------------------------


class _Emitter:
    """Python statements (numba's subset) from derived index expressions.

    ``names`` maps each IndexedBase to the local array holding it; loop variables are ``i_<index>``.

    Two layouts.  *One example at a time* (``batch=False``, for the smallest batches): the whole step
    body runs inside a loop over the examples, every array holds one example, a contraction is a loop
    over its summed index.  *The batch at once* (``batch=True``): every ``batched`` array is
    ``(rows, width)``, example-major as NumPy's, indexed ``[i_n, …]``; a term that is a contraction
    of the lowering's table (:data:`symback.compile.lowering.SOURCES`: ``Σ_k w_jk a_nk`` is
    ``matmul(a, w.T)``…) is that same call, BLAS from inside numba (``np.dot``, which
    ``matmul``/``ones`` of the generated module wrap), and every other statement a loop over the
    examples around the one-example loops.
    """

    def __init__(self, names: dict[sp.IndexedBase, str], *, batch: bool = False,
                 batched: frozenset = frozenset(), widen: bool = False,
                 shapes: dict[sp.IndexedBase, tuple[int, ...]] | None = None) -> None:
        self.names = names
        #: each array's shape (one example's): a read at a shifted index outside it is zero (a convolution's
        #: padding, a recurrent layer's h(−1)), where the index's range can leave the shape
        self.shapes = shapes or {}
        #: the range of each loop index met so far (a Sum's limits, an assignment's own indices)
        self.ranges: dict[sp.Idx, tuple[int, int]] = {}
        #: leading indices of every element assigned, looped over by the caller (a recurrent layer's step)
        self.fixed: tuple[sp.Idx, ...] = ()
        self.batch = batch
        self.batched = batched
        #: every element read as float64 (the arrays are float32)
        self.widen = widen
        #: (name, width) of each (rows, width) buffer a lifted contraction writes (allocated by the caller)
        self.buffers: list[tuple[str, int]] = []
        self.counter = 0
        self.printer = _ScalarPrinter({"fully_qualified_modules": True, "standard": "python3"})

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def index_text(self, index: sp.Expr) -> str:
        """An array index: a loop variable ``i_<label>``, a number, or an affine form of them (``i_j + i_m - 1``)."""
        if isinstance(index, sp.Idx):
            return f"i_{index.label}"
        loops = {i: sp.Symbol(f"i_{i.label}", integer=True) for i in index.atoms(sp.Idx)}
        return self.printer.doprint(index.xreplace(loops))

    def _span(self, index: sp.Expr) -> tuple[int, int] | None:
        """The least and greatest value of an affine ``index`` over its loop indices' ranges, or None."""
        if index.is_Integer:
            return int(index), int(index)
        low = high = 0
        expanded = sp.expand(index)
        for term, coefficient in expanded.as_coefficients_dict().items():
            if term == 1:
                low, high = low + int(coefficient), high + int(coefficient)
                continue
            span = self.ranges.get(term) if isinstance(term, sp.Idx) else None
            if span is None and isinstance(term, sp.Idx) and term.upper is not None:
                span = (int(term.lower), int(term.upper))
            if span is None or not coefficient.is_Integer:
                return None
            ends = (int(coefficient) * span[0], int(coefficient) * span[1])
            low, high = low + min(ends), high + max(ends)
        return low, high

    def indexed(self, node: sp.Indexed) -> str:
        indices = [self.index_text(i) for i in node.indices]
        joined = ", ".join(indices)
        if self.batch and node.base in self.batched:
            text = f"{self.names[node.base]}[i_n, {joined}]"
        else:
            text = f"{self.names[node.base]}[{joined}]"
        text = f"float({text})" if self.widen else text
        shape = self.shapes.get(node.base)
        if shape is None:
            return text
        tests = []
        for index, printed, size in zip(node.indices, indices, shape, strict=True):
            span = self._span(index)
            if span is None or span[0] < 0 or span[1] >= size:
                tests.append(f"0 <= {printed} < {size}")
        return f"({text} if {' and '.join(tests)} else 0.0)" if tests else text

    def scalar(self, expression: sp.Expr, lines: list[str], pad: str) -> str:
        """The text of ``expression`` at the current loop indices (and example); a ``Sum`` inside
        becomes a loop appended to ``lines`` first."""
        replacements: dict[sp.Expr, sp.Symbol] = {}
        texts: dict[str, str] = {}
        sums = expression.atoms(sp.Sum)
        outermost = [t for t in sums if not any(u is not t and u.has(t) for u in sums)]  # inner: inside its loop
        for total in sorted(outermost, key=sp.default_sort_key):
            name = self.fresh("s")
            self.reduction(total, name, lines, pad)
            symbol = sp.Symbol(f"REDUCED{self.fresh('_')}_", real=True)
            texts[str(symbol)] = name
            replacements[total] = symbol
        body = expression.xreplace(replacements)
        for node in sorted(body.atoms(sp.Indexed), key=sp.default_sort_key):
            symbol = sp.Symbol(f"ELEMENT{self.fresh('_')}_", real=True)
            texts[str(symbol)] = self.indexed(node)
            replacements[node] = symbol
        body = body.xreplace({k: v for k, v in replacements.items() if isinstance(k, sp.Indexed)})
        # an index read as a number (a recurrent readout's [t = T−1]): its loop variable
        body = body.xreplace({i: sp.Symbol(f"i_{i.label}", integer=True) for i in body.atoms(sp.Idx)})
        text = self.printer.doprint(stabilize(body))
        for name, value in sorted(texts.items(), key=lambda item: -len(item[0])):
            text = text.replace(name, value)
        return text

    def _split(self, product: sp.Expr, moving: Callable[[sp.Expr], bool]) -> tuple[sp.Expr, sp.Expr]:
        factors = sp.Mul.make_args(product)
        return sp.Mul(*(f for f in factors if not moving(f))), sp.Mul(*(f for f in factors if moving(f)))

    def reduction(self, total: sp.Sum, name: str, lines: list[str], pad: str) -> None:
        """``name = Σ body`` over the Sum's limits, for one example: four interleaved accumulators where
        the sum is long (a dot product over contiguous memory)."""
        (index, low, high), *more = total.limits
        for summed, first, last in total.limits:
            self.ranges[summed] = (int(first), int(last))
        body = total.function
        if more:  # a convolution's Σ_c Σ_m, a readout's Σ over a grid: nested loops, summed in order
            depth = len(total.limits)
            inner: list[str] = []
            term = self.scalar(body, inner, pad + "    " * depth)
            lines.append(f"{pad}{name} = 0.0")
            for level, (summed, first, last) in enumerate(total.limits):
                lines.append(f"{pad}{'    ' * level}for i_{summed.label} in range({int(first)}, {int(last) + 1}):")
            lines += [*inner, f"{pad}{'    ' * depth}{name} += {term}"]
            return
        loop = f"i_{index.label}"
        length = int(high) - int(low) + 1
        inner: list[str] = []
        term = self.scalar(body, inner, pad + "    ")
        if inner or length < 8:
            lines += [f"{pad}{name} = 0.0", f"{pad}for {loop} in range({int(low)}, {int(high) + 1}):",
                      *inner, f"{pad}    {name} += {term}"]
            return
        quads = length // 4 * 4
        # parenthesised: a shifted read's index may hold the loop variable negated (a flipped kernel's −j + k)
        unrolled = [re.sub(rf"\b{loop}\b", f"({loop} + {u})", term) if u else term for u in range(4)]
        lines += [f"{pad}{name}_0 = 0.0", f"{pad}{name}_1 = 0.0", f"{pad}{name}_2 = 0.0", f"{pad}{name}_3 = 0.0",
                  f"{pad}for {loop} in range({int(low)}, {int(low) + quads}, 4):"]
        lines += [f"{pad}    {name}_{u} += {unrolled[u]}" for u in range(4)]
        lines.append(f"{pad}{name} = ({name}_0 + {name}_1) + ({name}_2 + {name}_3)")
        if quads < length:
            lines += [f"{pad}for {loop} in range({int(low) + quads}, {int(high) + 1}):", f"{pad}    {name} += {term}"]

    def _table_call(self, term: sp.Expr, out: Sequence[sp.Idx], target: str, *,
                    over_examples: bool) -> tuple[str, float] | None:
        """``target = term`` as the lowering table's call (``matmul(x, W1.T, out=z1)``) and the
        coefficient still to multiply, when ``term`` is a contraction there is a source form for
        and it sums something (an elementwise product stays in the loops)."""
        contraction = contraction_of(term, out, self.batched, over_examples=over_examples)
        if contraction is None or not contraction.coefficient.is_number:
            return None
        parts, result = contraction.subscripts.split("->")
        parts = parts.split(",")
        if set("".join(parts)) <= set(result):
            return None
        for order in itertools.permutations(range(len(parts))):
            source = SOURCES.get(canonical(",".join(parts[i] for i in order) + "->" + result))
            if source is not None:
                operands = [self.names[contraction.bases[i]] for i in order]
                return source[1].format(*operands, out=target), float(contraction.coefficient)
        return None

    def lift(self, target: str, term: sp.Expr, out: Sequence[sp.Idx], lines: list[str], pad: str, *,
             over_examples: bool = False) -> bool:
        """Write ``term`` into ``target`` (all its rows) as one table call; False when it is not one."""
        call = self._table_call(term, out, target, over_examples=over_examples) if self.batch else None
        if call is None:
            return False
        text, coefficient = call
        lines.append(f"{pad}{text}")
        if coefficient != 1.0:
            lines.append(f"{pad}{target} *= {coefficient!r}")
        return True

    def assign(self, target: str, expression: sp.Expr, out: Sequence[sp.Idx], lines: list[str], pad: str,
               *, accumulate: bool = False) -> None:
        """``target[out] = expression`` (``+=`` with ``accumulate``: summed over the examples) for every
        value of the ``out`` indices (and every example of the batch).

        The batch at once, each term that is a table contraction is one call first (into ``target``
        itself when it is the whole expression, else into a buffer the loops then read).  One example
        at a time, a term ``Σ_j c·u[j]·W[j, k]`` whose free index ``k`` is the last of the matrix is
        written as axpy loops into ``target`` (contiguous, vectorised), the rest elementwise."""
        # a step index the caller loops over (a recurrent layer's t) leads the element's indices
        loops = [f"i_{i.label}" for i in (*self.fixed, *out)]
        if self.batch:
            if accumulate:
                # the target is a parameter gradient, zeroed before the step and written once in it
                if not self.lift(target, expression, out, lines, pad, over_examples=True):
                    element = f"{target}[{', '.join(loops)}]"
                    lines.append(f"{pad}for i_n in range(rows):")
                    self._loops(out, lines, pad + "    ", lambda p: self._element(element, expression, p, "+="))
                return
            element = f"{target}[i_n, {', '.join(loops)}]"
            if self.lift(target, expression, out, lines, pad):
                return
            replaced = {}
            for term in sp.Add.make_args(expression):
                if isinstance(term, sp.Sum) or term.has(sp.Sum):
                    buffer = self.fresh("t")
                    if self.lift(buffer, term, out, lines, pad):
                        self.buffers.append((buffer, target))
                        base = sp.IndexedBase(buffer)
                        self.names[base] = buffer
                        self.batched = self.batched | {base}
                        replaced[term] = base[tuple(out)]
            rest = expression.xreplace(replaced)
            lines.append(f"{pad}for i_n in range(rows):")
            self._loops(out, lines, pad + "    ", lambda p: self._element(element, rest, p, "="))
            return
        element = f"{target}[{', '.join(loops)}]"
        terms = list(sp.Add.make_args(expression))
        # summed over the examples, a term is added element by element (the axpy loops overwrite their target)
        axpy = [] if accumulate else [t for t in terms if self._axpy_form(t, out)]
        rest = sp.Add(*(t for t in terms if t not in axpy))
        if axpy:
            if accumulate:
                raise SpecError("the fused backend cannot accumulate a contraction over the examples")
            self._loops(out, lines, pad, lambda p: [f"{p}{element} = 0.0"])
            for term in axpy:
                (index, low, high), = term.limits
                inner_pad = pad + "    "
                lines.append(f"{pad}for i_{index.label} in range({int(low)}, {int(high) + 1}):")
                fixed, moving = self._split(term.function, lambda f: f.has(*out))
                name = self.fresh("u")
                lines.append(f"{inner_pad}{name} = {self.scalar(fixed, lines, inner_pad)}")
                self._loops(out, lines, inner_pad,
                            lambda p, name=name, moving=moving: [f"{p}{element} += {name} * {self.scalar(moving, [], p)}"])  # noqa: E501
            if rest != 0:
                self._loops(out, lines, pad, lambda p: self._element(element, rest, p, "+="))
            return
        self._loops(out, lines, pad, lambda p: self._element(element, rest, p, "+=" if accumulate else "="))

    def total(self, target: str, expression: sp.Expr, out: Sequence[sp.Idx], lines: list[str], pad: str) -> None:
        """``target += expression`` summed over the ``out`` indices (and the batch's examples)."""
        if self.batch:
            lines.append(f"{pad}for i_n in range(rows):")
            pad += "    "
        self._loops(out, lines, pad, lambda p: self._element(target, expression, p, "+="))

    def _element(self, element: str, expression: sp.Expr, pad: str, operator: str) -> list[str]:
        lines: list[str] = []
        text = self.scalar(expression, lines, pad)
        return [*lines, f"{pad}{element} {operator} {text}"]

    def _loops(self, out: Sequence[sp.Idx], lines: list[str], pad: str, body: Callable[[str], list[str]]) -> None:
        for index in out:
            self.ranges[index] = (0, int(index.upper))
        for depth, index in enumerate(out):
            lines.append(f"{pad}{'    ' * depth}for i_{index.label} in range({int(index.upper) + 1}):")
        lines += body(pad + "    " * len(out))

    @staticmethod
    def _axpy_form(term: sp.Expr, out: Sequence[sp.Idx]) -> bool:
        if not isinstance(term, sp.Sum) or len(term.limits) != 1 or len(out) != 1:
            return False
        matrices = [f for f in sp.Mul.make_args(term.function) if isinstance(f, sp.Indexed) and len(f.indices) == 2]
        return any(m.indices[-1] == out[0] and m.indices[0] == term.limits[0][0] for m in matrices)


def refusal(compiled: CompiledNetwork, config: Any) -> str | None:
    """The one line saying what the fused backend cannot train in ``compiled`` under ``config``, or
    None when it trains it (``auto`` then picks another backend instead)."""
    if getattr(config, "dtype", "float64") not in ("float64", "float32"):
        return f"the fused backend trains in float64 and float32, not {config.dtype} (use backend = \"numpy\")"
    make_optimizer = getattr(config, "make_optimizer", None)
    if make_optimizer is not None and type(make_optimizer()) not in UPDATES:
        return _no_update(make_optimizer())
    return None


def _no_update(optimizer: Optimizer) -> str:
    return f"the fused backend has no update for the {optimizer.name} optimizer (use backend = \"numpy\")"


def generate_source(compiled: CompiledNetwork, update: FusedUpdate, *, batch: bool = False,
                    dtype: str = "float64") -> str:
    """The Python source (numba) of one network's chunk function: every statement from the derivation,
    one example at a time or the ``batch`` at once (see :class:`_Emitter`), its arrays of ``dtype``.

    In float32 the arrays, the parameters, the optimizer's state and the BLAS calls are float32, as
    NumPy's float32 backend's; every element read is widened to float64 for the scalar arithmetic
    between (``float(z1[i_j])``: e^{−z} then overflows where float64's does, not at 88.7) and rounded
    to float32 where it is stored."""
    network, backward = compiled.network, compiled.backward
    im = backward.model
    L = network.depth
    sizes = network.sizes
    names: dict[sp.IndexedBase, str] = {im.activations[0]: "x"}
    if L < 1:
        raise SpecError("the fused backend needs at least one layer")
    for l in range(1, L + 1):
        names[im.activations[l]] = f"a{l}"
        names[im.zs[l]] = f"z{l}"
        names[im.weights[l]] = f"W{l}"
        names[im.biases[l]] = f"b{l}"
        names[backward.delta[l]] = f"d{l}"
        names[backward.nabla[l]] = f"g{l}"
    y_base = im.targets
    names[y_base] = "y"
    for l in range(1, L + 1):
        names[_complement(l)] = f"c{l}"
    la = sp.IndexedBase("la")
    names[la] = "la"
    batched = frozenset([*(im.activations[l] for l in range(L + 1)), *(im.zs[l] for l in range(1, L + 1)),
                         *(backward.delta[l] for l in range(1, L + 1)), *(backward.nabla[l] for l in range(1, L + 1)),
                         *(_complement(l) for l in range(1, L + 1)), y_base, la])
    grids = _grids(network)
    if batch and any(len(grid) > 1 for grid in grids):
        raise SpecError("the fused backend runs a network with grid layers one example at a time (batch=False)")
    shapes = {im.activations[0]: grids[0], y_base: (sizes[L],)}
    for l, weight_shape in enumerate(network.weight_shapes, start=1):
        shapes |= dict.fromkeys((im.activations[l], im.zs[l], backward.delta[l], backward.nabla[l], _complement(l)),
                                grids[l])
        shapes[im.weights[l]] = tuple(weight_shape)  # a flipped kernel's offset −j + k leaves the kernel
    emit = _Emitter(names, batch=batch, batched=batched, widen=dtype != "float64", shapes=shapes)
    kind = f"np.{np.dtype(dtype).name}"
    out_index = backward.neuron_index[L]
    yj = y_base[out_index]
    zL, aL = im.zs[L][out_index], im.activations[L][out_index]
    cL = _complement(L)

    def at(name: str, index: str) -> str:
        return f"{name}[i_n, {index}]" if batch else f"{name}[{index}]"

    def y_at(index: str) -> str:
        return at("y", index)

    def each_example(snippet: list[str]) -> list[str]:
        # a hand-written per-example rule: the batch at once, inside a loop over its examples
        return [f"{pad}for i_n in range(rows):", *("    " + line for line in snippet)] if batch else snippet

    body: list[str] = []
    if batch:
        pad = "        "  # inside: while
        body += [f"{pad}x = X[b:b + rows]", f"{pad}y = Yd[b:b + rows]"]
    else:
        pad = "            "  # inside: while, for e (the example)
        x_row = "X[b + e]" if len(grids[0]) == 1 else f"X[b + e].reshape({grids[0]!r})"
        body += [f"{pad}x = {x_row}", f"{pad}y = Yd[b + e]"]
    # forward
    for l in range(1, L + 1):
        layer = compiled.layers[l - 1]
        z_formula = backward.forward[l][0]
        own = grid_tuple(backward.neuron_index[l])
        layer_pad, out = pad, own
        if z_formula.has(im.activations[l]):  # a recurrent layer reads its own a(l) one step back: steps in order
            body.append(f"{pad}for i_{own[0].label} in range({grids[l][0]}):")
            emit.ranges[own[0]] = (0, grids[l][0] - 1)
            layer_pad, out = pad + "    ", own[1:]
        emit.fixed = own[:len(own) - len(out)]
        emit.assign(f"z{l}", z_formula, out, body, layer_pad)
        skip = _skip(compiled, l, backward.neuron_index[l])
        if layer.complement and skip == 0:  # a = σ(z), c = σ(−z) = e^{−z}·σ(z): compiler.logistic_pair
            here = ", ".join(f"i_{i.label}" for i in own)
            loops = [f"{layer_pad}{'    ' * depth}for i_{i.label} in range({int(i.upper) + 1}):"
                     for depth, i in enumerate(out)]
            if batch:  # the examples outside: a row of the layer is contiguous
                loops = [f"{layer_pad}for i_n in range(rows):", *("    " + line for line in loops)]
            inner_pad = layer_pad + "    " * len(loops)
            inner = [f"zz = float({at(f'z{l}', here)})",
                     "if zz >= _LOW:",
                     "    u = math.exp(-zz)",
                     "    aa = 1.0 / (u + 1.0)",
                     f"    {at(f'a{l}', here)} = aa",
                     f"    {at(f'c{l}', here)} = u * aa",
                     "else:",
                     "    den = 1.0 + math.exp(-abs(zz))",
                     f"    {at(f'a{l}', here)} = math.exp(min(zz, 0.0)) / den",
                     f"    {at(f'c{l}', here)} = math.exp(-max(zz, 0.0)) / den"]
            body += [*loops, *(inner_pad + line for line in inner)]
        elif layer.activation.elementwise:
            own_z = im.zs[l][own] if len(own) > 1 else im.zs[l][own[0]]
            formula = layer.stable_formula.subs(Z, own_z) + skip  # the derived a(l) = σ(z) [+ a(l−back)]
            emit.assign(f"a{l}", formula, out, body, layer_pad)
        else:  # softmax, shifted by the maximum (symback.compile.compiler._softmax)
            n = sizes[l]
            body += each_example([
                f"{pad}top = {at(f'z{l}', '0')}", f"{pad}for q in range(1, {n}):",
                f"{pad}    top = max(top, {at(f'z{l}', 'q')})", f"{pad}total = 0.0", f"{pad}for q in range({n}):",
                f"{pad}    {at(f'a{l}', 'q')} = math.exp({at(f'z{l}', 'q')} - top)", f"{pad}    total += {at(f'a{l}', 'q')}",  # noqa: E501
                f"{pad}for q in range({n}):", f"{pad}    {at(f'a{l}', 'q')} /= total"])
        emit.fixed = ()
    # cost terms (the compiler's stable form) and the argmax hit
    n_out = sizes[L]
    if compiled.terms_in_z is not None:
        term = compiled.terms_in_z.xreplace({Z: zL, Y: yj})
    elif compiled._cost_in_log_a is not None:  # log-softmax (symback.compile.compiler._log_softmax)
        body += each_example([
            f"{pad}top = {at(f'z{L}', '0')}", f"{pad}for q in range(1, {n_out}):",
            f"{pad}    top = max(top, {at(f'z{L}', 'q')})", f"{pad}total = 0.0", f"{pad}for q in range({n_out}):",
            f"{pad}    total += math.exp({at(f'z{L}', 'q')} - top)", f"{pad}lse = math.log(total)",
            f"{pad}for q in range({n_out}):", f"{pad}    {at('la', 'q')} = ({at(f'z{L}', 'q')} - top) - lse"])
        term = compiled.network.cost.term.subs(sp.log(A), LOG_A).xreplace({A: aL, LOG_A: la[out_index], Y: yj})
    else:
        term = stabilize(network.cost.term).xreplace({A: aL, Y: yj})
    emit.total("terms", term, (out_index,), body, pad)
    body += each_example([
        f"{pad}best = 0", f"{pad}label = 0", f"{pad}for q in range(1, {n_out}):",
        f"{pad}    if {at(f'a{L}', 'q')} > {at(f'a{L}', 'best')}:", f"{pad}        best = q",
        f"{pad}    if {y_at('q')} > {y_at('label')}:", f"{pad}        label = q",
        f"{pad}if best == label:", f"{pad}    hits += 1"])
    # δ(L), times the reductions' scale (as CompiledNetwork._deltas: once, on δ(L))
    if compiled.output_delta_expression is not None:
        delta = compiled.output_delta_expression.xreplace({A: aL, COMPLEMENT: cL[out_index], Y: yj})
        emit.assign(f"d{L}", delta * sp.Symbol("scale"), (out_index,), body, pad)
    elif compiled._softmax_cross_entropy:  # a·Σy − y (symback.compile.compiler: the contracted softmax Jacobian)
        body += each_example([
            f"{pad}ysum = 0.0", f"{pad}for q in range({n_out}):", f"{pad}    ysum += {y_at('q')}",
            f"{pad}for q in range({n_out}):",
            f"{pad}    {at(f'd{L}', 'q')} = ({at(f'a{L}', 'q')} * ysum - {y_at('q')}) * scale"])
    else:  # ∇a(L) = ∂C/∂a, then the derived δ(L)
        emit.assign(f"g{L}", network.cost.derivative.xreplace({A: aL, Y: yj}), (out_index,), body, pad)
        k = backward.own_index[L]
        emit.assign(f"d{L}", _delta_formula(compiled, L, k) * sp.Symbol("scale"), (k,), body, pad)
    # the derived recursion: ∇a(l) from δ(l+1), δ(l) = σ'·∇a(l)
    for l in range(L - 1, 0, -1):
        k = backward.own_index[l]
        own = grid_tuple(k)
        adjoint, layer_pad, out = backward.adjoints[l], pad, own
        back = _self_read_step(adjoint, backward.delta[l], own[0])
        if back:  # backpropagation through time: ∇a(l) at step t reads δ(l) at t + 1, steps from the last
            steps = grids[l][0]
            order = f"range({steps - 1}, -1, -1)" if back > 0 else f"range({steps})"
            body.append(f"{pad}for i_{own[0].label} in {order}:")
            emit.ranges[own[0]] = (0, steps - 1)
            layer_pad, out = pad + "    ", own[1:]
        emit.fixed = own[:len(own) - len(out)]
        emit.assign(f"g{l}", adjoint, out, body, layer_pad)
        emit.assign(f"d{l}", _delta_formula(compiled, l, k), out, body, layer_pad)
        emit.fixed = ()
    # the derived gradients, summed over the examples
    for l in range(1, L + 1):
        gradients, indices = backward.gradients[l], backward.parameter_indices[l]
        emit.assign(f"GW{l}", gradients["w"], indices["w"], body, pad, accumulate=True)
        emit.assign(f"Gb{l}", gradients["b"], indices["b"], body, pad, accumulate=True)
    source = body
    # the function around it
    views = []
    for l in range(1, L + 1):
        # the views come in as arguments: numba then types them C-contiguous (a slice of P would not be)
        views += [f"    W{l} = Ws[{l - 1}]", f"    GW{l} = GWs[{l - 1}]", f"    b{l} = bs[{l - 1}]", f"    Gb{l} = Gbs[{l - 1}]"]  # noqa: E501
        if batch:
            views += [f"    {name}{l}_all = np.empty((batch, {sizes[l]}), {kind})"
                      for name in ("z", "a", "c", "d", "g")]
        else:
            views += [f"    {name}{l} = np.empty({grids[l]!r}, {kind})" for name in ("z", "a", "c", "d", "g")]
    # the batch's rows of each (batch, width) buffer, taken per step (the last batch may be shorter)
    per_step = []
    if batch:
        views += [f"    {buffer}_all = np.empty_like({like}_all)" for buffer, like in emit.buffers]
        views.append(f"    la_all = np.empty((batch, {n_out}), {kind})")
        per_step = [f"        {name}{l} = {name}{l}_all[:rows]"
                    for l in range(1, L + 1) for name in ("z", "a", "c", "d", "g")]
        per_step += [f"        {buffer} = {buffer}_all[:rows]" for buffer, _ in emit.buffers]
        per_step.append("        la = la_all[:rows]")
    else:
        views.append(f"    la = np.empty({n_out}, {kind})")
    mean_examples, mean_outputs = compiled._mean_examples, compiled._mean_outputs
    divisor_outputs = n_out if mean_outputs else 1
    lines = [
        "@njit(cache=True, fastmath=False)",
        "def chunk(X, Yd, begin, end, batch, last_at, P, G, Ws, bs, GWs, Gbs, S0, S1, mask, tie_at, tie_group,",
        "          tie_sizes, h, t, limit, clip_value, clip_norm, tolerance):",
        *views,
        "    n_params = P.shape[0]",
        "    tie_total = np.zeros(tie_sizes.shape[0])",
        "    n_rows = X.shape[0]",
        "    b = begin",
        "    steps = 0",
        "    loss_sum = 0.0",
        "    correct = 0",
        "    status = 0",
        "    step_size = 0.0",
        "    loss = 0.0",
        "    while b < end:",
        "        rows = min(batch, n_rows - b)",
        f"        scale = {'1.0 / rows' if mean_examples else '1.0'}",
        *([f"        scale /= {float(n_out)!r}"] if mean_outputs else []),
        "        for i in range(n_params):",
        "            G[i] = 0.0",
        "        terms = 0.0",
        "        hits = 0",
        *per_step,
        *(["        for e in range(rows):"] if not batch else []),
        *source,
        f"        loss = terms / {float(divisor_outputs)!r}" + (" / rows" if mean_examples else ""),
        # the rest of the step is the optimizer's, the same for every network: one function of its own
        # module (update_source), compiled once per optimizer and dtype, not once per network
        "        status, new_step, t = finish(P, G, S0, S1, mask, tie_at, tie_group, tie_sizes, tie_total, h, t,",
        "                                     limit, clip_value, clip_norm, tolerance, loss, b >= last_at)",
        "        if status == 1:",
        "            break",
        "        step_size = new_step",
        "        if status == 3:",
        "            break",
        f"        loss_sum += loss{' * rows' if mean_examples else ''}",
        "        correct += hits",
        "        b += batch",
        "        if status == 2:",
        "            break",
        "        steps += 1",
        "    return status, min(b, end), steps, loss_sum, correct, step_size, loss",
    ]
    imports = ["import math", "", "import numpy as np", "from numba import njit", "",
               f"from {_module_name(_PRELUDE)} import _LOW, _logistic, _softplus, matmul, ones",
               f"from {_module_name(update_source(update))} import finish", "", ""]
    return "\n".join(imports) + "\n" + "\n".join(lines) + "\n"


#: A setting read in an update line: ``h[0]``.
_SETTING = re.compile(r"h\[(\d)\]")


def update_source(update: FusedUpdate) -> str:
    """The Python source (numba) of the end of every step with ``update``: ties, the frozen mask, the NaN
    stop, clipping, the tolerance rule, the overflow stop and the optimizer's update, as ``finish(…) ->
    (status, step_size, t)``, status 0 (taken), 1 (non-finite: not taken), 2 (converged), 3 (overflow)."""
    lines = [
        "@njit(cache=True, fastmath=False)",
        "def finish(P, G, S0, S1, mask, tie_at, tie_group, tie_sizes, tie_total, h, t, limit, clip_value, clip_norm,",
        "           tolerance, loss, last):",
        "    n_params = P.shape[0]",
        # tied entries: each holds its parameter's derivative, the sum (CompiledNetwork: Ties.sum_gradients)
        "    if tie_at.shape[0]:",
        "        tie_total[:] = 0.0",
        "        for q in range(tie_at.shape[0]):",
        "            tie_total[tie_group[q]] += G[tie_at[q]]",
        "        for q in range(tie_at.shape[0]):",
        "            G[tie_at[q]] = tie_total[tie_group[q]]",
        "    if mask.shape[0]:",
        "        for i in range(n_params):",
        "            G[i] *= mask[i]",
        # The screen in one branch-free pass over the bits: a float's magnitude (its bits without the sign)
        # orders as an integer does, and a NaN's lies above +inf's, so the largest masked integer gives
        # max|g| exactly and says whether every entry is finite.  Integer max is associative: LLVM
        # vectorises it without fastmath.  Measured (625-20-20-10, batch 1): the branchy float scan was 8.9
        # µs of a 23.1 µs step, four interleaved float accumulators 5.1 µs of 18.9.
        "    scratch = np.empty(1, G.dtype)",
        "    if G.itemsize == 8:",
        "        bits8 = G.view(np.int64)",
        "        top8 = np.int64(0)",
        "        for i in range(n_params):",
        "            v8 = bits8[i] & np.int64(0x7FFFFFFFFFFFFFFF)",
        "            top8 = v8 if v8 > top8 else top8",
        "        finite = top8 <= np.int64(0x7FF0000000000000) - 1",
        "        scratch.view(np.int64)[0] = top8",
        "    else:",
        "        bits4 = G.view(np.int32)",
        "        top4 = np.int32(0)",
        "        for i in range(n_params):",
        "            v4 = bits4[i] & np.int32(0x7FFFFFFF)",
        "            top4 = v4 if v4 > top4 else top4",
        "        finite = top4 <= np.int32(0x7F800000) - 1",
        "        scratch.view(np.int32)[0] = top4",
        "    peak = float(scratch[0])",
        "    if not (finite and abs(loss) < math.inf):",
        "        return 1, 0.0, t",
        "    if clip_value > 0.0:",
        "        for i in range(n_params):",
        "            G[i] = min(max(G[i], -clip_value), clip_value)",
        "    if clip_norm > 0.0:",
        "        squares = 0.0",
        "        for i in range(n_params):",
        "            squares += G[i] * G[i]",
        "        if tie_at.shape[0]:  # a tied parameter counts once (Ties.norm)",
        "            tie_total[:] = 0.0",
        "            for q in range(tie_at.shape[0]):",
        "                tie_total[tie_group[q]] += G[tie_at[q]]",
        "            for q in range(tie_sizes.shape[0]):",
        "                value = tie_total[q] / tie_sizes[q]",
        "                squares -= (tie_sizes[q] - 1.0) * value * value",
        "            squares = max(squares, 0.0)",
        "        norm = math.sqrt(squares)",
        "        if norm > clip_norm:",
        "            factor = clip_norm / norm",
        "            for i in range(n_params):",
        "                G[i] *= factor",
        "    if clip_value > 0.0 or clip_norm > 0.0:",
        "        peak = 0.0",
        "        for i in range(n_params):",
        "            peak = max(peak, abs(G[i]))",
        "    step_size = h[0] * peak",
        "    if last and tolerance > 0.0 and abs(step_size) < tolerance:",
        "        return 2, step_size, t",
        "    if not step_size <= limit:",
        "        return 3, step_size, t",
        "    t += 1",
        *(f"    {line}" for line in update.per_step),
        # the settings read once, before the loop: read in it, h[k] could alias P (a store), and LLVM would
        # load it again each entry and not vectorise
        *(f"    h{k} = h[{k}]" for k in range(8) if f"h[{k}]" in " ".join(update.lines)),
        "    for i in range(n_params):",
        *("        " + _SETTING.sub(r"h\1", line) for line in update.lines),
        "    return 0, step_size, t",
    ]
    return "import math\n\nimport numpy as np\nfrom numba import njit\n\n\n" + "\n".join(lines) + "\n"


def _complement(l: int) -> sp.IndexedBase:
    """``σ(−z(l))`` of a sigmoid layer, kept by the forward pass beside ``a(l)``."""
    return sp.IndexedBase(f"sigma_minus_{l}")


def _grids(network: Any) -> list[tuple[int, ...]]:
    """One example's shape of every layer's arrays, the inputs first: ``(width,)``, a convolution's
    ``(filters, *positions)``, a recurrent layer's ``(steps, hidden)``."""
    first = tuple(getattr(network.layers[0], "input_grid", (network.sizes[0],)))
    return [first, *(tuple(layer.grid) for layer in network.layers)]


def _self_read_step(expression: sp.Expr, base: sp.IndexedBase, step: sp.Idx) -> int:
    """+1 where ``expression`` reads ``base`` one step later along ``step`` (δ(l) at t + 1), −1 one step
    earlier, 0 where it does not read ``base``."""
    offsets = {sp.expand(read.indices[0] - step) for read in expression.atoms(sp.Indexed) if read.base == base}
    if not offsets:
        return 0
    if any(not o.is_Integer or o == 0 for o in offsets) or len({int(o) > 0 for o in offsets}) > 1:
        raise SpecError(f"the fused backend cannot order the steps of {expression}")
    return 1 if next(iter(offsets)) > 0 else -1


def _skip(compiled: CompiledNetwork, l: int, j: Any) -> sp.Expr:
    """What the derived ``a(l)_j`` adds to ``σ(z(l)_j)``: a residual layer's ``a(l−back)_j``, else 0."""
    from ...symbolic.layers import Residual

    if type(compiled.network.layers[l - 1]) is not Residual:
        return sp.S.Zero
    backward = compiled.backward
    if not compiled.network.activation(l).elementwise:  # a residual layer's activation is elementwise
        return sp.S.Zero
    activation_formula = backward.forward[l][1].xreplace({backward.neuron_index[l]: j})
    z = backward.model.zs[l][j]
    skip = activation_formula - compiled.network.activation(l).formula.xreplace({Z: z})
    if skip.has(z):
        raise SpecError(f"the fused backend cannot split a({l}) = {activation_formula} into σ(z) and a skip")
    return skip


def _delta_formula(compiled: CompiledNetwork, l: int, k: sp.Idx) -> sp.Expr:
    """The derived δ(l)_k with σ'(z_k) in the compiler's exact form: ``a·σ(−z)`` for a sigmoid, the
    monomial in ``a`` where SymPy proves one, else the stabilised derivative in ``z``."""
    backward, network = compiled.backward, compiled.network
    im = backward.model
    activation = network.activation(l)
    delta = backward.deltas[l]
    if not activation.elementwise:
        return delta
    layer = compiled.layers[l - 1]
    z, a = im.zs[l][k], im.activations[l][k]
    if _skip(compiled, l, k) != 0:  # a(l) holds the skip too: σ' in z
        sigma_prime = stabilize(sp.diff(layer.stable_formula, Z)).xreplace({Z: z})
    elif layer.complement:
        sigma_prime = a * _complement(l)[k]
    elif layer.output_derivative is not None:
        sigma_prime = layer.derivative_expression.xreplace({A: a})
    else:
        sigma_prime = stabilize(sp.diff(layer.stable_formula, Z)).xreplace({Z: z})
    found = delta.subs(activation.derivative_at(z), sigma_prime)
    if found.has(z) and not sigma_prime.has(z):
        raise SpecError(f"the fused backend cannot find σ'(z) in the derived δ({l}) = {delta}")
    return found


# -- compile and cache ------------------------------------------------------------------------


def cache_folder() -> Path:
    """Where generated kernels (and numba's cache of them) live: ``$XDG_CACHE_HOME/symback/fused``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "symback" / "fused"


def _module_name(source: str) -> str:
    """The name a generated module is loaded under: by the hash of its source."""
    return f"symback_fused_{hashlib.sha256(source.encode()).hexdigest()[:20]}"


def _load(source: str) -> Any:
    """The module of ``source``, written once (atomically) to the cache folder by its hash."""
    name = _module_name(source)
    digest = name.removeprefix("symback_fused_")
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"kernel_{digest}.py"
    if not path.exists() or path.read_text(encoding="utf-8") != source:
        descriptor, temporary = tempfile.mkstemp(prefix=f".kernel_{digest}.", suffix=".part", dir=folder)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(source)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # symback's own generated text, never a user's
        sys.modules[name] = module
    return module


#: From this batch size on, the kernel takes the batch at once (contractions as BLAS calls); below it,
#: one example at a time.  Measured (625-20-20-10 sigmoid/SSE/SGD, one BLAS thread, CPU time, loaded
#: machine), the batch layout against one example at a time: 1.03x at batch 2, 1.34x at 4, 1.66x at 8,
#: 2.5x at 32.
BATCH_FROM = 4


# -- the runner ---------------------------------------------------------------------------------


class FusedRunner:
    """Runs chunks of training steps of one compiled network with the fused kernel (see RUNNER.md)."""

    def __init__(self, compiled: CompiledNetwork, config: Any) -> None:
        reason = refusal(compiled, config)
        if reason is not None:
            raise SpecError(reason)
        self.compiled = compiled
        self.config = config
        self.dtype = np.dtype(getattr(config, "dtype", "float64"))
        self.limit = float(np.finfo(self.dtype).max)
        self._chunks: dict[tuple[type, bool], Callable[..., Any]] = {}
        self.gradients: Gradients | None = None
        #: the frozen mask and the ties' places, for one layout of the packed buffer (see _packed_places)
        self._places: tuple[tuple[int, ...], tuple[np.ndarray, ...]] | None = None

    def _mask_and_ties(self, params: Parameters) -> tuple[np.ndarray, ...]:
        """The frozen mask over the packed buffer and the tied entries' places in it, for the layout of
        ``params`` (its arrays' offsets in its buffer: weights and biases interleaved per layer)."""
        offsets = _offsets(params)
        if self._places is None or self._places[0] != offsets:
            compiled = self.compiled
            mask = np.zeros(0)
            if compiled._masks is not None:
                mask = np.ones(params.buffer.size)
                weights, biases = compiled.network.trainable_masks()
                for offset, part in zip(offsets, [*weights, *biases], strict=True):
                    mask[offset:offset + part.size] = part.ravel()
            self._places = (offsets, (mask, *_tie_arrays(compiled, offsets)))
        return self._places[1]

    def _chunk(self, optimizer: Optimizer, batch: int) -> tuple[Callable[..., Any], FusedUpdate]:
        update = UPDATES.get(type(optimizer))
        if update is None:
            raise SpecError(_no_update(optimizer))
        # a network with grid layers (convolution, recurrent) one example at a time at every batch size
        key = (type(optimizer), batch >= BATCH_FROM and all(len(g) == 1 for g in _grids(self.compiled.network)))
        if key not in self._chunks:
            _load(_PRELUDE)  # both imported by the kernel's module
            _load(update_source(update))
            self._chunks[key] = _load(generate_source(self.compiled, update, batch=key[1], dtype=self.dtype.name)).chunk
        return self._chunks[key], update

    #: Batches per call: Ctrl-C is seen between calls (the loop nest does not look at the flag), so a call
    #: is kept to a fraction of a second even at batch 1.
    batches_per_call = 4096

    def run(self, params: Parameters, optimizer: Optimizer, X: np.ndarray, Y: np.ndarray, begin: int, end: int,
            batch: int, *, last_batch_of_epoch_at: int, interrupted: Any = None) -> Ran:
        """Steps on ``X[b:b+batch]`` for b in range(begin, end, batch); params and optimizer state updated."""
        chunk, update = self._chunk(optimizer, batch)
        packed = params.buffer
        working = params if packed is not None and packed.dtype == self.dtype else params.packed(self.dtype)
        P = working.buffer
        if self.gradients is None or self.gradients.buffer is None or self.gradients.buffer.size != P.size:
            self.gradients = Gradients.zeros_like(working)
        G = self.gradients.buffer
        state = optimizer._packed_state(working, P) if optimizer.slots else []
        slots = [*state, *[np.zeros(0)] * (2 - len(state))]
        X = np.ascontiguousarray(X, dtype=self.dtype)
        Y = np.ascontiguousarray(Y, dtype=self.dtype)
        config = self.config
        last_begin = (last_batch_of_epoch_at - 1) // batch * batch  # the loop nest tests b >= where it begins
        status, offset, steps, loss_sum, correct, step_size, loss = chunk(
            X, Y, begin, end, batch, last_begin, P, G, tuple(working.weights), tuple(working.biases),
            tuple(self.gradients.weights), tuple(self.gradients.biases), slots[0], slots[1],
            *self._mask_and_ties(working),
            np.array(update.settings(optimizer), dtype=np.float64), optimizer.steps, self.limit,
            float(config.clip_value or 0.0), float(config.clip_norm or 0.0), float(config.tolerance or 0.0),
        )
        optimizer.steps += steps
        if working is not params:
            for target, value in zip(params.weights + params.biases, working.weights + working.biases, strict=True):
                target[...] = value
        stopped, message = None, None
        if status == 1:
            stopped = "non_finite"
            what = "loss" if not np.isfinite(loss) else "gradient"
            value = loss if what == "loss" else G[~np.isfinite(G)][0]
            message = f"the {what} became {value}"  # fit adds the epoch and step
        elif status == 3:
            stopped = "non_finite"
            message = f"the step η·max|g| = {step_size:.3g} overflows {self.dtype.name}"
        elif status == 2:
            stopped = "converged"
        classes = Y.shape[1] >= 2 and bool(np.all((Y == 0) | (Y == 1)) and np.all(Y.sum(axis=1) == 1))
        return Ran(
            offset=int(offset),
            steps=int(steps), loss_sum=float(loss_sum), correct=int(correct) if classes else 0,
            step_size=float(step_size), layer_norms=self.gradients.layer_norms(), stopped=stopped, message=message,
        )


def _offsets(params: Parameters) -> tuple[int, ...]:
    """Where each of ``params.weights + params.biases`` begins in ``params.buffer`` (in elements)."""
    start = params.buffer.__array_interface__["data"][0]
    size = params.buffer.itemsize
    return tuple((part.__array_interface__["data"][0] - start) // size for part in [*params.weights, *params.biases])


def _tie_arrays(compiled: CompiledNetwork, offsets: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every tied entry's place in the packed buffer (its array's offset there, then C order), its group
    and each group's size, in :class:`~symback.compile.compiler.Ties`' order; empty without ties."""
    ties = compiled.ties
    if ties is None:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), np.zeros(0)
    network = compiled.network
    shapes = [(network.sizes[l], network.sizes[l - 1]) for l in range(1, network.depth + 1)]
    shapes += [(network.sizes[l],) for l in range(1, network.depth + 1)]
    places, groups = [], []
    for array, index, group in ties.entries:
        places.append(offsets[array] + np.ravel_multi_index(index, shapes[array]))
        groups.append(group)
    return (np.concatenate(places).astype(np.intp), np.concatenate(groups).astype(np.intp),
            ties.sizes.astype(np.float64))


def make_runner(compiled: CompiledNetwork, config: Any) -> FusedRunner:
    """The fused step runner of ``compiled`` under ``config`` (a SpecError names what it cannot train)."""
    message = missing("fused")
    if message is not None:
        raise SpecError(message)
    return FusedRunner(compiled, config)
