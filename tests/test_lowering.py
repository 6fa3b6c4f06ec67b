"""symback.compile.lowering: every table pattern and the fallbacks against plain NumPy, and the patterns the
compiled networks use."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from symback import Network
from symback.compile.compiler import CompiledNetwork
from symback.compile.lowering import CONTRACTIONS, KnownFactor, canonical, contraction_of, lower

RNG = np.random.default_rng(7)
N = 5
j, k, m = sp.Idx("j", 4), sp.Idx("k", 3), sp.Idx("m", 2)
W, A, D, G = (sp.IndexedBase(name, real=True) for name in ("W", "A", "D", "G"))
BATCHED = {A, D, G}


def _arrays():
    return {W: RNG.normal(size=(4, 3)), A: RNG.normal(size=(N, 3)), D: RNG.normal(size=(N, 4)), G: RNG.normal(size=(N, 3))}


@pytest.mark.parametrize(
    ("expression", "out", "over_examples", "pattern", "numpy"),
    [
        (sp.Sum(W[j, k] * A[k], k), (j,), False, "jk,nk->nj", lambda a: a[A] @ a[W].T),
        (sp.Sum(W[j, k] * D[j], j), (k,), False, "jk,nj->nk", lambda a: a[D] @ a[W]),
        (D[j] * A[k], (j, k), True, "nj,nk->jk", lambda a: a[D].T @ a[A]),
        (D[j], (j,), True, "nj->j", lambda a: a[D].sum(axis=0)),
        (A[k] * G[k], (k,), False, "nk,nk->nk", lambda a: a[A] * a[G]),
    ],
)
def test_each_table_pattern_equals_plain_numpy(expression, out, over_examples, pattern, numpy):
    arrays = _arrays()
    kernel = lower(expression, out, batched=BATCHED, over_examples=over_examples)
    assert kernel.pattern == pattern
    np.testing.assert_allclose(kernel(arrays), numpy(arrays), rtol=1e-14, atol=1e-14)


def test_a_pattern_is_found_whatever_the_letters_and_operand_order():
    q, r = sp.Idx("q", 4), sp.Idx("r", 3)
    contraction = contraction_of(sp.Sum(D[q] * W[q, r], q), (r,), BATCHED)
    assert canonical(contraction.subscripts) in {canonical("nj,jk->nk"), canonical("jk,nj->nk")}
    assert lower(sp.Sum(D[q] * W[q, r], q), (r,), batched=BATCHED).pattern == "qr,nq->nr"


def test_out_writes_into_the_given_buffer():
    arrays = _arrays()
    buffer = np.empty((4, 3))
    kernel = lower(D[j] * A[k], (j, k), batched=BATCHED, over_examples=True)
    assert kernel(arrays, buffer) is buffer
    np.testing.assert_allclose(buffer, arrays[D].T @ arrays[A])


def test_an_unknown_contraction_falls_back_to_einsum():
    T = sp.IndexedBase("T", real=True)
    arrays = {**_arrays(), T: RNG.normal(size=(4, 3, 2))}
    kernel = lower(sp.Sum(T[j, k, m] * A[k] * D[j], j, k), (m,), batched=BATCHED)
    assert kernel.pattern.startswith("einsum")
    np.testing.assert_allclose(kernel(arrays), np.einsum("jkm,nk,nj->nm", arrays[T], arrays[A], arrays[D]))


def test_a_scaled_einsum_view_never_overwrites_its_operand():
    arrays = _arrays()
    before = arrays[G].copy()
    kernel = lower(G[k] / 2 + G[k] / 2, (k,), batched=BATCHED)
    np.testing.assert_allclose(kernel(arrays), before)
    assert np.array_equal(arrays[G], before)


def test_sums_of_terms_and_elementwise_remainders():
    arrays = _arrays()
    i = sp.Idx("i", 3)
    expression = A[k] * G[k] - A[k] * sp.Sum(A[i] * G[i], i) + sp.exp(A[k])
    kernel = lower(expression, (k,), batched=BATCHED)
    a, g = arrays[A], arrays[G]
    np.testing.assert_allclose(kernel(arrays), a * g - a * (a * g).sum(axis=1, keepdims=True) + np.exp(a))
    assert np.array_equal(arrays[A], a)  # operands untouched


def test_a_known_factor_scales_in_place_only_where_allowed():
    arrays = _arrays()
    z = sp.IndexedBase("z", real=True)
    known = {sp.cos(z[k]): KnownFactor(lambda a: np.full((N, 3), 2.0), lambda a, target: np.multiply(target, 2.0, out=target))}
    original = arrays[G].copy()
    copying = lower(sp.cos(z[k]) * G[k], (k,), batched=BATCHED | {z}, known=known)
    assert copying.pattern == "known ⊙ copy"
    np.testing.assert_allclose(copying(arrays), 2 * original)
    assert np.array_equal(arrays[G], original)
    in_place = lower(sp.cos(z[k]) * G[k], (k,), batched=BATCHED | {z}, known=known, overwritable={G})
    assert in_place(arrays) is arrays[G]
    np.testing.assert_allclose(arrays[G], 2 * original)


def test_the_table_holds_the_matrix_forms():
    for subscripts in ("jk,nk->nj", "jk,nj->nk", "nj,nk->jk", "nj->j"):
        assert canonical(subscripts) in CONTRACTIONS


@pytest.mark.parametrize(
    ("network", "deltas"),
    [
        (Network([6, 4, 4, 3], "sigmoid", "squared_error"), ["known ⊙ in place"] * 3),
        (Network([6, 4, 4, 3], ["relu", "tanh", "softmax"], "squared_error"), ["known ⊙ in place"] * 2 + ["nk,nk->nk + elementwise"]),
        (Network([6, 4, 4, 4, 3], "tanh", "squared_error", skips={3: 1}), ["known ⊙ in place"] * 2 + ["known ⊙ copy", "known ⊙ in place"]),
    ],
)
def test_compiled_networks_run_the_matrix_patterns(network, deltas):
    program = CompiledNetwork(network).program
    assert all(kernel.pattern == "jd,nd->nj + reference" for kernel in program.z_kernels)
    assert all(kernel.pattern.startswith("jk,nj->nk") for kernel in program.adjoint_kernels)
    assert [kernel.pattern for kernel in program.delta_kernels] == deltas
    assert [kernel.pattern for kernel in program.weight_kernels] == ["nj,nk->jk"] * network.depth
    assert [kernel.pattern for kernel in program.bias_kernels] == ["nj->j"] * network.depth


def test_the_compiled_step_is_generated_from_the_table_sources():
    program = CompiledNetwork(Network([6, 4, 3], "sigmoid", "squared_error")).program
    backward, gradients, forward = program.run_backward.source, program.run_gradients.source, program.run_forward.source
    assert "@ arrays[" in backward and "d *= c_" in backward  # D @ W, then σ' = a·σ(−z) in place
    assert gradients.count("matmul(") == 4 and ".T, arrays[" in gradients and "ones(" in gradients
    assert forward.count(".T") == 2 and "pair_0(" in forward


def test_lowering_depends_on_no_other_symback_module():
    """The table and its kernels take an array namespace and nothing of symback's (another backend plugs in)."""
    import ast
    from pathlib import Path

    import symback.compile.lowering

    tree = ast.parse(Path(symback.compile.lowering.__file__).read_text(encoding="utf-8"))
    relative = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert relative == []


def test_an_activation_free_of_z_is_its_own_term_not_an_addend():
    """a = c (a formula without z) must not be taken for σ(z) plus a skip source c (it gave 2c)."""
    network = Network([1, 2, 1], [{"formula": "3/4"}, "identity"], "ssr")
    program = CompiledNetwork(network).program
    assert program.a_rests == [None, None]
    X = np.array([[0.5], [1.0]])
    from symback import Parameters

    params = Parameters.initialize(network, seed=0)
    forward = CompiledNetwork(network).forward(params, X)
    np.testing.assert_array_equal(forward.activations[1], np.full((2, 2), 0.75))
    expected = 0.75 * params.weights[1].sum() + params.biases[1][0]
    np.testing.assert_allclose(forward.output[:, 0], [expected, expected])
