"""The judge: checks a hand calculation (a claims file) line by line, like a careful teacher.

Every claim gets a verdict:

* ``right`` — the true value rounds to the digits written (or lies within the
  claim's tolerance); a symbolic claim is equal to the derived expression;
* ``wrong`` — with the right value or expression and its chain-rule derivation;
* ``error carried forward`` — wrong only because it used an earlier wrong value,
  and consistent with it (the line is recomputed from the author's own earlier values);
* ``cannot be judged`` — with the reason (a descent that does not converge or
  diverges, an expression undefined at every sampled point);
* ``invalid`` — a malformed claim (unknown name, unparseable expression, wrong
  shape): named with its line, the other lines still judged, exit status 2.

Two states are followed from top to bottom: the *true* state (exact values;
after a wrong line it continues from the right value) and the *author's* state
(the values they wrote, each remembering which wrong line, if any, it came from).
A line is right when it matches the true state, or the author's state where
that differs only by the author's own accepted rounding.

Symbolic claims are compared by ``sympy.simplify`` of the difference *and* at
random points; when the two disagree the numbers decide, re-evaluated at 50
digits, so a ``simplify`` miss never becomes a false verdict.

>>> from symback.verification.claims import claims_from_text
>>> report = verify(claims_from_text('''
... [network]
... layers = [1, 1]
... activations = "identity"
... cost = "ssr"
... [parameters]
... "w(L)" = 2.0
... "b(L)" = 0.0
... [data]
... x = [1]
... y = [1]
... [[claim]]
... quantity = "d(C)/d(b(L))"
... value = "2"
... '''))
>>> report.verdicts[0].status
'right'
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import numpy as np
import sympy as sp

from ..budget import attempt
from ..compile.compiler import CompiledNetwork, compile_network, evaluate, lambdify, stabilize
from ..data import Dataset
from ..errors import SpecError, SymbackError
from ..registry import Registry
from ..render.derivation import activations_in_z, derive
from ..symbolic.network import Network, NodeRef
from ..symbolic.parameters import Parameters
from ..training.train import descend
from .claims import (
    Claim,
    ClaimsFile,
    ClaimValue,
    InvalidClaim,
    NumericClaim,
    SetClaim,
    SymbolicClaim,
    UpdateClaim,
    cost_value,
    where,
)
from .slips import SlipContext, SlippedPartial, symbolic_slip

__all__ = [
    "CARRIED",
    "INVALID",
    "NOT_JUDGED",
    "RIGHT",
    "STATE",
    "UNJUDGED",
    "WRONG",
    "Check",
    "GradientCheck",
    "Verdict",
    "VerificationReport",
    "gradient_check",
    "render",
    "verify",
]

RIGHT = "right"
WRONG = "wrong"
CARRIED = "error carried forward"
UNJUDGED = "cannot be judged"
INVALID = "invalid"  # a malformed claim: cannot be judged, and the input is unusable (exit status 2)
STATE = "state"  # a change of state ("now b3 = 1.57"): not a claim
NOT_JUDGED = "not judged"  # a line of plain-text working whose math could not be read: listed, never fatal

# How bad a status is, for the verdict of a line made of several checks.
_SEVERITY = {STATE: 0, NOT_JUDGED: 0, RIGHT: 1, UNJUDGED: 2, CARRIED: 3, WRONG: 4, INVALID: 5}

#: Random points at which symbolic claims are compared numerically.
SAMPLE_POINTS = 24
#: Largest expression (in operations) handed to ``sympy.simplify``.
SIMPLIFY_LIMIT = 600


@dataclass(frozen=True)
class Check:
    """One number or expression of a line: what the author wrote and what it should be."""

    part: str  # "value", "expression", "old", "slope", "step", "new"
    claimed: str
    status: str
    expected: str  # the right value / expression, as text ("" when not computed)
    note: str = ""
    carried_from: tuple[int, ...] = ()  # error carried forward: the earlier wrong claims (lines) it used


@dataclass(frozen=True)
class Verdict:
    """The judgement of one claim (one line of the hand calculation)."""

    number: int
    line: int | None
    kind: str
    text: str
    status: str
    checks: tuple[Check, ...] = ()
    message: str = ""
    derivation: str = ""  # the chain-rule derivation of the quantity, for wrong lines
    carried_from: tuple[int, ...] = ()
    # For the LaTeX / HTML renderings: the quantity, the written and the right expression (symbolic claims),
    # and the derived expression of the quantity for lines that are not right.
    math: tuple[tuple[str, Any], ...] = field(default=(), compare=False)
    slips: tuple[str, ...] = ()  # the slips named, "the factor 2 of a square dropped: ..."
    state: str = ""  # when the line was judged at a changed state: which
    unit: str = "claim"  # "claim" (a claims file) or "line" (plain-text working)

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.unit == "line" else where(self.number, self.line)

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.number,
            "line": self.line,
            "kind": self.kind,
            "text": self.text,
            "status": self.status,
            "checks": [vars(check).copy() for check in self.checks],
            "message": self.message,
            "derivation": self.derivation,
            "carried_from": list(self.carried_from),
            "slips": list(self.slips),
            "state": self.state,
        }


@dataclass(frozen=True)
class VerificationReport:
    """Every line's verdict, in order; ``first_wrong`` names the first line that is not right."""

    verdicts: tuple[Verdict, ...]
    title: str = ""
    path: str = ""
    prose: tuple[tuple[int, str], ...] = ()  # plain-text working: the lines without an equation (not judged)

    @property
    def first_wrong(self) -> Verdict | None:
        return next((v for v in self.verdicts if v.status == WRONG), None)

    @property
    def exit_status(self) -> int:
        """0 when every line is right, 2 when a claim could not be read, else 1."""
        statuses = {v.status for v in self.verdicts}
        if INVALID in statuses:
            return 2
        return 0 if statuses <= {RIGHT, STATE, NOT_JUDGED} else 1

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for verdict in self.verdicts:
            counts[verdict.status] = counts.get(verdict.status, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        first = self.first_wrong
        return {
            "title": self.title,
            "file": self.path,
            "verdicts": [v.to_dict() for v in self.verdicts],
            "first_wrong": None if first is None else {"claim": first.number, "line": first.line, "text": first.text},
            "counts": self.counts(),
            "exit_status": self.exit_status,
            "not_judged": [{"line": number, "text": text} for number, text in self.prose],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def text(self, *, details: bool = True, explain: bool = False) -> str:
        """A terminal table (one row per checked number), then short explanations of the lines that are not right.

        Each explanation says what was written, what is right, the slip when one is recognised and the one
        chain-rule line concerned; ``explain`` adds the full derivation behind each wrong line.
        """
        rows = [("#", "line", "claim", "part", "written", "verdict", "symback")]
        for verdict in self.verdicts:
            checks = verdict.checks or (Check("", "", verdict.status, ""),)
            for index, check in enumerate(checks):
                first = index == 0
                rows.append(
                    (
                        str(verdict.number) if first else "",
                        str(verdict.line or "") if first else "",
                        _clip(verdict.text, 44) if first else "",
                        check.part,
                        _clip(check.claimed, 24),
                        check.status,
                        _clip(check.expected, 30),
                    )
                )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = []
        if self.title:
            lines += [self.title, ""]
        for number, row in enumerate(rows):
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
            if number == 0:
                lines.append("  ".join("-" * width for width in widths))
        if details:
            shown: dict[str, str] = {}  # a derivation already printed -> where (each is printed once)
            for verdict in self.verdicts:
                if verdict.status in (RIGHT, STATE) and not verdict.message:
                    continue
                lines += ["", f"{verdict.where}: {verdict.status} — {verdict.text}"]
                lines += [f"  {line}" for line in verdict.message.splitlines()]
                if verdict.derivation and explain:
                    if verdict.derivation in shown:
                        lines.append(f"  (the derivation is the one shown under {shown[verdict.derivation]})")
                    else:
                        shown[verdict.derivation] = verdict.where
                        lines += ["", *(f"    {line}" for line in verdict.derivation.splitlines())]
        if self.prose:
            lines += ["", f"not judged (no equation): line(s) {_ranges([number for number, _ in self.prose])}"]
        lines.append("")
        counts = self.counts()
        lines.append("summary: " + ", ".join(f"{counts[s]} {s}" for s in _SEVERITY if s in counts))
        first = self.first_wrong
        if first is not None:
            lines.append(f"first wrong line: {first.where}: {first.text}")
        elif self.exit_status == 0:
            lines.append("every line is right")
        return "\n".join(lines)


def _ranges(numbers: list[int]) -> str:
    """``1-3, 7, 9-10``."""
    spans: list[tuple[int, int]] = []
    for number in sorted(numbers):
        if spans and spans[-1][1] == number - 1:
            spans[-1] = (spans[-1][0], number)
        else:
            spans.append((number, number))
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# -- numbers ----------------------------------------------------------------------------------------


def _show(value: float) -> str:
    return f"{value:.6g}"


def _as_written(value: float, claimed: ClaimValue) -> str:
    """``value`` to the digits the author used (and more when that hides the difference)."""
    exponent = claimed.decimal.as_tuple().exponent
    assert isinstance(exponent, int)
    rounded = Decimal(repr(float(value))).quantize(Decimal(1).scaleb(exponent))
    if rounded.is_zero():
        rounded = abs(rounded)  # -6.9e-302 to two decimals is 0.00, not -0.00
    text = format(rounded, "f") if -12 < exponent < 12 else _show(value)
    exact = _show(value)
    return text if text == exact else f"{text} ({exact})"


@dataclass
class _State:
    """Parameter values, and for each parameter the wrong lines its value came from."""

    params: Parameters
    network: Network
    taint: dict[NodeRef, frozenset[int]] = field(default_factory=dict)

    def copy(self) -> _State:
        return _State(self.params.copy(), self.network, dict(self.taint))

    def sources(self) -> frozenset[int]:
        out: frozenset[int] = frozenset()
        for lines in self.taint.values():
            out |= lines
        return out

    def set(self, ref: NodeRef, value: float, taint: frozenset[int] = frozenset()) -> None:
        self.params.set_tied(self.network, ref, value)  # a tied parameter: every entry
        key = self.network.tied(ref)[0]  # a tied parameter's taint is one, whichever entry names it
        if taint:
            self.taint[key] = taint
        else:
            self.taint.pop(key, None)

    def taint_of(self, ref: NodeRef) -> frozenset[int]:
        """The wrong lines the value of ``ref`` (of its tied parameter, for an entry of one) came from."""
        return self.taint.get(self.network.tied(ref)[0], frozenset())


class _ShapeError(SymbackError):
    pass


class _Engine:
    """Symbolic partials in the author's notation and their numbers, for one network and data set."""

    def __init__(self, claims: ClaimsFile) -> None:
        self.notation = claims.notation
        self.network: Network = claims.spec.network
        self.data: Dataset = claims.spec.require_data()
        self.model = self.notation.model
        self.compiled = compile_network(self.network)
        self.cost = self.notation.cost_symbol
        self._memo: dict[tuple[sp.Symbol, sp.Symbol], sp.Expr] = {}
        self._chains: dict[NodeRef, str] = {}
        self._per_example = {s for s, r in self.model.refs.items() if r.kind in ("x", "y", "z", "a")}

    # -- symbolic -------------------------------------------------------------
    def partial_node(self, node: sp.Symbol, wrt: sp.Symbol) -> sp.Expr:
        """``∂node/∂wrt`` through the network's graph (chain rule over every path), in node symbols."""
        key = (node, wrt)
        if key not in self._memo:
            if node == wrt:
                result: sp.Expr = sp.S.One
            elif self.model.refs[node].kind in ("w", "b", "x", "y"):
                result = sp.S.Zero
            else:
                result = self.partial(self.model.local_expression(self.model.refs[node]), wrt)
            self._memo[key] = result
        return self._memo[key]

    def partial(self, expression: sp.Expr, wrt: sp.Symbol) -> sp.Expr:
        """``∂expression/∂wrt`` where ``expression`` is in node symbols (one example's cost for the cost)."""
        total = sp.S.Zero
        for symbol in sorted(expression.free_symbols, key=str):
            if symbol in self.model.refs:
                inner = self.partial_node(symbol, wrt)
                if inner != 0:
                    total += sp.diff(expression, symbol) * inner
        return total

    def shown_partial(self, expression: sp.Expr, wrt: sp.Symbol, node: sp.Symbol | None = None) -> sp.Expr:
        """``partial`` in the forms a textbook writes its factors: ``2(a(L) − y)·σ′(z(L))``, not SymPy's
        ``1/(4 cosh(z/2)²)``.  ``node`` is the node ``expression`` defines (its local factors are named)."""
        total = sp.S.Zero
        for symbol in sorted(expression.free_symbols, key=str):
            if symbol in self.model.refs and self.partial_node(symbol, wrt) != 0:
                total += self.shown_factor(node, expression, symbol) * self._shown_node(symbol, wrt)
        return total

    def _shown_node(self, node: sp.Symbol, wrt: sp.Symbol) -> sp.Expr:
        if node == wrt:
            return sp.S.One
        return self.shown_partial(self.model.local_expression(self.model.refs[node]), wrt, node)

    def shown_factor(self, node: sp.Symbol | None, expression: sp.Expr, symbol: sp.Symbol) -> sp.Expr:
        """One local derivative ∂node/∂symbol, named: σ′(z) for an activation, the cost's own difference."""
        from ..render.notation import activation_forms, cost_form

        derivative = sp.diff(expression, symbol)
        ref = self.model.refs.get(node) if node is not None else None
        if ref is not None and ref.kind == "a" and self.model.refs[symbol].kind == "z":
            activation = self.network.activation(ref.layer)
            if activation.elementwise:
                return activation_forms(activation, symbol, node).named
        if ref is not None and ref.kind == "C":
            return cost_form(derivative, expression, symbol)
        return derivative

    def textbook(self, expression: sp.Expr) -> sp.Expr:
        """``per_example`` in textbook forms (:meth:`shown_partial`), for showing the right form beside a wrong one."""
        expression = expression.replace(
            lambda e: isinstance(e, sp.Derivative), lambda e: self.shown_partial(e.expr, e.variables[0])
        )
        return expression.xreplace({self.cost: self.model.local_expression(NodeRef("C"))})

    def right_text(self, expression: sp.Expr) -> str:
        """The right form of a quantity as a textbook writes it: ``2(a(L) − y)·σ′(z(L))``; a lone σ′(z)
        with its form in a, ``σ′(z(L)) = a(L)·(1 − a(L))``.

        The derivatives of ``expression`` are taken through the network (``∂C/∂b(L)`` as its chain-rule
        product), never simplified into a form nobody writes (``1/(4 cosh(z/2)²)``).
        """
        from ..render.notation import FunctionPrime, activation_forms, text

        shown = self.textbook(expression)
        if isinstance(shown, FunctionPrime):
            ref = self.model.refs.get(shown.arg)
            if ref is not None and ref.kind == "z":
                a = self.model.symbols[NodeRef("a", ref.layer, ref.j)]
                forms = activation_forms(self.network.activation(ref.layer), shown.arg, a)
                return " = ".join(text(form) for form in (shown, forms.simplest) if form is not None)
        return text(shown)

    def per_example(self, expression: sp.Expr) -> sp.Expr:
        """Derivatives replaced by their derived expressions; the cost by one example's cost."""
        expression = expression.replace(
            lambda e: isinstance(e, sp.Derivative), lambda e: self.partial(e.expr, e.variables[0])
        )
        return expression.xreplace({self.cost: self.model.local_expression(NodeRef("C"))})

    def leaves(self, expression: sp.Expr) -> sp.Expr:
        """``expression`` in parameters, inputs and targets only."""
        return self.model.substitute_forward(self.per_example(expression))

    # -- numbers --------------------------------------------------------------
    def environment(self, params: Parameters) -> dict[sp.Symbol, Any]:
        forward = self.compiled.forward(params, self.data.X)
        values: dict[sp.Symbol, Any] = {}
        for ref, symbol in self.model.symbols.items():
            if ref.kind in ("w", "b"):
                values[symbol] = params.get(ref)
            elif ref.kind == "x":
                values[symbol] = self.data.X[:, ref.j]
            elif ref.kind == "y":
                values[symbol] = self.data.Y[:, ref.j]
            elif ref.kind == "z":
                values[symbol] = forward.zs[ref.layer - 1][:, ref.j]
            elif ref.kind == "a":
                values[symbol] = forward.activations[ref.layer][:, ref.j]
        values[self.cost] = self.compiled.cost(params, self.data, forward)
        return values

    def value(self, expression: sp.Expr, params: Parameters, example: int | None = None,
              known: dict[sp.Symbol, float] | None = None) -> float:
        """The number ``expression`` stands for: the cost and ∂cost/∂parameter are totals over the examples.

        ``known`` gives numbers for symbols of the caller's own (a learning rate, a Σ already evaluated).
        """
        n = len(self.data)
        if example is not None and example >= n:
            raise _ShapeError(f"example = {example + 1}, but the data have {n} example(s)")
        values, per_example = self.values(expression, params, known)
        if not per_example:
            return float(values[0])
        if example is not None:
            return float(values[example])
        if np.allclose(values, values[0], rtol=1e-12, atol=1e-15):
            return float(values[0])
        shown = ", ".join(_show(v) for v in values[:5]) + (", …" if n > 5 else "")
        raise _ShapeError(f"this quantity has one value per example ({shown}); give example = 1 … {n} to pick one")

    def values(self, expression: sp.Expr, params: Parameters,
               known: dict[sp.Symbol, float] | None = None) -> tuple[np.ndarray, bool]:
        """``expression`` at every example, and whether it depends on the example at all."""
        environment = self.environment(params)
        environment.update(known or {})
        n = len(self.data)
        reduce = np.sum if self.network.cost.example_reduction == "sum" else np.mean
        in_z = activations_in_z(self.model)  # a = σ(z) written out: stable where a rounds to 0 or 1
        replacements: dict[sp.Expr, sp.Expr] = {}
        for derivative in expression.atoms(sp.Derivative):
            inner = self.partial(derivative.expr, derivative.variables[0]).xreplace(in_z)
            wrt = self.model.refs[derivative.variables[0]]
            if derivative.expr == self.cost and wrt.kind in ("w", "b"):
                # A parameter is shared by every example: its derivative is the total (Σ or mean).
                marker = sp.Dummy("total")
                environment[marker] = float(reduce(evaluate(inner, environment, n)))
                replacements[derivative] = marker
            else:
                replacements[derivative] = inner
        expression = expression.xreplace(replacements).xreplace(in_z)
        return evaluate(expression, environment, n), bool(expression.free_symbols & self._per_example)

    def slope(self, params: Parameters, ref: NodeRef) -> float:
        gradient = self.compiled.gradient(params, self.data, respect_frozen=False)
        return float(gradient.weights[ref.layer - 1][ref.j, ref.k] if ref.kind == "w" else gradient.biases[ref.layer - 1][ref.j])

    def descend(self, params: Parameters, claim: UpdateClaim) -> tuple[float, int, float, bool]:
        """Gradient descent on one parameter: (final value, steps taken, last step, whether it stopped by the rule)."""
        params = params.copy()
        ref = claim.parameter
        limit = claim.steps if claim.steps is not None else claim.max_steps

        def slope(value: float) -> float:  # the compiled, vectorised gradient over every example
            params.set(ref, value, self.network)  # a tied parameter: all its entries
            return self.slope(params, ref)

        # The loop of train and report --descent: a step under the tolerance ends it untaken.
        path = descend(params.get(ref), slope, claim.learning_rate, tolerance=claim.until_step_below, max_steps=limit)
        if not path.steps:
            return path.final, 0, float("nan"), claim.until_step_below is None
        stopped = path.converged or (claim.until_step_below is None and path.steps[-1].taken)
        return path.final, path.taken, path.last_step, stopped

    def chain_line(self, expression: sp.Expr) -> str:
        """The chain-rule line of the first ∂cost/∂(w, b, z or a) in ``expression``: the one line a wrong verdict shows."""
        for derivative in sorted(expression.atoms(sp.Derivative), key=str):
            ref = self.model.refs.get(derivative.variables[0])
            if derivative.expr == self.cost and ref is not None and ref.kind in ("w", "b", "z", "a"):
                if ref not in self._chains:
                    chain = derive(self.network, ref).chain_notation(indexed=False)
                    target = f"∂{self.cost}/∂{self.network.name_of(ref)}"
                    # One factor is the quantity itself: "∂C/∂a = ∂C/∂a" says nothing.
                    self._chains[ref] = "" if chain.strip() == target else f"chain rule: {target} = {chain}"
                return self._chains[ref]
        return ""

    def derivation_text(self, expression: sp.Expr, params: Parameters | None) -> str:
        """The chain-rule derivation of the first ∂cost/∂(w, b, z or a) in ``expression``."""
        for derivative in sorted(expression.atoms(sp.Derivative), key=str):
            ref = self.model.refs[derivative.variables[0]]
            if derivative.expr == self.cost and ref.kind in ("w", "b", "z", "a"):
                derivation = derive(self.network, ref)
                text = derivation.text(params, self.data) if params is not None else derivation.text()
                return _without_tautologies(text, f"∂{self.cost}/∂{self.network.name_of(ref)}")
        return ""


_LABEL = re.compile(r"^(\s*(?:[\w δ]+:\s+|with\s+|so\s+)?)(.*)$")


def _without_tautologies(text: str, target: str) -> str:
    r"""A derivation without the lines that say nothing: ``∂C/∂a[k] = ∂C/∂a[k]``, or a chain that is the
    quantity itself; repeated members of a chain (``X = X = Y``) written once.

    >>> derivation = "chain rule:\n  ∂C/∂a = ∂C/∂a\n  ∂C/∂a\n    ∂C/∂a = ∂C/∂a = 2(a − y)"
    >>> print(_without_tautologies(derivation, "∂C/∂a"))
    chain rule:
        ∂C/∂a = 2(a − y)
    """
    kept = []
    for line in text.splitlines():
        match = _LABEL.match(line)
        assert match is not None  # the pattern matches every line
        label, rest = match.groups()
        members: list[str] = []
        for member in rest.split(" = "):
            if not members or member.strip() != members[-1].strip():
                members.append(member)
        if rest.strip() and ((len(members) == 1 and " = " in rest) or (rest.strip() == target and not label.strip())):
            continue
        kept.append(label + " = ".join(members))
    return "\n".join(kept)


# -- comparing expressions --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Comparison:
    equal: bool | None  # None: cannot be decided
    reason: str


def compare_expressions(true: sp.Expr, claimed: sp.Expr, *, rng: np.random.Generator) -> _Comparison:
    """Decide whether two expressions (in the same real symbols) are equal.

    ``simplify(true - claimed) == 0`` and numbers at :data:`SAMPLE_POINTS` random
    points must agree; where they do not, the points are re-evaluated with
    50-digit arithmetic and the numbers decide.

    >>> x = sp.Symbol("x", real=True)
    >>> compare_expressions(sp.exp(-x) / (1 + sp.exp(-x))**2, (1 / (1 + sp.exp(-x))) * (1 - 1 / (1 + sp.exp(-x))),
    ...                     rng=np.random.default_rng(0)).equal
    True
    """
    difference = true - claimed
    symbols = sorted(difference.free_symbols, key=str)
    # A user's formula can keep simplify busy for ever: it is tried within the symbolic budget, and the
    # random points (and the 50-digit re-evaluation) decide alone when it runs out.
    simplified = attempt(sp.simplify, difference, max_weight=SIMPLIFY_LIMIT).value
    proved: bool | None = None if simplified is None else simplified == 0
    if not symbols:
        value = complex(sp.N(difference, 50)) if difference.is_finite is not False else complex("nan")
        if not np.isfinite(value):
            return _Comparison(None, "the expressions are undefined")
        return _Comparison(abs(value) < 1e-30, "both are constants")
    points = rng.uniform(-2.0, 2.0, size=(SAMPLE_POINTS, len(symbols)))
    columns = [points[:, i] for i in range(len(symbols))]
    with np.errstate(all="ignore"):
        left = np.broadcast_to(np.asarray(lambdify(symbols, true)(*columns), dtype=complex), (SAMPLE_POINTS,))
        right = np.broadcast_to(np.asarray(lambdify(symbols, claimed)(*columns), dtype=complex), (SAMPLE_POINTS,))
    finite = np.isfinite(left) & np.isfinite(right)
    if finite.sum() < 3:
        if proved:
            return _Comparison(True, "simplify shows the difference is 0 (undefined at the sampled points)")
        return _Comparison(None, "both sides are undefined at almost every sampled point, and simplify cannot decide")
    scale = np.maximum(np.abs(left), np.abs(right))
    close = np.abs(left - right) <= 1e-9 * scale + 1e-12
    disagree = np.flatnonzero(finite & ~close)
    if disagree.size and proved:
        # Simplify says equal, floating point says not: 50 digits decide.
        still = []
        for index in disagree:
            point = dict(zip(symbols, (sp.Float(v, 50) for v in points[index])))
            exact = complex(difference.evalf(50, subs=point))
            magnitude = abs(complex(true.evalf(50, subs=point))) + 1e-30
            if abs(exact) > 1e-20 * magnitude:
                still.append(index)
        disagree = np.asarray(still, dtype=int)
    if disagree.size:
        index = int(disagree[0])
        at = ", ".join(f"{s} = {points[index, i]:.3g}" for i, s in enumerate(symbols[:6]))
        return _Comparison(
            False, f"they differ at {disagree.size} of {int(finite.sum())} random points, e.g. at {at}: "
            f"the derived expression is {_show(left[index].real)}, the written one {_show(right[index].real)}"
        )
    if proved:
        return _Comparison(True, "simplify shows the difference is 0, and they agree at random points")
    return _Comparison(True, f"equal at {int(finite.sum())} random points (simplify could not show it)")


# -- the judge --------------------------------------------------------------------------------------


class _Judge:
    def __init__(self, claims: ClaimsFile, seed: int) -> None:
        self.claims = claims
        self.engine = _Engine(claims)
        self.network = claims.spec.network
        self.true = _State(claims.spec.parameters.copy(), self.network)
        self.author = _State(claims.spec.parameters.copy(), self.network)
        self.seed = seed
        self.simultaneous = getattr(claims, "updates", "simultaneous") == "simultaneous"
        # Simultaneous updates wait here until a claim is about an updated parameter (the next step).
        self.pending: dict[NodeRef, tuple[float, float, frozenset[int], int]] = {}
        self.applied: list[int] = []
        self.changed: set[NodeRef] = set()  # the parameters the applied updates changed

    def name(self, ref: NodeRef) -> str:
        return self.network.name_of(ref)

    def run(self) -> VerificationReport:
        verdicts = []
        for claim in self.claims.claims:
            try:
                verdicts.append(self.judge(claim))
            except _ShapeError as error:
                verdicts.append(Verdict(claim.number, claim.line, claim.kind, claim.text, INVALID,
                                        message=f"{claim.where}: {error}"))
        path = str(self.claims.path) if self.claims.path else ""
        return VerificationReport(tuple(verdicts), self.claims.title, path)

    def commit(self) -> None:
        for ref, (true, author, taint, number) in self.pending.items():
            self.true.set(ref, true)
            self.author.set(ref, author, taint)
            self.applied.append(number)
            self.changed.add(self.network.tied(ref)[0])
        self.pending.clear()

    def touches(self, claim: Claim) -> set[NodeRef]:
        """The parameters a claim is about: their slope, value or update (an updated one starts the next step)."""
        if isinstance(claim, SetClaim) or (isinstance(claim, UpdateClaim) and claim.is_sequence):
            return set(self.pending)
        if isinstance(claim, UpdateClaim):
            return {claim.parameter, *(ref for ref, _ in claim.at)}
        if isinstance(claim, NumericClaim):
            refs = {ref for ref, _ in claim.at}
            for symbol in claim.quantity.expression.free_symbols:
                refs.add(self.engine.model.refs.get(symbol, NodeRef("C")))
            for derivative in claim.quantity.expression.atoms(sp.Derivative):
                refs.add(self.engine.model.refs.get(derivative.variables[0], NodeRef("C")))
            return refs
        return set()

    def about_the_cost(self, claim: Claim) -> bool:
        """A numeric claim on the cost's own value: after an update, it is about the new weights (UPDATE_RULE)."""
        return isinstance(claim, NumericClaim) and cost_value(claim.quantity.expression, self.engine.cost)

    def state_note(self) -> str:
        parts = []
        if self.applied:
            parts.append(f"judged at the weights after the update(s) of claim(s) "
                         f"{', '.join(map(str, sorted(set(self.applied))))}")
        if self.pending:
            numbers = ", ".join(str(p[3]) for p in self.pending.values())
            parts.append(f"at the weights before the update(s) of claim(s) {numbers} (simultaneous updates: every "
                         f"partial of a step at the old weights)")
        return "; ".join(parts)

    def judge(self, claim: Claim) -> Verdict:
        # A tied parameter is every one of its entries: a claim naming another entry touches it too.
        pending = {entry for ref in self.pending for entry in self.engine.network.tied(ref)}
        if pending and (self.touches(claim) & pending or self.about_the_cost(claim)):
            self.commit()
        # The state the claim is judged at, before its own update (if any) is pending.
        state = ""
        if isinstance(claim, (NumericClaim, UpdateClaim)):
            reset = {self.network.tied(ref)[0] for ref, _ in claim.at}  # `at` sets them for this claim
            pending = {self.network.tied(ref)[0] for ref in self.pending}
            state = "" if self.changed | pending <= reset else self.state_note()
        verdict = self._judge(claim)
        if state and verdict.status not in (INVALID,):
            message = "\n".join(x for x in (verdict.message, state) if x)
            verdict = Verdict(verdict.number, verdict.line, verdict.kind, verdict.text, verdict.status, verdict.checks,
                              message, verdict.derivation, verdict.carried_from, verdict.math, verdict.slips, state)
        return verdict

    def _judge(self, claim: Claim) -> Verdict:
        if isinstance(claim, InvalidClaim):
            return Verdict(claim.number, claim.line, claim.kind, claim.text or "(unreadable claim)", INVALID,
                           message=claim.message)
        if isinstance(claim, SetClaim):
            for ref, value in claim.values:
                self.true.set(ref, value)
                self.author.set(ref, value)
            return Verdict(claim.number, claim.line, claim.kind, claim.text, STATE,
                           (Check("set", ", ".join(f"{self.name(r)} = {v:g}" for r, v in claim.values), STATE, ""),))
        if isinstance(claim, NumericClaim):
            return self.numeric(claim)
        if isinstance(claim, SymbolicClaim):
            return self.symbolic(claim)
        return self.update(claim)

    # -- checking one number --------------------------------------------------
    def check(
        self, part: str, claimed: ClaimValue | None, true: float, author: float, taint: frozenset[int], number: int,
        what: str = "",
    ) -> tuple[Check | None, float, frozenset[int]]:
        """Judge one written number; returns the check and the value (and its wrong sources) later parts build on."""
        if claimed is None:
            return None, author, taint
        differs = not np.isclose(true, author, rtol=1e-12, atol=1e-15)
        if claimed.matches(true):
            note = ""
            if differs and taint and not claimed.matches(author):
                note = (f"right for the correct values; with the earlier wrong value(s) of claim(s) "
                        f"{_lines(taint)}, {what or part} would be {_show(author)}")
            return Check(part, claimed.text, RIGHT, _as_written(true, claimed), note), claimed.value, frozenset()
        if differs and np.isfinite(author) and claimed.matches(author):
            if taint == {number}:  # built on a wrong number of this same claim: it is wrong once, not twice
                note = f"follows from the wrong value before it in this claim; the right value is {_as_written(true, claimed)}"
                return Check(part, claimed.text, CARRIED, _as_written(true, claimed), note), claimed.value, taint
            taint = taint - {number}
            if taint:
                note = (f"consistent with the earlier wrong value(s) of claim(s) {_lines(taint)}; "
                        f"the right value is {_as_written(true, claimed)}")
                return Check(part, claimed.text, CARRIED, _as_written(true, claimed), note,
                             tuple(sorted(taint))), claimed.value, taint
            note = "consistent with the rounded values written earlier"
            return Check(part, claimed.text, RIGHT, _as_written(author, claimed), note), claimed.value, frozenset()
        return Check(part, claimed.text, WRONG, _as_written(true, claimed)), claimed.value, frozenset({number})

    # -- numeric claims -------------------------------------------------------
    def numeric(self, claim: NumericClaim) -> Verdict:
        true, author = self.true.copy(), self.author.copy()
        for ref, value in claim.at:  # "at b3 = 0": this line only
            true.set(ref, value)
            author.set(ref, value)
        expression = claim.quantity.expression
        true_value = self.engine.value(expression, true.params, claim.example)
        author_value = self.engine.value(expression, author.params, claim.example) if author.taint or _differ(
            true.params, author.params) else true_value
        check, _, _ = self.check("value", claim.value, true_value, author_value, author.sources(), claim.number,
                                 claim.quantity.text)
        assert check is not None
        return self.verdict(claim, (check,), expression, true.params)

    def verdict(self, claim: Claim, checks: tuple[Check, ...], expression: sp.Expr | None,
                params: Parameters | None, extra: str = "", math_extra: tuple[tuple[str, Any], ...] = ()) -> Verdict:
        status = max((c.status for c in checks), key=_SEVERITY.__getitem__)
        notes = [f"{c.part}: written {c.claimed}, should be {c.expected}" for c in checks if c.status == WRONG]
        notes += [f"{c.part}: {c.note}" for c in checks if c.note]
        if extra:
            notes.append(extra)
        derivation = ""
        if status in (WRONG, CARRIED) and expression is not None:
            derivation = self.engine.derivation_text(expression, params)
        if status == WRONG and expression is not None and self.engine.chain_line(expression):
            notes.append(self.engine.chain_line(expression))
        carried = sorted({n for c in checks if c.status == CARRIED for n in c.carried_from})
        math = list(math_extra)
        if expression is not None:
            math.insert(0, ("quantity", _notation(expression)))
            if status in (WRONG, CARRIED) and expression.has(sp.Derivative) and not math_extra:
                math.append(("derived", sp.Eq(_notation(expression), self.engine.per_example(expression),
                                              evaluate=False)))
        return Verdict(claim.number, claim.line, claim.kind, claim.text, status, checks, "\n".join(notes), derivation,
                       tuple(carried), tuple(math))

    # -- symbolic claims ------------------------------------------------------
    def symbolic(self, claim: SymbolicClaim) -> Verdict:
        engine = self.engine
        true_local = engine.per_example(claim.quantity.expression)
        comparison = compare_expressions(
            engine.model.substitute_forward(true_local),
            engine.leaves(claim.expression.expression),
            rng=np.random.default_rng(self.seed + claim.number),
        )
        right = engine.right_text(claim.quantity.expression)
        if comparison.equal is None:
            status, note = UNJUDGED, comparison.reason
        elif comparison.equal:
            status, note = RIGHT, ""
        else:
            status, note = WRONG, comparison.reason
        slips: tuple[str, ...] = ()
        if status == WRONG:  # the same registered rules as for plain-text working
            slip = symbolic_slip(SlipContext(engine), claim.quantity.expression, claim.expression.expression,
                                 local=self.local, rng=np.random.default_rng(self.seed + claim.number))
            if slip:
                slips, note = (slip,), f"slip: {slip}"
        if status == RIGHT:
            right = claim.expression.text  # it is right: a simplified restatement would only obscure that
        check = Check("expression", claim.expression.text, status, right, note)
        written = _notation(claim.expression.expression)
        verdict = self.verdict(claim, (check,), claim.quantity.expression, None,
                               math_extra=(("written", written), ("right", engine.textbook(claim.quantity.expression))))
        return replace(verdict, slips=slips)

    def local(self, expression: sp.Expr) -> sp.Expr:
        """A claim's per-example form in node symbols, a slipped partial as its slipped form."""
        expression = expression.replace(lambda e: isinstance(e, SlippedPartial), lambda e: e.args[0])
        return self.engine.per_example(expression)

    # -- update claims --------------------------------------------------------
    def update(self, claim: UpdateClaim) -> Verdict:
        ref, rate, number = claim.parameter, claim.learning_rate, claim.number
        for at_ref, value in claim.at:  # the starting point, from here on
            self.true.set(at_ref, value)
            self.author.set(at_ref, value)
        name = self.name(ref)
        checks: list[Check | None] = []
        true_old = self.true.params.get(ref)
        check, author_old, old_taint = self.check("old", claim.old, true_old, self.author.params.get(ref),
                                                  self.author.taint_of(ref), number, f"old {name}")
        checks.append(check)
        extra = ""
        if claim.is_sequence:
            true_new, taken, last, stopped = self.engine.descend(self.true.params, claim)
            author_params = self.author.params.copy()
            author_params.set_tied(self.network, ref, author_old)
            author_taint = self.author.sources() | old_taint
            author_new = self.engine.descend(author_params, claim)[0] if author_taint or _differ(
                self.true.params, author_params) else true_new
            rule = (f"{claim.steps} step(s)" if claim.steps is not None
                    else f"until |step| < {claim.until_step_below:g} (that step not taken)")
            last_text = (f"then the step {_show(last)}, under the tolerance, not taken"
                         if claim.until_step_below is not None and stopped else f"last step {_show(last)}")
            extra = (f"gradient descent on {name} with learning rate {rate:g}, {rule}: {taken} step(s) from "
                     f"{name} = {_show(true_old)}, {last_text}, {name} = {_show(true_new)}")
            if not stopped:
                why = (f"the descent diverged after {taken} step(s) (the next step became {last})"
                       if not np.isfinite(last)
                       else f"the descent did not reach |step| < {claim.until_step_below:g} in {taken} steps")
                check = Check("new", claim.new.text if claim.new else "", UNJUDGED, _show(true_new), why)
                checks.append(check)
                self.true.set(ref, true_new)
                self.author.set(ref, author_new, author_taint)
                return self.verdict(claim, tuple(c for c in checks if c), None, None, extra)
            check, author_new, new_taint = self.check("new", claim.new, true_new, author_new, author_taint, number,
                                                      f"the new {name}")
            checks.append(check)
            self.true.set(ref, true_new)
            self.author.set(ref, author_new, new_taint)
            derivative = sp.Derivative(self.engine.cost, self.engine.model.symbols[ref], evaluate=False)
            return self.verdict(claim, tuple(c for c in checks if c), derivative, None, extra)

        author_params = self.author.params.copy()
        author_params.set_tied(self.network, ref, author_old)
        true_slope = self.engine.slope(self.true.params, ref)
        author_taint = self.author.sources() | old_taint
        author_slope = self.engine.slope(author_params, ref) if author_taint or _differ(
            self.true.params, author_params) else true_slope
        check, author_slope, slope_taint = self.check("slope", claim.slope, true_slope, author_slope, author_taint,
                                                      number, f"∂{self.engine.cost}/∂{name}")
        checks.append(check)
        true_step = rate * true_slope
        check, author_step, step_taint = self.check("step", claim.step, true_step, rate * author_slope, slope_taint,
                                                    number, "the step")
        if check is not None and check.status == WRONG and claim.step is not None:
            if ClaimValue(claim.step.text, claim.step.decimal, claim.step.tolerance).matches(-rate * author_slope):
                check = _with_note(check, "the sign is flipped: step = learning rate × slope")
        checks.append(check)
        true_new = true_old - true_step
        guess = author_old - author_step
        check, author_new, new_taint = self.check("new", claim.new, true_new, guess, old_taint | step_taint, number,
                                                  f"the new {name}")
        if check is not None and check.status == WRONG and claim.new is not None and claim.new.matches(
                author_old + author_step):
            check = _with_note(check, f"the step was added ({_show(author_old)} + ({_show(author_step)})); "
                                      f"gradient descent subtracts it: new = old − step")
        checks.append(check)
        author_value, author_taint = (guess, old_taint | step_taint) if claim.new is None else (author_new, new_taint)
        if self.simultaneous:
            self.pending[ref] = (true_new, author_value, author_taint, number)
        else:
            self.true.set(ref, true_new)
            self.author.set(ref, author_value, author_taint)
        derivative = sp.Derivative(self.engine.cost, self.engine.model.symbols[ref], evaluate=False)
        return self.verdict(claim, tuple(c for c in checks if c), derivative, self.true_before(ref, true_old))

    def true_before(self, ref: NodeRef, old: float) -> Parameters:
        params = self.true.params.copy()
        params.set_tied(self.network, ref, old)
        return params


def _with_note(check: Check, note: str) -> Check:
    return Check(check.part, check.claimed, check.status, check.expected, "; ".join(x for x in (check.note, note) if x))


def _differ(a: Parameters, b: Parameters) -> bool:
    return not np.allclose(a.flat(), b.flat(), rtol=1e-12, atol=1e-15)


def _lines(numbers: frozenset[int]) -> str:
    return ", ".join(str(n) for n in sorted(numbers))


def _notation(expression: sp.Expr) -> sp.Expr:
    """Derivatives as ∂X/∂Y notation for the printer (never evaluated)."""
    from ..render.latex import Partial

    return expression.replace(lambda e: isinstance(e, sp.Derivative), lambda e: Partial(e.expr, e.variables[0]))


def verify(claims: ClaimsFile, *, seed: int = 0) -> VerificationReport:
    """Judge every claim of ``claims`` in order (``seed`` fixes the random points of symbolic checks)."""
    return _Judge(claims, seed).run()


# -- LaTeX, HTML and Markdown ----------------------------------------------------------------------

#: Report formats besides text and json: format -> template (in the report templates' folder).
TEMPLATES: Registry[str] = Registry(
    "verification format", {"html": "verify.html.j2", "tex": "verify.tex.j2", "md": "verify.md.j2"}
)


def render(report: VerificationReport, fmt: str) -> str:
    """The verdicts as ``html`` (self-contained, MathML), ``tex`` or ``md`` through ``templates/verify.*.j2``."""
    from ..render.report import Math, render_template

    if fmt not in TEMPLATES:
        raise SpecError(f"unknown format {fmt!r} (known: text, json, {', '.join(TEMPLATES)})")

    verdicts = []
    for verdict in report.verdicts:
        verdicts.append({
            "number": verdict.number,
            "heading": verdict.where[:1].upper() + verdict.where[1:],  # "Claim 8 (line 42)", "Line 96"
            "line": verdict.line or "",
            "text": verdict.text,
            "status": verdict.status,
            "css": verdict.status.replace(" ", "-"),
            "checks": [vars(check) for check in verdict.checks],
            "message": verdict.message.splitlines(),
            "math": [{"label": label, "math": Math(expression, False)} for label, expression in verdict.math],
        })
    first = report.first_wrong
    context = {
        "title": report.title or "Verification of a hand calculation",
        "file": report.path,
        "verdicts": verdicts,
        "summary": ", ".join(f"{n} {s}" for s, n in report.counts().items()),
        "first_wrong": "" if first is None else f"{first.where}: {first.text}",
    }
    return render_template(TEMPLATES[fmt], fmt, report=context)


# -- gradient check ---------------------------------------------------------------------------------


#: Entries of each weight matrix (and of each bias vector) compared one by one with central
#: differences; a larger array is compared at this many random entries, and as a whole along
#: :data:`DIRECTIONS` random directions per layer.  The cost of a check does not grow with width.
ENTRIES = 128
#: Random directions per layer along which the directional derivative is compared (as JAX's check_grads does).
DIRECTIONS = 4


@dataclass(frozen=True)
class GradientCheck:
    """Worst relative error per layer between the derived gradient and central finite differences.

    Every entry of a layer with at most :data:`ENTRIES` weights (and biases) is compared; a
    larger layer at that many random entries and along :data:`DIRECTIONS` random directions
    (``checked`` says which, ``evaluations`` counts the perturbed costs computed).
    """

    layers: tuple[tuple[str, float], ...]  # (layer label, worst relative error over its weights and biases)
    tolerance: float
    #: The same against PyTorch autograd on the same formulas (None when torch is not installed).
    torch_layers: tuple[tuple[str, float], ...] | None = None
    #: What the finite differences compared, per layer: e.g. "128 of 50,176 w, 64 of 64 b, 4 directions".
    checked: tuple[str, ...] = ()
    #: Number of perturbed costs the finite differences computed.
    evaluations: int = 0
    #: Where an oracle could not resolve a partial and a 50-digit evaluation sided with the derived gradient.
    refereed: tuple[str, ...] = ()

    @property
    def worst(self) -> float:
        errors = [error for _, error in self.layers + (self.torch_layers or ())]
        return max(errors, default=0.0)

    @property
    def passed(self) -> bool:
        return self.worst <= self.tolerance

    def text(self) -> str:
        torch_column = self.torch_layers is not None
        header = f"{'layer':<8}{'vs finite differences':>23}" + (f"{'vs PyTorch autograd':>22}" if torch_column else "")
        if self.checked:
            header += "   finite differences of"
        lines = [header]
        for index, (label, error) in enumerate(self.layers):
            row = f"{label:<8}{error:>23.2e}"
            if torch_column:
                row += f"{self.torch_layers[index][1]:>22.2e}"
            if self.checked:
                row += f"   {self.checked[index]}"
            lines.append(row)
        if torch_column:
            lines.append("(PyTorch autograd: every weight and bias)")
        else:
            lines.append("(PyTorch is not installed: compared with finite differences only)")
        lines += list(self.refereed)
        lines.append(f"worst relative error {self.worst:.2e} (tolerance {self.tolerance:g})")
        lines.append("ok" if self.passed else "FAILED: the derived gradient disagrees with an independent oracle")
        return "\n".join(lines)


#: Most partials a 50-digit evaluation referees in one check, and the largest problems it takes on
#: (examples; weight of the cost expanded in the inputs): the third opinion is for small, saturated units.
REFEREED = 16
REFEREE_EXAMPLES = 256
REFEREE_PARAMETERS = 200
REFEREE_WEIGHT = 4000


class _Referee:
    """∂C/∂(w or b) in mpmath, 50 digits beyond the formulas' own cancellations, expanded in the inputs.

    Central differences cannot resolve a partial far below eps·C/h, and autograd rounds 1 − tanh²(z) to 0
    at a saturated unit; where either disagrees with the derived gradient, this decides which is off.
    ``value`` is None when the problem is over the budget (then nothing is refereed).
    """

    def __init__(self, network: Network, params: Parameters, data: Dataset) -> None:
        self.network, self.params, self.data = network, params, data
        self.used = 0
        self._cost: sp.Expr | bool | None = False  # built on the first disagreement (False: not yet)
        # The explicit model writes one symbol per dense node: a grid kind (convolution, recurrence,
        # a grid readout) is not refereed, and its partials stand on finite differences and autograd.
        self._flat = all(layer.kind in ("dense", "residual") and getattr(layer, "input_grid", None) is None
                         for layer in network.layers)

    def _expanded_cost(self) -> sp.Expr | None:
        """The cost of one example in parameters, inputs and targets; None for a network over the budget."""
        from ..budget import weight
        from ..symbolic.model import ExplicitModel

        if self._cost is False:
            self._cost = None
            small = sum(1 for _ in self.network.parameter_refs()) <= REFEREE_PARAMETERS
            if small and len(self.data) <= REFEREE_EXAMPLES:
                self.model = ExplicitModel(self.network)
                cost = self.model.substitute_forward(self.model.local_expression(NodeRef("C")))
                self._cost = cost if weight(cost) <= REFEREE_WEIGHT else None
                # The raw formulas cancel too (1 − tanh²(z) at z = 100 loses 87 digits): 50 digits
                # beyond e^(−2|z|).
                zs = compile_network(self.network).forward(self.params, self.data.X).zs
                largest = max((float(np.max(np.abs(np.nan_to_num(z)))) for z in zs if z.size), default=0.0)
                self.digits = 50 + int(2 * min(largest, 1e4) / math.log(10))
        return self._cost  # type: ignore[return-value]

    def value(self, ref: NodeRef | None) -> float | None:
        import mpmath

        if ref is None or self.used >= REFEREED or not self._flat or len(self.network.tied(ref)) > 1:
            return None
        cost = self._expanded_cost()
        if cost is None:
            return None
        self.used += 1
        symbols = self.model.symbols
        parameters = [symbols[r] for r in self.network.parameter_refs()]
        inputs = [symbols[NodeRef("x", 0, j)] for j in range(self.network.sizes[0])]
        targets = [symbols[NodeRef("y", 0, j)] for j in range(self.network.sizes[-1])]
        try:
            partial = sp.lambdify([*parameters, *inputs, *targets], sp.diff(cost, symbols[ref]), modules="mpmath")
            with mpmath.workdps(self.digits):
                fixed = [mpmath.mpf(float(self.params.get(r))) for r in self.network.parameter_refs()]
                total = mpmath.fsum(
                    partial(*fixed, *(mpmath.mpf(float(v)) for v in x), *(mpmath.mpf(float(v)) for v in y))
                    for x, y in zip(self.data.X, self.data.Y, strict=True))
                if self.network.cost.example_reduction != "sum":
                    total /= len(self.data)
                return float(total)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError, NameError):
            return None  # a formula mpmath does not evaluate: no third opinion


def _weight_ref(layer: int, shape: tuple[int, ...], flat: int) -> NodeRef | None:
    """The node of a weight matrix's entry ``flat`` (row-major); None for a kernel of another rank
    (a convolution's 3-D or 4-D one): no NodeRef names it, so nothing referees it."""
    return NodeRef("w", layer, *map(int, np.unravel_index(flat, shape))) if len(shape) == 2 else None


def _refereed(derived: np.ndarray, oracle: np.ndarray, refs: list[NodeRef | None], floor: float, tolerance: float,
              referee: _Referee) -> tuple[np.ndarray, int]:
    """``oracle`` with the entries it cannot resolve replaced by the 50-digit value, where that value agrees with
    the derived gradient to 1e-12 (an entry the derived gradient has wrong stays as the oracle says)."""
    oracle = np.array(oracle, dtype=float, copy=True)
    count = 0
    for index in np.flatnonzero(np.abs(derived - oracle) > tolerance * np.maximum(
            np.maximum(np.abs(derived), np.abs(oracle)), floor)):
        exact = referee.value(refs[index])
        if exact is not None and abs(derived[index] - exact) <= 1e-12 * abs(exact) + 1e-300:
            oracle[index] = exact
            count += 1
    return oracle, count


def _relative(a: np.ndarray, b: np.ndarray, floor: float) -> float:
    denominator = np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)
    return float(np.max(np.abs(a - b) / denominator)) if a.size else 0.0


def _central_differences(
    compiled: CompiledNetwork, params: Parameters, data: Dataset, layer: int, h: float,
    move: Callable[[int], tuple[np.ndarray, np.ndarray]], count: int,
) -> np.ndarray:
    """``(C(θ + h·v) − C(θ − h·v)) / 2h`` for ``count`` moves of the layer's parameters; ``move(p)`` gives
    the p-th move ``v`` as ``(weight change, bias change)``.

    Each cost is the compiled forward pass (:meth:`CompiledNetwork.cost`), the one every stage uses,
    so a residual, convolutional or recurrent layer is evaluated as it is trained; the moved
    parameters are one private copy, changed in place and put back after each move.
    """
    moved = params.copy()
    weights, biases = moved.weights[layer - 1], moved.biases[layer - 1]
    original_w, original_b = np.array(weights, copy=True), np.array(biases, copy=True)
    out = np.empty(count)
    for p in range(count):
        dw, db = move(p)
        costs = []
        for step in (h, -h):
            weights[...] = original_w + step * dw
            biases[...] = original_b + step * db
            costs.append(compiled.cost(moved, data))
        out[p] = (costs[0] - costs[1]) / (2 * h)
    weights[...], biases[...] = original_w, original_b
    return out


def _entry_differences(
    compiled: CompiledNetwork, params: Parameters, data: Dataset, layer: int, h: float,
    weights: np.ndarray, biases: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Central differences at the weight entries ``weights`` (flat indices) and bias entries ``biases``."""
    w_shape, b_shape = np.shape(params.weights[layer - 1]), np.shape(params.biases[layer - 1])

    def one_hot(shape: tuple[int, ...], index: int) -> np.ndarray:
        unit = np.zeros(shape)
        unit.reshape(-1)[index] = 1.0
        return unit

    return (
        _central_differences(compiled, params, data, layer, h,
                             lambda p: (one_hot(w_shape, int(weights[p])), np.zeros(b_shape)), len(weights)),
        _central_differences(compiled, params, data, layer, h,
                             lambda p: (np.zeros(w_shape), one_hot(b_shape, int(biases[p]))), len(biases)),
    )


def _finite_differences(compiled: CompiledNetwork, params: Parameters, data: Dataset, h: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Central differences of every weight and bias, layer by layer (every entry: for small networks)."""
    result = []
    for layer in range(1, len(params.weights) + 1):
        W, b = params.weights[layer - 1], params.biases[layer - 1]
        fw, fb = _entry_differences(compiled, params, data, layer, h, np.arange(W.size), np.arange(b.size))
        result.append((fw.reshape(W.shape), fb.reshape(b.shape)))
    for ref, value in _tied_differences(compiled, params, data, h).items():
        weights, biases = result[ref.layer - 1]
        if ref.kind == "w":
            weights[ref.j, ref.k] = value
        else:
            biases[ref.j] = value
    return result


def _tied_differences(compiled: CompiledNetwork, params: Parameters, data: Dataset, h: float) -> dict[NodeRef, float]:
    """A tied parameter's central difference, for each of its entries: every entry moved together
    by ±h, as the one shared value it is (one pair of forward passes per tied parameter)."""
    network = compiled.network
    values: dict[NodeRef, float] = {}
    if compiled.ties is None:
        return values
    for members in network.ties.values():
        costs = []
        for sign in (1, -1):
            moved = params.copy()
            moved.set_tied(network, members[0], params.get(members[0]) + sign * h)
            costs.append(compiled.cost(moved, data))
        for ref in members:
            values[ref] = (costs[0] - costs[1]) / (2 * h)
    return values


def _directional_differences(
    compiled: CompiledNetwork, params: Parameters, data: Dataset, layer: int, h: float,
    directions: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Central differences of the cost along each direction ``(Vw[p], Vb[p])`` of the layer's parameters."""
    Vw, Vb = directions
    return _central_differences(compiled, params, data, layer, h, lambda p: (Vw[p], Vb[p]), len(Vw))


def _sample(size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(size) if size <= count else np.sort(rng.choice(size, count, replace=False))


def gradient_check(network: Network, params: Parameters, data: Dataset, *, h: float = 1e-4,
                   tolerance: float = 1e-5, entries: int = ENTRIES, directions: int = DIRECTIONS,
                   seed: int = 0) -> GradientCheck:
    """Compare the derived partials with central differences, layer by layer.

    The derived gradient is the compiled one (BP1–BP4 built from SymPy's derivatives).  Each layer's
    weights and biases are compared entry by entry (all of them up to ``entries`` per array, else
    that many random ones) and, where an array is larger, also along ``directions`` random unit
    directions: a wrong entry anywhere changes the directional derivative.  Each difference is two
    compiled forward passes (the one every stage uses) at the moved parameters.  PyTorch
    autograd, when installed, is compared on every entry.

    >>> from symback import Network, Parameters, Dataset
    >>> net = Network([2, 3, 1], "tanh", "mse")
    >>> result = gradient_check(net, Parameters.initialize(net, seed=0), Dataset.from_arrays([[0.1, 0.2]], [0.5]))
    >>> result.passed, result.checked
    (True, ('6 of 6 w, 3 of 3 b', '3 of 3 w, 1 of 1 b'))
    """
    compiled = compile_network(network)
    derived = compiled.gradient(params, data, respect_frozen=False)
    # Central differences carry rounding noise of about eps·C/h, so partials far below the largest one
    # cannot be resolved relatively: they are compared on the scale of 1e-4 of the largest partial.
    largest = max(float(np.max(np.abs(g))) for g in [*derived.weights, *derived.biases])
    floor = max(1e-4 * largest, 1e-8)
    rng = np.random.default_rng(seed)
    referee = _Referee(network, params, data)
    refereed: list[str] = []
    tied = _tied_differences(compiled, params, data, h)
    first_of_tie = [members[0] for members in network.ties.values()] if tied else []
    layers, checked, evaluations = [], [], 2 * len(first_of_tie)
    for layer in range(1, network.depth + 1):
        gw, gb = derived.weights[layer - 1], derived.biases[layer - 1]
        chosen_w, chosen_b = _sample(gw.size, entries, rng), _sample(gb.size, entries, rng)
        fw, fb = _entry_differences(compiled, params, data, layer, h, chosen_w, chosen_b)
        # A tied entry's derived partial is the shared parameter's: compared with all its entries moved together.
        tied_w = np.zeros(gw.shape, dtype=bool)
        tied_b = np.zeros(gb.shape, dtype=bool)
        for ref, value in tied.items():
            if ref.layer != layer:
                continue
            if ref.kind == "w":
                tied_w[ref.j, ref.k] = True
                fw[chosen_w == np.ravel_multi_index((ref.j, ref.k), gw.shape)] = value
            else:
                tied_b[ref.j] = True
                fb[chosen_b == ref.j] = value
        refs_w = [_weight_ref(layer, gw.shape, i) for i in chosen_w]
        refs_b = [NodeRef("b", layer, int(j)) for j in chosen_b]
        fw, fixed_w = _refereed(gw.reshape(-1)[chosen_w], fw, refs_w, floor, tolerance, referee)
        fb, fixed_b = _refereed(gb[chosen_b], fb, refs_b, floor, tolerance, referee)
        if fixed_w + fixed_b:
            refereed.append(f"{network.layer_label(layer)}: finite differences cannot resolve {fixed_w + fixed_b} "
                            f"partial(s) (below eps·C/h); a 50-digit evaluation agrees with the derived ones")
        error = max(_relative(gw.reshape(-1)[chosen_w], fw, floor), _relative(gb[chosen_b], fb, floor))
        for ref in first_of_tie:
            if ref.layer == layer:
                got = gw[ref.j, ref.k] if ref.kind == "w" else gb[ref.j]
                error = max(error, _relative(np.array([got]), np.array([tied[ref]]), floor))
        evaluations += 2 * (len(chosen_w) + len(chosen_b))
        what = f"{len(chosen_w):,} of {gw.size:,} w, {len(chosen_b):,} of {gb.size:,} b"
        if (len(chosen_w) < gw.size or len(chosen_b) < gb.size) and directions > 0:
            # Directions leave tied entries alone (checked above as the shared parameters they are).
            Vw = rng.standard_normal((directions, *gw.shape)) * ~tied_w
            Vb = rng.standard_normal((directions, *gb.shape)) * ~tied_b
            # Flattened: a layer's parameters may have any shape (a convolution's kernel is 4-D).
            flat_w, flat_b = Vw.reshape(directions, -1), Vb.reshape(directions, -1)
            norms = np.sqrt((flat_w**2).sum(axis=1) + (flat_b**2).sum(axis=1))
            Vw, Vb = Vw / norms.reshape(-1, *[1] * gw.ndim), Vb / norms.reshape(-1, *[1] * gb.ndim)
            along = _directional_differences(compiled, params, data, layer, h, (Vw, Vb))
            expected = Vw.reshape(directions, -1) @ gw.reshape(-1) + Vb.reshape(directions, -1) @ gb.reshape(-1)
            error = max(error, _relative(expected, along, floor))
            evaluations += 2 * directions
            what += f", {directions} random directions"
        layers.append((network.layer_label(layer), error))
        checked.append(what)
    torch_layers = None
    autograd = _torch_gradient(network, params, data)
    if autograd is not None:
        # Autograd is exact up to rounding, so its floor is far below the finite differences' one.
        tiny = max(1e-10 * largest, 1e-300)
        rows = []
        for layer, (tw, tb) in enumerate(autograd, 1):
            gw, gb = derived.weights[layer - 1], derived.biases[layer - 1]
            refs_w = [_weight_ref(layer, gw.shape, i) for i in range(gw.size)]
            refs_b = [NodeRef("b", layer, j) for j in range(gb.size)]
            tw, fixed_w = _refereed(gw.reshape(-1), np.asarray(tw).reshape(-1), refs_w, tiny, tolerance, referee)
            tb, fixed_b = _refereed(gb, tb, refs_b, tiny, tolerance, referee)
            if fixed_w + fixed_b:
                refereed.append(f"{network.layer_label(layer)}: PyTorch autograd rounds {fixed_w + fixed_b} partial(s) "
                                f"of saturated units; a 50-digit evaluation agrees with the derived ones")
            rows.append((network.layer_label(layer), max(_relative(gw.reshape(-1), tw, tiny), _relative(gb, tb, tiny))))
        torch_layers = tuple(rows)
    return GradientCheck(tuple(layers), tolerance, torch_layers, tuple(checked), evaluations, tuple(refereed))


def _torch_dense(torch: Any, layer: Any, a: Any, W: Any, b: Any) -> Any:
    """``z = W·a + b`` on the flattened layer below (a grid-reading dense layer's W flattened likewise)."""
    return a.reshape(a.shape[0], -1) @ W.reshape(W.shape[0], -1).T + b


def _torch_convolution(torch: Any, layer: Any, a: Any, W: Any, b: Any) -> Any:
    """``z[o, j] = Σ_c Σ_m w[o, c, m] a[c, j + m − P] + b[o]``: torch's conv is this cross-correlation.

    PyTorch's ``padding="same"`` puts ``(K−1)//2`` zeros on the left and the rest on the right, as
    symback's ``same`` does; ``valid`` pads nothing.
    """
    import warnings

    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}[len(layer.kernel)]
    with warnings.catch_warnings():  # an even 'same' kernel: PyTorch warns that it pads a copy
        warnings.simplefilter("ignore", UserWarning)
        return conv(a.reshape(a.shape[0], *layer.input_grid), W, b, padding=layer.padding)


def _torch_last_step(torch: Any, layer: Any, a: Any, W: Any, b: Any) -> Any:
    """``z = W·h[T−1] + b``: a dense readout of a sequence's last state."""
    return a.reshape(a.shape[0], layer.steps, layer.hidden)[:, -1] @ W.T + b


def _torch_layer_forwards() -> list[tuple[type, Callable[..., Any]]]:
    """Each layer class with the torch forward written for it by hand, most specific first: a kind
    not listed here makes the oracle abstain rather than guess."""
    from ..symbolic.layers import Dense
    from ..symbolic.layers_conv import Convolution
    from ..symbolic.layers_recurrent import LastStep

    return [(LastStep, _torch_last_step), (Convolution, _torch_convolution), (Dense, _torch_dense)]


def _torch_activation(torch: Any, activation: Any, z: Any) -> Any:
    """The activation's stable formula lambdified onto torch (softmax over a flat layer's units)."""
    from ..symbolic.activations import Z

    if not activation.elementwise:
        return torch.softmax(z.reshape(z.shape[0], -1), dim=1).reshape(z.shape)
    # as_tensor of a constant formula would be float32: the network is float64 throughout.
    value = lambdify([Z], stabilize(activation.formula), modules="torch")(z)
    return torch.broadcast_to(torch.as_tensor(value, dtype=torch.float64), z.shape)


def _torch_recurrent(torch: Any, layer: Any, a: Any, W: Any, b: Any) -> Any:
    """The unrolled ``h_t = f(W h_{t−1} + U x_t + b)`` with ``h_{−1} = 0`` and ``w = [W | U]``:
    returns every step's z and state, each ``(n, steps, hidden)``."""
    hidden = layer.hidden
    x = a.reshape(a.shape[0], layer.steps, layer.inputs)
    h, zs, states = torch.zeros(a.shape[0], hidden, dtype=torch.float64), [], []
    for t in range(layer.steps):  # one step at a time: the recurrence is sequential by definition
        zs.append(h @ W[:, :hidden].T + x[:, t] @ W[:, hidden:].T + b)
        h = _torch_activation(torch, layer.activation, zs[-1])
        states.append(h)
    return torch.stack(zs, 1), torch.stack(states, 1)


def _torch_gradient(network: Network, params: Parameters, data: Dataset) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """∂C/∂W and ∂C/∂b by PyTorch autograd (float64) on the same activation and cost formulas.

    The formulas are lambdified onto torch tensors; autograd then differentiates them without
    SymPy, an independent check of the derivatives.  Every kind is written out by hand here (dense,
    residual's skip edges, conv1d/conv2d by ``torch.nn.functional.conv1d/conv2d``, the recurrent
    layer unrolled, its last-step and grid readouts).  None when PyTorch is not installed, or for a
    layer kind it does not write out.
    """
    from ..symbolic.layers_recurrent import Recurrent

    forwards = _torch_layer_forwards()

    def forward_of(layer: Any) -> Callable[..., Any] | None:
        return next((forward for kind, forward in forwards if isinstance(layer, kind)), None)

    if any(not isinstance(layer, Recurrent) and forward_of(layer) is None for layer in network.layers):
        return None  # a kind this oracle does not write out: no third opinion
    try:
        import torch
    except ImportError:
        return None
    from ..symbolic.activations import Z
    from ..symbolic.costs import A, Y

    weights = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in params.weights]
    biases = [torch.tensor(b, dtype=torch.float64, requires_grad=True) for b in params.biases]
    # A tied parameter is one tensor, read by each of its entries: autograd sums its partials itself.
    groups = list(network.ties.values())
    shared = torch.tensor([params.get(members[0]) for members in groups], dtype=torch.float64, requires_grad=True)
    owners = [np.full(np.shape(array), -1) for array in params.weights + params.biases]  # the tie of each entry
    for group, members in enumerate(groups):
        for ref in members:
            owner = owners[ref.layer - 1] if ref.kind == "w" else owners[network.depth + ref.layer - 1]
            owner[(ref.j, ref.k) if ref.kind == "w" else ref.j] = group
    used = [
        leaf if (owner < 0).all() else torch.where(
            torch.from_numpy(owner >= 0), shared[torch.from_numpy(np.maximum(owner, 0))], leaf)
        for leaf, owner in zip(weights + biases, owners)
    ]
    used_weights, used_biases = used[: network.depth], used[network.depth :]
    below = [torch.tensor(data.X, dtype=torch.float64)]  # a(0), a(1), … as computed, each flat (n, width)
    # The stable forms of the formulas (σ, softplus, the cost in z where it takes log a), as the
    # compiled network evaluates them: autograd still differentiates them without SymPy.
    for layer, W, b in zip(network.layers, used_weights, used_biases):
        if isinstance(layer, Recurrent):
            z, a = _torch_recurrent(torch, layer, below[-1], W, b)
        else:
            z = forward_of(layer)(torch, layer, below[-1], W, b)
            a = _torch_activation(torch, layer.activation, z)
        z, a = z.reshape(len(below[-1]), -1), a.reshape(len(below[-1]), -1)
        for source in layer.sources[1:]:  # a residual layer's skip edge: + a(l-back), written here by hand
            if source != 0:  # 0 is the layer itself (a recurrent layer's previous state), not a skip edge
                a = a + below[source]
        below.append(a)
    cost = network.cost
    targets = torch.tensor(data.Y, dtype=torch.float64)
    if compile_network(network).terms_in_z is not None:
        terms = lambdify([Z, Y], compile_network(network).terms_in_z, modules="torch")(z, targets)
    else:
        terms = lambdify([A, Y], cost.term, modules="torch")(a, targets)
    terms = torch.broadcast_to(torch.as_tensor(terms), a.shape)
    per_example = terms.sum(dim=1) / (terms.shape[1] if cost.output_reduction == "mean" else 1)
    total = per_example.mean() if cost.example_reduction == "mean" else per_example.sum()
    total.backward()
    def grad(tensor: Any) -> np.ndarray:  # None where the cost does not depend on it (a constant activation)
        return np.zeros(tuple(tensor.shape)) if tensor.grad is None else tensor.grad.numpy().copy()

    result = [(grad(W), grad(b)) for W, b in zip(weights, biases)]
    for group, members in enumerate(groups):  # the shared tensor's gradient, in each of its entries
        for ref in members:
            w_grad, b_grad = result[ref.layer - 1]
            value = 0.0 if shared.grad is None else float(shared.grad[group])
            if ref.kind == "w":
                w_grad[ref.j, ref.k] = value
            else:
                b_grad[ref.j] = value
    return result
