"""The seed 002 and seed 000 examples run (fast mode) and show what they claim, in numbers."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from symback.training.plots import PLOT_HINT, have_matplotlib

from .tools import distinct_colours, in_ci, load_example, png_pixels


def _run(module, out: Path | None) -> tuple[dict, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        results = module.run(out, fast=True)
    return results, printed.getvalue()


# -- seed 002 --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed002(tmp_path_factory):
    out = tmp_path_factory.mktemp("seed002")
    results, printed = _run(load_example("seed002_softplus"), out)
    return results, printed, out


def test_seed002_slope_by_hand_and_by_symback(seed002):
    results, printed, _ = seed002
    assert results["slope"] == pytest.approx(results["slope by hand"], abs=1e-12)
    assert round(results["slope"], 1) == -15.7
    assert results["slope"] == pytest.approx(-15.6551, abs=5e-5)
    assert "∂SSR/∂b3 = ∂SSR/∂predicted · ∂predicted/∂z(L) · ∂z(L)/∂b3" in printed


def test_seed002_descent_on_b3_ends_at_2_61_after_9_steps(seed002):
    results, printed, _ = seed002
    assert round(results["b3"], 2) == 2.61
    assert results["iterations"] == 9  # the tenth step, under 0.001, is computed and not taken
    rows = results["descent"]
    # new = old − slope·η: the first step goes up to +1.57 (the seed wrote −1.57).
    assert rows[0]["new"] == pytest.approx(1.5655, abs=5e-5)
    assert all(r["new"] == pytest.approx(r["old"] - 0.1 * r["slope"]) for r in rows)
    assert abs(results["stop"]["step"]) < 0.001 <= abs(rows[-1]["step"])
    assert results["stop"]["old"] == results["b3"]
    assert results["b3"] == pytest.approx(results["b3 optimum"], abs=0.001)
    # The seed's 2.196 is two steps of this descent.
    assert results["second step"]["new"] == pytest.approx(2.1917, abs=5e-5)
    assert "Why the seed says 2.21" in printed and "runs away" in printed


def test_seed002_verdicts(seed002):
    statuses = seed002[0]["verdicts"]
    assert len(statuses) == 10
    assert statuses[0] == "wrong" and statuses[-1] == "wrong"
    assert statuses.count("wrong") == 4 and statuses.count("right") == 6
    assert "first wrong line: claim 1" in seed002[1]


def test_seed002_all_seven_parameters_fit_better_than_b3_alone(seed002):
    results, printed, _ = seed002
    assert results["ssr before"] == pytest.approx(20.4236, abs=1e-4)
    assert results["ssr all"] < results["ssr b3 only"] < results["ssr before"]
    assert results["ssr all by rule"] < results["ssr before"]
    assert results["fitted"] == pytest.approx([0.0, 1.0, 0.0], abs=1e-6)
    assert set(results["trained"]) == {"w1", "w2", "w3", "w4", "b1", "b2", "b3"}
    assert "fitted curve: x = 0:" in printed


def test_seed002_reports_are_written(seed002):
    results, _, out = seed002
    names = {Path(p).name for p in results["files"]}
    assert {"seed002_b3.html", "seed002_b3.md", "seed002_b3.tex", "seed002_verdicts.html"} <= names
    markdown = (out / "seed002_b3.md").read_text(encoding="utf-8")
    assert "2.61" in markdown and "−15.7" in markdown  # the descent table's end and the slope
    html = (out / "seed002_b3.html").read_text(encoding="utf-8")
    assert "<math" in html and "http://" not in html.replace("http://www.w3.org/1998/Math/MathML", "")
    if shutil.which("pdflatex") or in_ci():
        assert (out / "seed002_b3.pdf").read_bytes()[:5] == b"%PDF-"


# -- seed 000 --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed000(tmp_path_factory):
    out = tmp_path_factory.mktemp("seed000")
    results, printed = _run(load_example("seed000_dials"), out)
    return results, printed, out


def test_seed000_counts(seed000):
    results, printed, _ = seed000
    assert (results["weights"], results["biases"]) == (13_100, 50)
    assert "12,500 + 400 + 200 = 13,100 dials" in printed


def test_seed000_fast_training_learns(seed000):
    results = seed000[0]
    assert results["epochs"] == 5
    loss = results["loss"]
    assert loss[-1] < loss[0] / 4
    # Measured in fast mode (5 epochs, seed 0): 88.0 % on the 1,000 test digits; chance is 10 %.
    assert results["test accuracy"] > 0.85


def test_seed000_one_step_dials_the_right_answer_up_and_the_worst_wrong_one_down(seed000):
    results = seed000[0]
    before, after = np.array(results["certainties"]), np.array(results["certainties after step"])
    worst = results["highest wrong"]
    assert worst != 3 and before[worst] == max(np.delete(before, 3))
    assert after[3] > before[3] and after[worst] < before[worst]
    held, total = results["step holds"]
    assert total > 50 and held == total


def test_seed000_dials_in_seed001_notation(seed000):
    results, printed, _ = seed000
    name = re.compile(r"^(w\(L(-[12])?\)_\d+_\d+|b\(L(-[12])?\)_\d+)$")
    for key in ("dials before", "dials after"):
        dials = results[key]
        assert len(dials) == 10 and all(name.match(d.name) for d in dials)
        assert [abs(d.partial) for d in dials] == sorted((abs(d.partial) for d in dials), reverse=True)
        for dial in dials:
            assert dial.turn == pytest.approx(-2.0 * dial.partial)
            assert dial.direction == ("up" if dial.partial < 0 else "down")
    assert abs(results["dials after"][0].partial) < abs(results["dials before"][0].partial)
    assert "central differences" in printed and "  1  b(L)_1" in printed


def test_seed000_pictures(seed000):
    results, printed, out = seed000
    if not have_matplotlib():
        if in_ci():
            pytest.fail("matplotlib is not installed (scripts/test.sh installs the plot extra)")
        assert results["pictures"] == [] and PLOT_HINT in printed
        return
    names = sorted(Path(p).name for p in results["pictures"])
    assert names == ["seed000_dials_after.png", "seed000_dials_before.png", "seed000_gradients.png",
                     "seed000_loss.png", "seed000_weights.png"]
    for name in names:
        png = (out / name).read_bytes()
        width, height, _, _ = png_pixels(png)
        assert width >= 300 and height >= 200
        assert distinct_colours(png) > 10, name  # not blank
    # 20 maps of 25×25 in colour: many more colours than a chart of lines.
    assert distinct_colours((out / "seed000_weights.png").read_bytes()) > 100


def test_seed000_without_matplotlib_prints_the_hint(monkeypatch, tmp_path):
    module = load_example("seed000_dials")
    monkeypatch.setattr(module, "have_matplotlib", lambda: False)
    results, printed = _run(module, tmp_path)
    assert PLOT_HINT in printed and results["pictures"] == []
    assert list(tmp_path.iterdir()) == []
    assert results["test accuracy"] > 0.85
