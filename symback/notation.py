"""Notation objects: the presentation forms of a derivation, as SymPy nodes that print themselves.

Each class here is a small unevaluated SymPy expression with one idea and its own printing
(``_symback_latex`` for :func:`symback.latex.latex`, ``_symback_mathml`` for
:func:`symback.latex.mathml`, ``_symback_text`` for :func:`text`, and SymPy's own
``_latex``/``_sympystr``), so every output — PDF, HTML, Markdown, terminal, JSON, Jupyter —
shows the same form:

* :class:`Partial` ``∂C/∂a(L)``; :class:`Product` an ordered product (:class:`ChainProduct` with ·);
  :class:`Difference` ``a(L) − y`` in the cost's own order;
* :class:`FunctionPrime` ``σ′(z(L))`` (a layer's derivative, named by its function);
  :class:`FunctionOf` ``σ(z)`` (softplus′ = σ);
* :class:`Delta` ``δ(L)_j = ∂C/∂z(L)_j``, named after the weighted input it belongs to.

Which form is shown is decided by rules that SymPy proves (:func:`cost_form`,
:func:`activation_forms`), never typed in.  verify and the reports import these objects too.

>>> import sympy as sp
>>> a, y, z = sp.Symbol("a(L)"), sp.Symbol("y"), sp.Symbol("z(L)")
>>> text(cost_form(2 * a - 2 * y, (a - y) ** 2, a))
'2(a(L) − y)'
>>> from symback.latex import latex
>>> latex(Product(sp.Symbol("a(L-1)"), FunctionPrime("sigma", z), cost_form(2 * a - 2 * y, (a - y) ** 2, a)))
"a^{(L-1)} \\\\sigma'\\\\left(z^{(L)}\\\\right) 2 \\\\left(a^{(L)} - y\\\\right)"
>>> text(Delta(z)), latex(Delta(sp.Symbol("z(L-1)_0")))
('δ(L)', '\\\\delta^{(L-1)}_{0}')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

__all__ = [
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

    >>> from symback.activations import get_activation
    >>> prime_name(get_activation("sigmoid")), prime_name(get_activation({"formula": "z^3"}))
    ('sigma', 'f')
    """
    from .activations import ACTIVATIONS

    if activation.name in PRIME_NAMES and activation.name in ACTIVATIONS:
        return PRIME_NAMES[activation.name]
    return "f"


class _Applied(sp.Expr):
    """``name(arg)``; the name is a plain string, printed from a small table (never parsed)."""

    _prime = ""

    def __new__(cls, name: str, arg: sp.Expr) -> _Applied:
        obj = super().__new__(cls, sp.Symbol(name), sp.sympify(arg))
        return obj

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
        numerator, denominator = sp.fraction(expr)
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

    def _print_Equality(self, expr: sp.Eq) -> str:
        return f"{self._print(expr.lhs)} = {self._print(expr.rhs)}"


def text(expr: Any) -> str:
    """Plain text of ``expr`` in the notation's forms (the terminal's ``symback derive``).

    >>> text(sp.Eq(Partial(sp.Symbol("C"), sp.Symbol("b(L)")), sp.Integer(-2) * sp.Symbol("a")))
    '∂C/∂b(L) = −2·a'
    """
    return SymbackTextPrinter().doprint(expr)


# -- which form is shown: rules that SymPy proves -----------------------------------------------------------


def _equal(a: sp.Expr, b: sp.Expr) -> bool:
    """``a == b`` proven by SymPy (expand, then simplify for what expand leaves)."""
    difference = sp.expand(a - b)
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


@dataclass(frozen=True)
class ActivationForms:
    """The forms of one layer's ``∂a/∂z``: ``named`` (σ′(z)), ``derived`` (SymPy's), ``known`` (σ(z) for
    softplus′, when SymPy proves the derivative is another registered function) and ``output``
    (in the activation's own value, a(1 − a), when :func:`~symback.steps.rewrite_in_terms_of` finds it)."""

    activation: Any
    named: sp.Expr
    derived: sp.Expr
    known: sp.Expr | None
    output: sp.Expr | None

    @property
    def shown(self) -> tuple[sp.Expr, ...]:
        """Every distinct form, in the order a textbook writes them: σ′(z) = … = a(1 − a)."""
        forms = [self.named, self.derived, self.known, self.output]
        out: list[sp.Expr] = []
        for form in forms:
            if form is not None and form not in out:
                out.append(form)
        return tuple(out)

    @property
    def simplest(self) -> sp.Expr:
        """The form used inside products: the output form, else the known function, else SymPy's."""
        return self.output if self.output is not None else self.known if self.known is not None else self.derived


_FORMS_CACHE: dict[tuple, ActivationForms] = {}


def activation_forms(activation: Any, z: sp.Expr, a: sp.Expr) -> ActivationForms:
    """The forms of ``∂a/∂z`` for an elementwise ``activation`` at weighted input ``z`` with output ``a``.

    >>> from symback.activations import get_activation
    >>> forms = activation_forms(get_activation("softplus"), sp.Symbol("z"), sp.Symbol("a"))
    >>> [text(f) for f in forms.shown]
    ['softplus′(z)', 'e^z/(e^z + 1)', 'σ(z)']
    """
    key = (activation._key(), z, a)
    if key in _FORMS_CACHE:
        return _FORMS_CACHE[key]
    from .activations import ACTIVATIONS, Z
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
    found = rewrite_in_terms_of(activation.formula, Z, a)
    if found is not None:
        output = found.rewritten
    forms = ActivationForms(activation, named, derived, known, output)
    _FORMS_CACHE[key] = forms
    return forms
