"""Compile derived SymPy expressions into vectorised NumPy kernels.

Every kernel comes from :func:`lambdify`, the one wrapper around
``sympy.lambdify`` (explicit argument order, NumPy module, ``cse=True``).  It
is only ever fed expressions symback built itself: the activation and cost
formulas (parsed by the whitelisting parser) and their SymPy derivatives.

A layer's kernels are scalar expressions in ``z`` (or ``a`` and ``y``) applied
elementwise to whole ``(n_examples, n_neurons)`` arrays; the index sums of the
chain rule (:mod:`symback.symbolic.chain`) become matrix products through the one lowering
table (:mod:`symback.compile.lowering`).  There is no Python loop per example or per
neuron; the forward pass, δ recursion and gradients each run as one generated
function of the lowered kernels.

Before lambdify, three things are worked out symbolically (each one checked in
tests/test_compiler.py):

* σ' in terms of the layer's output ``a`` when SymPy can prove it, by solving
  ``a = σ(z)`` for ``z`` and substituting (sigmoid' = a(1 − a), tanh' = 1 − a²):
  the backward pass then needs no ``exp`` at all (:func:`derivative_in_output`).
* stable forms: ``1/(1 + exp(−x))`` becomes :class:`logistic` (computed by
  :func:`logistic_array`) and ``log(1 + exp(x))`` becomes ``logaddexp(0, x)``
  (:func:`stabilize`), so large ``|z|`` never overflows; a cost with a ``log`` of the output is rewritten in
  ``z`` (log-sigmoid, log-softmax) so a probability that rounds to 0 or 1
  cannot turn the loss into NaN.
* the output layer's ``δ = ∂C/∂a · σ'`` as one expression, simplified when that is
  shorter (binary cross-entropy on a sigmoid cancels to ``a − y``); softmax with
  categorical cross-entropy contracts its Jacobian to ``a·Σy − y``.

>>> import numpy as np
>>> from symback import Network, Parameters, Dataset
>>> net = Network([1, 1, 1], "sigmoid", "squared_error")
>>> compiled = CompiledNetwork(net)
>>> params = Parameters.initialize(net, seed=1)
>>> data = Dataset.from_arrays([0.5], [1.0])
>>> round(compiled.cost(params, data), 6) == round(float(((compiled.predict(params, data.X) - 1) ** 2).sum()), 6)
True
>>> compiled.layers[0].derivative_expression
a*(1 - a)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import precedence

from ..budget import attempt
from ..data import Dataset
from ..errors import SpecError
from ..symbolic.activations import Activation, Z
from ..symbolic.chain import derive_backward, grid_tuple
from ..symbolic.costs import A, Y
from ..symbolic.network import Network
from ..symbolic.parameters import PackedArrays, Parameters
from . import lowering_shifted  # noqa: F401  (registers the shifted-index lowering patterns)
from .lowering import KnownFactor, compile_function, lower
from .lowering_scan import StepProduct, split_recurrence

__all__ = [
    "compile_network",
    "evaluate",
    "CompiledNetwork",
    "ForwardPass",
    "Gradients",
    "Ties",
    "derivative_in_output",
    "elementwise",
    "erf_array",
    "lambdify",
    "logistic",
    "logistic_array",
    "logistic_pair",
    "softplus",
    "stabilize",
]

#: Stands for ``log(a)`` of a softmax output: the cost is evaluated with log-softmax in its place.
LOG_A = sp.Symbol("log_a", real=True)
#: Stands for ``1 − a = σ(−z)`` of a sigmoid layer, kept exact by :func:`logistic_pair`.
COMPLEMENT = sp.Symbol("c", real=True)


class _NumPyPrinter(NumPyPrinter):
    """SymPy's NumPy printer, with a Piecewise printed as nested ``numpy.where``.

    SymPy prints a Piecewise as ``numpy.select``, about twenty times slower than ``where`` on the
    small arrays of a training step (ReLU, leaky ReLU, ELU are Piecewise).
    """

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        *branches, (default, condition) = expr.args
        if condition != sp.true:
            return super()._print_Piecewise(expr)
        where = self._module_format("numpy.where")
        printed = self._print(default)
        for value, test in reversed(branches):
            printed = f"{where}({self._print(test)}, {self._print(value)}, {printed})"
        return printed

    def _print_Add(self, expr: sp.Add, order: str | None = None) -> str:
        # SymPy's order can put a negative term first: "-y + a" costs NumPy a negation more than "a - y".
        signed = []
        for term in self._as_ordered_terms(expr, order=order):
            text = self._print(term)
            negative = text.startswith("-")
            if negative:
                text = text[1:]
            if precedence(term) < precedence(expr):
                text = f"({text})"
            signed.append((negative, text))
        signed.sort(key=lambda pair: pair[0])  # stable: positive terms first, each group in SymPy's order
        (negative, printed), *rest = signed
        printed = f"-{printed}" if negative else printed
        for negative, text in rest:
            printed += f" - {text}" if negative else f" + {text}"
        return printed

    def _print_logistic(self, expr: sp.Expr) -> str:
        return f"{_LOGISTIC_NAME}({self._print(expr.args[0])})"

    def _print_erf(self, expr: sp.Expr) -> str:
        return f"{_ERF_NAME}({self._print(expr.args[0])})"

    # SymPy prints Max and Min as functools.reduce over numpy.maximum: nested calls need no functools.
    def _print_Max(self, expr: sp.Expr) -> str:
        return self._nested("numpy.maximum", expr.args)

    def _print_Min(self, expr: sp.Expr) -> str:
        return self._nested("numpy.minimum", expr.args)

    def _nested(self, function: str, arguments: Sequence[sp.Expr]) -> str:
        name = self._module_format(function)
        printed = self._print(arguments[0])
        for argument in arguments[1:]:
            printed = f"{name}({printed}, {self._print(argument)})"
        return printed


def lambdify(
    arguments: Sequence[sp.Symbol], expression: Any, *, modules: str = "numpy", cse: Any = True
) -> Callable[..., Any]:
    """``sympy.lambdify`` with symback's settings: fixed argument order, NumPy, common subexpressions.

    ``modules="torch"`` builds the same function on PyTorch tensors (for the autograd cross-check);
    ``cse`` may be a function giving the subexpressions to use, as for ``sympy.lambdify``.
    Never call it on expressions built from unparsed user text: it uses ``exec``.
    """
    if modules == "numpy":
        namespace = [{_LOGISTIC_NAME: logistic_array, _ERF_NAME: erf_array}, "numpy"]
        return sp.lambdify(list(arguments), expression, modules=namespace, cse=cse, dummify=True, printer=_NumPyPrinter)
    if modules == "torch":
        import torch

        stable = {"symback_softplus": lambda x: torch.logaddexp(torch.zeros_like(x), x)}
        return sp.lambdify(
            list(arguments), expression, modules=[stable, "torch"], cse=cse, dummify=True, printer=_torch_printer()
        )
    return sp.lambdify(list(arguments), expression, modules=modules, cse=cse, dummify=True)


@lru_cache(maxsize=1)
def _torch_printer() -> type:
    """SymPy's PyTorch printer, with the stable forms as PyTorch's own functions."""
    from sympy.printing.pytorch import TorchPrinter

    class _Printer(TorchPrinter):
        def _print_logistic(self, expr: sp.Expr) -> str:
            return f"{self._module_format('torch.sigmoid')}({self._print(expr.args[0])})"

        def _print_expm1(self, expr: sp.Expr) -> str:
            return f"{self._module_format('torch.expm1')}({self._print(expr.args[0])})"

        def _print_softplus(self, expr: sp.Expr) -> str:
            # logaddexp(0, x): torch's own softplus returns x itself above x = 20 (off by e^{-20} there)
            return f"symback_softplus({self._print(expr.args[0])})"

    return _Printer


@lru_cache(maxsize=1024)
def _expression_kernel(expression: sp.Expr) -> tuple[tuple[sp.Symbol, ...], Callable[..., Any]]:
    symbols = tuple(sorted(expression.free_symbols, key=str))
    return symbols, lambdify(symbols, stabilize(expression))


def evaluate(expression: sp.Expr, environment: Mapping[sp.Symbol, Any], n: int) -> np.ndarray:
    """``expression`` at every example: ``environment`` maps each free symbol to a number or an
    ``(n,)`` array; the result is an ``(n,)`` float array.

    The expression is evaluated in its :func:`stabilize` form, as the compiled network's kernels
    are: a sigmoid and its derivative at large ``|z|`` stay exact to rounding (see
    :func:`~symback.render.derivation.activations_in_z` for expressions in a layer's output ``a``).

    The lambdified function is cached per expression, so a loop (gradient descent in a report,
    the lines of a worked example) compiles each expression once.

    >>> x = sp.Symbol("x")
    >>> evaluate(2 * x, {x: np.array([1.0, 2.0])}, 2).tolist()
    [2.0, 4.0]
    """
    symbols, function = _expression_kernel(expression)
    with np.errstate(all="ignore"):  # an undefined point gives nan, which the callers judge
        value = function(*(environment[s] for s in symbols))
    return np.broadcast_to(np.asarray(value, dtype=float), (n,)).copy()


def elementwise(arguments: Sequence[sp.Symbol], expression: sp.Expr) -> Callable[..., np.ndarray]:
    """A lambdified scalar expression that always returns an array shaped and typed like its first argument.

    Constant derivatives (``1`` for identity) would otherwise come back as scalars, and a
    Piecewise of constants, printed as ``numpy.where`` (ReLU's σ' is ``where(z > 0, 1, 0)``),
    as an integer array.
    Expressions that depend on their first argument and have no Piecewise return the
    raw lambdified function: it already gives such an array, and the hot path
    then pays no wrapper.
    """
    raw = lambdify(arguments, expression)
    if expression.has(arguments[0]) and not expression.has(sp.Piecewise):
        return raw

    def kernel(first: np.ndarray, *rest: np.ndarray) -> np.ndarray:
        out = raw(first, *rest)
        if isinstance(out, np.ndarray) and out.dtype == first.dtype and out.shape == first.shape:
            return out
        return np.broadcast_to(np.asarray(out, dtype=first.dtype), first.shape)

    kernel.__doc__ = f"Elementwise {expression}"
    return kernel


# -- stable forms ----------------------------------------------------------------------------------


class logistic(sp.Function):  # noqa: N801 - a SymPy function, named like one
    """``1/(1 + exp(−x))``, printed for NumPy as a call of :func:`logistic_array` (never overflows).

    >>> x = sp.Symbol("x", real=True)
    >>> logistic(x).rewrite(sp.exp)
    1/(1 + exp(-x))
    >>> logistic(x).diff(x)
    logistic(-x)*logistic(x)
    """

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.is_Number:  # logistic(0) = 1/2: numbers evaluate, as exp's do
            return 1 / (1 + sp.exp(-x))
        return None

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _eval_is_positive(self) -> bool | None:
        return self.args[0].is_real

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        # σ(x)·σ(−x), not σ(1 − σ): equal, and exact to rounding where σ rounds to 1
        return self * logistic(-self.args[0])

    def _eval_rewrite_as_exp(self, x: sp.Expr, **hints: Any) -> sp.Expr:
        return 1 / (1 + sp.exp(-x))

    def _eval_rewrite_as_tanh(self, x: sp.Expr, **hints: Any) -> sp.Expr:
        return sp.tanh(x / 2) / 2 + sp.Rational(1, 2)


#: The name :func:`logistic_array` has inside lambdified code.
_LOGISTIC_NAME = "symback_logistic"


def logistic_array(x: Any, out: np.ndarray | None = None) -> Any:
    """``1/(1 + e^{−x})`` elementwise, in ``x``'s float dtype, exact to rounding relatively, never a warning.

    Where ``e^{−x}`` cannot overflow (every ``x`` above ``−log(max)``, about −709 in float64 and −88
    in float32: checked with one reduction) it is ``1/(1 + e^{−x})`` itself, in one array, in place:
    a fresh one, or ``out`` (which may be ``x`` itself, float and of its shape).  Each step is exact to
    rounding relatively (``e^{−x}`` to half an ulp, ``1 + e^{−x}`` and the division to half an ulp
    more), so σ is within about 2 ulps of the true value over the whole range, the far lower tail
    (σ(−700) = 9.86e-305) included.  An array reaching below that bound (or holding NaN) takes
    ``e^{min(x, 0)} / (1 + e^{−|x|})``, equal and equally exact, whose exponentials never overflow:
    σ then goes down smoothly through the subnormal numbers to 0.  (``tanh(x/2)/2 + 1/2``, faster
    in float32, loses every digit below x ≈ −37: 1/2 + 1/2·tanh cancels.)

    >>> logistic_array(np.array([-1000.0, -40.0, 0.0, 1000.0])).tolist()
    [0.0, 4.248354255291589e-18, 0.5, 1.0]
    """
    if type(x) is not np.ndarray or x.dtype.kind != "f":
        x = np.asarray(x)
        if x.dtype.kind != "f":
            x, out = x.astype(np.float64), None  # an integer array cannot hold σ
    one, low = _constants(x.dtype)
    if x.ndim and x.size and _lowest(x, axis=None) >= low:  # False for NaN: the general form handles it
        out = np.negative(x, out=out)
        np.exp(out, out=out)
        np.add(out, one, out=out)
        return np.divide(one, out, out=out)
    # e^{min(x, 0)} / (1 + e^{−|x|}): both exponents ≤ 0
    value = np.exp(np.minimum(x, 0)) / (one + np.exp(np.copysign(x, -one)))
    if out is None or x.ndim == 0:
        return value
    out[...] = value
    return out


def logistic_pair(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(σ(z), σ(−z))``, both exact to rounding relatively, the second in ``z``'s own array (``z`` is
    overwritten: pass a copy to keep it).

    ``σ(−z) = 1 − σ(z)``, but computed as ``e^{−z}·σ(z)``, without the cancellation of ``1 − a``
    (σ(40) rounds to 1, so ``1 − a`` would be 0 where σ(−40) = 4.2e-18): σ' = σ(z)·σ(−z) and every
    δ that divides by ``1 − a`` (binary cross-entropy) stay exact at a saturated unit.

    >>> z = np.array([-40.0, 0.0, 40.0])
    >>> a, c = logistic_pair(z)
    >>> a.tolist(), c.tolist()
    ([4.24835425529159e-18, 0.5, 1.0], [1.0, 0.5, 4.248354255291589e-18])
    """
    if z.dtype.kind != "f":
        z = z.astype(np.float64)  # an integer array cannot hold σ
    one, low = _constants(z.dtype)
    if z.size and _lowest(z, axis=None) >= low:
        u = np.negative(z, out=z)
        np.exp(u, out=u)
        a = np.add(u, one)
        np.divide(one, a, out=a)
        return a, np.multiply(u, a, out=u)
    # the general form: both exponents ≤ 0 (z below −log(max), or NaN)
    denominator = one + np.exp(np.copysign(z, -one))
    a = np.exp(np.minimum(z, 0)) / denominator
    z[...] = np.exp(-np.maximum(z, 0)) / denominator
    return a, z


#: ``x.min()`` without the method's dispatch (a fifth of its time on a small array).
_lowest = np.minimum.reduce


@lru_cache(maxsize=8)
def _constants(dtype: np.dtype) -> tuple[np.floating, np.floating]:
    """1 in ``dtype``, and the lowest x whose e^{−x} is finite there (rounded inwards)."""
    kind = np.dtype(dtype).type
    return kind(1), kind(-np.floor(np.log(np.finfo(dtype).max)))


class softplus(sp.Function):  # noqa: N801 - a SymPy function, named like one
    """``log(1 + exp(x))``, printed for NumPy as ``logaddexp(0, x)`` (never overflows).

    >>> x = sp.Symbol("x", real=True)
    >>> softplus(x).rewrite(sp.exp)
    log(exp(x) + 1)
    >>> softplus(x).diff(x)
    logistic(x)
    """

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return logistic(self.args[0])

    def _eval_rewrite_as_exp(self, x: sp.Expr, **hints: Any) -> sp.Expr:
        return sp.log(1 + sp.exp(x))

    def _numpycode(self, printer: Any) -> str:
        return f"{printer._module_format('numpy.logaddexp')}(0, {printer._print(self.args[0])})"

    def _eval_rewrite_as_log(self, x: sp.Expr, **hints: Any) -> sp.Expr:
        return sp.log(1 + sp.exp(x))


def stabilize(expression: sp.Expr) -> sp.Expr:
    """Rewrite overflow- and cancellation-prone subexpressions into equal ones exact to rounding.

    Each rule is an identity, applied bottom-up (tests check every rewritten form equal to the
    original symbolically, and its NumPy value against 50-digit mpmath over the whole range):

    * ``1 + e^{u}`` → ``1/σ(−u)``, so ``1/(1 + e^{−x})`` is :class:`logistic` ``(x)``, and an ``e^{u}``
      multiplying a σ(±u) → ``σ(u)/σ(−u)``: the sigmoid's derivative ``e^{−x}/(1 + e^{−x})²`` becomes
      ``σ(x)·σ(−x)`` (no overflow, no ``1 − a`` cancellation);
    * ``1 − σ(u)`` → ``σ(−u)``; a product of σ's and a sum dividing by one of them is multiplied out,
      so binary cross-entropy's ``(−y/σ(z) + (1 − y)/σ(−z))·σ(z)σ(−z)`` cancels to
      ``−y·σ(−z) + (1 − y)·σ(z)``;
    * ``log σ(u)`` → ``−softplus(−u)`` and ``log(1 + e^{u})`` → :class:`softplus` (``logaddexp``);
    * ``1 − tanh(u)²`` → ``4σ(2u)σ(−2u)`` (tanh' at large ``|u|``, where tanh rounds to ±1);
    * ``k·e^{u} − k`` → ``k·expm1(u)`` (ELU just below 0).

    >>> stabilize(1 / (1 + sp.exp(-Z)))
    logistic(z)
    >>> stabilize(sp.log(1 + sp.exp(Z)))
    softplus(z)
    >>> stabilize(sp.diff(1 / (1 + sp.exp(-Z)), Z))
    logistic(-z)*logistic(z)
    >>> stabilize(1 - sp.tanh(Z) ** 2)
    4*logistic(-2*z)*logistic(2*z)
    """
    memo: dict[sp.Basic, sp.Basic] = {}
    return _stabilized(expression, memo)


def _stabilized(expression: sp.Basic, memo: dict[sp.Basic, sp.Basic]) -> sp.Basic:
    if not expression.args or not isinstance(expression, sp.Basic):
        return expression
    if expression in memo:
        return memo[expression]
    args = tuple(_stabilized(argument, memo) for argument in expression.args)
    out = expression.func(*args) if args != expression.args else expression
    for kind, rule in _RULES:
        if isinstance(out, kind):
            out = rule(out)
    memo[expression] = out
    return out


def _logistic_arguments(expression: sp.Expr) -> set[sp.Expr]:
    """The arguments u of every σ(u) that is a factor (to some power) of ``expression``."""
    found = set()
    for factor in sp.Mul.make_args(expression):
        base = factor.base if factor.is_Pow else factor
        if isinstance(base, logistic):
            found.add(base.args[0])
    return found


def _stable_add(expression: sp.Add) -> sp.Expr:
    terms = list(expression.args)
    if len(terms) == 2 and sp.S.One in terms:
        other = terms[terms.index(sp.S.One) - 1]
        if isinstance(other, sp.exp):  # 1 + e^u = 1/σ(−u)
            return 1 / logistic(-other.args[0])
        if isinstance(other, logistic):
            pass
    changed = False
    for sign in (sp.S.One, sp.S.NegativeOne):
        if sign not in terms:
            continue
        for index, term in enumerate(terms):
            # 1 − σ(u) = σ(−u), σ(u) − 1 = −σ(−u)
            if isinstance(-sign * term, logistic):
                terms[index] = sign * logistic(-(-sign * term).args[0])
                terms.remove(sign)
                changed = True
                break
            # 1 − tanh(u)² = 4σ(2u)σ(−2u)
            negated = -sign * term
            if sign == 1 and negated.is_Pow and negated.exp == 2 and isinstance(negated.base, sp.tanh):
                u = negated.base.args[0]
                terms[index] = 4 * logistic(2 * u) * logistic(-2 * u)
                terms.remove(sign)
                changed = True
                break
    # k·e^u − k = k·expm1(u)
    numbers = [t for t in terms if t.is_Number]
    for number in numbers:
        for index, term in enumerate(terms):
            coefficient, rest = term.as_coeff_Mul()
            if isinstance(rest, sp.exp) and coefficient == -number:
                terms[index] = coefficient * expm1(rest.args[0])
                terms.remove(number)
                changed = True
                break
    return sp.Add(*terms) if changed else expression


def _stable_mul(expression: sp.Mul) -> sp.Expr:
    arguments = _logistic_arguments(expression)
    if not arguments:
        return expression
    factors = list(expression.args)
    changed = False
    for index, factor in enumerate(factors):
        # e^u beside σ(±u): e^u = σ(u)/σ(−u), which cancels against them
        if isinstance(factor, sp.exp):
            u = factor.args[0]
            if u in arguments or -u in arguments:
                factors[index] = logistic(u) / logistic(-u)
                changed = True
    out = sp.Mul(*factors) if changed else expression
    # A sum dividing by a σ the product holds: multiplied out, the σ's cancel term by term.
    # Only that sum is distributed (one level): (1 − y) stays a factor, as in −y·σ(−z) + (1 − y)·σ(z),
    # whose terms do not cancel each other where σ rounds to 1.
    held = _logistic_arguments(out)
    factors = list(sp.Mul.make_args(out))
    for index, factor in enumerate(factors):
        if factor.is_Add and any(
            (f.is_Pow and f.exp.is_negative and isinstance(f.base, logistic) and f.base.args[0] in held)
            for term in factor.args
            for f in sp.Mul.make_args(term)
        ):
            rest = sp.Mul(*factors[:index], *factors[index + 1 :])
            return sp.Add(*(_stable_mul(term * rest) if (term * rest).is_Mul else term * rest for term in factor.args))
    return out


def _stable_log(expression: sp.log) -> sp.Expr:
    argument = expression.args[0]
    base, power = (argument.base, argument.exp) if argument.is_Pow else (argument, sp.S.One)
    if isinstance(base, logistic):  # log σ(u)^k = −k·softplus(−u)
        return -power * softplus(-base.args[0])
    return expression


_RULES: tuple[tuple[type, Callable[[Any], sp.Expr]], ...] = (
    (sp.Add, _stable_add),
    (sp.Mul, _stable_mul),
    (sp.log, _stable_log),
)


# -- erf ----------------------------------------------------------------------------------------

#: The name :func:`erf_array` has inside lambdified code.
_ERF_NAME = "symback_erf"


def erf_array(x: Any) -> np.ndarray:
    """The error function elementwise, in NumPy alone, within about 2 ulps of the true value (relatively).

    NumPy has no erf and SciPy is not a dependency; ``math.erf`` would cost a Python call per
    element.  For ``|x| ≤ 1`` it is ``x·P(x²)`` with ``P`` the Taylor series (18 terms); for
    ``1 < |x| < 6`` it is ``1 − e^{−x²}·g(|x|)`` with ``g = erfc·e^{x²}`` as a Chebyshev series on
    each of two pieces (Clenshaw's recurrence); from 6 on it is ±1 (erfc(6) = 2e-17 < eps/2).  Every
    coefficient comes from ``scripts/make_erf_coefficients.py``; tests/test_accuracy.py checks
    them and the values against 50-digit mpmath.  The result is float64, or the input's float dtype.

    >>> erf_array(np.array([-7.0, 0.0, 1e-300, 0.5, 2.0])).tolist()
    [-1.0, 0.0, 1.1283791670955126e-300, 0.5204998778130465, 0.9953222650189527]
    """
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    x = x.astype(np.float64, copy=False)
    size = np.abs(x)
    out = np.where(size >= 6.0, 1.0, np.nan)  # NaN stays NaN: no piece takes it
    small = size <= 1.0
    if small.any():
        t = size[small]
        u = t * t
        total = np.full_like(u, _ERF_TAYLOR[-1])
        for coefficient in _ERF_TAYLOR[-2::-1]:
            total *= u
            total += coefficient
        out[small] = t * total
    for low, high, coefficients in _ERFC_PIECES:
        piece = (size > low) & (size <= high)
        if not piece.any():
            continue
        t = size[piece]
        s = (2.0 * t - (low + high)) / (high - low)  # in [−1, 1]
        b1 = np.zeros_like(s)
        b2 = np.zeros_like(s)
        for coefficient in coefficients[:0:-1]:  # Clenshaw: b_k = 2s·b_{k+1} − b_{k+2} + c_k
            b1, b2 = 2.0 * s * b1 - b2 + coefficient, b1
        g = s * b1 - b2 + coefficients[0]
        out[piece] = 1.0 - np.exp(-t * t) * g
    out = np.copysign(out, x)
    return out.astype(dtype, copy=False) if out.ndim else dtype.type(out)


_ERF_TAYLOR = (
    1.1283791670955126,
    -0.37612638903183754,
    0.11283791670955126,
    -0.026866170645131252,
    0.005223977625442188,
    -0.0008548327023450853,
    0.00012055332981789664,
    -1.492565035840625e-05,
    1.6462114365889248e-06,
    -1.6365844691234924e-07,
    1.4807192815879218e-08,
    -1.2290555301717928e-09,
    9.422759064650411e-11,
    -6.7113668551641105e-12,
    4.4632242632864775e-13,
    -2.7835162072109215e-14,
    1.6342614095367152e-15,
    -9.063970842808673e-17,
)
_ERFC_PIECES = (
    (1.0, 3.0, (
        0.2785389365977923,
        -0.11964641832736307,
        0.02392588774648554,
        -0.004503974067265867,
        0.0008045451692536015,
        -0.00013720361484011932,
        2.244458275373349e-05,
        -3.535572865202117e-06,
        5.380083091307861e-07,
        -7.92969488788695e-08,
        1.1346142347924916e-08,
        -1.579118251021591e-09,
        2.1413966089607892e-10,
        -2.8336608279151752e-11,
        3.6639154492636035e-12,
        -4.634539763843172e-13,
        5.741110562829963e-14,
        -6.971613081019353e-15,
        8.306159448233415e-16,
        -9.717289575408093e-17,
        1.1170873598248878e-17,
    )),
    (3.0, 6.0, (
        0.12902689965474168,
        -0.0420426781395118,
        0.006698487121092753,
        -0.0010450916791743758,
        0.00015985899884949414,
        -2.3998261587238652e-05,
        3.53906410506357e-06,
        -5.131303200649095e-07,
        7.320268611264974e-08,
        -1.0282193129248155e-08,
        1.4229088707596404e-09,
        -1.9411157958365732e-10,
        2.611796346594898e-11,
        -3.4677962235781513e-12,
        4.5456029570973385e-13,
        -5.884864531875017e-14,
        7.527649782554211e-15,
        -9.51743765070785e-16,
        1.189783691087327e-16,
        -1.4711054785450403e-17,
        1.7996151024795913e-18,
    )),
)


# -- σ' in terms of the output ------------------------------------------------------------------


@lru_cache(maxsize=256)
def derivative_in_output(formula: sp.Expr) -> sp.Expr | None:
    """``σ'`` written as a polynomial in ``a = σ(z)``, or None when SymPy cannot prove one.

    Candidates come from substituting ``a`` for σ(z) in σ'(z) and from solving ``a = σ(z)``
    for ``z``; one is accepted only if it is a polynomial in ``a`` (cheaper than σ' itself)
    and ``p(σ(z)) − σ'(z)`` simplifies to 0.

    >>> derivative_in_output(1 / (1 + sp.exp(-Z)))
    a*(1 - a)
    >>> derivative_in_output(sp.tanh(Z))
    1 - a**2
    >>> derivative_in_output(sp.log(1 + sp.exp(Z))) is None   # 1 − exp(−a): not cheaper than σ'(z)
    True
    """
    if formula.has(sp.Piecewise) or not formula.has(Z):
        return None
    derivative = sp.diff(formula, Z)
    candidates = [derivative.subs(formula, A)]
    # Each symbolic step is budgeted (symback.budget): solve(a = z^1000) alone runs for hours.
    # A step over budget only loses the cheaper form; σ'(z) is then computed from z as it is.
    try:
        solutions = attempt(sp.solve, sp.Eq(A, formula), Z, max_weight=_INVERT_WEIGHT).value or []
    except (NotImplementedError, ValueError, TypeError):  # SymPy cannot invert every formula
        solutions = []
    for solution in solutions:
        try:
            simplified = attempt(sp.simplify, derivative.subs(Z, solution)).value
        except (TypeError, ValueError):
            continue
        if simplified is not None:
            candidates.append(simplified)
    for candidate in candidates:
        if candidate.has(Z) or not candidate.is_polynomial(A):
            continue
        if attempt(sp.simplify, candidate.subs(A, formula) - derivative).value == 0:
            forms = [candidate]
            for transform in (sp.expand, sp.factor):
                form = attempt(transform, candidate).value
                if form is not None:
                    forms.append(form)
            return min(forms, key=_cost_of)
    return None


#: Largest formula (symback.budget.weight) that derivative_in_output tries to invert for z.
_INVERT_WEIGHT = 40


def _cost_of(expression: sp.Expr) -> tuple[int, int]:
    return (sp.count_ops(expression), len(str(expression)))


@lru_cache(maxsize=256)
def _shortest(expression: sp.Expr) -> sp.Expr:
    """The cheapest of an expression, its cancelled and its factored form (all equal)."""
    forms = [expression]
    for transform in (sp.cancel, sp.factor):
        try:
            form = attempt(transform, expression).value  # budgeted: (z+1)^50 factors slowly
        except (sp.PolynomialError, TypeError, ValueError):  # Piecewise and friends
            continue
        if form is not None:
            forms.append(form)
    return min(forms, key=_cost_of)


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # array fields: == would be elementwise, compare the arrays instead
class ForwardPass:
    """``zs[l-1]`` and ``activations[l]`` of shape ``(n_examples, n_l)``; ``activations[0]`` is the input.

    A sigmoid layer also keeps ``complements[l-1] = σ(−z) = 1 − a``, computed without cancellation:
    its σ' is ``a·(1 − a)`` from these two, exact to rounding at saturated units too.

    In the forward pass of :meth:`CompiledNetwork.loss_and_gradient`, ``zs[l-1]`` is None where the
    backward pass does not read it (σ' computed from ``a``): not keeping it saves memory.
    """

    zs: list[np.ndarray]
    activations: list[np.ndarray]
    #: ``σ(−z(l)) = 1 − a(l)`` of each sigmoid layer, exact where ``a`` rounds to 1 (None for the others).
    complements: list[np.ndarray | None] | None = None
    #: ``σ(z(l))`` where it is not ``a(l)`` itself (a residual layer adds its skip source); else None.
    activated: list[np.ndarray | None] | None = None
    #: The compiled network's slot list for this pass (see ``compiler._Program``), None if built by hand.
    slots: list[Any] | None = None

    @property
    def output(self) -> np.ndarray:
        return self.activations[-1]

    def complement(self, index: int) -> np.ndarray | None:
        return None if self.complements is None else self.complements[index]

    def nonlinear(self, index: int) -> np.ndarray:
        """``σ(z)`` of layer ``index + 1``: its activation, less any skip source added to it."""
        if self.activated is not None and self.activated[index] is not None:
            return self.activated[index]
        return self.activations[index + 1]


@dataclass(frozen=True, eq=False)
class Gradients(PackedArrays):
    """``∂C/∂W(l)`` and ``∂C/∂b(l)`` laid out like :class:`~symback.symbolic.parameters.Parameters`.

    Two Gradients are equal when every array is (``np.array_equal``).

    >>> g = Gradients([np.array([[3.0]], dtype=np.float32)], [np.array([4.0], dtype=np.float32)])
    >>> g.norm(), g == Gradients([np.array([[3.0]])], [np.array([4.0])])
    (5.0, True)
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]

    @classmethod
    def zeros_like(cls, params: Parameters) -> Gradients:
        """Zero gradients packed like ``params`` (see :class:`~symback.symbolic.parameters.PackedArrays`), to
        pass as ``out`` to :meth:`CompiledNetwork.loss_and_gradient`; in the parameters' dtype (float64
        for integer ones), which is the gradient's when the data have that dtype too.

        >>> from symback import Network
        >>> params = Parameters.initialize(Network([2, 1], "sigmoid", "mse"))
        >>> Gradients.zeros_like(params).buffer.tolist()
        [0.0, 0.0, 0.0]
        """
        arrays = params.weights + params.biases
        dtype = np.result_type(*arrays)
        return cls._packed([np.shape(a) for a in arrays], dtype if dtype.kind in "fc" else np.float64)

    def as_parameters(self) -> Parameters:
        return Parameters(list(self.weights), list(self.biases))

    def layer_norms(self) -> list[float]:
        """Euclidean norm of each layer's (weights, biases) gradient (no float32 overflow: see :func:`_norm`)."""
        return [_norm((w, b)) for w, b in zip(self.weights, self.biases)]

    def norm(self) -> float:
        """Euclidean norm of the whole gradient (no float32 overflow: see :func:`_norm`)."""
        return _norm(self.parts())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Gradients) or len(self.weights) != len(other.weights):
            return False
        pairs = zip([*self.weights, *self.biases], [*other.weights, *other.biases])
        return all(np.array_equal(a, b) for a, b in pairs)

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside


def _norm(arrays: Sequence[np.ndarray]) -> float:
    """√Σ g² over several arrays, the sum held in float64.

    Each array's Σ g² comes from BLAS in the array's own dtype (a float64 copy of float32 arrays
    would cost more than the step's other bookkeeping together) and is redone in float64 when that
    dtype could not hold it: a float32 sum of squares overflows to inf from entries of about 1.8e19
    (clipping by that norm would zero the gradient), and squares below ~1e-38 underflow to 0.
    Squares too large even for float64 are summed after dividing by the largest entry.
    """
    total = sum(_squares(a) for a in arrays)
    if total == np.inf:
        wide = [np.asarray(a, dtype=np.float64) for a in arrays]
        peak = max(float(np.abs(a).max(initial=0.0)) for a in wide)
        if peak < np.inf:
            return peak * float(np.sqrt(sum(float(np.vdot(a / peak, a / peak)) for a in wide)))
    return float(np.sqrt(total))


def _squares(array: np.ndarray) -> float:
    """Σ g² of one array as a Python (double) float, exact to the array dtype's precision."""
    squares = float(np.vdot(array, array))
    if array.dtype != np.float64:
        low, high = _trusted_squares(array.dtype)
        if not array.size * low <= squares < high:
            wide = np.asarray(array, dtype=np.float64)
            squares = float(np.vdot(wide, wide))
    return squares


@lru_cache(maxsize=8)
def _trusted_squares(dtype: np.dtype) -> tuple[float, float]:
    """A sum of squares in ``dtype`` is trusted below its largest number and from ``size · low`` up,
    where the squares lost to underflow (each under ``tiny``) stay below the sum's precision."""
    info = np.finfo(dtype)
    return float(info.tiny) / float(info.eps), float(info.max)


# -- kernels ------------------------------------------------------------------------------------


class _LayerKernels:
    """σ and σ' of one layer, compiled from the activation's formula and its SymPy derivative.

    σ' is computed where it is exact to rounding: from ``a`` and ``1 − a = σ(−z)`` for a sigmoid
    (both kept by the forward pass), from ``a`` alone where SymPy proves σ' a monomial ``k·aⁿ`` (a
    relative error of ``a`` then grows only n-fold), else from ``z`` by the :func:`stabilize` form of
    the derivative.  A polynomial such as tanh's ``1 − a²`` is not used: where ``a`` rounds to ±1 it
    loses every digit (tanh'(20) = 1.7e-17, not 0).
    """

    #: Whether the forward pass keeps ``σ(−z)`` (a sigmoid layer).
    complement = False

    def __init__(self, activation: Activation) -> None:
        self.activation = activation
        self.derivative_expression: sp.Expr | None = None
        self.output_derivative = None
        if activation.elementwise:
            self.stable_formula = stabilize(activation.formula)
            self.forward = elementwise([Z], self.stable_formula)
            self.complement = self.stable_formula == logistic(Z)
            # σ' of the stable form: equal to activation.derivative, without its overflow.
            self.derivative = elementwise([Z], stabilize(sp.diff(self.stable_formula, Z)))
            self.derivative_expression = derivative_in_output(activation.formula)
            if self.derivative_expression is not None and _is_monomial(self.derivative_expression):
                self.output_derivative = elementwise([A], self.derivative_expression)
        else:
            self.stable_formula = None
            self.forward = _softmax
            self.derivative = None

    def forward_pair(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """σ(z) and, for a sigmoid, σ(−z) (in z's own array: the caller passes a copy to keep z)."""
        if self.complement:
            return logistic_pair(z)
        return self.forward(z), None

    def sigma_prime(self, z: np.ndarray, a: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        """σ'(z): ``a·c`` for a sigmoid (``c = σ(−z)``), from the output ``a`` when a monomial, else from z."""
        if c is not None:
            return a * c
        if self.output_derivative is not None:
            return self.output_derivative(a)
        return self.derivative(z)


def _is_monomial(expression: sp.Expr) -> bool:
    """``k·aⁿ``: its relative error is n times that of ``a``, wherever ``a`` is."""
    return expression.is_polynomial(A) and len(sp.Poly(expression, A).terms()) == 1


@lru_cache(maxsize=128)
def _layer_kernels(activation: Activation) -> _LayerKernels:
    # Kernels hold no state: networks sharing an activation share its compiled kernels.
    return _LayerKernels(activation)


@lru_cache(maxsize=64)
def _delta_with_complement(derivative: sp.Expr) -> sp.Expr | None:
    """δ = ∂C/∂a · σ'(z) of a sigmoid output in ``a = σ(z)``, ``c = σ(−z)`` and ``y``, or None.

    Worked out in z by :func:`stabilize` (``1 − σ(z)`` → σ(−z), quotients cancelled against
    σ' = σ(z)σ(−z)), then written in a and c.  Not simplified further: expanding
    ``−y·c + (1 − y)·a`` would bring back the cancellation of ``a − y`` at y = 1.
    """
    sigma = logistic(Z)
    expression = stabilize(derivative.subs(A, sigma) * sigma * logistic(-Z))
    expression = sp.factor_terms(expression.xreplace({sigma: A, logistic(-Z): COMPLEMENT}))
    return None if expression.has(Z) else expression


@lru_cache(maxsize=64)
def _cost_in_z(term: sp.Expr, formula: sp.Expr) -> sp.Expr:
    """The cost term with a = σ(z) substituted and logs expanded: log σ(z) becomes −softplus(−z)."""
    return stabilize(sp.expand_log(sp.simplify(term.subs(A, formula)), force=True))


def _sharing_subexpressions(
    arguments: Sequence[sp.Symbol],
    expressions: Sequence[sp.Expr],
    alone_arguments: Sequence[Sequence[sp.Symbol]] | None = None,
) -> tuple[Callable[..., list[Any]], list[Callable[..., Any]]]:
    """One kernel computing all ``expressions`` with their common subexpressions once, and one
    kernel for each alone (taking its own ``alone_arguments``, by default ``arguments``) that
    evaluates it by the very same steps (so the same bits)."""
    alone_arguments = alone_arguments or [arguments] * len(expressions)
    replacements, reduced = sp.cse(list(expressions))
    together = lambdify(arguments, list(expressions), cse=lambda _: (replacements, reduced))
    alone = []
    for expression, r, own in zip(expressions, reduced, alone_arguments):
        needed = _needed_replacements(replacements, r)
        alone.append(lambdify(own, expression, cse=lambda _, needed=needed, r=r: (needed, r)))
    return together, alone


def _needed_replacements(replacements: list[tuple[sp.Symbol, sp.Expr]], expression: sp.Expr) -> list[tuple[sp.Symbol, sp.Expr]]:
    """The subexpressions ``expression`` uses, directly or through another, in their order."""
    wanted = set(expression.free_symbols)
    needed = []
    for symbol, value in reversed(replacements):
        if symbol in wanted:
            needed.append((symbol, value))
            wanted |= value.free_symbols
    return needed[::-1]


@lru_cache(maxsize=16)
def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    ones = np.ones(n, dtype=dtype)
    ones.flags.writeable = False
    return ones


def _softmax(z: np.ndarray) -> np.ndarray:
    # Shifting by the row maximum leaves softmax unchanged and keeps exp from overflowing.
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def _log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@lru_cache(maxsize=64)
def _logs_the_output(term: sp.Expr) -> bool:
    """Whether the cost takes the log of something linear in the output (log a, log(1 − a))."""
    return any(
        log.args[0].has(A) and log.args[0].is_polynomial(A) and sp.degree(log.args[0], A) == 1
        for log in term.atoms(sp.log)
    )


@lru_cache(maxsize=64)
def _is_cross_entropy(term: sp.Expr) -> bool:
    """Whether the cost term is −y·log(a), whose softmax Jacobian contracts to a·Σy − y."""
    return sp.simplify(term + Y * sp.log(A)) == 0


class _Program:
    """The lowered kernels of one network: its derived forward formulas, ∇a and δ recursion and
    parameter gradients (:func:`~symback.symbolic.chain.derive_backward`), each through
    :func:`~symback.compile.lowering.lower`, with σ and σ' as the layer's stable kernels (:class:`_LayerKernels`).

    Kernels read one list of arrays per step, a slot for each of the derivation's IndexedBases
    (``a(l)``, ``z(l)``, ``δ(l)``, ``∇a(l)``, ``w(l)``, ``b(l)``) and for each layer's σ(z) and σ(−z):
    slots, not a dict keyed by SymPy objects, so the hot path hashes nothing.
    """

    def __init__(self, compiled: CompiledNetwork) -> None:
        backward = compiled.backward
        im = backward.model
        network = compiled.network
        L = network.depth
        self.depth = L
        # slots: a(0..L) | z(1..L) | w | b | δ | ∇a | σ(z) | σ(−z)
        self.A, self.Z, self.W, self.B = 0, L + 1, 2 * L + 1, 3 * L + 1
        self.DELTA, self.NABLA, self.S, self.C = 4 * L + 1, 5 * L + 1, 6 * L + 1, 7 * L + 1
        self.size = 8 * L + 1
        self.no_deltas = [None] * (self.S - self.DELTA)
        slots: dict[Any, int] = {}
        for l in range(L + 1):
            slots[im.activations[l]] = self.A + l
        for l in range(1, L + 1):
            slots[im.zs[l]] = self.Z + l - 1
            slots[im.weights[l]] = self.W + l - 1
            slots[im.biases[l]] = self.B + l - 1
            slots[backward.delta[l]] = self.DELTA + l - 1
            slots[backward.nabla[l]] = self.NABLA + l - 1
        self.a_bases = [im.activations[l] for l in range(L + 1)]
        batched = frozenset([*self.a_bases, *(im.zs[l] for l in range(1, L + 1)), *backward.delta.values(),
                             *backward.nabla.values(), im.targets])
        stable = lambda arguments, expression: lambdify(arguments, stabilize(expression))  # noqa: E731
        options = {"batched": batched, "elementwise": stable, "key": slots.__getitem__}
        # A first layer that reads its input as a grid (a convolution, a recurrent layer) names its shape.
        self.input_grid: tuple[int, ...] | None = getattr(network.layers[0], "input_grid", None)
        self.z_kernels, self.a_rests = [], []
        # A layer that reads its own output one step back (a recurrent layer) is a scan: the rest of its
        # z for every step at once, then one matrix product per step (symback.compile.lowering_scan).
        self.scans: list[StepProduct | None] = [None] * L
        self.carries: list[StepProduct | None] = [None] * L
        self.slots = slots
        for l in range(1, L + 1):
            z_formula, a_formula = backward.forward[l]
            j = grid_tuple(backward.neuron_index[l])
            if z_formula.has(im.activations[l]):
                split = split_recurrence(z_formula, im.activations[l], j, -1)
                if split is None:
                    raise SpecError(f"layer {l} reads its own output other than one step back: it cannot be compiled")
                z_formula, self.scans[l - 1] = split
            self.z_kernels.append(lower(z_formula, j, **options))
            # a(l) less the activation's own σ(z_j) (or softmax): a skip edge's a(l-back)_j, else nothing
            activation = network.activation(l)
            if activation.elementwise:
                own_term = activation.at(im.zs[l][j])
            else:
                own_term = activation.indexed(im.zs[l], j[0], sp.Idx("d", network.sizes[l]))  # type: ignore[attr-defined]
            rest = a_formula - own_term
            self.a_rests.append(lower(rest, j, **options) if rest != 0 else None)
        # ∇a(l) is overwritten by δ(l) unless a skip edge's recursion reads it after.
        read = set().union(*(e.atoms(sp.IndexedBase) for e in backward.adjoints.values())) if L > 1 else set()
        #: Whether a skip edge into the output layer reads ∇a(L) (then it is kept, and reduced like δ(L)).
        self.reads_output_nabla = backward.nabla[L] in read
        self.adjoint_kernels = []
        for l in range(1, L):
            adjoint, own = backward.adjoints[l], grid_tuple(backward.own_index[l])
            if adjoint.has(backward.delta[l]):  # ∇h(t) reads δ(t + 1) of the same layer: a backward scan
                split = split_recurrence(adjoint, backward.delta[l], own, +1)
                if split is None:
                    raise SpecError(f"layer {l}'s derived ∇a reads its own δ other than one step later: it cannot be compiled")
                adjoint, self.carries[l - 1] = split
            self.adjoint_kernels.append(lower(adjoint, own, **options))
        self.delta_kernels = []
        for l in range(1, L + 1):
            k = grid_tuple(backward.own_index[l])
            known = {}
            activation = network.activation(l)
            if activation.elementwise:
                known[activation.derivative_at(im.zs[l][k])] = _sigma_prime_factor(
                    compiled.layers[l - 1], self.Z + l - 1, self.S + l - 1, self.C + l - 1
                )
            overwritable = () if backward.nabla[l] in read else (backward.nabla[l],)
            self.delta_kernels.append(
                lower(backward.deltas[l], k, known=known, overwritable=overwritable, **options)
            )
        self.weight_kernels, self.bias_kernels = [], []
        for l in range(1, L + 1):
            gradients, indices = backward.gradients[l], backward.parameter_indices[l]
            self.weight_kernels.append(lower(gradients["w"], indices["w"], over_examples=True, **options))
            self.bias_kernels.append(lower(gradients["b"], indices["b"], over_examples=True, **options))
        # The hidden layers' δ recursion and every gradient as two generated functions, each kernel's
        # statements written in (a step at batch 1 is mostly call overhead: one call, not one per kernel).
        namespace: dict[str, Any] = {}
        body: list[str] = []
        for index in range(L - 2, -1, -1):
            if self.carries[index] is not None:  # backpropagation through time, step by step
                namespace[f"scan_back_{index}"] = partial(self.scan_backward, index)
                body += [f"g, d = scan_back_{index}(arrays)", f"arrays[{self.NABLA + index}] = g",
                         f"arrays[{self.DELTA + index}] = d", f"deltas[{index}] = d"]
                continue
            body += self.adjoint_kernels[index].source("g", None, namespace)
            body.append(f"arrays[{self.NABLA + index}] = g")
            body += self.delta_kernels[index].source("d", None, namespace)
            body += [f"arrays[{self.DELTA + index}] = d", f"deltas[{index}] = d"]
        self.run_backward = compile_function("backward", ("arrays", "deltas"), body or ["pass"], namespace)
        body = []
        for index in range(L):
            body += self.weight_kernels[index].source("t", f"weights[{index}]", namespace)
            body += self.bias_kernels[index].source("t", f"biases[{index}]", namespace)
        self.run_gradients = compile_function("gradients", ("arrays", "weights", "biases"), body, namespace)
        body = ["zs = []", "activations = [arrays[0]]", "complements = []", "activated = None"]
        for index, layer in enumerate(compiled.layers):
            body += self.z_kernels[index].source("z", None, namespace)
            body.append("keep = True" if compiled._needs_z[index] else "keep = keep_every_z")
            if self.scans[index] is not None:  # a recurrent layer: step by step
                namespace[f"scan_{index}"] = partial(self.scan_forward, index, layer)
                body += ["keep = True", f"z, a, c = scan_{index}(arrays, z)"]
            elif layer.complement:  # σ(−z) is written over z where z is not kept
                namespace[f"pair_{index}"] = layer.forward_pair
                body.append(f"a, c = pair_{index}(z.copy() if keep else z)")
            else:
                namespace[f"sigma_{index}"] = layer.forward
                body += [f"a = sigma_{index}(z)", "c = None"]
            body.append(f"arrays[{self.S + index}] = a")
            if self.a_rests[index] is not None:  # a skip source: a = σ(z) + a(l-back)
                body += [f"if activated is None: activated = [None] * {L}", f"activated[{index}] = a"]
                body += self.a_rests[index].source("r", None, namespace)
                body.append("a = a + r")
            body += [
                f"arrays[{self.A + index + 1}] = a", f"arrays[{self.C + index}] = c",
                f"if keep: arrays[{self.Z + index}] = z", "zs.append(z if keep else None)",
                "activations.append(a)", "complements.append(c)",
            ]
        body.append("return zs, activations, complements, activated")
        self.run_forward = compile_function("forward", ("arrays", "keep_every_z"), body, namespace)
        # the other paths call the kernels' functions themselves
        self.delta_runs = [kernel.run for kernel in self.delta_kernels]
        self.weight_runs = [kernel.run for kernel in self.weight_kernels]
        self.bias_runs = [kernel.run for kernel in self.bias_kernels]

    def scan_forward(self, index: int, kernels: _LayerKernels, arrays: Sequence[Any], z: np.ndarray) -> tuple:
        """``a[:, t] = σ(z[:, t] + a[:, t − 1] @ Wᵀ)`` step by step, ``z`` (the rest, every step) completed;
        returns ``(z, a, σ(−z) or None)``."""
        step = self.scans[index]
        matrix = step.matrix(arrays, self.slots)
        z = np.array(np.broadcast_to(z, z.shape), copy=True)
        a = np.empty_like(z)
        for t in range(z.shape[1]):
            if t:
                z[:, t] += step(a[:, t - 1], matrix)
            a[:, t] = kernels.forward(z[:, t])
        c = kernels.forward_pair(z.copy())[1] if kernels.complement else None
        return z, a, c

    def scan_backward(self, index: int, arrays: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """``∇h[:, t] = G[:, t] + δ[:, t + 1] @ W`` and ``δ[:, t] = σ'(z[:, t]) ∇h[:, t]``, from the last step back.

        ``G`` is the rest of the derived ∇h (the readers' terms, every step at once); σ' is the layer's
        derived δ kernel applied to ones (δ is linear in ∇a for an elementwise activation).
        """
        carry = self.carries[index]
        matrix = carry.matrix(arrays, self.slots)
        nabla = np.array(self.adjoint_kernels[index](arrays), copy=True)
        probe = list(arrays)
        probe[self.NABLA + index] = np.ones_like(nabla)
        slope = self.delta_kernels[index](probe)
        delta = np.empty_like(nabla)
        for t in range(nabla.shape[1] - 1, -1, -1):
            if t + 1 < nabla.shape[1]:
                nabla[:, t] += carry(delta[:, t + 1], matrix)
            delta[:, t] = slope[:, t] * nabla[:, t]
        return nabla, delta

    def input_view(self, X: np.ndarray) -> np.ndarray:
        """The input as the first layer reads it: ``(n, channels, rows, columns)`` for a convolution."""
        return X if self.input_grid is None else X.reshape(len(X), *self.input_grid)

    def arrays(self, params: Parameters, X: np.ndarray) -> list[Any]:
        """A fresh slot list holding the input and the parameters."""
        arrays: list[Any] = [None] * self.size
        arrays[self.A] = X
        L = self.depth
        arrays[self.W : self.W + L] = params.weights
        arrays[self.B : self.B + L] = params.biases
        return arrays

    def backward_arrays(self, forward: ForwardPass, params: Parameters | None = None) -> list[Any]:
        """The slot list of ``forward`` (its own from :meth:`CompiledNetwork.forward`, else one filled
        from its arrays), with ``params`` in the parameter slots."""
        L = self.depth
        arrays = forward.slots
        if arrays is None or len(arrays) != self.size:
            arrays = [None] * self.size
            arrays[self.A : self.A + L + 1] = forward.activations
            arrays[self.Z : self.Z + L] = forward.zs
            arrays[self.S : self.S + L] = [forward.nonlinear(index) for index in range(L)]
            arrays[self.C : self.C + L] = forward.complements if forward.complements is not None else [None] * L
        if params is not None:
            arrays[self.W : self.W + L] = params.weights
            arrays[self.B : self.B + L] = params.biases
        return arrays


def _sigma_prime_factor(kernels: _LayerKernels, z_slot: int, s_slot: int, c_slot: int) -> KnownFactor:
    """σ'(z) of one layer as the lowering's known factor: ``·σ(z)·σ(−z)`` in place for a sigmoid, from
    σ(z) where σ' is a monomial in it, else the stable form in z (see :class:`_LayerKernels`)."""

    def value(arrays: Sequence[Any]) -> np.ndarray:
        return kernels.sigma_prime(arrays[z_slot], arrays[s_slot], arrays[c_slot])

    def scale(arrays: Sequence[Any], target: np.ndarray) -> np.ndarray:
        c = arrays[c_slot]
        if c is not None:  # σ' = a·c, multiplied in place: no temporary
            target *= arrays[s_slot]
            target *= c
            return target
        target *= kernels.sigma_prime(arrays[z_slot], arrays[s_slot])
        return target

    def source(target: str, namespace: dict) -> list[str]:
        namespace[f"scale_{s_slot}"] = scale
        return [
            f"c_ = arrays[{c_slot}]",
            "if c_ is not None:",  # σ' = a·c, multiplied in place
            f"    {target} *= arrays[{s_slot}]",
            f"    {target} *= c_",
            "else:",
            f"    {target} = scale_{s_slot}(arrays, {target})",
        ]

    factor = KnownFactor(value, scale, source)
    return factor


class CompiledNetwork:
    """Forward pass, cost and gradient of a network, from its derived SymPy objects.

    Compiled from the same SymPy objects a :class:`~symback.render.derivation.Derivation` shows: every
    elementwise σ and σ' (after the identity-preserving :func:`stabilize` rewrites and the σ'-in-``a``
    form), the cost term and ``∂C/∂a``, and the fused output ``δ = ∂C/∂a · σ'`` of an elementwise
    output layer.  The forward formulas, the δ recursion and every parameter gradient are derived by
    :func:`~symback.symbolic.chain.derive_backward` from the layers' own formulas and lowered by
    :mod:`symback.compile.lowering` (``A @ Wᵀ + b``, ``δ @ W``, ``δᵀ @ A``, ``ones @ δ``; the softmax
    Jacobian as derived, ``a_k g_k − a_k Σ_j a_j g_j``): no backward pass is written here.  Three
    numeric rules are written by hand, because a softmax couples its neurons: its forward pass (shifted
    by the row maximum), log-softmax (for a cost that takes ``log a``), and the fused softmax +
    cross-entropy ``δ = a·Σy − y``; tests/test_compiler.py checks each equal to the form SymPy derives
    from :meth:`~symback.symbolic.activations.Softmax.layer`.
    ``dtype`` follows the arrays passed in: float32 parameters and data give float32 throughout.
    """

    def __init__(self, network: Network) -> None:
        self.network = network
        self.layers = [_layer_kernels(activation) for activation in network.activations]
        cost = network.cost
        output = self.layers[-1]
        self._mean_outputs = cost.output_reduction == "mean"
        self._mean_examples = cost.example_reduction == "mean"
        stable_term = stabilize(cost.term)
        self.cost_derivative = elementwise([A, Y], cost.derivative)
        # A residual output a(L) = σ(z) + a(L-back) is not σ(z): the forms in σ(z) below do not apply to it.
        plain_output = len(network.layers[-1].sources) == 1
        # A cost with a log of the output is evaluated in z, where log σ(z) / log softmax(z) are stable.
        self._cost_in_z = None
        self._cost_in_log_a = None
        #: The cost term in the output layer's z and y where it is evaluated so (None otherwise).
        self.terms_in_z: sp.Expr | None = None
        if plain_output and _logs_the_output(cost.term):
            if output.activation.elementwise:
                self.terms_in_z = _cost_in_z(cost.term, output.activation.formula)
                self._cost_in_z = elementwise([Z, Y], self.terms_in_z)
            else:
                term = cost.term.subs(sp.log(A), LOG_A)
                self._cost_in_log_a = lambdify([A, LOG_A, Y], term)
        # δ(L) = ∂C/∂a · σ' as one expression: in a and c = 1 − a = σ(−z) for a sigmoid output (binary
        # cross-entropy's cancels to −y·c + (1 − y)·a, exact where a rounds to 1), in a where σ' is a
        # monomial in a.
        self.output_delta_expression: sp.Expr | None = None
        self._softmax_cross_entropy = not output.activation.elementwise and _is_cross_entropy(cost.term)
        delta_arguments = [A, COMPLEMENT, Y] if output.complement else [A, Y]
        if not plain_output:
            pass
        elif output.complement:
            self.output_delta_expression = _delta_with_complement(cost.derivative)
        elif output.output_derivative is not None:
            self.output_delta_expression = _shortest(cost.derivative * output.derivative_expression)
        # The cost terms and δ(L) of a training step as one kernel, their common subexpressions
        # (a − y for squared error) computed once; the cost and δ(L) alone share its arithmetic, bit
        # for bit.  Only where both are plain arrays in a.
        self._terms_and_delta = None
        fusable = [stable_term, self.output_delta_expression]
        if self._cost_in_z is None and self._cost_in_log_a is None and all(
            expression is not None and expression.has(A) and not expression.has(sp.Piecewise) for expression in fusable
        ):
            self._terms_and_delta, (self.cost_term, self._output_delta) = _sharing_subexpressions(
                delta_arguments, fusable, [[A, Y], delta_arguments]
            )
        else:
            self.cost_term = elementwise([A, Y], stable_term)
            self._output_delta = (
                elementwise(delta_arguments, self.output_delta_expression)
                if self.output_delta_expression is not None
                else None
            )
        self._masks = self._frozen_masks()
        #: The tied parameters' entries (None when nothing is tied): their gradients are summed.
        self.ties = Ties(network) if network.ties else None
        # z(l) is read after the forward pass only where σ' is computed from it, or the cost is evaluated in z.
        self._needs_z = [
            layer.derivative is not None and layer.output_derivative is None and not layer.complement
            for layer in self.layers
        ]
        if self._cost_in_z is not None or self._cost_in_log_a is not None:
            self._needs_z[-1] = True
        #: The derived backward pass (symback.symbolic.chain) and its lowered kernels (symback.compile.lowering).
        self.backward = derive_backward(network)
        self.program = _Program(self)

    def _frozen_masks(self) -> list[tuple[np.ndarray | None, np.ndarray | None]] | None:
        if not self.network.frozen:
            return None
        weights, biases = self.network.trainable_masks()
        # None where a layer is fully trainable, so the hot path multiplies only where it must.
        return [
            (None if w.all() else w.astype(float), None if b.all() else b.astype(float))
            for w, b in zip(weights, biases)
        ]

    # -- forward ----------------------------------------------------------------------------

    def forward(self, params: Parameters, X: np.ndarray) -> ForwardPass:
        return self._forward(params, X, True)

    def _forward(self, params: Parameters, X: np.ndarray, keep_every_z: bool) -> ForwardPass:
        # z(l) by its lowered formula (A @ Wᵀ, then + b in place); σ by the layer's stable kernels; a skip
        # source added by the lowered rest of a(l)'s formula: one generated function (see _Program).
        # Every array also goes in its slot, which the backward pass reads.
        program = self.program
        arrays = [None] * program.size
        arrays[0] = program.input_view(X)
        arrays[program.W : program.B] = params.weights
        arrays[program.B : program.DELTA] = params.biases
        zs, activations, complements, activated = self.program.run_forward(arrays, keep_every_z)
        return ForwardPass(zs, activations, complements, activated, arrays)

    def predict(self, params: Parameters, X: np.ndarray) -> np.ndarray:
        return self.forward(params, X).output

    def example_costs(self, params: Parameters, data: Dataset, forward: ForwardPass | None = None) -> np.ndarray:
        """``C_i`` for every example ``i`` (before the reduction over examples)."""
        forward = forward or self.forward(params, data.X)
        return self._example_costs(forward, data.Y)

    def _terms(self, forward: ForwardPass, Y_: np.ndarray) -> np.ndarray:
        return self.terms_of(forward.zs[-1], forward.output, Y_)

    def terms_of(self, z: np.ndarray | None, a: np.ndarray, Y_: np.ndarray) -> np.ndarray:
        """The cost term of every (example, output) from the output layer's ``z`` and ``a``, by its
        stable form where there is one (in ``z`` for a cost that takes ``log a``: ``z`` may be None
        only for the others)."""
        if self._cost_in_z is not None:
            return self._cost_in_z(z, Y_)
        if self._cost_in_log_a is not None:
            return np.broadcast_to(self._cost_in_log_a(a, _log_softmax(z), Y_), a.shape)
        return self.cost_term(a, Y_)

    def _example_costs(self, forward: ForwardPass, Y_: np.ndarray) -> np.ndarray:
        terms = self._terms(forward, Y_.astype(forward.output.dtype, copy=False))
        total = terms.sum(axis=1)
        return total / terms.shape[1] if self._mean_outputs else total

    def cost(self, params: Parameters, data: Dataset, forward: ForwardPass | None = None) -> float:
        return float(self._reduce(self.example_costs(params, data, forward)))

    def output_gradient(self, forward: ForwardPass, Y: np.ndarray) -> np.ndarray:
        """``∂C_i/∂a(L)_j`` for every example: the compiled SymPy derivative of the cost term."""
        grad = self.cost_derivative(forward.output, Y.astype(forward.output.dtype, copy=False))
        if self._mean_outputs:
            grad = grad / grad.shape[1]
        return grad

    # -- backward ---------------------------------------------------------------------------

    def _output_delta_of(self, forward: ForwardPass, Y_: np.ndarray, arrays: list[Any] | None = None) -> np.ndarray:
        """δ(L) per example, by the fused kernel where there is one, before any mean over outputs."""
        out = forward.output
        Y_ = Y_.astype(out.dtype, copy=False)
        if self._output_delta is not None:
            if self.layers[-1].complement:
                return self._output_delta(out, forward.complement(-1), Y_)
            return self._output_delta(out, Y_)
        if self._softmax_cross_entropy:
            # Σ_j (−y_j/a_j)·a_j(δ_ij − a_i) = a_i·Σy − y_i: no division by a probability that may be 0.
            delta = out * Y_.sum(axis=1, keepdims=True)
            delta -= Y_
            return delta
        return self.derived_output_delta(forward, self.cost_derivative(out, Y_), arrays)

    def derived_output_delta(self, forward: ForwardPass, grad_a: np.ndarray, arrays: list[Any] | None = None) -> np.ndarray:
        """δ(L) from ``∇a(L) = ∂C/∂a(L)`` by the derived, lowered Jacobian of the output layer (σ'(z)
        elementwise; ``a_k g_k − a_k Σ_j a_j g_j`` for softmax): the path of every output that has no
        fused kernel.  ``∇a(L)`` stays in its slot of ``arrays`` (a skip edge into the output reads it)."""
        program = self.program
        if arrays is None:
            arrays = program.backward_arrays(forward)
        arrays[program.NABLA + len(self.layers) - 1] = grad_a
        return program.delta_runs[-1](arrays)

    def deltas(self, params: Parameters, data: Dataset, forward: ForwardPass | None = None) -> list[np.ndarray]:
        """``δ(l) = ∂C_i/∂z(l)`` per example (rows), by BP1 and BP2, before the reduction over examples."""
        forward = forward or self.forward(params, data.X)
        return self._deltas(params, forward, data.Y, 1.0)

    def _deltas(
        self,
        params: Parameters,
        forward: ForwardPass,
        Y_: np.ndarray,
        scale: float,
        output_delta: np.ndarray | None = None,
        arrays: list[Any] | None = None,
    ) -> list[np.ndarray]:
        L = len(self.layers)
        program = self.program
        if arrays is None:
            arrays = program.backward_arrays(forward, params)
        delta = self._output_delta_of(forward, Y_, arrays) if output_delta is None else output_delta
        if self._mean_outputs:
            scale /= forward.output.shape[1]
        if program.reads_output_nabla and scale != 1.0:  # the highway from a skip into the output, reduced like δ(L)
            arrays[program.NABLA + L - 1] = arrays[program.NABLA + L - 1] * scale
        # The reductions (mean over outputs, over examples) applied once, to δ(L), rather than to every gradient.
        shared = delta is forward.output or delta is Y_ or not delta.flags.writeable
        if scale != 1.0:
            delta = delta * scale if shared else np.multiply(delta, scale, out=delta)
        elif shared:
            delta = delta.copy()  # the caller gets arrays of its own
        arrays[program.DELTA + L - 1] = delta
        deltas: list[np.ndarray] = [None] * L  # type: ignore[list-item]
        deltas[-1] = delta
        # The derived recursion, lowered (symback.compile.lowering): ∇a(l) = δ(l+1) @ W(l+1) (+ ∇a of a skip's
        # end), then δ(l) = ∇a(l) ⊙ σ'(z(l)), in place where nothing else reads ∇a(l).
        program.run_backward(arrays, deltas)
        return deltas

    def gradient(
        self, params: Parameters, data: Dataset, *, forward: ForwardPass | None = None, respect_frozen: bool = True
    ) -> Gradients:
        """``∂C/∂w`` and ``∂C/∂b`` for every parameter (BP3, BP4), reduced over the examples.

        Frozen parameters get a zero gradient unless ``respect_frozen`` is false.
        """
        forward = forward or self.forward(params, data.X)
        return self._gradient(params, forward, data.Y, respect_frozen)

    def loss_and_gradient(
        self, params: Parameters, X: np.ndarray, Y_: np.ndarray, *, out: Gradients | None = None
    ) -> tuple[float, Gradients, ForwardPass]:
        """One training step's numbers: the cost, its gradient and the forward pass, from one forward pass.

        ``out``, like NumPy's, is a :class:`Gradients` shaped like ``params`` (see
        :meth:`Gradients.zeros_like`) that receives the gradient and is returned: a training loop
        then allocates no gradient arrays, and the optimizer can update a packed one in a single pass.
        The forward pass keeps only the ``z`` the backward pass reads (see :class:`ForwardPass`).
        """
        forward = self._forward(params, X, False)
        output = forward.output
        Y_ = Y_.astype(output.dtype, copy=False)
        delta = None
        if self._terms_and_delta is not None:
            if self.layers[-1].complement:
                terms, delta = self._terms_and_delta(output, forward.complement(-1), Y_)
            else:
                terms, delta = self._terms_and_delta(output, Y_)
        else:
            terms = self._terms(forward, Y_)
        loss = self._sum_terms(terms, output.shape)  # first: δ(L) may be the terms' own array, scaled in place next
        return loss, self._gradient(params, forward, Y_, True, out, delta), forward

    def _sum_terms(self, terms: np.ndarray, shape: tuple[int, int]) -> float:
        # One reduction over the whole (examples × outputs) array instead of two.
        divisor = (shape[1] if self._mean_outputs else 1) * (shape[0] if self._mean_examples else 1)
        return float(terms.sum()) / divisor

    def _gradient(
        self,
        params: Parameters,
        forward: ForwardPass,
        Y_: np.ndarray,
        respect_frozen: bool,
        out: Gradients | None = None,
        output_delta: np.ndarray | None = None,
    ) -> Gradients:
        scale = 1.0 / forward.output.shape[0] if self._mean_examples else 1.0
        program = self.program
        arrays = program.backward_arrays(forward, params)
        deltas = self._deltas(params, forward, Y_, scale, output_delta, arrays)  # each δ in its slot too
        # ∂C/∂W(l) and ∂C/∂b(l) as derived, summed over the examples by the lowering: Dᵀ @ A and ones @ D
        # (one BLAS call each, into the packed buffer when there is one).
        if out is None:
            out = Gradients([run(arrays) for run in program.weight_runs], [run(arrays) for run in program.bias_runs])
        else:
            program.run_gradients(arrays, out.weights, out.biases)
        # The δ and ∇a slots let go: a ForwardPass the caller keeps would otherwise keep every δ alive.
        arrays[program.DELTA : program.S] = program.no_deltas
        if self.ties is not None:
            self.ties.sum_gradients(out)
        if respect_frozen and self._masks is not None:
            for index, (w_mask, b_mask) in enumerate(self._masks):
                if w_mask is not None:
                    out.weights[index] *= w_mask
                if b_mask is not None:
                    out.biases[index] *= b_mask
        return out

    def _reduce(self, per_example: np.ndarray) -> np.ndarray:
        if self._mean_examples:
            return per_example.mean(axis=0)
        return per_example.sum(axis=0)


class Ties:
    """The entries of a network's tied parameters, and the gradient of each tied parameter.

    A tied parameter (one user name given to several weights or biases) keeps a copy in each of its
    entries, so the forward pass, packed buffers and saved files stay as they are.  Its derivative is
    the sum of its entries' partials; :meth:`sum_gradients` writes that sum into every entry, so
    each entry takes the same step under any elementwise optimizer (SGD, momentum, RMSprop, Adam)
    and the entries, and the optimizer's state for them, stay equal.  Only gathers and scatters of
    the tied entries, one pair per weight or bias array: no loop per entry.

    >>> from symback import Network
    >>> net = Network([1, 2, 1], names={"b(1)_0": "b1", "b(1)_1": "b1"})
    >>> g = Gradients([np.zeros((2, 1)), np.zeros((1, 2))], [np.array([0.25, 0.5]), np.array([1.0])])
    >>> Ties(net).sum_gradients(g); g.biases[0].tolist()
    [0.75, 0.75]
    """

    def __init__(self, network: Network) -> None:
        L = network.depth
        entries: dict[int, list[tuple[tuple[int, ...], int]]] = {}
        for group, members in enumerate(network.ties.values()):
            for ref in members:
                array = ref.layer - 1 if ref.kind == "w" else L + ref.layer - 1  # weights, then biases
                entries.setdefault(array, []).append(((ref.j, ref.k) if ref.kind == "w" else (ref.j,), group))
        self.n_groups = len(network.ties)
        self.sizes = np.array([len(members) for members in network.ties.values()], dtype=np.intp)
        #: Per array holding tied entries: (its index in weights + biases, the entries' indices, their groups).
        self.entries = [
            (array, tuple(np.array(axis, dtype=np.intp) for axis in zip(*(index for index, _ in found))),
             np.array([group for _, group in found], dtype=np.intp))
            for array, found in sorted(entries.items())
        ]

    def sums(self, gradients: PackedArrays) -> np.ndarray:
        """Each tied parameter's derivative: the sum of its entries' partials (in float64)."""
        arrays = gradients.weights + gradients.biases
        total = np.zeros(self.n_groups)
        for array, index, groups in self.entries:
            total += np.bincount(groups, weights=arrays[array][index], minlength=self.n_groups)
        return total

    def sum_gradients(self, gradients: PackedArrays) -> None:
        """Replace every tied entry's partial, in place, by its parameter's derivative (the sum)."""
        total = self.sums(gradients)
        arrays = gradients.weights + gradients.biases
        for array, index, groups in self.entries:
            arrays[array][index] = total[groups]

    def norm(self, gradients: PackedArrays) -> float:
        """The Euclidean norm over the free parameters of a gradient made by :meth:`sum_gradients`: each
        tied parameter counted once (the arrays hold its derivative once per entry)."""
        total = self.sums(gradients) / self.sizes  # each entry holds the sum already
        squares = gradients.norm() ** 2 - float(np.dot((self.sizes - 1) * total, total))
        return float(np.sqrt(max(squares, 0.0)))


@lru_cache(maxsize=32)
def compile_network(network: Network) -> CompiledNetwork:
    """The network's kernels, compiled once per network (a Network is immutable and hashed by identity)."""
    return CompiledNetwork(network)
