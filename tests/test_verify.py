"""The judge: seed 002's worked example, property tests over random networks, malformed claims and the CLI."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symback import Dataset, Network, NodeRef, Parameters, load_spec
from symback.cli import main
from symback.verification.claims import claims_from_text, load_claims
from symback.verification.verify import (
    CARRIED,
    INVALID,
    RIGHT,
    STATE,
    UNJUDGED,
    WRONG,
    compare_expressions,
    gradient_check,
    verify,
)

from . import reference
from .test_kinds import mixed_networks
from .tools import require_program

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SEED002 = (EXAMPLES / "seed002.toml").as_posix()


def _claims(body: str, header: str = f'spec = "{SEED002}"\n'):
    return claims_from_text(header + body)


def _seed002_reference(b3: float) -> tuple[float, float]:
    """(SSR, dSSR/db3) of seed 002 at ``b3`` from the hand-written NumPy backprop."""
    spec = load_spec(EXAMPLES / "seed002.toml")
    biases = [b.copy() for b in spec.parameters.biases]
    biases[1][0] = b3
    total, _, db = reference.gradients(
        spec.network.sizes, ["softplus", "identity"], "ssr", spec.parameters.weights, biases, spec.data.X, spec.data.Y
    )
    return total, float(db[1][0])


# -- seed 002 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_report():
    return verify(load_claims(EXAMPLES / "seed002_claims.toml"))


def test_seed002_verdicts_line_by_line(seed_report) -> None:
    statuses = [v.status for v in seed_report.verdicts]
    assert statuses == [WRONG, RIGHT, RIGHT, RIGHT, RIGHT, RIGHT, RIGHT, WRONG, WRONG, WRONG]
    assert seed_report.first_wrong is seed_report.verdicts[0]
    assert seed_report.exit_status == 1


def test_seed002_confirms_the_slope_and_the_step(seed_report) -> None:
    _, slope = _seed002_reference(0.0)
    assert slope == pytest.approx(-15.655, abs=1e-3)  # the oracle itself: -15.655 rounds to the author's -15.7
    slope_line = seed_report.verdicts[6]
    assert slope_line.checks[0].status == RIGHT and slope_line.checks[0].expected == f"-15.7 ({slope:.6g})"
    step_line = {c.part: c for c in seed_report.verdicts[7].checks}
    assert step_line["slope"].status == RIGHT and step_line["step"].status == RIGHT
    assert step_line["step"].expected == f"-1.57 ({0.1 * slope:.6g})"


def test_seed002_flags_the_wrong_derivative_of_ssr(seed_report) -> None:
    line = seed_report.verdicts[0]
    check = line.checks[0]
    assert check.status == WRONG
    # the right form as a textbook writes it: the cost's own difference, U+2212 minus, never SymPy's str
    assert check.expected == "−2(observed − predicted)"
    assert "∂SSR/∂predicted" in line.derivation


def test_seed002_flags_the_update_that_adds_the_step(seed_report) -> None:
    new = {c.part: c for c in seed_report.verdicts[7].checks}["new"]
    assert new.status == WRONG and new.expected.startswith("1.57 ")
    assert "gradient descent subtracts it" in new.note


def test_seed002_later_lines_are_judged_from_what_they_really_are(seed_report) -> None:
    checks = {c.part: c for c in seed_report.verdicts[8].checks}
    # "new b3 = -1.57 + ..." repeats the earlier wrong b3: consistent with it, so carried forward.
    assert checks["old"].status == CARRIED and "8" in checks["old"].note
    # -6.26 is the slope at the correct b3 = 1.5655 (not at the author's -1.57, where it is -25.1).
    correct_b3 = 0.0 - 0.1 * _seed002_reference(0.0)[1]
    slope_there = _seed002_reference(correct_b3)[1]
    assert round(slope_there, 2) == -6.26
    assert checks["slope"].status == RIGHT
    assert f"{_seed002_reference(-1.57)[1]:.6g}" in checks["slope"].note
    assert checks["step"].status == RIGHT
    # -2.196 = -1.57 + (-0.626): the step added again, not carried forward.
    assert checks["new"].status == WRONG and "added" in checks["new"].note
    assert checks["new"].expected.startswith(f"{correct_b3 - 0.1 * slope_there:.3f}")
    assert seed_report.verdicts[8].status == WRONG


def test_seed002_final_b3_is_wrong_because_descent_converges_to_2_61(seed_report) -> None:
    # Plain gradient descent, written here independently with the NumPy reference gradient.
    b3 = 0.0
    for _ in range(1000):
        step = 0.1 * _seed002_reference(b3)[1]
        if abs(step) < 0.001:
            break  # the step under the tolerance is not taken (symback.training.train.below_tolerance)
        b3 -= step
    assert round(b3, 2) == 2.61
    final = seed_report.verdicts[9]
    assert final.status == WRONG
    assert final.checks[0].expected == f"2.61 ({b3:.6g})"


def test_seed002_text_report_names_every_line(seed_report) -> None:
    text = seed_report.text()
    assert "first wrong line: claim 1 (line 6): dssr/dpredicted = (Observed - Predicted)^2" in text
    assert "summary: 6 right, 4 wrong" in text
    for verdict in seed_report.verdicts:
        assert verdict.text[:20] in text


# -- error carried forward, rounding and states -----------------------------------------------------


def test_a_line_built_on_an_earlier_wrong_value_is_error_carried_forward() -> None:
    _, wrong_slope = _seed002_reference(-1.57)
    _, true_slope = _seed002_reference(0.0 - 0.1 * _seed002_reference(0.0)[1])
    report = verify(
        _claims(
            f"""
[[claim]]
update = "b3"
learning_rate = 0.1
new = "-1.57"

[[claim]]
quantity = "dSSR/db3"
value = "{wrong_slope:.4g}"

[[claim]]
quantity = "dSSR/db3"
value = "{true_slope:.4g}"

[[claim]]
quantity = "dSSR/db3"
value = "3.0"
"""
        )
    )
    first, carried, right, wrong = report.verdicts
    assert first.status == WRONG
    assert carried.status == CARRIED and carried.carried_from == (1,)
    assert right.status == RIGHT
    assert wrong.status == WRONG
    assert report.first_wrong is first


def test_an_authors_own_rounded_value_is_not_an_error() -> None:
    # new b3 = 1.6 is right to one decimal (1.5655); the next slope, computed from 1.6, is right too.
    _, slope_at_rounded = _seed002_reference(1.6)
    _, slope_at_exact = _seed002_reference(1.5655108380577747)
    written = f"{slope_at_rounded:.4f}"
    assert not Decimal(written) == Decimal(f"{slope_at_exact:.4f}")
    report = verify(
        _claims(
            f"""
[[claim]]
update = "b3"
learning_rate = 0.1
new = "1.6"

[[claim]]
quantity = "dSSR/db3"
value = "{written}"
"""
        )
    )
    assert [v.status for v in report.verdicts] == [RIGHT, RIGHT]
    assert "rounded values written earlier" in report.verdicts[1].checks[0].note


def test_set_changes_the_state_for_later_lines() -> None:
    _, slope = _seed002_reference(1.57)
    report = verify(
        _claims(
            f"""
[[claim]]
set = {{ b3 = 1.57 }}
text = "now b3 = 1.57"

[[claim]]
quantity = "dSSR/db3"
value = "{slope:.3g}"

[[claim]]
quantity = "dSSR/db3"
value = "-15.7"
at = {{ b3 = 0 }}
"""
        )
    )
    assert [v.status for v in report.verdicts] == [STATE, RIGHT, RIGHT]
    assert report.exit_status == 0


def test_a_sequence_of_steps_matches_a_plain_loop() -> None:
    b3 = 0.5
    for _ in range(3):
        b3 -= 0.05 * _seed002_reference(b3)[1]
    report = verify(
        _claims(
            f"""
[[claim]]
update = "b3"
learning_rate = 0.05
steps = 3
at = {{ b3 = 0.5 }}
new = "{b3:.5g}"
"""
        )
    )
    assert report.verdicts[0].status == RIGHT


def test_a_descent_that_does_not_stop_cannot_be_judged() -> None:
    report = verify(
        _claims(
            """
[[claim]]
update = "b3"
learning_rate = 0.5
until_step_below = 1e-12
max_steps = 5
new = "2.61"
"""
        )
    )
    assert report.verdicts[0].status == UNJUDGED
    assert "did not reach" in report.verdicts[0].message
    assert report.exit_status == 1


def test_per_example_quantities_need_an_example_number() -> None:
    spec = load_spec(EXAMPLES / "seed002.toml")
    from symback import CompiledNetwork

    predicted = CompiledNetwork(spec.network).predict(spec.parameters, spec.data.X)[:, 0]
    report = verify(
        _claims(
            f"""
[[claim]]
quantity = "predicted"
value = "{predicted[1]:.4g}"
example = 2

[[claim]]
quantity = "residual"
value = "1"

[[claim]]
quantity = "dpredicted/db3"
value = "1"
"""
        )
    )
    right, shape, constant = report.verdicts
    assert right.status == RIGHT
    assert shape.status == INVALID and "one value per example" in shape.message and "claim 2" in shape.message
    assert constant.status == RIGHT  # the same for every example
    assert report.exit_status == 2


# -- symbolic claims --------------------------------------------------------------------------------

SIGMOID = """
[network]
layers = [1, 1]
activations = "sigmoid"
cost = "squared_error"
[parameters]
"w(L)" = 0.7
"b(L)" = -0.2
[data]
x = [0.5, 1.5]
y = [0.0, 1.0]
"""


@pytest.mark.parametrize(
    ("quantity", "expression", "status"),
    [
        ("∂a/∂z", "a(1 − a)", RIGHT),
        ("d(a)/d(z)", "exp(-z)/(1 + exp(-z))^2", RIGHT),
        ("d(a)/d(z)", "a(1 - a)^2", WRONG),
        ("d(C)/d(a)", "2*(a - y)", RIGHT),
        ("d(C)/d(a)", "(a - y)^2", WRONG),
        ("d(C)/d(w(L))", "2*(a - y)*a*(1 - a)*x", RIGHT),
        ("d(C)/d(w(L))", "2*(a - y)*a*(1 - a)", WRONG),
        ("d(C)/d(b(L))", "dC/da * da/dz", RIGHT),
        ("d(C)/d(z)", "2*residual", WRONG),
    ],
)
def test_symbolic_claims(quantity: str, expression: str, status: str) -> None:
    report = verify(
        claims_from_text(SIGMOID + f'[[claim]]\nquantity = "{quantity}"\nexpression = "{expression}"\n')
    )
    assert report.verdicts[0].status == status


def test_a_simplify_miss_never_becomes_a_false_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    import symback.verification.verify as verify_module

    monkeypatch.setattr(verify_module, "SIMPLIFY_LIMIT", -1)  # simplify never runs: the numbers must decide
    x = sp.Symbol("x", real=True)
    rng = np.random.default_rng(1)
    assert compare_expressions(sp.log(1 + sp.exp(x)).diff(x), 1 / (1 + sp.exp(-x)), rng=rng).equal is True
    assert compare_expressions(sp.tanh(x).diff(x), 1 - sp.tanh(x), rng=rng).equal is False


def test_floating_point_cancellation_is_settled_with_more_digits() -> None:
    x = sp.Symbol("x", real=True)
    # cosh²(20x) − sinh²(20x) is 1, but doubles return 0 or garbage for large |x|.
    left = sp.cosh(20 * x) ** 2 - sp.sinh(20 * x) ** 2
    result = compare_expressions(left, sp.S.One + 0 * x, rng=np.random.default_rng(0))
    assert result.equal is True


def test_an_expression_undefined_everywhere_cannot_be_judged() -> None:
    x = sp.Symbol("x", real=True)
    nowhere = sp.sqrt(-1 - x**2)  # not a real number at any real x
    result = compare_expressions(nowhere * x, nowhere * x + x, rng=np.random.default_rng(0))
    assert result.equal is None and "undefined" in result.reason
    assert compare_expressions(sp.zoo + 0 * x, sp.S.One, rng=np.random.default_rng(0)).equal is None


# -- property: a correct calculation has no false alarms --------------------------------------------

_ACTIVATIONS = ["sigmoid", "tanh", "softplus", "identity"]
_COSTS = ["squared_error", "ssr", "mse", "half_squared_error"]


def _written(value: float, digits: int) -> str:
    # An author writes a value that rounds to 0 at their precision as 0 (decimals), not as 1e-17.
    return format(value, f".{digits}g") if abs(value) >= 1e-6 else "0.00000"


def _unit(text: str) -> Decimal:
    exponent = Decimal(text).as_tuple().exponent
    return Decimal(1).scaleb(exponent)  # type: ignore[arg-type]


@st.composite
def _calculations(draw):
    sizes = [draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 2))]
    activations = [draw(st.sampled_from(_ACTIVATIONS)) for _ in range(2)]
    cost = draw(st.sampled_from(_COSTS))
    seed = draw(st.integers(0, 2**31 - 1))
    n_examples = draw(st.integers(1, 3))
    n_claims = draw(st.integers(2, 5))
    digits = draw(st.lists(st.integers(3, 6), min_size=n_claims + 3, max_size=n_claims + 3))
    perturb = draw(st.integers(0, n_claims + 2))
    sign = draw(st.sampled_from([-1, 1]))
    return sizes, activations, cost, seed, n_examples, n_claims, digits, perturb, sign


def _build(sizes, activations, cost, seed, n_examples, n_claims, digits):
    """A claims file and the list of (line index, key) of every written value, all from the reference backprop."""
    rng = np.random.default_rng(seed)
    net = Network(sizes, activations, cost)
    params = Parameters.initialize(net, "uniform", seed=seed)
    X = rng.uniform(-1.5, 1.5, size=(n_examples, sizes[0]))
    Y = rng.uniform(0.1, 0.9, size=(n_examples, sizes[-1]))
    refs = list(net.parameter_refs())
    lines = [
        'updates = "sequential"',  # the last claim is judged in the state after the update
        "[network]",
        f"layers = {sizes}",
        f"activations = {json.dumps(activations)}",
        f'cost = "{cost}"',
        "[parameters]",
    ]
    for ref in refs:
        lines.append(f'"{net.canonical_name(ref)}" = {params.get(ref)!r}')
    lines += ["[data]", f"x = {X.tolist()!r}", f"y = {Y.tolist()!r}"]

    def oracle():
        return reference.gradients(sizes, activations, cost, params.weights, params.biases, X, Y)

    def grad(ref: NodeRef) -> float:
        _, dW, db = oracle()
        return float(dW[ref.layer - 1][ref.j, ref.k] if ref.kind == "w" else db[ref.layer - 1][ref.j])

    slots = []
    written_digits = iter(digits)
    claims = []
    for index in range(n_claims):
        ref = refs[int(rng.integers(len(refs)))]
        value = _written(grad(ref), next(written_digits))
        claims.append({"quantity": f"d(C)/d({net.canonical_name(ref)})", "value": value})
        slots.append((len(claims) - 1, "value"))
    claims.append({"quantity": "C", "value": _written(oracle()[0], next(written_digits))})
    slots.append((len(claims) - 1, "value"))
    # One gradient-descent step, then a claim in the new state.  Only the new value is written: a written
    # (rounded) slope would give the author a second, equally right path to slightly different digits.
    ref = refs[int(rng.integers(len(refs)))]
    new = params.get(ref) - 0.1 * grad(ref)
    written_new = _written(new, next(written_digits))
    claims.append({"update": net.canonical_name(ref), "learning_rate": 0.1, "new": written_new})
    slots.append((len(claims) - 1, "new"))
    after = refs[int(rng.integers(len(refs)))]
    # The last claim is right in the exact state and may also be right in the author's state (the rounded
    # new value); both are legitimate, so a perturbation must leave both behind.
    params.set(ref, float(written_new))
    from_rounded = grad(after)
    params.set(ref, new)
    exact = grad(after)
    claims.append({"quantity": f"d(C)/d({net.canonical_name(after)})", "value": _written(exact, 5)})
    slots.append((len(claims) - 1, "value"))
    spreads = [0.0] * (len(claims) - 1) + [abs(from_rounded - exact)]
    return lines, claims, slots, spreads


def _render(lines, claims) -> str:
    out = list(lines)
    for claim in claims:
        out.append("[[claim]]")
        out += [f"{key} = {json.dumps(value)}" for key, value in claim.items()]
    return "\n".join(out) + "\n"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_calculations())
def test_true_values_rounded_are_right_and_one_perturbed_value_is_wrong_at_exactly_its_line(case) -> None:
    sizes, activations, cost, seed, n_examples, n_claims, digits, perturb, sign = case
    lines, claims, slots, spreads = _build(sizes, activations, cost, seed, n_examples, n_claims, digits)
    report = verify(claims_from_text(_render(lines, claims)))
    assert [v.status for v in report.verdicts] == [RIGHT] * len(claims), report.text()
    assert report.exit_status == 0

    line, key = slots[perturb % len(slots)]
    text = claims[line][key]
    unit = _unit(text)
    # Three units of the last digit beyond rounding, plus however far the author's rounded state lies away.
    units = 3 + math.ceil(Decimal(repr(spreads[line])) / unit)
    claims[line][key] = str(Decimal(text) + sign * units * unit)
    report = verify(claims_from_text(_render(lines, claims)))
    statuses = [v.status for v in report.verdicts]
    assert statuses == [WRONG if i == line else RIGHT for i in range(len(claims))], report.text()
    assert report.first_wrong is not None and report.first_wrong.number == line + 1


# -- gradient check ---------------------------------------------------------------------------------


def test_batched_finite_differences_match_a_plain_loop() -> None:
    from symback import CompiledNetwork
    from symback.verification.verify import _finite_differences

    net = Network([2, 3, 2], ["tanh", "sigmoid"], "mse")
    params = Parameters.initialize(net, seed=3)
    data = Dataset.from_arrays([[0.1, -0.4], [0.7, 0.2], [-0.3, 0.9]], [[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]])
    compiled = CompiledNetwork(net)
    batched = _finite_differences(compiled, params, data, 1e-6)
    for ref in net.parameter_refs():
        plus, minus = params.copy(), params.copy()
        plus.set(ref, params.get(ref) + 1e-6)
        minus.set(ref, params.get(ref) - 1e-6)
        loop = (compiled.cost(plus, data) - compiled.cost(minus, data)) / 2e-6
        weights, biases = batched[ref.layer - 1]
        got = weights[ref.j, ref.k] if ref.kind == "w" else biases[ref.j]
        # Both are central differences of the same costs, summed in a different order: equal to rounding noise.
        assert got == pytest.approx(loop, rel=1e-7, abs=1e-9)
    # And both agree with the hand-written NumPy backprop.
    _, dW, db = reference.gradients(net.sizes, ["tanh", "sigmoid"], "mse", params.weights, params.biases, data.X, data.Y)
    for (weights, biases), w, b in zip(batched, dW, db):
        np.testing.assert_allclose(weights, w, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(biases, b, rtol=1e-6, atol=1e-9)


def test_gradient_check_passes_for_every_activation_and_cost() -> None:
    for activation in _ACTIVATIONS:
        for cost in _COSTS:
            net = Network([2, 3, 1], [activation, "sigmoid"], cost)
            params = Parameters.initialize(net, seed=1)
            data = Dataset.from_arrays([[0.3, -0.2], [0.1, 0.5]], [0.4, 0.6])
            result = gradient_check(net, params, data)
            assert result.passed, (activation, cost, result.text())
            assert len(result.layers) == 2 and result.worst < 1e-6


def _wide(width: int) -> tuple[Network, Parameters, Dataset]:
    net = Network([300, width, 3], ["tanh", "sigmoid"], "mse")
    rng = np.random.default_rng(2)
    data = Dataset.from_arrays(rng.normal(size=(4, 300)), rng.uniform(0.1, 0.9, (4, 3)))
    return net, Parameters.initialize(net, seed=1), data


def test_check_cost_does_not_grow_with_width() -> None:
    # Every entry was perturbed before: 13.8 s on 784-64-10, over 60 s on 784-256-256-10 (issue 11).
    counts = []
    for width in (200, 400):
        net, params, data = _wide(width)
        result = gradient_check(net, params, data)
        assert result.passed, result.text()
        counts.append(result.evaluations)
    # Layer 1: 128 weights, 128 biases (of 200 or 400), 4 directions; layer 2: 128 weights, 3 biases, 4 directions.
    assert counts[0] == counts[1] == 2 * (128 + 128 + 4) + 2 * (128 + 3 + 4)


def test_check_says_what_it_compared() -> None:
    net, params, data = _wide(200)
    result = gradient_check(net, params, data)
    assert result.checked == ("128 of 60,000 w, 128 of 200 b, 4 random directions",
                              "128 of 600 w, 3 of 3 b, 4 random directions")
    assert "128 of 60,000 w, 128 of 200 b, 4 random directions" in result.text()


def test_check_finds_a_wrong_entry_it_did_not_sample(monkeypatch) -> None:
    # The sampled entries alone could miss it; a random directional derivative cannot.
    from symback.compile.compiler import CompiledNetwork

    net, params, data = _wide(200)
    sampled = set(np.random.default_rng(0).choice(60_000, 128, replace=False).tolist())
    wrong = next(index for index in range(60_000) if index not in sampled)
    honest = CompiledNetwork.gradient

    def corrupted(self, *args, **kwargs):
        gradient = honest(self, *args, **kwargs)
        weights = gradient.weights[0]
        weights.reshape(-1)[wrong] += 0.5 * np.max(np.abs(weights))
        return gradient

    monkeypatch.setattr(CompiledNetwork, "gradient", corrupted)
    monkeypatch.setattr("symback.verification.verify._torch_gradient", lambda *args: None)  # finite differences alone
    result = gradient_check(net, params, data)
    assert not result.passed and result.layers[0][1] > 1e-3 and result.layers[1][1] < 1e-6


def test_check_compares_every_entry_of_a_small_network() -> None:
    net = Network([3, 4, 2], "tanh", "mse")
    data = Dataset.from_arrays([[0.1, 0.2, 0.3]], [[0.5, 0.1]])
    result = gradient_check(net, Parameters.initialize(net, seed=0), data)
    assert result.checked == ("12 of 12 w, 4 of 4 b", "8 of 8 w, 2 of 2 b")
    assert result.evaluations == 2 * (12 + 4 + 8 + 2)


def test_check_of_a_constant_activation_under_pytorch() -> None:
    # A formula without z (here 123456789012345678901234567890^(-0.000001), a Float) came back
    # from torch as float32 and the float64 matrix product failed (issue 11).
    from .tools import require_module

    require_module("torch")
    net = Network([1, 2, 1], [{"formula": "123456789012345678901234567890^(-0.000001)"}, "identity"], "ssr")
    result = gradient_check(net, Parameters.initialize(net, seed=0), Dataset.from_arrays([[0.5], [1.0]], [1.0, 0.0]))
    assert result.passed and result.torch_layers is not None


# -- command line -----------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = "claims.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_cli_verify_seed002_exits_1_and_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["verify", str(EXAMPLES / "seed002_claims.toml")])
    out, err = capsys.readouterr()
    assert status == 1
    assert "first wrong line: claim 1" in out and "error carried forward" in out
    assert err == ""


def test_cli_verify_all_right_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, f'spec = "{SEED002}"\n[[claim]]\nquantity = "dSSR/db3"\nvalue = "-15.7"\n')
    assert main(["verify", path]) == 0
    assert "every line is right" in capsys.readouterr().out


def test_cli_verify_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(EXAMPLES / "seed002_claims.toml"), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["first_wrong"]["claim"] == 1
    assert [v["status"] for v in data["verdicts"]][7] == WRONG
    assert data["counts"] == {RIGHT: 6, WRONG: 4}


def test_cli_verify_writes_output_files_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "report.json"
    assert main(["verify", str(EXAMPLES / "seed002_claims.toml"), "--format", "json", "-o", str(target)]) == 1
    assert json.loads(target.read_text())["exit_status"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_cli_malformed_claims_exit_2_and_the_rest_is_judged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path,
        f"""spec = "{SEED002}"
[[claim]]
quantity = "dSSR/db3"
value = "-15.7"

[[claim]]
quantity = "dSSR/dfoo"
value = "1"

[[claim]]
quantity = "dSSR/db3 +"
value = "1"

[[claim]]
quantity = "predicted"
value = "1"

[[claim]]
quantity = "dSSR/db3"
value = "-15.7"
""",
    )
    status = main(["verify", path])
    out, err = capsys.readouterr()
    assert status == 2
    assert "Traceback" not in out + err
    err_lines = err.strip().splitlines()
    assert len(err_lines) == 3
    assert err_lines[0].startswith("symback: error: claim 2 (line 6): ") and "dfoo" in err_lines[0]
    assert err_lines[1].startswith("symback: error: claim 3 (line 10): ")
    assert err_lines[2].startswith("symback: error: claim 4 (line 14): ") and "one value per example" in err_lines[2]
    report = verify(load_claims(path))
    assert [v.status for v in report.verdicts] == [RIGHT, INVALID, INVALID, INVALID, RIGHT]


@pytest.mark.parametrize(
    "text", ["[[claim]\n", f'spec = "{SEED002}"\n', 'spec = "missing.toml"\n[[claim]]\nset = { b3 = 1 }\n']
)
def test_cli_unusable_files_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    assert main(["verify", _write(tmp_path, text)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("symback: error: ") and err.count("\n") == 1


def test_cli_missing_claims_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "nope.toml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(EXAMPLES / "seed002.toml")]) == 0
    out = capsys.readouterr().out
    assert "L-1" in out and "ok" in out
    # A tolerance below what central differences can reach must fail, with exit status 1.
    assert main(["check", str(EXAMPLES / "seed002.toml"), "--tolerance", "1e-30"]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert main(["check", str(EXAMPLES / "seed002.toml"), "--step", "-1"]) == 2


# -- LaTeX, HTML and Markdown -----------------------------------------------------------------------


def test_html_escapes_the_authors_text_and_prints_math_as_mathml(tmp_path: Path) -> None:
    from symback.verification.verify import render

    claims = _claims('[[claim]]\ntext = "<script>alert(1)</script> & dSSR/db3"\nquantity = "dSSR/db3"\nvalue = "3"\n')
    html = render(verify(claims), "html")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; dSSR/db3" in html
    assert "<math>" in html and "∂" in html
    assert '<td class="wrong">wrong</td>' in html


def test_markdown_and_tex_renderings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess

    seed = str(EXAMPLES / "seed002_claims.toml")
    assert main(["verify", seed, "--format", "md"]) == 1
    md = capsys.readouterr().out
    assert "| 8 | 42 | step size = -15.7 x 0.1 = -1.57; new b3 = 0 \\+ \\(-1.57\\) = -1.57 | old | 0 | right | 0 |" in md
    assert "$\\frac{\\partial \\mathrm{SSR}}{\\partial b_{3}}$" in md
    target = tmp_path / "seed.tex"
    assert main(["verify", seed, "--format", "tex", "-o", str(target)]) == 1
    tex = target.read_text()
    assert "(Observed - Predicted)\\textasciicircum{}2" in tex and "\\begin{longtable}" in tex
    pdflatex = require_program("pdflatex")
    result = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", target.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert (tmp_path / "seed.pdf").stat().st_size > 1000


@pytest.mark.parametrize(
    ("activations", "cost"),
    [
        (["tanh", {"formula": "z/(1+exp(-z))"}, "identity"], "mse"),
        (["relu", {"name": "leaky_relu", "slope": 0.2}, "softplus"], {"formula": "(a - y)^4", "reduction": "sum"}),
        (["elu", "sigmoid", "softmax"], "categorical_cross_entropy"),
        (["silu", "tanh", "sigmoid"], "binary_cross_entropy"),
    ],
)
def test_check_compares_with_pytorch_autograd_on_the_same_formulas(activations, cost) -> None:
    from symback.verification.verify import gradient_check

    from .tools import require_module

    require_module("torch")
    net = Network([3, 4, 3, 2], activations, cost)
    rng = np.random.default_rng(4)
    Y = np.eye(2)[[0, 1, 1, 0, 1]] if "cross" in str(cost) else rng.uniform(0.1, 0.9, (5, 2))
    data = Dataset.from_arrays(rng.normal(size=(5, 3)), Y)
    result = gradient_check(net, Parameters.initialize(net, seed=1), data)
    assert result.torch_layers is not None and len(result.torch_layers) == 3
    assert max(error for _, error in result.torch_layers) < 1e-10
    assert result.passed and "vs PyTorch autograd" in result.text()


def test_check_without_pytorch_says_so(monkeypatch) -> None:
    import sys

    from symback.verification.verify import gradient_check

    monkeypatch.setitem(sys.modules, "torch", None)
    net = Network([2, 2, 1], "tanh", "mse")
    result = gradient_check(net, Parameters.initialize(net, seed=0), Dataset.from_arrays([[0.3, -0.2]], [0.4]))
    assert result.torch_layers is None
    assert "PyTorch is not installed" in result.text() and result.passed


_TINY = """
[network]
layers = [1, 1]
activations = "identity"
cost = "ssr"
[parameters]
"w(L)" = 2.0
"b(L)" = 0.0
[data]
x = [1, 2]
y = [1, 3]
"""


def test_a_fixed_number_of_steps_that_diverges_cannot_be_judged_and_says_why() -> None:
    from symback.verification.claims import claims_from_text

    text = _TINY + '[[claim]]\nupdate = "b(L)"\nlearning_rate = 10.0\nsteps = 2000\nnew = "1.5"\n'
    report = verify(claims_from_text(text))
    (verdict,) = report.verdicts
    assert verdict.status == UNJUDGED
    assert "diverged" in report.text()


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        ('[[claim]]\nquantity = "d(C)/d(b(L))"\nvalue = "nan"\n', "finite number"),
        ('[[claim]]\nquantity = "d(C)/d(b(L))"\nvalue = "1e999"\n', "finite number"),
        ('[[claim]]\nquantity = "d(C)/d(b(L))"\nvalue = "2"\ntolerance = nan\n', "positive number"),
        ('[[claim]]\nupdate = "b(L)"\nlearning_rate = inf\nnew = "1"\n', "positive number"),
    ],
)
def test_non_finite_numbers_in_a_claim_are_named_not_crashes(claim, message) -> None:
    from symback.verification.claims import claims_from_text

    report = verify(claims_from_text(_TINY + claim))
    (verdict,) = report.verdicts
    assert report.exit_status == 2 and message in verdict.message


def test_an_infinite_true_value_matches_nothing_written() -> None:
    from symback.verification.claims import ClaimValue

    assert not ClaimValue.parse("-15.7").matches(float("inf"))
    assert not ClaimValue.parse("1", tolerance=1e300).matches(float("nan"))


def test_tex_and_markdown_tables_have_clean_rows_and_list_unreadable_claims() -> None:
    from symback.verification.claims import claims_from_text
    from symback.verification.verify import render

    text = _TINY + '[[claim]]\nquantity = "d(C)/d(b(L))"\nvalue = "2"\n[[claim]]\nquantity = "d(C)/d(nothing)"\nvalue = "1"\n'
    report = verify(claims_from_text(text))
    assert [v.status for v in report.verdicts][1] == "invalid"
    tex, md = render(report, "tex"), render(report, "md")
    assert not [line for line in tex.splitlines() if line.startswith(")")]
    assert any(line.startswith("2 & ") and "invalid" in line for line in tex.splitlines())
    assert any(line.startswith("| 2 |") and "invalid" in line for line in md.splitlines())


def test_check_of_a_wide_layer_with_a_tied_bias(monkeypatch) -> None:
    # Sampled entries and random directions leave the tie alone; it is checked as one shared parameter.
    from symback.compile.compiler import CompiledNetwork

    net = Network([300, 200, 3], ["tanh", "sigmoid"], "mse", names={"b(1)_0": "shared", "b(1)_150": "shared"})
    rng = np.random.default_rng(5)
    data = Dataset.from_arrays(rng.normal(size=(4, 300)), rng.uniform(0.1, 0.9, (4, 3)))
    params = Parameters.initialize(net, seed=3)
    params.set("shared", 0.2, net)
    monkeypatch.setattr("symback.verification.verify._torch_gradient", lambda *args: None)  # finite differences alone
    result = gradient_check(net, params, data)
    assert result.passed, result.text()
    honest = CompiledNetwork.gradient

    def corrupted(self, *args, **kwargs):  # the tie's derivative off by 10 %
        gradient = honest(self, *args, **kwargs)
        gradient.biases[0][[0, 150]] *= 1.1
        return gradient

    monkeypatch.setattr(CompiledNetwork, "gradient", corrupted)
    assert not gradient_check(net, params, data).passed


def test_claims_files_accept_the_notation_people_type() -> None:
    report = verify(claims_from_text(SIGMOID + """
[[claim]]
quantity = "dC/da(L)"
expression = "2(a(L) - y)"
[[claim]]
quantity = "da(L)/dz(L)"
expression = "a(L)(1 - a(L))"
[[claim]]
quantity = "dC/dw(L)"
expression = "2(a - y) σ′(z) x"
[[claim]]
quantity = "dE/db(L)"
expression = "δ"
"""))
    assert [v.status for v in report.verdicts] == [RIGHT] * 4, report.text()
    # A right expression is shown as written, not as SymPy's rewriting of it (1/(4 cosh²(z/2)) for a(1 - a)).
    assert report.verdicts[1].checks[0].expected == "a(L)(1 - a(L))"


def test_a_claim_never_follows_from_itself() -> None:
    # The step is wrong (the learning rate left out) and the new value follows from it: one wrong claim,
    # and no note that says it is consistent with its own line.
    report = verify(_claims('[[claim]]\nupdate = "b3"\nlearning_rate = 0.1\nslope = "-15.7"\nstep = "-15.7"\nnew = "15.7"\n'))
    (verdict,) = report.verdicts
    checks = {c.part: c for c in verdict.checks}
    assert checks["step"].status == WRONG and checks["new"].status == CARRIED
    assert verdict.carried_from == () and "line(s) 1" not in verdict.message and "line(s) 2" not in verdict.message


def test_wrong_lines_are_short_and_the_derivation_is_behind_explain(seed_report) -> None:
    assert "assembled:" not in seed_report.text()
    assert seed_report.text(explain=True).count("assembled:") >= 1


def test_a_wrong_claim_shows_the_chain_rule_line_it_concerns(seed_report) -> None:
    slope_line = seed_report.verdicts[9]  # the final b3: a descent, no single partial
    assert slope_line.status == WRONG
    first = seed_report.verdicts[0]  # ∂SSR/∂predicted: one factor, so no tautological chain line
    assert "chain rule" not in first.message
    report = verify(_claims('[[claim]]\nquantity = "dSSR/db3"\nvalue = "3"\n'))
    assert "chain rule: ∂SSR/∂b3 = ∂SSR/∂predicted · ∂predicted/∂z(L) · ∂z(L)/∂b3" in report.verdicts[0].message


_TWO_PARAMETERS = """
[network]
layers = [1, 1, 1]
activations = "sigmoid"
cost = "squared_error"
[names]
"w(L)" = "w2"
"w(L-1)" = "w1"
[parameters]
w1 = 0.8
"b(L-1)" = 0.1
w2 = -1.2
"b(L)" = 0.3
[data]
x = [1.0]
y = [0.2]
"""


@pytest.mark.parametrize("updates", ["simultaneous", "sequential", None])
def test_claims_follow_the_update_convention(updates) -> None:
    def partials(w2: float) -> tuple[float, float]:
        _, dW, _ = reference.gradients([1, 1, 1], ["sigmoid", "sigmoid"], "squared_error",
                                       [np.array([[0.8]]), np.array([[w2]])], [np.array([0.1]), np.array([0.3])],
                                       np.array([[1.0]]), np.array([[0.2]]))
        return float(dW[1][0, 0]), float(dW[0][0, 0])

    dw2, dw1 = partials(-1.2)
    new = -1.2 - 0.5 * dw2
    header = f'updates = "{updates}"\n' if updates else ""
    report = verify(claims_from_text(header + _TWO_PARAMETERS + f"""
[[claim]]
update = "w2"
learning_rate = 0.5
new = "{new:.5g}"
[[claim]]
quantity = "dC/dw1"
value = "{dw1:.5g}"
[[claim]]
quantity = "dC/dw2"
value = "{partials(new)[0]:.5g}"
"""))
    statuses = [v.status for v in report.verdicts]
    if updates == "sequential":
        assert statuses == [RIGHT, WRONG, RIGHT], report.text()
    else:  # simultaneous, the default: ∂C/∂w1 at the old w2, as backpropagation computes it
        assert statuses == [RIGHT, RIGHT, RIGHT], report.text()
        assert "before the update(s) of claim(s) 1" in report.verdicts[1].state
        assert "after the update(s) of claim(s) 1" in report.verdicts[2].state


# -- saturated units: the oracles cannot resolve them, a 50-digit evaluation referees -----------------


def test_check_passes_at_saturated_tanh_where_autograd_rounds_to_zero() -> None:
    """tanh′(37) = 1 − tanh²(37) rounds to 0 in PyTorch's backward; the derived partial is right (mpmath)."""
    import mpmath

    net = Network([1, 1], "tanh", "squared_error")
    params = Parameters([np.array([[1.0]])], [np.zeros(1)])
    data = Dataset(np.array([[37.0]]), np.array([[0.5]]))
    result = gradient_check(net, params, data)
    assert result.passed, result.text()
    assert any("PyTorch autograd rounds" in line for line in result.refereed) or result.torch_layers is None
    with mpmath.workdps(120):  # the right value, from the formula, far beyond tanh's cancellation
        z = mpmath.mpf(37)
        true = float(2 * (mpmath.tanh(z) - mpmath.mpf("0.5")) / mpmath.cosh(z) ** 2 * z)
    from symback.compile.compiler import CompiledNetwork

    derived = float(CompiledNetwork(net).gradient(params, data).weights[0][0, 0])
    assert abs(derived - true) <= 1e-12 * abs(true)


def test_the_referee_never_excuses_a_wrong_derived_partial(monkeypatch) -> None:
    from symback.compile.compiler import CompiledNetwork

    net = Network([1, 1], "tanh", "squared_error")
    params = Parameters([np.array([[1.0]])], [np.zeros(1)])
    data = Dataset(np.array([[37.0]]), np.array([[0.5]]))
    honest = CompiledNetwork.gradient

    def corrupted(self, *args, **kwargs):
        gradient = honest(self, *args, **kwargs)
        gradient.weights[0][0, 0] *= 1.001  # 1e-3 off: autograd and differences disagree, and so does mpmath
        return gradient

    monkeypatch.setattr(CompiledNetwork, "gradient", corrupted)
    result = gradient_check(net, params, data)
    assert not result.passed, result.text()
    # Only the untouched bias (where autograd rounds to 0) is refereed; the corrupted weight stays failed.
    assert all("rounds 1 partial(s)" in line for line in result.refereed), result.text()


# -- one forward pass: a residual network ------------------------------------------------------------

RESIDUAL_SPEC = """
[network]
inputs = 2
cost = "half_squared_error"

[[layer]]
size = 2
activation = "tanh"

[[layer]]
kind = "residual"
size = 2
activation = "tanh"
skip = 0

[[layer]]
size = 1
activation = "identity"

[data]
x = [[0.3, -0.7], [1.1, 0.4], [-0.2, 0.9]]
y = [0.5, -0.1, 0.8]
"""


def _residual_stack(params: Parameters) -> list[tuple]:
    """The residual network above for tests/reference.py (a(2) = tanh(z(2)) + x)."""
    (W1, W2, W3), (b1, b2, b3) = params.weights, params.biases
    return [("dense", W1, b1, "tanh"), ("residual", W2, b2, "tanh", 2), ("dense", W3, b3, "identity")]


def test_residual_node_values_are_the_compiled_forward_pass(tmp_path):
    """verify's node values (numeric and symbolic per node) are the compiled forward pass, skip edge and all."""
    from symback.compile.compiler import compile_network
    from symback.verification.verify import _Engine

    (tmp_path / "residual.toml").write_text(RESIDUAL_SPEC)
    claims = _claims('[[claim]]\nquantity = "C"\nvalue = "1"\n', header=f'spec = "{(tmp_path / "residual.toml").as_posix()}"\n')
    engine = _Engine(claims)
    params, data = claims.spec.parameters, claims.spec.data
    forward = compile_network(engine.network).forward(params, data.X)
    oracle = reference.stack_forward(_residual_stack(params), data.X)  # plain NumPy, no symback
    environment = engine.environment(params)
    checked = 0
    for ref, symbol in engine.model.symbols.items():
        if ref.kind not in ("z", "a"):
            continue
        compiled = (forward.zs[ref.layer - 1] if ref.kind == "z" else forward.activations[ref.layer])[:, ref.j]
        by_hand = oracle[ref.layer - 1][0 if ref.kind == "z" else 1][:, ref.j]
        np.testing.assert_allclose(environment[symbol], compiled, rtol=0, atol=0)
        np.testing.assert_allclose(compiled, by_hand, rtol=1e-14, atol=1e-15)
        # The symbolic value of the node (in parameters and inputs only) evaluates to the same numbers.
        symbolic = [engine.value(engine.leaves(symbol), params, i) for i in range(len(data))]
        np.testing.assert_allclose(symbolic, compiled, rtol=1e-13, atol=1e-15)
        checked += 1
    assert checked == 2 * (2 + 2 + 1)
    # The skip edge is really in there: a(2) is not tanh(z(2)) alone.
    assert not np.allclose(forward.activations[2], np.tanh(forward.zs[1]))


def test_gradient_check_of_a_residual_network_differentiates_through_the_skip_edge():
    """The finite differences run the compiled forward pass, so a residual network's derived gradient
    passes; they equal central differences of a plain NumPy forward pass written here."""
    from symback.compile.compiler import compile_network
    from symback.verification.verify import _finite_differences

    net = Network([3, 3, 3, 3, 2], "tanh", "squared_error", skips={3: 1})
    params = Parameters.initialize(net, seed=1)
    rng = np.random.default_rng(0)
    data = Dataset.from_arrays(rng.standard_normal((5, 3)), rng.standard_normal((5, 2)))
    result = gradient_check(net, params, data)
    assert result.passed, result.layers
    if result.torch_layers is not None:  # autograd with the skip edge added
        assert max(error for _, error in result.torch_layers) < 1e-10

    def stack(p):
        (W1, W2, W3, W4), (b1, b2, b3, b4) = p.weights, p.biases
        return [("dense", W1, b1, "tanh"), ("dense", W2, b2, "tanh"),
                ("residual", W3, b3, "tanh", 2), ("dense", W4, b4, "tanh")]

    h = 1e-5
    differences = _finite_differences(compile_network(net), params, data, h)
    for layer in (1, 3):  # below the skip's source, and the residual layer itself
        W = params.weights[layer - 1]
        by_hand = np.empty(W.size)
        for index in range(W.size):
            costs = []
            for step in (h, -h):
                moved = params.copy()
                moved.weights[layer - 1].reshape(-1)[index] += step
                costs.append(reference.stack_cost(stack(moved), data.X, data.Y, "squared_error"))
            by_hand[index] = (costs[0] - costs[1]) / (2 * h)
        np.testing.assert_allclose(differences[layer - 1][0].reshape(-1), by_hand, rtol=1e-6, atol=1e-9)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mixed_networks(), seed=st.integers(0, 2**16))
def test_check_compares_every_layer_kind_with_pytorch_autograd(case, seed) -> None:
    """conv1d, conv2d (valid and same), recurrent with last-step and grid readouts, dense: the check's
    torch oracle no longer abstains, and the compiled gradient agrees with it to 1e-8 relative."""
    from .tools import require_module

    require_module("torch")
    network, grid = case
    rng = np.random.default_rng(seed)
    params = Parameters.initialize(network, "xavier", seed=seed)
    outputs = network.sizes[-1]
    Y = np.eye(outputs)[rng.integers(0, outputs, 3)]  # one-hot: a valid target for every cost drawn
    data = Dataset.from_arrays(rng.normal(size=(3, int(np.prod(grid)))), Y)
    result = gradient_check(network, params, data)
    assert result.torch_layers is not None, [layer.kind for layer in network.layers]
    assert len(result.torch_layers) == network.depth
    assert max(error for _, error in result.torch_layers) < 1e-8, result.torch_layers
    assert result.passed, result.layers


def test_check_torch_oracle_fails_on_a_true_convolution(monkeypatch) -> None:
    """The conv oracle can fail: written as a true convolution (the kernel flipped) instead of symback's
    cross-correlation, torch disagrees with the compiled gradient and the check fails."""
    from symback.spec.layer_table import network_from_tables
    from symback.verification import verify

    from .tools import require_module

    require_module("torch")
    network = network_from_tables({"inputs": [1, 6], "cost": "squared_error"}, [
        {"kind": "conv1d", "filters": 1, "kernel": [3], "activation": "tanh"}, {"size": 1, "activation": "identity"}])
    params = Parameters.initialize(network, seed=3)
    rng = np.random.default_rng(3)
    data = Dataset.from_arrays(rng.normal(size=(4, 6)), rng.normal(size=(4, 1)))
    assert gradient_check(network, params, data).passed
    correlation = verify._torch_convolution
    monkeypatch.setattr(verify, "_torch_convolution", lambda torch, layer, a, W, b: correlation(
        torch, layer, a, W.flip(-1), b))
    result = gradient_check(network, params, data)
    assert result.torch_layers is not None and max(error for _, error in result.torch_layers) > 1e-3
    assert not result.passed
