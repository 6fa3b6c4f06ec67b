"""Step-by-step derivation reports: .tex, .pdf, self-contained .html and .md through Jinja2 templates.

:func:`build_report` turns a :class:`~symback.render.derivation.Derivation` (or, with
``network=True``, a whole network's δ recursion) into a format-neutral
:class:`Report`: text, numbers and SymPy expressions wrapped in :class:`Math`.
Rendering prints every :class:`Math` with symback's printer (LaTeX for .tex and
.md, MathML for .html) and hands the result to a template that only lays it out.
Every number comes from the same derived objects that training uses.

>>> import symback
>>> spec = symback.load_spec("examples/seed002.toml")
>>> report = build_report(symback.derive(spec.network, "b3"), spec.parameters, spec.data)
>>> round(report.numeric.value, 4)
-15.6551
>>> "\\\\frac{\\\\partial \\\\mathrm{SSR}}{\\\\partial b_{3}}" in render(report, "tex")
True
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from ..compile.compiler import compile_network, lambdify
from ..data import Dataset
from ..errors import SpecError, SymbackError
from ..files import write_atomic
from ..registry import Registry
from ..resources import locate
from ..symbolic.activations import Z
from ..symbolic.model import IndexedModel
from ..symbolic.network import Network, NodeRef
from ..symbolic.parameters import Parameters
from ..training.train import descend
from .derivation import Derivation, Factor, backprop_equations, derive
from .latex import EqualityChain, TermSum, escape_latex, latex, mathml
from .notation import (
    Alongside,
    ChainProduct,
    Delta,
    Difference,
    FunctionPrime,
    OrderedSum,
    Partial,
    Product,
    activation_forms,
    examples_form,
    expanded_form,
    prime_name,
    product,
)
from .notation import _equal as notation_equal
from .notation import text as notation_text
from .steps import ChainRule, Rule, trace

__all__ = [
    "FORMATS",
    "Math",
    "Report",
    "build_report",
    "descent_table",
    "render",
    "template_dir",
    "write_report",
]

# -- the format-neutral report -----------------------------------------------------------------------


@dataclass(frozen=True)
class Math:
    """A SymPy expression to be printed (LaTeX or MathML) when the report is rendered."""

    expr: Any
    display: bool = True


@dataclass(frozen=True)
class StepLine:
    depth: int
    rule: str
    equation: Math
    note: Math | None = None


@dataclass(frozen=True)
class FactorReport:
    notation: Math
    definition: Math
    steps: tuple[StepLine, ...]
    result: Math
    rewriting: Any  # a Display: successive forms, one a line
    heading: str = ""
    note: str = ""


@dataclass(frozen=True)
class PathRow:
    """One path of a sum over paths: its factors (named, in chain order), their product's value form, its δ form."""

    number: int
    factors: Math
    delta: Math | None


@dataclass(frozen=True)
class ExampleRow:
    number: int
    inputs: str
    targets: str
    factors: tuple[str, ...]
    value: str


@dataclass(frozen=True)
class Numeric:
    factor_headers: tuple[Math, ...]
    rows: tuple[ExampleRow, ...]
    total: Math
    value: float
    reduction: str
    seed_form: Any = None  # a Display: Σ_i of the chain per example, in residuals, numbers substituted
    residual: Math | None = None  # residual_i = observed_i − predicted_i, when the seed form uses it


@dataclass(frozen=True)
class DescentRow:
    iteration: int
    old: str
    slope: str
    step: str
    new: str


@dataclass(frozen=True)
class Descent:
    parameter: Math
    learning_rate: float
    tolerance: float
    rows: tuple[DescentRow, ...]
    converged: bool
    final: float
    final_text: str
    rule: Math


@dataclass(frozen=True)
class LayerEquations:
    layer: str
    index_form: tuple[Math, ...]
    matrix_form: tuple[Math, ...]


@dataclass(frozen=True)
class CheckRow:
    parameter: Math
    index_value: str
    matrix_value: str
    difference: str


@dataclass(frozen=True)
class Report:
    """Everything a report shows; math as :class:`Math`, text as plain strings (escaped by the renderer)."""

    title: str
    source: str
    sizes: str
    activations: tuple[tuple[str, str], ...]
    cost: str
    parameter_count: str
    notation: tuple[tuple[Math, str], ...]
    forward: tuple[Math, ...]
    form: str
    chain: Math | None = None
    chain_lines: Display | None = None  # the chain rule broken over lines, when one line cannot hold it
    paths: tuple[Math, ...] = ()
    factors: tuple[FactorReport, ...] = ()
    derivatives_used: tuple[FactorReport, ...] = ()
    results: tuple[Math, ...] = ()
    path_rows: tuple[PathRow, ...] = ()
    path_rows_stacked: bool = False  # a path's δ form under its factors, not beside them: too wide for one line
    delta_form: Math | None = None
    deltas: tuple[Math, ...] = ()
    cancellations: tuple[Math, ...] = ()
    cancelled_alike: tuple[Math, ...] = ()  # the other outputs' δ = a − y, by the same steps
    cancellation_notes: tuple[Math | None, ...] = ()  # what a cancellation needs (the targets sum to 1)
    subtitle: str = ""
    author: str = "symback"
    heading: Math | None = None  # what was derived (∂C/∂w(L)); under the title when the user gives one
    titled: bool = False  # the title is the user's (spec [report] title or --title)
    date: str = field(default_factory=lambda: _today())  # the HTML and Markdown title's date (the PDF: \today)
    assembled: Math | None = None
    simplified: Math | None = None
    numeric: Numeric | None = None
    descent: Descent | None = None
    layers: tuple[LayerEquations, ...] = ()
    expanded: Any = None  # a Display: the derivative in the inputs, one factor a line (--expanded)
    pattern: tuple[Math, ...] = ()  # the matrix form for a generic layer l (network report)
    check: tuple[CheckRow, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


# -- building it -----------------------------------------------------------------------------------------


def _today() -> str:
    import datetime

    today = datetime.date.today()
    return f"{today.day} {today:%B %Y}"


#: Significant digits of the numbers in a report (seed 002's worked example uses three: −15.7, −1.57).
DIGITS = 3


def _shape_chain(network: Network) -> str:
    """The layers' shapes as a reader counts them: ``1×6 – 2×4 – 1`` (a dense network: ``2-2-2``)."""
    first = getattr(network.layers[0], "input_grid", (network.sizes[0],))
    shapes = [tuple(first), *(tuple(layer.grid) for layer in network.layers)]
    if all(len(shape) == 1 for shape in shapes):
        return "-".join(str(shape[0]) for shape in shapes)
    return " – ".join("×".join(map(str, shape)) for shape in shapes)


def _number(value: float, digits: int = DIGITS) -> str:
    return f"{value:.{digits}g}".replace("-", "−")


def _float(value: float, digits: int = DIGITS) -> sp.Float:
    return sp.Float(f"{value:.{digits}g}", digits)


def _network_part(network: Network) -> dict[str, Any]:
    im = IndexedModel(network)
    L = network.depth
    j, k = im.index("j", L), im.index("k", L - 1)
    def label(layer: int) -> str:
        return network.layer_label(layer).replace("-", "−")  # prose: L−1 with the minus sign, as in the math

    notation = [
        (Math(im.activations[0][k], False), "input k (layer 0)"),
        (Math(im.weights[L][j, k], False), f"weight from neuron k of layer {label(L - 1) if L > 1 else 'x'} "
                                           f"to neuron j of layer {label(L)}"),
        (Math(im.biases[L][j], False), f"bias of neuron j of layer {label(L)}"),
        (Math(im.zs[L][j], False), "weighted input of neuron j"),
        (Math(im.activations[L][j], False), f"activation of neuron j, {_activation_words(network.activations[-1])}"),
        (Math(im.targets[j], False), "target for output j"),
        (Math(im.cost_symbol, False), "cost"),
    ]
    forward = []
    for layer in range(1, L + 1):
        jj, kk = im.index("j", layer), im.index("k", layer - 1)
        # Σ_k w_jk a_k + b_j, in the textbooks' order (SymPy's Add would print b + Σ a_k w_jk).
        weighted = OrderedSum(sp.Sum(Product(im.weights[layer][jj, kk], im.activations[layer - 1][kk]), kk),
                              im.biases[layer][jj])
        forward.append(Math(sp.Eq(im.zs[layer][jj], weighted, evaluate=False)))
        dummy = im.index("q", layer)
        forward.append(Math(sp.Eq(im.activations[layer][jj], im.a_expression(layer, jj, dummy))))
    forward.append(Math(sp.Eq(im.cost_symbol, im.cost_expression(im.index("j", L)))))
    return {
        "sizes": "-".join(map(str, network.sizes)),
        "activations": tuple((network.layer_label(l), a.label) for l, a in enumerate(network.activations, 1)),
        "cost": f"{network.cost.label} (outputs: {network.cost.output_reduction}, examples: "
        f"{network.cost.example_reduction})",
        "parameter_count": f"{network.n_parameters:,} ({network.n_weights:,} weights, {network.n_biases:,} biases)"
        + _tied_count(network),
        "notation": tuple(notation),
        "forward": tuple(forward),
    }


def _tied_count(network: Network) -> str:
    """``; 10 distinct, tied: b1 = b(L-1)_0, b(L-1)_1; …`` for a network with tied parameters (else nothing)."""
    if not network.ties:
        return ""
    shared = "; ".join(f"{name} = {network.entries_text(name)}" for name in network.ties)
    return f"; {network.n_distinct_parameters:,} distinct, tied: {shared}"


def _activation_words(activation: Any) -> str:
    """The output layer's own function in words (σ only for a sigmoid; no raw math in the prose)."""
    return {"sigmoid": "the sigmoid σ of z", "identity": "z itself", "softmax": "the layer's softmax"}.get(
        activation.name, f"{activation.label} of z")


def _step_lines(rule: Rule, depth: int = 0) -> list[StepLine]:
    note = Math(sp.Eq(rule.u, rule.inner), False) if isinstance(rule, ChainRule) else None
    equation = Math(sp.Eq(sp.Derivative(rule.expr, rule.var, evaluate=False), rule.result), False)
    lines = [StepLine(depth, rule.title, equation, note)]
    for step in rule.substeps:
        lines.extend(_step_lines(step, depth + 1))
    return lines


def _factor_report(network: Network, factor: Factor, derivation: Derivation, heading: str = "") -> FactorReport:
    traced = trace(factor.local, factor.wrt)  # raises if the rules and sympy.diff disagree
    shown = derivation.presentation.factor(factor)
    definition: sp.Expr = sp.Eq(factor.of, factor.local)
    if shown.kind == "cost":
        definition = _cost_over_examples(derivation, factor)
    note = ""
    if shown.kind == "cost":
        note = ("one example's term, differentiated; the examples' derivatives are "
                + ("summed" if derivation.reduction == "sum" else "averaged") + " at the end")
    forms = shown.forms
    result = Math(sp.Eq(Partial(factor.of, factor.wrt), factor.derivative))
    rewriting = None
    if forms and forms[0] != factor.derivative:
        rewriting = _column_display(Partial(factor.of, factor.wrt),
                                   (factor.derivative, *(f for f in forms if f != factor.derivative)))
    return FactorReport(
        notation=Math(Partial(factor.of, factor.wrt), False),
        definition=Math(definition),
        steps=tuple(_step_lines(traced.rule)),
        result=result,
        rewriting=rewriting,
        heading=heading,
        note=note,
    )


def _cost_over_examples(derivation: Derivation, factor: Factor) -> sp.Expr:
    """``SSR = Σ_i (observed_i − predicted_i)²``: the cost with its Σ over the examples (seed 002), and
    the term differentiated is one example's."""
    cost = sp.Symbol(derivation.cost_name)
    model = derivation.model
    if model is None:
        return sp.Eq(cost, factor.local)
    n = sp.Symbol("n", integer=True, positive=True)
    i = sp.Idx("i", (1, n))
    outputs = [s for s in factor.local.free_symbols if model.refs.get(s, NodeRef("C")).kind == "a"]
    if len(outputs) == 1:
        # One output: the examples' index goes on the names themselves, Σ_i (observed_i − predicted_i)².
        per_example = {symbol: sp.IndexedBase(symbol.name)[i] for symbol, ref in model.refs.items()
                       if ref.kind in ("x", "y", "z", "a")}
        total: sp.Expr = sp.Sum(factor.local.xreplace(per_example), (i, 1, n))
        if derivation.reduction == "mean":
            total = Product(sp.Pow(n, -1, evaluate=False), total)
        return sp.Eq(cost, total, evaluate=False)
    # Several outputs: C = Σ_i C_i (or its mean) with C_i one example's sum over the outputs.
    per = sp.IndexedBase(derivation.cost_name)
    total = sp.Sum(per[i], (i, 1, n))
    if derivation.reduction == "mean":
        total = Product(sp.Pow(n, -1, evaluate=False), total)
    return Alongside(sp.Eq(cost, total, evaluate=False), sp.Eq(per[i], factor.local, evaluate=False))


def _numeric(derivation: Derivation, params: Parameters, data: Dataset) -> Numeric:
    evaluation = derivation.evaluate(params, data)
    rows = []
    for i in range(len(data)):
        factors: tuple[str, ...] = ()
        if evaluation.factors and len(evaluation.factors) == 1:
            factors = tuple(_number(float(values[i])) for values in evaluation.factors[0])
        rows.append(ExampleRow(
            i + 1,
            ", ".join(_number(float(v)) for v in data.X[i]),
            ", ".join(_number(float(v)) for v in data.Y[i]),
            factors,
            _number(float(evaluation.examples[i])),
        ))
    headers: tuple[Math, ...] = ()
    if derivation.paths is not None and len(derivation.paths) == 1:
        headers = tuple(Math(Partial(f.of, f.wrt), False) for f in derivation.paths[0])
    target = _target_symbol(derivation)
    cost = sp.Symbol(derivation.cost_name)
    total_expr: sp.Expr = TermSum(*(_float(float(v)) for v in evaluation.examples))
    if evaluation.reduction == "mean":
        total_expr = sp.Mul(sp.Rational(1, len(data)), total_expr, evaluate=False)
    if len(data) == 1:  # the mean or sum of one product is that product: said in a line, not displayed again
        total = Math(EqualityChain(Partial(cost, target), _float(evaluation.value)), False)
    else:
        total = Math(EqualityChain(Partial(cost, target), total_expr, _float(evaluation.value)))
    shown = examples_form(derivation, len(data))
    definition = None if shown is None or shown.definition is None else Math(shown.definition, False)
    return Numeric(headers, tuple(rows), total, evaluation.value, evaluation.reduction,
                   _seed_form(derivation, params, data, evaluation.value), definition)


def _exact(value: float, digits: int = DIGITS) -> sp.Expr:
    """A whole number as itself (seed 002's targets 0 and 1), anything else to ``digits`` significant digits."""
    return sp.Integer(int(value)) if float(value).is_integer() else _float(value, digits)


def _seed_form(derivation: Derivation, params: Parameters, data: Dataset, value: float) -> Display | None:
    """Seed 002's own line: ``Σ_i −2(observed_i − predicted_i) · 1 = −2(residual_1 + …) = −2((0 − p_1) + …)``,
    the numbers substituted, each residual from the data and the forward pass."""
    shown = examples_form(derivation, len(data))
    if shown is None:
        return None
    forms: list[sp.Expr] = [shown.summed]
    if shown.residuals is not None:
        forms.append(shown.residuals)
        if shown.rest == 1 and data.Y.shape[1] == 1:
            predicted = compile_network(derivation.network).forward(params, data.X).activations[-1][:, 0]
            numbers = OrderedSum(*(Difference(_exact(float(y)), _exact(float(p), DIGITS + 1))
                                   for y, p in zip(data.Y[:, 0], predicted, strict=True)))
            substituted: sp.Expr = sp.Mul(shown.coefficient, numbers, evaluate=False) if shown.coefficient != 1 \
                else numbers
            if derivation.reduction == "mean":
                substituted = Product(sp.Rational(1, len(data)), substituted)
            forms.append(substituted)
    forms.append(_float(value))
    lhs = Partial(sp.Symbol(derivation.cost_name), _target_symbol(derivation))
    return _chain_display(lhs, tuple(forms), one_line=_fits_one_line(lhs, tuple(forms)))


def _target_symbol(derivation: Derivation) -> sp.Expr:
    if derivation.model is not None:
        return derivation.model.symbols[derivation.target]
    return derivation.indexed_target


def descent_table(
    derivation: Derivation,
    params: Parameters,
    data: Dataset,
    *,
    learning_rate: float = 0.1,
    tolerance: float = 1e-3,
    max_steps: int = 1000,
) -> Descent:
    """Gradient descent on the derivation's target alone: slope, step size = slope × rate, new = old − step.

    Stops at a step with ``|step size| < tolerance`` (seed 002: "until we get step size close to 0"),
    which is shown as the last row and not taken (the rule of ``train`` and ``verify``:
    :func:`symback.training.train.below_tolerance`), or after ``max_steps`` steps.  The slope is the
    derivation's own value at every iteration.
    """
    if not learning_rate > 0 or not tolerance > 0 or max_steps < 1:
        raise SpecError("learning rate and tolerance must be positive and max steps at least 1")
    target = derivation.target
    if target.kind not in ("w", "b"):
        raise SpecError(f"gradient descent moves a weight or a bias, not {derivation.target_name!r}")
    current = params.copy()

    def slope(value: float) -> float:
        current.set(target, value, derivation.network)  # a tied parameter: all its entries
        return derivation.value(current, data)

    path = descend(float(current.get(target)), slope, learning_rate, tolerance=tolerance, max_steps=max_steps)
    raw = [(iteration, s.old, s.slope, s.step, s.new) for iteration, s in enumerate(path.steps, start=1)]
    rows = tuple(
        row if s.taken else DescentRow(row.iteration, row.old, row.slope, row.step, "not taken")
        for row, s in zip(_descent_rows(raw), path.steps, strict=True)
    )
    converged = path.converged
    current.set(target, path.final, derivation.network)
    symbol = _target_symbol(derivation)
    rule_math = Math(sp.Eq(sp.Symbol("new"), Difference(sp.Symbol("old"), sp.Symbol("eta") * Partial(
        sp.Symbol(derivation.cost_name), symbol))))
    return Descent(Math(symbol, False), learning_rate, tolerance, rows, converged,
                   float(current.get(target)), _number(float(current.get(target))), rule_math)


@dataclass(frozen=True)
class Display:
    """A long equation broken over lines: ``lhs = parts[0]``, then ``join parts[i]`` on lines of their own
    (``join`` is ``"+"`` for a sum over paths, ``"="`` for successive forms)."""

    lhs: Math
    parts: tuple[Math, ...]
    join: str
    joins: tuple[str, ...] = ()  # per part, where they differ (+ between paths, · between factors)


#: "Derivatives used" is set in two columns: a line there is about this wide (:func:`_width`).
ONE_COLUMN_TEXT = 40


def _column_display(lhs: sp.Expr, forms: tuple[sp.Expr, ...]) -> Display:
    """:func:`_chain_display` for a column of "derivatives used": on one line when it fits the column."""
    return _chain_display(lhs, forms, one_line=_width(lhs) + sum(_width(f) + 3 for f in forms) <= ONE_COLUMN_TEXT)


def _chain_display(lhs: sp.Expr, forms: tuple[sp.Expr, ...], *, one_line: bool = False) -> Display:
    """``lhs = f1 = f2 …`` broken over lines (or on one, when it fits)."""
    if one_line:
        return Display(Math(lhs, False), (Math(EqualityChain(*forms), False),), "=")
    return Display(Math(lhs, False), tuple(Math(f, False) for f in forms), "=")


#: A display at most this wide (:func:`_width`) fits one line of the page; wider ones are broken.
ONE_LINE_TEXT = 90


def _width(expr: sp.Expr) -> int:
    """About how many glyphs wide ``expr`` is typeset: its plain text with every name counted as two
    (w(L)_0_1 is set as w with small scripts).  A fraction counts as its numerator and denominator side
    by side, so the estimate errs on the side of breaking; the page tests check for overfull lines."""
    printed = notation_text(expr)
    for piecewise in expr.atoms(sp.Piecewise):  # its pieces are stacked: as wide as the widest
        widest = max(len(notation_text(value)) + len(notation_text(condition)) + 4
                     for value, condition in piecewise.args)
        printed = printed.replace(notation_text(piecewise), "x" * widest)
    names = {notation_text(atom) for atom in expr.atoms(sp.Symbol, sp.Indexed, Delta)}
    for name in sorted(names, key=len, reverse=True):
        printed = printed.replace(name, "a" * _name_width(name))
    return len(printed)


def _name_width(name: str) -> int:
    """About how many glyphs a name is set as: two, and more for a long script (``z(L-2)_0``'s
    superscript (L−2) is wider than its letter; a superscript and a subscript stand one above the other).

    >>> _name_width("w(L)_0_1"), _name_width("z(L-2)_0"), _name_width("y")
    (2, 4, 2)
    """
    layer = re.search(r"\([^)]*\)", name)
    superscript = len(layer.group(0)) if layer else 0
    subscript = len(name.partition("_")[2].replace("_", "")) if "_" in name else 0
    return 2 + math.ceil(0.7 * max(0, max(superscript, subscript) - 3))


def _fits_one_line(lhs: sp.Expr, parts: tuple[sp.Expr, ...]) -> bool:
    return _width(lhs) + sum(_width(p) + 3 for p in parts) <= ONE_LINE_TEXT


def _product_lines(lhs: sp.Expr, factors: tuple[sp.Expr, ...], sums: tuple = ()) -> Display | None:
    """``lhs = Σ… f1 · f2 · …`` broken between factors into lines that fit, or None when one line holds it
    (a deep network's chain rule has two factors a layer)."""
    if _fits_one_line(lhs, (*factors, *(sp.Symbol("Σ") for _ in sums))):
        return None
    lines: list[list[sp.Expr]] = [[]]
    room = ONE_LINE_TEXT - _width(lhs) - 3 * len(sums)
    for factor in factors:
        if lines[-1] and sum(_width(f) + 3 for f in (*lines[-1], factor)) > room:
            lines.append([])
        lines[-1].append(factor)
    parts = [ChainProduct(*line) for line in lines]
    if sums:
        parts[0] = sp.Sum(parts[0], *sums)
    return Display(Math(lhs, False), tuple(Math(p, False) for p in parts), "·")


def _display(lhs: sp.Expr, rhs: sp.Expr, join: str = "+") -> Display:
    many = join == "+" and isinstance(rhs, OrderedSum) and not _fits_one_line(lhs, rhs.args)
    parts = rhs.args if many else (rhs,)
    return Display(Math(lhs, False), tuple(Math(p, False) for p in parts), join)


def _ref_kind(derivation: Derivation, symbol: sp.Expr) -> str:
    """w, b, a, x, z for a factor's wrt (the explicit model's own record, or the indexed base's name)."""
    if derivation.model is not None and symbol in derivation.model.refs:
        return derivation.model.refs[symbol].kind
    base = symbol.base.label if isinstance(symbol, sp.Indexed) else symbol
    return str(base)[:1]


def _derivatives_used(derivation: Derivation, factors: list[Factor]) -> tuple[FactorReport, ...]:
    """Each local derivative derived once, rule by rule: the cost's, each layer function's (in z), and
    the weighted input's for each kind of variable; every other factor is an instance of one of them."""
    shown = derivation.presentation
    network = derivation.network
    reports: list[FactorReport] = []
    done_cost = False
    done_activations: list[Any] = []
    done_affine: set[str] = set()
    done_softmax: set[bool] = set()
    for factor in factors:
        item = shown.factor(factor)
        if item.kind == "cost" and not done_cost:
            done_cost = True
            reports.append(_factor_report(network, factor, derivation, heading="The cost"))
        elif item.kind == "activation" and all(a is not item.activation for a in done_activations):
            done_activations.append(item.activation)
            reports.append(_activation_report(item.activation))
        elif item.kind == "affine" and not done_affine:
            # One weighted input, derived in full, shows the sum rule every ∂z/∂(w, b or a) follows:
            # the shortest one (the narrowest layer's) says it in the fewest lines.
            done_affine.add(_ref_kind(derivation, factor.wrt))
            shortest = min((f for f in factors if shown.factor(f).kind == "affine"),
                           key=lambda f: len(sp.Add.make_args(f.local)))
            reports.append(_factor_report(network, shortest, derivation, heading="The weighted input"))
        elif item.kind == "softmax" and _softmax_case(factor) not in done_softmax:
            # ∂a_r/∂z_q has two shapes, r = q and r ≠ q; every other entry is one of them.
            done_softmax.add(_softmax_case(factor))
            reports.append(_factor_report(network, factor, derivation, heading="The softmax, "
                                          + ("same neuron" if _softmax_case(factor) else "another neuron")))
    return tuple(reports)


def _softmax_case(factor: Factor) -> bool:
    """True for ∂a_q/∂z_q (the neuron's own exponential is the numerator), False for ∂a_r/∂z_q."""
    numerator, _ = sp.fraction(factor.local)
    return numerator == sp.exp(factor.wrt)


def _activation_report(activation: Any) -> FactorReport:
    """σ′(z) derived once in a generic z, then written in the function's own value a (a(1 − a))."""
    a = sp.Symbol("a", real=True)
    forms = activation_forms(activation, Z, a)
    traced = trace(activation.formula, Z)  # raises if the rules and sympy.diff disagree
    name = FunctionPrime(prime_name(activation), Z)
    later = forms.shown[2:]
    rewriting = _column_display(name, (forms.derived, *later)) if later else None
    return FactorReport(
        notation=Math(name, False),
        definition=Math(sp.Eq(a, activation.formula)),
        steps=tuple(_step_lines(traced.rule)),
        result=Math(sp.Eq(name, forms.derived)),
        rewriting=rewriting,
        heading=f"The {activation.label} layer",
        note=_step_note(forms.step),
    )


def _step_note(step: sp.Expr | None) -> str:
    """What H means, where the unit step first appears."""
    if step is None:
        return ""
    (jump,) = step.atoms(sp.Heaviside)
    at_zero = "1" if jump.args[1] == 1 else "0"
    return f"H is the unit step (H(0) = {at_zero} here)"


def _descent_rows(raw: list[tuple[int, float, float, float, float]]) -> list[DescentRow]:
    """Each row with :data:`DIGITS` significant digits, or more where fewer would print the same value
    as the row before (seed 002's iterations 6–10 looked stuck at 2.6/2.61 with three)."""
    rows = []
    for position, (iteration, old, slope, step, new) in enumerate(raw):
        digits = DIGITS
        if position:
            before = raw[position - 1]
            while digits < 15 and any(
                _number(now, digits) == _number(then, digits) and now != then
                for now, then in ((old, before[1]), (new, before[4]))
            ):
                digits += 1
        rows.append(DescentRow(iteration, _number(old, digits), _number(slope, digits), _number(step, digits),
                               _number(new, digits)))
    return rows


def build_report(
    obj: Derivation | Network,
    params: Parameters | None = None,
    data: Dataset | None = None,
    *,
    descent: dict[str, Any] | None = None,
    source: str = "",
    check: bool = True,
    title: str | None = None,
    author: str | None = None,
    expanded: bool = False,
) -> Report:
    """A :class:`Report` for a derivation (factors, steps, numbers) or a whole network (δ recursion).

    ``descent`` (``{"learning_rate": .., "tolerance": .., "max_steps": ..}``) adds the iteration table;
    ``title`` and ``author`` go on the title page (default: what was derived, by symback);
    ``expanded`` adds the derivative written out in the inputs, broken over lines.
    """
    if isinstance(obj, Network):
        return _network_report(obj, params, data, source=source, check=check, title=title, author=author)
    from .kinds import KindDerivation

    if isinstance(obj, KindDerivation):
        if descent is not None or expanded:
            raise SpecError("--descent and --expanded are not built for a network with grid layers yet")
        return build_kind_report(obj, params, data, source=source, title=title, author=author)  # type: ignore[return-value]
    derivation = obj
    network = derivation.network
    shown = derivation.presentation
    target = _target_symbol(derivation)
    cost = sp.Symbol(derivation.cost_name)
    chain_factors = ChainProduct(*(Partial(f.of, f.wrt) for f in derivation.chain))
    chain_rhs: sp.Expr = sp.Sum(chain_factors, *derivation.sum_indices) if derivation.sum_indices else chain_factors
    chain = Math(sp.Eq(Partial(cost, derivation.indexed_target), chain_rhs, evaluate=False))
    chain_lines = _product_lines(Partial(cost, derivation.indexed_target), chain_factors.args, derivation.sum_indices)
    paths: list[Math] = []
    factors: list[Factor] = list(derivation.chain)
    path_rows: list[PathRow] = []
    if derivation.paths is not None:
        paths = [Math(sp.Eq(Partial(cost, target), ChainProduct(*(Partial(f.of, f.wrt) for f in path))))
                 for path in derivation.paths] if len(derivation.paths) == 1 else [
            Math(ChainProduct(*(Partial(f.of, f.wrt) for f in path)), True) for path in derivation.paths]
        seen: dict[tuple[sp.Expr, sp.Expr], Factor] = {}
        for path in derivation.paths:
            for f in path:
                seen.setdefault((f.of, f.wrt), f)
        factors = list(seen.values())
        if len(derivation.paths) > 1:
            products = _terms(shown.chain_order)
            deltas: tuple[Any, ...] = _terms(shown.path_deltas) if shown.path_deltas is not None else ()
            if len(deltas) != len(products):
                # Paths that meet at one output z (a softmax layer: C ← a_r ← z_q) share its δ: the δ
                # column would count it twice, so the δ form is given once below the table instead.
                deltas = (None,) * len(products)
            path_rows = [PathRow(n, Math(p, False), None if d is None else Math(d, False))
                         for n, (p, d) in enumerate(zip(products, deltas, strict=True), 1)]
    result_lines = [EqualityChain(Partial(f.of, f.wrt), *_result_forms(shown.factor(f))) for f in factors]
    results = tuple(Math(e) for e in result_lines)
    numeric = None
    descent_part = None
    if params is not None and data is not None:
        numeric = _numeric(derivation, params, data)
        if descent is not None:
            descent_part = descent_table(derivation, params, data, **descent)
    notes = []
    if derivation.tie_summary():
        notes.append(derivation.tie_summary(params, data) if params is not None and data is not None
                     else derivation.tie_summary())
    if derivation.form == "indexed":
        notes.append("Index form: one generic neuron per layer; its size does not grow with layer width.")
    if derivation.simplify_note is not None:
        notes.append(f"The assembled derivative is {derivation.simplify_note}.")
    lhs = shown.lhs
    # The steps of the first output's cancellation; the other outputs' take the same steps.
    cancellations = tuple(_chain_display(c.delta, c.steps, one_line=_fits_one_line(c.delta, c.steps))
                          for c in shown.cancellations[:1])
    alike = tuple(Math(sp.Eq(c.delta, c.steps[-1], evaluate=False), False) for c in shown.cancellations[1:])
    cancelled = {c.delta: c.steps[-1] for c in shown.cancellations}
    # An output δ that cancels is listed in its final form; the steps follow under the cancellations.
    delta_equations = [sp.Eq(e.lhs, cancelled.get(e.lhs, e.rhs), evaluate=False) for e in shown.deltas]
    return Report(
        title=title or f"{notation_text(lhs)}, by the chain rule",
        titled=title is not None,
        heading=Math(lhs, False),
        subtitle=_subtitle(network, source),
        author=author or "symback",
        source=source,
        form=derivation.form,
        chain=chain,
        chain_lines=chain_lines,
        paths=tuple(paths),
        factors=(),
        derivatives_used=_derivatives_used(derivation, factors),
        results=results,
        path_rows=tuple(path_rows),
        path_rows_stacked=any(_width(row.factors.expr) + (_width(row.delta.expr) if row.delta else 0) + 8 > ONE_LINE_TEXT
                              for row in path_rows),
        assembled=_display(lhs, shown.chain_order),
        delta_form=_display(lhs, shown.path_deltas if shown.path_deltas is not None and len(path_rows) > 1
                            else shown.delta_form) if shown.delta_form is not None else None,
        deltas=tuple(Math(e, False) for e in delta_equations),
        cancellations=cancellations,
        cancelled_alike=alike,
        expanded=_expanded_display(derivation) if expanded else None,
        cancellation_notes=tuple(None if c.assumption is None else Math(c.assumption, False)
                                 for c in shown.cancellations),
        simplified=None,
        numeric=numeric,
        descent=descent_part,
        notes=tuple(notes),
        **_network_part(network),
    )


def _expanded_display(derivation: Derivation) -> Display:
    """The derivative in the inputs (:func:`symback.render.notation.expanded_form`), a factor (or a factor's
    factor, where one is wider than the page) to a line."""
    shown = expanded_form(derivation)
    # Deep nesting stacks fractions and exponents that _width counts flat: a line of 7/8 of the page.
    lines = shown.lines(lambda e: _width(e) <= ONE_LINE_TEXT * 7 // 8)
    return Display(Math(shown.lhs, False), tuple(Math(piece, False) for _, piece in lines), "·",
                   tuple(join for join, _ in lines))


def _terms(expr: sp.Expr) -> tuple[sp.Expr, ...]:
    return expr.args if isinstance(expr, OrderedSum) else (expr,)


def _result_forms(item: Any) -> tuple[sp.Expr, ...]:
    """A factor's line, :attr:`~symback.render.notation.ShownFactor.line` (SymPy's own form is in "derivatives used")."""
    return item.line


def _subtitle(network: Network, source: str) -> str:
    layers = ", ".join(a.label for a in network.activations)
    text = f"for the {'-'.join(map(str, network.sizes))} network ({layers}; cost {network.cost.label})"
    return text + (f", from {source}" if source else "")


def _network_report(
    network: Network, params: Parameters | None, data: Dataset | None, *, source: str, check: bool,
    title: str | None = None, author: str | None = None,
) -> Report:
    equations = backprop_equations(network)
    layers = []
    for layer in range(network.depth, 0, -1):
        index_form = [_textbook_delta(network, equations, layer), *_parameter_equations(network, equations, layer)]
        matrix = []
        if layer == network.depth:
            matrix = [equations.matrix["BP1"], equations.matrix["BP3"], equations.matrix["BP4"]]
        elif layer == network.depth - 1 and "BP2" in equations.matrix:
            matrix = [equations.matrix["BP2"]]
        layers.append(LayerEquations(network.layer_label(layer), tuple(Math(e) for e in index_form),
                                     tuple(Math(e) for e in matrix)))
    rows: list[CheckRow] = []
    if check and params is not None and data is not None:
        rows = _check_rows(network, params, data)
    notes = ("The matrix form repeats for every layer l:",)
    return Report(
        title=title or f"Backpropagation for the {'-'.join(map(str, network.sizes))} network",
        titled=title is not None,
        subtitle=_subtitle(network, source),
        author=author or "symback",
        source=source,
        form="indexed",
        layers=tuple(layers),
        pattern=_matrix_pattern(network),
        check=tuple(rows),
        notes=notes,
        **_network_part(network),
    )


def _parameter_equations(network: Network, equations: Any, layer: int) -> tuple[sp.Eq, sp.Eq]:
    """BP3 and BP4 of one layer as notation: ∂C/∂b(l)_j = δ(l)_j and ∂C/∂w(l)_jk = a(l−1)_k δ(l)_j
    (Nielsen's order; the factor beside δ is the derived ∂z/∂w, read off the equation)."""
    im = IndexedModel(network)
    j, k = im.index("j", layer), im.index("k", layer - 1)
    cost = im.cost_symbol
    delta = equations.deltas[layer][j]
    bias = sp.Eq(Partial(cost, im.biases[layer][j]), equations.bias[layer].rhs, evaluate=False)
    dz_dw = sp.cancel(equations.weight[layer].rhs / delta)
    weight = sp.Eq(Partial(cost, im.weights[layer][j, k]), product([dz_dw, delta]), evaluate=False)
    return bias, weight


def _textbook_delta(network: Network, equations: Any, layer: int) -> sp.Eq:
    """BP1/BP2 of one layer in the factor forms every other output uses: δ(L)_j = σ′(z(L)_j) 2(a(L)_j − y_j)
    (the index form's own presentation) and δ(l)_k = f′(z(l)_k) Σ_j w(l+1)_jk δ(l+1)_j (the layer's
    derivative, found equal to SymPy's factor of the equation, written first and by its name)."""
    if layer == network.depth:
        shown = derive(network, NodeRef("z", layer, 0), form="indexed").presentation
        return sp.Eq(equations.output.lhs, shown.chain_order, evaluate=False)
    equation = equations.hidden[layer]
    activation = network.activation(layer)
    z = equation.lhs.xreplace({equations.deltas[layer]: IndexedModel(network).zs[layer]})
    if not activation.elementwise:
        return equation
    derivative = activation.derivative_at(z)
    rest = equation.rhs / derivative
    if rest.has(z):  # the derivative is one factor, written otherwise (ReLU′'s Piecewise): found by proof
        factors = sp.Mul.make_args(equation.rhs)
        found = [f for f in factors if f.has(z) and notation_equal(f, derivative)]
        rest = sp.Mul(*(f for f in factors if f not in found[:1]))
    if rest.has(z) or not isinstance(rest, sp.Sum):
        return equation  # the layer's derivative is not a factor as such: SymPy's form, as derived
    # Σ_j w(l+1)_jk δ(l+1)_j: the weight first, as Nielsen writes BP2.
    body = rest.function
    above = equations.deltas[layer + 1]
    factors = sorted(sp.Mul.make_args(body), key=lambda f: isinstance(f, sp.Indexed) and f.base == above)
    weighted = sp.Sum(product(factors), *rest.limits)
    named = activation_forms(activation, z, IndexedModel(network).activations[layer][z.indices]).named
    written = sp.Eq(equation.lhs, product([named, weighted]), evaluate=False)
    # One letter per role within the layer's block: the layer's own neuron is j there (as in ∂C/∂b_j
    # and ∂C/∂w_jk beside it), the layer above's, summed, k: Nielsen's δ_j = f′(z_j) Σ_k w_kj δ_k.
    im = IndexedModel(network)
    own, summed = z.indices[0], rest.limits[0][0]
    return written.xreplace({own: im.index("j", layer), summed: im.index("k", layer + 1)})


def _matrix_pattern(network: Network) -> tuple[Math, ...]:
    """BP2–BP4 for a generic layer l, as math: δ(l) = (W(l+1)ᵀ δ(l+1)) ⊙ f′(z(l)), ∇_b(l) C = δ(l),
    ∇_W(l) C = δ(l) a(l−1)ᵀ; f′ is the hidden layers' own function's name when they share one."""
    hidden = {prime_name(a) for a in network.activations[:-1]}
    prime = hidden.pop() if len(hidden) == 1 else "f"

    def vector(name: str, rows: int = 1, columns: int = 1) -> sp.MatrixSymbol:
        return sp.MatrixSymbol(name, rows, columns)

    delta, delta_above = vector("delta(l)"), vector("delta(l+1)")
    weights = vector("W(l+1)", 1, 1)
    equations = [
        sp.Eq(vector("nabla_b(l) C"), delta),
        sp.Eq(vector("nabla_W(l) C"), delta * vector("a(l-1)").T),
    ]
    if network.depth > 1:
        equations.insert(0, sp.Eq(delta, sp.HadamardProduct(weights.T * delta_above, vector(f"{prime}'(z(l))"))))
    return tuple(Math(e) for e in equations)


def _check_rows(network: Network, params: Parameters, data: Dataset) -> list[CheckRow]:
    """Index form (its sums written out at the parameter's indices) against the vectorised matrix form."""
    compiled = compile_network(network)
    gradient = compiled.gradient(params, data)
    rows = []
    shown: set[NodeRef] = set()  # a tied parameter is one row, whichever of its entries comes up
    for layer in range(1, network.depth + 1):
        n, m = network.sizes[layer], network.sizes[layer - 1]
        for ref in (NodeRef("w", layer, 0, 0), NodeRef("w", layer, n - 1, m - 1), NodeRef("b", layer, n - 1)):
            if network.is_frozen(ref) or network.tied(ref)[0] in shown:
                continue
            shown.add(network.tied(ref)[0])
            index_value = _index_form_value(derive(network, ref, form="indexed"), params, data)
            matrix_value = float(gradient.weights[layer - 1][ref.j, ref.k] if ref.kind == "w"
                                 else gradient.biases[layer - 1][ref.j])
            rows.append(CheckRow(Math(sp.Symbol(network.name_of(ref)), False), _number(index_value),
                                 _number(matrix_value), f"{abs(index_value - matrix_value):.1e}"))
    return rows


def _index_form_value(derivation: Derivation, params: Parameters, data: Dataset) -> float:
    """Evaluate the index-form product itself: fix j, k, and sum its body over every index value.

    The body is compiled once with its index symbols as arguments; every array entry it reads
    (``w(L)[r, q]``, ``a(L-1)[q]``) is looked up for the whole index grid at once and the sums
    are taken by NumPy.  ``Sum.doit()`` would write out (and try to simplify) one term per path:
    minutes for a 784-4-4-10 network.
    """
    network = derivation.network
    im = IndexedModel(network)
    target = derivation.target
    fix = {}
    if len(derivation.entries) == 1:  # a tied parameter's product has each entry's indices fixed already
        fix = dict(zip(derivation.indexed_target.indices, (target.j, target.k), strict=False))
    product = derivation.indexed_product.xreplace(fix)
    forward = compile_network(network).forward(params, data.X)
    # A tied parameter's product is a sum of its entries' products, each with its own sums.
    per_example = sum(_summed_over_indices(term, im, params, data, forward) for term in sp.Add.make_args(product))
    return float(per_example.sum() if derivation.reduction == "sum" else per_example.mean())


def _summed_over_indices(product: sp.Expr, im: IndexedModel, params: Parameters, data: Dataset,
                         forward: Any) -> np.ndarray:
    """One index-form product (a Sum or its body alone) per example, its sums taken by NumPy on the index grid."""
    network = im.network
    body, limits = (product.function, product.limits) if isinstance(product, sp.Sum) else (product, ())
    shape = tuple(int(high) - int(low) + 1 for _, low, high in limits)
    grid = dict(zip([index for index, _, _ in limits],
                    np.meshgrid(*(np.arange(int(low), int(high) + 1) for _, low, high in limits), indexing="ij"),
                    strict=True))
    # Per-example arrays get the examples as their first axis, parameters broadcast over them.
    arrays: dict[sp.IndexedBase, Callable[[tuple[np.ndarray, ...]], Any]] = {}
    for layer in range(1, network.depth + 1):
        arrays[im.weights[layer]] = lambda ix, l=layer: params.weights[l - 1][ix][None]
        arrays[im.biases[layer]] = lambda ix, l=layer: params.biases[l - 1][ix][None]
        arrays[im.zs[layer]] = lambda ix, l=layer: forward.zs[l - 1][(slice(None), *ix)]
        arrays[im.activations[layer]] = lambda ix, l=layer: forward.activations[l][(slice(None), *ix)]
    arrays[im.activations[0]] = lambda ix: data.X[(slice(None), *ix)]
    arrays[im.targets] = lambda ix: data.Y[(slice(None), *ix)]

    def at(index: sp.Expr) -> np.ndarray:
        if index in grid:
            return grid[index]
        return np.full(shape, int(index), dtype=int)  # a fixed index (j, k of the target)

    def value(entry: sp.Expr) -> np.ndarray:
        if isinstance(entry, sp.KroneckerDelta):  # softmax's δ_qr, compared on the grid
            return (at(entry.args[0]) == at(entry.args[1])).astype(float)[None]
        return arrays[entry.base](tuple(at(i) for i in entry.indices))

    entries = sorted(body.atoms(sp.Indexed, sp.KroneckerDelta), key=str)
    symbols = [sp.Dummy() for _ in entries]
    compiled = lambdify(symbols, body.xreplace(dict(zip(entries, symbols, strict=True))))
    terms = np.asarray(compiled(*(value(entry) for entry in entries)), dtype=float)
    terms = np.broadcast_to(terms, (len(data), *shape))
    return terms.reshape(len(data), -1).sum(axis=1)


# -- a network with grid layers (conv1d, conv2d, recurrent): symback.render.kinds ---------------------------


@dataclass(frozen=True)
class KindReport:
    """A single-parameter report for a network with grid layers: the derived gradient, every δ above, how
    the layer passes the error down (a convolution's flipped kernel, a recurrent layer's one-step Jacobian),
    and the numbers."""

    title: str
    heading: Math
    subtitle: str
    author: str
    titled: bool
    layers: tuple[tuple[str, str], ...]
    cost: str
    parameter_count: str
    forward: tuple[Math, ...]
    gradient: Math
    generic: Math
    deltas: tuple[Math, ...]
    passes_down: Math
    passes_note: str
    jacobian: Math | None = None
    jacobian_product: Math | None = None
    examples: tuple[str, ...] = ()
    total: Math | None = None
    step_norms: str = ""
    date: str = field(default_factory=lambda: _today())


def build_kind_report(derivation: Any, params: Parameters | None = None, data: Dataset | None = None, *,
                      source: str = "", title: str | None = None, author: str | None = None) -> KindReport:
    """The :class:`KindReport` of a :class:`~symback.render.kinds.KindDerivation`."""
    network = derivation.network
    layer = derivation.layer
    lhs = derivation.gradient_equation.lhs
    cost = sp.Symbol(derivation.cost_name)
    if layer.kind in ("conv1d", "conv2d"):
        pads = ", ".join(str(p) for p in layer.pads.left)
        note = (f"The layer's derived backward pass, its sum moved from the output positions to the kernel "
                f"offsets: the correlation of δ with the flipped kernel (P = {pads}, the {layer.padding} padding; "
                "δ is zero outside its positions).")
    elif layer.kind == "recurrent":
        note = ("Backpropagation through time: the δ of step t collects the next step's δ through Wᵀ (the second "
                "sum above) and, at the last step, the readout's error; the gradient of W sums, over the steps, the "
                "δ of step t times the state of step t − 1. One step's Jacobian J, derived from the formula, is "
                "below; the error reaching step t from the last goes through their product, which shrinks when the "
                "factors f′ W are small and grows when they are large: the vanishing and exploding gradients of "
                "seed 003.")
    else:
        note = "What this layer sends to the one below."
    examples: tuple[str, ...] = ()
    total = None
    norms = ""
    if params is not None and data is not None:
        values = derivation.examples(params, data)
        value = derivation.value(params, data)
        examples = tuple(_number(float(v)) for v in values)
        shown: sp.Expr = TermSum(*(_float(float(v)) for v in values))
        if derivation.reduction == "mean":
            shown = sp.Mul(sp.Rational(1, len(data)), shown, evaluate=False)
        total = Math(EqualityChain(Partial(cost, lhs.wrt), _float(value)) if len(data) == 1
                     else EqualityChain(Partial(cost, lhs.wrt), shown, _float(value)), False)
        step = derivation.step_norms(params, data)
        if step is not None:
            norms = ", ".join(f"t = {t}: {_number(float(v))}" for t, v in enumerate(step))
    forward = [Math(equation, False) for equation in derivation.forward_equations()]
    return KindReport(
        title=title or f"{notation_text(Partial(cost, lhs.wrt))}, by the chain rule",
        heading=Math(Partial(cost, lhs.wrt), False),
        subtitle=f"for the {_shape_chain(network)} network ({', '.join(l.kind for l in network.layers)}; "
                 f"cost {network.cost.label})" + (f", from {source}" if source else ""),
        author=author or "symback", titled=title is not None,
        layers=tuple((network.layer_label(l), k.describe()) for l, k in enumerate(network.layers, 1)),
        cost=f"{network.cost.label} (examples: {network.cost.example_reduction})",
        parameter_count=f"{network.n_parameters:,} ({network.n_weights:,} weights, {network.n_biases:,} biases)",
        forward=tuple(forward),
        gradient=Math(derivation.gradient_equation), generic=Math(derivation.generic_gradient),
        deltas=tuple(Math(e, False) for e in derivation.delta_equations),
        passes_down=Math(derivation.passes_down), passes_note=note,
        jacobian=None if derivation.jacobian is None else Math(derivation.jacobian),
        jacobian_product=None if derivation.jacobian_product is None else Math(derivation.jacobian_product),
        examples=examples, total=total, step_norms=norms,
    )


#: Output formats of a :class:`KindReport`: suffix -> template.
KIND_FORMATS: Registry[str] = Registry(
    "report format", {"tex": "kind_report.tex.j2", "html": "kind_report.html.j2", "md": "kind_report.md.j2",
                      "pdf": "kind_report.tex.j2"})


# -- rendering ------------------------------------------------------------------------------------------

#: Output formats: suffix -> template (PDF is the LaTeX template compiled by pdflatex).
FORMATS: Registry[str] = Registry(
    "report format", {"tex": "report.tex.j2", "html": "report.html.j2", "md": "report.md.j2", "pdf": "report.tex.j2"}
)


def template_dir() -> Path:
    """Where the templates are: ``symback/templates`` in an installed wheel, else the checkout's ``templates/``."""
    return locate("templates", "report.tex.j2")


class Rendered(str):
    """Math (or code) already printed for the target format: the templates insert it as it is.

    >>> from markupsafe import escape
    >>> str(escape(Rendered("<mi>a</mi>"))), str(escape("<mi>a</mi>"))
    ('<mi>a</mi>', '&lt;mi&gt;a&lt;/mi&gt;')
    """

    __html__ = str.__str__  # markupsafe: already safe (built through an XML DOM)


def _md_escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in "\\`*_{}[]()#+!|<>&$~":
            out.append({"<": "&lt;", ">": "&gt;", "&": "&amp;"}.get(ch, "\\" + ch))
        else:
            out.append(ch)
    return "".join(out)


def _finalizer(fmt: str) -> Callable[[Any], Any]:
    def finalize(value: Any) -> Any:
        if isinstance(value, Rendered) or fmt == "html":
            return value  # HTML escapes by autoescape
        text = "" if value is None else str(value)
        return escape_latex(text) if fmt == "tex" else _md_escape(text)

    return finalize


@lru_cache(maxsize=4)
def _environment(fmt: str) -> Any:
    import jinja2

    options: dict[str, Any] = {
        "loader": jinja2.FileSystemLoader(str(template_dir())),
        "undefined": jinja2.StrictUndefined,
        "finalize": _finalizer(fmt),
        "trim_blocks": True,
        "lstrip_blocks": True,
        "keep_trailing_newline": True,
    }
    if fmt == "tex":
        options.update(
            block_start_string="((*", block_end_string="*))",
            variable_start_string="(((", variable_end_string=")))",
            comment_start_string="((=", comment_end_string="=))",
            autoescape=False,
        )
    else:
        options["autoescape"] = fmt == "html"
    return jinja2.Environment(**options)


def _convert(value: Any, fmt: str) -> Any:
    if isinstance(value, Math):
        if fmt == "html":
            return Rendered(mathml(value.expr, display=value.display))
        return Rendered(latex(value.expr))
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _convert(getattr(value, f.name), fmt) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [_convert(v, fmt) for v in value]
    if isinstance(value, dict):
        return {key: _convert(v, fmt) for key, v in value.items()}
    return value


def render(report: Report, fmt: str) -> str:
    """The report as text in ``fmt`` (``tex``, ``html`` or ``md``)."""
    if fmt not in ("tex", "html", "md"):
        raise SpecError(f"unknown report format {fmt!r} (known: tex, html, md, pdf)")
    templates = KIND_FORMATS if isinstance(report, KindReport) else FORMATS
    return render_template(templates[fmt], fmt, report=report)


def render_template(template: str, fmt: str, **context: Any) -> str:
    """Render any template of ``templates/`` in ``fmt`` with the report's environment.

    :class:`Math` values anywhere in ``context`` (also inside dataclasses, lists and tuples)
    are printed for the format first, so templates only lay out.
    """
    converted = {key: _convert(value, fmt) for key, value in context.items()}
    return _environment(fmt).get_template(template).render(**converted)


def compile_pdf(tex: str) -> bytes:
    """Run pdflatex (no shell escape, in a temporary directory) and return the PDF's bytes."""
    return compile_pdf_with_log(tex)[0]


def compile_pdf_with_log(tex: str) -> tuple[bytes, str]:
    """:func:`compile_pdf`, also returning pdflatex's log of the last run (overfull boxes, page count)."""
    program = shutil.which("pdflatex")
    if program is None:
        raise SymbackError("pdflatex not found: install TeX Live (Debian: texlive-latex-base "
                           "texlive-latex-recommended texlive-latex-extra lmodern) to write .pdf reports")
    with tempfile.TemporaryDirectory(prefix="symback-tex-") as work:
        source = Path(work) / "report.tex"
        source.write_text(tex, encoding="utf-8")
        command = [program, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "report.tex"]
        for _ in range(2):  # twice, so references and hyperref outlines settle
            try:
                result = subprocess.run(command, cwd=work, capture_output=True, text=True, errors="replace",
                                        timeout=120, env={**os.environ, "openin_any": "p", "openout_any": "p"})
            except subprocess.TimeoutExpired:
                raise SymbackError("pdflatex did not finish within 120 s") from None
            except OSError as error:
                raise SymbackError(f"cannot run pdflatex: {error.strerror or error}") from None
            if result.returncode != 0:
                lines = [line for line in result.stdout.splitlines() if line.startswith("!")]
                raise SymbackError(f"pdflatex failed: {lines[0] if lines else 'exit status ' + str(result.returncode)}")
        log = (Path(work) / "report.log").read_text(encoding="utf-8", errors="replace")
        return (Path(work) / "report.pdf").read_bytes(), log


def write_report(obj: Derivation | Network | Report, path: str | Path, format: str | None = None, **options: Any) -> Path:
    """Write a report; the format comes from ``format`` or the suffix (.tex, .pdf, .html, .md).

    The file is written to a temporary name and moved into place, so a failure never leaves half a report.
    ``options`` go to :func:`build_report` (``params``, ``data``, ``descent``, ``source``).
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise SpecError(f"cannot tell the report format from {str(path)!r}: use .tex, .pdf, .html or .md")
    report = obj if isinstance(obj, (Report, KindReport)) else build_report(obj, **options)
    if fmt == "pdf":
        payload = compile_pdf(render(report, "tex"))
    else:
        payload = render(report, fmt).encode("utf-8")
    return write_atomic(path, payload)
