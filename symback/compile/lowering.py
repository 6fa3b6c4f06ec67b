"""The one lowering table: derived index expressions → calls on an array namespace.

The chain-rule engine (:mod:`symback.symbolic.chain`) hands over every forward formula, ∇a, δ and parameter
gradient in index form for one example.  Here each becomes a kernel on whole arrays: every
per-example array (``z``, ``a``, ``x``, ``y``, ``δ``, ``∇a``) gains a leading example axis ``n``;
parameters do not.

* A product of ``Indexed`` operands, summed or not, is a :class:`Contraction` with einsum subscripts
  (``Σ_j w[j,k]·δ[n,j]`` is ``"jk,nj->nk"``).  Its subscripts, canonicalised (letters renamed in
  order of appearance, ``n`` kept, every operand order tried), are looked up in :data:`CONTRACTIONS`:
  ``A @ W.T``, ``D @ W``, ``D.T @ A``, ``ones @ D``…; anything else is ``einsum`` (correct, slower).
* An elementwise factor (σ(z), σ'(z), a cost term) is a kernel the caller already compiled (the
  stabilised, lambdified ones of :mod:`symback.compile.compiler`), passed in ``known``; any other elementwise
  remainder is lambdified here, with each ``Indexed`` and each inner contraction as an argument.

``xp`` is an :class:`ArrayNamespace`: NumPy today (:data:`NUMPY`); ``out=`` is a hint another
namespace may ignore (a functional one such as JAX returns new arrays).

>>> import numpy as np, sympy as sp
>>> j, k = sp.Idx("j", 3), sp.Idx("k", 2)
>>> w, d = sp.IndexedBase("w"), sp.IndexedBase("delta")
>>> kernel = lower(sp.Sum(w[j, k] * d[j], j), (k,), batched={d})
>>> kernel.pattern
'jk,nj->nk'
>>> W, D = np.arange(6.0).reshape(3, 2), np.ones((4, 3))
>>> np.array_equal(kernel({w: W, d: D}), D @ W)
True
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np
import sympy as sp

__all__ = [
    "ArrayNamespace",
    "CONTRACTIONS",
    "Contraction",
    "Kernel",
    "KnownFactor",
    "NUMPY",
    "canonical",
    "compile_function",
    "contraction_of",
    "lower",
    "namespace_of",
    "register_contraction",
    "register_pattern",
]

#: The example axis every batched array carries first.
EXAMPLES = "n"


class ArrayNamespace:
    """The array calls lowered kernels make: NumPy's, or another module with the same names.

    ``functional``: the module's arrays are values (JAX): ``out=`` hints are dropped, and
    :meth:`assign` returns a new array instead of writing into one.

    >>> NUMPY.ones(3, np.float32).tolist()
    [1.0, 1.0, 1.0]
    >>> NUMPY.assign(np.zeros(3), 1, 5.0).tolist()
    [0.0, 5.0, 0.0]
    """

    def __init__(self, module: Any, name: str, *, functional: bool = False) -> None:
        self.module = module
        self.name = name
        self.functional = functional
        self.matmul = _without_out(module.matmul) if functional else module.matmul
        self.einsum = _without_out(module.einsum) if functional else module.einsum
        self.multiply = _without_out(module.multiply) if functional else module.multiply
        self.add = _without_out(module.add) if functional else module.add
        if module is np:  # the cached vector itself, not a method around it: called every step
            self.ones = _ones
        elif functional:
            self.ones = lambda n, dtype: module.ones(n, dtype)

    def ones(self, n: int, dtype: Any) -> Any:
        """A read-only vector of ones (cached: a bias gradient asks for one every step)."""
        return _ones(n, dtype)

    def assign(self, array: Any, index: Any, value: Any) -> Any:
        """``array`` with ``array[index] = value``: written in place, or a new array when functional."""
        if self.functional:
            return array.at[index].set(value)
        array[index] = value
        return array

    def __getattr__(self, name: str) -> Any:  # pad, flip, zeros, expand_dims…: the module's own
        if name == "module":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        value = getattr(self.module, name)
        setattr(self, name, value)  # looked up once
        return value

    def __repr__(self) -> str:
        return f"ArrayNamespace({self.name})"


@lru_cache(maxsize=16)
def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    ones = np.ones(n, dtype=dtype)
    ones.flags.writeable = False
    return ones


def _without_out(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` taking (and dropping) an ``out=`` hint: a functional namespace returns new arrays."""

    def call(*arguments: Any, out: Any = None, **settings: Any) -> Any:
        return function(*arguments, **settings)

    return call


NUMPY = ArrayNamespace(np, "numpy")


def namespace_of(xp: Any) -> ArrayNamespace:
    """``xp`` as an :class:`ArrayNamespace` (a bare module is NumPy's or wrapped as a non-functional one)."""
    if isinstance(xp, ArrayNamespace):
        return xp
    return NUMPY if xp is np else ArrayNamespace(xp, getattr(xp, "__name__", "module"))


#: Patterns for index forms that are not einsum contractions (a convolution's ``a[c, j + m − P]``, a
#: recurrence's ``h[t − 1, k]``): ``matcher(expression, out, batched=, over_examples=, lower=, key=, xp=)
#: -> Kernel | None``, tried in order before the contraction table (``lower`` lowers what a matcher
#: rewrote; ``key(base)`` is where a base's array is found in the arrays a kernel is given; ``xp`` the
#: :class:`ArrayNamespace` its kernel calls).
PATTERNS: list[Callable[..., Any]] = []


def register_pattern(matcher: Callable[..., Any]) -> None:
    """Try ``matcher`` on every expression lowered (see :data:`PATTERNS`)."""
    PATTERNS.append(matcher)


#: Contraction patterns: canonical subscripts → ``emit(xp, *operands, out=None)``.
CONTRACTIONS: dict[str, Callable[..., Any]] = {}


def canonical(subscripts: str) -> str:
    """``subscripts`` with every letter but ``n`` renamed in order of first appearance.

    >>> canonical("jk,nj->nk"), canonical("qr,nq->nr")
    ('ab,na->nb', 'ab,na->nb')
    """
    names: dict[str, str] = {}
    letters = iter(c for c in string.ascii_lowercase if c != EXAMPLES)
    out = []
    for c in subscripts:
        if c.isalpha() and c != EXAMPLES:
            if c not in names:
                names[c] = next(letters)
            out.append(names[c])
        else:
            out.append(c)
    return "".join(out)


#: Source forms of table entries: canonical subscripts → ``(expression, expression with out)`` over
#: the operands ``{0}``, ``{1}``… and ``{out}``; a compiled network writes its steps from them as one
#: generated function (at batch 1 a training step is mostly Python call overhead).
SOURCES: dict[str, tuple[str, str]] = {}


def register_contraction(
    subscripts: str, emit: Callable[..., Any], source: tuple[str, str] | None = None
) -> None:
    """Lower every contraction with these subscripts (any letters) by ``emit(xp, *operands, out=None)``;
    ``source`` is the same call as text (``"{1} @ {0}.T"``, ``"matmul({1}, {0}.T, out={out})"``), with
    ``matmul``, ``multiply``, ``einsum`` and ``ones`` the namespace's functions."""
    CONTRACTIONS[canonical(subscripts)] = emit
    if source is not None:
        SOURCES[canonical(subscripts)] = source


# Σ_k W[j,k]·A[n,k] → A @ Wᵀ (the forward pass of a dense layer)
register_contraction(
    "jk,nk->nj", lambda xp, w, a, out=None: xp.matmul(a, w.T, out=out), ("{1} @ {0}.T", "matmul({1}, {0}.T, out={out})")
)
# Σ_j W[j,k]·D[n,j] → D @ W (∇a from the δ of the layer above)
register_contraction(
    "jk,nj->nk", lambda xp, w, d, out=None: xp.matmul(d, w, out=out), ("{1} @ {0}", "matmul({1}, {0}, out={out})")
)
# Σ_n D[n,j]·A[n,k] → Dᵀ @ A (a weight gradient, summed over the examples)
register_contraction(
    "nj,nk->jk", lambda xp, d, a, out=None: xp.matmul(d.T, a, out=out), ("{0}.T @ {1}", "matmul({0}.T, {1}, out={out})")
)
# Σ_n D[n,j] → ones @ D (a bias gradient: one BLAS call, several times faster than sum(axis=0))
register_contraction(
    "nj->j",
    lambda xp, d, out=None: xp.matmul(xp.ones(d.shape[0], d.dtype), d, out=out),
    ("ones({0}.shape[0], {0}.dtype) @ {0}", "matmul(ones({0}.shape[0], {0}.dtype), {0}, out={out})"),
)
# A[n,j]·G[n,j] → the elementwise product
register_contraction(
    "nj,nj->nj", lambda xp, a, g, out=None: xp.multiply(a, g, out=out), ("{0} * {1}", "multiply({0}, {1}, out={out})")
)
# Σ_j A[n,j]·G[n,j] → one number per example (the softmax Jacobian's inner product)
register_contraction("nj,nj->n", lambda xp, a, g, out=None: xp.einsum("nj,nj->n", a, g, out=out))


@dataclass(frozen=True)
class Contraction:
    """A product of Indexed operands summed over some indices: ``coefficient · einsum(subscripts, *bases)``."""

    bases: tuple[sp.IndexedBase, ...]
    subscripts: str
    coefficient: sp.Expr = sp.S.One


def contraction_of(
    term: sp.Expr, out: Sequence[sp.Idx], batched: Iterable[sp.IndexedBase], *, over_examples: bool = False
) -> Contraction | None:
    """``term`` as a :class:`Contraction`, or None when it is not a (summed) product of Indexed.

    ``out`` are the result's indices after the example axis; ``over_examples`` sums the example axis
    too (a parameter gradient).
    """
    batched = set(batched)
    summed: list[sp.Idx] = []
    while isinstance(term, sp.Sum):
        summed.extend(limit[0] for limit in term.limits)
        term = term.function
    coefficient, factors = sp.S.One, []
    for factor in sp.Mul.make_args(term):
        if factor.is_number:
            coefficient *= factor
        elif isinstance(factor, sp.Indexed) and all(isinstance(i, sp.Idx) for i in factor.indices):
            factors.append(factor)
        elif factor.is_Pow and factor.exp.is_Integer and factor.exp > 0 and isinstance(factor.base, sp.Indexed):
            factors.extend([factor.base] * int(factor.exp))
        else:
            return None
    if not factors:
        return None
    indices = list(dict.fromkeys(itertools.chain(out, summed, *(f.indices for f in factors))))
    if len(indices) > 25:
        return None
    names = [str(i.label) for i in indices]
    if all(len(c) == 1 and c.isalpha() and c.islower() and c != EXAMPLES for c in names) and len(set(names)) == len(names):
        letters = dict(zip(indices, names))  # the derivation's own letters: "jk,nj->nk" reads like the sum
    else:
        letters = dict(zip(indices, (c for c in string.ascii_lowercase if c != EXAMPLES)))
    parts = []
    for factor in factors:
        head = EXAMPLES if factor.base in batched else ""
        parts.append(head + "".join(letters[i] for i in factor.indices))
    free = set(itertools.chain(*(f.indices for f in factors))) - set(summed)
    if not set(out) >= free:
        return None
    result = ("" if over_examples else EXAMPLES) + "".join(letters[i] for i in out)
    if not any(p.startswith(EXAMPLES) for p in parts):
        return None  # no example axis: a constant of the step, not a kernel of it
    return Contraction(tuple(f.base for f in factors), f"{','.join(parts)}->{result}", coefficient)


@dataclass(frozen=True)
class KnownFactor:
    """An elementwise factor the caller compiled already: ``value(arrays)`` gives it, and
    ``scale(arrays, target)`` multiplies ``target`` by it in place (σ' of a sigmoid as ``·a·σ(−z)``)."""

    value: Callable[[Mapping], Any]
    scale: Callable[[Mapping, Any], Any] | None = None
    #: ``source(target, namespace)`` → lines scaling the local ``target`` in place, as :attr:`scale`
    #: does, adding the names they call to ``namespace`` (optional).
    source: Callable[[str, dict], list[str]] | None = None


@dataclass(frozen=True)
class Kernel:
    """A lowered expression: ``kernel(arrays, out=None)`` with ``arrays`` mapping each IndexedBase to
    its array.  ``pattern`` names how it was lowered (a table entry, ``einsum``, ``elementwise``)."""

    run: Callable[..., Any]
    pattern: str
    bases: tuple[sp.IndexedBase, ...]
    #: Whether the result is a new array of the kernel's own (a caller may then overwrite it).
    fresh: bool = True
    #: ``lines(target, out, namespace)``: Python statements leaving the result in the local ``target``
    #: (``out`` the text of an output buffer, or None), adding the names they call to ``namespace``.
    lines: Callable[[str, str | None, dict], list[str]] | None = None

    def source(self, target: str, out: str | None, namespace: dict) -> list[str]:
        """Statements computing this kernel into ``target``: its own, else a call of :attr:`run`."""
        if self.lines is not None:
            return self.lines(target, out, namespace)
        name = f"kernel_{len(namespace)}"
        namespace[name] = self.run
        return [f"{target} = {name}(arrays{', ' + out if out else ''})"]

    def __call__(self, arrays: Mapping[sp.IndexedBase, Any], out: Any = None) -> Any:
        return self.run(arrays, out)


def _same(base: Any) -> Any:
    return base


def lower_contraction(contraction: Contraction, xp: ArrayNamespace = NUMPY, key: Callable[[Any], Any] = _same) -> Kernel:
    """The kernel of one contraction: its table entry in some operand order, else einsum.

    ``key(base)`` is where the kernel finds a base's array in the ``arrays`` it is given (the base
    itself for a dict; a compiled network uses list slots, a hot path's lookups then hash nothing)."""
    parts, result = contraction.subscripts.split("->")
    parts = parts.split(",")
    source = None
    for order in itertools.permutations(range(len(parts))):
        signature = canonical(",".join(parts[i] for i in order) + "->" + result)
        if signature in CONTRACTIONS:
            emit, source = CONTRACTIONS[signature], SOURCES.get(signature)
            bases = tuple(contraction.bases[i] for i in order)
            pattern = ",".join(parts[i] for i in order) + "->" + result
            break
    else:
        emit = _einsum(contraction.subscripts)
        bases, pattern = contraction.bases, f"einsum {contraction.subscripts}"
    # einsum may answer a view of an operand ("nk->nk"): such a result is not the kernel's to overwrite.
    fresh = not pattern.startswith("einsum")
    scale = float(contraction.coefficient)
    slots = tuple(key(b) for b in bases)
    lines = None
    if source is not None:
        plain, with_out = source

        def lines(target: str, out: str | None, namespace: dict) -> list[str]:
            namespace.update(matmul=xp.matmul, multiply=xp.multiply, einsum=xp.einsum, ones=xp.ones)
            operands = [f"arrays[{_slot(slot, namespace)}]" for slot in slots]
            text = with_out.format(*operands, out=out) if out else plain.format(*operands)
            code = [f"{target} = {text}"]
            if scale != 1.0:
                code.append(f"{target} = multiply({target}, {scale!r})" if not out else f"{target} *= {scale!r}")
            return code

        run = _function(lines, "run", ("arrays", "out=None"), branch_on_out=True)
        return Kernel(run, pattern, bases, True, lines)
    if len(bases) == 1:
        (first,) = slots
        run = lambda arrays, out=None: emit(xp, arrays[first], out=out)  # noqa: E731
    elif len(bases) == 2:
        first, second = slots
        run = lambda arrays, out=None: emit(xp, arrays[first], arrays[second], out=out)  # noqa: E731
    else:
        run = lambda arrays, out=None: emit(xp, *(arrays[b] for b in slots), out=out)  # noqa: E731
    if scale != 1.0:
        unscaled = run

        def run(arrays: Mapping, out: Any = None) -> Any:
            value = unscaled(arrays, out)
            if out is not None:
                value *= scale
                return value
            return xp.multiply(value, scale)  # a new array: the unscaled one may be a view of an operand

        fresh = True
    return Kernel(run, pattern, bases, fresh)


def _slot(slot: Any, namespace: dict) -> str:
    """The text of a slot in generated code: an int as itself, any other key by a name bound to it."""
    if type(slot) is int:
        return repr(slot)
    name = f"key_{len(namespace)}"
    namespace[name] = slot
    return name


def _function(
    lines: Callable[[str, str | None, dict], list[str]], name: str, parameters: Sequence[str], *, branch_on_out: bool = True
) -> Callable[..., Any]:
    """A Python function from a kernel's statements (``result`` returned; with ``out`` or without)."""
    namespace: dict[str, Any] = {}
    body = ["if out is None:", *("    " + l for l in lines("result", None, namespace)), "    return result"]
    body += [*lines("result", "out", namespace), "return result"]
    return compile_function(name, parameters, body, namespace)


def compile_function(name: str, parameters: Sequence[str], body: Sequence[str], namespace: dict) -> Callable[..., Any]:
    """``def name(parameters): body`` compiled in ``namespace``: only ever text symback wrote itself
    (table sources, slot numbers), never a user's."""
    text = f"def {name}({', '.join(parameters)}):\n" + "".join(f"    {line}\n" for line in body)
    code = compile(text, f"<symback lowering {name}>", "exec")
    exec(code, namespace)  # symback's own generated code, as sympy.lambdify does
    function = namespace[name]
    function.source = text
    return function


def _einsum(subscripts: str) -> Callable[..., Any]:
    def emit(xp: ArrayNamespace, *operands: Any, out: Any = None) -> Any:
        return xp.einsum(subscripts, *operands, out=out) if out is not None else xp.einsum(subscripts, *operands)

    return emit


def lower(
    expression: sp.Expr,
    out: Sequence[sp.Idx],
    *,
    batched: Iterable[sp.IndexedBase],
    known: Mapping[sp.Expr, KnownFactor] | None = None,
    over_examples: bool = False,
    overwritable: Iterable[sp.IndexedBase] = (),
    xp: ArrayNamespace = NUMPY,
    elementwise: Callable[[Sequence[sp.Symbol], sp.Expr], Callable[..., Any]] | None = None,
    key: Callable[[Any], Any] = _same,
) -> Kernel:
    """The kernel computing ``expression`` (index form, one example) for a whole batch.

    A sum of terms is lowered term by term and added; a term that is a contraction goes through the
    table; an elementwise factor found in ``known`` (``{expression: kernel(arrays)}``) is that
    kernel; what is left is compiled by ``elementwise(arguments, expression)`` (the compiler passes
    its stabilising :func:`~symback.compile.compiler.lambdify`; plain ``sympy.lambdify`` by default), each
    Indexed and each inner ``Sum`` an argument.
    """
    elementwise = elementwise or _plain_lambdify
    batched = frozenset(batched)
    known = dict(known or {})
    if expression in known:
        factor = known[expression]
        return Kernel(lambda arrays, out=None: factor.value(arrays), "known", (), fresh=False)
    scaled = _scaled_reference(expression, out, batched, known)
    if scaled is not None:
        factor, base = scaled
        in_place = base in set(overwritable)
        slot = key(base)

        def scaled_lines(target: str, result: str | None, namespace: dict) -> list[str]:
            code = [f"{target} = arrays[{_slot(slot, namespace)}]"]
            code.append(f"if not {target}.flags.writeable: {target} = {target}.copy()" if in_place else f"{target} = {target}.copy()")
            if factor.source is not None:
                return code + factor.source(target, namespace)
            name = f"scale_{len(namespace)}"
            namespace[name] = factor.scale
            return [*code, f"{target} = {name}(arrays, {target})"]

        run = _function(scaled_lines, "scaled", ("arrays", "out=None"), branch_on_out=True)
        return Kernel(run, "known ⊙ " + ("in place" if in_place else "copy"), (base,), True, scaled_lines)
    if isinstance(expression, sp.Indexed) and tuple(expression.indices) == tuple(out) and not over_examples:
        # the array itself (a parameter vector broadcasts over the examples)
        base, slot = expression.base, key(expression.base)
        return Kernel(
            lambda arrays, result=None: arrays[slot], "reference", (base,), False,
            lambda target, result, namespace: [f"{target} = arrays[{_slot(slot, namespace)}]"],
        )
    for matcher in PATTERNS:
        rest = partial(lower, known=known, xp=xp, elementwise=elementwise)
        kernel = matcher(expression, tuple(out), batched=batched, over_examples=over_examples, lower=rest, key=key,
                         xp=xp)
        if kernel is not None:
            return kernel
    contraction = contraction_of(expression, out, batched, over_examples=over_examples)
    if contraction is not None:
        return lower_contraction(contraction, xp, key)
    terms = sp.Add.make_args(expression)
    if len(terms) > 1:
        kernels = [
            lower(
                t, out, batched=batched, known=known, over_examples=over_examples, xp=xp, elementwise=elementwise,
                key=key,
            )
            for t in terms
        ]
        # A new array first: the other terms are added into it in place (a plain array, such as the
        # bias of z = A @ Wᵀ + b, straight from its slot).
        kernels.sort(key=lambda kernel: not kernel.fresh)
        pattern = " + ".join(k.pattern for k in kernels)
        bases = tuple(itertools.chain(*(k.bases for k in kernels)))
        copy_first = not kernels[0].fresh

        def sum_lines(target: str, result: str | None, namespace: dict) -> list[str]:
            code = kernels[0].source(target, result, namespace)
            if copy_first:
                code.append(f"{target} = {target}.copy()")
            for number, kernel in enumerate(kernels[1:]):
                term = f"{target}_{number}"
                code += kernel.source(term, None, namespace)
                # in place, unless a broadcast term came first (a convolution's bias b[o] beside its
                # correlation): then the sum is wider than it
                namespace["broadcast_shapes"] = np.broadcast_shapes
                # (a suffix of the target's shape first: np.broadcast_shapes builds arrays, ~5 µs, every step)
                code.append(
                    f"if {term}.shape == {target}.shape or {term}.shape == {target}.shape[{target}.ndim - {term}.ndim:]"
                    f" or broadcast_shapes({target}.shape, {term}.shape) == {target}.shape: {target} += {term}"
                )
                code.append(f"else: {target} = {target} + {term}")
            if result is not None:
                code.append(f"if {target} is not {result}: {result}[...] = {target}")
            return code

        run = _function(sum_lines, "total", ("arrays", "out=None"), branch_on_out=True)
        return Kernel(run, pattern, bases, True, sum_lines)
    if over_examples:
        raise ValueError(f"cannot lower {expression} summed over the examples: not a contraction")
    return _lower_elementwise(expression, tuple(out), batched, known, xp, elementwise, key)


def _scaled_reference(
    expression: sp.Expr, out: Sequence[sp.Idx], batched: frozenset, known: Mapping[sp.Expr, KnownFactor]
) -> tuple[KnownFactor, sp.IndexedBase] | None:
    """``F · R[n, out]`` with ``F`` a known factor that scales in place and ``R`` a batched array."""
    factors = sp.Mul.make_args(expression)
    for position, other in enumerate(factors):
        if isinstance(other, sp.Indexed) and other.base in batched and tuple(other.indices) == tuple(out):
            factor = sp.Mul(*factors[:position], *factors[position + 1 :])
            if factor in known and known[factor].scale is not None:
                return known[factor], other.base
    return None


def _plain_lambdify(arguments: Sequence[sp.Symbol], expression: sp.Expr) -> Callable[..., Any]:
    return sp.lambdify(list(arguments), expression, modules="numpy", cse=True, dummify=True)


def _lower_elementwise(
    expression: sp.Expr,
    out: tuple[sp.Idx, ...],
    batched: frozenset,
    known: Mapping,
    xp: ArrayNamespace,
    compile_elementwise: Callable[[Sequence[sp.Symbol], sp.Expr], Callable[..., Any]],
    key: Callable[[Any], Any],
) -> Kernel:
    """An elementwise remainder: known factors, inner contractions and Indexed arrays as arguments of
    one lambdified function (broadcast over the example axis and ``out``)."""
    arguments: list[sp.Symbol] = []
    feeds: list[Callable[[Mapping], Any]] = []
    replacements: dict[sp.Expr, sp.Symbol] = {}

    def argument(node: sp.Expr, feed: Callable[[Mapping], Any]) -> sp.Symbol:
        symbol = sp.Dummy(f"x{len(arguments)}", real=True)
        arguments.append(symbol)
        feeds.append(feed)
        replacements[node] = symbol
        return symbol

    for node, factor in known.items():
        if expression.has(node):
            argument(node, factor.value)
    for total in sorted(expression.atoms(sp.Sum), key=sp.default_sort_key):
        free = [i for i in out if total.has(i)]
        inner = contraction_of(total, free, batched)
        if inner is None:
            raise ValueError(f"cannot lower {total}: not a contraction")
        argument(total, _aligned(lower_contraction(inner, xp, key), free, out, xp))
    body = expression.xreplace(replacements)
    for indexed in sorted(body.atoms(sp.Indexed), key=sp.default_sort_key):
        if not set(indexed.indices) <= set(out) or len(indexed.indices) != len(set(indexed.indices)):
            raise ValueError(f"cannot lower {indexed} elementwise over {out}")
        argument(indexed, _indexed_feed(indexed, out, indexed.base in batched, key(indexed.base), xp))
    body = body.xreplace(replacements)
    function = compile_elementwise(arguments, body)

    def run(arrays: Mapping, result: Any = None) -> Any:
        value = function(*(feed(arrays) for feed in feeds))
        if result is not None:
            result[...] = value
            return result
        return value

    return Kernel(run, "elementwise", ())


def _aligned(
    kernel: Kernel, free: list[sp.Idx], out: tuple[sp.Idx, ...], xp: ArrayNamespace = NUMPY
) -> Callable[[Mapping], Any]:
    """An inner contraction's value shaped to broadcast against ``(n, *out)``."""
    shape_index = [out.index(i) for i in free]
    run = kernel.run
    if shape_index == list(range(len(out))):
        return lambda arrays: run(arrays)
    expand = tuple(1 + p for p in range(len(out)) if p not in shape_index)

    def feed(arrays: Mapping) -> Any:
        return xp.expand_dims(run(arrays), expand)

    return feed


def _indexed_feed(
    indexed: sp.Indexed, out: tuple[sp.Idx, ...], is_batched: bool, slot: Any, xp: ArrayNamespace = NUMPY
) -> Callable[[Mapping], Any]:
    """An Indexed argument's array, its axes ordered and expanded like ``(n, *out)``."""
    positions = [out.index(i) for i in indexed.indices]
    order = sorted(range(len(positions)), key=positions.__getitem__)
    axes = ([0] if is_batched else []) + [p + (1 if is_batched else 0) for p in order]
    missing = tuple(1 + p for p in range(len(out)) if p not in positions)
    plain = axes == list(range(len(axes))) and not missing
    if plain:
        return lambda arrays: arrays[slot]

    def feed(arrays: Mapping) -> Any:
        array = xp.transpose(arrays[slot], axes)
        if not is_batched:
            array = array[None]
        return xp.expand_dims(array, missing) if missing else array

    return feed
