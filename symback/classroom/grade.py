"""Marking a class: every submission judged line by line, rubric marks, follow-through credit, a gradebook.

``symback grade KEY SUBMISSIONS... -o OUT/`` reads the ``key.json`` that :mod:`symback.classroom.exercise` wrote and
marks each submission (plain-text working ``.md``/``.txt``, or a TOML claims file) with the worked-example
judge (:mod:`symback.verification.working`), at the numbers of the student's variant:

* **The variant** is named in the submission's front matter (``variant = 7``) or matched from its numbers
  (the given numbers and answers of each variant that appear in it).  A submission that names one variant
  but carries the numbers of another is marked against the one it names, and the gradebook says which
  variant its numbers belong to.
* **Rubric marks** per line come from the key.  A line whose value is right (at the decimals asked) earns
  its marks; a right formula with a wrong number earns the key's method marks; a right value under a
  wrong formula loses the method part; a value given to fewer decimals than asked earns the method marks.
* **Follow-through** (error carried forward): a wrong value that equals the key's formula for that line
  evaluated at the student's *own* earlier answers (within the rounding of the numbers written), where at
  least one of those earlier answers was not right, earns the line's marks — a slip costs its line once.
  The judge's own "error carried forward" counts too when it names earlier lines (not when a wrong member
  of the same line is all it follows from).
* **No credit for a line made trivial** by an earlier wrong answer.  A follow-through value is trivial when,
  at the decimals asked, it is 0, or ±1, or equal to one of the numbers it was computed from (its inputs
  in the key's formula), while the right value is not: a wrong ``out_o1 = 1`` makes ``out_o1(1 − out_o1)``
  0, every partial through it 0, and ``new w5 = w5 − η × 0`` equal to ``w5``; none of those earns marks.

It writes ``OUT/gradebook.csv`` (one row per submission: variant, marks per question, total, the reason when
a file could not be marked), one red-pen verdict per student (``OUT/<student>.html`` and ``.md``), and
``OUT/summary.html`` (the distribution of totals and a bar chart of the slips named across the class,
inline SVG, no scripts).  A submission that cannot be read gets 0 with the reason; it never stops the run.
The judge's symbolic comparisons are decided once per class (:func:`shared_identities`).

>>> from symback.classroom.exercise import load_exercise, draw_variants, solve, submission_text
>>> exercise = load_exercise(Path(__file__).parent.parent.parent / "examples" / "exercise_222.toml")
>>> solution = solve(exercise, draw_variants(exercise, 1, seed=7)[0])
>>> submission = submission_text(solution, student="Ada")
>>> submission.splitlines()[1:3]
['variant = 1', 'student = "Ada"']
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import sympy as sp

from ..errors import SpecError, SymbackError
from ..files import read_bytes, write_atomic
from ..grammar.tomlread import parse_toml

__all__ = [
    "Key", "LineMark", "Marked", "Submission", "grade", "load_key", "mark", "read_submission", "summary_line",
    "write_grades",
]

#: Largest submission read (a page of working is a few kB).
MAX_SUBMISSION_BYTES = 1 << 20
#: A variant is recognised from its numbers when at least this many of them appear in a submission.
MIN_MATCHING_NUMBERS = 4

RIGHT = "right"
FOLLOW_THROUGH = "follow-through"
METHOD = "method"
WRONG = "wrong"
MISSING = "missing"
TRIVIAL = "no credit: trivial"
FORMULA_WRONG = "right value, wrong formula"


# -- the key ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyLine:
    label: str
    question: int
    kind: str
    quantity: str
    formula: str
    value: float
    written: str
    marks: float
    method: float


@dataclass(frozen=True)
class KeyVariant:
    number: int
    front_matter: str
    given: Mapping[str, str]
    lines: tuple[KeyLine, ...]

    def numbers(self) -> set[Decimal]:
        """The numbers a submission for this variant shows: its given numbers and its answers."""
        out = {_decimal(v) for v in self.given.values()} | {_decimal(line.written) for line in self.lines}
        return {n for n in out if n is not None}


@dataclass(frozen=True)
class Key:
    title: str
    decimals: int
    learning_rate: str
    questions: tuple[tuple[int, str], ...]
    variants: Mapping[int, KeyVariant]
    path: Path | None = None

    @property
    def out_of(self) -> float:
        first = next(iter(self.variants.values()))
        return sum(line.marks for line in first.lines)


def load_key(path: str | Path) -> Key:
    """Read ``key.json`` (written by ``symback exercise``); an unusable key is one SpecError."""
    from .exercise import KEY_FORMAT, KEY_VERSION

    path = Path(path)
    try:
        raw = json.loads(read_bytes(path, "answer key", limit=64 << 20).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SpecError(f"{path}: not an answer key written by symback exercise ({error})") from None
    if not isinstance(raw, dict) or raw.get("format") != KEY_FORMAT:
        raise SpecError(f"{path}: not an answer key written by symback exercise (no \"format\": \"{KEY_FORMAT}\")")
    if raw.get("version") != KEY_VERSION:
        raise SpecError(f"{path}: answer key version {raw.get('version')!r}; this symback reads version {KEY_VERSION}")
    try:
        variants = {}
        for entry in raw["variants"]:
            lines = tuple(KeyLine(str(l["label"]), int(l["question"]), str(l["kind"]), str(l["quantity"]),
                                  str(l["formula"]), float(l["value"]), str(l["written"]), float(l["marks"]),
                                  float(l["method"])) for l in entry["lines"])
            if any(not (math.isfinite(l.marks) and 0 <= l.method <= l.marks) for l in lines):
                raise ValueError("a line's marks must be finite, with 0 <= method <= marks")
            number = int(entry["variant"])
            variants[number] = KeyVariant(number, str(entry["front_matter"]),
                                          {str(k): str(v) for k, v in dict(entry["given"]).items()}, lines)
        questions = tuple((int(q["number"]), str(q["title"])) for q in raw["questions"])
        key = Key(str(raw["title"]), int(raw["decimals"]), str(raw["learning_rate"]), questions, variants, path)
    except (KeyError, TypeError, ValueError) as error:
        raise SpecError(f"{path}: the answer key is damaged ({type(error).__name__}: {error})") from None
    if not variants:
        raise SpecError(f"{path}: the answer key has no variants")
    return key


def _decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text.replace("\u2212", "-"))
    except InvalidOperation:
        return None
    return number.normalize() if number.is_finite() else None


# -- submissions --------------------------------------------------------------------------------------------


class Unreadable(SymbackError):
    """A submission that cannot be marked: the reason goes into the gradebook."""


@dataclass(frozen=True)
class Submission:
    """A student's file: who, which variant (if named), and the body lines (number in the file, text)."""

    path: Path
    student: str
    variant: int | None
    body: tuple[tuple[int, str], ...]
    kind: str = "working"  # or "claims"

    def numbers(self) -> set[Decimal]:
        found = set()
        for _, text in self.body:
            for match in _NUMBER.finditer(text.replace("\u2212", "-")):
                number = _decimal(match.group())
                if number is not None:
                    found.add(number)
        return found


_NUMBER = re.compile(r"(?<![\w.])-?\d*\.\d+(?![\w.])")
_SUBMISSION_KEYS = {"student", "variant"}
_CLAIMS_SUFFIXES = (".toml",)


def read_submission(path: str | Path) -> Submission:
    """Read one submission; anything that makes it unmarkable is an :class:`Unreadable` with the reason."""
    path = Path(path)
    try:
        data = read_bytes(path, "submission", limit=MAX_SUBMISSION_BYTES)
    except SymbackError as error:
        raise Unreadable(str(error)) from None
    if not data.strip():
        raise Unreadable("the file is empty")
    if b"\x00" in data:
        raise Unreadable("not a text file (binary data)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Unreadable(f"not a UTF-8 text file (byte {error.start})") from None
    if path.suffix.lower() in _CLAIMS_SUFFIXES:
        return _claims_submission(path, text)
    from ..verification.working import front_matter

    try:
        meta, body = front_matter(text)
    except SpecError as error:
        raise Unreadable(str(error)) from None
    return _submission(path, meta, tuple(body), "working")


def _submission(path: Path, meta: Mapping[str, Any], body: tuple[tuple[int, str], ...], kind: str) -> Submission:
    student = meta.get("student", "")
    if not isinstance(student, str):
        raise Unreadable("student must be a name in quotes, e.g. student = \"Ada Lovelace\"")
    variant = meta.get("variant")
    if variant is not None and (isinstance(variant, bool) or not isinstance(variant, int)):
        raise Unreadable(f"variant must be a whole number, e.g. variant = 7, not {variant!r}")
    if not any(text.strip() for _, text in body):
        raise Unreadable("no working after the front matter")
    return Submission(path, student.strip() or path.stem, variant, body, kind)


def _claims_submission(path: Path, text: str) -> Submission:
    """A claims file: each ``[[claim]]`` with quantity and value or expression is read as one line of working."""
    try:
        raw = parse_toml(text)
    except SpecError as error:
        raise Unreadable(str(error)) from None
    claims = raw.get("claim")
    if not isinstance(claims, list) or not claims:
        raise Unreadable("no [[claim]] tables")
    starts = [n for n, line in enumerate(text.splitlines(), 1) if re.match(r"^\s*\[\[\s*claim\s*\]\]", line)]
    body = []
    for index, claim in enumerate(claims):
        number = starts[index] if len(starts) == len(claims) else index + 1
        if not isinstance(claim, dict) or not isinstance(claim.get("quantity"), str):
            body.append((number, "(a claim without quantity = \"...\")"))
            continue
        parts = [claim["quantity"]]
        for part in ("expression", "value"):
            if part in claim:
                parts.append(str(claim[part]))
        body.append((number, " = ".join(parts)))
    return _submission(path, raw, tuple(body), "claims")


# -- marking ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineMark:
    """The marks of one key line in one submission, and why."""

    label: str
    question: int
    quantity: str
    out_of: float
    marks: float
    status: str  # RIGHT, FOLLOW_THROUGH, METHOD, WRONG, MISSING, TRIVIAL, FORMULA_WRONG
    written: str = ""  # the student's line
    line: int | None = None  # in the student's file
    right: str = ""  # the key's value
    note: str = ""
    slips: tuple[str, ...] = ()


@dataclass(frozen=True)
class Marked:
    """One submission marked: every key line's marks, the total, and what else was noticed."""

    path: Path
    student: str
    variant: int | None
    lines: tuple[LineMark, ...] = ()
    out_of: float = 0.0
    variant_note: str = ""
    reason: str = ""  # why it could not be marked (0 marks)
    extra: tuple[tuple[int, str, str, str], ...] = ()  # lines not asked for: (line, text, judge's status, message)

    @property
    def total(self) -> float:
        return sum(line.marks for line in self.lines)

    def question_marks(self, question: int) -> float:
        return sum(line.marks for line in self.lines if line.question == question)

    @property
    def slips(self) -> list[str]:
        return [slip for line in self.lines for slip in line.slips]


def _best_variant(key: Key, numbers: set[Decimal]) -> list[tuple[int, int]]:
    """(matching numbers, variant) for every variant, most first."""
    scores = [(len(numbers & variant.numbers()), number) for number, variant in key.variants.items()]
    return sorted(scores, key=lambda item: (-item[0], item[1]))


def identify(key: Key, submission: Submission) -> tuple[int, str]:
    """The variant to mark against and a note (a wrong or unnamed variant), or Unreadable."""
    ranking = _best_variant(key, submission.numbers())
    best_score, best = ranking[0]
    unique = len(ranking) == 1 or ranking[1][0] < best_score
    if submission.variant is not None:
        if submission.variant not in key.variants:
            raise Unreadable(f"variant {submission.variant} is not in the key (variants "
                             f"{min(key.variants)}-{max(key.variants)})")
        own = next(score for score, number in ranking if number == submission.variant)
        if best != submission.variant and unique and best_score >= MIN_MATCHING_NUMBERS and best_score > 2 * own:
            return submission.variant, (f"wrong variant: it names variant {submission.variant} but its numbers are "
                                        f"those of variant {best} ({best_score} numbers of variant {best}, {own} of "
                                        f"variant {submission.variant}); marked as variant {submission.variant}")
        return submission.variant, ""
    if best_score >= MIN_MATCHING_NUMBERS and unique:
        return best, f"variant not named; matched from its numbers ({best_score} numbers of variant {best})"
    raise Unreadable("the front matter names no variant (variant = N) and its numbers match no variant")


@dataclass
class _Context:
    """One variant's judge notation and the key lines' parsed quantities and formulas (shared by its students)."""

    quantities: list[sp.Expr]
    formulas: list[sp.Expr]
    leaves: dict[sp.Symbol, float]


def _parse_key(variant: KeyVariant, notation: Any, rate: float) -> _Context:
    from ..verification.slips import ETA

    quantities = [notation.parse(line.quantity) for line in variant.lines]
    formulas = [notation.parse(line.formula) for line in variant.lines]
    leaves: dict[sp.Symbol, float] = {ETA: rate}
    for name, value in variant.given.items():
        symbol = notation.parse(name)
        if isinstance(symbol, sp.Symbol):
            leaves[symbol] = float(value)
    return _Context(quantities, formulas, leaves)


def mark(key: Key, submission: Submission, *, seed: int = 0) -> Marked:
    """Mark one submission (judge it at its variant's numbers, then apply the rubric)."""
    from ..verification.working import judge, working_from_text

    number, variant_note = identify(key, submission)
    variant = key.variants[number]
    header_lines = variant.front_matter.count("\n")
    first_body = submission.body[0][0] if submission.body else 1
    text = variant.front_matter + "\n".join(line for _, line in submission.body) + "\n"
    try:
        working = working_from_text(text)
    except SymbackError as error:
        raise Unreadable(f"the working cannot be read: {error}") from None
    report = judge(working, seed=seed)
    context = _parse_key(variant, working.notation, float(Decimal(key.learning_rate)))

    def student_line(composed: int) -> int:
        return composed - header_lines - 1 + first_body

    by_number = {verdict.line: verdict for verdict in report.verdicts}
    found: dict[int, tuple[Any, Any]] = {}  # key line index -> (Line, Verdict), the last one written
    extra = []
    for line in working.lines:
        verdict = by_number.get(line.number)
        if not line.links or verdict is None:
            if line.reason:
                extra.append((student_line(line.number), line.text, "not judged", line.reason))
            continue
        quantity = line.links[0].expression
        index = next((i for i, q in enumerate(context.quantities) if q == quantity), None)
        if index is None:
            extra.append((student_line(line.number), line.text, verdict.status, verdict.message))
        else:
            found[index] = (line, verdict)
    marks: list[LineMark] = []
    values: dict[int, tuple[float, float]] = {}  # key line index -> the student's value, its half unit
    statuses: dict[int, str] = {}
    for index, key_line in enumerate(variant.lines):
        if index not in found:
            marks.append(LineMark(key_line.label, key_line.question, key_line.quantity, key_line.marks, 0.0, MISSING,
                                  right=key_line.written, note="not answered"))
            statuses[index] = MISSING
            continue
        line, verdict = found[index]
        result = _mark_line(key, variant, key_line, index, line, verdict, context, values, statuses)
        # The slip's name goes to the class chart; what it changed ("the factor σ′(net_o1) = … is missing")
        # goes to the student's comment.
        details = [s.split(": ", 1)[1] for s in verdict.slips if ": " in s]
        comment = "; ".join(part for part in (result[2], *details) if part)
        marks.append(LineMark(key_line.label, key_line.question, key_line.quantity, key_line.marks, result[0],
                              result[1], line.text, student_line(line.number), key_line.written, comment,
                              tuple(_slip_name(s) for s in verdict.slips)))
        statuses[index] = result[1]
    out_of = sum(line.marks for line in variant.lines)
    return Marked(submission.path, submission.student, number, tuple(marks), out_of, variant_note, "", tuple(extra))


def _slip_name(slip: str) -> str:
    return slip.split(": ", 1)[0]


def _final_number(line: Any) -> Any:
    """The student's value: the last member of the chain when it is a number (a ClaimValue), else None."""
    last = line.links[-1]
    return last.value if last.kind == "number" and len(line.links) > 1 else None


def _mark_line(key: Key, variant: KeyVariant, key_line: KeyLine, index: int, line: Any, verdict: Any,
               context: _Context, values: dict[int, tuple[float, float]], statuses: dict[int, str]) -> tuple[float, str, str]:
    from ..verification.verify import CARRIED
    from ..verification.verify import RIGHT as JUDGED_RIGHT
    from ..verification.verify import WRONG as JUDGED_WRONG

    links = line.links[2:] if line.defines else line.links[1:]
    checks = [c for c in verdict.checks if c.part != "defines"]
    symbolic = [check.status for link, check in zip(links, checks) if link.kind == "symbolic"]
    formula_right = bool(symbolic) and JUDGED_WRONG not in symbolic and JUDGED_RIGHT in symbolic
    formula_wrong = JUDGED_WRONG in symbolic
    value = _final_number(line)
    if value is None:
        if formula_right:
            return key_line.method, METHOD, "a right formula, but no value"
        return 0.0, WRONG, "no value written"
    values[index] = (value.value, max(value.half_unit, _half_unit(key.decimals)))
    final_status = checks[-1].status if checks and len(checks) == len(links) else verdict.status
    exponent = value.decimal.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) else 0
    exact_key = _decimal(key_line.written)
    short = decimals < key.decimals and value.decimal.normalize() != exact_key
    if final_status == JUDGED_RIGHT and not short:
        if formula_wrong:
            return key_line.marks - key_line.method, FORMULA_WRONG, "the value is right, the formula written is not"
        return key_line.marks, RIGHT, ""
    if final_status == JUDGED_RIGHT and short:
        return key_line.method, METHOD, f"given to {decimals} decimal place(s); {key.decimals} asked"
    follow = _follow_through(key, variant, index, context, values, statuses, value)
    # The judge's own "error carried forward" counts when it names earlier lines (not a wrong member of this one).
    carried = final_status == CARRIED and bool(set(verdict.carried_from) - {line.number})
    if follow is not None or carried:
        inputs = follow[1] if follow is not None else []
        trivial = _trivial(key, key_line, value.value, inputs)
        sources = ", ".join(follow[2]) if follow is not None else ""
        where = f" from the earlier answer(s) {sources}" if sources else ""
        if trivial:
            return 0.0, TRIVIAL, f"follows{where}, but the earlier slip made this line trivial ({trivial})"
        if not formula_wrong:
            return key_line.marks, FOLLOW_THROUGH, f"follows correctly{where}"
    if formula_right:
        return key_line.method, METHOD, "a right formula with a wrong number"
    return 0.0, WRONG, ""


def _follow_through(key: Key, variant: KeyVariant, index: int, context: _Context, values: dict[int, tuple[float, float]],
                    statuses: dict[int, str], value: Any) -> tuple[float, list[float], list[str]] | None:
    """The key's formula at the student's own earlier answers, when the student's value is that (else None).

    Earlier lines the student did not write count at their right values.  Returns the follow-through
    value, the numbers it was computed from, and the labels of the earlier answers that were not right;
    None when no earlier answer used was wrong or the value is not what they give.
    """
    formula = context.formulas[index]
    placeholders: dict[sp.Expr, sp.Symbol] = {}
    for j in sorted(range(index), key=lambda j: -sp.count_ops(context.quantities[j])):
        if formula.has(context.quantities[j]):
            placeholders[context.quantities[j]] = sp.Dummy(f"q{j}")
    point: dict[sp.Symbol, float] = {}
    halves: dict[sp.Symbol, float] = {}
    sources: list[str] = []
    for quantity, dummy in placeholders.items():
        j = context.quantities.index(quantity)
        if j in values:
            point[dummy], halves[dummy] = values[j]
            if statuses.get(j) not in (RIGHT, FORMULA_WRONG):
                sources.append(variant.lines[j].label)
        else:
            point[dummy], halves[dummy] = variant.lines[j].value, 0.0
    if not sources:
        return None
    try:
        expression = formula.xreplace(placeholders).xreplace({s: sp.Float(v, 17) for s, v in context.leaves.items()})
        at = {d: sp.Float(v, 17) for d, v in point.items()}
        ft = float(expression.xreplace(at))
        slack = value.half_unit + sum(abs(float(sp.diff(expression, d).xreplace(at))) * halves[d] for d in point)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    if not (math.isfinite(ft) and abs(value.value - ft) <= slack + 1e-9 * max(1.0, abs(ft))):
        return None
    inputs = list(point.values()) + [v for s, v in context.leaves.items() if formula.has(s)]
    return ft, inputs, sorted(sources)


def _half_unit(decimals: int) -> float:
    """Half a unit of the decimals asked: how far an earlier answer may be from the number used."""
    return 0.5 * 10.0 ** (-decimals)


def _trivial(key: Key, key_line: KeyLine, value: float, inputs: Sequence[float]) -> str:
    """Why a follow-through value is trivial ("" when it is not): 0, ±1 or one of its inputs, unlike the right value."""
    digits = key.decimals

    def same(a: float, b: float) -> bool:
        return round(a, digits) == round(b, digits)

    right = key_line.value
    if same(value, 0.0) and not same(right, 0.0):
        return "it is 0"
    for one in (1.0, -1.0):
        if same(value, one) and not same(right, one):
            return f"it is {one:g}"
    for number in inputs:
        if same(value, number) and not same(right, number):
            return f"it equals its input {_show(number, digits)}"
    return ""


def _show(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


#: Symbolic comparisons decided while marking ((function, two expressions) -> result), kept between runs.
_DECIDED: dict[tuple[str, sp.Expr, sp.Expr], Any] = {}
MAX_DECIDED = 4096


#: Where the judge looks its two comparisons up: (module, name), both memoised while a class is marked.
_COMPARISONS = (
    ("verification.verify", "compare_expressions"),
    ("verification.working", "compare_expressions"),
    ("verification.slips", "same_function"),
)


@contextmanager
def shared_identities() -> Iterator[None]:
    """Decide each symbolic comparison once per class.

    Every variant has the same network, so whether ``out_o1(1 - out_o1)`` is ``∂out_o1/∂net_o1``, or
    whether a written form is the true one with σ′ left out, does not depend on the student or the
    numbers.  The judge's two comparisons of expressions, :func:`symback.verification.verify.compare_expressions`
    (an identity) and :func:`symback.verification.slips.same_function` (a slip's form), are pure functions of the two
    expressions; while a class is marked they are memoised where the judge looks them up, and restored
    after.  Thirty students writing the same nineteen formulas cost nineteen symbolic checks, not 570.
    (tests/test_grade.py checks that the memo is used, so a move of either function is noticed.)
    """
    import importlib

    patched = []
    for module_name, name in _COMPARISONS:
        module = importlib.import_module(f"symback.{module_name}")
        original = getattr(module, name, None)
        if original is None:
            continue

        def decide(a: sp.Expr, b: sp.Expr, *, rng: Any, _original: Any = original, _name: str = name,
                   **options: Any) -> Any:
            key = (_name, a, b)
            if options:
                return _original(a, b, rng=rng, **options)
            if key not in _DECIDED:
                if len(_DECIDED) >= MAX_DECIDED:
                    _DECIDED.clear()
                _DECIDED[key] = _original(a, b, rng=rng)
            return _DECIDED[key]

        setattr(module, name, decide)
        patched.append((module, name, original))
    try:
        yield
    finally:
        for module, name, original in patched:
            setattr(module, name, original)


def grade(key: Key, paths: Sequence[str | Path], *, seed: int = 0) -> list[Marked]:
    """Mark every submission in order; one that cannot be read is 0 marks with the reason, never an exception."""
    with shared_identities():
        return [_mark_path(key, Path(path), seed) for path in paths]


def _mark_path(key: Key, path: Path, seed: int) -> Marked:
    try:
        submission = read_submission(path)
    except Unreadable as error:
        return Marked(path, path.stem, None, out_of=key.out_of, reason=str(error))
    try:
        return mark(key, submission, seed=seed)
    except Unreadable as error:
        return Marked(path, submission.student, submission.variant, out_of=key.out_of, reason=str(error))
    except SymbackError as error:
        return Marked(path, submission.student, submission.variant, out_of=key.out_of,
                      reason=f"cannot be marked: {error}")
    except (ArithmeticError, RecursionError, TypeError, ValueError) as error:  # the run goes on; the row says why
        return Marked(path, submission.student, submission.variant, out_of=key.out_of,
                      reason=f"cannot be marked ({type(error).__name__}: {error})")


# -- writing the results ---------------------------------------------------------------------------------------


def gradebook_csv(key: Key, marked: Sequence[Marked]) -> str:
    """One row per submission: student, file, variant, the variant check, marks per question, total, reason."""
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["student", "file", "variant", "variant check", *[f"Q{n}" for n, _ in key.questions],
                     "total", "out of", "reason"])
    for m in marked:
        writer.writerow([m.student, m.path.name, "" if m.variant is None else m.variant, m.variant_note,
                         *[_g(m.question_marks(n)) for n, _ in key.questions], _g(m.total), _g(m.out_of), m.reason])
    return stream.getvalue()


def _g(value: float) -> str:
    return f"{value:g}"


def _file_stems(marked: Sequence[Marked]) -> list[str]:
    """A verdict file name per submission: the student's name made safe, numbered when two coincide."""
    stems: list[str] = []
    for m in marked:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", m.student).strip("._") or "student"
        base = base[:60]
        stem, count = base, 2
        while stem in stems or stem in ("gradebook", "summary"):
            stem, count = f"{base}-{count}", count + 1
        stems.append(stem)
    return stems


def verdict_context(key: Key, m: Marked) -> dict[str, Any]:
    questions = []
    for number, title in key.questions:
        lines = [line for line in m.lines if line.question == number]
        questions.append({"number": number, "title": title, "marks": _g(m.question_marks(number)),
                          "out_of": _g(sum(line.out_of for line in lines)),
                          "lines": [{"label": l.label, "quantity": l.quantity, "marks": _g(l.marks),
                                     "out_of": _g(l.out_of), "status": l.status, "written": l.written,
                                     "line": "" if l.line is None else str(l.line), "right": l.right,
                                     "note": l.note, "slips": list(l.slips), "ok": l.marks == l.out_of}
                                    for l in lines]})
    return {"title": key.title, "student": m.student, "file": m.path.name,
            "variant": "" if m.variant is None else f"{m.variant:02d}", "variant_note": m.variant_note,
            "reason": m.reason, "total": _g(m.total), "out_of": _g(m.out_of), "questions": questions,
            "extra": [{"line": n, "text": t, "status": s, "message": msg} for n, t, s, msg in m.extra]}


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    width: float  # fraction of the longest bar
    y: float


def summary_context(key: Key, marked: Sequence[Marked]) -> dict[str, Any]:
    """The class at a glance: totals in bins, mean and median, per-question means, the slips named."""
    out_of = key.out_of
    totals = sorted(m.total for m in marked)
    bins = 10
    counts = [0] * bins
    for total in totals:
        counts[min(bins - 1, int(bins * total / out_of)) if out_of else 0] += 1
    tallest = max(counts) or 1
    histogram = [{"label": _g(round(out_of * i / bins, 1)), "count": c, "height": c / tallest, "x": i}
                 for i, c in enumerate(counts)]
    slips = Counter(slip for m in marked for slip in m.slips)
    ranked = slips.most_common()
    longest = ranked[0][1] if ranked else 1
    bars = [Bar(name, count, count / longest, i) for i, (name, count) in enumerate(ranked)]
    marked_ok = [m for m in marked if not m.reason]
    questions = []
    for number, title in key.questions:
        scores = [m.question_marks(number) for m in marked_ok]
        full = sum(line.out_of for line in marked_ok[0].lines if line.question == number) if marked_ok else 0
        questions.append({"number": number, "title": title,
                          "mean": _g(round(sum(scores) / len(scores), 2)) if scores else "–", "out_of": _g(full)})
    statuses = Counter(line.status for m in marked_ok for line in m.lines)
    median = (totals[(len(totals) - 1) // 2] + totals[len(totals) // 2]) / 2 if totals else 0.0
    return {
        "title": key.title, "count": len(marked), "out_of": _g(out_of),
        "mean": _g(round(sum(totals) / len(totals), 2)) if totals else "–", "median": _g(median),
        "histogram": histogram, "bars": bars, "bar_height": 26 * len(bars) + 10,
        "questions": questions, "statuses": sorted(statuses.items()),
        "unreadable": [{"student": m.student, "file": m.path.name, "reason": m.reason} for m in marked if m.reason],
        "wrong_variant": [{"student": m.student, "file": m.path.name, "note": m.variant_note}
                          for m in marked if m.variant_note.startswith("wrong variant")],
        "rows": [{"student": m.student, "file": m.path.name, "variant": "" if m.variant is None else m.variant,
                  "total": _g(m.total), "stem": stem} for m, stem in zip(marked, _file_stems(marked), strict=True)],
    }


def write_grades(key: Key, marked: Sequence[Marked], output: str | Path) -> list[Path]:
    """Write the gradebook, the verdicts and the summary into ``output`` (each file atomically); the paths."""
    from ..render.report import render_template

    folder = Path(output)
    payloads: dict[str, str] = {"gradebook.csv": gradebook_csv(key, marked)}
    for m, stem in zip(marked, _file_stems(marked), strict=True):
        context = verdict_context(key, m)
        for fmt in ("html", "md"):
            payloads[f"{stem}.{fmt}"] = render_template(f"grade.{fmt}.j2", fmt, **context)
    payloads["summary.html"] = render_template("grade_summary.html.j2", "html", **summary_context(key, marked))
    return [write_atomic(folder / name, text) for name, text in sorted(payloads.items())]


def summary_line(key: Key, marked: Sequence[Marked]) -> str:
    """One line about a marked class: how many were marked, out of what, the mean, the unreadable.

    >>> summary_line(Key("t", 4, "0.5", (), {1: KeyVariant(1, "", {}, ())}), [])
    'marked 0 of 0 submission(s) out of 0'
    """
    unread = sum(1 for m in marked if m.reason)
    totals = [m.total for m in marked]
    line = f"marked {len(marked) - unread} of {len(marked)} submission(s) out of {_g(key.out_of)}"
    if unread:
        line += f" ({unread} could not be read: see gradebook.csv)"
    if totals:
        line += f"; mean {_g(round(sum(totals) / len(totals), 2))}"
    return line
