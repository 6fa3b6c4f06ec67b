"""Exercise sheets: reproducible nice variants, answers checked against NumPy, real pdflatex and Chromium."""

from __future__ import annotations

import hashlib
import subprocess
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from symback.classroom.exercise import (
    draw_variants,
    exercise_from_text,
    front_matter,
    load_exercise,
    solve,
    submission_text,
    write_exercise,
)
from symback.cli import main
from symback.errors import SpecError
from symback.verification.verify import NOT_JUDGED, RIGHT
from symback.verification.working import judge, working_from_text

from . import reference
from .tools import chromium_screenshot, dark_pixels, png_pixels, require_program

SPEC = Path(__file__).resolve().parent.parent / "examples" / "exercise_222.toml"


@pytest.fixture(scope="module")
def exercise():
    return load_exercise(SPEC)


@pytest.fixture(scope="module")
def thirty(exercise):
    return draw_variants(exercise, 30, seed=7)


def _arrays(variant):
    """The variant's numbers as NumPy arrays, read by the names the example spec gives them."""
    v = {name: float(value) for name, value in variant.values.items()}
    W1 = np.array([[v["w1"], v["w2"]], [v["w3"], v["w4"]]])
    W2 = np.array([[v["w5"], v["w6"]], [v["w7"], v["w8"]]])
    b1, b2 = np.array([v["b1"], v["b2"]]), np.array([v["b3"], v["b4"]])
    return W1, W2, b1, b2, np.array([[v["i1"], v["i2"]]]), np.array([[v["t1"], v["t2"]]])


def _by_quantity(solution):
    return {line.quantity: line for line in solution.lines}


def test_thirty_variants_are_distinct_unsaturated_and_nice(exercise, thirty) -> None:
    assert [v.number for v in thirty] == list(range(1, 31))
    assert len({v.key() for v in thirty}) == 30
    for variant in thirty:
        for name, value in variant.values.items():
            assert value != 0 and -value.as_tuple().exponent <= 2, (name, value)  # 1-2 decimals, never 0
        W1, W2, b1, b2, x, _ = _arrays(variant)
        z1 = x @ W1.T + b1  # the forward pass by NumPy, not by symback
        z2 = reference.ACTIVATIONS["sigmoid"][0](z1) @ W2.T + b2
        assert np.all(np.abs(z1) < 4) and np.all(np.abs(z2) < 4), variant
        for line in solve(exercise, variant).lines:
            assert Decimal(line.written) != 0, (variant.number, line.label, line.written)
            assert round(line.value, exercise.decimals) != 0
            scaled = abs(line.value) * 10**exercise.decimals
            assert abs(scaled - int(scaled) - 0.5) >= 0.02, (variant.number, line.label, line.value)  # not half-way


def test_answers_agree_with_an_independent_numpy_oracle(exercise, thirty) -> None:
    for variant in thirty[:10]:
        W1, W2, b1, b2, x, y = _arrays(variant)
        cost, dW, _ = reference.gradients([2, 2, 2], ["sigmoid", "sigmoid"], "half_squared_error", [W1, W2],
                                          [b1, b2], x, y)
        lines = _by_quantity(solve(exercise, variant))
        assert lines["E"].value == pytest.approx(cost, rel=1e-12)
        assert lines["∂E/∂w5"].value == pytest.approx(dW[1][0, 0], rel=1e-12)
        assert lines["∂E/∂w1"].value == pytest.approx(dW[0][0, 0], rel=1e-12)
        assert lines["new w5"].value == pytest.approx(W2[0, 0] - 0.5 * dW[1][0, 0], rel=1e-12)
        assert lines["new w1"].value == pytest.approx(W1[0, 0] - 0.5 * dW[0][0, 0], rel=1e-12)
        for line in lines.values():  # every answer is written to the decimals asked
            assert line.written == f"{line.value:.4f}" or line.written == f"{line.value:.4f}"[1:]


def test_a_variant_does_not_depend_on_how_many_are_drawn(exercise, thirty) -> None:
    assert draw_variants(exercise, 3, seed=7) == thirty[:3]
    assert draw_variants(exercise, 3, seed=8) != thirty[:3]


def test_the_model_solution_is_right_line_by_line_for_the_judge(exercise, thirty) -> None:
    for variant in thirty[:3]:
        solution = solve(exercise, variant)
        body = submission_text(solution).split("+++", 2)[2]
        report = judge(working_from_text(front_matter(exercise, variant) + body))
        statuses = [v.status for v in report.verdicts]
        assert statuses == [RIGHT] * len(solution.lines), report.text()
        assert all(status != NOT_JUDGED for status in statuses)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_gives_byte_identical_files_pdf_included(exercise, tmp_path) -> None:
    require_program("pdflatex")
    first = write_exercise(exercise, 1, 7, tmp_path / "a")
    write_exercise(exercise, 1, 7, tmp_path / "b")
    names = {p.name for p in first}
    assert {"sheet-01.pdf", "answers-01.pdf", "sheet-01.html", "answers-01.md", "solution-01.md", "key.json",
            "network-01.svg", "sheet-01.tex"} <= names
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    pdf = (tmp_path / "a" / "answers-01.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and b"CreationDate" not in pdf and b"ModDate" not in pdf
    other = write_exercise(exercise, 1, 8, tmp_path / "c", pdf=False)
    assert (tmp_path / "c" / "sheet-01.md").read_bytes() != (tmp_path / "a" / "sheet-01.md").read_bytes()
    assert len(other) == len(first) - 2


def _cost_row(text: str, start: str, end: str) -> str:
    row = next(line for line in text.splitlines() if "the cost," in line)
    assert row.startswith(start) and row.endswith(end), row
    return row


def test_the_notation_writes_the_cost_as_math_in_the_tex_and_the_html(exercise, tmp_path) -> None:
    """The cost's row: LaTeX in the .tex (as the answers' working writes it), MathML in the .html,
    the typed form (what a student hands in) in the .md."""
    write_exercise(exercise, 1, 7, tmp_path, pdf=False)
    tex = _cost_row((tmp_path / "sheet-01.tex").read_text(encoding="utf-8"), "E & the cost, $", "$ \\\\")
    term = r"\tfrac{1}{2}({t_{1}} - {\mathrm{out}_{o_{1}}})^{2}"
    assert term in tex and "1/2" not in tex
    answers = (tmp_path / "answers-01.tex").read_text(encoding="utf-8")
    assert term in answers.split("\\section*{Questions")[1]  # the same LaTeX as the answer's E line
    html = _cost_row((tmp_path / "sheet-01.html").read_text(encoding="utf-8"), "<tr><td>E</td><td>the cost, <math>",
                     "</math></td></tr>")
    assert "1/2" not in html and html.count("<mfrac>") == 2 and html.count("<msup>") == 2
    # the written order kept: t1 − out_o1, not SymPy's −out_o1 + t1
    assert html.index("<mi>t</mi>") < html.index("<mo>−</mo>") < html.index('<mi mathvariant="normal">out</mi>')
    md = _cost_row((tmp_path / "sheet-01.md").read_text(encoding="utf-8"), "| E | the cost, ", " |")
    assert md == r"| E | the cost, 1/2 \(t1 - out\_o1\)^2 \+ 1/2 \(t2 - out\_o2\)^2 |"


def test_sheets_compile_and_show_the_network_and_the_questions(exercise, tmp_path) -> None:
    pdfinfo = require_program("pdfinfo")
    write_exercise(exercise, 1, 3, tmp_path)
    for name in ("sheet-01.pdf", "answers-01.pdf"):
        info = subprocess.run([pdfinfo, str(tmp_path / name)], capture_output=True, text=True, check=True).stdout
        pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
        assert 1 <= pages <= 4, (name, pages)
    tex = (tmp_path / "answers-01.tex").read_text(encoding="utf-8")
    assert "\\begin{tikzpicture}" in tex and "\\pdftrailerid{}" in tex
    sheet = (tmp_path / "sheet-01.md").read_text(encoding="utf-8")
    variant = draw_variants(exercise, 3, seed=3)[0]
    for name, value in variant.values.items():  # every given number is on the sheet
        assert f"| {name.replace('_', chr(92) + '_')} | {value} |" in sheet
    assert "### 2. The partial ∂E/∂w5" in sheet and "1.1 net\\_h1" in sheet
    assert "```text" not in sheet.split("## Handing in")[0]  # no worked solution on the question sheet
    answers = (tmp_path / "answers-01.md").read_text(encoding="utf-8")
    assert solve(exercise, variant).lines[0].text in answers


def test_sheets_render_in_headless_chromium(exercise, tmp_path) -> None:
    write_exercise(exercise, 1, 7, tmp_path, pdf=False)
    page = tmp_path / "sheet-01.html"
    html = page.read_text(encoding="utf-8")
    assert "<svg" in html and "<script" not in html and "https://" not in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    png = chromium_screenshot(page, tmp_path, size=(1000, 1400))
    assert png_pixels(png)[:2] == (1000, 1400)
    assert dark_pixels(png) > 500
    svg = (tmp_path / "network-01.svg").read_text(encoding="utf-8")
    assert svg.count("<circle") == 6 and svg.count("<line") == 8 and "w5 = " in svg


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("activations = \"sigmoid\"", "activations = \"relu\""), "has no hand form"),
        (("cost = \"half_squared_error\"", "cost = \"binary_cross_entropy\""), "has no hand form"),
        (("partials = [\"w5\", \"w1\"]", "partials = [\"i1\"]"), "is not a weight or bias"),
        (("updates = [\"w5\", \"w1\"]", "updates = [\"w6\"]"), "its partial is not asked"),
        (("decimals = 4", "decimals = 0"), "decimals"),
        (("weights = {from = -1.0, to = 1.0, decimals = 2}", "weights = {from = 1.0, to = -1.0}"), "must be below"),
        (("[ask]", "[asks]"), "unknown key or section 'asks'"),
        (("method = 0.5", "method = 2"), "at most 1"),
    ],
)
def test_an_unusable_spec_is_one_spec_error(change: tuple[str, str], message: str) -> None:
    text = SPEC.read_text(encoding="utf-8")
    assert change[0] in text
    with pytest.raises(SpecError, match=message):
        exercise_from_text(text.replace(*change, 1))


def test_ranges_too_tight_for_nice_variants_are_said(exercise) -> None:
    text = SPEC.read_text(encoding="utf-8").replace("max_abs_z = 4.0", "max_abs_z = 0.01")
    with pytest.raises(SpecError, match="no nice variant 1"):
        draw_variants(exercise_from_text(text), 1, seed=0)


def test_cli_exercise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exercise", str(SPEC), "--variants", "2", "--seed", "7", "-o", str(tmp_path), "--no-pdf"]) == 0
    assert "2 variant(s) (21 marks each)" in capsys.readouterr().out
    assert (tmp_path / "sheet-02.html").exists() and (tmp_path / "key.json").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text("[network]\nlayers = [2, 2]\nactivations = \"sigmoid\"\ncost = \"squared_error\"\n", encoding="utf-8")
    assert main(["exercise", str(bad), "-o", str(tmp_path / "x")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "partials" in error and "Traceback" not in error
    assert main(["exercise", str(SPEC), "--variants", "0", "-o", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


SMALL = """
decimals = 3
learning_rate = 0.1
[network]
layers = {layers}
activations = {activations}
cost = "{cost}"
[ask]
partials = {partials}
updates = {partials}
"""


@pytest.mark.parametrize(
    ("layers", "activations", "cost", "partials"),
    [
        ("[2, 2, 2]", '["tanh", "sigmoid"]', "squared_error", '["w(1)_1_0", "b(2)_1"]'),
        ("[1, 3, 1]", '"tanh"', "half_squared_error", '["w(1)_2_0", "w(L)_0_1"]'),
        ("[2, 1]", '"sigmoid"', "squared_error", '["b(L)"]'),
    ],
)
def test_other_shapes_activations_and_costs_are_judged_right(layers, activations, cost, partials) -> None:
    """Canonical names (no [names] table), other hand forms, other shapes: the judge accepts every line."""
    exercise = exercise_from_text(SMALL.format(layers=layers, activations=activations, cost=cost, partials=partials))
    variant = draw_variants(exercise, 2, seed=11)[1]
    solution = solve(exercise, variant)
    report = judge(working_from_text(front_matter(exercise, variant) + submission_text(solution).split("+++", 2)[2]))
    assert [v.status for v in report.verdicts] == [RIGHT] * len(solution.lines), report.text()
    assert all(round(line.value, 3) != 0 for line in solution.lines)


def test_an_exercise_spec_is_read_within_the_toml_bounds():
    """Read by the same bounded reader as spec and claims files: one line, never a RecursionError."""
    with pytest.raises(SpecError, match="nests arrays and tables more than 32 levels deep"):
        exercise_from_text("x = " + "[" * 2000 + "]" * 2000)
    with pytest.raises(SpecError, match="^invalid TOML: "):
        exercise_from_text("[network\n")
