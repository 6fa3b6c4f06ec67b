"""Plain-text working: a worked example judged as it was written, every ``=`` checked.

``symback verify WORKING.md`` (or ``.txt``) reads a hand calculation line by line.  An optional TOML
front matter between ``+++`` lines names the network and the conventions::

    +++
    spec = "seed002.toml"          # or inline [network], [parameters], [data] tables
    learning_rate = 0.1
    parameter = "b3"               # what "slope", "step" refer to (default: the only trained parameter)
    updates = "simultaneous"       # or "sequential"
    until_step_below = 0.001       # when "the optimal b3" has been reached
    [aliases]
    "step size" = "step"
    ResidualSum = "Σ residual"
    +++

Every line whose tail is an equation chain ``E0 = E1 = … = En`` is judged link by link: a symbolic link
against the network (is it an identity of this network?), a number or an arithmetic link against the true
quantity at the current state, and each value also against what the author's own earlier numbers give
(then a wrong value is "error carried forward", not a new mistake).  Prose before the math is kept as the
line's text; lines without an equation are listed as not judged.

>>> from pathlib import Path
>>> working = load_working(Path(__file__).parent.parent.parent / "examples" / "seed002_working.md")
>>> report = judge(working)
>>> [v.status for v in report.verdicts if v.status == "wrong"][:1]
['wrong']
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from ..errors import SpecError, SymbackError
from ..files import read_text
from ..spec.loader import Spec
from ..symbolic.network import NodeRef
from ..symbolic.parameters import Parameters
from .claims import AtExample, ClaimValue, ExampleSum, Notation, UpdateClaim, _load_network, cost_value
from .slips import ETA, SlipContext, SlippedPartial, symbolic_slip, variants
from .verify import (
    _SEVERITY,
    CARRIED,
    NOT_JUDGED,
    RIGHT,
    STATE,
    UNJUDGED,
    WRONG,
    Check,
    Verdict,
    VerificationReport,
    _as_written,
    _Engine,
    _lines,
    _State,
    compare_expressions,
)
from .verify import _notation as _as_partials

__all__ = ["Converged", "Link", "Line", "Working", "front_matter", "judge", "load_working", "working_from_text"]


#: When the updates of a gradient step take effect (``updates = "simultaneous"``, the default).
UPDATE_RULE = """\
The updates of one gradient step wait, and every line is judged at the weights before them (as
backpropagation takes every partial of a step at the old weights), until a line is about the new
weights: a slope, update or value of a parameter already updated in this step (the next step
begins), or the value of the cost itself (C, E_total, SSR; not a derivative of it), which after an
update is what the step changed.  Node values (a, z, out_h1) and partials with respect to nodes
stay at the old weights until then: the backward pass still uses them.  With
updates = "sequential" every update applies at once."""

_TOP_KEYS = {
    "spec", "title", "network", "names", "parameters", "init", "data", "learning_rate", "parameter", "updates",
    "aliases", "until_step_below", "max_steps",
}
_UPDATES = ("simultaneous", "sequential")

#: Phrases every working may use (the front matter's aliases add to them and win).
ALIASES = {
    "learning rate": "eta", "η": "eta", "α": "eta", "step size": "step", "gradient": "slope",
}
_END_OF_SENTENCE = (".", ":", "!", "?", ";")
_MARKUP = re.compile(r"^\s*(?:#+|>|[-*•]|\d+[.)])\s+")


class Converged(sp.Function):
    """The value gradient descent on a parameter reaches (``the optimal b3``), kept for the judge."""

    nargs = 1
    is_real = True


@dataclass(frozen=True)
class Link:
    """One member of an equation chain: its text, its expression, and whether it is a number or arithmetic."""

    text: str
    expression: sp.Expr
    kind: str  # "symbolic", "arithmetic" or "number"
    value: ClaimValue | None = None  # for numbers


@dataclass(frozen=True)
class Line:
    """A line of the working with an equation chain (or the reason it could not be read)."""

    number: int  # line in the file
    text: str  # the whole line as written
    prose: str  # the words before the math
    links: tuple[Link, ...] = ()
    notes: tuple[str, ...] = ()
    reason: str = ""  # why it was not judged
    defines: str = ""  # a name the line introduces (E_o1 = ...)


@dataclass(frozen=True)
class Working:
    """A network with parameters and data, the conventions of the working, and its lines."""

    spec: Spec
    notation: Notation
    lines: tuple[Line, ...]
    prose: tuple[tuple[int, str], ...]  # lines without an equation: not judged
    learning_rate: sp.Rational | None
    parameter: NodeRef | None
    updates: str = "simultaneous"
    until_step_below: float = 1e-3
    max_steps: int = 10_000
    title: str = ""
    path: Path | None = None


# -- reading ----------------------------------------------------------------------------------------


def load_working(path: str | Path) -> Working:
    """Read a working (``.md`` / ``.txt``); an unusable front matter or network is one SpecError."""
    path = Path(path)
    text = read_text(path, "working")
    try:
        return working_from_text(text, base=path.parent, path=path)
    except SymbackError as error:
        raise SpecError(f"{path}: {error}") from None


def front_matter(text: str) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    r"""The TOML between the ``+++`` lines opening a working (``{}`` if none), and the numbered lines after it.

    >>> front_matter("+++\nvariant = 7\n+++\nE = 0.25")
    ({'variant': 7}, [(4, 'E = 0.25')])
    """
    lines = text.splitlines()
    numbered = list(enumerate(lines, 1))
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None or lines[first].strip() != "+++":
        return {}, numbered
    end = next((i for i in range(first + 1, len(lines)) if lines[i].strip() == "+++"), None)
    if end is None:
        raise SpecError(f"the front matter opened by '+++' on line {first + 1} is never closed")
    try:
        raw = tomllib.loads("\n".join(lines[first + 1 : end]), parse_float=Decimal)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"invalid TOML in the front matter: {error}") from None
    return raw, numbered[end + 1 :]


def working_from_text(text: str, *, base: Path | None = None, path: Path | None = None) -> Working:
    """Parse a working: the front matter, then every line (``spec = ...`` relative to ``base``)."""
    raw, body = front_matter(text)
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise SpecError(f"unknown key or section {unknown[0]!r} in the front matter (known: {', '.join(sorted(_TOP_KEYS))})")
    if "network" not in raw and "spec" not in raw:
        raise SpecError("no network: the front matter (between '+++' lines) needs spec = \"net.toml\" or [network]")
    spec = _load_network(raw, base or Path("."))
    if spec.data is None:
        raise SpecError("no [data]: give x and y (in the front matter or the spec file)")
    rate = None
    if "learning_rate" in raw:
        value = raw["learning_rate"]
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or not value > 0 or not math.isfinite(value):
            raise SpecError(f"learning_rate must be a positive number, not {value!r}")
        rate = sp.Rational(str(value))
    updates = raw.get("updates", "simultaneous")
    if updates not in _UPDATES:
        raise SpecError(f"updates must be \"simultaneous\" or \"sequential\", not {updates!r}")
    aliases = raw.get("aliases", {})
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise SpecError("[aliases] maps phrases to formulas, e.g. \"step size\" = \"step\"")
    until = float(raw.get("until_step_below", 1e-3))
    max_steps = int(raw.get("max_steps", 10_000))
    if not (until > 0 and max_steps > 0):
        raise SpecError("until_step_below and max_steps must be positive")
    parameter = _parameter(raw, spec, body)
    notation = _notation(spec, rate, parameter, {**ALIASES, **aliases})
    lines, prose = _read_lines(body, notation)
    return Working(spec, notation, tuple(lines), tuple(prose), rate, parameter, updates, until, max_steps,
                   str(raw.get("title", "")), path)


def _parameter(raw: dict[str, Any], spec: Spec, body: list[tuple[int, str]]) -> NodeRef | None:
    """The parameter "slope" and "step" are about: named, the only trained one, or the first ``new X``."""
    network = spec.network
    if "parameter" in raw:
        if not isinstance(raw["parameter"], str):
            raise SpecError("parameter names one weight or bias, e.g. parameter = \"b3\"")
        ref = Notation(network).node(raw["parameter"])
        if not ref.is_parameter:
            raise SpecError(f"parameter: {raw['parameter']!r} is not a weight or bias")
        return ref
    trained = [ref for ref in network.parameter_refs() if not network.is_frozen(ref)]
    if len(trained) == 1:
        return trained[0]
    plain = Notation(network)
    for _, line in body:
        for match in re.finditer(r"(?i)\bnew\s+([A-Za-z_][A-Za-z0-9_]*(?:\([^)]*\)(?:_\d+)*)?)", line):
            try:
                ref = plain.node(match.group(1))
            except SymbackError:
                continue
            if ref.is_parameter:
                return ref
    return None


def _notation(spec: Spec, rate: sp.Rational | None, parameter: NodeRef | None, aliases: dict[str, str]) -> Notation:
    network = spec.network
    probe = Notation(network)
    cost = probe.cost_symbol
    quantities: dict[str, sp.Expr] = {}
    prefixes: dict[str, Any] = {"old": lambda x: x}
    for word in ("optimal", "optimum", "final", "converged"):
        prefixes[word] = Converged
    if rate is not None:
        quantities.update(eta=ETA, lr=ETA, learning_rate=ETA)
        new = lambda x: x - ETA * sp.Derivative(cost, x, evaluate=False)  # noqa: E731 - the rule, named below
        prefixes.update(new=new, updated=new)
    if parameter is not None:
        theta = probe.model.symbols[parameter]
        slope = sp.Derivative(cost, theta, evaluate=False)
        quantities.update(slope=slope)
        if rate is not None:
            quantities.update(step=ETA * slope)
    return Notation(network, examples=len(spec.require_data()), quantities=quantities, prefixes=prefixes,
                    aliases=aliases)


def _clean(text: str) -> str:
    text = _MARKUP.sub("", text).replace("`", "").replace("$", "")
    return text.replace("≈", "=").replace(":=", "=").replace("==", "=").strip()


def _parses(notation: Notation, text: str) -> sp.Expr | None:
    try:
        return notation.parse(text)
    except SymbackError:
        return None


def _repaired(notation: Notation, text: str) -> tuple[sp.Expr, str] | None:
    """A formula with one unmatched parenthesis, read the one way that parses (a careful reader's guess)."""
    opened, closed = text.count("("), text.count(")")
    candidates = []
    if closed == opened + 1:
        candidates = [text[:i] + text[i + 1 :] for i, c in enumerate(text) if c == ")"]
    elif opened == closed + 1:
        candidates = [text + ")"]
    for candidate in candidates:
        parsed = _parses(notation, candidate)
        if parsed is not None:
            return parsed, f"read with an unmatched parenthesis mended: {candidate.strip()}"
    return None


def _link(notation: Notation, text: str) -> tuple[Link, str] | None:
    """One member of a chain, and a note when it had to be mended; None when it cannot be read."""
    parsed, note = _parses(notation, text), ""
    if parsed is None:
        mended = _repaired(notation, text)
        if mended is None:
            return None
        parsed, note = mended
    special = parsed.has(sp.Derivative, ExampleSum, AtExample, Converged)
    if parsed.free_symbols or special:
        return Link(text.strip(), parsed, "symbolic"), note
    stripped = text.strip()
    while stripped.startswith("(") and stripped.endswith(")") and stripped.count("(") == 1:
        stripped = stripped[1:-1].strip()
    try:
        value = ClaimValue.parse(stripped.replace(" ", ""))
        return Link(text.strip(), parsed, "number", value), note
    except SymbackError:
        return Link(text.strip(), parsed, "arithmetic"), note


def _continues(text: str) -> bool:
    return bool(text) and "=" not in text and text.lstrip()[:1] in ("(", "*", "×", "·", "/", "+", "-", "−")


def _read_lines(body: list[tuple[int, str]], notation: Notation) -> tuple[list[Line], list[tuple[int, str]]]:
    lines: list[Line] = []
    prose: list[tuple[int, str]] = []
    lead_in = ""  # an unfinished sentence just before a math line ("We found the optimal" / "b3 = 2.21")
    index = 0
    while index < len(body):
        number, original = body[index]
        text = _clean(original)
        index += 1
        if "=" not in text:
            if text:
                prose.append((number, original.strip()))
            lead_in = text if text and not text.endswith(_END_OF_SENTENCE) else ""
            continue
        notes: list[str] = []
        if index < len(body) and _continues(_clean(body[index][1])):
            following = _clean(body[index][1])
            joined = text + " " + following
            if _parses(notation, joined.split("=")[-1]) is not None:
                notes.append(f"continued on line {body[index][0]}: {following}")
                text = joined
                index += 1
        shown = original.strip() + (" " + _clean(body[index - 1][1]) if notes else "")
        lines.append(_chain(notation, number, shown, text, lead_in, notes))
        lead_in = ""
    return lines, prose


def _chain(notation: Notation, number: int, original: str, text: str, lead_in: str, notes: list[str]) -> Line:
    if re.search(r"[<>!]=|≠|≤|≥", text):
        return Line(number, original, original, reason="an inequality: only equations are judged")
    parts = text.split("=")
    if not parts[0].strip():
        return Line(number, original, original, reason="nothing before the first '='")
    words = ((lead_in + " ") if lead_in else "").split() + parts[0].split()
    first, prose, defines = None, "", ""
    for start in range(len(words)):
        candidate = " ".join(words[start:])
        link = _link(notation, candidate)
        if link is not None:
            first, prose = link, " ".join(words[:start])
            if start < len(lead_in.split()):  # "We found the optimal" / "b3 = 2.21": the sentence is one line
                original = f"{lead_in} {original}"
            break
    if first is None:
        name = words[-1] if words else ""
        differential = name[:1] in ("d", "∂") and _parses(notation, name[1:]) is not None
        if differential:  # "dpredicted = Top Layer + …" before "dpredicted/db3 = 1": the author means predicted
            first = _link(notation, name[1:])
            assert first is not None  # it parses: checked above
            prose = " ".join(words[:-1])
            notes.append(f"{name!r} has no '/d…' to divide by: read as {name[1:]!r}, the quantity it is the "
                         f"differential of")
        elif re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) and notation.lookup(name) is None and len(parts) > 1:
            defines, prose = name, " ".join(words[:-1])
        else:
            shown = parts[0].strip().split()[-1] if parts[0].strip() else parts[0]
            return Line(number, original, original, reason=f"cannot read {shown!r} (the left side of '=') as a quantity")
    links: list[Link] = []
    if first is not None:
        links.append(first[0])
        if first[1]:
            notes.append(first[1])
    for position, part in enumerate(parts[1:], 1):
        link = _link(notation, part)
        if link is None and position == len(parts) - 1:
            words_after = part.split()
            for stop in range(len(words_after) - 1, 0, -1):  # trailing prose: "= -15.7 at the start"
                link = _link(notation, " ".join(words_after[:stop]))
                if link is not None:
                    break
        if link is None:
            if position == len(parts) - 1 or (defines and position == 1):
                return Line(number, original, prose or original, reason=f"cannot read {part.strip()!r}")
            # A member in the middle that cannot be read is listed; the members after it are still judged.
            links.append(Link(part.strip(), sp.S.Zero, "unread"))
            continue
        links.append(link[0])
        if link[1]:
            notes.append(link[1])
        if defines and position == 1:
            if link[0].kind != "symbolic":
                return Line(number, original, prose, reason=f"{defines} is given a number, not a formula: "
                            f"what it stands for is not known, so it is not judged")
            try:
                notation.define(defines, link[0].expression)
            except SymbackError as error:
                return Line(number, original, prose, reason=str(error))
            links.insert(0, Link(defines, link[0].expression, "symbolic"))
    return Line(number, original, prose, tuple(links), tuple(notes), defines=defines)


# -- judging ----------------------------------------------------------------------------------------


class _Unjudgeable(SymbackError):
    pass


def judge(working: Working, *, seed: int = 0):
    """Judge every line of ``working`` in order; a :class:`~symback.verification.verify.VerificationReport`."""
    return _Judge(working, seed).run()


@dataclass
class _Pending:
    true: float
    author: float
    taint: frozenset[int]
    line: int


@dataclass
class _Member:
    """A judged member of a chain: its link, status and (for numbers) the value later members build on."""

    link: Link
    status: str
    value: float | None = None
    taint: frozenset[int] = frozenset()


class _Judge:
    """Follows the true state and the author's state down the working, line by line."""

    def __init__(self, working: Working, seed: int) -> None:
        self.working = working
        self.engine = _Engine(working)  # type: ignore[arg-type] - it reads .notation and .spec only
        self.model = self.engine.model
        self.network = working.spec.network
        self.cost = self.engine.cost
        self.rate = working.learning_rate
        self.true = working.spec.parameters.copy()
        self.author = _State(working.spec.parameters.copy(), self.network)
        self.pending: dict[NodeRef, _Pending] = {}
        self.written: dict[sp.Expr, tuple[float, frozenset[int]]] = {}
        self.applied: list[int] = []  # lines whose updates are in the current state
        self.seed = seed
        parameters = [self.model.symbols[r] for r in self.network.parameter_refs()]
        self.new_forms = {p: p - ETA * sp.Derivative(self.cost, p, evaluate=False) for p in parameters}
        self.context = SlipContext(self.engine, self.new_forms)
        self._reads_memo: dict[tuple[sp.Symbol, frozenset[sp.Symbol]], bool] = {}

    def rng(self, line: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, line])

    # -- numbers --------------------------------------------------------------
    def known(self) -> dict[sp.Symbol, float]:
        return {ETA: float(self.rate)} if self.rate is not None else {}

    def number(self, expression: sp.Expr, params: Parameters) -> float:
        """The value of a quantity at ``params`` (Σ, examples, descents and slipped partials evaluated)."""
        expression = expression.replace(
            lambda e: isinstance(e, (Converged, ExampleSum, AtExample, SlippedPartial)),
            lambda e: sp.Float(self._special(e, params), 17),
        )
        if expression.has(ETA) and self.rate is None:
            raise _Unjudgeable("the learning rate is not given (learning_rate = ... in the front matter)")
        return self.engine.value(expression, params, known=self.known())

    def _special(self, atom: sp.Expr, params: Parameters) -> float:
        if isinstance(atom, Converged):
            return self.converge(params, self.model.refs[atom.args[0]])
        if isinstance(atom, SlippedPartial):
            inner, total = atom.args
            if total:
                summed = ExampleSum(inner)
                return self.number(summed if self.network.cost.example_reduction == "sum"
                                   else summed / len(self.engine.data), params)
            return self.number(inner, params)
        values, per_example = self.engine.values(atom.args[0], params, self.known())
        if isinstance(atom, ExampleSum):
            return float(np.sum(values)) if per_example else float(values[0]) * len(values)
        return float(values[int(atom.args[1])])

    def converge(self, params: Parameters, ref: NodeRef) -> float:
        if self.rate is None:
            raise _Unjudgeable("'optimal' needs the learning rate (learning_rate = ... in the front matter)")
        claim = UpdateClaim(0, None, "", ref, float(self.rate), until_step_below=self.working.until_step_below,
                            max_steps=self.working.max_steps)
        value, taken, last, stopped = self.engine.descend(params, claim)
        if not stopped:
            raise _Unjudgeable(f"gradient descent on {self.network.name_of(ref)} did not reach |step| < "
                               f"{self.working.until_step_below:g} in {taken} steps (last step {last:.3g})")
        return value

    def authors(self, expression: sp.Expr) -> tuple[sp.Expr, frozenset[int]]:
        """``expression`` with the author's own earlier values put in, and the wrong lines they came from.

        A quantity written earlier (``∂E/∂out_o1 = 0.15``) is put in where it occurs whole.  With one
        example, the author's node values (``out_o1 = 0.8000``) also reach what is computed from them: a
        derivative becomes its chain rule in node symbols (``∂E/∂out_o1`` → ``out_o1 − t1``), a node or
        the cost its local expression (``a = tanh(z)``), until the nodes written are reached; so a line
        that follows correctly from the author's numbers is recomputed from them, never by substituting
        a number into a derivative (``∂(0.8)/∂net_o1`` would be 0).
        """
        taint = self.author.sources()
        compound = sorted((k for k in self.written if not isinstance(k, sp.Symbol)), key=lambda k: -sp.count_ops(k))
        for key in compound:
            replaced = expression.xreplace({key: sp.Float(self.written[key][0], 17)})
            if replaced != expression:
                expression, taint = replaced, taint | self.written[key][1]
        nodes = {k for k in self.written if isinstance(k, sp.Symbol) and k in self.model.refs}
        if nodes and len(self.engine.data) == 1:
            expression = self._through(expression, nodes)
        used = expression.free_symbols & set(self.written)
        taint = taint.union(*(self.written[symbol][1] for symbol in used))
        return expression.xreplace({symbol: sp.Float(self.written[symbol][0], 17) for symbol in used}), taint

    def _through(self, expression: sp.Expr, nodes: set[sp.Symbol]) -> sp.Expr:
        """``expression`` rewritten in the written ``nodes`` wherever it is computed from them."""
        unwritten = [d for d in expression.atoms(sp.Derivative) if d not in self.written]
        if unwritten:
            expression = expression.xreplace({d: self.engine.partial(d.expr, d.variables[0]) for d in unwritten})
        for _ in range(2 * self.network.depth + 2):  # each pass goes one node back towards the inputs
            expand = {s: self.model.local_expression(self.model.refs[s]) for s in expression.free_symbols
                      if s not in nodes and s in self.model.refs and self._reads(s, frozenset(nodes))}
            if not expand:
                break
            expression = expression.xreplace(expand)
        return expression

    def _reads(self, symbol: sp.Symbol, nodes: frozenset[sp.Symbol]) -> bool:
        """Whether the node ``symbol`` is computed (through any path) from one of ``nodes``."""
        key = (symbol, nodes)
        if key not in self._reads_memo:
            ref = self.model.refs[symbol]
            if ref.kind not in ("z", "a", "C"):
                self._reads_memo[key] = False
            else:
                inputs = self.model.local_expression(ref).free_symbols & set(self.model.refs)
                self._reads_memo[key] = any(s in nodes or self._reads(s, nodes) for s in inputs)
        return self._reads_memo[key]

    def updated(self, author: bool) -> Parameters:
        params = (self.author.params if author else self.true).copy()
        for ref, pending in self.pending.items():
            params.set(ref, pending.author if author else pending.true)
        return params

    # -- forms ----------------------------------------------------------------
    def local(self, expression: sp.Expr) -> sp.Expr | None:
        """The per-example form in node symbols; None when it needs numbers (Σ, one example, a descent)."""
        if expression.has(ExampleSum, AtExample, Converged):
            return None
        expression = expression.replace(lambda e: isinstance(e, SlippedPartial), lambda e: e.args[0])
        expression = self.engine.per_example(expression)
        return expression.xreplace({ETA: self.rate}) if self.rate is not None else expression

    def _rated(self, expression: sp.Expr) -> sp.Expr:
        """``expression`` with the learning rate's value for η (when the working gives it)."""
        return expression.xreplace({ETA: self.rate}) if self.rate is not None else expression

    def identity(self, left: sp.Expr, right: sp.Expr, line: int) -> tuple[bool | None, str]:
        """Whether ``left = right`` holds in this network (for every example and every parameter value)."""
        a, b = self.local(left), self.local(right)
        if a is not None and b is not None:
            result = compare_expressions(self.model.substitute_forward(a), self.model.substitute_forward(b),
                                         rng=self.rng(line))
            return result.equal, result.reason
        # Sums over the examples, single examples, descents: compare the numbers at several parameter values.
        rng = self.rng(line)
        states = [self.true]
        for _ in range(4):
            params = self.true.copy()
            for ref in self.network.parameter_refs():
                params.set(ref, params.get(ref) + rng.normal(0.0, 0.3))
            states.append(params)
        try:
            for params in states:
                x, y = self.number(left, params), self.number(right, params)
                if not (math.isfinite(x) and math.isfinite(y)):
                    continue
                if abs(x - y) > 1e-9 * max(abs(x), abs(y)) + 1e-12:
                    return False, f"they differ at the current values: {x:.6g} and {y:.6g}" if params is self.true \
                        else f"they differ at other parameter values ({x:.6g} and {y:.6g})"
        except _Unjudgeable as error:
            return None, str(error)
        return True, "equal at the current and at random parameter values"

    def variants(self, quantity: sp.Expr):
        return variants(self.context, quantity)

    def symbolic_slip(self, quantity: sp.Expr, written: sp.Expr, line: int) -> str:
        return symbolic_slip(self.context, quantity, written, local=self.local, rng=self.rng(line))

    def numeric_slip(self, quantity: sp.Expr, close) -> str:
        for slip, variant in self.variants(quantity):
            for author in (False, True):
                params = self.updated(author) if variant.state == "updated" else (
                    self.author.params if author else self.true)
                if variant.state == "updated" and not self.pending:
                    continue
                expression = self.authors(variant.expression)[0] if author else variant.expression
                try:
                    value = self.number(expression, params)
                except SymbackError:
                    continue
                if close(value):
                    return f"{slip.name}: {variant.detail}"
        return ""

    def chain_line(self, quantity: sp.Expr) -> str:
        return self.engine.chain_line(quantity)

    # -- state ----------------------------------------------------------------
    def commit(self) -> None:
        for ref, pending in self.pending.items():
            self.true.set(ref, pending.true)
            self.author.set(ref, pending.author, pending.taint)
            self.applied.append(pending.line)
        self.pending.clear()
        self.written.clear()

    def touches(self, line: Line) -> set[NodeRef]:
        """The parameters whose slope, update or optimum the line is about."""
        out: set[NodeRef] = set()
        for link in line.links:
            for derivative in link.expression.atoms(sp.Derivative):
                ref = self.model.refs.get(derivative.variables[0])
                if derivative.expr == self.cost and ref is not None and ref.is_parameter:
                    out.add(ref)
            for atom in link.expression.atoms(Converged):
                out.add(self.model.refs[atom.args[0]])
        first = line.links[0].expression
        if isinstance(first, sp.Symbol) and first in self.model.refs and self.model.refs[first].is_parameter:
            out.add(self.model.refs[first])
        return out

    def ends_the_step(self, line: Line) -> bool:
        """Whether ``line`` is about the weights after the pending updates (see :data:`UPDATE_RULE`)."""
        if self.working.updates == "sequential":
            return True
        pending = {entry for ref in self.pending for entry in self.network.tied(ref)}
        if self.touches(line) & pending:
            return True
        return bool(line.links) and cost_value(line.links[0].expression, self.cost)

    def state_note(self) -> str:
        parts = []
        if self.applied:
            changed = [r for r in self.network.parameter_refs()
                       if self.true.get(r) != self.working.spec.parameters.get(r)]
            shown = ", ".join(f"{self.network.name_of(r)} = {self.true.get(r):.6g}" for r in changed[:8])
            shown += f" and {len(changed) - 8} more" if len(changed) > 8 else ""
            lines = ", ".join(str(n) for n in sorted(set(self.applied)))
            parts.append(f"judged at the weights after the update(s) of line(s) {lines}"
                         + (f" ({shown})" if shown else ""))
        if self.pending:
            lines = ", ".join(str(p.line) for p in self.pending.values())
            parts.append(f"at the weights before the update(s) of line(s) {lines} (simultaneous updates: every "
                         f"partial of a step at the old weights)")
        return "; ".join(parts)

    # -- lines ----------------------------------------------------------------
    def run(self):
        verdicts = [self.line(line) for line in self.working.lines]
        path = str(self.working.path) if self.working.path else ""
        return VerificationReport(tuple(verdicts), self.working.title, path, prose=self.working.prose)

    def line(self, line: Line):
        if line.reason:
            return Verdict(line.number, line.number, "working", line.text, NOT_JUDGED, message=line.reason,
                           unit="line")
        if self.pending and self.ends_the_step(line):
            self.commit()
        try:
            return self._judge(line)
        except _Unjudgeable as error:
            return Verdict(line.number, line.number, "working", line.text, UNJUDGED, message=str(error), unit="line")
        except SymbackError as error:  # e.g. a quantity with one value per example, written as one number
            return Verdict(line.number, line.number, "working", line.text, NOT_JUDGED, message=str(error), unit="line")

    def _judge(self, line: Line):
        first = line.links[0]
        # A definition's first member is the definition itself: checking it would only say it equals itself.
        rest = line.links[2:] if line.defines else line.links[1:]
        numeric_links = [link for link in rest if link.kind != "symbolic"]
        true = None
        # What the author's own earlier numbers give: the quantity recomputed from them, and each formula
        # of the line that is right (``out_o1(1 − out_o1)`` at the author's out_o1).
        authored: list[tuple[float, frozenset[int]]] = []
        if first.kind == "symbolic" and numeric_links:
            true = self.number(first.expression, self.true)
            authored += self.authored(first.expression, true)
        elif first.kind != "symbolic":
            true = float(first.expression)
        members = [_Member(first, RIGHT, None if first.kind == "symbolic" else float(first.expression))]
        checks: list[Check] = []
        slips: list[str] = []
        carried: set[int] = set()
        for link in rest:
            previous = members[-1]
            if link.kind == "unread":
                checks.append(Check(f"= {_clip(link.text)}", link.text, NOT_JUDGED, "", "cannot read this member"))
                continue
            sources: frozenset[int] = frozenset()
            if link.kind == "symbolic":
                status, expected, note = self._symbolic(line, first, previous, link)
                member = _Member(link, status)
                if status == RIGHT and numeric_links and true is not None:
                    authored += self.authored(link.expression, true)
            else:
                value = link.value.value if link.value is not None else float(link.expression)
                allowance = link.value.allowance if link.value is not None else self.allowance(link)

                def close(x: float | None, value: float = value, allowance: float = allowance) -> bool:
                    return x is not None and math.isfinite(x) and abs(value - x) <= allowance + 1e-9 * max(
                        abs(value), abs(x), allowance)

                status, expected, note, source = self._numeric(line, first, previous, close, true, authored)
                if expected is None and true is not None:
                    expected = _as_written(true, link.value) if link.value is not None else f"{true:.6g}"
                expected = expected or ""
                member = _Member(link, status, value, source)
                sources = source - {line.number}
                carried |= sources
            if status == WRONG and note.startswith("slip: ") and note[len("slip: "):] not in slips:
                slips.append(note[len("slip: "):])
            members.append(member)
            checks.append(Check(f"= {_clip(link.text)}", link.text, status, expected, note,
                                tuple(sorted(sources)) if status == CARRIED else ()))
        if line.defines:
            checks.insert(0, Check("defines", line.defines, STATE, str(first.expression)))
        statuses = [c.status for c in checks] or [STATE]
        status = max(statuses, key=_SEVERITY.__getitem__)
        note = self.state_note() if first.kind == "symbolic" and numeric_links else ""
        self._record(line, first, members, status, carried)
        messages = []
        for check in checks:
            if check.status == WRONG:
                messages.append(f"written {check.claimed}, right: {check.expected}" + (f" — {check.note}" if check.note else ""))
            elif check.note:
                messages.append(f"{check.claimed}: {check.note}")
        if status == WRONG and first.kind == "symbolic":
            chain = self.chain_line(first.expression)
            if chain:
                messages.append(chain)
        messages += list(line.notes)
        if note:
            messages.append(note)
        derivation = ""
        if status == WRONG and first.kind == "symbolic":
            derivation = self.engine.derivation_text(first.expression, self.true)
        math_items: tuple[tuple[str, Any], ...] = ()
        if first.kind == "symbolic" and status in (WRONG, CARRIED):
            local = self.local(first.expression)
            if local is not None:
                math_items = (("quantity", _as_partials(first.expression)),
                              ("right", self.engine.textbook(self._rated(first.expression))))
        return Verdict(line.number, line.number, "working", line.text, status, tuple(checks), "\n".join(messages),
                       derivation, tuple(sorted(carried)), math_items, slips=tuple(slips), state=note, unit="line")

    def _symbolic(self, line: Line, first: Link, previous: _Member, link: Link) -> tuple[str, str, str]:
        if first.kind != "symbolic":
            return UNJUDGED, "", "a formula after a number cannot be checked against it"
        equal, reason = self.identity(first.expression, link.expression, line.number)
        if equal:
            return RIGHT, link.text, ""
        if equal is None:
            return UNJUDGED, "", reason
        local = self.local(first.expression)
        if first.expression.has(ETA) or local is None:
            right = _display(first.expression)  # an update or step: as the vocabulary says it, not per example
        else:
            right = self.engine.right_text(self._rated(first.expression))
        if previous.link.kind == "symbolic" and previous.status in (WRONG, CARRIED) and previous.link is not first:
            if self.identity(previous.link.expression, link.expression, line.number)[0]:
                return CARRIED, right, "follows from the member before it, which is wrong"
        slip = self.symbolic_slip(first.expression, link.expression, line.number)
        return WRONG, right, (f"slip: {slip}" if slip else reason)

    def authored(self, expression: sp.Expr, true: float) -> list[tuple[float, frozenset[int]]]:
        """The value of ``expression`` at the author's own earlier numbers, with the wrong lines they came
        from; nothing when they give the true value or cannot be evaluated."""
        substituted, taint = self.authors(expression)
        if not taint and substituted == expression:
            return []
        try:
            value = self.number(substituted, self.author.params)
        except SymbackError:
            return []
        return [(value, taint)] if math.isfinite(value) and value != true else []

    def _numeric(self, line: Line, first: Link, previous: _Member, close, true: float | None,
                 authored: list[tuple[float, frozenset[int]]]) -> tuple[str, str | None, str, frozenset[int]]:
        if true is not None and close(true):
            return RIGHT, None, "", frozenset()
        matches = [taint - {line.number} for value, taint in authored if close(value)]
        if matches:
            clean = [own for own in matches if not own]
            if clean:  # right at the author's rounded numbers (not at the true ones, to the digits shown)
                return RIGHT, None, "consistent with the rounded values written earlier", frozenset()
            own = min(matches, key=len)
            return CARRIED, None, (f"consistent with the earlier wrong value(s) of line(s) {_lines(own)}"), own
        if previous.value is not None and previous.link is not first and previous.status == RIGHT \
                and close(previous.value):  # tanh(0.615) = 0.5476: right at the rounded numbers the line shows
            return RIGHT, None, f"consistent with the rounded numbers of {_clip(previous.link.text)}", frozenset()
        if previous.value is not None and previous.link is not first and previous.status in (WRONG, CARRIED) \
                and close(previous.value):
            return CARRIED, None, "follows from the member before it, which is wrong", previous.taint - {line.number}
        slip = self.numeric_slip(first.expression, close) if first.kind == "symbolic" else ""
        if slip:
            return WRONG, None, f"slip: {slip}", frozenset({line.number})
        if previous.value is not None and previous.status in (RIGHT, CARRIED) and not close(previous.value) \
                and previous.link is not first:
            return WRONG, None, f"arithmetic: {previous.link.text} = {previous.value:.6g}", frozenset({line.number})
        return WRONG, None, "", frozenset({line.number})

    def exact_numbers(self) -> set[Decimal]:
        """Numbers an author copies exactly, not rounded: the learning rate, parameter values, the data."""
        values = [*self.true.flat(), *self.author.params.flat(), *self.engine.data.X.ravel(), *self.engine.data.Y.ravel()]
        out = {Decimal(repr(float(v))) for v in values}
        if self.rate is not None:
            out.add(Decimal(self.rate.p) / Decimal(self.rate.q))
        return out

    def allowance(self, link: Link) -> float:
        """How far an arithmetic member may be off because the numbers in it were rounded as written."""
        total = 0.0
        exact = self.exact_numbers()
        for match in re.finditer(r"(?<![\w.])(\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?", link.text):
            literal = Decimal(match.group())
            if literal in exact or -literal in exact:
                continue  # copied, not rounded
            exponent = literal.as_tuple().exponent
            assert isinstance(exponent, int)
            half = Decimal(5).scaleb(exponent - 1)
            # The literal stands for anything within half a unit of it, on either side: a curved function
            # moves further one way (tanh(0.615) for a true z of 0.6145 is off by more than tanh(0.6155) is).
            shifts = []
            for edge in (literal + half, literal - half):
                bumped = link.text[: match.start()] + str(edge) + link.text[match.end() :]
                try:
                    shifts.append(abs(float(self.working.notation.parse(bumped)) - float(link.expression)))
                except (SymbackError, TypeError):
                    shifts.append(float(half))
            total += max(shifts)
        return total

    def _record(self, line: Line, first: Link, members: list[_Member], status: str, carried: set[int]) -> None:
        numbers = [m for m in members[1:] if m.value is not None]
        if first.kind != "symbolic" or not numbers:
            return
        value = numbers[-1].value
        assert value is not None
        taint = frozenset({line.number}) if status == WRONG else (
            frozenset(carried) if status == CARRIED else frozenset())
        quantity = first.expression
        parameter = next((p for p, form in self.new_forms.items() if form == quantity), None)
        if parameter is not None:
            ref = self.model.refs[parameter]
            true = self.number(quantity, self.true)
            self.pending[ref] = _Pending(true, value, taint, line.number)
            if self.working.updates == "sequential":
                self.commit()
        elif isinstance(quantity, Converged):
            ref = self.model.refs[quantity.args[0]]
            self.true.set(ref, self.number(quantity, self.true))
            self.author.set(ref, value, taint)
            self.written.clear()
        elif isinstance(quantity, sp.Symbol) and quantity in self.model.refs and self.model.refs[quantity].is_parameter:
            self.author.set(self.model.refs[quantity], value, taint)
        else:
            self.written[quantity] = (value, taint)


def _display(expression: sp.Expr) -> str:
    """A quantity as a textbook writes it, its derivatives as ∂C/∂w: ``b3 − η·∂SSR/∂b3``."""
    from ..render.notation import text

    return text(_as_partials(expression))


def _clip(text: str, width: int = 24) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
