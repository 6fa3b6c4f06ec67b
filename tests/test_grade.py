"""Grading a class: full marks for the key's own solutions, one slip costs its line once, follow-through,
no credit for a line made trivial, wrong and unnamed variants, unreadable files, the gradebook and summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from symback.classroom.exercise import draw_variants, load_exercise, solve, submission_text, write_exercise
from symback.classroom.grade import (
    FOLLOW_THROUGH,
    METHOD,
    MISSING,
    RIGHT,
    TRIVIAL,
    WRONG,
    grade,
    load_key,
    summary_context,
    write_grades,
)
from symback.cli import main
from symback.errors import SpecError

from . import reference

SPEC = Path(__file__).resolve().parent.parent / "examples" / "exercise_222.toml"
VARIANTS = 30


@pytest.fixture(scope="module")
def sheets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sheets")
    exercise = load_exercise(SPEC)
    write_exercise(exercise, VARIANTS, 7, folder, pdf=False)
    solutions = [solve(exercise, v) for v in draw_variants(exercise, VARIANTS, seed=7)]
    return folder, load_key(folder / "key.json"), solutions


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _lines(solution):
    return {line.label: line for line in solution.lines}


def _f(value: float) -> str:
    return f"{value:.4f}"


def _p(text: str) -> str:
    return f"({text})" if text.startswith("-") else text


def _forward(solution):
    """out_h1, out_o1, out_o2 and the output layer's σ′ by NumPy (the oracle for the slipped values)."""
    v = {name: float(value) for name, value in solution.variant.values.items()}
    sig = reference.ACTIVATIONS["sigmoid"][0]
    h = sig(np.array([v["w1"] * v["i1"] + v["w2"] * v["i2"] + v["b1"], v["w3"] * v["i1"] + v["w4"] * v["i2"] + v["b2"]]))
    o = sig(np.array([v["w5"] * h[0] + v["w6"] * h[1] + v["b3"], v["w7"] * h[0] + v["w8"] * h[1] + v["b4"]]))
    return v, h, o


def _sigma_prime_left_out(solution) -> dict[str, str]:
    """∂E/∂w5 written without σ′(net_o1) (the value by NumPy), and the update that follows from it."""
    v, h, o = _forward(solution)
    lines = _lines(solution)
    wrong = _f((o[0] - v["t1"]) * h[0])
    new = _f(v["w5"] - 0.5 * float(wrong))
    return {
        "2.3": f"∂E/∂w5 = ∂E/∂out_o1 × out_h1 = {_p(lines['2.1'].written)} × {lines['1.2'].written} = {wrong}",
        "4.1": f"new w5 = w5 - η × ∂E/∂w5 = {_p(str(v['w5']))} - 0.5 × {_p(wrong)} = {new}",
    }


def _marks(marked):
    return {line.label: line for line in marked.lines}


def test_the_keys_own_solutions_get_full_marks_for_every_variant(sheets) -> None:
    folder, key, _ = sheets
    paths = [folder / f"solution-{n:02d}.md" for n in range(1, VARIANTS + 1)]
    marked = grade(key, paths)
    assert [m.variant for m in marked] == list(range(1, VARIANTS + 1))
    for m in marked:
        assert m.reason == "" and m.variant_note == ""
        assert m.total == m.out_of == 21, [(l.label, l.status, l.note) for l in m.lines if l.status != RIGHT]
        assert {line.status for line in m.lines} == {RIGHT}


def test_one_slip_loses_exactly_its_line_and_keeps_the_follow_through(sheets, tmp_path) -> None:
    _, key, solutions = sheets
    solution = solutions[4]
    path = _write(tmp_path, "ada.md", submission_text(solution, student="Ada", lines=_sigma_prime_left_out(solution)))
    (m,) = grade(key, [path])
    marks = _marks(m)
    assert m.total == m.out_of - marks["2.3"].out_of == 19
    assert marks["2.3"].status == WRONG and marks["2.3"].marks == 0
    assert marks["2.3"].slips == ("σ′(z) left out",)
    assert marks["4.1"].status == FOLLOW_THROUGH and marks["4.1"].marks == marks["4.1"].out_of
    assert "2.3" in marks["4.1"].note
    assert [label for label, line in marks.items() if line.status != RIGHT] == ["2.3", "4.1"]


def test_two_slips_each_cost_their_line_once(sheets, tmp_path) -> None:
    _, key, solutions = sheets
    solution = solutions[2]
    lines = _lines(solution)
    v, h, o = _forward(solution)
    slipped = _sigma_prime_left_out(solution)
    # The sign of (a − y) flipped in ∂E/∂out_o2; everything after it follows from the author's numbers.
    d2 = _f(v["t2"] - o[1])
    slipped["3.1"] = f"∂E/∂out_o2 = t2 - out_o2 = {v['t2']} - {lines['1.8'].written} = {d2}"
    s1, s2 = (float(lines[k].written) for k in ("2.2", "3.2"))
    back = _f(float(lines["2.1"].written) * s1 * v["w5"] + float(d2) * s2 * v["w7"])
    slipped["3.3"] = (f"∂E/∂out_h1 = ∂E/∂out_o1 × ∂out_o1/∂net_o1 × w5 + ∂E/∂out_o2 × ∂out_o2/∂net_o2 × w7 = "
                      f"{_p(lines['2.1'].written)} × {s1} × {_p(str(v['w5']))} + {_p(d2)} × {s2} × {_p(str(v['w7']))}"
                      f" = {back}")
    dw1 = _f(float(back) * float(lines["3.4"].written) * v["i1"])
    slipped["3.5"] = f"∂E/∂w1 = ∂E/∂out_h1 × ∂out_h1/∂net_h1 × i1 = {_p(back)} × {lines['3.4'].written} × {v['i1']} = {dw1}"
    slipped["4.2"] = f"new w1 = w1 - η × ∂E/∂w1 = {_p(str(v['w1']))} - 0.5 × {_p(dw1)} = {_f(v['w1'] - 0.5 * float(dw1))}"
    path = _write(tmp_path, "bob.md", submission_text(solution, student="Bob", lines=slipped))
    (m,) = grade(key, [path])
    marks = _marks(m)
    lost = {label: line.status for label, line in marks.items() if line.marks < line.out_of}
    assert lost == {"2.3": WRONG, "3.1": WRONG}, [(l.label, l.status, l.note) for l in m.lines]
    assert m.total == 21 - 2 - 1
    assert marks["3.1"].slips == ("the sign of (a − y) flipped",)
    for label in ("3.3", "3.5", "4.1", "4.2"):
        assert marks[label].status == FOLLOW_THROUGH, (label, marks[label])


def test_a_line_made_trivial_by_an_earlier_wrong_answer_earns_nothing(sheets, tmp_path) -> None:
    """out_o1 = 1 makes out_o1(1 − out_o1) = 0, ∂E/∂w5 = 0 and new w5 = w5: follow-through, but trivial."""
    _, key, solutions = sheets
    solution = solutions[0]
    lines = _lines(solution)
    v, h, o = _forward(solution)
    t1, w5 = v["t1"], v["w5"]
    d1 = _f(1.0 - t1)
    cost = _f(0.5 * (t1 - 1.0) ** 2 + 0.5 * (v["t2"] - float(lines["1.8"].written)) ** 2)
    s2, d2 = lines["3.2"].written, lines["3.1"].written
    back = _f(float(d2) * float(s2) * v["w7"])
    gamed = {
        "1.6": f"out_o1 = 1/(1 + e^-net_o1) = 1/(1 + e^-{_p(lines['1.5'].written)}) = 1.0000",
        "1.9": f"E = 1/2 (t1 - out_o1)^2 + 1/2 (t2 - out_o2)^2 = 1/2 ({t1} - 1.0000)^2 + "
               f"1/2 ({v['t2']} - {lines['1.8'].written})^2 = {cost}",
        "2.1": f"∂E/∂out_o1 = out_o1 - t1 = 1.0000 - {t1} = {d1}",
        "2.2": "∂out_o1/∂net_o1 = out_o1(1 - out_o1) = 1.0000(1 - 1.0000) = 0.0000",
        "2.3": f"∂E/∂w5 = ∂E/∂out_o1 × ∂out_o1/∂net_o1 × out_h1 = {d1} × 0.0000 × {lines['1.2'].written} = 0.0000",
        "3.3": f"∂E/∂out_h1 = ∂E/∂out_o1 × ∂out_o1/∂net_o1 × w5 + ∂E/∂out_o2 × ∂out_o2/∂net_o2 × w7 = {d1} × 0.0000 "
               f"× {_p(str(w5))} + {_p(d2)} × {s2} × {_p(str(v['w7']))} = {back}",
        "3.5": f"∂E/∂w1 = ∂E/∂out_h1 × ∂out_h1/∂net_h1 × i1 = {_p(back)} × {lines['3.4'].written} × {v['i1']} = "
               f"{_f(float(back) * float(lines['3.4'].written) * v['i1'])}",
        "4.1": f"new w5 = w5 - η × ∂E/∂w5 = {_p(str(w5))} - 0.5 × 0.0000 = {_f(w5)}",
    }
    dw1 = float(gamed["3.5"].rsplit("= ", 1)[1])
    gamed["4.2"] = f"new w1 = w1 - η × ∂E/∂w1 = {_p(str(v['w1']))} - 0.5 × {_p(_f(dw1))} = {_f(v['w1'] - 0.5 * dw1)}"
    path = _write(tmp_path, "eve.md", submission_text(solution, student="Eve", lines=gamed))
    (m,) = grade(key, [path])
    marks = _marks(m)
    assert marks["1.6"].status == METHOD and marks["1.6"].marks == 0.5  # the right formula, a wrong value
    for label in ("2.2", "2.3", "4.1"):
        assert marks[label].status == TRIVIAL and marks[label].marks == 0, (label, marks[label])
    assert "it is 0" in marks["2.2"].note and "equals its input" in marks["4.1"].note
    for label in ("1.9", "2.1", "3.3", "3.5", "4.2"):
        assert marks[label].status == FOLLOW_THROUGH, (label, marks[label])
    assert m.total == 21 - 0.5 - 1 - 2 - 1


def test_method_marks_for_a_right_formula_with_a_wrong_number(sheets, tmp_path) -> None:
    _, key, solutions = sheets
    solution = solutions[1]
    line = _lines(solution)["2.3"]
    wrong = _f(line.value * 1.5)  # an arithmetic slip
    path = _write(tmp_path, "cy.md", submission_text(solution, values={"2.3": wrong}, student="Cy"))
    (m,) = grade(key, [path])
    marks = _marks(m)
    assert marks["2.3"].status == METHOD and marks["2.3"].marks == 1.0 == line.method
    assert marks["4.1"].status == RIGHT  # its arithmetic used the right value of ∂E/∂w5
    assert m.total == 21 - 1
    short = f"{_lines(solution)['1.2'].value:.2f}"  # rounds right, but to 2 of the 4 decimals asked
    (m,) = grade(key, [_write(tmp_path, "eli.md", submission_text(solution, values={"1.2": short}))])
    assert {l.label: (l.status, l.marks) for l in m.lines if l.status != RIGHT} == {"1.2": (METHOD, 0.5)}
    assert "given to 2 decimal place(s); 4 asked" in _marks(m)["1.2"].note
    missing = _write(tmp_path, "dee.md", submission_text(solution, lines={"1.9": "", "3.4": ""}, student="Dee"))
    (m,) = grade(key, [missing])
    assert {l.label: l.status for l in m.lines if l.status != RIGHT} == {"1.9": MISSING, "3.4": MISSING}
    assert m.total == 21 - 2


def test_wrong_and_unnamed_variants(sheets, tmp_path) -> None:
    folder, key, _ = sheets
    copied = (folder / "solution-02.md").read_text(encoding="utf-8").replace("variant = 2", "variant = 1")
    unnamed = (folder / "solution-03.md").read_text(encoding="utf-8").replace("variant = 3\n", "")
    stranger = "+++\nstudent = \"Zed\"\n+++\nnet_h1 = 0.123456\n"
    paths = [_write(tmp_path, "copied.md", copied), _write(tmp_path, "unnamed.md", unnamed),
             _write(tmp_path, "zed.md", stranger), _write(tmp_path, "far.md", copied.replace("variant = 1", "variant = 99"))]
    wrong, matched, lost, far = grade(key, paths)
    assert wrong.variant == 1 and wrong.variant_note.startswith("wrong variant")
    assert "variant 2" in wrong.variant_note and wrong.total < wrong.out_of
    assert matched.variant == 3 and "matched from its numbers" in matched.variant_note and matched.total == 21
    assert lost.total == 0 and "names no variant" in lost.reason
    assert far.total == 0 and "variant 99 is not in the key" in far.reason


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"   \n\n", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
        (b"caf\xe9 = 1.0\n", "not a UTF-8 text file"),
        (b"+++\nvariant = 1\n", "never closed"),
        (b"+++\nvariant = \"one\"\n+++\nx = 1\n", "variant must be a whole number"),
        (b"+++\nvariant = 1\n+++\n\n", "no working after the front matter"),
    ],
)
def test_an_unreadable_submission_gets_zero_with_a_reason_and_the_run_goes_on(sheets, tmp_path, content, reason) -> None:
    folder, key, _ = sheets
    bad = tmp_path / "bad.md"
    bad.write_bytes(content)
    first, second = grade(key, [bad, folder / "solution-01.md"])
    assert first.total == 0 and reason in first.reason
    assert second.total == 21


def test_a_claims_file_is_marked_like_working(sheets, tmp_path) -> None:
    _, key, solutions = sheets
    solution = solutions[5]
    claims = [f"variant = {solution.variant.number}", "student = \"Flo\"", ""]
    for line in solution.lines:
        value = line.written if line.label != "2.3" else _f(line.value * 2)
        claims += ["[[claim]]", f"quantity = {json.dumps(line.quantity, ensure_ascii=False)}",
                   f"value = \"{value}\"", ""]
    path = _write(tmp_path, "flo.toml", "\n".join(claims))
    (m,) = grade(key, [path])
    assert m.reason == "" and m.student == "Flo"
    # Values only: ∂E/∂w5 is wrong (no formula, so no method mark); the update written is the right one.
    assert {l.label: l.status for l in m.lines if l.status != RIGHT} == {"2.3": WRONG}
    assert m.total == 21 - 2


def test_gradebook_verdicts_and_the_slip_chart(sheets, tmp_path) -> None:
    folder, key, solutions = sheets
    paths = [folder / "solution-01.md"]
    for n in (6, 7):
        solution = solutions[n]
        paths.append(_write(tmp_path, f"s{n}.md", submission_text(solution, student=f"Student {n}",
                                                                   lines=_sigma_prime_left_out(solution))))
    paths.append(_write(tmp_path, "empty.md", ""))
    marked = grade(key, paths)
    context = summary_context(key, marked)
    assert [(bar.label, bar.count) for bar in context["bars"]] == [("σ′(z) left out", 2)]
    out = tmp_path / "out"
    written = write_grades(key, marked, out)
    assert {p.name for p in written} >= {"gradebook.csv", "summary.html", "answer_key.html", "Student_6.md", "empty.md"}
    rows = list(csv.DictReader((out / "gradebook.csv").read_text(encoding="utf-8").splitlines()))
    assert [r["total"] for r in rows] == ["21", "19", "19", "0"]
    assert rows[1]["Q2"] == "2" and rows[1]["Q4"] == "2" and rows[3]["reason"] == "the file is empty"
    summary = (out / "summary.html").read_text(encoding="utf-8")
    assert "σ′(z) left out" in summary and "<script" not in summary and "https://" not in summary
    assert summary.count("<svg") == 2 and "the file is empty" in summary
    red_pen = (out / "Student_6.md").read_text(encoding="utf-8")
    assert "σ′\\(z\\) left out" in red_pen and FOLLOW_THROUGH in red_pen and "19 / 21" in red_pen
    html = (out / "Student_6.html").read_text(encoding="utf-8")
    assert "slip: σ′(z) left out" in html and "class=\"lost\"" in html and "<script" not in html


def test_re_running_after_fixing_the_key_re_marks_everything(sheets, tmp_path) -> None:
    folder, key, solutions = sheets
    raw = json.loads((folder / "key.json").read_text(encoding="utf-8"))
    for variant in raw["variants"]:
        for line in variant["lines"]:
            if line["label"] == "2.3":
                line["marks"], line["method"] = 3, 1.5
    fixed = tmp_path / "key.json"
    fixed.write_text(json.dumps(raw), encoding="utf-8")
    slip = _write(tmp_path, "s.md", submission_text(solutions[0], lines=_sigma_prime_left_out(solutions[0])))
    before = grade(key, [folder / "solution-01.md", slip])
    after = grade(load_key(fixed), [folder / "solution-01.md", slip])
    assert [m.total for m in before] == [21, 19] and [m.total for m in after] == [22, 19]


@pytest.mark.parametrize(
    ("text", "message"),
    [("{", "not an answer key"), ("{\"format\": \"x\"}", "not an answer key"),
     ("{\"format\": \"symback-exercise-key\", \"version\": 1}", "damaged")],
)
def test_an_unusable_key_is_one_spec_error(tmp_path, text: str, message: str) -> None:
    path = _write(tmp_path, "key.json", text)
    with pytest.raises(SpecError, match=message):
        load_key(path)


def test_cli_grade(sheets, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, _, _ = sheets
    empty = _write(tmp_path, "empty.md", "")
    out = tmp_path / "marked"
    assert main(["grade", str(folder / "key.json"), str(folder / "solution-01.md"), str(empty), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "marked 1 of 2 submission(s) out of 21 (1 could not be read" in said
    assert (out / "gradebook.csv").exists() and (out / "summary.html").exists()
    broken = _write(tmp_path, "broken.json", "{")
    assert main(["grade", str(broken), str(empty), "-o", str(tmp_path / "nothing")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "not an answer key" in error and "Traceback" not in error
    assert not (tmp_path / "nothing").exists()


def test_the_stage_modules_do_not_import_the_cli() -> None:
    import subprocess
    import sys

    code = ("import sys, symback.classroom.exercise, symback.classroom.grade; "
            "assert 'symback.cli' not in sys.modules")
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env={"PYTHONPATH": str(root)}, timeout=120)


# -- no file stops the run or leaks an internal name ------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PIECES = st.sampled_from([
    "+++\n", "variant = 1\n", "variant = 0\n", "student = \"x\"\n", "net_h1", "out_o1", "∂E/∂w5", "dE/dw5", "=", " = ",
    "0.5334", "-0.0354", "1.0000", "0", "(", ")", "×", "*", "e^-", "new w5", "η", "\n", "[[claim]]\n",
    "quantity = \"E\"\n", "value = \"1\"\n", "\x00", "é", "1e308", "σ′(", "w5", "-", "/", "^2",
])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(_PIECES, min_size=0, max_size=14).map("".join), st.sampled_from([".md", ".txt", ".toml"]))
def test_any_file_is_marked_or_refused_with_a_reason_never_a_crash(sheets, tmp_path, text: str, suffix: str) -> None:
    _, key, _ = sheets
    path = tmp_path / f"any{suffix}"
    path.write_text(text, encoding="utf-8")
    (m,) = grade(key, [path])
    assert (m.reason and m.total == 0) or (not m.reason and 0 <= m.total <= m.out_of)
    assert "__" not in m.reason and "Traceback" not in m.reason
    assert all("__" not in line.note for line in m.lines)


def test_a_class_decides_each_symbolic_comparison_once(sheets) -> None:
    """The second student of the same exercise adds no symbolic comparison (the memo is where the judge looks)."""
    from symback.classroom import grade as grading

    folder, key, _ = sheets
    grading._DECIDED.clear()
    grade(key, [folder / "solution-04.md"])
    decided = len(grading._DECIDED)
    assert decided >= 19  # at least one identity per line with a formula
    assert {name for name, _, _ in grading._DECIDED} >= {"compare_expressions"}
    (m,) = grade(key, [folder / "solution-05.md"])
    assert m.total == 21 and len(grading._DECIDED) == decided
