"""Plain-text working: seed 002 as written, errors carried forward, update conventions, slips, the CLI."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from symback import load_spec
from symback.cli import main
from symback.errors import SpecError
from symback.verification.verify import CARRIED, NOT_JUDGED, RIGHT, STATE, UNJUDGED, WRONG
from symback.verification.working import judge, load_working, working_from_text

from . import reference

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SEED002 = (EXAMPLES / "seed002.toml").as_posix()


def _seed002(b3: float) -> float:
    """dSSR/db3 of seed 002 at ``b3`` from the hand-written NumPy backprop (an oracle sharing no code)."""
    spec = load_spec(EXAMPLES / "seed002.toml")
    biases = [b.copy() for b in spec.parameters.biases]
    biases[1][0] = b3
    _, _, db = reference.gradients(
        spec.network.sizes, ["softplus", "identity"], "ssr", spec.parameters.weights, biases, spec.data.X, spec.data.Y
    )
    return float(db[1][0])


def _working(body: str, front: str = "") -> str:
    return f'+++\nspec = "{SEED002}"\nlearning_rate = 0.1\n{front}+++\n{body}'


def _statuses(report) -> dict[int, str]:
    return {v.line: v.status for v in report.verdicts}


# -- seed 002, as written -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_report():
    return judge(load_working(EXAMPLES / "seed002_working.md"))


def _line(report, text: str):
    return next(v for v in report.verdicts if text in v.text)


def test_seed002_working_line_by_line(seed_report) -> None:
    statuses = [(v.text, v.status) for v in seed_report.verdicts]
    assert statuses == [
        ("Residual = Observed - Predicted", RIGHT),
        ("SSR = Sum of (Observed - Predicted)^2", RIGHT),
        ("Predicted = Top Layer + Bottom Layer + Bias (b3)", RIGHT),
        ("dssr/db3 = dssr/dpredicted * dpredicted/db3", RIGHT),
        ("dssr/dpredicted = (Observed - Predicted)^2", WRONG),
        ("dssr/dpredicted = 2*(Observed - Predicted)*(d(Observed - Predicted))/dpredicted)", RIGHT),
        ("dssr/dpredicted = 2*(Observed - Predicted)(-1)", RIGHT),
        ("dssr/dpredicted = -2 (Observed - Predicted)", RIGHT),  # the article's line break, read as one line
        ("dpredicted = Top Layer + Bottom Layer + Bias (b3)", RIGHT),  # a lone differential, read as predicted
        ("dpredicted/db3 = 1", RIGHT),
        ("Finaly dssr/db3 = -2*(Observed - Predicted) * 1", RIGHT),
        ("dssr/db3 = Σ(-2*(Observed-Predicted))", RIGHT),
        ("dssr/db3 = -2 * [(Observed1 - Predicted1) * 1 + (Observed2 - Predicted2) * 1 + (Observed3 - Predicted3) * 1]",
         RIGHT),
        ("dssr/db3 = -2 * [(Residual1) + (Residual2) + (Residual3)]", RIGHT),
        ("dssr/db3 = -2 * (ResidualSum)", RIGHT),
        ("For our training data I got slope = -15.7", RIGHT),
        ("step size = slope x learning rate", RIGHT),
        ("step size = -15.7 x 0.1 = -1.57", RIGHT),
        # The update rule itself adds the step: the slip is marked where it is first written ...
        ("new b3 = old b3 + step size", WRONG),
        # ... and the number it gives is the first wrong value (numbers carry only from numbers).
        ("new b3 = 0 + (-1.57) = -1.57", WRONG),
        ("slop = -6.26", RIGHT),
        ("step size = -6.26 x 0.1 = -0.626", RIGHT),
        ("new b3 = -1.57 + (-0.626) = -2.196", WRONG),
        ("We found the optimal b3 = 2.21", WRONG),
    ]
    assert seed_report.exit_status == 1
    assert seed_report.first_wrong.text == "dssr/dpredicted = (Observed - Predicted)^2"


def test_seed002_working_agrees_with_the_claims_file() -> None:
    from symback.verification.claims import load_claims
    from symback.verification.verify import verify

    claims = verify(load_claims(EXAMPLES / "seed002_claims.toml")).verdicts
    working = judge(load_working(EXAMPLES / "seed002_working.md"))
    # The claims file's lines and the working's lines that say the same thing.
    same = {0: "dssr/dpredicted = (Observed - Predicted)^2", 2: "2*(Observed - Predicted)(-1)", 3: "dpredicted/db3 = 1",
            4: "dssr/dpredicted * dpredicted/db3", 5: "-2*(Observed - Predicted) * 1", 6: "slope = -15.7",
            7: "0 + (-1.57)", 9: "optimal b3"}
    for index, text in same.items():
        assert _line(working, text).status == claims[index].status, text
    claim_step = {c.part: c for c in claims[7].checks}
    assert claim_step["step"].status == RIGHT and _line(working, "-15.7 x 0.1").status == RIGHT


def test_seed002_article_as_plain_text_gives_the_issues_verdicts(seed_report) -> None:
    """Issue 13's list, line by line, beside today's claims file; every other math line right (or carried)."""
    from symback.verification.claims import load_claims
    from symback.verification.verify import verify

    claims = verify(load_claims(EXAMPLES / "seed002_claims.toml")).verdicts
    squared = _line(seed_report, "dssr/dpredicted = (Observed - Predicted)^2")
    assert squared.status == WRONG == claims[0].status
    slope, step = _line(seed_report, "slope = -15.7"), _line(seed_report, "step size = -15.7 x 0.1 = -1.57")
    claim_parts = {c.part: c for c in claims[7].checks}
    assert slope.status == RIGHT == claim_parts["slope"].status
    assert step.status == RIGHT == claim_parts["step"].status and step.checks[-1].claimed == "-1.57"
    added = _line(seed_report, "new b3 = 0 + (-1.57) = -1.57")
    assert added.status == WRONG == claim_parts["new"].status
    assert "the step was added" in added.message and "the step was added" in claim_parts["new"].note
    again = _line(seed_report, "-2.196")
    assert again.status == WRONG == {c.part: c for c in claims[8].checks}["new"].status
    optimum = _line(seed_report, "optimal b3 = 2.21")
    assert optimum.status == WRONG == claims[9].status
    assert optimum.checks[0].expected.startswith("2.61") and "2.61" in claims[9].checks[-1].expected
    listed = {squared.line, slope.line, step.line, added.line, again.line, optimum.line}
    # The one more wrong line: the article's own update rule, new b3 = old b3 + step size, adds the step too.
    rule = _line(seed_report, "new b3 = old b3 + step size")
    assert rule.status == WRONG and rule.slips[0].startswith("the step added instead of subtracted")
    others = [v for v in seed_report.verdicts if v.line not in listed | {rule.line}]
    assert len(others) == 17 and all(v.status in (RIGHT, CARRIED) for v in others), [
        (v.line, v.status) for v in others if v.status not in (RIGHT, CARRIED)]


def test_seed002_working_numbers_match_an_independent_oracle(seed_report) -> None:
    slope = _seed002(0.0)
    assert _line(seed_report, "slope = -15.7").checks[0].expected == f"-15.7 ({slope:.6g})"
    step = _line(seed_report, "-15.7 x 0.1 = -1.57").checks[1]
    assert step.status == RIGHT and step.expected == f"-1.57 ({0.1 * slope:.6g})"
    # -6.26 is the slope at the right b3 = 1.5655 (at the author's -1.57 it would be -25.1)
    right_b3 = -0.1 * slope
    assert round(_seed002(right_b3), 2) == -6.26 and round(_seed002(-1.57), 1) == -25.1
    assert "b3 = 1.56551" in _line(seed_report, "slop = -6.26").state
    b3 = right_b3 - 0.1 * _seed002(right_b3)
    for _ in range(1000):  # plain gradient descent from there; the step under 0.001 ends it, not taken
        step = 0.1 * _seed002(b3)
        if abs(step) < 0.001:
            break
        b3 -= step
    assert _line(seed_report, "optimal b3").checks[0].expected == f"2.61 ({b3:.6g})"


def test_seed002_working_names_the_slips(seed_report) -> None:
    first = _line(seed_report, "dssr/dpredicted = (Observed - Predicted)^2")
    assert first.slips and first.slips[0].startswith("the function written instead of its derivative")
    for text in ("new b3 = old b3 + step size", "new b3 = 0 + (-1.57)", "-2.196"):
        verdict = _line(seed_report, text)
        assert verdict.slips and "the step was added" in verdict.slips[0], text
    added = _line(seed_report, "new b3 = 0 + (-1.57)")
    assert added.checks[0].status == WRONG and added.checks[0].expected == f"{-0.1 * _seed002(0.0):.6g}"
    # The "= -1.57" after "0 + (-1.57)" follows from the member before it: the line is wrong once, not twice.
    assert added.checks[1].status == CARRIED and added.carried_from == ()


def test_seed002_verdicts_are_short_and_the_derivation_is_one_flag_away(seed_report) -> None:
    text = seed_report.text()
    assert "chain rule: ∂SSR/∂b3 = ∂SSR/∂predicted · ∂predicted/∂z(L) · ∂z(L)/∂b3" in text
    assert "assembled:" not in text and "∂SSR/∂predicted = ∂SSR/∂predicted" not in text
    assert "assembled:" in seed_report.text(explain=True)
    assert "not judged (no equation): line(s) 18, 20, 22-23" in text
    assert "written (Observed - Predicted)^2, right: −2(observed − predicted)" in text
    explained = seed_report.text(explain=True)
    # one derivation per quantity and state: line 96's ∂SSR/∂b3 at b3 = 0 is line 94's
    assert "(the derivation is the one shown under line 94)" in explained
    for line in explained.splitlines():  # never a line that equals itself (∂SSR/∂predicted = ∂SSR/∂predicted)
        members = [m.strip() for m in line.split(":")[-1].split(" = ")]
        assert len(members) < 2 or len(set(members)) == len(members), line


# -- errors carried forward, for numbers --------------------------------------------------------------


def test_one_slip_in_a_number_gives_one_wrong_line_and_the_rest_is_carried() -> None:
    slope = _seed002(0.0)
    half = f"{slope / 2:.3g}"  # the factor 2 of the square dropped
    step = f"{0.1 * float(half):.3g}"
    new = f"{-float(step):.3g}"
    later = f"{_seed002(float(new)):.3g}"  # the next slope, rightly computed at the author's (wrong) b3
    report = judge(working_from_text(_working(
        f"slope = {half}\n\nstep size = {half} x 0.1 = {step}\n\nnew b3 = 0 - ({step}) = {new}\n\n"
        f"slope = {later}\n", 'parameter = "b3"\n')))
    assert [v.status for v in report.verdicts] == [WRONG, CARRIED, CARRIED, CARRIED], report.text()
    assert report.verdicts[0].slips[0].startswith("the factor 2 of a square dropped")
    slip = report.verdicts[0].line
    assert report.verdicts[1].carried_from == (slip,) and report.verdicts[3].carried_from == (slip,)
    # A line never follows from itself.
    assert all(v.line not in v.carried_from for v in report.verdicts)


def test_rounded_values_of_the_author_are_not_errors() -> None:
    report = judge(working_from_text(_working("slope = -16\n\nstep = -16 x 0.1 = -1.6\n", 'parameter = "b3"\n')))
    assert [v.status for v in report.verdicts] == [RIGHT, RIGHT], report.text()


def test_an_arithmetic_slip_is_named() -> None:
    report = judge(working_from_text(_working("step size = -15.7 x 0.1 = -1.75\n", 'parameter = "b3"\n')))
    (verdict,) = report.verdicts
    assert verdict.status == WRONG and "arithmetic: -15.7 x 0.1 = -1.57" in verdict.message


# -- update conventions -------------------------------------------------------------------------------

TWO = """+++
learning_rate = 0.5
updates = "{updates}"
[network]
layers = [1, 1, 1]
activations = "sigmoid"
cost = "squared_error"
[names]
"w(L)" = "w2"
"b(L)" = "b2"
"w(L-1)" = "w1"
[parameters]
w1 = 0.8
"b(L-1)" = 0.1
w2 = -1.2
b2 = 0.3
[data]
x = [1.0]
y = [0.2]
+++
"""


def _two_partials(spec_params: dict[str, float]) -> tuple[float, float]:
    w1, b1, w2, b2 = (spec_params[k] for k in ("w1", "b1", "w2", "b2"))
    _, dW, _ = reference.gradients([1, 1, 1], ["sigmoid", "sigmoid"], "squared_error",
                                   [np.array([[w1]]), np.array([[w2]])], [np.array([b1]), np.array([b2])],
                                   np.array([[1.0]]), np.array([[0.2]]))
    return float(dW[1][0, 0]), float(dW[0][0, 0])


@pytest.mark.parametrize("updates", ["simultaneous", "sequential"])
def test_backpropagation_order_is_right_when_updates_are_simultaneous(updates: str) -> None:
    start = {"w1": 0.8, "b1": 0.1, "w2": -1.2, "b2": 0.3}
    dw2, dw1 = _two_partials(start)
    new_w2 = -1.2 - 0.5 * dw2
    after = _two_partials({**start, "w2": new_w2})[1]  # dC/dw1 with the updated w2
    body = (f"dC/dw2 = {dw2:.5g}\nnew w2 = -1.2 - 0.5 x ({dw2:.5g}) = {new_w2:.5g}\n"
            f"dC/dw1 = {dw1:.5g}\ndC/dw1 = {after:.5g}\n")
    report = judge(working_from_text(TWO.format(updates=updates) + body))
    statuses = [v.status for v in report.verdicts]
    if updates == "simultaneous":  # every partial of the step at the old weights, as backpropagation does
        assert statuses == [RIGHT, RIGHT, RIGHT, WRONG], report.text()
        assert "an updated weight used where the old one was needed" in report.verdicts[3].slips[0]
        assert "before the update(s) of line(s) 2" in report.verdicts[2].state
    else:
        assert statuses == [RIGHT, RIGHT, WRONG, RIGHT], report.text()
        assert "after the update(s) of line(s) 2" in report.verdicts[3].state


def _two(spec_params: dict[str, float]) -> tuple[float, float, float]:
    """(C, dC/dw2, dC/dw1) of the TWO network from the NumPy oracle."""
    w1, b1, w2, b2 = (spec_params[k] for k in ("w1", "b1", "w2", "b2"))
    cost, dW, _ = reference.gradients([1, 1, 1], ["sigmoid", "sigmoid"], "squared_error",
                                      [np.array([[w1]]), np.array([[w2]])], [np.array([b1]), np.array([b2])],
                                      np.array([[1.0]]), np.array([[0.2]]))
    return float(cost), float(dW[1][0, 0]), float(dW[0][0, 0])


@pytest.mark.parametrize("updates", ["simultaneous", "sequential"])
def test_the_cost_after_an_update_block_is_at_the_new_weights(updates: str) -> None:
    """The rule (working.UPDATE_RULE): a partial with respect to a node stays at the old weights; the cost's own
    value after the updates of a step is what the step changed, so it is judged at the new weights."""
    start = {"w1": 0.8, "b1": 0.1, "w2": -1.2, "b2": 0.3}
    cost, dw2, dw1 = _two(start)
    new = {**start, "w2": -1.2 - 0.5 * dw2}
    step_dw1 = _two(new)[2] if updates == "sequential" else dw1  # sequential: w1's step at the new w2
    new["w1"] = 0.8 - 0.5 * step_dw1
    new_cost = _two(new)[0]
    assert abs(new_cost - cost) > 1e-3  # the two states are told apart at 5 digits
    body = (f"C = {cost:.5g}\ndC/dw2 = {dw2:.5g}\ndC/dw1 = {dw1:.5g}\n"
            f"new w2 = {new['w2']:.5g}\nnew w1 = {new['w1']:.5g}\nC = {new_cost:.5g}\n")
    report = judge(working_from_text(TWO.format(updates=updates) + body))
    assert [v.status for v in report.verdicts] == [RIGHT] * 6, report.text()
    assert "after the update(s) of line(s) 24, 25" in report.verdicts[5].state, report.text()
    old = judge(working_from_text(TWO.format(updates=updates) + body.replace(f"C = {new_cost:.5g}", f"C = {cost:.5g}")))
    assert old.verdicts[5].status == WRONG, old.text()  # the old cost is no longer the cost


def test_a_node_partial_between_updates_stays_at_the_old_weights() -> None:
    start = {"w1": 0.8, "b1": 0.1, "w2": -1.2, "b2": 0.3}
    _, dw2, _ = _two(start)
    s = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    a1 = s(0.8 + 0.1)
    dc_da1 = 2 * (s(-1.2 * a1 + 0.3) - 0.2) * s(-1.2 * a1 + 0.3) * (1 - s(-1.2 * a1 + 0.3)) * -1.2  # old w2
    body = f"new w2 = {-1.2 - 0.5 * dw2:.5g}\ndC/da(L-1) = {dc_da1:.5g}\n"
    report = judge(working_from_text(TWO.format(updates="simultaneous") + body))
    assert [v.status for v in report.verdicts] == [RIGHT, RIGHT], report.text()
    assert "before the update(s) of line(s) 21" in report.verdicts[1].state, report.text()


def test_claims_files_follow_the_same_rule_for_the_cost(tmp_path: Path) -> None:
    from symback.verification.claims import claims_from_text
    from symback.verification.verify import verify

    start = {"w1": 0.8, "b1": 0.1, "w2": -1.2, "b2": 0.3}
    _, dw2, _ = _two(start)
    new_cost = _two({**start, "w2": -1.2 - 0.5 * dw2})[0]
    front = TWO.format(updates="simultaneous").replace("+++\n", "").replace('updates = "simultaneous"\n', "")
    claims = front.replace("learning_rate = 0.5\n", "") + (
        f'\n[[claim]]\nupdate = "w2"\nlearning_rate = 0.5\nnew = "{-1.2 - 0.5 * dw2:.5g}"\n'
        f'[[claim]]\nquantity = "C"\nvalue = "{new_cost:.5g}"\n')
    report = verify(claims_from_text(claims))
    assert [v.status for v in report.verdicts] == [RIGHT, RIGHT], report.text()
    assert "after the update(s) of claim(s) 1" in report.verdicts[1].state


# -- names the working defines, prose, not judged ---------------------------------------------------

MAZUR = """+++
[network]
layers = [1, 2]
activations = "sigmoid"
cost = "half_squared_error"
[names]
"a(L)_0" = "out_o1"
"a(L)_1" = "out_o2"
"y_0" = "target_o1"
"y_1" = "target_o2"
"w(L)_0_0" = "w5"
[parameters]
w5 = 0.4
"w(L)_1_0" = 0.45
"b(L)_0" = 0.6
"b(L)_1" = 0.6
[data]
x = [[0.59]]
y = [[0.01, 0.99]]
+++
The error for each output neuron:
E_o1 = 1/2 (target_o1 - out_o1)^2
E_o2 = ½ (target_o2 - out_o2)^2
E_total = E_o1 + E_o2 = {total:.9f}
dE_total/dout_o1 = −(target_o1 − out_o1) = {d:.8f}
∂E_total/∂w5 = dE_total/dout_o1 · dout_o1/dz(L)_0 · dz(L)_0/dw5 = {dw5:.8f}
"""


def test_names_the_working_defines_and_the_cost_in_other_spellings() -> None:
    z = np.array([0.4 * 0.59 + 0.6, 0.45 * 0.59 + 0.6])
    out = 1 / (1 + np.exp(-z))
    target = np.array([0.01, 0.99])
    total = float(0.5 * np.sum((target - out) ** 2))
    d = float(out[0] - target[0])
    dw5 = d * out[0] * (1 - out[0]) * 0.59
    text = MAZUR.replace("½", "1/2").format(total=total, d=d, dw5=dw5)
    report = judge(working_from_text(text))
    assert [v.status for v in report.verdicts] == [STATE, STATE, RIGHT, RIGHT, RIGHT], report.text()
    assert report.verdicts[0].checks[0].part == "defines"
    assert report.prose == ((21, "The error for each output neuron:"),)
    wrong = judge(working_from_text(text.replace(f"{dw5:.8f}", f"{dw5 / (out[0] * (1 - out[0])):.8f}")))
    assert wrong.verdicts[-1].status == WRONG and wrong.verdicts[-1].slips[0].startswith("σ′(z) left out")


def test_prose_is_never_fatal_and_unreadable_math_is_listed_with_its_reason() -> None:
    report = judge(working_from_text(_working("Hello.\nfoo bar = baz qux\nslope = -15.7\n", 'parameter = "b3"\n')))
    assert [v.status for v in report.verdicts] == [NOT_JUDGED, RIGHT]
    assert "cannot read" in report.verdicts[0].message
    assert report.exit_status == 0


def test_a_descent_that_does_not_converge_cannot_be_judged() -> None:
    report = judge(working_from_text(_working("the optimal b3 = 2.61\n", 'parameter = "b3"\nmax_steps = 3\n')))
    assert report.verdicts[0].status == UNJUDGED and "did not reach" in report.verdicts[0].message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slope = 1\n", "no network"),
        ('+++\nspec = "x.toml"\n', "never closed"),
        (f'+++\nspec = "{SEED002}"\ncolour = 1\n+++\n', "unknown key or section 'colour'"),
        (f'+++\nspec = "{SEED002}"\nupdates = "later"\n+++\n', "simultaneous"),
        (f'+++\nspec = "{SEED002}"\nlearning_rate = -1\n+++\n', "positive"),
    ],
)
def test_an_unusable_front_matter_is_one_spec_error(text: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        working_from_text(text)
    assert message in str(caught.value)


# -- command line -------------------------------------------------------------------------------------


def test_cli_verify_reads_plain_text_working(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(EXAMPLES / "seed002_working.md")]) == 1
    out = capsys.readouterr().out
    assert "first wrong line: line 58" in out and "the step was added" in out
    assert main(["verify", str(EXAMPLES / "seed002_working.md"), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["counts"] == {RIGHT: 19, WRONG: 5}
    assert data["not_judged"][0] == {"line": 18, "text": "Why Do Neural Networks Need the Chain Rule? How do we apply it?"}
    path = tmp_path / "w.txt"
    path.write_text(_working("slope = -15.7\n", 'parameter = "b3"\n'), encoding="utf-8")
    assert main(["verify", str(path)]) == 0
    bad = tmp_path / "bad.md"
    bad.write_text("+++\nspec = \"nope.toml\"\n+++\nslope = 1\n", encoding="utf-8")
    assert main(["verify", str(bad)]) == 2
    assert capsys.readouterr().err.startswith("symback: error: ")


def test_html_and_tex_of_a_working(tmp_path: Path) -> None:
    from symback.verification.verify import render

    report = judge(load_working(EXAMPLES / "seed002_working.md"))
    html = render(report, "html")
    assert "new b3 = 0 + (-1.57) = -1.57" in html and "the step was added" in html
    assert "<strong>Line 96</strong>" in html and "Claim 96" not in html  # a working's verdicts are about lines
    assert "judged at the weights after the update(s) of line(s) 96" in html  # and say at which weights
    tex = render(report, "tex")
    assert "\\begin{longtable}" in tex and "Line 58" in tex
    assert "## Line 58: wrong" in render(report, "md")


# -- property: working generated from the true derivation, with and without one slip ------------------

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from symback import Network, Parameters  # noqa: E402

_SPELLINGS = ["dC/d{}", "∂C/∂{}", "d(C)/d({})", "dE/d{}", "∂E_total/∂{}", "dcost/d{}"]
_NEW = ["new {}", "{}+", "updated {}"]
_SLIPS = {  # slip -> (which line it is made in, the name the verdict must give)
    "factor_two": ("slope", "the factor 2 of a square dropped"),
    "sign_flipped": ("slope", "the sign of (a − y) flipped"),
    "sigma_prime_left_out": ("slope", "σ′(z) left out"),
    "sigma_for_sigma_prime": ("slope", "σ(z) written for σ′(z)"),
    "sigma_prime_at_a": ("slope", "σ′ taken at a instead of z"),
    "step_added": ("update", "the step added instead of subtracted"),
    "learning_rate_missing": ("update", "the learning rate left out"),
    "learning_rate_twice": ("update", "the learning rate applied twice"),
}
_OUTPUT_SLIPS = ("sigma_prime_left_out", "sigma_for_sigma_prime", "sigma_prime_at_a")  # made at σ′(z(L))


def _output_slope(sizes, activations, cost, params: Parameters, X, Y, ref, slip: str) -> float:
    """∂C/∂(an output-layer w or b) with σ′(z(L)) replaced as ``slip`` does, by a NumPy forward pass."""
    a, acts, zs = X, [X], []
    for layer, name in enumerate(activations):
        z = a @ params.weights[layer].T + params.biases[layer]
        a = reference.ACTIVATIONS[name][0](z)
        zs.append(z)
        acts.append(a)
    f, df = reference.ACTIVATIONS[activations[-1]]
    _, dterm, _, reduction = reference.COSTS[cost]
    factor = {"sigma_prime_left_out": 1.0, "sigma_for_sigma_prime": f(zs[-1]), "sigma_prime_at_a": df(a)}[slip]
    below = acts[-2][:, ref.k] if ref.kind == "w" else 1.0
    per_example = (dterm(a, Y) * factor)[:, 0] * below
    return float(per_example.sum() / (len(X) if reduction == "mean" else 1))


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}g}"


@st.composite
def _cases(draw):
    sizes = [draw(st.integers(1, 2)), draw(st.integers(1, 2)), 1]
    activations = [draw(st.sampled_from(["sigmoid", "tanh", "softplus"])) for _ in range(2)]
    cost = draw(st.sampled_from(["squared_error", "ssr", "half_squared_error"]))
    seed = draw(st.integers(0, 2**31 - 1))
    digits = draw(st.lists(st.integers(3, 6), min_size=8, max_size=8))
    spellings = draw(st.lists(st.sampled_from(_SPELLINGS), min_size=3, max_size=3))
    new = draw(st.sampled_from(_NEW))
    slip = draw(st.sampled_from([None, *_SLIPS]))
    return sizes, activations, cost, seed, digits, spellings, new, slip


def _generate(case):
    """A working written from the true derivation (NumPy oracle), with ``slip`` made and followed through."""
    sizes, activations, cost, seed, digits, spellings, new_spelling, slip = case
    if slip == "factor_two" and cost == "half_squared_error":
        slip = "sign_flipped"  # ½(a − y)² has no 2 to drop
    rng = np.random.default_rng(seed)
    net = Network(sizes, activations, cost)
    params = Parameters.initialize(net, "uniform", seed=seed)
    X = rng.uniform(-1.5, 1.5, size=(2, sizes[0]))
    Y = rng.uniform(0.1, 0.9, size=(2, 1))
    refs = list(net.parameter_refs())
    theta, other = (refs[i] for i in rng.choice(len(refs), size=2, replace=False))
    if slip in _OUTPUT_SLIPS:  # a slip at σ′(z(L)): the slope of an output-layer parameter
        outputs = [r for r in refs if r.layer == net.depth]
        theta = outputs[rng.integers(len(outputs))]
        other = next(r for r in refs if r != theta)

    def grad(p: Parameters, ref) -> float:
        _, dW, db = reference.gradients(sizes, activations, cost, p.weights, p.biases, X, Y)
        return float(dW[ref.layer - 1][ref.j, ref.k] if ref.kind == "w" else db[ref.layer - 1][ref.j])

    front = ["+++", "learning_rate = 0.1", "[network]", f"layers = {sizes}", f"activations = {json.dumps(activations)}",
             f'cost = "{cost}"', "[parameters]"]
    front += [f'"{net.canonical_name(r)}" = {params.get(r)!r}' for r in refs]
    front += ["[data]", f"x = {X.tolist()!r}", f"y = {Y.tolist()!r}", "+++"]
    name, other_name = net.canonical_name(theta), net.canonical_name(other)
    slope = grad(params, theta)
    written = {"factor_two": slope / 2, "sign_flipped": -slope}.get(slip, slope)
    if slip in _OUTPUT_SLIPS:
        written = _output_slope(sizes, activations, cost, params, X, Y, theta, slip)
    slope_text = _fmt(written, digits[0])
    old = params.get(theta)
    old_text = _fmt(old, 6)
    if slip == "step_added":
        arithmetic, new = f"{old_text} + 0.1 x ({slope_text})", old + 0.1 * float(slope_text)
    elif slip == "learning_rate_missing":
        arithmetic, new = f"{old_text} - ({slope_text})", old - float(slope_text)
    elif slip == "learning_rate_twice":
        arithmetic, new = f"{old_text} - 0.1 x 0.1 x ({slope_text})", old - 0.01 * float(slope_text)
    else:
        arithmetic, new = f"{old_text} - 0.1 x ({slope_text})", old - 0.1 * float(slope_text)
    new_text = _fmt(new, digits[1])
    lines = [
        f"The slope: {spellings[0].format(name)} = {slope_text}",
        f"{spellings[1].format(other_name)} = {_fmt(grad(params, other), digits[2])}",
        f"{new_spelling.format(name)} = {arithmetic} = {new_text}",
        "Then the slope again, after the step.",
    ]
    author = params.copy()
    author.set(theta, float(new_text))
    true_after = params.copy()
    true_after.set(theta, old - 0.1 * slope)
    after = grad(author, theta) if slip else grad(true_after, theta)
    after_text = _fmt(after, digits[3])
    lines.append(f"{spellings[2].format(name)} = {after_text}")
    text = "\n".join(front + lines) + "\n"
    # A slip that changes nothing at the digits written is not a slip the working shows.
    exact = {"slope": slope, "update": old - 0.1 * slope, "after": grad(true_after, theta)}
    return text, slip, exact, {"slope": slope_text, "update": new_text, "after": after_text}


def _differs(written: str, exact: float) -> bool:
    from symback.verification.claims import ClaimValue

    value = ClaimValue.parse(written)
    return abs(value.value - exact) > 4 * value.half_unit + 1e-6 * abs(exact)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_generated_working_is_right_and_one_slip_is_marked_once_and_carried(case) -> None:
    text, slip, exact, written = _generate(case)
    report = judge(working_from_text(text))
    statuses = [v.status for v in report.verdicts]
    if slip is None:
        assert statuses == [RIGHT] * 4, report.text()
        return
    where, name = _SLIPS[slip]
    assume(_differs(written[where], exact[where]) and _differs(written["after"], exact["after"]))
    if where == "slope":
        assume(_differs(written["update"], exact["update"]))
        expected = [WRONG, RIGHT, CARRIED, CARRIED]
    else:
        expected = [RIGHT, RIGHT, WRONG, CARRIED]
    assert statuses == expected, report.text()
    wrong = report.verdicts[expected.index(WRONG)]
    assert wrong.slips and wrong.slips[0].startswith(name), report.text()
    for verdict in report.verdicts:
        if verdict.status == CARRIED:
            assert verdict.carried_from == (wrong.line,), report.text()


# -- every slip of the table, on a 1-2-1 sigmoid network (values by hand in NumPy) ----------------------

_NET121 = """+++
learning_rate = 0.5
[network]
layers = [1, 2, 1]
activations = "sigmoid"
cost = "squared_error"
[parameters]
"w(L-1)_0_0" = 0.7
"w(L-1)_1_0" = -0.4
"b(L-1)_0" = 0.1
"b(L-1)_1" = 0.2
"w(L)_0_0" = 1.3
"w(L)_0_1" = -0.9
"b(L)" = 0.05
[data]
x = [0.8]
y = [0.3]
+++
"""


def _by_hand() -> dict[str, float]:
    s = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    ds = lambda v: s(v) * (1 - s(v))  # noqa: E731
    x, y = 0.8, 0.3
    w1, b1, w2, b2 = np.array([0.7, -0.4]), np.array([0.1, 0.2]), np.array([1.3, -0.9]), 0.05
    z1 = w1 * x + b1
    a1 = s(z1)
    z2 = w2 @ a1 + b2
    a2 = s(z2)
    e = 2 * (a2 - y)
    paths = e * ds(z2) * w2 * ds(z1) * w1  # ∂C/∂x, one term per hidden neuron
    return {
        "dw": e * ds(z2) * w2[0] * ds(z1[0]) * x,  # ∂C/∂w(L-1)_0_0
        "no_sigma_prime": e * w2[0] * ds(z1[0]) * x,
        "sigma_for_prime": e * s(z2) * w2[0] * ds(z1[0]) * x,
        "prime_at_a": e * ds(a2) * w2[0] * ds(z1[0]) * x,
        "dw2": e * ds(z2) * a1[0],  # ∂C/∂w(L)_0_0
        "wrong_layer": e * ds(z2) * x,
        "dx": float(paths.sum()),
        "one_path": float(paths[1]),
        "db2": e * ds(z2),
    }


@pytest.mark.parametrize(
    ("line", "key", "slip"),
    [
        ("dC/dw(L-1)_0_0 = {}", "no_sigma_prime", "σ′(z) left out"),
        ("dC/dw(L-1)_0_0 = {}", "sigma_for_prime", "σ(z) written for σ′(z)"),
        ("dC/dw(L-1)_0_0 = {}", "prime_at_a", "σ′ taken at a instead of z"),
        ("dC/dw(L)_0_0 = {}", "wrong_layer", "a factor from the wrong layer"),
        ("dC/dx = {}", "one_path", "one path of a sum over paths left out"),
    ],
)
def test_each_partial_slip_is_named(line: str, key: str, slip: str) -> None:
    hand = _by_hand()
    right = judge(working_from_text(_NET121 + "dC/dw(L-1)_0_0 = {:.6g}\ndC/dw(L)_0_0 = {:.6g}\ndC/dx = {:.6g}\n".format(
        hand["dw"], hand["dw2"], hand["dx"])))
    assert [v.status for v in right.verdicts] == [RIGHT] * 3, right.text()
    report = judge(working_from_text(_NET121 + line.format(f"{hand[key]:.6g}") + "\n"))
    (verdict,) = report.verdicts
    assert verdict.status == WRONG and verdict.slips and verdict.slips[0].startswith(slip), report.text()


def test_the_learning_rate_applied_twice_is_named() -> None:
    db2 = _by_hand()["db2"]
    new = 0.05 - 0.25 * db2
    report = judge(working_from_text(_NET121 + f"new b(L) = 0.05 - 0.25 x {db2:.6g} = {new:.6g}\n"))
    (verdict,) = report.verdicts
    assert verdict.status == WRONG and verdict.slips[0].startswith("the learning rate applied twice"), report.text()


def test_a_symbolic_slip_is_named_beside_the_right_form() -> None:
    report = judge(working_from_text(_NET121 + "dC/dz(L) = 2(a(L) - y)\ndC/dz(L) = 2(a(L) - y) σ′(z(L))\n"))
    wrong, right = report.verdicts
    assert right.status == RIGHT
    assert wrong.status == WRONG and wrong.slips[0].startswith("σ′(z) left out")
    assert "written 2(a(L) - y), right: " in wrong.message


def test_the_readme_table_of_the_seed002_working_is_what_symback_says(seed_report) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Plain-text working"):]
    section = section[: section.index("`symback check SPEC`")]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 6
    by_line = {v.line: v for v in seed_report.verdicts}
    for number, written, verdict in rows:
        found = by_line[int(number.strip("| "))]
        assert found.text == written
        status, _, rest = verdict.rstrip(" |").partition(":")
        status = status.split(",")[0]
        assert found.status == status
        for figure in re.findall(r"-?\d+\.\d+", rest):
            assert figure in found.message or figure in found.state, (figure, found.message)
    others = [v for v in seed_report.verdicts if v.line not in {int(r[0].strip("| ")) for r in rows}]
    stated = int(re.search(r"The other (\d+) lines with an equation are right", section).group(1))
    assert sum(v.status == RIGHT for v in others) == stated == len(others)
    assert "(the slope −15.7 is −15.6551, the step −1.57 is\n−1.56551)" in section
    assert _line(seed_report, "slope = -15.7").checks[0].expected == "-15.7 (-15.6551)"
    assert _line(seed_report, "-15.7 x 0.1 = -1.57").checks[1].expected == "-1.57 (-1.56551)"


def test_the_tex_of_a_working_with_greek_letters_compiles(tmp_path: Path) -> None:
    import subprocess

    from symback.verification.verify import render

    from .tools import require_program

    body = "dC/dz(L) = 2(a(L) - y)\nσ′(z(L)) = a(L)(1 - a(L)) ≈ 0.2\nstep = η δ\n"
    report = judge(working_from_text(_NET121.replace("learning_rate = 0.5", 'learning_rate = 0.5\nparameter = "b(L)"')
                                     + body))
    target = tmp_path / "w.tex"
    target.write_text(render(report, "tex"), encoding="utf-8")
    pdflatex = require_program("pdflatex")
    result = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", target.name],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]


# -- a published 2-2-2 worked example, as its author wrote it ----------------------------------------

#: M. Mazur, "A Step by Step Backpropagation Example" (2015): its own numbers, computed by its author,
#: are the oracle here (only the front matter is added; Mazur's shared biases are two equal biases).
MAZUR_222 = """+++
learning_rate = 0.5
[network]
layers = [2, 2, 2]
activations = "sigmoid"
cost = "half_squared_error"
[names]
"w(1)_0_0" = "w1"
"w(1)_0_1" = "w2"
"w(1)_1_0" = "w3"
"w(1)_1_1" = "w4"
"w(2)_0_0" = "w5"
"w(2)_0_1" = "w6"
"w(2)_1_0" = "w7"
"w(2)_1_1" = "w8"
"z(1)_0" = "net_h1"
"a(1)_0" = "out_h1"
"z(1)_1" = "net_h2"
"a(1)_1" = "out_h2"
"z(2)_0" = "net_o1"
"a(2)_0" = "out_o1"
"z(2)_1" = "net_o2"
"a(2)_1" = "out_o2"
"x_0" = "i1"
"x_1" = "i2"
"y_0" = "target_o1"
"y_1" = "target_o2"
[parameters]
w1 = 0.15
w2 = 0.20
w3 = 0.25
w4 = 0.30
"b(1)_0" = 0.35
"b(1)_1" = 0.35
w5 = 0.40
w6 = 0.45
w7 = 0.50
w8 = 0.55
"b(2)_0" = 0.60
"b(2)_1" = 0.60
[data]
x = [[0.05, 0.10]]
y = [[0.01, 0.99]]
+++
The Forward Pass
net_h1 = w1 * i1 + w2 * i2 + b(1)_0 * 1
net_h1 = 0.15 * 0.05 + 0.2 * 0.1 + 0.35 * 1 = 0.3775
out_h1 = 1/(1+e^-net_h1) = 1/(1+e^-0.3775) = 0.593269992
out_h2 = 0.596884378
out_o1 = 0.75136507
E_o1 = 1/2(target_o1 - out_o1)^2 = 1/2(0.01 - 0.75136507)^2 = 0.274811083
E_o2 = 0.023560026
E_total = E_o1 + E_o2 = 0.274811083 + 0.023560026 = 0.298371109
∂E_total/∂w5 = ∂E_total/∂out_o1 * ∂out_o1/∂net_o1 * ∂net_o1/∂w5
∂E_total/∂out_o1 = -(target_o1 - out_o1) = -(0.01 - 0.75136507) = 0.74136507
∂out_o1/∂net_o1 = out_o1(1 - out_o1) = 0.75136507(1 - 0.75136507) = 0.186815602
∂net_o1/∂w5 = out_h1 = 0.593269992
∂E_total/∂w5 = 0.74136507 * 0.186815602 * 0.593269992 = 0.082167041
w5+ = w5 - η * ∂E_total/∂w5 = 0.4 - 0.5 * 0.082167041 = 0.35891648
w6+ = 0.408666186
w7+ = 0.511301270
w8+ = 0.561370121
∂E_total/∂w1 = 0.000438568
w1+ = w1 - η * ∂E_total/∂w1 = 0.15 - 0.5 * 0.000438568 = 0.149780716
"""


def test_a_published_2_2_2_worked_example_is_right_as_written() -> None:
    report = judge(working_from_text(MAZUR_222))
    statuses = {v.line: v.status for v in report.verdicts}
    assert [s for s in statuses.values() if s not in (RIGHT, NOT_JUDGED)] == [], report.text()
    assert sum(s == RIGHT for s in statuses.values()) == 18
    # E_o2 is given as a number only ("repeating this process for o2"): not judged, and said why.
    not_judged = [v for v in report.verdicts if v.status == NOT_JUDGED]
    assert len(not_judged) == 1 and "E_o2 is given a number, not a formula" in not_judged[0].message
    # ∂E_total/∂w1 is taken at the old w5 … w8 (simultaneous updates), as the article says it must be.
    hidden = next(v for v in report.verdicts if v.text.startswith("∂E_total/∂w1"))
    assert "before the update(s) of line(s)" in hidden.state


def test_a_slip_in_the_published_example_is_marked_once_and_carried() -> None:
    text = MAZUR_222.replace(
        "∂E_total/∂w5 = 0.74136507 * 0.186815602 * 0.593269992 = 0.082167041",
        "∂E_total/∂w5 = 0.74136507 * 0.593269992 = 0.43983",
    ).replace("0.4 - 0.5 * 0.082167041 = 0.35891648", "0.4 - 0.5 * 0.43983 = 0.180085")
    report = judge(working_from_text(text))
    wrong = [v for v in report.verdicts if v.status == WRONG]
    carried = [v for v in report.verdicts if v.status == CARRIED]
    assert len(wrong) == 1 and wrong[0].slips[0].startswith("σ′(z) left out"), report.text()
    assert [v.text[:3] for v in carried] == ["w5+"] and carried[0].carried_from == (wrong[0].line,)


# -- no text makes the judge crash or leak an internal name --------------------------------------------

from hypothesis import strategies as _st  # noqa: E402

_PIECES = _st.sampled_from([
    "slope", "step", "=", " = ", "new b3", "old b3", "b3+", "-15.7", "x", " x ", "0.1", "(", ")", "Σ", "residual",
    "Observed2", "dssr/db3", "d", "/", "E_o1", "2", "^", "e", "*", "σ′(", "δ", "\n", "We found the", "1e308",
    "0^-1", "exp(", "ResidualSum", "a(L)", "dC/da(L)", "foo", ".", ",", "≈", "<=", "[", "]",
])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_st.lists(_PIECES, min_size=1, max_size=10).map("".join))
def test_any_text_is_judged_or_listed_never_a_crash(body: str) -> None:
    try:
        working = working_from_text(_working(body + "\n", 'parameter = "b3"\n'))
    except SpecError as error:
        assert "__" not in str(error) and "\n" not in str(error), str(error)
        return
    report = judge(working)
    for verdict in report.verdicts:
        assert "__" not in verdict.message and "\n" not in verdict.where
        for check in verdict.checks:  # nor in what a verdict shows beside a line
            assert "__" not in check.expected + check.note + check.claimed, check
        assert not any("__" in slip for slip in verdict.slips)
    assert "__" not in report.text(explain=True)


# -- the README's vocabulary, every spelling read ---------------------------------------------------


def test_every_spelling_of_the_readme_vocabulary_is_read() -> None:
    """Each `written` item of the README's vocabulary table parses, in the seed 002, a 1-2-1 sigmoid or the
    Mazur-named network (an operator alone is tried between two numbers)."""
    from symback.errors import SymbackError

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| written | read as |"):]
    table = table[: table.index("\n\n")]
    items = [item for row in table.splitlines()[2:] for item in re.findall(r"`([^`]+)`", row.split(" | ")[0])]
    assert len(items) >= 40, items
    notations = [
        load_working(EXAMPLES / "seed002_working.md").notation,
        working_from_text(_NET121 + "x = 1\n").notation,
        working_from_text(MAZUR.format(total=0.0, d=0.0, dw5=0.0)).notation,
    ]
    unread = []
    for item in items:
        if "…" in item or "=" in item:
            continue  # a line's shape, not a formula ("dpredicted = …", a definition): tested above
        formula = f"2 {item.strip()} 3" if item.strip() in ("×", "·", "x", "*", "^", "**", "−", "-") else item
        formula = formula.replace("X", "b3")

        def reads(notation, formula=formula) -> bool:
            try:
                notation.parse(formula)
            except SymbackError:
                return False
            return True

        if not any(reads(n) for n in notations):
            unread.append(item)
    assert not unread, unread


# -- saturated units: verify (claims file and plain text) and check against 50-digit mpmath ---------------

# (activation, cost, targets) as in tests/test_accuracy.py: squared error is not taken at a target the unit
# saturates towards (there a − y is exact only to a's rounding).
_UNITS = [
    ("sigmoid", "binary_cross_entropy", (0.0, 1.0)),
    ("tanh", "squared_error", (0.0, 0.5, -0.5)),
    ("softplus", "squared_error", (0.0, 1.0)),
    ("sigmoid", "squared_error", (0.0, 0.5)),
]
_ZS = (-700.0, -100.0, -40.0, -37.0, -36.0, -20.0, -1.5, 0.5, 20.0, 36.0, 37.0, 40.0, 100.0, 700.0)


def _mp_delta(activation: str, cost: str, z: float, y: float):
    """∂C/∂z of one neuron at 50 digits, from the textbook formulas (no symback code)."""
    import mpmath

    with mpmath.workdps(50):
        z, y = mpmath.mpf(z), mpmath.mpf(y)
        sigma = lambda v: 1 / (1 + mpmath.exp(-v))  # noqa: E731
        a, da = {"sigmoid": (sigma(z), sigma(z) * sigma(-z)), "tanh": (mpmath.tanh(z), 1 / mpmath.cosh(z) ** 2),
                 "softplus": (mpmath.log1p(mpmath.exp(z)), sigma(z))}[activation]
        if cost == "binary_cross_entropy":  # −(y ln a + (1 − y) ln(1 − a)), with 1 − a = σ(−z)
            return (-y / a + (1 - y) / sigma(-z)) * da
        return 2 * (a - y) * da


def _written(value) -> str | None:
    """13 significant digits: judged right only within 5e-13 relative; None below float64's normal range."""
    return None if abs(value) < 1e-290 else f"{float(value):.13g}"


_ONE_NEURON = """[network]
layers = [1, 1]
activations = ["{activation}"]
cost = "{cost}"
[parameters]
"w(1)_0_0" = {w!r}
"b(1)_0" = 0.0
[data]
x = [{x!r}]
y = [{y!r}]
"""


@pytest.mark.parametrize("activation, cost, targets", _UNITS)
def test_saturated_units_are_judged_right_by_verify_and_check(activation: str, cost: str, targets) -> None:
    """Issue 13: |z| up to 700; the right ∂C/∂w and ∂C/∂b to 13 digits are right, in a claims file (every z, set
    through `at`) and in plain text (the extremes), and `check` is finite and passes there."""
    from symback.data import Dataset
    from symback.symbolic.network import Network
    from symback.symbolic.parameters import Parameters
    from symback.verification.claims import claims_from_text
    from symback.verification.verify import gradient_check, verify

    for y in targets:
        claims, lines = [], []
        for z in _ZS:  # x = 2, b = 0: z = 2w, so ∂C/∂w = 2 δ and ∂C/∂b = δ
            delta = _mp_delta(activation, cost, z, y)
            for quantity, value in (("dC/dw", 2 * delta), ("dC/db", delta)):
                written = _written(value)
                if written is not None:
                    claims.append(f'[[claim]]\nquantity = "{quantity}"\nvalue = "{written}"\n'
                                  f'at = {{ w = {z / 2!r} }}\n')
                    lines.append((z, quantity, written))
        report = verify(claims_from_text(_ONE_NEURON.format(activation=activation, cost=cost, w=1.0, x=2.0, y=y)
                                         + "".join(claims)))
        wrong = [(line, v.message) for line, v in zip(lines, report.verdicts, strict=True) if v.status != RIGHT]
        assert not wrong, wrong
        for z in (-700.0, -37.0, 36.0, 700.0):  # plain text, w = 1 and x = z
            delta = _mp_delta(activation, cost, z, y)
            body = "".join(f"∂C/∂{name} = {_written(value)}\n" for name, value in (("w", z * delta), ("b", delta))
                           if _written(value) is not None)
            if not body:
                continue  # both below float64's normal range
            text = "+++\n" + _ONE_NEURON.format(activation=activation, cost=cost, w=1.0, x=z, y=y) + "+++\n" + body
            working = judge(working_from_text(text))
            assert working.verdicts and all(v.status == RIGHT for v in working.verdicts), working.text()
            network = Network([1, 1], activation, cost)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                result = gradient_check(network, Parameters([np.array([[1.0]])], [np.zeros(1)]),
                                        Dataset(np.array([[z]]), np.array([[y]])))
            assert result.passed and np.isfinite(result.worst), result.text()


def test_the_published_example_s_total_error_after_the_first_round_is_at_the_new_weights() -> None:
    """Mazur: 'after this first round of backpropagation, the total error is now down to 0.291027924'.
    The cost after the update block is judged at the new weights (working.UPDATE_RULE), the biases as they were.
    The article's figure is not what its own weights give: a NumPy forward pass there gives 0.291027774."""
    s = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    hidden = s(np.array([[0.149780716, 0.19956143], [0.24975114, 0.29950229]]) @ [0.05, 0.10] + 0.35)
    out = s(np.array([[0.35891648, 0.408666186], [0.511301270, 0.561370121]]) @ hidden + 0.60)
    oracle = float(0.5 * np.sum((np.array([0.01, 0.99]) - out) ** 2))
    updates = "w2+ = 0.19956143\nw3+ = 0.24975114\nw4+ = 0.29950229\n"
    right = judge(working_from_text(MAZUR_222 + updates + f"the total error is down to E_total = {oracle:.9f}\n"))
    last = right.verdicts[-1]
    assert last.status == RIGHT, right.text()
    assert "after the update(s) of line(s)" in last.state and "w5 = 0.358916" in last.state, last.state
    published = judge(working_from_text(MAZUR_222 + updates + "the total error is down to E_total = 0.291027924\n"))
    assert published.verdicts[-1].status == WRONG
    assert published.verdicts[-1].checks[-1].expected.startswith(f"{oracle:.9f}"), published.verdicts[-1].checks


# -- follow-through from the author's own node values; rounding both ways (issue 13 follow-up) -------

_MAZUR_FRONT = MAZUR_222.split("The Forward Pass")[0]


def _checks(verdict) -> list[str]:
    return [check.status for check in verdict.checks]


def test_a_line_recomputed_from_the_authors_wrong_node_value_is_carried_forward() -> None:
    slipped = 0.8  # out_o1 written wrong (right: 0.75136507); every later number follows from it correctly
    t1 = 0.01
    d1, s1 = slipped - t1, slipped * (1 - slipped)  # the oracle: plain arithmetic on the author's number
    body = (f"out_o1 = {slipped:.4f}\n"
            f"∂E_total/∂out_o1 = out_o1 - target_o1 = {slipped:.4f} - {t1} = {d1:.4f}\n"
            f"∂out_o1/∂net_o1 = out_o1(1 - out_o1) = {slipped:.4f}(1 - {slipped:.4f}) = {s1:.4f}\n")
    report = judge(working_from_text(_MAZUR_FRONT + body))
    first, *following = report.verdicts
    assert first.status == WRONG, report.text()
    for verdict in following:  # one slip, one wrong line: every member of the lines after it is carried
        assert verdict.status == CARRIED, report.text()
        assert _checks(verdict) == [RIGHT, CARRIED, CARRIED] and verdict.carried_from == (first.line,)
        assert "consistent with the earlier wrong value(s) of line(s)" in verdict.message


@pytest.mark.parametrize("written", ["0.0000", "0.2000"])
def test_a_new_slip_after_a_wrong_node_value_stays_wrong(written: str) -> None:
    """σ′ is not 0 because out_o1 was written (a number put into ∂out_o1/∂net_o1 would make it 0), and
    0.8(1 − 0.8) = 0.2 is an arithmetic slip of its own."""
    body = f"out_o1 = 0.8000\n∂out_o1/∂net_o1 = out_o1(1 - out_o1) = 0.8000(1 - 0.8000) = {written}\n"
    report = judge(working_from_text(_MAZUR_FRONT + body))
    first, second = report.verdicts
    assert first.status == WRONG and second.status == WRONG, report.text()
    assert _checks(second) == [RIGHT, CARRIED, WRONG]
    assert "arithmetic: 0.8000(1 - 0.8000) = 0.16" in second.message


_TANH = """+++
[network]
layers = [1, 1]
activations = "tanh"
cost = "squared_error"
[parameters]
"w(1)_0_0" = {z}
"b(1)_0" = 0.0
[data]
x = [1.0]
y = [0.2]
+++
"""


@pytest.mark.parametrize("z", ["0.6145", "0.6155"])  # either edge of what 0.615 stands for
def test_a_value_right_at_the_authors_rounded_inputs_is_right(z: str) -> None:
    at_rounded = f"{math.tanh(0.615):.4f}"
    assert at_rounded != f"{math.tanh(float(z)):.4f}"  # wrong at the true z, to the digits shown
    inline = judge(working_from_text(_TANH.format(z=z) + f"a(1) = tanh(z(1)) = tanh(0.615) = {at_rounded}\n"))
    (verdict,) = inline.verdicts
    assert verdict.status == RIGHT and _checks(verdict) == [RIGHT, RIGHT, RIGHT], inline.text()
    assert "consistent with the rounded numbers of tanh(0.615)" in verdict.message
    earlier = judge(working_from_text(_TANH.format(z=z) + f"z(1) = 0.615\na(1) = tanh(z(1)) = {at_rounded}\n"))
    assert [v.status for v in earlier.verdicts] == [RIGHT, RIGHT], earlier.text()
    assert "consistent with the rounded values written earlier" in earlier.verdicts[1].message


def test_a_number_outside_the_rounding_of_its_input_is_still_wrong() -> None:
    report = judge(working_from_text(_TANH.format(z="0.6145") + "a(1) = tanh(z(1)) = tanh(0.617) = "
                                     f"{math.tanh(0.617):.4f}\n"))
    (verdict,) = report.verdicts
    assert verdict.status == WRONG and _checks(verdict) == [RIGHT, WRONG, CARRIED], report.text()
