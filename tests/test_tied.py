"""Tied (shared) parameters: one user name given to several weights or biases is one parameter.

Mazur's 2-2-2 worked example (examples/mazur_222.toml) shares one bias per layer; its published
numbers are reproduced here to their printed digits, derived and compiled, and after one step.
Tied gradients are checked against central differences that move every entry of the shared value
together and against PyTorch autograd on one shared tensor (built here, not by symback).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpmath import mp, mpf

import symback
from symback import Dataset, Network, Parameters, derive
from symback.compile.compiler import Gradients, compile_network
from symback.errors import SpecError
from symback.render.report import _index_form_value
from symback.symbolic.network import NodeRef
from symback.training.dials import rank_dials
from symback.training.sweep import with_hidden_activation
from symback.training.train import Trainer, TrainingConfig, load_checkpoint, load_parameters, save_parameters
from symback.verification.verify import _finite_differences, _torch_gradient, gradient_check

from .conftest import EXAMPLES
from .tools import require_module

MAZUR = EXAMPLES / "mazur_222.toml"


@pytest.fixture
def mazur() -> symback.Spec:
    return symback.load_spec(MAZUR)


def _mazur_by_hand(bias_steps: bool = False) -> dict[str, mpf]:
    """Mazur's numbers worked out independently of symback, in 50-digit arithmetic."""
    mp.dps = 50
    s = lambda z: 1 / (1 + mp.exp(-z))  # noqa: E731
    x = [mpf("0.05"), mpf("0.10")]
    W1 = [[mpf("0.15"), mpf("0.20")], [mpf("0.25"), mpf("0.30")]]
    W2 = [[mpf("0.40"), mpf("0.45")], [mpf("0.50"), mpf("0.55")]]
    b1, b2, y, rate = mpf("0.35"), mpf("0.60"), [mpf("0.01"), mpf("0.99")], mpf("0.5")

    def forward(W1, b1, W2, b2):
        h = [s(W1[j][0] * x[0] + W1[j][1] * x[1] + b1) for j in range(2)]
        o = [s(W2[j][0] * h[0] + W2[j][1] * h[1] + b2) for j in range(2)]
        return h, o, sum((y[j] - o[j]) ** 2 / 2 for j in range(2))

    h, o, E = forward(W1, b1, W2, b2)
    d2 = [(o[j] - y[j]) * o[j] * (1 - o[j]) for j in range(2)]
    d1 = [sum(W2[q][j] * d2[q] for q in range(2)) * h[j] * (1 - h[j]) for j in range(2)]
    gW2 = [[d2[j] * h[k] for k in range(2)] for j in range(2)]
    gW1 = [[d1[j] * x[k] for k in range(2)] for j in range(2)]
    new_W1 = [[W1[j][k] - rate * gW1[j][k] for k in range(2)] for j in range(2)]
    new_W2 = [[W2[j][k] - rate * gW2[j][k] for k in range(2)] for j in range(2)]
    new_b1 = b1 - rate * sum(d1) if bias_steps else b1
    new_b2 = b2 - rate * sum(d2) if bias_steps else b2
    after = forward(new_W1, new_b1, new_W2, new_b2)[2]
    return {"E": E, "dE/dw5": gW2[0][0], "dE/db1": sum(d1), "dE/db2": sum(d2), "w5": new_W2[0][0],
            "w1": new_W1[0][0], "b1": new_b1, "E after": after}


def _entry(gradient: Gradients, ref: NodeRef) -> float:
    if ref.kind == "w":
        return float(gradient.weights[ref.layer - 1][ref.j, ref.k])
    return float(gradient.biases[ref.layer - 1][ref.j])


def _unfrozen(net: Network) -> Network:
    """The same network, names and ties with nothing frozen."""
    return Network(net.sizes, net.activations, net.cost, names={net.canonical_name(r): n for r, n in net.names.items()})


# -- Mazur's published numbers ----------------------------------------------------------------------


def test_mazur_spec_ties_one_bias_per_layer(mazur):
    net = mazur.network
    assert list(net.ties) == ["b1", "b2"]
    assert net.tied(net.resolve("b1")) == (NodeRef("b", 1, 0), NodeRef("b", 1, 1))
    assert net.n_parameters == 12 and net.n_distinct_parameters == 10
    assert mazur.parameters.biases[0].tolist() == [0.35, 0.35]
    assert mazur.parameters.biases[1].tolist() == [0.6, 0.6]
    assert mazur.parameters.named(net) == {
        "w1": 0.15, "w2": 0.2, "w3": 0.25, "w4": 0.3, "b1": 0.35,
        "w5": 0.4, "w6": 0.45, "w7": 0.5, "w8": 0.55, "b2": 0.6,
    }


def test_mazur_total_error_and_dE_dw5_derived_and_compiled(mazur):
    net, params, data = mazur.network, mazur.parameters, mazur.data
    compiled = compile_network(net)
    # E_total = 0.298371109: compiled, and from the symbolic model's own expression of E.
    assert f"{compiled.cost(params, data):.9f}" == "0.298371109"
    model = symback.symbolic.model.explicit_model(net)
    cost_expression = model.forward_expressions[NodeRef("C")]
    leaves = {model.symbols[r]: params.get(r) if r.is_parameter else data.X[0, r.j] if r.kind == "x" else data.Y[0, r.j]
              for r in model.symbols if r.kind in ("w", "b", "x", "y")}
    assert f"{float(cost_expression.xreplace(leaves)):.9f}" == "0.298371109"
    # ∂E/∂w5 = 0.082167041: the derivation's chain rule and the compiled gradient.
    assert f"{derive(net, 'w5').value(params, data):.9f}" == "0.082167041"
    assert f"{compiled.gradient(params, data).weights[1][0, 0]:.9f}" == "0.082167041"
    hand = _mazur_by_hand()
    assert compiled.cost(params, data) == pytest.approx(float(hand["E"]), rel=1e-14)


def test_mazur_one_training_step(mazur):
    """The post's step: w5 → 0.35891648, w1 → 0.149780716; E falls to 0.291027774.

    The post prints E after the step as 0.291027924.  That digit string cannot be reproduced: its own
    updated weights (and this independent 50-digit computation) give 0.291027774, 1.5e-7 lower; the two
    agree to the 6 digits 0.291028.  The post updates the weights only (a bias step would give E = 0.2857),
    so the spec freezes b1 and b2.
    """
    net, params, data = mazur.network, mazur.parameters, mazur.data
    config = TrainingConfig.from_section(mazur.sections["training"], progress=False)
    result = Trainer(net, config).fit(params, data)
    new = result.parameters.named(net)
    assert f"{new['w5']:.8f}" == "0.35891648"
    assert f"{new['w1']:.9f}" == "0.149780716"
    assert new["b1"] == 0.35 and new["b2"] == 0.6  # frozen, as in the post
    after = compile_network(net).cost(result.parameters, data)
    hand = _mazur_by_hand()
    assert after == pytest.approx(float(hand["E after"]), rel=1e-13)
    assert f"{after:.9f}" == "0.291027774"
    assert f"{after:.6f}" == f"{0.291027924:.6f}" == "0.291028"
    assert abs(after - 0.291027924) == pytest.approx(1.5e-7, abs=0.01e-7)
    # The post's own updated weights, as it prints them (9 digits), give 0.291027774 too.
    printed = mazur.parameters.copy()
    printed.update(net, {"w1": 0.149780716, "w2": 0.19956143, "w3": 0.24975114, "w4": 0.29950229,
                         "w5": 0.35891648, "w6": 0.408666186, "w7": 0.511301270, "w8": 0.561370121})
    assert f"{compile_network(net).cost(printed, data):.9f}" == "0.291027774"
    # The tied bias, trained: both entries move by the same step, η·(sum of the entries' partials).
    free = _unfrozen(net)
    result = Trainer(free, config).fit(params, data)
    hand = _mazur_by_hand(bias_steps=True)
    assert result.parameters.biases[0].tolist() == [pytest.approx(float(hand["b1"]), rel=1e-14)] * 2
    assert result.parameters.biases[0][0] == result.parameters.biases[0][1]
    assert compile_network(free).cost(result.parameters, data) == pytest.approx(float(hand["E after"]), rel=1e-13)


def test_mazur_tied_bias_derivative_is_the_sum_of_its_entries(mazur):
    net, params, data = mazur.network, mazur.parameters, mazur.data
    hand = _mazur_by_hand()
    explicit = derive(net, "b1")
    assert explicit.form == "explicit" and len(explicit.paths) == 4  # 2 entries × 2 outputs
    indexed = derive(net, "b1", form="indexed")
    assert derive(net, "b(1)_1").target == derive(net, "b1").target == NodeRef("b", 1, 0)
    partials = explicit.entry_partials(params, data)
    assert [name for name, _ in partials] == ["b(L-1)_0", "b(L-1)_1"]
    assert sum(value for _, value in partials) == pytest.approx(float(hand["dE/db1"]), rel=1e-14)
    for derivation in (explicit, indexed):
        assert derivation.value(params, data) == pytest.approx(float(hand["dE/db1"]), rel=1e-14)
        assert f"{derivation.value(params, data):.9f}" == "0.018725609"
    compiled = compile_network(net).gradient(params, data, respect_frozen=False)
    assert compiled.biases[0].tolist() == [pytest.approx(float(hand["dE/db1"]), rel=1e-14)] * 2
    assert compiled.biases[1].tolist() == [pytest.approx(float(hand["dE/db2"]), rel=1e-14)] * 2
    text = explicit.text(params, data)
    assert "b1 is one parameter shared by b(L-1)_0, b(L-1)_1" in text
    assert "∂E/∂b1 = ∂E/∂b(L-1)_0 + ∂E/∂b(L-1)_1 = 0.00877135 + 0.00995425 = 0.0187256" in text
    assert explicit.to_dict(params, data)["tied"]["entries"] == ["b(L-1)_0", "b(L-1)_1"]
    # The index form's product: a layer's whole set of biases summed over j, as the report evaluates it.
    assert isinstance(indexed.indexed_product, sp.Sum)
    assert [str(limit[0]) for limit in indexed.indexed_product.limits] == ["q", "j"]
    assert _index_form_value(indexed, params, data) == pytest.approx(float(hand["dE/db1"]), rel=1e-14)


# -- gradients against independent oracles ------------------------------------------------------------

TIES = {
    "bias per layer": ([3, 4, 2], {"b(1)_0": "c", "b(1)_1": "c", "b(1)_2": "c", "b(1)_3": "c"}),
    "weights across layers": ([2, 3, 3, 1], {"w(1)_0_1": "v", "w(2)_2_0": "v", "w(3)_0_1": "v"}),
    "weight and bias": ([2, 2, 2], {"w(2)_1_0": "u", "b(1)_1": "u"}),
    "in one neuron": ([3, 2, 1], {"w(1)_0_0": "s", "w(1)_0_1": "s", "w(1)_0_2": "s"}),
    "two ties": ([2, 3, 2], {"b(1)_0": "p", "b(1)_2": "p", "w(2)_0_0": "q", "w(2)_1_2": "q"}),
}


def _tied_setup(sizes, names, activation="tanh", cost="squared_error", seed=0):
    net = Network(sizes, activation, cost, names=names)
    rng = np.random.default_rng(seed)
    params = Parameters.initialize(net, "xavier", seed=seed)
    for name in net.ties:
        params.set_tied(net, net.resolve(name), float(rng.normal()))
    for bias, (layer, members) in zip(params.biases, enumerate(net.sizes[1:], 1)):
        untied = [j for j in range(members) if len(net.tied(NodeRef("b", layer, j))) == 1]
        bias[untied] = rng.normal(scale=0.3, size=len(untied))
    data = Dataset.from_arrays(rng.normal(size=(6, sizes[0])), rng.uniform(0.1, 0.9, size=(6, sizes[-1])))
    return net, params, data


def _cost_with_shared(net, params, data, name, value):
    """The cost by plain NumPy (not symback's kernels) with every entry of ``name`` set to ``value``."""
    weights = [w.copy() for w in params.weights]
    biases = [b.copy() for b in params.biases]
    for ref in net.tied(net.resolve(name)):
        if ref.kind == "w":
            weights[ref.layer - 1][ref.j, ref.k] = value
        else:
            biases[ref.layer - 1][ref.j] = value
    a = data.X
    for W, b in zip(weights, biases):
        a = np.tanh(a @ W.T + b)
    return float(((a - data.Y) ** 2).sum(axis=1).mean())


@pytest.mark.parametrize("case", sorted(TIES))
def test_tied_gradient_is_the_central_difference_of_the_shared_value(case):
    sizes, names = TIES[case]
    net, params, data = _tied_setup(sizes, names)
    gradient = compile_network(net).gradient(params, data)
    h = 1e-5
    for name, members in net.ties.items():
        value = params.get(members[0])
        numeric = (_cost_with_shared(net, params, data, name, value + h)
                   - _cost_with_shared(net, params, data, name, value - h)) / (2 * h)
        for ref in members:  # every entry holds the shared parameter's derivative
            entry = _entry(gradient, ref)
            assert entry == pytest.approx(numeric, rel=1e-7, abs=1e-10)
        assert derive(net, name).value(params, data) == pytest.approx(numeric, rel=1e-7, abs=1e-10)
        assert derive(net, name, form="indexed").value(params, data) == pytest.approx(numeric, rel=1e-7, abs=1e-10)
    # symback check: its central differences move the tied entries together, and it passes.
    differences = _finite_differences(compile_network(net), params, data, 1e-5)
    for members in net.ties.values():
        values = {float(differences[r.layer - 1][0 if r.kind == "w" else 1][(r.j, r.k) if r.kind == "w" else r.j])
                  for r in members}
        assert len(values) == 1
    result = gradient_check(net, params, data)
    assert result.passed, result.text()


def _torch_shared(torch, net, params, data, activation=None, cost=None):
    """Weight and bias tensors in which every tied entry reads one shared scalar tensor, and the cost."""
    activation = activation or torch.tanh
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in params.weights + params.biases]
    shared = {name: torch.tensor(params.get(members[0]), dtype=torch.float64, requires_grad=True)
              for name, members in net.ties.items()}

    def forward():
        arrays = list(leaves)
        for name, members in net.ties.items():
            for ref in members:
                index = ref.layer - 1 if ref.kind == "w" else net.depth + ref.layer - 1
                mask = torch.zeros_like(arrays[index])
                mask[(ref.j, ref.k) if ref.kind == "w" else ref.j] = 1
                arrays[index] = arrays[index] * (1 - mask) + shared[name] * mask
        a = torch.tensor(data.X)
        for W, b in zip(arrays[: net.depth], arrays[net.depth :]):
            a = activation(a @ W.T + b)
        y = torch.tensor(data.Y)
        return cost(a, y) if cost else ((a - y) ** 2).sum(1).mean()

    return leaves, shared, forward


@pytest.mark.parametrize("case", sorted(TIES))
def test_tied_gradient_matches_torch_with_one_shared_tensor(case):
    torch = require_module("torch")
    sizes, names = TIES[case]
    net, params, data = _tied_setup(sizes, names, seed=3)
    gradient = compile_network(net).gradient(params, data)
    leaves, shared, forward = _torch_shared(torch, net, params, data)
    forward().backward()
    checked = _torch_gradient(net, params, data)  # symback check's own PyTorch column
    for name, members in net.ties.items():
        for ref in members:
            assert _entry(gradient, ref) == pytest.approx(float(shared[name].grad), rel=1e-12, abs=1e-15)
            column = Gradients([w for w, _ in checked], [b for _, b in checked])
            assert _entry(column, ref) == pytest.approx(float(shared[name].grad), rel=1e-12, abs=1e-15)
    tied = {ref for members in net.ties.values() for ref in members}
    for ref in net.parameter_refs():
        if ref not in tied:
            index = ref.layer - 1 if ref.kind == "w" else net.depth + ref.layer - 1
            position = (ref.j, ref.k) if ref.kind == "w" else ref.j
            assert _entry(gradient, ref) == pytest.approx(float(leaves[index].grad[position]), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("optimizer", "torch_optimizer"), [("sgd", "SGD"), ("adam", "Adam")])
def test_training_a_tied_parameter_matches_torch(optimizer, torch_optimizer):
    """Several steps of SGD and Adam (and clip_norm, which counts a tied parameter once, as PyTorch's
    clip_grad_norm_ counts a shared tensor): the entries stay equal and match the shared tensor."""
    torch = require_module("torch")
    sizes, names = TIES["two ties"]
    net, params, data = _tied_setup(sizes, names, seed=5)
    config = TrainingConfig(optimizer=optimizer, learning_rate=0.05, epochs=7, clip_norm=0.5, progress=False)
    result = Trainer(net, config).fit(params, data)
    assert result.parameters.buffer is not None  # still one packed buffer
    leaves, shared, forward = _torch_shared(torch, net, params, data)
    everything = leaves + list(shared.values())
    opt = getattr(torch.optim, torch_optimizer)(everything, lr=0.05)
    for _ in range(7):
        opt.zero_grad()
        forward().backward()
        # symback's rule (PyTorch's clip_grad_norm_ adds 1e-6 to the norm): the shared tensor counts once.
        norm = float(torch.sqrt(sum((t.grad**2).sum() for t in everything)))
        if norm > 0.5:
            for t in everything:
                t.grad *= 0.5 / norm
        opt.step()
    for name, members in net.ties.items():
        values = [result.parameters.get(ref) for ref in members]
        assert values == [values[0]] * len(values)
        assert values[0] == pytest.approx(float(shared[name].detach()), rel=1e-12)
    tied = {ref for members in net.ties.values() for ref in members}
    flat = np.concatenate([t.detach().numpy().ravel() for t in leaves[: net.depth]] +
                          [t.detach().numpy() for t in leaves[net.depth:]])
    ours = np.concatenate([w.ravel() for w in result.parameters.weights] + list(result.parameters.biases))
    order = [r for l in range(1, net.depth + 1) for r in net.parameter_refs() if r.kind == "w" and r.layer == l] + [
        r for l in range(1, net.depth + 1) for r in net.parameter_refs() if r.kind == "b" and r.layer == l]
    untied = [i for i, r in enumerate(order) if r not in tied]
    np.testing.assert_allclose(ours[untied], flat[untied], rtol=1e-12)


def test_tied_gradient_norm_counts_the_parameter_once():
    sizes, names = TIES["bias per layer"]
    net, params, data = _tied_setup(sizes, names)
    compiled = compile_network(net)
    gradient = compiled.gradient(params, data)
    shared = gradient.biases[0][0]
    untied = np.concatenate([gradient.weights[0].ravel(), gradient.weights[1].ravel(), gradient.biases[1]])
    assert compiled.ties.norm(gradient) == pytest.approx(float(np.sqrt(untied @ untied + shared**2)), rel=1e-14)
    assert gradient.norm() == pytest.approx(float(np.sqrt(untied @ untied + 4 * shared**2)), rel=1e-14)


# -- every path: names, values, frozen, files, outputs ------------------------------------------------


def test_parameters_by_name_set_every_entry_and_unequal_values_are_refused():
    net = Network([2, 2, 1], names={"b(1)_0": "b1", "b(1)_1": "b1"})
    params = Parameters.initialize(net, seed=4)
    assert params.biases[0][0] == params.biases[0][1]
    weights = Parameters.initialize(net, "uniform", seed=4)  # draws the biases too: the tie takes the first
    assert weights.biases[0][0] == weights.biases[0][1]
    params.update(net, {"b1": 0.25})
    assert params.biases[0].tolist() == [0.25, 0.25]
    params.update(net, {"b(1)_1": 0.5})  # an entry's canonical name is the shared parameter too
    assert params.biases[0].tolist() == [0.5, 0.5]
    params.update(net, {"b(1)": [0.75, 0.75]})
    params.set("b1", 0.125)  # by name, on parameters that know their network: the whole parameter
    assert params.biases[0].tolist() == [0.125, 0.125]
    params.set(NodeRef("b", 1, 1), 0.375)  # an entry's NodeRef too
    assert params.biases[0].tolist() == [0.375, 0.375] and params.get("b1") == 0.375
    params.update(net, {"b(1)": [0.75, 0.75]})
    with pytest.raises(SpecError, match=r"tied parameter 'b1' has different values in its entries: "
                                        r"b\(L-1\)_0 = 0.1, b\(L-1\)_1 = 0.2"):
        params.update(net, {"b(1)": [0.1, 0.2]})
    params.biases[0][:] = [0.1, 0.2]  # set by hand, around the checks: training refuses to start
    with pytest.raises(SpecError, match="tied parameter 'b1' has different values"):
        Trainer(net, TrainingConfig(epochs=1, progress=False)).fit(params, Dataset.from_arrays([[0.0, 1.0]], [0.5]))


def test_frozen_and_trainable_take_a_tied_parameter_whole():
    names = {"b(1)_0": "b1", "b(1)_1": "b1", "b(2)_0": "c", "b(1)_2": "c"}
    net = Network([2, 3, 1], names=names, frozen=["b1"])
    assert net.frozen == {NodeRef("b", 1, 0), NodeRef("b", 1, 1)}
    assert Network([2, 3, 1], names=names, frozen=["b(1)_1"]).frozen == net.frozen
    assert Network([2, 3, 1], names=names, trainable=["c"]).frozen.isdisjoint({NodeRef("b", 2, 0), NodeRef("b", 1, 2)})
    with pytest.raises(SpecError, match="'c' is one parameter shared by b\\(L-1\\)_2, b\\(L\\): freeze all of its"):
        Network([2, 3, 1], names=names, frozen=["b(1)_*"])
    with pytest.raises(SpecError, match="only weights and biases can share a name"):
        Network([2, 3, 1], names={"b(1)_0": "h", "a(1)_1": "h"})


def test_files_keep_a_tied_parameter_in_each_entry(tmp_path, mazur):
    net, params, data = mazur.network, mazur.parameters, mazur.data
    path = tmp_path / "p.npz"
    save_parameters(path, params)
    assert load_parameters(path, net) == params
    broken = params.copy()
    broken.biases[0][1] = 0.4
    save_parameters(path, broken)
    with pytest.raises(SpecError, match="p.npz: tied parameter 'b1' has different values"):
        load_parameters(path, net)
    # A checkpoint resumes with the entries (and Adam's state for them) equal.
    free = _unfrozen(net)
    checkpoint = tmp_path / "c.npz"
    config = TrainingConfig(optimizer="adam", learning_rate=0.1, epochs=3, checkpoint=str(checkpoint), progress=False)
    first = Trainer(free, config).fit(params, data)
    longer = TrainingConfig(optimizer="adam", learning_rate=0.1, epochs=6, progress=False)
    again = Trainer(free, longer).fit(params, data, resume=load_checkpoint(checkpoint, free))
    straight = Trainer(free, longer).fit(params, data)
    assert first.parameters.biases[0][0] == first.parameters.biases[0][1]
    assert again.parameters == straight.parameters
    assert again.parameters.biases[1][0] == again.parameters.biases[1][1]


def test_summary_report_and_dials_show_a_tied_parameter_once(mazur, tmp_path):
    net, params, data = mazur.network, mazur.parameters, mazur.data
    summary = net.summary()
    assert "parameters  12 (8 weights, 4 biases); 10 distinct" in summary
    assert "tied        b1 = b(L-1)_0, b(L-1)_1; b2 = b(L)_0, b(L)_1" in summary
    assert "frozen      4 entries (2 parameters)" in summary
    gradients = compile_network(net).gradient(params, data, respect_frozen=False)
    dials = rank_dials(net, params, gradients=gradients, top=20)
    names = [dial.name for dial in dials]
    assert len(names) == 10 and sorted(names) == sorted(set(names))
    assert next(d for d in dials if d.name == "b1").partial == pytest.approx(0.018725609, abs=1e-9)
    from symback.render.report import write_report

    text = write_report(derive(net, "b1"), tmp_path / "b1.md", params=params, data=data).read_text()
    assert r"10 distinct, tied: b1 = b\(L-1\)\_0, b\(L-1\)\_1; b2 = b\(L\)\_0, b\(L\)\_1" in text
    assert with_hidden_activation(net, "tanh").ties == net.ties  # a sweep keeps the ties
    assert r"b1 is one parameter shared by b\(L-1\)\_0, b\(L-1\)\_1" in text  # Markdown-escaped
    assert r"= 0.00877135 \+ 0.00995425 = 0.0187256" in text


def test_derive_check_and_info_on_the_command_line(capsys):
    from symback.cli import main

    assert main(["derive", str(MAZUR), "--wrt", "b1"]) == 0
    out = capsys.readouterr().out
    assert "∂E/∂b1 = ∂E/∂b(L-1)_0 + ∂E/∂b(L-1)_1 = 0.00877135 + 0.00995425 = 0.0187256" in out
    assert "value:       ∂E/∂b1 = 0.0187256" in out
    assert main(["check", str(MAZUR)]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["info", str(MAZUR)]) == 0
    assert "tied        b1 = b(L-1)_0, b(L-1)_1" in capsys.readouterr().out


def _mazur_claims(tmp_path, title: str, claims: str):
    """A claims file on the Mazur example: its title and [[claim]] tables."""
    path = tmp_path / "claims.toml"
    path.write_text(f'title = "{title}"\nspec = "{MAZUR.as_posix()}"\n' + claims)
    return path


def test_verify_claims_naming_a_tied_parameter(tmp_path):
    claims = _mazur_claims(tmp_path, "Mazur's shared bias b1", '''

[[claim]]
text = "dE/db1 = 0.018725609"
quantity = "dE/db1"
value = "0.018725609"

[[claim]]
text = "new b1 = 0.35 - 0.5 * 0.018725609 = 0.340637195"
update = "b1"
learning_rate = 0.5
old = "0.35"
slope = "0.018725609"
new = "0.340637195"

[[claim]]
text = "then dE/db1 = 0.0187412"
quantity = "dE/db1"
value = "0.0187412"
''')
    from symback.verification.claims import load_claims
    from symback.verification.verify import verify

    report = verify(load_claims(claims))
    statuses = [verdict.status for verdict in report.verdicts]
    # The third value is the derivative after both entries moved (one entry alone would give 0.0187324).
    moved = load_claims(claims).spec
    alone = moved.parameters.copy()
    new = 0.35 - 0.5 * 0.018725609394704128
    moved.parameters.set_tied(moved.network, moved.network.resolve("b1"), new)
    alone.biases[0][0] = new  # one entry alone: through the array (set() moves the whole parameter)
    assert f"{derive(moved.network, 'b1').value(moved.parameters, moved.data):.6g}" == "0.0187412"
    assert f"{derive(moved.network, 'b1').value(alone, moved.data):.6g}" == "0.0187324"
    assert statuses == ["right", "right", "right"], report.text()


def test_readme_paragraph_quotes_what_the_example_gives(mazur, capsys):
    from symback.cli import main

    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("### Tied (shared) parameters"):readme.index("## How it works")]
    block = paragraph.split("```\n")[1]
    command, *shown = block.rstrip("\n").split("\n")
    assert command == "$ symback derive examples/mazur_222.toml --wrt b1"
    assert main(["derive", str(MAZUR), "--wrt", "b1"]) == 0
    assert capsys.readouterr().out.split("\n")[: len(shown)] == shown
    net, params, data = mazur.network, mazur.parameters, mazur.data
    compiled = compile_network(net)
    result = Trainer(net, TrainingConfig.from_section(mazur.sections["training"], progress=False)).fit(params, data)
    figures = {
        "E = {:.9f}": compiled.cost(params, data),
        "∂E/∂w5 = {:.9f}": compiled.gradient(params, data).weights[1][0, 0],
        "w5 = {:.8f}": result.parameters.weights[1][0, 0],
        "w1 = {:.9f}": result.parameters.weights[0][0, 0],
        "and E = {:.9f}": compiled.cost(result.parameters, data),
        "agree to {:.6f}": compiled.cost(result.parameters, data),
    }
    text = " ".join(paragraph.split())
    for pattern, value in figures.items():
        assert pattern.format(value) in text


def test_network_report_checks_a_tied_parameter_once():
    from symback.render.report import _check_rows

    sizes, names = TIES["two ties"]
    net, params, data = _tied_setup(sizes, names)
    rows = _check_rows(net, params, data)
    shown = [str(row.parameter.expr) for row in rows]
    assert shown.count("q") == 1 and shown.count("p") == 1  # w(L)_0_0 and w(L)_1_2 are both q
    for case in ("bias per layer", "weights across layers", "weight and bias", "in one neuron"):
        net, params, data = _tied_setup(*TIES[case])
        rows += _check_rows(net, params, data)
    for row in rows:
        assert float(row.difference) < 1e-12


@st.composite
def tied_networks(draw):
    """A small network and one or two ties drawn among its weights and biases (any layers, kinds)."""
    depth = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 3)) for _ in range(depth + 1)]
    refs = list(Network(sizes).parameter_refs())
    chosen = draw(st.lists(st.sampled_from(refs), min_size=2, max_size=min(6, len(refs)), unique=True))
    split = draw(st.integers(2, max(2, len(chosen) - 2))) if len(chosen) >= 4 else len(chosen)
    groups = [chosen[:split], chosen[split:]] if len(chosen) - split >= 2 else [chosen]
    probe = Network(sizes)
    names = {probe.canonical_name(ref): f"t{number}" for number, group in enumerate(groups) for ref in group}
    return Network(sizes, "sigmoid", "squared_error", names=names)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=tied_networks(), seed=st.integers(0, 2**16))
def test_random_ties_match_torch_elementwise(network, seed):
    torch = require_module("torch")
    rng = np.random.default_rng(seed)
    params = Parameters.initialize(network, "normal", seed=seed)
    data = Dataset.from_arrays(rng.normal(size=(4, network.sizes[0])), rng.uniform(0, 1, size=(4, network.sizes[-1])))
    gradient = compile_network(network).gradient(params, data)
    leaves, shared, forward = _torch_shared(torch, network, params, data, activation=torch.sigmoid)
    forward().backward()
    for name, members in network.ties.items():
        expected = float(shared[name].grad)
        floor = 1e-12 * max(1.0, abs(expected))
        for ref in members:
            entry = _entry(gradient, ref)
            assert abs(entry - expected) <= 1e-11 * max(abs(expected), floor) + floor
        assert derive(network, name).value(params, data) == pytest.approx(expected, rel=1e-11, abs=1e-14)


def test_a_long_tie_is_shown_by_its_ends_and_derived_once_per_layer():
    net = Network([3, 12, 1], "sigmoid", "squared_error", names={f"b(1)_{j}": "c" for j in range(12)})
    rng = np.random.default_rng(2)
    params = Parameters.initialize(net, seed=2)
    data = Dataset.from_arrays(rng.normal(size=(5, 3)), rng.uniform(size=(5, 1)))
    derivation = derive(net, "c", form="indexed")
    summary = derivation.tie_summary(params, data)
    assert summary.startswith("c is one parameter shared by b(L-1)_0, b(L-1)_1, b(L-1)_2, …, b(L-1)_11 (12 entries)")
    assert "∂C/∂c = Σ over the 12 entries of ∂C/∂entry = " in summary
    assert summary.endswith(f" = {derivation.value(params, data):.6g}")
    assert derivation.indexed_product.limits[-1][1:] == (0, 11)  # one Σ over j, not 12 terms
    numeric = compile_network(net).gradient(params, data).biases[0]
    assert numeric.tolist() == [pytest.approx(derivation.value(params, data), rel=1e-13)] * 12


def test_verify_carries_a_wrong_tied_value_whichever_entry_a_later_claim_names(tmp_path):
    """A wrong new b1 is the value of both entries: a later update naming the entry b(1)_1 starts from it
    as an error carried forward (it was judged right, 'consistent with the rounded values written earlier')."""
    claims = _mazur_claims(tmp_path, "a wrong shared bias, then its second entry", '''

[[claim]]
text = "new b1 = 0.35 - 0.5 * 0.018725609 = 0.312345"
update = "b1"
learning_rate = 0.5
old = "0.35"
slope = "0.018725609"
new = "0.312345"

[[claim]]
text = "b(1)_1 starts from 0.312345"
update = "b(1)_1"
learning_rate = 0.5
old = "0.312345"
''')
    from symback.verification.claims import load_claims
    from symback.verification.verify import CARRIED, WRONG, verify

    first, second = verify(load_claims(claims)).verdicts
    assert [check.status for check in first.checks if check.part == "new"] == [WRONG]
    (old,) = second.checks
    assert old.status == CARRIED, old
    assert "claim(s) 1" in old.note and "0.340637" in old.note


def test_auto_form_counts_the_paths_of_every_entry_of_a_tied_parameter():
    """auto picks the explicit form for at most 64 paths: 8 tied biases of 2-8-8-8 have 8 × 64 = 512."""
    assert derive(Network([2, 8, 8, 8], "sigmoid", "squared_error"), "b(1)_0").form == "explicit"  # untied: 64 paths
    tied = Network([2, 8, 8, 8], "sigmoid", "squared_error", names={f"b(1)_{j}": "c" for j in range(8)})
    assert derive(tied, "c").form == "indexed"
    assert derive(Network([2, 2, 2], names={"b(1)_0": "c", "b(1)_1": "c"}), "c").form == "explicit"  # 4 paths


def test_a_tied_parameter_is_evaluated_with_one_backward_pass(monkeypatch):
    """The index form's value and the entries' partials read one δ per layer for all of a tie's entries
    (each entry recomputed every layer's δ: 400 backward passes for a 400-entry tie)."""
    names = {f"w(1)_{j}_{k}": "v" for j in range(6) for k in range(3)}
    net = Network([3, 6, 2], "sigmoid", "squared_error", names=names)
    rng = np.random.default_rng(1)
    params = Parameters.initialize(net, seed=1)
    data = Dataset.from_arrays(rng.normal(size=(5, 3)), rng.uniform(size=(5, 2)))
    derivation = derive(net, "v", form="indexed")
    compiled = compile_network(net)
    calls = []
    original = compiled.deltas
    monkeypatch.setattr(compiled, "deltas", lambda *args: calls.append(1) or original(*args))
    value = derivation.value(params, data)
    assert sum(value for _, value in derivation.entry_partials(params, data)) == pytest.approx(value, rel=1e-13)
    assert len(calls) == 2  # one for the value, one for the 18 partials
    assert value == pytest.approx(float(compiled.gradient(params, data).weights[0][0, 0]), rel=1e-13)


def test_a_negative_partial_of_a_tie_is_written_with_a_minus_sign(mazur):
    text = derive(mazur.network, "b2").text(mazur.parameters, mazur.data)
    assert "∂E/∂b2 = ∂E/∂b(L)_0 + ∂E/∂b(L)_1 = 0.138499 − 0.0380982 = 0.1004" in text
