"""The spec's [[layer]] form (symback.spec.loader._layer_tables) and the residual example that uses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import symback
from symback import Dataset, spec_from_dict
from symback.errors import SpecError
from symback.grammar.tomlread import parse_toml
from symback.spec.loader import load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SPEC = """
[network]
inputs = 3
cost = "half_squared_error"

[[layer]]
size = 3
activation = "tanh"

[[layer]]
kind = "residual"
size = 3
activation = "tanh"
skip = 0

[[layer]]
size = 2
activation = "identity"
"""


def test_layer_tables_build_the_network():
    spec = spec_from_dict(parse_toml(SPEC))
    net = spec.network
    assert net.sizes == (3, 3, 3, 2)
    assert [layer.kind for layer in net.layers] == ["dense", "residual", "dense"]
    assert net.skips == {2: 0}
    assert [a.name for a in net.activations] == ["tanh", "tanh", "identity"]
    assert "a(L-1) = σ(z(L-1)) + x" in net.summary()


def test_layer_tables_equal_the_shorthand_where_both_apply():
    tables = spec_from_dict(parse_toml(SPEC.replace('kind = "residual"\n', "").replace("skip = 0\n", "")))
    shorthand = spec_from_dict(
        {"network": {"layers": [3, 3, 3, 2], "activations": ["tanh", "tanh", "identity"], "cost": "half_squared_error"}}
    )
    assert tables.network.sizes == shorthand.network.sizes
    assert tables.parameters == shorthand.parameters


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("inputs = 3\n", ""), "inputs = n"),
        (lambda t: t.replace("inputs = 3\n", "inputs = 3\nlayers = [3, 2]\n"), "give one of them"),
        (lambda t: t.replace("skip = 0\n", ""), "names the layer it adds"),
        (lambda t: t.replace('kind = "residual"\n', ""), "only a residual layer"),
        (lambda t: t.replace('kind = "residual"', 'kind = "resdual"'), "did you mean 'residual'"),
        (lambda t: t.replace("skip = 0", "skip = 0\nsizes = 3"), "did you mean 'size'"),
        (lambda t: t.replace("size = 2\n", ""), "needs size"),
        (lambda t: t.replace("skip = 0", "skip = 1"), "at least two"),
    ],
)
def test_bad_layer_tables_are_one_clear_error(edit, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict(parse_toml(edit(SPEC)))


def test_inputs_needs_the_layer_tables():
    with pytest.raises(SpecError, match="goes with"):
        spec_from_dict({"network": {"layers": [2, 1], "inputs": 2}})


def test_residual_example_loads_and_its_gradient_is_the_finite_difference():
    spec = load_spec(EXAMPLES / "residual_digits.toml")
    assert spec.network.skips == {3: 1}
    # A small version of the same graph (same layer kinds and skip), its gradient against differences.
    raw = parse_toml((EXAMPLES / "residual_digits.toml").read_text(encoding="utf-8"))
    raw["network"]["inputs"] = 4
    for layer in raw["layer"]:
        layer["size"] = 3 if layer["size"] == 20 else 2
    del raw["training"]
    small = spec_from_dict(raw)
    rng = np.random.default_rng(3)
    data = Dataset.from_arrays(rng.normal(size=(6, 4)), rng.random(size=(6, 2)))
    compiled = symback.CompiledNetwork(small.network)
    gradient = compiled.gradient(small.parameters, data)
    h = 1e-6
    for ref in list(small.network.parameter_refs())[::7]:
        up, down = small.parameters.copy(), small.parameters.copy()
        up.set(ref, small.parameters.get(ref) + h)
        down.set(ref, small.parameters.get(ref) - h)
        numeric = (compiled.cost(up, data) - compiled.cost(down, data)) / (2 * h)
        array = gradient.weights if ref.kind == "w" else gradient.biases
        index = (ref.j, ref.k) if ref.kind == "w" else (ref.j,)
        assert array[ref.layer - 1][index] == pytest.approx(numeric, rel=1e-6, abs=1e-9), ref


CONV_SPEC = """
[network]
inputs = [1, 6]
cost = "squared_error"
{extra}

[[layer]]
kind = "conv1d"
filters = 2
kernel = 3
activation = "tanh"

[[layer]]
size = 3
activation = "tanh"

[[layer]]
size = 1
activation = "sigmoid"
"""


@pytest.mark.parametrize(("extra", "layer"), [
    ('frozen = ["w(L-2)_0_1"]', "L-2"),   # an entry of the kernel, by the dense layers' grammar
    ('frozen = ["w(1)_*"]', "L-2"),       # the whole kernel
    ('frozen = ["w(L-1)_0_0"]', "L-1"),   # the readout of the 2×4 grid
    ('trainable = ["b(L)_0"]', "L-2"),    # every other entry frozen, the kernel's too
])
def test_frozen_entries_of_a_shaped_layer_are_refused_in_one_line(extra, layer):
    """They were held in a (j, k) mask of the dense view (8×6 for a 2×1×3 kernel): training crashed with
    a broadcasting ValueError."""
    with pytest.raises(SpecError, match=f"freezing entries of layer {layer} is not supported yet") as error:
        spec_from_dict(parse_toml(CONV_SPEC.format(extra=extra)))
    assert "\n" not in str(error.value)


def test_frozen_entries_of_the_dense_layers_after_a_flat_readout_train_as_frozen():
    spec = spec_from_dict(parse_toml(CONV_SPEC.format(extra='frozen = ["w(L)_0_1", "b(L)_0"]')))
    net = spec.network
    params = symback.Parameters.initialize(net, seed=0)
    rng = np.random.default_rng(0)
    data = Dataset(rng.normal(size=(4, 6)), rng.uniform(size=(4, 1)))
    from symback.training.train import Trainer, TrainingConfig

    trained = Trainer(net, TrainingConfig(epochs=3, learning_rate=0.5)).fit(params, data).parameters
    for name in ("w(L)_0_1", "b(L)_0"):
        assert trained.get(net.resolve(name)) == params.get(net.resolve(name))
    assert trained.get(net.resolve("w(L)_0_0")) != params.get(net.resolve("w(L)_0_0"))


def test_tied_entries_of_a_shaped_layer_are_refused_in_one_line():
    text = CONV_SPEC.format(extra="") + '\n[names]\n"w(L-2)_0_1" = "k"\n"w(L-2)_0_2" = "k"\n'
    with pytest.raises(SpecError, match="tying entries of layer L-2 is not supported yet: a conv1d layer") as error:
        spec_from_dict(parse_toml(text))
    assert "\n" not in str(error.value)
