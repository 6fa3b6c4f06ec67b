"""Convolution: the derived backward pass, its lowering, and the conv1d / conv2d layer kinds.

The derivation is checked symbolically (the chain rule applied to the layer's one local formula gives
∂C/∂a_i = Σ_j δ_j w_{i−j+P} and ∂C/∂w_m = Σ_j δ_j a_{j+m−P}, and that backward pass *is* the full
correlation of δ with the flipped kernel, term for term); the lowering against the position-by-position
loops of tests/reference.py and PyTorch's conv1d/conv2d.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.concrete.delta import deltasummation

from symback.compile import lowering_shifted as shifted
from symback.symbolic.layers_conv import ConvFormula

from . import reference
from .tools import require_module

DELTA = sp.IndexedBase("delta", real=True)


def collapse(expression: sp.Expr, *, no_piecewise: bool) -> sp.Expr:
    """Every ``Σ_m KroneckerDelta(…)·f(m)`` summed out by SymPy's delta summation."""

    def one(total: sp.Sum) -> sp.Expr:
        function, kept = total.function, []
        for limit in reversed(total.limits):
            if any(limit[0] in d.free_symbols for d in function.atoms(sp.KroneckerDelta)):
                function = deltasummation(function, limit, no_piecewise=no_piecewise)
            else:
                kept.insert(0, limit)
        return sp.Sum(function, *kept) if kept else function

    return expression.replace(lambda e: isinstance(e, sp.Sum), one)


def derived_input_gradient(formula: ConvFormula, *, no_piecewise: bool = True) -> tuple[sp.Expr, tuple]:
    """``∂C/∂a[γ, i] = Σ_o Σ_j δ[o, j] · ∂z[o, j]/∂a[γ, i]`` by the chain rule on the local formula."""
    o, positions = formula.output_indices()
    gamma, inputs = formula.input_indices()
    local = formula.z_expression(o, positions)
    partial = collapse(sp.diff(local, formula.a[(gamma, *inputs)]), no_piecewise=no_piecewise)
    return sp.Sum(DELTA[(o, *positions)] * partial, o, *positions), (gamma, inputs)


def derived_kernel_gradient(formula: ConvFormula) -> tuple[sp.Expr, tuple]:
    """``∂C/∂w[φ, γ, μ] = Σ_o Σ_j δ[o, j] · ∂z[o, j]/∂w[φ, γ, μ]`` (one example)."""
    o, positions = formula.output_indices()
    phi, gamma = sp.Idx("phi", formula.filters), sp.Idx("gamma", formula.channels)
    mus = tuple(sp.Idx(f"mu{d}", k) for d, k in enumerate(formula.kernel))
    local = formula.z_expression(o, positions)
    partial = collapse(sp.diff(local, formula.w[(phi, gamma, *mus)]), no_piecewise=True)
    total = collapse(sp.Sum(DELTA[(o, *positions)] * partial, o, *positions), no_piecewise=True)
    return total, (phi, gamma, mus)


# --- the derivation, symbolically -------------------------------------------------------------------------


@pytest.mark.parametrize("mode, P", [("valid", 0), ("same", 1)])
def test_derived_input_gradient_is_the_textbook_sum(mode, P):
    formula = ConvFormula(channels=2, filters=3, input_shape=(6,), kernel=(3,), padding=mode)
    derived, (gamma, (i,)) = derived_input_gradient(formula)
    o, (j,) = formula.output_indices()
    assert derived == sp.Sum(DELTA[o, j] * formula.w[o, gamma, i - j + P], o, j)


def test_derived_input_gradient_keeps_the_kernel_range():
    """With the range kept, a term appears only where the kernel offset i − j lies in 0…K−1."""
    formula = ConvFormula(channels=1, filters=1, input_shape=(5,), kernel=(2,), padding="valid")
    derived, (gamma, (i,)) = derived_input_gradient(formula, no_piecewise=False)
    derived = derived.subs(gamma, 0)
    w = formula.w
    assert sp.expand(derived.subs(i, 0).doit()) == DELTA[0, 0] * w[0, 0, 0]
    assert sp.expand(derived.subs(i, 2).doit()) == DELTA[0, 1] * w[0, 0, 1] + DELTA[0, 2] * w[0, 0, 0]
    assert sp.expand(derived.subs(i, 4).doit()) == DELTA[0, 3] * w[0, 0, 1]


@pytest.mark.parametrize("mode, P", [("valid", 0), ("same", 1)])
def test_derived_kernel_gradient_correlates_input_with_delta(mode, P):
    formula = ConvFormula(channels=2, filters=3, input_shape=(6,), kernel=(3,), padding=mode)
    derived, (phi, gamma, (mu,)) = derived_kernel_gradient(formula)
    _, (j,) = formula.output_indices()
    assert derived == sp.Sum(DELTA[phi, j] * formula.a[gamma, j + mu - P], j)


def test_derived_2d_gradients():
    formula = ConvFormula(channels=2, filters=2, input_shape=(5, 4), kernel=(3, 2), padding="same")
    derived, (gamma, (r, s)) = derived_input_gradient(formula)
    o, (j, k) = formula.output_indices()
    # (K − 1)//2 = 1 row and 0 columns of zeros on the left and top
    assert derived == sp.Sum(DELTA[o, j, k] * formula.w[o, gamma, r - j + 1, s - k], o, j, k)
    kernel, (phi, gamma, (mu0, mu1)) = derived_kernel_gradient(formula)
    assert kernel == sp.Sum(DELTA[phi, j, k] * formula.a[gamma, j + mu0 - 1, k + mu1], j, k)


def flipped_kernel_correlation(formula: ConvFormula, gamma: int, position: tuple[int, ...]) -> sp.Expr:
    """``Σ_o Σ_m δ̃[o, i + m] · w̃[γ, o, m]``: δ padded by ``K−1−P`` zeros on the left, the kernel flipped.

    Written independently of the derivation: the textbook statement that a convolution's input gradient
    is the full correlation of δ with the flipped kernel.
    """
    outputs, kernel, left = formula.output_shape, formula.kernel, formula.pads.left

    def padded_delta(o: int, t: tuple[int, ...]) -> sp.Expr:
        source = tuple(tt - (k - 1 - p) for tt, k, p in zip(t, kernel, left))
        inside = all(0 <= s < n for s, n in zip(source, outputs))
        return DELTA[(o, *source)] if inside else sp.S.Zero

    def flipped(o: int, m: tuple[int, ...]) -> sp.Expr:
        return formula.w[(o, gamma, *(k - 1 - mm for k, mm in zip(kernel, m)))]

    return sp.Add(*(
        padded_delta(o, tuple(i + mm for i, mm in zip(position, m))) * flipped(o, m)
        for o in range(formula.filters)
        for m in itertools.product(*(range(k) for k in kernel))
    ))


def _formulas_1d():
    for n in range(1, 7):
        for k in range(1, n + 1):
            yield ConvFormula(channels=1, filters=2, input_shape=(n,), kernel=(k,), padding="valid")
        for k in range(1, 5):
            yield ConvFormula(channels=2, filters=1, input_shape=(n,), kernel=(k,), padding="same")


def _formulas_2d():
    for (h, w), (kh, kw), mode in itertools.product([(3, 3), (4, 3)], [(1, 2), (2, 2), (3, 2)], ["valid", "same"]):
        yield ConvFormula(channels=2, filters=2, input_shape=(h, w), kernel=(kh, kw), padding=mode)


@pytest.mark.parametrize("formula", [*_formulas_1d(), *_formulas_2d()], ids=str)
def test_derived_backward_is_the_flipped_kernel_correlation(formula):
    """The derivation (range kept, summed out exactly) equals the flipped-kernel correlation, position by
    position: identical polynomials in the δ and w symbols."""
    derived, (gamma, inputs) = derived_input_gradient(formula, no_piecewise=False)
    for c in range(formula.channels):
        for position in itertools.product(*(range(n) for n in formula.input_shape)):
            value = derived.subs({gamma: c, **dict(zip(inputs, position))}).doit()
            assert sp.expand(value - flipped_kernel_correlation(formula, c, position)) == 0


# --- the lowering -----------------------------------------------------------------------------------------


@st.composite
def convolutions(draw):
    rank = draw(st.sampled_from([1, 2]))
    mode = draw(st.sampled_from(shifted.PADDINGS))
    shape = tuple(draw(st.integers(1, 6)) for _ in range(rank))
    kernel = tuple(draw(st.integers(1, n if mode == "valid" else 4)) for n in shape)
    return rank, mode, shape, kernel, draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(0, 2**16))


@settings(max_examples=40, deadline=None)
@given(case=convolutions())
def test_lowering_matches_the_position_by_position_reference(case):
    _, mode, shape, kernel, channels, filters, seed = case
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(3, channels, *shape))
    W = rng.normal(size=(filters, channels, *kernel))
    b = rng.normal(size=filters)
    pads = shifted.padding(kernel, mode)
    Z = reference.conv_forward(A, W, b, mode)
    np.testing.assert_allclose(shifted.correlate(A, W, pads) + b.reshape(1, -1, *[1] * len(shape)), Z, rtol=1e-12, atol=1e-12)
    D = rng.normal(size=Z.shape)
    dA, dW, db = reference.conv_backward(A, W, D, mode)
    np.testing.assert_allclose(shifted.correlate_transposed(D, W, pads, shape), dA, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(shifted.kernel_gradient(D, A, pads, kernel), dW, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(shifted.bias_gradient(D), db, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("mode", shifted.PADDINGS)
@pytest.mark.parametrize("size", [2, 3, 4])
def test_reference_matches_torch(rank, mode, size):
    """The reference loops themselves against torch.nn.functional.conv1d / conv2d and autograd."""
    torch = require_module("torch")
    rng = np.random.default_rng(size)
    A = rng.normal(size=(2, 2, *[6] * rank))
    W = rng.normal(size=(3, 2, *[size] * rank))
    b = rng.normal(size=3)
    tensors = [torch.tensor(x, requires_grad=True) for x in (A, W, b)]
    conv = torch.nn.functional.conv1d if rank == 1 else torch.nn.functional.conv2d
    with warnings.catch_warnings():  # PyTorch warns that an even 'same' kernel copies the input
        warnings.simplefilter("ignore", UserWarning)
        Z = conv(*tensors, padding=mode)
    D = rng.normal(size=tuple(Z.shape))
    (Z * torch.tensor(D)).sum().backward()
    np.testing.assert_allclose(reference.conv_forward(A, W, b, mode), Z.detach().numpy(), rtol=1e-12, atol=1e-12)
    for mine, theirs in zip(reference.conv_backward(A, W, D, mode), tensors):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_padding_and_output_shape():
    assert shifted.padding((4,), "same") == shifted.Padding((1,), (2,))
    assert shifted.output_shape((25, 25), (5, 5), shifted.padding((5, 5), "same")) == (25, 25)
    with pytest.raises(ValueError, match="unknown padding 'full'"):
        shifted.padding((3,), "full")
    with pytest.raises(ValueError, match="does not fit"):
        ConvFormula(channels=1, filters=1, input_shape=(3,), kernel=(4,), padding="valid")


# --- the chain-rule engine on networks with convolution layers ---------------------------------------------


def conv_network(rank: int, mode: str, *, channels: int = 1, filters: int = 2, size: int = 3, spatial: int = 5):
    """input (channels, spatial…) → conv (tanh) → dense 3 (sigmoid), squared error."""
    from symback import Network
    from symback.symbolic.activations import get_activation
    from symback.symbolic.layers_conv import GridDense
    from symback.symbolic.layers_conv1d import Conv1D
    from symback.symbolic.layers_conv2d import Conv2D

    kind = Conv1D if rank == 1 else Conv2D
    conv = kind.over((channels, *[spatial] * rank), get_activation("tanh"), filters=filters, kernel=(size,) * rank, padding=mode)
    top = GridDense(3, get_activation("sigmoid"), input_grid=conv.grid)
    inputs = channels * spatial**rank
    return Network([inputs, conv.width, 3], ["tanh", "sigmoid"], "squared_error", layers=[conv, top])


def zero_outside(expression: sp.Expr, shapes: dict) -> sp.Expr:
    """Every ``base[indices]`` with an integer index outside ``shapes[base]`` replaced by 0: the
    convention under which a derived ``w[o, γ, i − j + P]`` carries no explicit range."""

    def outside(e: sp.Expr) -> bool:
        shape = shapes.get(e.base)
        return shape is not None and all(i.is_Integer for i in e.indices) and any(
            not 0 <= int(i) < n for i, n in zip(e.indices, shape)
        )

    return expression.replace(lambda e: isinstance(e, sp.Indexed) and outside(e), lambda e: sp.S.Zero)


@pytest.mark.parametrize("rank, mode, size", [(1, "valid", 3), (1, "same", 2), (2, "valid", 2), (2, "same", 3)])
def test_engine_derives_the_flipped_kernel_correlation(rank, mode, size):
    """chain.derive_backward, given only the layer's formula, yields ∇a(input of the top conv) that is
    the flipped-kernel correlation of δ, position by position."""
    from symback.symbolic.chain import derive_backward
    from symback.symbolic.layers_conv2d import Conv2D

    network = conv_network(rank, mode, channels=2, size=size, spatial=6 if rank == 1 else 4)
    # a second convolution on top of the first, so the engine derives ∇a of a convolution's input
    first = network.layers[0]
    kind = type(first)
    second = kind.over(first.grid, first.activation, filters=2, kernel=(size,) * rank, padding=mode)
    from symback import Network
    from symback.symbolic.layers_conv import GridDense

    top = GridDense(3, network.layers[1].activation, input_grid=second.grid)
    network = Network([network.sizes[0], first.width, second.width, 3], ["tanh", "tanh", "sigmoid"], "squared_error",
                      layers=[first, second, top])
    backward = derive_backward(network)
    adjoint = backward.adjoints[1]
    w, delta = backward.model.parameter("w", 2), backward.delta[2]
    shapes = {w: second.parameter_shapes(0)["w"]}
    formula = ConvFormula(channels=2, filters=2, input_shape=first.grid[1:], kernel=second.kernel, padding=mode,
                          weight_name=str(w), output_name="unused")
    own = backward.own_index[1]
    assert isinstance(kind, type) and (rank == 2) == (kind is Conv2D)
    for position in itertools.product(*(range(n) for n in first.grid)):
        value = zero_outside(adjoint.xreplace(dict(zip(own, position))).doit(), shapes)
        expected = flipped_kernel_correlation(formula, position[0], position[1:]).xreplace({DELTA: delta})
        assert sp.expand(value - expected) == 0
    # and lowered: the transposed correlation, numerically the reference's ∂C/∂a
    kernel = shifted.match_shifted(adjoint, own, {delta})
    assert kernel.pattern == "correlate_transposed"
    rng = np.random.default_rng(0)
    W, D = rng.normal(size=shapes[w]), rng.normal(size=(3, *second.grid))
    A = rng.normal(size=(3, *first.grid))
    np.testing.assert_allclose(kernel({w: W, delta: D}), reference.conv_backward(A, W, D, mode)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rank, mode", [(1, "valid"), (1, "same"), (2, "valid"), (2, "same")])
def test_engine_derivation_lowers_to_the_shifted_patterns(rank, mode):
    """Each derived sum of a convolution layer is recognised by match_shifted and computes what the
    position-by-position reference computes."""
    from symback.symbolic.chain import derive_backward

    network = conv_network(rank, mode, channels=2, filters=3)
    conv = network.layers[0]
    backward = derive_backward(network)
    im = backward.model
    w, b, x = im.parameter("w", 1), im.parameter("b", 1), im.activations[0]
    delta = backward.delta[1]
    rng = np.random.default_rng(rank)
    n = 4
    X = rng.normal(size=(n, *conv.input_grid))
    W = rng.normal(size=conv.parameter_shapes(0)["w"])
    B = rng.normal(size=conv.filters)
    D = rng.normal(size=(n, *conv.grid))

    z_formula, _ = backward.forward[1]
    correlation = z_formula.args[0] if isinstance(z_formula.args[0], sp.Sum) else z_formula.args[1]
    forward = shifted.match_shifted(correlation, backward.neuron_index[1], {x, delta})
    assert forward.pattern == "correlate"
    np.testing.assert_allclose(forward({w: W, x: X}) + B.reshape(1, -1, *[1] * rank),
                               reference.conv_forward(X, W, B, mode), rtol=1e-12, atol=1e-12)

    dA, dW, dB = reference.conv_backward(X, W, D, mode)
    gradient = shifted.match_shifted(backward.gradients[1]["w"], backward.parameter_indices[1]["w"], {x, delta},
                                     over_examples=True)
    assert gradient.pattern == "kernel_gradient"
    np.testing.assert_allclose(gradient({delta: D, x: X}), dW, rtol=1e-12, atol=1e-12)


def test_conv_digits_example_fast():
    """examples/conv_digits.py --fast: the convolutional spec trains through the whole pipeline (spec,
    Parameters, the Trainer) and, after 2 epochs on 1,000 digits, beats the dense network's 2 epochs."""
    from .tools import load_example

    results = load_example("conv_digits").run(fast=True)
    conv, dense = results["convolutional"], results["dense 625-20-20-10"]
    assert conv["layers"][0] == "conv2d relu, 8 filters, kernel 5×5, padding valid: 1×25×25 → 8×21×21"
    assert conv["accuracy"] > 0.4 and conv["accuracy"] > dense["accuracy"]
