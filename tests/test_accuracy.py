"""Every number right: the compiled kernels and the symbolic evaluation against 50-digit mpmath.

Tolerances are elementwise and relative: |got − true| ≤ 1e-13·|true| (float64), with two
allowances a float64 result cannot avoid, both stated where they are used:

* the *condition* allowance ``4·eps·|z·f'(z)|``: the error that rounding z itself by half an ulp
  makes.  It matters only beside a zero of f (silu' at z ≈ −1.278), where no float64 evaluation of
  f can be relatively exact;
* the *underflow floor*: a true value below the smallest normal float64 (2.2e-308) is held to that
  floor absolutely, since subnormal numbers carry fewer than 53 bits themselves (tanh'(700) =
  4e-609 rounds to 0, as it must).
"""

from __future__ import annotations

import re
import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp

from symback import ACTIVATIONS, Dataset, Network, NodeRef, Parameters, derive, get_activation
from symback.compile.compiler import CompiledNetwork, _layer_kernels, erf_array, evaluate, logistic_array, logistic_pair
from symback.symbolic.activations import Z
from symback.symbolic.costs import A, Y

EPS = np.finfo(np.float64).eps
TINY = np.finfo(np.float64).tiny
RTOL = 1e-13
DIGITS = 50

# z over [−700, 700]: a uniform grid, the saturation region around ±36…40 and small |z| down to 1e-300
_rng = np.random.default_rng(0)
GRID = np.unique(np.concatenate([
    np.linspace(-700, 700, 1401),
    np.linspace(-45, 45, 1801) + 0.0123,
    _rng.uniform(-700, 700, 400),
    np.outer([-1, 1], 10.0 ** np.linspace(-300, 2, 60)).ravel(),
    [0.0],
]))


def _mp(expression: sp.Expr, wrt: sp.Symbol = Z):
    return sp.lambdify(wrt, expression, modules="mpmath")


def _truth(expression: sp.Expr, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The expression and its condition allowance |z·f'(z)| at every point, to 50 digits.

    The raw formulas cancel in mpmath too: at small |z| (ELU's e^z − 1 at z = −5e-55 loses 55
    digits) and at large |z| (1 − tanh(z)² at z = 119 loses 104): 50 digits beyond what each z can cost.
    """
    f, df = _mp(expression), _mp(sp.diff(expression, Z))
    values, conditions = [], []
    for z in points:
        with mpmath.workdps(_digits(z)):
            value, slope = f(mpmath.mpf(float(z))), df(mpmath.mpf(float(z)))
            values.append(float(value))
            conditions.append(float(abs(mpmath.mpf(float(z)) * slope)))
    return np.array(values), np.array(conditions)


def _digits(z: float) -> int:
    """50 digits, plus those the raw formulas can lose to cancellation at this z (see :func:`_truth`)."""
    return DIGITS + ((max(0, int(-np.log10(abs(z)))) + int(2 * abs(z) / np.log(10)) + 1) if z else 0)


def assert_exact(got: np.ndarray, true: np.ndarray, condition: np.ndarray, what: str) -> None:
    got = np.broadcast_to(np.asarray(got, dtype=np.float64), true.shape)
    allowed = np.maximum(RTOL * np.abs(true) + 4 * EPS * condition, RTOL * TINY)
    allowed = np.where(np.abs(true) < TINY, TINY, allowed)  # underflow floor, see the module docstring
    bad = ~(np.abs(got - true) <= allowed)
    if bad.any():
        worst = np.argmax(np.where(bad, np.abs(got - true) / np.maximum(np.abs(true), TINY), 0))
        raise AssertionError(f"{what}: {bad.sum()} of {bad.size} values off; at z = {GRID[worst]!r}: "
                             f"{got[worst]!r}, true {true[worst]!r}")


ELEMENTWISE = sorted(name for name in ACTIVATIONS if get_activation(name).elementwise)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_activation_and_its_derivative_compiled_and_symbolic_against_mpmath(name):
    activation = get_activation(name)
    value, value_condition = _truth(activation.formula, GRID)
    slope, slope_condition = _truth(activation.derivative, GRID)
    kernels = _layer_kernels(activation)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning on the way either
        # compiled, as the training forward and backward passes compute them
        z = GRID.reshape(-1, 1).copy()
        a, c = kernels.forward_pair(z.copy())
        sigma_prime = kernels.sigma_prime(z, a, c)
        # symbolic: the derivation's expressions as Derivation.value and verify evaluate them
        symbolic_value = evaluate(activation.formula, {Z: GRID}, len(GRID))
        symbolic_slope = evaluate(activation.derivative, {Z: GRID}, len(GRID))
    assert_exact(a.ravel(), value, value_condition, f"compiled {name}")
    assert_exact(sigma_prime.ravel(), slope, slope_condition, f"compiled {name}'")
    assert_exact(symbolic_value, value, value_condition, f"symbolic {name}")
    assert_exact(symbolic_slope, slope, slope_condition, f"symbolic {name}'")
    if c is not None:  # σ(−z) = 1 − a, as a sigmoid layer keeps it (the truth by σ(−z): 1 − a cancels in mpmath too)
        complement, condition = _truth(activation.formula.subs(Z, -Z), GRID)
        assert_exact(c.ravel(), complement, condition, f"1 - {name}")


def test_softmax_rows_against_mpmath():
    rng = np.random.default_rng(3)
    z = rng.uniform(-700, 700, size=(200, 4))
    z[:50] = rng.uniform(-40, 40, size=(50, 4))
    got = _layer_kernels(get_activation("softmax")).forward(z)
    with mpmath.workdps(DIGITS):
        true = np.array([[float(mpmath.exp(v) / mpmath.fsum(mpmath.exp(u) for u in row))
                          for v in (mpmath.mpf(float(x)) for x in row)] for row in z])
    # each a_j = e^{z_j − max}/Σ e^{z − max}: condition |z_j − max|-fold through exp, on |z| ≤ 700
    condition = np.abs(z - z.max(axis=1, keepdims=True)) * np.abs(true) + np.abs(true)
    for row in range(len(z)):
        assert_exact(got[row], true[row], condition[row], "softmax")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logistic_array_is_relatively_exact_in_its_dtype(dtype):
    """Both forms (1/(1 + e^{−x}); e^{min(x,0)}/(1 + e^{−|x|}) below −log(max)), in place and not."""
    eps, tiny = np.finfo(dtype).eps, np.finfo(dtype).tiny
    x = GRID.astype(dtype)
    with mpmath.workdps(DIGITS):
        true = np.array([float(1 / (1 + mpmath.exp(-mpmath.mpf(float(v))))) for v in x])
        true_complement = np.array([float(1 / (1 + mpmath.exp(mpmath.mpf(float(v))))) for v in x])
    bound = float(-np.floor(np.log(np.finfo(dtype).max)))
    for points in (x[x >= bound], x):  # the fast form alone, then an array reaching below the bound
        expected = true[x >= bound] if len(points) < len(x) else true
        expected_complement = true_complement[x >= bound] if len(points) < len(x) else true_complement
        for got in (logistic_array(points), logistic_array(points.copy(), out=None),
                    logistic_array(points.copy(), out=np.empty_like(points))):
            assert got.dtype == dtype
            error = np.abs(got.astype(np.float64) - expected)
            # float32's own rounding of the true value is half an ulp; σ is within 2 ulps of it
            assert np.all(error <= np.maximum(2 * eps * expected, tiny)), (dtype, np.max(error / expected))
        a, c = logistic_pair(points.copy())
        assert a.dtype == c.dtype == dtype
        assert np.all(np.abs(a.astype(np.float64) - expected) <= np.maximum(2 * eps * expected, tiny))
        assert np.all(np.abs(c.astype(np.float64) - expected_complement) <= np.maximum(2 * eps * expected_complement, tiny))
    # σ(−30), σ(−36), σ(−40): the tanh(x/2)/2 + 1/2 form gave 1.7e-4 and 4 % off, and 0
    with mpmath.workdps(DIGITS):
        for v in (-20.0, -30.0, -36.0, -40.0, -80.0):
            true_value = float(1 / (1 + mpmath.exp(-mpmath.mpf(v))))
            assert logistic_array(np.full(3, v, dtype=dtype))[0] == pytest.approx(true_value, rel=2 * float(eps))


def test_erf_array_against_mpmath_and_its_coefficients_come_from_the_script():
    import importlib.util
    from pathlib import Path

    import symback.compile.compiler as compiler

    rng = np.random.default_rng(1)
    x = np.concatenate([np.linspace(-7, 7, 4001), rng.uniform(-6, 6, 4000),
                        np.outer([-1, 1], 10.0 ** np.linspace(-300, 0.8, 200)).ravel(), [0.0, 1.0, 3.0, 6.0]])
    with mpmath.workdps(DIGITS):
        true = np.array([float(mpmath.erf(mpmath.mpf(float(v)))) for v in x])
    got = erf_array(x)
    assert np.all(np.abs(got - true) <= 1e-15 * np.abs(true))
    assert np.isnan(erf_array(np.array([np.nan]))[0]) and erf_array(np.array([np.inf, -np.inf])).tolist() == [1, -1]
    assert erf_array(np.float32([0.5])).dtype == np.float32
    path = Path(__file__).resolve().parent.parent / "scripts" / "make_erf_coefficients.py"
    spec = importlib.util.spec_from_file_location("make_erf_coefficients", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert tuple(script.taylor()) == compiler._ERF_TAYLOR
    assert tuple((float(a), float(b), tuple(script.chebyshev(a, b))) for a, b in script.PIECES) == compiler._ERFC_PIECES


# -- saturated units: ∂C/∂w and ∂C/∂b, symbolically, compiled, by verify and by check ------------------

# (activation, cost, targets): the units issue 13 names; z = w·x + b with w = 1, b = 0, x = z.
# Squared error is not taken at a target the unit saturates towards (tanh → 1 with y = 1): there
# ∂C/∂a = 2(a − y) is the difference of the output *as rounded* and y (tanh(20) rounds to 1), exact
# only to a's rounding.  Binary cross-entropy at y = 1 and y = 0 is covered: its δ cancels to
# −y·σ(−z) + (1 − y)·σ(z), with σ(−z) kept exactly.
UNITS = [
    ("sigmoid", "binary_cross_entropy", (0.0, 1.0)),
    ("tanh", "squared_error", (0.0, 0.5, -0.5)),
    ("softplus", "squared_error", (0.0, 1.0)),
    ("sigmoid", "squared_error", (0.0, 0.5)),
]
ZS = (-700.0, -100.0, -40.0, -37.0, -36.0, -20.0, -1.5, 0.5, 20.0, 36.0, 37.0, 40.0, 100.0, 700.0)


def _true_partials(network: Network, x: float, y: float) -> tuple[float, float]:
    """∂C/∂w and ∂C/∂b of one example at w = 1, b = 0, from the raw formulas at 50 digits."""
    activation, cost = network.activations[0], network.cost
    sigma, sigma_prime = _mp(activation.formula), _mp(activation.derivative)
    cost_prime = sp.lambdify((A, Y), cost.derivative, modules="mpmath")
    with mpmath.workdps(_digits(x)):
        z = mpmath.mpf(x)
        delta = cost_prime(sigma(z), mpmath.mpf(y)) * sigma_prime(z)
        return float(delta * z), float(delta)


def _close(got: float, true: float) -> bool:
    return abs(got - true) <= max(1e-12 * abs(true), TINY)


@pytest.mark.parametrize("activation, cost, targets", UNITS)
def test_saturated_units_symbolically_and_compiled_against_mpmath(activation, cost, targets):
    network = Network([1, 1], activation, cost)
    params = Parameters([np.array([[1.0]])], [np.zeros(1)])
    compiled = CompiledNetwork(network)
    failures = []
    for y in targets:
        for x in ZS:
            data = Dataset(np.array([[x]]), np.array([[y]]))
            true_w, true_b = _true_partials(network, x, y)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                gradient = compiled.gradient(params, data)
                got = {
                    "compiled w": float(gradient.weights[0][0, 0]), "compiled b": float(gradient.biases[0][0]),
                    "explicit w": derive(network, "w(1)_0_0", form="explicit").value(params, data),
                    "explicit b": derive(network, "b(1)_0", form="explicit").value(params, data),
                    "indexed w": derive(network, "w(1)_0_0", form="indexed").value(params, data),
                }
            for what, value in got.items():
                true = true_w if what.endswith("w") else true_b
                if not _close(value, true):
                    failures.append(f"{what} at x = {x}, y = {y}: {value!r}, true {true!r}")
    assert not failures, "\n".join(failures)


def test_verify_and_check_agree_at_a_saturated_sigmoid_with_binary_cross_entropy(tmp_path):
    """Issue 13: w = 1, b = 0, x = 36, y = 0: ∂C/∂w = 36.0 (was judged 37.6) and finite for x ≥ 37."""
    from symback.verification.claims import load_claims
    from symback.verification.verify import RIGHT, gradient_check, verify

    for x in (36.0, 37.0, 40.0, 700.0):
        (tmp_path / "unit.toml").write_text(
            '[network]\nlayers = [1, 1]\nactivations = ["sigmoid"]\ncost = "binary_cross_entropy"\n'
            f'[parameters]\n"w(1)_0_0" = 1.0\n"b(1)_0" = 0.0\n[data]\nx = [{x}]\ny = [0]\n', encoding="utf-8")
        true_w, true_b = _true_partials(Network([1, 1], "sigmoid", "binary_cross_entropy"), x, 0.0)
        (tmp_path / "claims.toml").write_text(
            'spec = "unit.toml"\n'
            f'[[claim]]\nquantity = "∂C/∂w(L)"\nvalue = "{true_w:.6g}"\n'
            f'[[claim]]\nquantity = "∂C/∂b(L)"\nvalue = "{true_b:.6g}"\n', encoding="utf-8")
        report = verify(load_claims(tmp_path / "claims.toml"))
        assert [v.status for v in report.verdicts] == [RIGHT, RIGHT], report.text()
        network = Network([1, 1], "sigmoid", "binary_cross_entropy")
        params = Parameters([np.array([[1.0]])], [np.zeros(1)])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = gradient_check(network, params, Dataset(np.array([[x]]), np.array([[0.0]])))
        assert result.passed and np.isfinite(result.worst), result.text()


# -- erf, max, min: formulas on the README's whitelist, through every numeric command ----------------------

FORMULA_SPECS = {
    "erf activation": ('activations = [{formula = "erf(z)"}, "identity"]', 'cost = "squared_error"'),
    "max activation": ('activations = [{formula = "max(z, 0.1*z)"}, "identity"]', 'cost = "squared_error"'),
    "min activation": ('activations = [{formula = "min(z, 0.1*z)"}, "identity"]', 'cost = "squared_error"'),
    "erf cost": ('activations = ["tanh", "identity"]', 'cost = {formula = "erf(a - y)^2"}'),
}


@pytest.mark.parametrize("case", sorted(FORMULA_SPECS))
def test_erf_max_min_work_in_every_numeric_command(case, tmp_path, capsys):
    from symback.cli import main

    activations, cost = FORMULA_SPECS[case]
    spec = tmp_path / "net.toml"
    spec.write_text(f"[network]\nlayers = [1, 2, 1]\n{activations}\n{cost}\n"
                    "[data]\nx = [-0.7, 0.2, 1.3]\ny = [0.1, -0.4, 0.9]\n", encoding="utf-8")
    for command in (["derive", str(spec), "--wrt", "w(1)_0_0"], ["check", str(spec)],
                    ["train", str(spec), "--epochs", "3"], ["report", str(spec), "--wrt", "w(1)_0_0", "-o", str(tmp_path / "r.md")]):
        assert main(command) == 0, (command, capsys.readouterr())
    out = capsys.readouterr().out
    assert "ok" in out and not re.search(r"\bnan\b", out)


# -- random networks, saturated ones included, adjudicated by mpmath -----------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def saturating_problems(draw):
    depth = draw(st.integers(1, 2))
    sizes = [draw(st.integers(1, 2)) for _ in range(depth + 1)]
    names = ["sigmoid", "tanh", "softplus", "silu", "elu", "identity"]
    activations = [draw(st.sampled_from(names)) for _ in range(depth)]
    cost = draw(st.sampled_from(["squared_error", "binary_cross_entropy"]))
    if cost == "binary_cross_entropy":
        activations[-1] = "sigmoid"
    seed = draw(st.integers(0, 2**16))
    scale = draw(st.sampled_from([1.0, 10.0, 40.0]))  # 40: most units saturated, σ(z) ~ e^{-40}
    return Network(sizes, activations, cost), seed, scale


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=saturating_problems())
def test_random_networks_gradient_entries_against_mpmath(problem):
    """Each entry of the compiled gradient, and the explicit derivation's value, to 1e-10 of its own size
    (the float64 sums over examples and paths can cancel: each entry is held to 1e-13 of the sum of the
    absolute values of its terms, computed at 50 digits too)."""
    network, seed, scale = problem
    rng = np.random.default_rng(seed)
    params = Parameters.initialize(network, "xavier", seed=seed)
    X = rng.normal(scale=scale, size=(3, network.sizes[0]))
    Y = (rng.integers(0, 2, size=(3, network.sizes[-1])).astype(float) if network.cost.name == "binary_cross_entropy"
         else rng.normal(size=(3, network.sizes[-1])))
    data = Dataset(X, Y)
    gradient = CompiledNetwork(network).gradient(params, data)
    for layer in range(1, network.depth + 1):
        for ref in (NodeRef("w", layer, 0, 0), NodeRef("b", layer, network.sizes[layer] - 1)):
            derivation = derive(network, ref, form="explicit")
            true, scale_of_terms = _mpmath_partial(derivation, params, data)
            compiled = float(gradient.weights[layer - 1][ref.j, ref.k] if ref.kind == "w" else gradient.biases[layer - 1][ref.j])
            for what, value in (("compiled", compiled), ("explicit", derivation.value(params, data))):
                allowed = max(1e-10 * abs(true), 1e-13 * scale_of_terms, TINY)
                assert abs(value - true) <= allowed, (what, network, ref, value, true, scale_of_terms)


def _mpmath_partial(derivation, params: Parameters, data: Dataset) -> tuple[float, float]:
    """∂C/∂target and Σ |path term| over examples and paths, each path in parameters, x and y, at 50 digits."""
    model = derivation.model
    paths = [model.substitute_forward(sp.Mul(*(f.derivative for f in path))) for path in derivation.paths]
    symbols = sorted(set().union(*(p.free_symbols for p in paths)), key=str)
    functions = [sp.lambdify(symbols, p, modules="mpmath") for p in paths]
    total, absolute = mpmath.mpf(0), mpmath.mpf(0)
    with mpmath.workdps(DIGITS + 30):
        for i in range(len(data)):
            values = []
            for symbol in symbols:
                ref = model.refs[symbol]
                number = (params.get(ref) if ref.kind in ("w", "b") else
                          data.X[i, ref.j] if ref.kind == "x" else data.Y[i, ref.j])
                values.append(mpmath.mpf(float(number)))
            for function in functions:
                term = function(*values)
                total += term
                absolute += abs(term)
    n = len(data) if derivation.reduction == "mean" else 1
    return float(total / n), float(absolute / n)
