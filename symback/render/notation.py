"""Notation objects: the presentation forms of a derivation, as SymPy nodes that print themselves.

Each class here is a small unevaluated SymPy expression with one idea and its own printing
(``_symback_latex`` for :func:`symback.render.latex.latex`, ``_symback_mathml`` for
:func:`symback.render.latex.mathml`, ``_symback_text`` for :func:`text`, and SymPy's own
``_latex``/``_sympystr``), so every output — PDF, HTML, Markdown, terminal, JSON, Jupyter —
shows the same form:

* :class:`Partial` ``∂C/∂a(L)``; :class:`Product` an ordered product (:class:`ChainProduct` with ·);
  :class:`Difference` ``a(L) − y`` in the cost's own order;
* :class:`FunctionPrime` ``σ′(z(L))`` (a layer's derivative, named by its function);
  :class:`FunctionOf` ``σ(z)`` (softplus′ = σ);
* :class:`Delta` ``δ(L)_j = ∂C/∂z(L)_j``, named after the weighted input it belongs to.

Which form is shown is decided by rules that SymPy proves (:func:`cost_form`,
:func:`activation_forms`, :func:`step_form` for ReLU′ = H(z)), never typed in.  :func:`present` gives a
derivation's whole :class:`Presentation`; :func:`examples_form` its sum over the examples in seed 002's
form (Σ_i −2(observed_i − predicted_i) · 1 = −2(residual_1 + …)); :func:`expanded_form` the derivative
written out in the inputs.  :func:`plain` turns the ordered nodes back into SymPy arithmetic for algebra.
verify and the reports import these objects too.

>>> import sympy as sp
>>> a, y, z = sp.Symbol("a(L)"), sp.Symbol("y"), sp.Symbol("z(L)")
>>> text(cost_form(2 * a - 2 * y, (a - y) ** 2, a))
'2(a(L) − y)'
>>> from symback.render.latex import latex
>>> latex(Product(sp.Symbol("a(L-1)"), FunctionPrime("sigma", z), cost_form(2 * a - 2 * y, (a - y) ** 2, a)))
"a^{(L-1)} \\\\sigma'\\\\left(z^{(L)}\\\\right) 2 \\\\left(a^{(L)} - y\\\\right)"
>>> text(Delta(z)), latex(Delta(sp.Symbol("z(L-1)_0")))
('δ(L)', '\\\\delta^{(L-1)}_{0}')
"""

from __future__ import annotations

import cmath
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from ..budget import attempt

__all__ = [
    "Alongside",
    "ChainProduct",
    "Delta",
    "Difference",
    "FunctionOf",
    "FunctionPrime",
    "Partial",
    "PRIME_NAMES",
    "Product",
    "SymbackTextPrinter",
    "activation_forms",
    "cost_form",
    "examples_form",
    "plain",
    "expanded_form",
    "prime_name",
    "text",
]

MINUS = "\u2212"


# -- the nodes ----------------------------------------------------------------------------------------


class Partial(sp.Expr):
    """``∂of/∂wrt`` as notation (not evaluated): ``Partial(C, a)`` prints ``\\frac{\\partial C}{\\partial a}``.

    >>> text(Partial(sp.Symbol("C"), sp.Symbol("a(L)")))
    '∂C/∂a(L)'
    """

    is_commutative = False  # keeps the chain's factors in the order they were given

    @property
    def of(self) -> sp.Expr:
        return self.args[0]

    @property
    def wrt(self) -> sp.Expr:
        return self.args[1]

    def _symback_latex(self, printer: Any) -> str:
        return r"\frac{\partial %s}{\partial %s}" % (printer._print(self.of), printer._print(self.wrt))

    _latex = _symback_latex

    def _symback_mathml(self, printer: Any) -> Any:
        return printer._el(
            "mfrac",
            printer._row(printer._el("mo", "∂"), printer._print(self.of)),
            printer._row(printer._el("mo", "∂"), printer._print(self.wrt)),
        )

    def _symback_text(self, printer: Any) -> str:
        return f"∂{printer._print(self.of)}/∂{printer._print(self.wrt)}"

    _sympystr = _symback_text


class Product(sp.Expr):
    """An ordered product written as a textbook does, ``a(L-1) σ′(z(L)) 2(a(L) − y)`` (SymPy's ``Mul``
    would reorder it); a number after another factor gets a ``·`` (x · 2, not x2).

    >>> text(Product(sp.Symbol("x"), FunctionPrime("sigma", sp.Symbol("z")), sp.Integer(2)))
    'x σ′(z) · 2'
    """

    precedence = PRECEDENCE["Mul"]
    _dot = False

    def _separator(self, position: int) -> bool:
        return self._dot or self.args[position].is_Number

    def _needs_parentheses(self, position: int) -> bool:
        factor = self.args[position]
        if position == 0 and factor.is_Mul:
            return False  # −2(o − p) · 1: a leading product keeps its sign outside
        # A sum, or a signed factor after another one (x (−2)(o − p), never x −2(o − p)).
        return precedence(factor) < PRECEDENCE["Mul"] or (position > 0 and factor.could_extract_minus_sign())

    def _factor(self, printer: Any, position: int, wrap: Any) -> Any:
        printed = printer._print(self.args[position])
        return wrap(printed) if self._needs_parentheses(position) else printed

    def _symback_latex(self, printer: Any) -> str:
        out = ""
        for position in range(len(self.args)):
            if position:
                out += r" \cdot " if self._separator(position) else " "
            out += self._factor(printer, position, lambda p: r"\left(%s\right)" % p)
        return out

    _latex = _symback_latex

    def could_extract_minus_sign(self) -> bool:
        # A sum prints a term that can give up its sign as "− term": "+ −a₀a₁(…)" becomes "− a₀a₁(…)".
        return bool(self.args) and self.args[0].could_extract_minus_sign()

    def __neg__(self) -> sp.Expr:
        if self.could_extract_minus_sign():
            return type(self)(-self.args[0], *self.args[1:])
        return super().__neg__()

    def _symback_mathml(self, printer: Any) -> Any:
        row = printer._row()
        for position in range(len(self.args)):
            if position:
                row.appendChild(printer._el("mo", "·" if self._separator(position) else "\u2062"))
            row.appendChild(self._factor(printer, position, lambda p: printer._row(
                printer._l_paren(), p, printer._r_paren())))
        return row

    def _symback_text(self, printer: Any) -> str:
        out = ""
        for position in range(len(self.args)):
            if position:
                out += " · " if self._separator(position) else " "
            out += self._factor(printer, position, lambda p: f"({p})")
        return out

    _sympystr = _symback_text


class ChainProduct(Product):
    """The chain rule's ordered product of partials, ``∂C/∂a · ∂a/∂z · ∂z/∂w`` (always with ·).

    >>> text(ChainProduct(sp.Symbol("x"), sp.Symbol("y")))
    'x · y'
    """

    _dot = True


class Difference(sp.Expr):
    """``a − b`` in this order (SymPy's ``Add`` would reorder it: seed 002's observed − predicted).

    >>> text(Difference(sp.Symbol("observed"), sp.Symbol("predicted")))
    'observed − predicted'
    """

    precedence = PRECEDENCE["Add"]
    is_commutative = True

    def _symback_latex(self, printer: Any) -> str:
        return "%s - %s" % (printer._print(self.args[0]), printer.parenthesize(self.args[1], PRECEDENCE["Add"] + 1))

    _latex = _symback_latex

    def _symback_mathml(self, printer: Any) -> Any:
        return printer._row(printer._print(self.args[0]), printer._el("mo", "−"),
                            printer.parenthesize(self.args[1], PRECEDENCE["Add"] + 1))

    def _symback_text(self, printer: Any) -> str:
        return f"{printer._print(self.args[0])} {MINUS} {printer.parenthesize(self.args[1], PRECEDENCE['Add'] + 1)}"

    _sympystr = _symback_text


#: How a layer's derivative is named: activation registry name -> the function's symbol (f′ otherwise).
PRIME_NAMES = {"sigmoid": "sigma", "tanh": "tanh", "relu": "ReLU", "leaky_relu": "LeakyReLU", "softplus": "softplus",
               "elu": "ELU", "silu": "SiLU", "identity": "id"}
_LATEX_FUNCTIONS = {"sigma": r"\sigma", "tanh": r"\tanh"}
_TEXT_FUNCTIONS = {"sigma": "σ"}


def prime_name(activation: Any) -> str:
    """The symbol a layer's derivative is written with: ``sigma`` for sigmoid, ``f`` for a user formula.

    >>> from symback.symbolic.activations import get_activation
    >>> prime_name(get_activation("sigmoid")), prime_name(get_activation({"formula": "z^3"}))
    ('sigma', 'f')
    """
    from ..symbolic.activations import ACTIVATIONS

    if activation.name in PRIME_NAMES and activation.name in ACTIVATIONS:
        return PRIME_NAMES[activation.name]
    return "f"


class _Applied(sp.Expr):
    """``name(arg)``; the name is a plain string, printed from a small table (never parsed)."""

    is_commutative = True  # a number-valued function: −y/σ(z) is a fraction, as for any other factor
    _prime = ""

    def __new__(cls, name: str | sp.Symbol, arg: sp.Expr) -> _Applied:
        # SymPy rebuilds nodes as func(*args) (xreplace, simplify): the name then arrives as its Symbol.
        return super().__new__(cls, sp.Symbol(name) if isinstance(name, str) else name, sp.sympify(arg))

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def arg(self) -> sp.Expr:
        return self.args[1]

    def _head_latex(self) -> str:
        head = _LATEX_FUNCTIONS.get(self.name, r"\mathrm{%s}" % self.name if len(self.name) > 1 else self.name)
        return head + ("'" if self._prime else "")

    def _symback_latex(self, printer: Any) -> str:
        return r"%s\left(%s\right)" % (self._head_latex(), printer._print(self.arg))

    _latex = _symback_latex

    def _symback_mathml(self, printer: Any) -> Any:
        from sympy.printing.pretty.pretty_symbology import greek_unicode

        name = greek_unicode.get(self.name, self.name)
        head = printer._el("mi", name)
        if len(name) > 1:
            head.setAttribute("mathvariant", "normal")
        if self._prime:
            head = printer._el("msup", head, printer._el("mo", "′"))
        open_, close = printer._el("mo", "("), printer._el("mo", ")")
        for fence in (open_, close):
            fence.setAttribute("stretchy", "false")
        return printer._row(head, open_, printer._print(self.arg), close)

    def _symback_text(self, printer: Any) -> str:
        return f"{_TEXT_FUNCTIONS.get(self.name, self.name)}{self._prime}({printer._print(self.arg)})"

    _sympystr = _symback_text


class FunctionPrime(_Applied):
    """A layer's derivative named by its function: ``FunctionPrime("sigma", z)`` is ``σ′(z)``.

    >>> text(FunctionPrime("tanh", sp.Symbol("z(1)_0")))
    'tanh′(z(1)_0)'
    """

    _prime = "′"


class FunctionOf(_Applied):
    """A named function applied: ``FunctionOf("sigma", z)`` is ``σ(z)`` (softplus′(z) = σ(z))."""


class Delta(sp.Expr):
    """``δ = ∂C/∂z`` for one weighted input ``z``: printed with z's own layer and index (δ(L)_j).

    >>> text(Delta(sp.Symbol("z(L)_1")))
    'δ(L)_1'
    """

    is_commutative = True

    @property
    def z(self) -> sp.Expr:
        return self.args[0]

    def _name(self) -> str | None:
        """``delta(L)_1`` for ``z(L)_1``: the same scripts, base δ (None when z has a user name)."""
        z = self.z
        base = z.base.label if isinstance(z, sp.Indexed) else z
        name = getattr(base, "name", str(base))
        return "delta" + name[1:] if name.startswith("z(") else None

    def _renamed(self) -> sp.Expr:
        name = self._name()
        if name is None:
            return sp.Symbol("delta_" + str(self.z))
        if isinstance(self.z, sp.Indexed):
            return sp.IndexedBase(name)[self.z.indices]
        return sp.Symbol(name)

    def _symback_latex(self, printer: Any) -> str:
        if self._name() is None:
            return r"\delta_{%s}" % printer._print(self.z)
        return printer._print(self._renamed())

    _latex = _symback_latex

    def _symback_mathml(self, printer: Any) -> Any:
        if self._name() is None:
            return printer._el("msub", printer._el("mi", "δ"), printer._print(self.z))
        return printer._print(self._renamed())

    def _symback_text(self, printer: Any) -> str:
        if self._name() is None:
            return f"δ_{printer._print(self.z)}"
        return "δ" + printer._print(self._renamed())[len("delta"):]

    _sympystr = _symback_text


# -- terminal text ---------------------------------------------------------------------------------------


class SymbackTextPrinter(StrPrinter):
    """Plain text in the reports' forms: ``2(a(L) − y)``, ``a(L-1) σ′(z(L))``, − as U+2212.

    >>> text(-sp.Symbol("x") + 2 * sp.Symbol("y") * sp.Symbol("x"))
    '2·x·y − x'
    """

    printmethod = "_symback_text"

    def _print_Add(self, expr: sp.Add, order: Any = None) -> str:
        terms = self._as_ordered_terms(expr, order=order)
        prec = precedence(expr)
        pieces: list[str] = []
        for term in terms:
            printed = self._print(term)
            sign = "+"
            if printed.startswith(MINUS) and not term.is_Add:
                sign, printed = MINUS, printed[1:]
            if precedence(term) < prec or term.is_Add:
                printed = f"({printed})"
            pieces.extend([sign, printed])
        first = pieces.pop(0)
        return ("" if first == "+" else MINUS) + " ".join(pieces)

    def _print_Mul(self, expr: sp.Mul) -> str:
        coefficient, rest = expr.as_coeff_mul()
        if coefficient.is_negative:
            return MINUS + self._print(sp.Mul(-coefficient, *rest, evaluate=False) if coefficient != -1
                                       else sp.Mul(*rest, evaluate=False))
        numerator, denominator = sp.fraction(expr, exact=True)  # e^(−z)/(1 + e^(−z))^2, not 1/(…·e^z)
        if denominator != 1:
            return "%s/%s" % (self.parenthesize(numerator, PRECEDENCE["Mul"]),
                              self.parenthesize(denominator, PRECEDENCE["Mul"] + 1))
        factors = list(expr.args)
        out = ""
        for position, factor in enumerate(factors):
            printed = self.parenthesize(factor, PRECEDENCE["Mul"])
            if position and not (factors[position - 1].is_Number and printed.startswith("(")):
                out += "·"
            out += printed
        return out

    def _print_Integer(self, expr: sp.Integer) -> str:
        return super()._print_Integer(expr).replace("-", MINUS)

    def _print_Rational(self, expr: sp.Rational) -> str:
        return super()._print_Rational(expr).replace("-", MINUS)

    def _print_Float(self, expr: sp.Float) -> str:
        return super()._print_Float(expr).replace("-", MINUS)

    def _print_Exp1(self, expr: Any) -> str:
        return "e"

    def _print_exp(self, expr: sp.exp) -> str:
        power = expr.args[0]
        return "e^" + (self._print(power) if power.is_Atom else f"({self._print(power)})")

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp.is_Rational and expr.exp.is_negative:
            return "1/" + self.parenthesize(expr.base ** -expr.exp, PRECEDENCE["Mul"] + 1)
        return "%s^%s" % (self.parenthesize(expr.base, PRECEDENCE["Pow"], strict=False),
                          self.parenthesize(expr.exp, PRECEDENCE["Pow"], strict=False))

    def _print_Equality(self, expr: sp.Eq) -> str:
        return f"{self._print(expr.lhs)} = {self._print(expr.rhs)}"

    def _print_Sum(self, expr: sp.Sum) -> str:
        limits = ""
        for index, *bounds in expr.limits:
            if isinstance(index, sp.Idx) or not bounds:  # Σ_q over a neuron index: its range is the layer's
                limits += f"Σ_{self._print(index)} "
            else:
                limits += f"Σ_{{{self._print(index)}={self._print(bounds[0])}}}^{{{self._print(bounds[1])}}} "
        body = expr.function
        printed = self._print(body)
        return limits + (f"({printed})" if isinstance(body, (sp.Add, OrderedSum)) else printed)

    def _print_Idx(self, expr: sp.Idx) -> str:
        return self._print(expr.label)

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta) -> str:
        return f"[{self._print(expr.args[0])} = {self._print(expr.args[1])}]"  # Iverson's bracket, not δ_jq

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        base = self._print(expr.base.label)
        if base.startswith("delta("):  # the error δ(l) of the index form
            base = "δ" + base[len("delta"):]
        return f"{base}_" + ",".join(self._print(i) for i in expr.indices)

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        pieces = [self._print(value) + ("" if condition is sp.true else f" if {self._print(condition)}")
                  for value, condition in expr.args]
        if expr.args[-1].cond is sp.true:
            pieces[-1] = pieces[-1] + " otherwise"
        return "{" + "; ".join(pieces) + "}"

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        return f"H({self._print(expr.args[0])})"  # the value at 0 is said where H is introduced


def text(expr: Any) -> str:
    """Plain text of ``expr`` in the notation's forms (the terminal's ``symback derive``).

    >>> text(sp.Eq(Partial(sp.Symbol("C"), sp.Symbol("b(L)")), sp.Integer(-2) * sp.Symbol("a")))
    '∂C/∂b(L) = −2·a'
    """
    return SymbackTextPrinter().doprint(expr)


# -- which form is shown: rules that SymPy proves -----------------------------------------------------------


def plain(expr: sp.Expr) -> sp.Expr:
    """``expr`` with the ordered notation nodes (Product, Difference, OrderedSum, Parenthesized) turned
    back into SymPy's arithmetic, for algebra: the nodes keep the order of a printed form, not its value.

    >>> plain(Product(sp.Symbol("a"), Difference(1, sp.Symbol("a"))))
    a*(1 - a)
    """
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    args = [plain(a) for a in expr.args]
    if isinstance(expr, Product):
        return sp.Mul(*args)
    if isinstance(expr, (OrderedSum,)):
        return sp.Add(*args)
    if isinstance(expr, Difference):
        return args[0] - args[1]
    if isinstance(expr, Parenthesized):
        return args[0]
    return expr.func(*args) if args != list(expr.args) else expr


def _equal(a: sp.Expr, b: sp.Expr) -> bool:
    """``a == b`` proven by SymPy (expand, then simplify for what expand leaves), within the symbolic
    budget: a user's formula (z^1000) can make the proof run for ever, and then nothing is proven.

    Two forms that differ at a probe point are told apart first, in microseconds: most comparisons
    (is this activation's derivative a known one's?) are of forms that differ, and a proof attempt on
    a degree-100 polynomial spends its whole budget to learn nothing.

    >>> z = sp.Symbol("z")
    >>> _equal(sp.exp(z) / (1 + sp.exp(z)) ** 2, sp.exp(-z) / (1 + sp.exp(-z)) ** 2), _equal((z + 1) ** 50, z ** 50)
    (True, False)
    """
    if _differ_at_a_probe(a, b):
        return False
    return bool(attempt(_is_zero, a - b).value)


#: Probe values: irrational-looking, away from 0, ±1 and the kinks of the registered activations.
_PROBES = (sp.Rational(37, 100), sp.Rational(-61, 100), sp.Rational(123, 100))
_PROBE_DIGITS = 50


def _differ_at_a_probe(a: sp.Expr, b: sp.Expr) -> bool:
    """True when ``a`` and ``b`` evaluate to clearly different numbers at a probe point.

    Each form is evaluated on its own to 50 digits (no cancellation inside it) and then rounded, so two
    values further apart than 1e-12 of their size differ for certain; a point where either is
    undefined, or a form that is not a number there (an unevaluated function; an integer or otherwise
    assumed symbol, which the probes could violate), decides nothing."""
    stand_ins = {atom: sp.Dummy(real=True) for atom in sorted((a - b).atoms(sp.Indexed), key=str)}
    a, b = sp.sympify(a).xreplace(stand_ins), sp.sympify(b).xreplace(stand_ins)
    symbols = sorted((a - b).free_symbols, key=str)
    if any(s.is_integer or s.is_positive is not None or s.is_nonnegative is not None for s in symbols):
        return False
    for shift, probe in enumerate(_PROBES):
        values = {s: probe + sp.Rational(k * (shift + 1), 17) for k, s in enumerate(symbols)}
        try:
            left, right = (complex(sp.N(side.xreplace(values), _PROBE_DIGITS)) for side in (a, b))
        except (TypeError, ValueError, ArithmeticError):  # not a number at this point
            continue
        if cmath.isfinite(left) and cmath.isfinite(right) and abs(left - right) > 1e-12 * (abs(left) + abs(right)):
            return True
    return False


def _is_zero(difference: sp.Expr) -> bool:
    difference = sp.expand(difference)
    if difference == 0:
        return True
    return sp.count_ops(difference) < 200 and sp.simplify(difference) == 0


def cost_form(derivative: sp.Expr, cost: sp.Expr, wrt: sp.Expr) -> sp.Expr:
    """``∂C/∂a`` with its common factor pulled out of the cost's own difference: ``2(a − y)``, ``−2(y − a)``.

    The cost's inner differences (two-term sums containing ``wrt``) are tried in the order the
    cost writes them; one is used when the derivative is a constant times it.  Otherwise the
    smaller of the derivative and its ``factor_terms`` is returned.

    >>> a, y = sp.Symbol("predicted"), sp.Symbol("observed")
    >>> text(cost_form(2 * a - 2 * y, (y - a) ** 2, a))
    '−2(observed − predicted)'
    """
    for inner in sp.preorder_traversal(cost):
        if not (isinstance(inner, sp.Add) and len(inner.args) == 2 and inner.has(wrt)):
            continue
        ratio = sp.cancel(derivative / inner)
        if ratio.free_symbols & inner.free_symbols:
            continue
        positive = [t for t in inner.args if not t.could_extract_minus_sign()]
        if len(positive) != 1:
            continue
        negative = -next(t for t in inner.args if t is not positive[0])
        shown = Difference(positive[0], negative)
        if not _equal(ratio * (positive[0] - negative), derivative):  # pragma: no cover - cancel is exact
            continue
        return shown if ratio == 1 else sp.Mul(ratio, shown, evaluate=False)
    tidy = sp.factor_terms(derivative)
    return tidy if sp.count_ops(tidy) <= sp.count_ops(derivative) else derivative


def step_form(derived: sp.Expr, z: sp.Expr) -> sp.Expr | None:
    """A two-piece constant derivative as the unit step ``H(z − t)`` (H(0) = the value at the jump), when
    SymPy proves it equal and it is no bigger: ReLU′(z) = H(z); leaky ReLU′ (0.01 + 0.99 H(z)) stays a brace.

    >>> z = sp.Symbol("z", real=True)
    >>> text(step_form(sp.Piecewise((1, z > 0), (0, True)), z))
    'H(z)'
    """
    if not (isinstance(derived, sp.Piecewise) and len(derived.args) == 2 and derived.args[1].cond is sp.true):
        return None
    (high, condition), (low, _) = derived.args
    if not (high.is_Number and low.is_Number and isinstance(condition, (sp.StrictGreaterThan, sp.GreaterThan))
            and condition.lhs == z and condition.rhs.is_Number):
        return None
    at_jump = sp.S.Zero if isinstance(condition, sp.StrictGreaterThan) else sp.S.One
    candidate = low + (high - low) * sp.Heaviside(z - condition.rhs, at_jump)
    if sp.count_ops(candidate) > sp.count_ops(derived):
        return None
    proven = attempt(lambda d: sp.simplify(sp.piecewise_fold(d)) == 0, candidate.rewrite(sp.Piecewise) - derived).value
    return candidate if proven else None


@dataclass(frozen=True)
class ActivationForms:
    """The forms of one layer's ``∂a/∂z``: ``named`` (σ′(z)), ``derived`` (SymPy's), ``known`` (σ(z) for
    softplus′, when SymPy proves the derivative is another registered function) and ``output``
    (in the activation's own value, a(1 − a), when :func:`~symback.render.steps.rewrite_in_terms_of` finds it)."""

    activation: Any
    named: sp.Expr
    derived: sp.Expr
    known: sp.Expr | None
    output: sp.Expr | None
    step: sp.Expr | None = None

    @property
    def shown(self) -> tuple[sp.Expr, ...]:
        """Every distinct form, in the order a textbook writes them: σ′(z) = … = a(1 − a)."""
        forms = [self.named, self.derived, self.step, self.known, self.output]
        out: list[sp.Expr] = []
        for form in forms:
            if form is not None and form not in out:
                out.append(form)
        return tuple(out)

    @property
    def simplest(self) -> sp.Expr:
        """The form used inside products: the output form, else the known function, else the step
        function, else SymPy's."""
        for form in (self.output, self.known, self.step):
            if form is not None:
                return form
        return self.derived


_FORMS_CACHE: dict[tuple, ActivationForms] = {}


def activation_forms(activation: Any, z: sp.Expr, a: sp.Expr) -> ActivationForms:
    """The forms of ``∂a/∂z`` for an elementwise ``activation`` at weighted input ``z`` with output ``a``.

    >>> from symback.symbolic.activations import get_activation
    >>> forms = activation_forms(get_activation("softplus"), sp.Symbol("z"), sp.Symbol("a"))
    >>> [text(f) for f in forms.shown]
    ['softplus′(z)', 'e^z/(e^z + 1)', 'σ(z)']
    """
    key = (activation._key(), z, a)
    if key in _FORMS_CACHE:
        return _FORMS_CACHE[key]
    from ..symbolic.activations import ACTIVATIONS, Z
    from .steps import rewrite_in_terms_of

    derived = activation.derivative_at(z)
    named: sp.Expr = FunctionPrime(prime_name(activation), z)
    if derived.is_Number:
        named = derived
    known = None
    if not derived.is_Number and not derived.has(sp.Piecewise):
        for name, factory in ACTIVATIONS.items():
            if name == activation.name or name not in PRIME_NAMES:
                continue
            other = factory()
            if other.elementwise and not other.formula.has(sp.Piecewise) and _equal(other.at(z), derived):
                known = FunctionOf(PRIME_NAMES[name], z)
                break
    output = None
    # Found for a plain symbol, then written with ``a`` itself (an index form's a(L)_j too).
    stand_in = sp.Dummy("a", real=True)
    found = rewrite_in_terms_of(activation.formula, Z, stand_in)
    if found is not None:
        output = found.rewritten.xreplace({stand_in: a})
        if isinstance(output, sp.Mul) and not output.args[0].is_Number:
            # a(1 − a), as textbooks write it, whichever order SymPy keeps a Mul of an index form's a_j in.
            output = Product(*sorted(output.args, key=lambda f: isinstance(f, sp.Add)))
    forms = ActivationForms(activation, named, derived, known, output, step_form(derived, z))
    _FORMS_CACHE[key] = forms
    return forms


class Alongside(sp.Expr):
    """Equations side by side, ``e1, e2`` (a definition and the term it sums).

    >>> text(Alongside(sp.Eq(sp.Symbol("C"), sp.Symbol("s")), sp.Eq(sp.Symbol("s"), 1)))
    'C = s,  s = 1'
    """

    def _symback_latex(self, printer: Any) -> str:
        return r", \qquad ".join(printer._print(a) for a in self.args)

    _latex = _symback_latex

    def _symback_mathml(self, printer: Any) -> Any:
        row = printer._row()
        for position, part in enumerate(self.args):
            if position:
                row.appendChild(printer._el("mo", ","))
                space = printer._el("mspace")
                space.setAttribute("width", "2em")
                row.appendChild(space)
            row.appendChild(printer._print(part))
        return row

    def _symback_text(self, printer: Any) -> str:
        return ",  ".join(printer._print(a) for a in self.args)

    _sympystr = _symback_text


# -- a derivation's presentation ---------------------------------------------------------------------------


class OrderedSum(sp.Expr):
    """``t1 + t2 + …`` in the given order (a sum over paths, each path's product kept as written).

    >>> text(OrderedSum(sp.Symbol("y"), -sp.Symbol("x")))
    'y − x'
    """

    precedence = PRECEDENCE["Add"]

    def _pieces(self, printer: Any) -> list[tuple[bool, Any]]:
        out = []
        for term in self.args:
            negative = term.could_extract_minus_sign()  # a Product gives up its leading factor's sign
            shown = -term if negative else term
            # (0 − (−2.6)) + (1 − (−1.61)): a difference among the terms keeps its own parentheses.
            printed = printer.parenthesize(shown, PRECEDENCE["Add"] + 1) if isinstance(shown, Difference) \
                else printer._print(shown)
            out.append((negative, printed))
        return out

    def _symback_latex(self, printer: Any) -> str:
        pieces = self._pieces(printer)
        out = ("- " if pieces[0][0] else "") + pieces[0][1]
        for negative, printed in pieces[1:]:
            out += (" - " if negative else " + ") + printed
        return out

    _latex = _symback_latex

    def _symback_mathml(self, printer: Any) -> Any:
        row = printer._row()
        for position, (negative, printed) in enumerate(self._pieces(printer)):
            if position or negative:
                row.appendChild(printer._el("mo", "−" if negative else "+"))
            row.appendChild(printed)
        return row

    def _symback_text(self, printer: Any) -> str:
        pieces = self._pieces(printer)
        out = (MINUS if pieces[0][0] else "") + pieces[0][1]
        for negative, printed in pieces[1:]:
            out += f" {MINUS} " if negative else " + "
            out += printed
        return out

    _sympystr = _symback_text


def ordered_sum(terms: list[sp.Expr]) -> sp.Expr:
    """One term as itself, several as an :class:`OrderedSum`."""
    return terms[0] if len(terms) == 1 else OrderedSum(*terms)


def product(factors: list[sp.Expr]) -> sp.Expr:
    """One factor as itself, several as a :class:`Product`; factors equal to 1 (an identity layer's
    derivative) are left out."""
    kept = [f for f in factors if f != 1] or [sp.S.One]
    return kept[0] if len(kept) == 1 else Product(*kept)


@dataclass(frozen=True)
class ShownFactor:
    """One chain-rule factor as shown: ``kind`` is cost, activation, softmax or affine; ``named`` is its
    form inside products (2(a − y), σ′(z), a(L−1)); ``forms`` every proven-equal form after
    ``∂of/∂wrt =``; ``simplest`` the form used when factors are multiplied out."""

    factor: Any
    kind: str
    named: sp.Expr
    forms: tuple[sp.Expr, ...]
    simplest: sp.Expr
    activation: Any = None

    @property
    def partial(self) -> Partial:
        return Partial(self.factor.of, self.factor.wrt)

    @property
    def line(self) -> tuple[sp.Expr, ...]:
        """The forms on this factor's own line in every output: the named form and the forms proven from
        it (σ′(z) = a(1 − a), ReLU′(z) = H(z), ∂a_r/∂z_q = −a_r a_q); SymPy's raw derivative only
        when nothing else is known (it is derived rule by rule where the report derives it once)."""
        if self.kind == "activation":
            return self.forms if len(self.forms) <= 2 else (self.forms[0], *self.forms[2:])
        return tuple(f for f in self.forms if f != self.factor.derivative) or self.forms


@dataclass(frozen=True)
class Cancellation:
    """``δ(L) = σ′(z) ∂C/∂a = a(1 − a) · … = a − y``: the steps SymPy takes, and the condition it needs."""

    delta: sp.Expr
    steps: tuple[sp.Expr, ...]
    condition: str = ""
    assumption: sp.Expr | None = None  # sp.Eq(y_0 + y_1, 1): the condition as math, for the reports


@dataclass(frozen=True)
class Presentation:
    """How a :class:`~symback.render.derivation.Derivation` is shown (the same in every output).

    ``chain_order``: the product of named factors in chain order, from the target up to the cost,
    summed over paths (3Blue1Brown's a(L−1) σ′(z(L)) 2(a(L) − y)); ``delta_form``: Nielsen's
    a(l−1)_k δ(l)_j; ``deltas``: each δ used, defined once from the layer above (``sympy.Eq``);
    ``cancellations``: where activation and cost combine, δ(L) = a(L) − y with its steps.
    """

    lhs: Partial
    factors: tuple[ShownFactor, ...]
    chain_order: sp.Expr
    delta_form: sp.Expr | None
    deltas: tuple[sp.Eq, ...]
    cancellations: tuple[Cancellation, ...]
    path_deltas: sp.Expr | None = None

    def summary(self) -> list[sp.Expr]:
        """The lines Jupyter shows and ``symback derive`` prints among its own, in the same forms and
        names: the product in chain order, the δ form, each δ (an output δ that cancels in its final form)."""
        lines: list[sp.Expr] = [sp.Eq(self.lhs, self.chain_order, evaluate=False)]
        if self.delta_form is not None:
            lines.append(sp.Eq(self.lhs, self.delta_form, evaluate=False))
            cancelled = {c.delta: c.steps[-1] for c in self.cancellations}
            lines += [sp.Eq(e.lhs, cancelled.get(e.lhs, e.rhs), evaluate=False) for e in self.deltas]
        return lines

    def factor(self, factor: Any) -> ShownFactor:
        for shown in self.factors:
            if (shown.factor.of, shown.factor.wrt) == (factor.of, factor.wrt):
                return shown
        raise KeyError(factor)


def _softmax_output_form(factor: Any, outputs: dict[sp.Expr, sp.Expr]) -> sp.Expr | None:
    """∂a_r/∂z_q = a_r(δ_rq − a_q) in the outputs, when SymPy proves it from the softmax's formula."""
    r_output = factor.of
    q_output = next((a for a, local in outputs.items() if factor.wrt in local.free_symbols and
                     _is_own_exp(local, factor.wrt)), None)
    if q_output is None:
        return None
    candidate = r_output * (1 - r_output) if q_output == r_output else -r_output * q_output
    back = candidate.xreplace(outputs)
    return candidate if _equal(back, factor.derivative) else None


def _is_own_exp(local: sp.Expr, z: sp.Expr) -> bool:
    numerator, _ = sp.fraction(local)
    return numerator == sp.exp(z)


def _shown_factor(network: Any, factor: Any, cost_name: str, outputs: dict[sp.Expr, sp.Expr]) -> ShownFactor:
    if getattr(factor.of, "name", str(factor.of)) == cost_name:
        named = cost_form(factor.derivative, factor.local, factor.wrt)
        return ShownFactor(factor, "cost", named, (named,), named)
    # A residual layer's a = f(z) + a(l-k): the skip term does not depend on z, so ∂a/∂z is f′(z) all the
    # same — but written in f(z), not in a (a(1 − a) would be wrong once a carries the skip term).  A bare
    # z left over is not an activation: that is ∂z/∂b of z = w a + b (an identity layer "matches" b).
    through_z = sp.Add(*(t for t in sp.Add.make_args(factor.local) if t.has(factor.wrt)))
    skipped = through_z != factor.local
    if skipped and through_z == factor.wrt:
        through_z, skipped = factor.local, False
    for activation in network.activations:
        if activation.elementwise and activation.at(factor.wrt) == through_z:
            value = FunctionOf(prime_name(activation), factor.wrt) if skipped else factor.of
            found = activation_forms(activation, factor.wrt, value)
            return ShownFactor(factor, "activation", found.named, found.shown, found.simplest, activation)
    if factor.of in outputs:
        output = _softmax_output_form(factor, outputs)
        forms = (factor.derivative,) if output is None else (factor.derivative, output)
        return ShownFactor(factor, "softmax", output if output is not None else factor.derivative, forms,
                           output if output is not None else factor.derivative)
    return ShownFactor(factor, "affine", factor.derivative, (factor.derivative,), factor.derivative)


def present(derivation: Any) -> Presentation:
    """The :class:`Presentation` of a derivation (explicit paths, or the index form's single chain).

    >>> from symback import Network, derive
    >>> shown = present(derive(Network([1, 1, 1], "sigmoid", "squared_error"), "w(L)"))
    >>> text(sp.Eq(shown.lhs, shown.chain_order)), text(sp.Eq(shown.lhs, shown.delta_form))
    ('∂C/∂w(L) = a(L-1) σ′(z(L)) 2(a(L) − y)', '∂C/∂w(L) = a(L-1) δ(L)')
    """
    network = derivation.network
    cost_name = derivation.cost_name
    paths = derivation.paths if derivation.paths is not None else (derivation.chain,)
    outputs = {f.of: f.local for path in paths for f in path
               if not any(a.elementwise and a.at(f.wrt) == f.local for a in network.activations)
               and f.local.has(sp.exp) and getattr(f.of, "name", "").startswith("a(")} if derivation.paths else {}
    shown: dict[tuple, ShownFactor] = {}
    # The index form's chain too (JSON and text list it beside the explicit paths).
    for path in (*paths, derivation.chain):
        for f in path:
            if (f.of, f.wrt) not in shown:
                shown[(f.of, f.wrt)] = _shown_factor(network, f, cost_name, outputs)
    target = derivation.model.symbols[derivation.target] if derivation.model is not None else derivation.indexed_target
    lhs = Partial(sp.Symbol(cost_name), target)
    products = [product([shown[(f.of, f.wrt)].named for f in reversed(path)]) for path in paths]
    chain_order = ordered_sum(products)
    if derivation.paths is None and derivation.sum_indices:
        chain_order = sp.Sum(chain_order, *derivation.sum_indices)
    delta_form, deltas, cancellations, path_deltas = None, (), (), None
    if derivation.paths is not None:
        delta_form, deltas = _delta_part(derivation, paths, shown)
        cancellations = tuple(c for c in (_cancellation(eq, shown, paths) for eq in deltas) if c is not None)
        path_deltas = _path_deltas(paths, shown)
    return Presentation(lhs, tuple(shown.values()), chain_order, delta_form, deltas, cancellations, path_deltas)


def _path_deltas(paths: tuple, shown: dict) -> sp.Expr | None:
    """Σ over paths, each path's factors from the target up to the output layer's z, then δ(L)."""
    terms: list[sp.Expr] = []
    for path in paths:
        upward = list(reversed(path))
        # The output layer's z is the wrt of the factor just below the cost's (∂a(L)/∂z(L)).
        top = len(upward) - 2
        if top < 0 or shown[(upward[-1].of, upward[-1].wrt)].kind != "cost":
            return None
        below = [shown[(f.of, f.wrt)].named for f in upward[:top]]
        term = product([*below, Delta(upward[top].wrt)])
        if term not in terms:
            terms.append(term)
    return ordered_sum(terms)



def _delta_part(derivation: Any, paths: tuple, shown: dict) -> tuple[sp.Expr | None, tuple[sp.Eq, ...]]:
    """Nielsen's per-parameter form and the δ's it uses, each defined once from the layer above."""
    groups: dict[sp.Expr, dict[tuple, list[tuple[sp.Expr, ...]]]] = {}
    level: dict[sp.Expr, int] = {}
    for path in paths:
        upward = list(reversed(path))
        position = next((i for i, f in enumerate(upward) if shown[(f.of, f.wrt)].kind in ("activation", "softmax")),
                        None)
        while position is not None and position + 1 < len(upward):
            az, above = upward[position], upward[position + 1]
            if shown[(above.of, above.wrt)].kind == "cost":
                term: tuple[sp.Expr, ...] = (shown[(above.of, above.wrt)].named,)
                next_position = None
            else:
                term = (above.derivative, Delta(above.of))
                next_position = position + 2
            level.setdefault(az.wrt, position)
            terms = groups.setdefault(az.wrt, {}).setdefault((az.of, az.wrt), [])
            if term not in terms:
                terms.append(term)
            position = next_position
    equations = []
    for z, by_factor in groups.items():
        parts = []
        for key, terms in by_factor.items():
            inner = ordered_sum([product(list(t)) for t in terms])
            parts.append(product([shown[key].named, inner]))
        equations.append(sp.Eq(Delta(z), ordered_sum(parts), evaluate=False))
    # Backpropagation's order: the output layer's δ first, neurons in order within a layer.
    order = sorted(range(len(equations)), key=lambda n: (-level[list(groups)[n]], n))
    equations = [equations[n] for n in order]
    kind = derivation.target.kind
    last = paths[0][-1]
    delta_form = None
    if kind == "w":
        delta_form = Product(last.derivative, Delta(last.of))
    elif kind == "b":
        delta_form = Delta(last.of)
    elif kind == "z":
        delta_form = Delta(derivation.model.symbols[derivation.target])
    elif kind == "a" and derivation.target.layer < derivation.network.depth:
        seen: list[sp.Expr] = []
        for path in paths:
            dz_da = path[-1]
            term = Product(dz_da.derivative, Delta(dz_da.of))
            if term not in seen:
                seen.append(term)
        delta_form = ordered_sum(seen)
    return delta_form, tuple(equations)


def _cancellation(equation: sp.Eq, shown: dict, paths: tuple) -> Cancellation | None:
    """δ(L) written in the outputs (a(1 − a), a_r(δ_rq − a_q)) and simplified, when that is smaller.

    Only the output layer's δ: its definition uses the cost's factor."""
    delta = equation.lhs
    cost_factors = [s for s in shown.values() if s.kind == "cost"]
    z = delta.z
    pieces = []
    for path in paths:
        upward = list(reversed(path))
        for i, f in enumerate(upward[:-1]):
            if f.wrt == z and shown[(upward[i + 1].of, upward[i + 1].wrt)].kind == "cost":
                pair = (shown[(f.of, f.wrt)], shown[(upward[i + 1].of, upward[i + 1].wrt)])
                if pair not in pieces:
                    pieces.append(pair)
    if not pieces or not cost_factors:
        return None
    if any(az.simplest is az.factor.derivative and az.kind != "activation" for az, _ in pieces):
        return None
    written = ordered_sum([product([az.simplest, cost.simplest]) for az, cost in pieces])
    multiplied = sp.Add(*(plain(az.simplest) * cost.factor.derivative for az, cost in pieces))
    simplified = attempt(lambda e: sp.factor(sp.cancel(sp.together(e))), multiplied).value
    if simplified is None:  # over the symbolic budget: no cancellation is claimed
        return None
    condition = ""
    assumption = None
    before = simplified
    if len(pieces) > 1:
        # softmax with cross-entropy: Σ_r y_r (a_q − δ_rq) = a_q − y_q needs the targets to sum to 1.
        outputs = {cost.factor.wrt for _, cost in pieces}
        targets = sorted(cost_factors[0].factor.local.free_symbols - outputs, key=str)
        if targets:
            # Collected in the outputs, the targets' sum appears whole (a_q(y_0 + y_1) − y_q); it is
            # replaced by 1, and SymPy checks the result with one target written as 1 − the others.
            total = sp.Add(*targets)
            before = sp.collect(sp.expand(simplified), sorted(outputs, key=str))
            reduced = before.xreplace({total: sp.S.One})
            others = {targets[-1]: 1 - sp.Add(*targets[:-1])}
            if sp.count_ops(reduced) < sp.count_ops(simplified) and _equal(reduced.xreplace(others),
                                                                        simplified.xreplace(others)):
                simplified = reduced
                assumption = sp.Eq(total, 1)
                condition = f"the targets sum to 1 ({text(assumption)})"
    baseline = sp.Add(*(plain(az.simplest) * sp.factor_terms(cost.factor.derivative) for az, cost in pieces))
    if sp.count_ops(simplified) >= sp.count_ops(baseline):
        return None
    tidy = cost_form(simplified, simplified, next(iter(simplified.free_symbols), sp.S.Zero)) \
        if isinstance(simplified, sp.Add) else simplified
    steps: list[sp.Expr] = []
    for step in (equation.rhs, written, *( [before] if condition else []), tidy):
        if step not in steps:
            steps.append(step)
    return Cancellation(delta, tuple(steps), condition, assumption)


def function_text(activation: Any) -> str:
    """The name an activation is written with in plain text: ``σ`` for sigmoid, ``tanh``, ``f`` for a formula.

    >>> from symback.symbolic.activations import get_activation
    >>> function_text(get_activation("sigmoid")), function_text(get_activation("softplus"))
    ('σ', 'softplus')
    """
    name = prime_name(activation)
    return _TEXT_FUNCTIONS.get(name, name)


# -- the sum over the examples, in the seed's own form ---------------------------------------------------------


@dataclass(frozen=True)
class ExamplesForm:
    """``∂C/∂target`` summed over ``n`` examples as seed 002 writes it.

    ``summed``: ``Σ_{i=1}^{n} −2(observed_i − predicted_i) · 1`` (the cost's factor, then the rest of the
    chain, each per-example quantity with the example index ``i``); ``residuals``: when the rest is the
    same for every example and the cost's factor is c·(target − output), ``−2(residual_1 + … + residual_n)``,
    with ``residual`` (``Difference(target, output)``) and ``coefficient`` (−2) for the numbers.
    """

    summed: sp.Expr
    residuals: sp.Expr | None = None
    residual: Difference | None = None
    coefficient: sp.Expr = sp.S.One
    rest: sp.Expr = sp.S.One
    definition: sp.Expr | None = None  # residual_i = observed_i − predicted_i


def examples_form(derivation: Any, n: int) -> ExamplesForm | None:
    """The seed's form of the sum over ``n`` examples, for a single-path explicit derivation (else None).

    >>> import symback
    >>> spec = symback.load_spec("examples/seed002.toml")
    >>> shown = examples_form(symback.derive(spec.network, "b3"), 3)
    >>> text(shown.summed), text(shown.residuals)
    ('Σ_{i=1}^{3} −2(observed_i − predicted_i) · 1', '−2(residual_1 + residual_2 + residual_3)')
    """
    model = derivation.model
    if model is None or derivation.paths is None or len(derivation.paths) != 1 or n < 1:
        return None
    shown = derivation.presentation
    path = derivation.paths[0]
    cost, rest_factors = shown.factor(path[0]), [shown.factor(f).named for f in path[1:]]
    if cost.kind != "cost":
        return None
    i = sp.Symbol("i", integer=True, positive=True)
    per_example = {symbol: sp.IndexedBase(symbol.name)[i] for symbol, ref in model.refs.items()
                   if ref.kind in ("x", "y", "z", "a")}
    kept = [f for f in rest_factors if f != 1]
    rest = sp.S.One if not kept else kept[0] if len(kept) == 1 else Product(*kept)
    summed_body = Product(cost.named.xreplace(per_example), rest.xreplace(per_example))
    summed: sp.Expr = sp.Sum(summed_body, (i, 1, n))
    if derivation.reduction == "mean":
        summed = Product(sp.Rational(1, n), summed)
    coefficient, difference = sp.S.One, cost.named
    if isinstance(difference, sp.Mul):
        coefficient, difference = difference.as_two_terms()
    kinds = {symbol: ref.kind for symbol, ref in model.refs.items()}
    if (not isinstance(difference, Difference) or not coefficient.is_Number or rest.free_symbols & set(per_example)
            or [kinds.get(a) for a in difference.args] != ["y", "a"]):
        return ExamplesForm(summed)
    residual = sp.IndexedBase("residual")
    total = OrderedSum(*(residual[k] for k in range(1, n + 1))) if n > 1 else residual[1]
    residuals = product([sp.Mul(coefficient, total, evaluate=False) if coefficient != 1 else total, rest])
    if derivation.reduction == "mean":
        residuals = Product(sp.Rational(1, n), residuals)
    return ExamplesForm(summed, residuals, Difference(*(a.xreplace(per_example) for a in difference.args)),
                        coefficient, rest, sp.Eq(residual[i], Difference(*(a.xreplace(per_example)
                                                                          for a in difference.args)), evaluate=False))


# -- expanded in the inputs, on request ---------------------------------------------------------------------

#: The largest expanded factor shown (budget.weight, or half its node count where that is more): expanding
#: a deep network's factor in its inputs repeats every earlier layer inside it.
EXPANDED_WEIGHT = 150


class Parenthesized(sp.Expr):
    """``(expr)``: one factor of a product set on a line of its own, ``· (1 − σ(w x + b))``.

    >>> text(Parenthesized(1 - sp.Symbol("a")))
    '(1 − a)'
    """

    is_commutative = True

    def _symback_latex(self, printer: Any) -> str:
        return r"\left(%s\right)" % printer._print(self.args[0])

    _latex = _symback_latex

    def _symback_mathml(self, printer: Any) -> Any:
        return printer._row(printer._l_paren(), printer._print(self.args[0]), printer._r_paren())

    def _symback_text(self, printer: Any) -> str:
        return f"({printer._print(self.args[0])})"

    _sympystr = _symback_text


@dataclass(frozen=True)
class ExpandedForm:
    """``∂C/∂target`` with every factor written in the inputs, parameters and targets (no a or z left).

    ``terms[p][f]`` is factor ``f`` of path ``p``, in chain order (target up to the cost), each the
    form shown inside products (a(1 − a), σ(z), H(z)) with every node replaced by its forward expression.
    """

    lhs: Partial
    terms: tuple[tuple[sp.Expr, ...], ...]

    def lines(self, fits: Any) -> tuple[tuple[str, sp.Expr], ...]:
        """The expansion broken over lines: ``(join, piece)`` pairs, join ``=`` for the first line, ``+``
        where a path starts, ``·`` between factors; a factor wider than a line (``fits(expr)`` false) is
        split into its own factors.  Raises SpecError when one piece alone is wider than a line.

        >>> from symback import Network, derive
        >>> shown = expanded_form(derive(Network([1, 1], "identity", "half_squared_error"), "w(L)"))
        >>> [(join, text(piece)) for join, piece in shown.lines(lambda e: True)]
        [('=', 'x'), ('·', '(b(L) + w(L)·x − y)')]
        """
        from ..errors import SpecError

        def pieces(factor: sp.Expr) -> list[sp.Expr]:
            if fits(factor):
                loose = isinstance(factor, (sp.Add, Difference, OrderedSum))  # −2(o − p) needs none
                return [Parenthesized(factor) if loose else factor]
            if isinstance(factor, (sp.Mul, Product)):
                return [piece for arg in factor.args for piece in pieces(arg)]
            raise SpecError(f"a factor of {text(self.lhs)} expanded in the inputs is wider than a page line; "
                            "write it for a smaller network, or leave out --expanded")

        out: list[tuple[str, sp.Expr]] = []
        for term in self.terms:
            for position, factor in enumerate(term):
                for number, piece in enumerate(pieces(factor)):
                    join = "·" if position or number else ("+" if out else "=")
                    if join == "·" and piece.could_extract_minus_sign():
                        piece = Parenthesized(piece)  # · (−2(o − p)), never · −2(o − p)
                    out.append((join, piece))
        return tuple(out)


def expanded_form(derivation: Any) -> ExpandedForm:
    """The derivative expanded in the inputs (``symback derive/report --expanded``).

    Raises :class:`~symback.errors.SpecError` (one line) for the index form, which has no single
    network to expand, and for a factor whose expansion is over :data:`EXPANDED_WEIGHT`.

    >>> from symback import Network, derive
    >>> shown = expanded_form(derive(Network([1, 1], "identity", "half_squared_error"), "w(L)"))
    >>> [text(f) for f in shown.terms[0]]
    ['x', 'b(L) + w(L)·x − y']
    """
    from ..budget import weight
    from ..errors import SpecError

    model = derivation.model
    if model is None or derivation.paths is None:
        raise SpecError(f"--expanded needs the explicit form (this derivation of {derivation.target_name} is "
                        "in index form: give --form explicit, for a network small enough to write out)")
    shown = derivation.presentation
    inputs = _in_the_inputs(model)
    terms = []
    for path in derivation.paths:
        factors = []
        for factor in reversed(path):
            form = shown.factor(factor).simplest
            if form == 1:
                continue
            expanded = form.xreplace(inputs)
            size = max(weight(expanded), sum(1 for _ in sp.preorder_traversal(expanded)) // 2)
            if size > EXPANDED_WEIGHT:
                raise SpecError(f"{text(Partial(factor.of, factor.wrt))} expanded in the inputs is too large to show "
                                f"(weight {size:,}, at most {EXPANDED_WEIGHT:,})")
            factors.append(expanded)
        terms.append(tuple(factors) or (sp.S.One,))
    return ExpandedForm(shown.lhs, tuple(terms))


def _in_the_inputs(model: Any) -> dict[sp.Symbol, sp.Expr]:
    """Every a and z symbol as an expression of inputs and parameters, layer by layer, each elementwise
    layer's output written as its named function of its weighted input (σ(w(L) σ(w(L−1) x + b(L−1)) + b(L)))."""
    network = model.network
    inputs: dict[sp.Symbol, sp.Expr] = {}
    for layer in range(1, network.depth + 1):
        activation = network.activation(layer)
        for kind in ("z", "a"):
            for j in range(network.sizes[layer]):
                ref = type(next(iter(model.refs.values())))(kind, layer, j)
                symbol = model.symbols[ref]
                if kind == "a" and activation.elementwise:
                    z = inputs[model.symbols[type(ref)("z", layer, j)]]
                    name = prime_name(activation)
                    inputs[symbol] = z if name == "id" else FunctionOf(name, z)
                else:
                    inputs[symbol] = model.local_expression(ref).xreplace(inputs)
    return inputs
