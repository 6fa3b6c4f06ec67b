"""The recurrent layer: backpropagation through time derived from its one formula, the scan lowering,
and the vanishing / exploding gradient of seed 003 as the chain rule states it."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symback.compile import lowering_scan
from symback.symbolic.activations import Z, get_activation
from symback.symbolic.layers_recurrent import RecurrentFormula

from . import reference
from .test_conv import DELTA, collapse
from .tools import require_module

# --- the derivation ---------------------------------------------------------------------------------------


def derived_state_gradient(formula: RecurrentFormula, *, no_piecewise: bool = True):
    """``Σ_t Σ_j δ[t, j] ∂z[t, j]/∂h[τ, κ]``: what the layer's own next step sends back to ``h[τ, κ]``."""
    t, j = formula.output_indices()
    tau, kappa = sp.Idx("tau", formula.steps), sp.Idx("kappa", formula.hidden)
    local = formula.z_expression(t, j)
    partial = collapse(sp.diff(local, formula.h[tau, kappa]), no_piecewise=no_piecewise)
    return collapse(sp.Sum(DELTA[t, j] * partial, t, j), no_piecewise=no_piecewise), (tau, kappa)


def derived_parameter_gradient(formula: RecurrentFormula, base: sp.IndexedBase, indices):
    t, j = formula.output_indices()
    partial = collapse(sp.diff(formula.z_expression(t, j), base[indices]), no_piecewise=True)
    return collapse(sp.Sum(DELTA[t, j] * partial, t, j), no_piecewise=True)


def test_bptt_recursion_is_derived():
    """∂C/∂h[τ, κ] receives Σ_j δ[τ+1, j] W[j, κ] from the next step: the BPTT recursion."""
    formula = RecurrentFormula(hidden=3, inputs=2, steps=5)
    derived, (tau, kappa) = derived_state_gradient(formula)
    j = sp.Idx("j", 3)
    assert derived == sp.Sum(DELTA[tau + 1, j] * formula.W[j, kappa], j)


def test_last_step_receives_nothing_from_later_steps():
    formula = RecurrentFormula(hidden=1, inputs=1, steps=3)
    derived, (tau, kappa) = derived_state_gradient(formula, no_piecewise=False)
    assert derived.subs({tau: 2, kappa: 0}).doit() == 0
    assert derived.subs({tau: 1, kappa: 0}).doit() == DELTA[2, 0] * formula.W[0, 0]


def test_parameter_gradients_sum_over_time():
    formula = RecurrentFormula(hidden=3, inputs=2, steps=5)
    phi, kappa, iota = sp.Idx("phi", 3), sp.Idx("kappa", 3), sp.Idx("iota", 2)
    t = sp.Idx("t", 5)
    assert derived_parameter_gradient(formula, formula.W, (phi, kappa)) == sp.Sum(DELTA[t, phi] * formula.h[t - 1, kappa], t)
    assert derived_parameter_gradient(formula, formula.U, (phi, iota)) == sp.Sum(DELTA[t, phi] * formula.x[t, iota], t)
    assert derived_parameter_gradient(formula, formula.b, (phi,)) == sp.Sum(DELTA[t, phi], t)


def unrolled_scalar_chain(activation: str, steps: int):
    """One hidden unit unrolled by hand in scalars: h_t = f(w h_{t−1} + u x_t + b), h_0 given."""
    f = get_activation(activation)
    w, u, b, h0 = sp.symbols("w u b h0", real=True)
    xs = sp.symbols(f"x1:{steps + 1}", real=True)
    h, zs = h0, []
    for x in xs:
        z = w * h + u * x + b
        zs.append(z)
        h = f.at(z)
    return h, h0, w, zs, f


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_gradient_through_time_is_a_product_of_one_factor_per_step(activation):
    """∂h_T/∂h_0 = Π_t w·f′(z_t): the classic vanishing-gradient derivation, by sympy.diff of the unrolled
    chain (independent of the index-form derivation above)."""
    steps = 3
    h_T, h0, w, zs, f = unrolled_scalar_chain(activation, steps)
    product = sp.Mul(*(w * f.derivative.subs(Z, z) for z in zs))
    difference = sp.diff(h_T, h0) - product
    point = {s: sp.Rational(p, 7) for s, p in zip(sorted(difference.free_symbols, key=str), [3, -2, 5, 1, -4, 2, 6])}
    assert abs(sp.N(difference.subs(point), 30)) < 1e-25


@pytest.mark.parametrize("activation, steepest", [("tanh", 1), ("sigmoid", sp.Rational(1, 4))])
def test_largest_slope_bounds_each_factor(activation, steepest):
    """SymPy finds max f′: each step back multiplies ‖∂C/∂h‖ by at most ‖W‖·max f′ (1 for tanh, 1/4 for σ)."""
    derivative = get_activation(activation).derivative
    critical = sp.solve(sp.diff(derivative, Z), Z)
    assert sp.simplify(max(derivative.subs(Z, c) for c in critical if c.is_real) - steepest) == 0


# --- the scan lowering ------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    activation=st.sampled_from(["tanh", "sigmoid", "relu", "identity"]),
    hidden=st.integers(1, 4), inputs=st.integers(1, 3), steps=st.integers(1, 6), seed=st.integers(0, 2**16),
)
def test_scan_matches_reference(activation, hidden, inputs, steps, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3, steps, inputs))
    W, U, b = rng.normal(size=(hidden, hidden)), rng.normal(size=(hidden, inputs)), rng.normal(size=hidden)
    f, df = reference.ACTIVATIONS[activation]
    Zr, Hr = reference.rnn_forward(X, W, U, b, activation)
    Zs, Hs = lowering_scan.scan_forward(X, W, U, b, f)
    np.testing.assert_allclose(Zs, Zr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Hs, Hr, rtol=1e-12, atol=1e-12)
    G = rng.normal(size=Hr.shape)
    dW, dU, db, dX, dH = reference.rnn_backward(X, W, U, Zr, Hr, G, activation)
    got = lowering_scan.scan_backward(X, Hs, G, W, U, lambda t: df(Zs[:, t]))
    for mine, theirs in ((got.W, dW), (got.U, dU), (got.b, db), (got.inputs, dX), (got.states, dH)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_reference_matches_torch_rnn(nonlinearity):
    torch = require_module("torch")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4, 6, 3))
    rnn = torch.nn.RNN(3, 5, nonlinearity=nonlinearity, batch_first=True, bias=True).double()
    with torch.no_grad():
        rnn.bias_hh_l0.zero_()
    Xt = torch.tensor(X, requires_grad=True)
    out, _ = rnn(Xt)
    G = rng.normal(size=tuple(out.shape))
    (out * torch.tensor(G)).sum().backward()
    W, U, b = (p.detach().numpy() for p in (rnn.weight_hh_l0, rnn.weight_ih_l0, rnn.bias_ih_l0))
    Z, H = reference.rnn_forward(X, W, U, b, nonlinearity)
    np.testing.assert_allclose(H, out.detach().numpy(), rtol=1e-12, atol=1e-12)
    dW, dU, db, dX, _ = reference.rnn_backward(X, W, U, Z, H, G, nonlinearity)
    for mine, theirs in ((dW, rnn.weight_hh_l0.grad), (dU, rnn.weight_ih_l0.grad), (db, rnn.bias_ih_l0.grad), (dX, Xt.grad)):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-11, atol=1e-11)


# --- the chain-rule engine on a network with a recurrent layer ---------------------------------------------


def recurrent_network(steps=4, inputs=3, hidden=2, activation="tanh"):
    from symback import Network
    from symback.symbolic.layers_conv import GridDense
    from symback.symbolic.layers_recurrent import Recurrent

    recurrent = Recurrent.over((steps, inputs), get_activation(activation), hidden=hidden)
    top = GridDense(2, get_activation("sigmoid"), input_grid=recurrent.grid)
    return Network([steps * inputs, recurrent.width, 2], [activation, "sigmoid"], "squared_error", layers=[recurrent, top])


def test_engine_derives_backpropagation_through_time():
    """From the layer's formula alone, the engine's ∇h[τ, κ] is the readout's term plus the next step's
    Σ_j δ[τ+1, j] W[j, κ]; ∂C/∂w sums δ[t]·h[t−1] (the W block) and δ[t]·x[t] (the U block) over time."""
    from symback.symbolic.chain import derive_backward

    network = recurrent_network()
    backward = derive_backward(network)
    tau, kappa = backward.own_index[1]
    w, delta = backward.model.parameter("w", 1), backward.delta[1]
    top_w, top_delta = backward.model.parameter("w", 2), backward.delta[2]
    unit, out = sp.Idx("j_1", 2), sp.Idx("j", 2)
    assert backward.adjoints[1] == (
        sp.Sum(top_delta[out] * top_w[out, tau, kappa], out) + sp.Sum(delta[tau + 1, unit] * w[unit, kappa], unit)
    )
    h, x = backward.model.activations[1], backward.model.activations[0]
    j, k = backward.parameter_indices[1]["w"]
    t = sp.Idx("i", 4)
    assert backward.gradients[1]["w"] == sp.Sum(h[t - 1, k] * delta[t, j], t) + sp.Sum(delta[t, j] * x[t, k - 2], t)
    assert backward.gradients[1]["b"] == sp.Sum(delta[t, j], t)


def test_rnn_gradients_example_fast(tmp_path):
    """examples/rnn_gradients.py --fast asserts its claims itself (vanishing with tanh and sigmoid,
    exploding with W×4, the linear W×1.3 run non-finite unclipped and learning clipped)."""
    from .tools import load_example

    results = load_example("rnn_gradients").run(tmp_path, fast=True)
    assert results["ratios"]["sigmoid, W×1"] < results["ratios"]["tanh, W×1"] < 1 < results["ratios"]["tanh, W×4"]
    assert "| identity, W×1.3 | none | non_finite |" in (tmp_path / "rnn_gradients.md").read_text()
