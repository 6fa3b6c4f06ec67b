"""Claims files: a hand calculation, line by line, for :mod:`symback.verification.verify` to judge.

A claims file is TOML.  It names a network (inline ``[network]`` … tables like
a spec, or ``spec = "seed002.toml"`` relative to the claims file), optional
``[parameters]`` / ``[data]`` overrides and an ordered list of ``[[claim]]``
tables, each one of:

* a **numeric claim** ``quantity = "dSSR/db3"``, ``value = "-15.7"`` (optional
  ``at = { b3 = 0 }``, ``example = 2``, ``tolerance = 0.01``);
* a **symbolic claim** ``quantity = "d(SSR)/d(predicted)"``,
  ``expression = "-2*(observed - predicted)"``;
* an **update claim** ``update = "b3"``, ``learning_rate = 0.1`` with any of
  ``old``, ``slope``, ``step``, ``new`` for one gradient-descent step, or
  ``steps = 20`` / ``until_step_below = 0.001`` (and ``new``) for a sequence;
* a **state change** ``set = { b3 = 1.57 }`` ("now b3 = 1.57").

``updates = "simultaneous"`` (the default) takes the new values of single update claims into effect
when a later claim is about a parameter already updated (the next step), so every partial of one
step is judged at the old weights, as backpropagation computes them; ``"sequential"`` applies each
update at once.

Every claim may carry ``text``: the line as the author wrote it.

Quantities are written in the author's notation and parsed only by the
whitelisting :func:`~symback.grammar.formula.parse_formula`: parameter and node names
(the network's own names, matched case-insensitively when that is unambiguous,
or canonical names such as ``a(L-1)_0``), ``residual`` (observed − predicted),
``x``, ``y``, ``z``, ``a`` (the output neuron's), the cost's name, and partial
derivatives written ``d(X)/d(Y)``, ``dX/dY`` or ``∂X/∂Y``.  A derivative is kept
as an unevaluated :class:`sympy.Derivative` for the judge to replace.

>>> from symback.symbolic.network import Network
>>> net = Network([1, 1], "sigmoid", "ssr", names={"b(1)": "b", "output": "predicted", "cost": "SSR"})
>>> notation = Notation(net)
>>> notation.parse("dssr/dB")
Derivative(SSR, b)
>>> notation.parse("a(1 - a)")
predicted*(1 - predicted)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import sympy as sp

from ..data import loads_with_data_arrays
from ..errors import FormulaError, SpecError, SymbackError, UnknownNameError
from ..files import read_text
from ..grammar.formula import CONSTANTS, FUNCTIONS, parse_formula
from ..grammar.names import LAYER_PATTERN, NODE_PATTERN
from ..grammar.tomlread import decimals_as_floats, parse_toml
from ..registry import FoldedNames, unknown_name
from ..spec.loader import Spec, load_spec, read_data, spec_from_dict
from ..symbolic.model import ExplicitModel
from ..symbolic.network import Network, NodeRef

__all__ = [
    "Claim",
    "ClaimsFile",
    "ClaimValue",
    "InvalidClaim",
    "Notation",
    "ExampleSum",
    "AtExample",
    "NumericClaim",
    "Quantity",
    "SetClaim",
    "SymbolicClaim",
    "UpdateClaim",
    "load_claims",
    "claims_from_text",
]

_SPEC_SECTIONS = ("network", "names", "parameters", "init", "data")
_TOP_KEYS = {"spec", "title", "source", "claim", "updates", *_SPEC_SECTIONS}
#: When an update claim's new value takes effect: after every partial of the step (as backpropagation
#: computes them, the default), or at once.
UPDATES = ("simultaneous", "sequential")

_COMMON = {"text"}
_KEYS = {
    "numeric": {"quantity", "value", "tolerance", "at", "example"} | _COMMON,
    "symbolic": {"quantity", "expression"} | _COMMON,
    "update": {
        "update", "learning_rate", "old", "slope", "step", "new", "steps", "until_step_below", "max_steps",
        "at", "tolerance",
    } | _COMMON,
    "set": {"set"} | _COMMON,
}

#: Placeholder identifiers the preprocessor puts into a formula; no user name may look like them.
_PLACEHOLDER = "__sb{}"


# -- claimed numbers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimValue:
    """A number as the author wrote it: the text decides how many digits count.

    >>> v = ClaimValue.parse("-15.7")
    >>> v.value, v.half_unit
    (-15.7, 0.05)
    >>> v.matches(-15.655108), v.matches(-15.6)
    (True, False)
    """

    text: str
    decimal: Decimal
    tolerance: float | None = None

    @classmethod
    def parse(cls, raw: Any, *, tolerance: float | None = None, what: str = "value") -> ClaimValue:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float, Decimal)):
            raise SpecError(f"{what} must be a number or a string such as \"-15.7\", not {raw!r}")
        text = str(raw).strip().replace("\u2212", "-")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise SpecError(f"{what} {str(raw)!r} is not a number") from None
        if not number.is_finite() or not math.isfinite(float(number)) or abs(number.as_tuple().exponent) > 300:
            raise SpecError(f"{what} {str(raw)!r} must be a finite number of ordinary size")
        return cls(text, number, tolerance)

    @property
    def value(self) -> float:
        return float(self.decimal)

    @property
    def half_unit(self) -> float:
        """Half a unit of the last digit written: ``-15.7`` → 0.05, ``1.20e3`` → 5."""
        exponent = self.decimal.as_tuple().exponent
        assert isinstance(exponent, int)
        return 0.5 * 10.0**exponent

    @property
    def allowance(self) -> float:
        return self.tolerance if self.tolerance is not None else self.half_unit

    def matches(self, true: float) -> bool:
        """Whether ``true`` rounds to the digits written (or lies within the explicit tolerance)."""
        # The slack absorbs binary floating point at an exact half-way point (1.25 written as 1.3 is right).
        if not math.isfinite(true):  # an overflowed or undefined true value matches nothing written
            return False
        slack = 1e-9 * max(abs(true), abs(self.value), self.allowance)
        return bool(abs(true - self.value) <= self.allowance + slack)

    def __str__(self) -> str:
        return self.text


# -- quantities in the author's notation ------------------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    """A parsed quantity: its text and a SymPy expression in node symbols and unevaluated ``Derivative``s."""

    text: str
    expression: sp.Expr

    def __str__(self) -> str:
        return self.text


# Node names inside a formula, in the one name grammar (symback.grammar.names): w(L)_0_1, a( L - 1 ), b(2)_0.
_CANONICAL = re.compile(r"(?<![A-Za-z0-9_])" + NODE_PATTERN)
#: A canonical name starting exactly here (after the ``d`` of ``da(L)``).
_CANONICAL_AT = re.compile(NODE_PATTERN)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_WORD = r"(?<![A-Za-z0-9_])"
#: δ (or delta) of a layer, ``δ(L)``, ``δ(L-1)_0``, or bare ``δ`` for a single output neuron: ∂C/∂z.
_DELTA = re.compile(_NOT_WORD + rf"(?:δ|delta)(?:\(\s*(?P<layer>{LAYER_PATTERN})\s*\)(?P<j>_[0-9]+)?)?(?![A-Za-z0-9_(])")
#: σ′(…), sigma'(…), sigmoid'(…): the derivative of the activation; σ(…), sigma(…): the activation.
_ACT_PRIME = re.compile(r"(?:σ|" + _NOT_WORD + r"(?:sigma|sigmoid))\s*(?:'|′|_prime)\s*(?=\()")
_ACT = re.compile(r"(?:σ|" + _NOT_WORD + r"sigma)\s*(?=\()")
#: "sum of", "sum over the examples of", Σ_i: a sum over the examples.
_SUM_WORDS = re.compile(_NOT_WORD + r"(?i:sum\s+(?:over\s+(?:the\s+)?examples\s+)?of)\s+")
_SUM_INDEX = re.compile(r"Σ\s*_\s*(?:\{\s*[a-z]\s*\}|[a-z])")
#: Other names of the cost (the user's own names win).
_COST_NAMES = ("C", "E", "E_total", "E_tot", "Etotal", "cost", "loss", "error")
#: Functions the notation adds to :data:`~symback.grammar.formula.FUNCTIONS`, with the spelling shown in messages.
_OWN_FUNCTIONS = {"__sbact": "σ", "__sbdact": "σ′", "__sbsum": "Σ"}
_PLACEHOLDER_TEXT = re.compile(r"__sb\w*")


class ExampleSum(sp.Function):
    """Σ over the examples of a per-example expression, kept unevaluated for the judge (``Σ residual``)."""

    nargs = 1
    is_real = True


class AtExample(sp.Function):
    """A per-example expression at one example (0-based), as in ``Observed1``, ``Residual2``."""

    nargs = 2
    is_real = True


class Notation:
    """The names an author may use for one network, and the parser for their formulas.

    Needs the explicit model (every node its own symbol), so it is for the small
    networks of worked examples.

    Arguments:
        network: the network.
        examples: the number of examples, so that ``Observed2`` names the target of the second.
        quantities: more names (``slope``, ``step``, ``η`` …) and the expressions they stand for.
        prefixes: words such as ``new`` and ``old`` before a parameter name, each a function of its symbol.
        aliases: phrases of the author (``"step size"``) and the formula text each stands for.

    >>> from symback.symbolic.network import Network
    >>> notation = Notation(Network([1, 1], "sigmoid", "squared_error"))
    >>> notation.parse("dC/da(L) * da(L)/dz(L)")
    Derivative(C, a(L))*Derivative(a(L), z(L))
    >>> notation.parse("a(L)(1 − a(L))")
    a(L)*(1 - a(L))
    """

    def __init__(
        self,
        network: Network,
        *,
        examples: int | None = None,
        quantities: Mapping[str, sp.Expr] | None = None,
        prefixes: Mapping[str, Any] | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.network = network
        self.model = ExplicitModel(network)
        self.examples = examples
        symbols = self.model.symbols
        self.cost_symbol = symbols[NodeRef("C")]
        names: dict[str, sp.Expr] = {}
        for ref, symbol in symbols.items():
            names[network.canonical_name(ref)] = symbol
        for name in _COST_NAMES:
            names[name] = self.cost_symbol
        L = network.depth
        self._per_example: dict[str, sp.Expr] = {}  # names that may take an example number: Observed2
        if network.sizes[-1] == 1:
            output, target = symbols[NodeRef("a", L, 0)], symbols[NodeRef("y", 0, 0)]
            names["a"] = output
            names["z"] = symbols[NodeRef("z", L, 0)]
            names["residual"] = target - output
            names["output"], names["target"] = output, target
            self._per_example.update(residual=target - output, output=output, target=target)
        if network.sizes[0] == 1:
            self._per_example["input"] = symbols[NodeRef("x", 0, 0)]
        if tuple(network.sizes) == (1, 1):  # one neuron: its weight and bias are w and b (z = w·x + b)
            names["w"], names["b"] = symbols[NodeRef("w", 1, 0, 0)], symbols[NodeRef("b", 1, 0)]
        for name, value in (quantities or {}).items():
            names[name] = value
        for ref, symbol in symbols.items():  # the user's own names win over the generic ones
            names[network.name_of(ref)] = symbol
            if ref.kind in ("x", "y") or (ref.kind == "a" and ref.layer == L):
                self._per_example[network.name_of(ref)] = symbol
        self.names = names
        self.prefixes = dict(prefixes or {})
        self.aliases = dict(aliases or {})
        self._folded = FoldedNames(names)
        self.functions = {
            **FUNCTIONS,
            "__sbact": (1, self._activation),
            "__sbdact": (1, self._activation_derivative),
            "__sbsum": (1, ExampleSum),
        }

    # -- names ----------------------------------------------------------------
    def lookup(self, name: str) -> str | None:
        """The known name ``name`` stands for: exact, else the one that matches ignoring case."""
        return self._folded.lookup(name)

    def define(self, name: str, expression: sp.Expr) -> None:
        """A name the working introduces itself (``E_o1 = 1/2 (target_o1 - out_o1)^2``); later formulas may use it."""
        if not _IDENT.fullmatch(name) or "__" in name or name in FUNCTIONS:
            raise FormulaError(f"{name!r} cannot be defined: a name is a letter followed by letters, digits and _")
        self.names[name] = expression
        self._folded.add(name)

    def node(self, name: str) -> NodeRef:
        """The node called ``name`` (case-insensitive when unambiguous); UnknownNameError otherwise."""
        key = self.lookup(name.strip()) if _IDENT.fullmatch(name.strip()) else None
        if key is not None:
            symbol = self.names[key]
            if isinstance(symbol, sp.Symbol) and symbol in self.model.refs:
                return self.model.refs[symbol]
        return self.network.resolve(name)

    def _layer_symbol(self, argument: sp.Expr) -> NodeRef | None:
        ref = self.model.refs.get(argument) if isinstance(argument, sp.Symbol) else None
        return ref if ref is not None and ref.kind == "z" else None

    def _activation(self, argument: sp.Expr) -> sp.Expr:
        """σ(z): the activation of z's layer when z is a weighted input, else the logistic sigmoid."""
        ref = self._layer_symbol(argument)
        if ref is not None and self.network.activation(ref.layer).elementwise:
            return self.network.activation(ref.layer).at(argument)
        return 1 / (1 + sp.exp(-argument))

    def _activation_derivative(self, argument: sp.Expr) -> sp.Expr:
        """σ′(z): the derivative of z's layer's activation (of the logistic sigmoid for other arguments)."""
        ref = self._layer_symbol(argument)
        if ref is not None and self.network.activation(ref.layer).elementwise:
            return self.network.activation(ref.layer).derivative_at(argument)
        s = 1 / (1 + sp.exp(-argument))
        return s * (1 - s)

    # -- parsing --------------------------------------------------------------
    def parse(self, text: str) -> sp.Expr:
        """Parse a formula in the author's notation (see the module docstring).

        Errors quote the text as written: the placeholders the preprocessor uses never appear.
        """
        if not isinstance(text, str):
            raise FormulaError(f"a formula must be a string, not {type(text).__name__}")
        if "__" in text:
            raise FormulaError("a name in this formula has a double underscore, which is reserved")
        placeholders: dict[str, sp.Expr] = {}
        sources: dict[str, str] = dict(_OWN_FUNCTIONS)
        try:
            prepared = self._prepare(text, placeholders, sources)
            return parse_formula(prepared, {**self.names, **placeholders}, functions=self.functions)
        except (FormulaError, UnknownNameError) as error:
            raise FormulaError(_public(str(error), text, sources)) from None

    def _prepare(self, text: str, placeholders: dict[str, sp.Expr], sources: dict[str, str]) -> str:
        self._sources = sources
        prepared = self._apply_aliases(text)
        prepared = prepared.replace("\u2212", "-").replace("\u2032", "'").replace("[", "(").replace("]", ")")
        prepared = prepared.replace("∂", "d ")
        prepared = _ACT_PRIME.sub("__sbdact", prepared)
        prepared = _ACT.sub("__sbact", prepared)
        prepared = _SUM_INDEX.sub("Σ", _SUM_WORDS.sub("Σ", prepared))
        if re.search(_NOT_WORD + r"sum\s*\(", prepared) and self.lookup("sum") is None:
            prepared = re.sub(_NOT_WORD + r"sum\s*\(", "Σ(", prepared)
        prepared = self._replace_deltas(prepared, placeholders)
        prepared = self._replace_prefixes(prepared, placeholders)
        prepared = _wrap_sums(prepared)
        prepared = self._replace_canonical(prepared, placeholders)
        prepared = self._replace_derivatives(prepared, placeholders, text)
        prepared = _times_x(prepared)
        prepared = self._normalise_names(prepared, placeholders)
        return self._implicit_products(prepared, placeholders)

    def _apply_aliases(self, text: str) -> str:
        for phrase in sorted(self.aliases, key=len, reverse=True):
            value = self.aliases[phrase]
            replacement = value if re.fullmatch(r"[\w ]+", value) else f"({value})"
            pattern = r"(?i)" + (_NOT_WORD if phrase[:1].isalnum() or phrase[:1] == "_" else "") + re.escape(phrase)
            pattern += r"(?![A-Za-z0-9_])" if phrase[-1:].isalnum() or phrase[-1:] == "_" else ""
            text = re.sub(pattern, lambda _: replacement, text)
        return text

    def _new_placeholder(self, value: sp.Expr, placeholders: dict[str, sp.Expr], source: str = "") -> str:
        name = _PLACEHOLDER.format(len(placeholders))
        placeholders[name] = value
        self._sources[name] = source or str(value)
        return name

    def _replace_deltas(self, text: str, placeholders: dict[str, sp.Expr]) -> str:
        def replace(match: re.Match[str]) -> str:
            word = match.group()
            if match["layer"] is None and self.lookup(word) is not None:
                return word  # the user's own name "delta"
            if match["layer"] is None:
                if self.network.sizes[-1] != 1:
                    raise FormulaError(f"{word} alone needs one output neuron; write {word}(L)_j")
                z = NodeRef("z", self.network.depth, 0)
            else:
                z = self.network.resolve(f"z({match['layer'].replace(' ', '')}){match['j'] or ''}")
            derivative = sp.Derivative(self.cost_symbol, self.model.symbols[z], evaluate=False)
            return self._new_placeholder(derivative, placeholders, word)

        return _DELTA.sub(replace, text)

    def _replace_prefixes(self, text: str, placeholders: dict[str, sp.Expr]) -> str:
        """``new b3`` / ``old b3`` / ``b3+`` (when the vocabulary has them)."""
        if not self.prefixes:
            return text
        words = "|".join(sorted((re.escape(w) for w in self.prefixes), key=len, reverse=True))
        operand = rf"(?P<name>{NODE_PATTERN}|[A-Za-z_][A-Za-z0-9_]*)"

        def replace(match: re.Match[str], word: str | None = None) -> str:
            word = word or match["word"].lower()
            symbol = self.model.symbols[self.node(re.sub(r"\s+", "", match["name"]))]
            if self.model.refs[symbol].kind not in ("w", "b"):
                raise FormulaError(f"{match.group().strip()!r}: {word} goes with a weight or bias")
            return self._new_placeholder(self.prefixes[word](symbol), placeholders, match.group().strip())

        text = re.sub(r"(?i)" + _NOT_WORD + rf"(?P<word>{words})\s+" + operand, replace, text)
        if "new" in self.prefixes:
            text = re.sub(operand + r"\s*\+\s*$", lambda m: replace(m, "new"), text)
            text = re.sub(operand.replace("(?P<name>", "(?P<name>", 1) + r"_(?P<word>new|old)\b",
                          lambda m: replace(m, m["word"]) if m["word"] in self.prefixes else m.group(), text)
        return text

    def _replace_canonical(self, text: str, placeholders: dict[str, sp.Expr]) -> str:
        def replace(match: re.Match[str]) -> str:
            ref = self.network.resolve(re.sub(r"\s+", "", match.group()))
            return self._new_placeholder(self.model.symbols[ref], placeholders, match.group())

        return _CANONICAL.sub(replace, text)

    def _operand(self, text: str, start: int) -> tuple[str, int] | None:
        """A derivative operand ``d(X)`` / ``dX`` / ``d X`` at ``start``: (text of X, end) or None."""
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
            return None
        if start >= len(text) or text[start] != "d":
            return None
        position = start + 1
        while position < len(text) and text[position] == " ":
            position += 1
        canonical = _CANONICAL_AT.match(text, position)
        if canonical is not None:  # da(L), dw(L-1)_0_1
            return canonical.group(), canonical.end()
        if position < len(text) and text[position] == "(":
            depth, end = 0, position
            while end < len(text):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    return text[position + 1 : end], end + 1
                end += 1
            return None
        match = _IDENT.match(text, position)
        if match is None:
            return None
        whole = _IDENT.match(text, start)
        assert whole is not None
        if position == start + 1 and self._is_name(whole.group()):
            return None  # a name that starts with d (e.g. "delta" when the user named a node so)
        if not self._is_name(match.group()):
            return None
        return match.group(), match.end()

    def _is_name(self, identifier: str) -> bool:
        if identifier.startswith("__sb"):
            return True
        try:
            return self.lookup(identifier) is not None or self._indexed(identifier) is not None
        except FormulaError:
            return True  # ambiguous: let the parser report it

    def _replace_derivatives(self, text: str, placeholders: dict[str, sp.Expr], original: str) -> str:
        out: list[str] = []
        position = 0
        while position < len(text):
            top = self._operand(text, position)
            if top is not None:
                slash = top[1]
                while slash < len(text) and text[slash] == " ":
                    slash += 1
                if slash < len(text) and text[slash] == "/":
                    after = slash + 1
                    while after < len(text) and text[after] == " ":
                        after += 1
                    bottom = self._operand(text, after)
                    if bottom is not None:
                        derivative = self._derivative(top[0], bottom[0], placeholders, original)
                        out.append(self._new_placeholder(derivative, placeholders, text[position : bottom[1]]))
                        position = bottom[1]
                        continue
            out.append(text[position])
            position += 1
        return "".join(out)

    def _inner(self, text: str, placeholders: dict[str, sp.Expr]) -> sp.Expr:
        prepared = self._replace_canonical(text.strip(), placeholders)
        prepared = self._replace_derivatives(prepared, placeholders, text)
        prepared = self._implicit_products(self._normalise_names(prepared, placeholders), placeholders)
        return parse_formula(prepared, {**self.names, **placeholders}, functions=self.functions)

    def _derivative(self, top: str, bottom: str, placeholders: dict[str, sp.Expr], original: str) -> sp.Derivative:
        numerator = self._inner(top, placeholders)
        denominator = self._inner(bottom, placeholders)
        if not (isinstance(denominator, sp.Symbol) and denominator in self.model.refs):
            raise FormulaError(f"in {original!r}: d(...)/d({bottom.strip()}) must be taken with respect to one node name")
        if numerator.has(sp.Derivative):
            raise FormulaError(f"in {original!r}: second derivatives are not supported")
        if numerator.has(self.cost_symbol) and numerator != self.cost_symbol:
            raise FormulaError(
                f"in {original!r}: the cost may appear in d(...) only on its own, as in d({self.cost_symbol})/d(...)"
            )
        return sp.Derivative(numerator, denominator, evaluate=False)

    def _indexed(self, name: str) -> sp.Expr | None:
        """``Observed2``, ``residual_3``: a per-example quantity at one example (1-based as written)."""
        if not self.examples:
            return None
        match = re.fullmatch(r"([A-Za-z][A-Za-z_]*?)_?(\d+)", name)
        if match is None:
            return None
        stem = next((s for s in self._per_example if s.casefold() == match[1].casefold()), None)
        number = int(match[2])
        if stem is None or not 1 <= number <= self.examples:
            return None
        return AtExample(self._per_example[stem], sp.Integer(number - 1))

    def _normalise_names(self, text: str, placeholders: dict[str, sp.Expr]) -> str:
        """Map names to the network's spelling ignoring case (and ``Observed2`` to its example)."""
        out: list[str] = []
        position = 0
        for match in _IDENT.finditer(text):
            if match.start() > 0 and (text[match.start() - 1].isdigit() or text[match.start() - 1] == "."):
                continue  # part of a number such as 1e-3
            name = match.group()
            calls = text[match.end() :].lstrip().startswith("(")
            if name in placeholders or (calls and name in self.functions) or (
                    name in CONSTANTS and name not in self.names):
                replacement = name
            else:
                known = self.lookup(name)
                if known is None:
                    indexed = self._indexed(name)
                    replacement = name if indexed is None else self._new_placeholder(indexed, placeholders, name)
                elif not _IDENT.fullmatch(known):
                    replacement = self._new_placeholder(self.names[known], placeholders, name)
                else:
                    replacement = known
            out.append(text[position : match.start()])
            out.append(replacement)
            position = match.end()
        out.append(text[position:])
        return "".join(out)

    def _callable(self, name: str, placeholders: Mapping[str, sp.Expr]) -> bool:
        """Whether ``name(`` is a call: a function, or a name that is neither a node nor a quantity."""
        if name in placeholders:
            return False
        try:
            return name in self.functions or self.lookup(name) is None
        except FormulaError:
            return True

    def _implicit_products(self, text: str, placeholders: dict[str, sp.Expr]) -> str:
        """``a(1 - a)``, ``2(a - y)``, ``(a - y)(-1)``: a product where nothing else can be meant."""
        tokens = _tokens(text)
        if tokens is None:
            return text  # a character the parser will name
        out: list[str] = []
        for index, (kind, token) in enumerate(tokens):
            if index and kind != "space":
                before = next(((k, t) for k, t in reversed(tokens[:index]) if k != "space"), None)
                after = next((t for k, t in tokens[index + 1 :] if k != "space"), "")
                # ``w σ′(z)``: a name before a call of a known function is a factor (two plain names are prose).
                call = kind == "name" and after == "(" and token in self.functions
                if before is not None and (_juxtaposed(before, (kind, token), self._callable(before[1], placeholders))
                                           or (call and before[0] == "name"
                                               and not self._callable(before[1], placeholders))):
                    out.append("*")
            out.append(token)
        return "".join(out)


def _tokens(text: str) -> list[tuple[str, str]] | None:
    from ..grammar.formula import _TOKEN

    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            return None
        tokens.append((match.lastgroup or "", match.group()))
        position = match.end()
    return tokens


def _juxtaposed(before: tuple[str, str], after: tuple[str, str], calls: bool) -> bool:
    """Whether two neighbouring tokens are a product written without ``*`` (``calls``: ``before(`` is a call)."""
    kind, token = before
    operand_end = kind == "number" or token == ")" or (kind == "name" and not calls)
    if not operand_end:
        return False
    if after[1] == "(":
        return True
    if kind == "name":
        return False  # two names side by side are prose, not a product
    return after[0] in ("name", "number") and not (kind == "number" and after[0] == "number")


def _times_x(text: str) -> str:
    """``-15.7 x 0.1``: an x between spaces, between two operands, is a multiplication sign."""
    tokens = _tokens(text)
    if tokens is None or not any(t == "x" for _, t in tokens):
        return text
    out = []
    for index, (kind, token) in enumerate(tokens):
        if token == "x" and 0 < index < len(tokens) - 1 and tokens[index - 1][0] == "space" and tokens[index + 1][0] == "space":
            before = next((t for t in reversed(tokens[:index]) if t[0] != "space"), None)
            after = next((t for t in tokens[index + 1 :] if t[0] != "space"), None)
            if before and after and (before[0] in ("number", "name") or before[1] == ")") and (
                    after[0] in ("number", "name") or after[1] in ("(", "-", "+")):
                out.append("*")
                continue
        out.append(token)
    return "".join(out)


def _wrap_sums(text: str) -> str:
    """``Σ residual`` → ``Σ(residual)``: Σ reaches to the next + or − outside parentheses."""
    start = text.find("Σ")
    if start < 0:
        return text
    position = start + 1
    while position < len(text) and text[position] == " ":
        position += 1
    depth, end, previous = 0, position, ""
    while end < len(text):
        char = text[end]
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                break
            depth -= 1
        elif char in "+-=," and depth == 0 and previous not in ("", "^", "*", "/", "e", "E"):
            break
        if not char.isspace():
            previous = char
        end += 1
    operand = _wrap_sums(text[position:end]).strip()
    return text[:start] + f"__sbsum({operand})" + _wrap_sums(text[end:])


def _public(message: str, original: str, sources: Mapping[str, str]) -> str:
    """A parser message about the prepared text, told about the text as written."""
    message = re.sub(r" at (?:position \d+|end) in formula '(?:[^'\\]|\\.)*'", f" in {original!r}", message)
    message = re.sub(r" in formula '(?:[^'\\]|\\.)*'", f" in {original!r}", message)
    message = re.sub(r"(?:, )?__sb\w+(?=[,)])", "", message.replace("(, ", "("))
    message = message.replace("(allowed symbols: , ", "(allowed symbols: ").replace("(, ", "(")
    return _PLACEHOLDER_TEXT.sub(lambda m: sources.get(m.group(), "…"), message)


# -- claim records ----------------------------------------------------------------------------------


def cost_value(expression: sp.Expr, cost: sp.Symbol) -> bool:
    """Whether ``expression`` uses the value of the cost itself (not only derivatives of it).

    >>> C, w = sp.symbols("C w")
    >>> cost_value(C + 1, C), cost_value(sp.Derivative(C, w), C)
    (True, False)
    """
    hidden = {derivative: sp.Dummy() for derivative in expression.atoms(sp.Derivative)}
    return expression.xreplace(hidden).has(cost)


def where(number: int, line: int | None) -> str:
    """``claim 3 (line 17)``: how a claim is named in every message."""
    return f"claim {number}" + (f" (line {line})" if line else "")


@dataclass(frozen=True)
class _Base:
    number: int  # 1-based position in the file
    line: int | None  # line of its [[claim]] header in the file, when known
    text: str  # the line as the author wrote it (or a description)

    @property
    def where(self) -> str:
        return where(self.number, self.line)


@dataclass(frozen=True)
class NumericClaim(_Base):
    """``quantity`` has the value ``value`` (optionally ``at`` other parameter values, for one ``example``)."""

    quantity: Quantity
    value: ClaimValue
    at: tuple[tuple[NodeRef, float], ...] = ()
    example: int | None = None  # 0-based
    kind = "numeric"


@dataclass(frozen=True)
class SymbolicClaim(_Base):
    """``quantity`` equals the expression the author derived, for every example."""

    quantity: Quantity
    expression: Quantity
    kind = "symbolic"


@dataclass(frozen=True)
class UpdateClaim(_Base):
    """Gradient descent on one parameter: one step (``old``/``slope``/``step``/``new``) or a sequence."""

    parameter: NodeRef
    learning_rate: float
    old: ClaimValue | None = None
    slope: ClaimValue | None = None
    step: ClaimValue | None = None
    new: ClaimValue | None = None
    steps: int | None = None
    until_step_below: float | None = None
    max_steps: int = 10_000
    at: tuple[tuple[NodeRef, float], ...] = ()
    kind = "update"

    @property
    def is_sequence(self) -> bool:
        return self.steps is not None or self.until_step_below is not None


@dataclass(frozen=True)
class SetClaim(_Base):
    """A change of state ("now b3 = 1.57"): not judged, it changes what later lines are checked against."""

    values: tuple[tuple[NodeRef, float], ...]
    kind = "set"


@dataclass(frozen=True)
class InvalidClaim(_Base):
    """A claim that could not be read; ``message`` says why (it is reported, the other lines are still judged)."""

    message: str
    kind = "invalid"


Claim = NumericClaim | SymbolicClaim | UpdateClaim | SetClaim | InvalidClaim


@dataclass(frozen=True)
class ClaimsFile:
    """A network with parameters and data, and the author's claims in order."""

    spec: Spec
    notation: Notation
    claims: tuple[Claim, ...]
    title: str = ""
    path: Path | None = None
    updates: str = "simultaneous"

    @property
    def invalid(self) -> tuple[InvalidClaim, ...]:
        return tuple(c for c in self.claims if isinstance(c, InvalidClaim))


# -- reading ----------------------------------------------------------------------------------------


def load_claims(path: str | Path) -> ClaimsFile:
    """Read a claims file; a malformed claim becomes an :class:`InvalidClaim`, an unusable file a SpecError."""
    path = Path(path)
    text = read_text(path, "claims file")
    try:
        return claims_from_text(text, base=path.parent, path=path)
    except SymbackError as error:
        raise SpecError(f"{path}: {error}") from None


def claims_from_text(text: str, *, base: Path | None = None, path: Path | None = None) -> ClaimsFile:
    """Parse the TOML text of a claims file (``spec = ...`` is resolved relative to ``base``)."""
    # Floats as Decimal keep the digits the author wrote (-15.70 has four significant digits);
    # the [data] arrays are read by NumPy.
    raw = loads_with_data_arrays(text, lambda rest: parse_toml(rest, parse_float=Decimal))
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise unknown_name("key or section", unknown[0], _TOP_KEYS, error=SpecError)
    spec = _load_network(raw, base or Path("."))
    if spec.data is None:
        raise SpecError("no [data]: give x and y (here or in the spec file) so the claims can be evaluated")
    try:
        notation = Notation(spec.network)
    except SpecError as error:
        raise SpecError(f"claims are checked on the explicit form of small networks: {error}") from None
    tables = raw.get("claim")
    if not isinstance(tables, list) or not tables:
        raise SpecError("no claims: add [[claim]] tables, e.g. [[claim]] quantity = \"dC/dw1\" value = \"0.25\"")
    lines = _claim_lines(text, len(tables))
    claims = []
    for number, table in enumerate(tables, 1):
        line = lines[number - 1]
        claims.append(_read_claim(number, line, table, notation))
    title = raw.get("title", "")
    updates = raw.get("updates", "simultaneous")
    if updates not in UPDATES:
        raise SpecError(f"updates must be \"simultaneous\" or \"sequential\", not {updates!r}")
    return ClaimsFile(spec, notation, tuple(claims), str(title), path, updates)


def _claim_lines(text: str, count: int) -> tuple[int | None, ...]:
    found = [number for number, line in enumerate(text.splitlines(), 1) if re.match(r"^\s*\[\[\s*claim\s*\]\]", line)]
    if len(found) == count:
        return tuple(found)
    return (None,) * count


def _load_network(raw: Mapping[str, Any], base: Path) -> Spec:
    sections = {name: decimals_as_floats(raw[name]) for name in _SPEC_SECTIONS if name in raw}
    if "spec" in raw:
        if not isinstance(raw["spec"], str):
            raise SpecError("spec must be a path string, e.g. spec = \"seed002.toml\"")
        for name in ("network", "names", "init"):
            if name in sections:
                raise SpecError(f"give either spec = \"...\" or an inline [{name}], not both")
        spec = load_spec(base / raw["spec"])
        if "parameters" in sections:
            if not isinstance(sections["parameters"], Mapping):
                raise SpecError("[parameters] must be a table")
            spec.parameters.update(spec.network, sections["parameters"])
        if "data" in sections:
            spec.data = read_data(sections["data"], spec.network)
        return spec
    if "network" not in sections:
        raise SpecError("no network: write spec = \"file.toml\" or an inline [network] section")
    return spec_from_dict(sections)


def _kind(table: Mapping[str, Any]) -> str:
    heads = [key for key in ("quantity", "update", "set") if key in table]
    if len(heads) != 1:
        raise SpecError(
            "a claim needs exactly one of quantity = \"...\" (with value or expression), update = \"...\" or set = {...}"
            + (f"; found {', '.join(heads)}" if heads else "")
        )
    if heads[0] == "quantity":
        has = [key for key in ("value", "expression") if key in table]
        if len(has) != 1:
            raise SpecError("a quantity claim needs exactly one of value = \"...\" or expression = \"...\"")
        return "numeric" if has[0] == "value" else "symbolic"
    return heads[0]


def _read_claim(number: int, line: int | None, table: Any, notation: Notation) -> Claim:
    text = ""
    try:
        if not isinstance(table, Mapping):
            raise SpecError("a claim must be a table")
        text = table.get("text", "")
        if not isinstance(text, str):
            raise SpecError("text must be a string")
        kind = _kind(table)
        unknown = sorted(set(table) - _KEYS[kind])
        if unknown:
            raise unknown_name("key", unknown[0], _KEYS[kind], where=f" in a {kind} claim", error=SpecError)
        return _BUILDERS[kind](number, line, text, table, notation)
    except SymbackError as error:
        message = str(error)
        return InvalidClaim(number, line, text, f"{where(number, line)}: {message}")


def _quantity(text: Any, notation: Notation, what: str) -> Quantity:
    if not isinstance(text, str):
        raise SpecError(f"{what} must be a string, not {text!r}")
    return Quantity(text, notation.parse(text))


def _values(table: Any, notation: Notation, what: str) -> tuple[tuple[NodeRef, float], ...]:
    if not isinstance(table, Mapping) or not table:
        raise SpecError(f"{what} must be a table of parameter values, e.g. {what} = {{ b3 = 0 }}")
    out = []
    for name, value in table.items():
        ref = notation.node(str(name))
        if not ref.is_parameter:
            raise SpecError(f"{what}: {name!r} is not a weight or bias")
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise SpecError(f"{what}: {name} must be a number, not {value!r}")
        out.append((ref, float(value)))
    return tuple(out)


def _positive(value: Any, what: str, integer: bool = False) -> Any:
    kinds = (int,) if integer else (int, float, Decimal)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or value <= 0:
        raise SpecError(f"{what} must be a positive {'integer' if integer else 'number'}, not {value!r}")
    return int(value) if integer else float(value)


#: The most gradient-descent steps one update claim may ask for: verify takes every one of them.
MAX_CLAIM_STEPS = 1_000_000


def _at_most(steps: int, what: str) -> int:
    if steps > MAX_CLAIM_STEPS:
        raise SpecError(f"{what} = {steps:,} is past the limit of {MAX_CLAIM_STEPS:,} steps a claim may take")
    return steps


def _numeric(number: int, line: int | None, text: str, table: Mapping[str, Any], notation: Notation) -> NumericClaim:
    quantity = _quantity(table["quantity"], notation, "quantity")
    tolerance = _positive(table["tolerance"], "tolerance") if "tolerance" in table else None
    value = ClaimValue.parse(table["value"], tolerance=tolerance)
    at = _values(table["at"], notation, "at") if "at" in table else ()
    example = None
    if "example" in table:
        example = _positive(table["example"], "example", integer=True) - 1
    return NumericClaim(number, line, text or f"{quantity} = {value}", quantity, value, at, example)


def _symbolic(number: int, line: int | None, text: str, table: Mapping[str, Any], notation: Notation) -> SymbolicClaim:
    quantity = _quantity(table["quantity"], notation, "quantity")
    expression = _quantity(table["expression"], notation, "expression")
    return SymbolicClaim(number, line, text or f"{quantity} = {expression}", quantity, expression)


def _update(number: int, line: int | None, text: str, table: Mapping[str, Any], notation: Notation) -> UpdateClaim:
    name = table["update"]
    if not isinstance(name, str):
        raise SpecError(f"update names one parameter, e.g. update = \"b3\", not {name!r}")
    ref = notation.node(name)
    if not ref.is_parameter:
        raise SpecError(f"update: {name!r} is not a weight or bias")
    if "learning_rate" not in table:
        raise SpecError("an update claim needs learning_rate")
    rate = _positive(table["learning_rate"], "learning_rate")
    tolerance = _positive(table["tolerance"], "tolerance") if "tolerance" in table else None
    values = {
        key: ClaimValue.parse(table[key], tolerance=tolerance, what=key)
        for key in ("old", "slope", "step", "new")
        if key in table
    }
    steps = _at_most(_positive(table["steps"], "steps", integer=True), "steps") if "steps" in table else None
    until = _positive(table["until_step_below"], "until_step_below") if "until_step_below" in table else None
    if steps is not None and until is not None:
        raise SpecError("give steps or until_step_below, not both")
    sequence = steps is not None or until is not None
    if sequence and ({"slope", "step"} & set(values)):
        raise SpecError("slope and step belong to a single step; a sequence of steps claims old and new only")
    if "max_steps" in table and until is None:
        raise SpecError("max_steps goes with until_step_below")
    max_steps = _at_most(_positive(table.get("max_steps", 10_000), "max_steps", integer=True), "max_steps")
    at = _values(table["at"], notation, "at") if "at" in table else ()
    if not values:
        raise SpecError("an update claim needs at least one of old, slope, step, new")
    description = text or f"update {notation.network.name_of(ref)} (learning rate {rate:g})"
    return UpdateClaim(
        number, line, description, ref, rate, values.get("old"), values.get("slope"), values.get("step"),
        values.get("new"), steps, until, max_steps, at,
    )


def _set(number: int, line: int | None, text: str, table: Mapping[str, Any], notation: Notation) -> SetClaim:
    values = _values(table["set"], notation, "set")
    shown = ", ".join(f"{notation.network.name_of(r)} = {v:g}" for r, v in values)
    return SetClaim(number, line, text or f"now {shown}", values)


_BUILDERS = {"numeric": _numeric, "symbolic": _symbolic, "update": _update, "set": _set}
