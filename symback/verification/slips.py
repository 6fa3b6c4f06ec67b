"""Slips: the mistakes people make in a chain-rule calculation, one small registered rule each.

A rule is applied to the *true* form of what a line computes and returns the forms it takes when the
slip is made.  The judge (:mod:`symback.verification.working`) compares each with what the author wrote; the first
that matches names the slip.  Adding a slip is one :func:`register_slip` entry.

Two families:

* ``"partial"`` rules rewrite one per-example partial derivative, ``∂C/∂w`` as the chain rule gives it in
  node symbols (drop the factor 2 of a square, leave σ′(z) out, take σ′ at a, drop one path, ...);
* ``"quantity"`` rules rewrite the whole quantity of the line, written with the learning rate ``η`` and
  unevaluated derivatives (add the step instead of subtracting it, forget η, apply it twice, ...).

A rule may also ask for the quantity at another state (``Variant.state = "updated"``: an updated weight
used where the old one was needed).

>>> sorted(SLIPS)[:3]
['factor_two', 'function_not_derivative', 'learning_rate_missing']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..symbolic.network import NodeRef

__all__ = [
    "ETA",
    "SLIPS",
    "Slip",
    "SlipContext",
    "SlippedPartial",
    "Variant",
    "register_slip",
    "same_function",
    "symbolic_slip",
    "variants",
]

#: The learning rate as written in a quantity (``step = η ∂C/∂w``).
ETA = sp.Symbol("η", positive=True)

#: Most paths enumerated for the "one path left out" slip (small worked examples have a handful).
MAX_PATHS = 16


@dataclass(frozen=True)
class Variant:
    """The quantity with a slip made: ``expression`` (in the form the rule was given), what changed, where."""

    expression: sp.Expr
    detail: str
    state: str = ""  # "" (the line's own state) or "updated" (every pending update applied)


@dataclass(frozen=True)
class SlipContext:
    """What rules may look at: the judge's engine (model, partials), and the ``new X`` expressions."""

    engine: object  # symback.verification.verify._Engine (not imported: verify imports nothing from here)
    new_forms: Mapping[sp.Symbol, sp.Expr] = field(default_factory=dict)  # parameter -> X - η ∂C/∂X

    @property
    def model(self):
        return self.engine.model  # type: ignore[attr-defined]

    @property
    def network(self):
        return self.engine.network  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Slip:
    """One kind of mistake: its name as a verdict says it, its family and its rule."""

    key: str
    name: str
    family: str  # "partial" or "quantity"
    rule: Callable[..., list[Variant]]


SLIPS: dict[str, Slip] = {}


def register_slip(key: str, name: str, family: str) -> Callable[[Callable[..., list[Variant]]], Callable[..., list[Variant]]]:
    """Register a rule: ``rule(context, true) -> [Variant, ...]`` (``true``: a partial or a quantity)."""
    if family not in ("partial", "quantity"):
        raise ValueError(f"unknown slip family {family!r}")

    def decorate(rule: Callable[..., list[Variant]]) -> Callable[..., list[Variant]]:
        SLIPS[key] = Slip(key, name, family, rule)
        return rule

    return decorate


# -- helpers ----------------------------------------------------------------------------------------


def _activation_factors(context: SlipContext, true: sp.Expr) -> Iterable[tuple[sp.Symbol, sp.Symbol, sp.Expr, sp.Expr]]:
    """(z, a, σ(z), σ′(z)) for every weighted input the partial goes through with a non-constant σ′."""
    model, network = context.model, context.network
    for symbol in sorted(true.free_symbols, key=str):
        ref = model.refs.get(symbol)
        if ref is None or ref.kind != "z" or not network.activation(ref.layer).elementwise:
            continue
        activation = network.activation(ref.layer)
        derivative = activation.derivative_at(symbol)
        if derivative.free_symbols:
            yield symbol, model.symbols[NodeRef("a", ref.layer, ref.j)], activation.at(symbol), derivative


def paths(context: SlipContext, node: sp.Symbol, wrt: sp.Symbol) -> list[tuple[sp.Expr, sp.Expr]]:
    """One product of local derivatives per path from ``node`` down to ``wrt`` (empty when none), each
    with the same product as a textbook writes it (σ′(z) named), for the verdict to show."""
    model = context.model
    if node == wrt:
        return [(sp.S.One, sp.S.One)]
    ref = model.refs[node]
    if ref.kind in ("w", "b", "x", "y"):
        return []
    local = model.local_expression(ref)
    out: list[tuple[sp.Expr, sp.Expr]] = []
    for symbol in sorted(local.free_symbols, key=str):
        if symbol in model.refs:
            below = paths(context, symbol, wrt)
            if below:
                factor = sp.diff(local, symbol)
                shown = context.engine.shown_factor(node, local, symbol)  # type: ignore[attr-defined]
                out += [(factor * term, shown * form) for term, form in below]
            if len(out) > MAX_PATHS:
                return out
    return out


def _named(context: SlipContext, z: sp.Symbol) -> str:
    """The name the function of z's layer is written with: σ for a sigmoid, tanh, softplus, f for a formula."""
    from ..render.notation import function_text

    return function_text(context.network.activation(context.model.refs[z].layer))


def _prime(context: SlipContext, z: sp.Symbol, a: sp.Symbol) -> str:
    """``σ′(z(L)) = a(L)·(1 − a(L))``: a layer's derivative named, with the form it takes in a."""
    from ..render.notation import activation_forms, text

    forms = activation_forms(context.network.activation(context.model.refs[z].layer), z, a)
    return " = ".join(text(form) for form in dict.fromkeys((forms.named, forms.simplest)))


# -- partial-derivative slips -----------------------------------------------------------------------


@register_slip("factor_two", "the factor 2 of a square dropped", "partial")
def _factor_two(context: SlipContext, true: sp.Expr, derivative: sp.Derivative) -> list[Variant]:
    coefficient, square = context.network.cost.term.as_coeff_Mul()
    if coefficient != 1 or not (isinstance(square, sp.Pow) and square.exp == 2):
        return []  # only a plain square (a − y)² has a 2 to drop (not ½(a − y)², not cross-entropy)
    return [Variant(true / 2, "differentiating (a − y)² gives 2(a − y): the right factor is 2")]


@register_slip("function_not_derivative", "the function written instead of its derivative", "partial")
def _function(context: SlipContext, true: sp.Expr, derivative: sp.Derivative) -> list[Variant]:
    engine = context.engine
    function = derivative.expr.xreplace({engine.cost: engine.model.local_expression(NodeRef("C"))})  # type: ignore[attr-defined]
    return [Variant(function, f"{derivative.expr} itself, not its derivative with respect to {derivative.variables[0]}")]


@register_slip("sigma_prime_left_out", "σ′(z) left out", "partial")
def _sigma_prime_left_out(context: SlipContext, true: sp.Expr, derivative: sp.Derivative) -> list[Variant]:
    return [Variant(true / d, f"the factor {_prime(context, z, a)} is missing")
            for z, a, _, d in _activation_factors(context, true)]


@register_slip("sigma_for_sigma_prime", "σ(z) written for σ′(z)", "partial")
def _sigma_for_prime(context: SlipContext, true: sp.Expr, derivative: sp.Derivative) -> list[Variant]:
    return [Variant(true / d * s, f"{_named(context, z)}({z}) where {_prime(context, z, a)} belongs")
            for z, a, s, d in _activation_factors(context, true)]


@register_slip("sigma_prime_at_a", "σ′ taken at a instead of z", "partial")
def _sigma_prime_at_a(context: SlipContext, true: sp.Expr, derivative: sp.Derivative) -> list[Variant]:
    return [
        Variant(true / d * d.subs(z, a), f"{_named(context, z)}′({a}) where {_named(context, z)}′({z}) belongs")
        for z, a, _, d in _activation_factors(context, true)
    ]


@register_slip("sign_flipped", "the sign of (a − y) flipped", "partial")
def _sign(context: SlipContext, true: sp.Expr, derivative: sp.Derivative) -> list[Variant]:
    return [Variant(-true, "the derivative of the cost is in (a − y), not (y − a)")]


@register_slip("path_left_out", "one path of a sum over paths left out", "partial")
def _path_left_out(context: SlipContext, true: sp.Expr, derivative: sp.Derivative) -> list[Variant]:
    engine = context.engine
    if derivative.expr != engine.cost:  # type: ignore[attr-defined]
        return []
    terms = paths(context, derivative.expr, derivative.variables[0])
    if not 2 <= len(terms) <= MAX_PATHS:
        return []
    from ..render.notation import text

    return [Variant(true - term, f"the path {text(shown)} of the {len(terms)} is missing") for term, shown in terms]


@register_slip("wrong_layer", "a factor from the wrong layer", "partial")
def _wrong_layer(context: SlipContext, true: sp.Expr, derivative: sp.Derivative) -> list[Variant]:
    model, network = context.model, context.network
    out = []
    for symbol in sorted(true.free_symbols, key=str):
        ref = model.refs.get(symbol)
        if ref is None or ref.kind not in ("a", "x"):
            continue
        layer = 0 if ref.kind == "x" else ref.layer
        for other in (layer - 1, layer + 1):
            if not 0 <= other <= network.depth or ref.j is None or ref.j >= network.sizes[other]:
                continue
            replacement = model.symbols[NodeRef("x", 0, ref.j) if other == 0 else NodeRef("a", other, ref.j)]
            out.append(Variant(true.xreplace({symbol: replacement}), f"{replacement} where {symbol} belongs"))
    return out


# -- whole-quantity slips ---------------------------------------------------------------------------


def _parameter_of_new(context: SlipContext, quantity: sp.Expr) -> sp.Symbol | None:
    return next((p for p, form in context.new_forms.items() if form == quantity), None)


@register_slip("step_added", "the step added instead of subtracted", "quantity")
def _step_added(context: SlipContext, quantity: sp.Expr) -> list[Variant]:
    parameter = _parameter_of_new(context, quantity)
    if parameter is None:
        return []
    return [Variant(2 * parameter - quantity, "the step was added; gradient descent subtracts it: new = old − step")]


@register_slip("step_sign", "the sign of the step flipped", "quantity")
def _step_sign(context: SlipContext, quantity: sp.Expr) -> list[Variant]:
    if not quantity.has(ETA) or _parameter_of_new(context, quantity) is not None:
        return []
    return [Variant(-quantity, "step = learning rate × slope")]


@register_slip("learning_rate_missing", "the learning rate left out", "quantity")
def _rate_missing(context: SlipContext, quantity: sp.Expr) -> list[Variant]:
    return [Variant(quantity.subs(ETA, 1), "the slope must be multiplied by the learning rate")] if quantity.has(ETA) else []


@register_slip("learning_rate_twice", "the learning rate applied twice", "quantity")
def _rate_twice(context: SlipContext, quantity: sp.Expr) -> list[Variant]:
    return [Variant(quantity.subs(ETA, ETA**2), "η once: step = η × slope")] if quantity.has(ETA) else []


@register_slip("updated_weight_used", "an updated weight used where the old one was needed", "quantity")
def _updated_weight(context: SlipContext, quantity: sp.Expr) -> list[Variant]:
    # Every partial of one gradient step is taken at the old weights (as backpropagation computes them).
    return [Variant(quantity, "every partial of a step is taken at the old weights", state="updated")]


# -- applying the rules ------------------------------------------------------------------------------


class SlippedPartial(sp.Function):
    """A partial derivative replaced by a slipped per-example form; ``total`` (1/0): summed like ∂C/∂w."""

    nargs = 2


def variants(context: SlipContext, quantity: sp.Expr) -> Iterator[tuple[Slip, Variant]]:
    """(slip, variant) for every registered slip that applies: the quantity's own first, then its partials'
    (each partial replaced by a :class:`SlippedPartial` of its slipped per-example form)."""
    engine, model = context.engine, context.model
    for slip in SLIPS.values():
        if slip.family == "quantity":
            yield from ((slip, variant) for variant in slip.rule(context, quantity))
    for slip in SLIPS.values():
        if slip.family != "partial":
            continue
        for derivative in sorted(quantity.atoms(sp.Derivative), key=str):
            true = engine.partial(derivative.expr, derivative.variables[0])  # type: ignore[attr-defined]
            wrt = model.refs[derivative.variables[0]]
            total = int(derivative.expr == engine.cost and wrt.is_parameter)  # type: ignore[attr-defined]
            for variant in slip.rule(context, true, derivative):
                form = quantity.xreplace({derivative: SlippedPartial(variant.expression, sp.Integer(total))})
                yield slip, Variant(form, variant.detail, variant.state)


def symbolic_slip(context: SlipContext, quantity: sp.Expr, written: sp.Expr, *,
                  local: Callable[[sp.Expr], sp.Expr | None], rng: np.random.Generator) -> str:
    """``"name: detail"`` of the first slip whose form of ``quantity`` is the function ``written`` is, else ``""``.

    ``local`` gives an expression's per-example form in node symbols (None when it needs numbers).
    """
    target = local(written)
    if target is None:
        return ""
    target = context.model.substitute_forward(target)
    for slip, variant in variants(context, quantity):
        if variant.state:
            continue
        form = local(variant.expression)
        if form is not None and same_function(context.model.substitute_forward(form), target, rng=rng):
            return f"{slip.name}: {variant.detail}"
    return ""


# -- comparing forms --------------------------------------------------------------------------------


def same_function(a: sp.Expr, b: sp.Expr, *, rng: np.random.Generator, points: int = 10) -> bool:
    """Whether two expressions agree at random points (a quick numeric test, enough to name a slip)."""
    from ..compile.compiler import lambdify

    symbols = sorted((a - b).free_symbols | a.free_symbols | b.free_symbols, key=str)
    if not symbols:
        try:
            return bool(abs(complex(sp.N(a - b, 30))) <= 1e-12 * (1 + abs(complex(sp.N(a, 30)))))
        except (TypeError, ValueError):
            return False
    values = rng.uniform(-1.5, 1.5, size=(points, len(symbols)))
    columns = [values[:, i] for i in range(len(symbols))]
    with np.errstate(all="ignore"):
        left = np.broadcast_to(np.asarray(lambdify(symbols, a)(*columns), dtype=complex), (points,))
        right = np.broadcast_to(np.asarray(lambdify(symbols, b)(*columns), dtype=complex), (points,))
    finite = np.isfinite(left) & np.isfinite(right)
    if finite.sum() < 3:
        return False
    scale = np.maximum(np.abs(left), np.abs(right))[finite]
    return bool(np.all(np.abs(left - right)[finite] <= 1e-9 * scale + 1e-12))
