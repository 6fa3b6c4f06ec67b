"""Exercise sheets: reproducible variants of a backpropagation exercise, each with its answer key.

``symback exercise SPEC --variants N --seed S -o DIR/`` reads an exercise spec (a network, the ranges its
numbers are drawn from, the partials and updates to ask for, the learning rate, the decimals asked) and
writes, for every variant, a question sheet (``sheet-NN.pdf/.html/.md``, with a picture of the network and
its numbers, the notation and numbered questions), an answer key (``answers-NN.pdf/.html/.md``: the worked
solution in textbook form), the model solution as a submission (``solution-NN.md``, the plain text that
``symback grade`` and ``symback verify`` read) and one ``key.json`` for :mod:`symback.classroom.grade`.

Numbers are "nice": weights, biases, inputs and targets with 1-2 decimals, never 0, no saturated unit
(every ``|z| < max_abs_z``, 4 by default), no answer that rounds to 0 at the decimals asked (each answer
has at least two significant digits there), and every variant differs from the others.  Variant ``n``
of seed ``S`` is drawn from ``numpy.random.default_rng([S, n, attempt])``, so it does not depend on how
many variants are asked for, and the same seed writes byte-identical files (no timestamps; the PDF has
no dates and an empty trailer ID).

The lines of the worked solution come from small registered hand forms (:data:`ACTIVATION_FORMS`,
:data:`COST_FORMS`): how a textbook writes a unit's function and derivative by hand, in text (what a
student types, what the judge reads) and in LaTeX.

>>> exercise = load_exercise(Path(__file__).parent.parent.parent / "examples" / "exercise_222.toml")
>>> variant = draw_variants(exercise, 1, seed=7)[0]
>>> solution = solve(exercise, variant)
>>> solution.lines[0].text.split(" = ")[0]
'net_h1'
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from ..errors import SpecError, SymbackError
from ..files import read_text, write_atomic
from ..grammar.tomlread import decimals_as_floats, parse_toml
from ..symbolic.network import Network, NodeRef

__all__ = [
    "ACTIVATION_FORMS",
    "COST_FORMS",
    "Exercise",
    "HandForm",
    "KeyLine",
    "Solution",
    "Variant",
    "draw_variants",
    "exercise_from_text",
    "front_matter",
    "load_exercise",
    "solve",
    "submission_text",
    "write_exercise",
]

KEY_FORMAT = "symback-exercise-key"
KEY_VERSION = 1
MAX_VARIANTS = 500
#: An answer this close (in units of its last decimal) to a half-way point is not nice: it redraws.
HALF_WAY_MARGIN = 0.02
#: Draws tried for one variant before the spec's ranges are said to be too tight.
MAX_ATTEMPTS = 2000


# -- hand forms: how a textbook writes a function and its derivative ---------------------------------


@dataclass(frozen=True)
class HandForm:
    """A function written by hand: text and LaTeX templates with ``{a}``/``{z}``/``{y}`` slots, and its SymPy form.

    ``text`` is what a student types (and the judge reads); ``tex`` the same in LaTeX; ``expression``
    builds the SymPy form from the slots' values (symbols or numbers).
    """

    text: str
    tex: str
    expression: Callable[..., sp.Expr]


@dataclass(frozen=True)
class ActivationForm:
    """A unit's activation and its derivative, by hand."""

    value: HandForm  # slot {z}
    derivative: HandForm  # slots {a} (the activation) and {z}


@dataclass(frozen=True)
class CostForm:
    """One output's cost term and its derivative with respect to the output, by hand."""

    term: HandForm  # slots {a}, {y}
    derivative: HandForm  # slots {a}, {y}


ACTIVATION_FORMS: dict[str, ActivationForm] = {}
COST_FORMS: dict[str, CostForm] = {}


def register_activation_form(name: str, form: ActivationForm) -> None:
    ACTIVATION_FORMS[name] = form


def register_cost_form(name: str, form: CostForm) -> None:
    COST_FORMS[name] = form


register_activation_form("sigmoid", ActivationForm(
    HandForm("1/(1 + e^-{z})", r"\frac{1}{1 + e^{-{z}}}", lambda z: 1 / (1 + sp.exp(-z))),
    HandForm("{a}(1 - {a})", r"{a}\,(1 - {a})", lambda a, z: a * (1 - a)),
))
register_activation_form("tanh", ActivationForm(
    HandForm("tanh({z})", r"\tanh({z})", lambda z: sp.tanh(z)),
    HandForm("1 - {a}^2", r"1 - {a}^{2}", lambda a, z: 1 - a**2),
))
register_cost_form("half_squared_error", CostForm(
    HandForm("1/2 ({y} - {a})^2", r"\tfrac{1}{2}({y} - {a})^{2}", lambda a, y: (y - a) ** 2 / 2),
    HandForm("{a} - {y}", r"{a} - {y}", lambda a, y: a - y),
))
register_cost_form("squared_error", CostForm(
    HandForm("({y} - {a})^2", r"({y} - {a})^{2}", lambda a, y: (y - a) ** 2),
    HandForm("2({a} - {y})", r"2\,({a} - {y})", lambda a, y: 2 * (a - y)),
))


# -- the exercise spec ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """Where one kind of number is drawn from: ``low`` to ``high`` with ``decimals`` decimals, never near 0."""

    low: Decimal
    high: Decimal
    decimals: int

    def draw(self, rng: np.random.Generator, count: int) -> list[Decimal]:
        unit = Decimal(1).scaleb(-self.decimals)
        low, high = int(self.low / unit), int(self.high / unit)
        floor = Decimal("0.05")  # a given number never rounds to 0 at one decimal
        choices = [k for k in range(low, high + 1) if abs(k * unit) >= floor]
        picks = rng.choice(len(choices), size=count)
        return [(choices[int(i)] * unit).normalize() for i in picks]


_RANGE_DEFAULTS = {
    "weights": ("-1", "1", 2),
    "biases": ("-0.5", "0.5", 2),
    "inputs": ("0.05", "1", 2),
    "targets": ("0.01", "0.99", 2),
}
_TOP_KEYS = {"title", "network", "names", "numbers", "ask", "marks", "learning_rate", "decimals", "instructions"}
_MARK_KEYS = {"forward": 1, "factor": 1, "partial": 2, "update": 1, "method": 0.5}


@dataclass(frozen=True)
class Exercise:
    """An exercise spec: the network, how its numbers are drawn, what is asked and how lines are marked."""

    title: str
    network_table: Mapping[str, Any]
    names: Mapping[str, str]
    network: Network
    ranges: Mapping[str, Range]
    max_abs_z: float
    learning_rate: Decimal
    decimals: int
    partials: tuple[NodeRef, ...]
    updates: tuple[NodeRef, ...]
    marks: Mapping[str, float]
    instructions: str = ""
    path: Path | None = None

    @property
    def activation_forms(self) -> tuple[ActivationForm, ...]:
        return tuple(ACTIVATION_FORMS[a.name] for a in self.network.activations)

    @property
    def cost_form(self) -> CostForm:
        return COST_FORMS[self.network.cost.name]

    def name(self, ref: NodeRef) -> str:
        return self.network.name_of(ref)


def load_exercise(path: str | Path) -> Exercise:
    """Read an exercise spec (TOML); anything unusable is one SpecError naming the file."""
    path = Path(path)
    text = read_text(path, "exercise spec")
    try:
        return exercise_from_text(text, path=path)
    except SymbackError as error:
        raise SpecError(f"{path}: {error}") from None


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise SpecError(f"{what} must be a number, not {value!r}")
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite() or abs(number) > 1000:
        raise SpecError(f"{what} must be a finite number of ordinary size, not {value}")
    return number


def _range(raw: Any, what: str, default: tuple[str, str, int]) -> Range:
    if raw is None:
        return Range(Decimal(default[0]), Decimal(default[1]), default[2])
    if not isinstance(raw, Mapping) or set(raw) - {"from", "to", "decimals"}:
        raise SpecError(f"[numbers] {what} is a table {{from = ..., to = ..., decimals = 1 or 2}}")
    low = _decimal(raw.get("from", Decimal(default[0])), f"{what}.from")
    high = _decimal(raw.get("to", Decimal(default[1])), f"{what}.to")
    decimals = raw.get("decimals", default[2])
    if decimals not in (1, 2):
        raise SpecError(f"{what}.decimals must be 1 or 2 (nice numbers), not {decimals!r}")
    if not low < high:
        raise SpecError(f"{what}: from = {low} must be below to = {high}")
    result = Range(low, high, decimals)
    unit = Decimal(1).scaleb(-decimals)
    if not any(abs(k * unit) >= Decimal("0.05") for k in range(int(low / unit), int(high / unit) + 1)):
        raise SpecError(f"{what}: from {low} to {high} holds no number away from 0")
    return result


def exercise_from_text(text: str, *, path: Path | None = None) -> Exercise:
    """Parse an exercise spec's TOML text (see :func:`load_exercise`)."""
    from ..spec.loader import spec_from_dict

    raw = parse_toml(text, parse_float=Decimal)  # Decimals keep the digits of the ranges
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise SpecError(f"unknown key or section {unknown[0]!r} (known: {', '.join(sorted(_TOP_KEYS))})")
    if not isinstance(raw.get("network"), Mapping):
        raise SpecError("no [network]: give layers, activations and cost")
    names = raw.get("names", {})
    if not isinstance(names, Mapping) or not all(isinstance(v, str) for v in names.values()):
        raise SpecError("[names] maps canonical names to your own, e.g. \"w(1)_0_0\" = \"w1\"")
    network_table = decimals_as_floats(raw["network"])
    spec = spec_from_dict({"network": network_table, "names": dict(names)})
    network = spec.network
    if network.ties:
        raise SpecError("an exercise gives every parameter its own name (tied parameters are not supported)")
    missing = [a.name for a in network.activations if a.name not in ACTIVATION_FORMS]
    if missing:
        raise SpecError(f"activation {missing[0]!r} has no hand form for an exercise (known: "
                        f"{', '.join(sorted(ACTIVATION_FORMS))})")
    if network.cost.name not in COST_FORMS:
        raise SpecError(f"cost {network.cost.name!r} has no hand form for an exercise (known: "
                        f"{', '.join(sorted(COST_FORMS))})")
    if network.cost.output_reduction != "sum":
        raise SpecError("an exercise's cost sums over the outputs (outputs = \"sum\")")
    numbers = raw.get("numbers", {})
    if not isinstance(numbers, Mapping):
        raise SpecError("[numbers] must be a table")
    unknown = sorted(set(numbers) - {*_RANGE_DEFAULTS, "max_abs_z"})
    if unknown:
        raise SpecError(f"unknown key {unknown[0]!r} in [numbers] (known: {', '.join([*_RANGE_DEFAULTS, 'max_abs_z'])})")
    ranges = {kind: _range(numbers.get(kind), kind, default) for kind, default in _RANGE_DEFAULTS.items()}
    max_abs_z = float(_decimal(numbers.get("max_abs_z", 4), "max_abs_z"))
    if not max_abs_z > 0:
        raise SpecError("max_abs_z must be positive")
    rate = _decimal(raw.get("learning_rate", Decimal("0.5")), "learning_rate")
    if not rate > 0:
        raise SpecError("learning_rate must be positive")
    decimals = raw.get("decimals", 4)
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 2 <= decimals <= 8:
        raise SpecError(f"decimals (of every answer) must be a whole number from 2 to 8, not {decimals!r}")
    ask = raw.get("ask", {})
    if not isinstance(ask, Mapping) or set(ask) - {"partials", "updates"}:
        raise SpecError("[ask] has partials = [\"w5\", ...] and updates = [\"w5\", ...]")
    partials = _parameters(network, ask.get("partials", []), "partials")
    updates = _parameters(network, ask.get("updates", []), "updates")
    if not partials:
        raise SpecError("[ask] partials names at least one weight or bias, e.g. partials = [\"w5\"]")
    extra = [network.name_of(r) for r in updates if r not in partials]
    if extra:
        raise SpecError(f"updates: {extra[0]} is updated but its partial is not asked (add it to partials)")
    marks_raw = raw.get("marks", {})
    if not isinstance(marks_raw, Mapping) or set(marks_raw) - set(_MARK_KEYS):
        raise SpecError(f"[marks] has {', '.join(_MARK_KEYS)}")
    marks = {key: float(_decimal(marks_raw.get(key, default), f"marks.{key}")) for key, default in _MARK_KEYS.items()}
    if any(value < 0 for value in marks.values()) or marks["method"] > 1:
        raise SpecError("marks are not negative, and method (a fraction of a line's marks) is at most 1")
    title = raw.get("title", "Backpropagation by hand")
    instructions = raw.get("instructions", "")
    if not isinstance(title, str) or not isinstance(instructions, str):
        raise SpecError("title and instructions are strings")
    return Exercise(title, network_table, dict(names), network, ranges, max_abs_z, rate, decimals, partials,
                    updates, marks, instructions, path)


def _parameters(network: Network, names: Any, what: str) -> tuple[NodeRef, ...]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SpecError(f"[ask] {what} is a list of parameter names, e.g. [\"w5\", \"w1\"]")
    refs = []
    for name in names:
        ref = network.resolve(name)
        if not ref.is_parameter:
            raise SpecError(f"[ask] {what}: {name!r} is not a weight or bias")
        if ref not in refs:
            refs.append(ref)
    return tuple(refs)


# -- variants -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One variant's numbers, as written on its sheet: parameter and data names -> value."""

    number: int
    values: Mapping[str, Decimal]

    @property
    def label(self) -> str:
        return f"{self.number:02d}"

    def key(self) -> tuple[str, ...]:
        return tuple(str(v) for v in self.values.values())


def _given(exercise: Exercise) -> list[tuple[NodeRef, str]]:
    """Every given number of a variant, in sheet order: inputs, weights and biases layer by layer, targets."""
    network = exercise.network
    out: list[tuple[NodeRef, str]] = [(NodeRef("x", 0, j), "inputs") for j in range(network.sizes[0])]
    for layer in range(1, network.depth + 1):
        for j in range(network.sizes[layer]):
            out += [(NodeRef("w", layer, j, k), "weights") for k in range(network.sizes[layer - 1])]
        out += [(NodeRef("b", layer, j), "biases") for j in range(network.sizes[layer])]
    out += [(NodeRef("y", 0, j), "targets") for j in range(network.sizes[-1])]
    return out


def draw_variants(exercise: Exercise, count: int, *, seed: int) -> list[Variant]:
    """``count`` distinct variants with nice numbers (see the module docstring), reproducible from ``seed``.

    >>> exercise = load_exercise(Path(__file__).parent.parent.parent / "examples" / "exercise_222.toml")
    >>> [v.number for v in draw_variants(exercise, 3, seed=1)]
    [1, 2, 3]
    """
    if not 1 <= count <= MAX_VARIANTS:
        raise SpecError(f"--variants must be from 1 to {MAX_VARIANTS}, not {count}")
    if seed < 0:
        raise SpecError("--seed must not be negative")
    given = _given(exercise)
    seen: set[tuple[str, ...]] = set()
    variants = []
    for number in range(1, count + 1):
        for attempt in range(MAX_ATTEMPTS):
            rng = np.random.default_rng([seed, number, attempt])
            values = {}
            for kind in _RANGE_DEFAULTS:
                refs = [ref for ref, which in given if which == kind]
                for ref, value in zip(refs, exercise.ranges[kind].draw(rng, len(refs)), strict=True):
                    values[exercise.name(ref)] = value
            ordered = {exercise.name(ref): values[exercise.name(ref)] for ref, _ in given}
            variant = Variant(number, ordered)
            if variant.key() in seen or not _nice(exercise, variant):
                continue
            seen.add(variant.key())
            variants.append(variant)
            break
        else:
            raise SpecError(f"no nice variant {number} in {MAX_ATTEMPTS} draws: widen the [numbers] ranges or "
                            f"raise max_abs_z")
    return variants


def _nice(exercise: Exercise, variant: Variant) -> bool:
    """No saturated unit, and every answer has two significant digits at the decimals asked."""
    solution = solve(exercise, variant)
    smallest = 10.0 ** (1 - exercise.decimals)
    for line in solution.lines:
        if line.kind == "z" and not abs(line.value) < exercise.max_abs_z:
            return False
        if not (math.isfinite(line.value) and abs(line.value) >= smallest):
            return False
        # No answer near a half-way point (0.6145 to 3 decimals): how it rounds is never in doubt.
        scaled = abs(line.value) * 10.0**exercise.decimals
        if abs(scaled - math.floor(scaled) - 0.5) < HALF_WAY_MARGIN:
            return False
    return True


# -- the worked solution --------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyLine:
    """One marked line of the worked solution: ``quantity = formula = arithmetic = value``.

    ``formula`` names earlier lines' quantities and given numbers; ``arithmetic`` is the formula with the
    numbers put in (earlier answers as written, rounded to the decimals asked); ``value`` is exact.
    """

    label: str  # "1.3": question 1, line 3
    question: int
    kind: str  # "z", "a", "cost", "cost_derivative", "activation_derivative", "backprop", "partial", "update"
    quantity: str
    formula: str
    arithmetic: str
    value: float
    written: str
    marks: float
    method: float  # marks for a right formula with a wrong number
    tex_quantity: str = ""
    tex_formula: str = ""
    tex_arithmetic: str = ""

    @property
    def text(self) -> str:
        return f"{self.quantity} = {self.formula} = {self.arithmetic} = {self.written}"


@dataclass(frozen=True)
class Question:
    number: int
    title: str
    ask: str
    lines: tuple[KeyLine, ...]

    @property
    def marks(self) -> float:
        return sum(line.marks for line in self.lines)


@dataclass(frozen=True)
class Solution:
    """A variant's questions and their worked lines, in order."""

    variant: Variant
    questions: tuple[Question, ...]

    @property
    def lines(self) -> tuple[KeyLine, ...]:
        return tuple(line for question in self.questions for line in question.lines)

    @property
    def marks(self) -> float:
        return sum(q.marks for q in self.questions)


def _number(value: Decimal | float, decimals: int | None = None) -> str:
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
    else:
        text = f"{value:.{decimals}f}"
    if text.startswith("-0.") and not text.strip("-0."):
        text = text[1:]
    return text


@dataclass
class _Writer:
    """Builds the lines of one variant: every quantity's name, exact value and value as written."""

    exercise: Exercise
    variant: Variant
    exact: dict[str, float] = field(default_factory=dict)  # quantity text -> exact value
    shown: dict[str, str] = field(default_factory=dict)  # quantity text -> as written
    tex: dict[str, str] = field(default_factory=dict)  # quantity text -> LaTeX
    lines: list[KeyLine] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, value in self.variant.values.items():
            self.exact[name] = float(value)
            self.shown[name] = _number(value)
            self.tex[name] = _tex_name(name)
        rate = _number(self.exercise.learning_rate)
        self.exact["η"], self.shown["η"], self.tex["η"] = float(self.exercise.learning_rate), rate, r"\eta"

    def fill(self, form: HandForm, slots: Mapping[str, str]) -> tuple[str, str, str, str, float]:
        """(formula text, arithmetic text, formula LaTeX, arithmetic LaTeX, exact value) of a hand form."""
        def number(name: str) -> str:
            text = self.shown[name]
            return f"({text})" if text.startswith("-") else text

        formula = form.text.format(**slots)
        arithmetic = _single_parentheses(form.text.format(**{k: number(v) for k, v in slots.items()}))
        tex_formula = _tex_format(form.tex, {k: self.tex[v] for k, v in slots.items()})
        tex_arithmetic = _single_parentheses(_tex_format(form.tex, {k: number(v) for k, v in slots.items()}))
        value = float(form.expression(**{k: sp.Float(self.exact[v], 30) for k, v in slots.items()}))
        return formula, arithmetic, tex_formula, tex_arithmetic, value

    def add(self, question: int, kind: str, quantity: str, tex_quantity: str, parts: tuple[str, str, str, str, float],
            marks: float) -> None:
        formula, arithmetic, tex_formula, tex_arithmetic, value = parts
        decimals = self.exercise.decimals
        written = _number(value, decimals)
        self.exact[quantity], self.shown[quantity], self.tex[quantity] = value, written, tex_quantity
        index = sum(1 for line in self.lines if line.question == question) + 1
        self.lines.append(KeyLine(f"{question}.{index}", question, kind, quantity, formula, arithmetic, value, written,
                                  marks, marks * self.exercise.marks["method"], tex_quantity, tex_formula,
                                  tex_arithmetic))

    def sum_of_products(self, products: list[list[str]]) -> tuple[str, str, str, str, float]:
        """``p1 × q1 + p2 × q2 + …`` over quantities already known (names), in text and LaTeX."""
        def number(name: str) -> str:
            text = self.shown[name]
            return f"({text})" if text.startswith("-") else text

        formula = " + ".join(" × ".join(term) for term in products)
        arithmetic = " + ".join(" × ".join(number(n) for n in term) for term in products)
        tex_formula = " + ".join(r" \cdot ".join(self.tex[n] for n in term) for term in products)
        tex_arithmetic = " + ".join(r" \times ".join(number(n) for n in term) for term in products)
        value = sum(math.prod(self.exact[n] for n in term) for term in products)
        return formula, arithmetic, tex_formula, tex_arithmetic, value


def _single_parentheses(text: str) -> str:
    """``tanh((-0.658))`` as ``tanh(-0.658)``: a negative number already inside parentheses needs no more."""
    return re.sub(r"\(\((-[0-9.]+)\)\)", r"(\1)", text)


def _tex_name(name: str) -> str:
    from ..render.latex import latex

    return latex(sp.Symbol(name))


def _tex_format(template: str, slots: Mapping[str, str]) -> str:
    """``str.format`` for LaTeX templates: ``{a}`` slots filled, every other brace kept."""
    out = template
    for key, value in slots.items():
        out = out.replace("{" + key + "}", "{" + value + "}")
    return out


def solve(exercise: Exercise, variant: Variant) -> Solution:
    """The worked solution of ``variant``: the forward pass, the chain-rule factors, the partials, the updates."""
    network = exercise.network
    writer = _Writer(exercise, variant)
    name, marks = exercise.name, exercise.marks
    cost = name(NodeRef("C"))
    L = network.depth
    questions: list[tuple[str, str]] = []

    def a_of(layer: int, j: int) -> str:
        return name(NodeRef("x", 0, j)) if layer == 0 else name(NodeRef("a", layer, j))

    def partial(top: str, bottom: str) -> tuple[str, str]:
        return f"∂{top}/∂{bottom}", rf"\frac{{\partial {writer.tex[top] if top in writer.tex else _tex_name(top)}}}" \
                                    rf"{{\partial {writer.tex[bottom] if bottom in writer.tex else _tex_name(bottom)}}}"

    # 1. the forward pass
    questions.append(("The forward pass", f"Compute every weighted input, every activation and the cost {cost}."))
    q = 1
    for layer in range(1, L + 1):
        form = exercise.activation_forms[layer - 1]
        for j in range(network.sizes[layer]):
            z = name(NodeRef("z", layer, j))
            terms = [[name(NodeRef("w", layer, j, k)), a_of(layer - 1, k)] for k in range(network.sizes[layer - 1])]
            f, ar, tf, ta, value = writer.sum_of_products(terms)
            b = name(NodeRef("b", layer, j))
            shown_b = writer.shown[b]
            parts = (f"{f} + {b}", f"{ar} + {'(' + shown_b + ')' if shown_b.startswith('-') else shown_b}",
                     f"{tf} + {writer.tex[b]}", f"{ta} + {shown_b}", value + writer.exact[b])
            writer.add(q, "z", z, _tex_name(z), parts, marks["forward"])
            a = name(NodeRef("a", layer, j))
            writer.add(q, "a", a, _tex_name(a), writer.fill(form.value, {"z": z}), marks["forward"])
    outputs = [(name(NodeRef("a", L, j)), name(NodeRef("y", 0, j))) for j in range(network.sizes[L])]
    cost_parts = [writer.fill(exercise.cost_form.term, {"a": a, "y": y}) for a, y in outputs]
    summed = (" + ".join(p[0] for p in cost_parts), " + ".join(p[1] for p in cost_parts),
              " + ".join(p[2] for p in cost_parts), " + ".join(p[3] for p in cost_parts), sum(p[4] for p in cost_parts))
    writer.add(q, "cost", cost, _tex_name(cost), summed, marks["forward"])

    # 2. one question per partial asked, with the chain-rule factors it needs (each written once)
    def dC_da(layer: int, j: int, question: int) -> str:
        a = name(NodeRef("a", layer, j))
        quantity, tex = partial(cost, a)
        if quantity in writer.exact:
            return quantity
        if layer == L:
            y = name(NodeRef("y", 0, j))
            writer.add(question, "cost_derivative", quantity, tex,
                       writer.fill(exercise.cost_form.derivative, {"a": a, "y": y}), marks["factor"])
            return quantity
        terms = []
        for i in range(network.sizes[layer + 1]):
            upper = dC_da(layer + 1, i, question)
            factor = da_dz(layer + 1, i, question)
            terms.append([upper, factor, name(NodeRef("w", layer + 1, i, j))])
        writer.add(question, "backprop", quantity, tex, writer.sum_of_products(terms), marks["factor"])
        return quantity

    def da_dz(layer: int, j: int, question: int) -> str:
        a, z = name(NodeRef("a", layer, j)), name(NodeRef("z", layer, j))
        quantity, tex = partial(a, z)
        if quantity not in writer.exact:
            form = exercise.activation_forms[layer - 1].derivative
            writer.add(question, "activation_derivative", quantity, tex, writer.fill(form, {"a": a, "z": z}),
                       marks["factor"])
        return quantity

    for ref in exercise.partials:
        q += 1
        p = name(ref)
        quantity, tex = partial(cost, p)
        questions.append((f"The partial {quantity}", f"Compute {quantity} by the chain rule, one factor per line."))
        upper, factor = dC_da(ref.layer, ref.j, q), da_dz(ref.layer, ref.j, q)
        term = [upper, factor] + ([a_of(ref.layer - 1, ref.k)] if ref.kind == "w" else [])
        writer.add(q, "partial", quantity, tex, writer.sum_of_products([term]), marks["partial"])

    # 3. the updates, every one from the partials at the old weights (as backpropagation computes them)
    if exercise.updates:
        q += 1
        rate = writer.shown["η"]
        listed = ", ".join(name(r) for r in exercise.updates)
        questions.append(("One step of gradient descent",
                          f"With learning rate η = {rate}, compute the new {listed} (every partial at the old weights)."))
        for ref in exercise.updates:
            p = name(ref)
            slope = partial(cost, p)[0]
            f, ar, tf, ta, value = writer.sum_of_products([["η", slope]])
            shown_p = writer.shown[p]
            parts = (f"{p} - {f}", f"{shown_p} - {ar}", f"{writer.tex[p]} - {tf}", f"{shown_p} - {ta}",
                     writer.exact[p] - value)
            writer.add(q, "update", f"new {p}", rf"{writer.tex[p]}^{{+}}", parts, marks["update"])
    grouped = tuple(Question(number, title, ask, tuple(line for line in writer.lines if line.question == number))
                    for number, (title, ask) in enumerate(questions, 1))
    return Solution(variant, grouped)


# -- the texts ------------------------------------------------------------------------------------------


def front_matter(exercise: Exercise, variant: Variant) -> str:
    """The judge's front matter for a variant (TOML, between ``+++`` lines): network, names, numbers, rate."""
    network = exercise.network
    lines = ["+++", f"title = {json.dumps(f'{exercise.title}, variant {variant.label}', ensure_ascii=False)}",
             f"learning_rate = {_number(exercise.learning_rate)}", "", "[network]"]
    for key, value in exercise.network_table.items():
        lines.append(f"{key} = {_toml(value)}")
    if exercise.names:
        lines += ["", "[names]"] + [f"{json.dumps(k)} = {json.dumps(v, ensure_ascii=False)}"
                                    for k, v in exercise.names.items()]
    lines += ["", "[parameters]"]
    for ref in network.parameter_refs():
        lines.append(f"{json.dumps(network.canonical_name(ref))} = {_number(variant.values[exercise.name(ref)])}")
    x = [_number(variant.values[exercise.name(NodeRef("x", 0, j))]) for j in range(network.sizes[0])]
    y = [_number(variant.values[exercise.name(NodeRef("y", 0, j))]) for j in range(network.sizes[-1])]
    lines += ["", "[data]", f"x = [[{', '.join(x)}]]", f"y = [[{', '.join(y)}]]", "+++", ""]
    return "\n".join(lines)


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise SpecError(f"cannot write {value!r} into a front matter")


def submission_text(solution: Solution, *, student: str = "answer key",
                    values: Mapping[str, str] | None = None, lines: Mapping[str, str] | None = None) -> str:
    """A submission (plain-text working) with the worked solution: what a student hands in.

    ``lines`` replaces whole lines (label -> text; "" leaves the line out); ``values`` only the final
    number of a line (label -> as written).  Tests and the benchmark use them to make slips.
    """
    values, lines = values or {}, lines or {}
    out = ["+++", f"variant = {solution.variant.number}", f"student = {json.dumps(student, ensure_ascii=False)}",
           "+++"]
    for question in solution.questions:
        out += ["", f"## {question.number}. {question.title}", ""]
        for line in question.lines:
            if line.label in lines:
                if lines[line.label]:
                    out.append(lines[line.label])
                continue
            written = values.get(line.label, line.written)
            out.append(f"{line.quantity} = {line.formula} = {line.arithmetic} = {written}")
    return "\n".join(out) + "\n"


# -- the key grade reads ---------------------------------------------------------------------------------


def key_document(exercise: Exercise, solutions: list[Solution], seed: int) -> dict[str, Any]:
    """The answer key of every variant, as the JSON ``symback grade`` reads."""
    return {
        "format": KEY_FORMAT,
        "version": KEY_VERSION,
        "title": exercise.title,
        "seed": seed,
        "decimals": exercise.decimals,
        "learning_rate": _number(exercise.learning_rate),
        "questions": [{"number": q.number, "title": q.title} for q in solutions[0].questions],
        "variants": [
            {
                "variant": s.variant.number,
                "front_matter": front_matter(exercise, s.variant),
                "given": {k: _number(v) for k, v in s.variant.values.items()},
                "lines": [
                    {"label": line.label, "question": line.question, "kind": line.kind, "quantity": line.quantity,
                     "formula": line.formula, "value": line.value, "written": line.written, "marks": line.marks,
                     "method": line.method}
                    for line in s.lines
                ],
            }
            for s in solutions
        ],
    }


# -- the network picture ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Picture:
    """Where the network's units, edges and numbers go (units of 1 = one grid step); templates draw it."""

    width: float
    height: float
    nodes: tuple[dict[str, Any], ...]
    edges: tuple[dict[str, Any], ...]


def picture(exercise: Exercise, variant: Variant) -> Picture:
    """The layout of the network with its numbers: layers left to right, weights on the edges."""
    network = exercise.network
    name = exercise.name
    tallest = max(network.sizes)
    gap_x, gap_y = 5.0, 2.4
    nodes, edges = [], []

    def position(layer: int, j: int) -> tuple[float, float]:
        offset = (tallest - network.sizes[layer]) * gap_y / 2
        return 2.2 + layer * gap_x, 1.5 + offset + j * gap_y

    for layer, size in enumerate(network.sizes):
        for j in range(size):
            x, y = position(layer, j)
            if layer == 0:
                ref = NodeRef("x", 0, j)
                nodes.append({"x": x, "y": y, "label": name(ref), "value": _number(variant.values[name(ref)]),
                              "note": "", "nx": x, "ny": y, "kind": "input"})
                continue
            bias = name(NodeRef("b", layer, j))
            note = f"{bias} = {_number(variant.values[bias])}"
            last = layer == network.depth
            if last:
                target = name(NodeRef("y", 0, j))
                note += f", {target} = {_number(variant.values[target])}"
            # Notes beside the outputs, above the top and below the other hidden units (clear of the edges).
            nx, ny = (x + 0.75, y) if last else (x, y - 0.95 if j == 0 else y + 0.95)
            nodes.append({"x": x, "y": y, "label": name(NodeRef("a", layer, j)), "value": "", "note": note,
                          "nx": nx, "ny": ny, "kind": "output" if last else "hidden"})
    for layer in range(1, network.depth + 1):
        for j in range(network.sizes[layer]):
            for k in range(network.sizes[layer - 1]):
                (x0, y0), (x1, y1) = position(layer - 1, k), position(layer, j)
                # Level edges carry their label at the middle, just above; slanted ones near their source.
                t, lift = (0.5, -0.22) if y0 == y1 else (0.26, 0.0)
                w = name(NodeRef("w", layer, j, k))
                edges.append({"x0": x0, "y0": y0, "x1": x1, "y1": y1, "lx": x0 + t * (x1 - x0),
                              "ly": y0 + t * (y1 - y0) + lift, "label": f"{w} = {_number(variant.values[w])}"})
    width = 2.2 + network.depth * gap_x + 4.2
    height = 3.0 + (tallest - 1) * gap_y
    return Picture(width, height, tuple(nodes), tuple(edges))


# -- writing the files -----------------------------------------------------------------------------------


def _notation_rows(exercise: Exercise, fmt: str) -> list[tuple[str, str, str]]:
    """``(symbol, meaning, formula)`` rows; the cost's formula is math in ``fmt`` (LaTeX, MathML, plain text)."""
    network, name = exercise.network, exercise.name
    L = network.depth
    rows = [(", ".join(name(NodeRef("x", 0, j)) for j in range(network.sizes[0])), "the inputs")]
    for layer in range(1, L + 1):
        where = "output" if layer == L else f"hidden layer {layer}"
        for j in range(network.sizes[layer]):
            z, a, b = (name(NodeRef(kind, layer, j)) for kind in ("z", "a", "b"))
            weights = ", ".join(name(NodeRef("w", layer, j, k)) for k in range(network.sizes[layer - 1]))
            rows.append((f"{z}, {a}", f"weighted input and activation of unit {j + 1} of the {where} "
                                      f"({z} = Σ weight × input + {b}; weights {weights})"))
    rows.append((", ".join(name(NodeRef("y", 0, j)) for j in range(network.sizes[-1])), "the targets"))
    outputs = [(name(NodeRef("a", L, j)), name(NodeRef("y", 0, j))) for j in range(network.sizes[-1])]
    rows.append((name(NodeRef("C")), "the cost,", _cost_formula(exercise.cost_form.term, outputs, fmt)))
    acts = sorted({a.label for a in network.activations})
    rows.append(("activation", ", ".join(acts) + " in every unit" if len(acts) == 1 else ", ".join(acts)))
    rows.append(("η", f"the learning rate, {_number(exercise.learning_rate)}"))
    return [(*row, "") if len(row) == 2 else row for row in rows]


def _cost_formula(term: HandForm, outputs: list[tuple[str, str]], fmt: str) -> str:
    """The cost as the sum of its outputs' hand-written terms: LaTeX (as the answers' working writes it),
    MathML of the same expression in its written order, or the plain text a student types."""
    from ..render.latex import mathml
    from ..render.report import Rendered

    if fmt == "tex":
        return Rendered(" + ".join(_tex_format(term.tex, {"a": _tex_name(a), "y": _tex_name(y)}) for a, y in outputs))
    if fmt == "html":
        total = sp.Add(*(term.expression(a=sp.Symbol(a), y=sp.Symbol(y)) for a, y in outputs), evaluate=False)
        return Rendered(mathml(total, order="none"))
    return " + ".join(term.text.format(a=a, y=y) for a, y in outputs)


def sheet_context(exercise: Exercise, solution: Solution, fmt: str) -> dict[str, Any]:
    """What the sheet and answer templates lay out in ``fmt`` (no math is done in a template)."""
    from ..render.report import Rendered

    variant = solution.variant
    raw = Rendered if fmt in ("tex", "md") else str
    questions = [
        {
            "number": q.number, "title": q.title, "ask": q.ask, "marks": _marks_text(q.marks),
            "lines": [
                {"label": line.label, "quantity": line.quantity, "marks": _marks_text(line.marks),
                 "text": line.text, "raw_text": raw(line.text), "written": line.written,
                 "tex_quantity": raw(line.tex_quantity), "tex_formula": raw(line.tex_formula),
                 "tex_arithmetic": raw(line.tex_arithmetic)}
                for line in q.lines
            ],
        }
        for q in solution.questions
    ]
    first = solution.lines[0]
    return {
        "title": exercise.title,
        "variant": variant.label,
        "decimals": exercise.decimals,
        "instructions": exercise.instructions,
        "notation": _notation_rows(exercise, fmt),
        "given": [(k, _number(v)) for k, v in variant.values.items()],
        "picture": picture(exercise, variant),
        "questions": questions,
        "total": _marks_text(solution.marks),
        "learning_rate": _number(exercise.learning_rate),
        "network_svg": f"network-{variant.label}.svg",
        "example_line": f"{first.quantity} = {first.formula} = {first.arithmetic} = {first.written}",
        "header": raw(_tex_header()),
    }


def _marks_text(value: float) -> str:
    """``1 mark``, ``2.5 marks``."""
    return f"{value:g} mark" + ("" if value == 1 else "s")


def _tex_header() -> str:
    # No dates, no trailer ID, no pdfTeX banner: the same seed gives the same PDF bytes.
    return "\\pdfinfoomitdate=1\n\\pdftrailerid{}\n\\pdfsuppressptexinfo=-1\n"


def write_exercise(exercise: Exercise, count: int, seed: int, output: str | Path, *, pdf: bool = True) -> list[Path]:
    """Write every variant's sheet and answers, the solutions and ``key.json`` into ``output``; the paths."""
    from ..render.report import compile_pdf, render_template

    folder = Path(output)
    variants = draw_variants(exercise, count, seed=seed)
    solutions = [solve(exercise, v) for v in variants]
    # Render everything first: a failure (pdflatex missing) leaves no file behind.
    payloads: dict[str, bytes] = {}
    for solution in solutions:
        label = solution.variant.label
        svg = render_template("network.svg.j2", "html", picture=picture(exercise, solution.variant))
        payloads[f"network-{label}.svg"] = svg.encode("utf-8")
        for fmt in ("md", "html", "tex"):
            context = sheet_context(exercise, solution, fmt)
            for part, answers in (("sheet", False), ("answers", True)):
                text = render_template(f"exercise.{fmt}.j2", fmt, answers=answers, **context)
                payloads[f"{part}-{label}.{fmt}"] = text.encode("utf-8")
        payloads[f"solution-{label}.md"] = submission_text(solution).encode("utf-8")
    if pdf:
        for name in [n for n in payloads if n.endswith(".tex")]:
            payloads[name[:-4] + ".pdf"] = compile_pdf(payloads[name].decode("utf-8"))
    payloads["key.json"] = (json.dumps(key_document(exercise, solutions, seed), indent=1, ensure_ascii=False)
                            + "\n").encode("utf-8")
    return [write_atomic(folder / name, data) for name, data in sorted(payloads.items())]
