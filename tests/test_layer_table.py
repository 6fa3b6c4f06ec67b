"""The [[layer]] spec form: networks of any registered kind, and one clear line for a bad table."""

from __future__ import annotations

import subprocess
import sys

import pytest

import symback
from symback.errors import SpecError
from symback.spec.layer_table import network_from_tables

from .conftest import ROOT


def build(tables, **network):
    return network_from_tables({"inputs": [1, 6, 6], "cost": "squared_error", **network}, tables)


def test_shapes_follow_from_the_layers():
    network = build([
        {"kind": "conv2d", "filters": 3, "kernel": [3, 2], "padding": "same", "activation": "tanh"},
        {"kind": "conv2d", "filters": 2, "kernel": 2, "activation": "relu"},
        {"size": 4, "activation": "sigmoid"},
    ])
    assert network.sizes == (36, 108, 50, 4)
    assert [layer.grid for layer in network.layers] == [(3, 6, 6), (2, 5, 5), (4,)]
    assert network.weight_shapes == [(3, 1, 3, 2), (2, 3, 2, 2), (4, 2, 5, 5)]
    params = symback.Parameters.initialize(network, seed=0)
    assert [w.shape for w in params.weights] == network.weight_shapes


def test_spec_file_with_layer_tables(tmp_path):
    spec = symback.load_spec(ROOT / "examples" / "conv_digits.toml")
    assert spec.network.sizes == (625, 3528, 10)
    assert spec.network.n_parameters == 8 * 25 + 8 + 10 * 3528 + 10


@pytest.mark.parametrize("tables, network, message", [
    ([{"kind": "conv3d", "activation": "relu"}], {}, "unknown layer kind 'conv3d' (did you mean 'conv2d' or 'conv1d'?"),
    ([{"kind": "conv2d", "filter": 2, "kernel": 3, "activation": "relu"}], {}, "did you mean 'filters'?"),
    ([{"kind": "conv2d", "filters": 2, "kernel": 7, "activation": "relu"}], {}, "a 7×7 kernel does not fit an input of 6×6 (valid)"),
    ([{"kind": "conv2d", "filters": 2, "kernel": 3, "padding": "full", "activation": "relu"}], {}, "unknown padding 'full'"),
    ([{"kind": "recurrent", "hidden": 2, "activation": "tanh"}], {}, "a recurrent layer reads (steps, inputs), not 1×6×6"),
    ([{"size": 2, "activation": "tanh", "reads": "last"}], {}, 'reads must be "all" or, after a recurrent layer, "last"'),
    ([{"kind": "conv2d", "filters": 2, "kernel": 3, "activation": "relu"}, {"size": 0}], {}, "needs size = a positive integer"),
    ([{"size": 2, "activation": "tanh"}], {"layers": [1, 2]}, "give one of them"),
    ([{"size": 2, "activation": "tanh"}], {"activation": "tanh"}, "give one of them"),
    ([{"kind": "conv2d", "filters": 2, "kernel": 3, "activation": "relu"}, {"kind": "residual", "size": 2, "skip": 1}],
     {}, "a residual layer adds flat layers"),
    ([{"kind": "conv2d", "filters": 2, "kernel": 3, "activation": "relu", "hidden": 3}], {}, "unknown key 'hidden' in [[layer]] 1"),
])
def test_bad_tables_are_one_clear_error(tables, network, message):
    with pytest.raises(SpecError) as error:
        build(tables, **network)
    assert message in str(error.value)


def test_cli_refuses_a_bad_table_in_one_line(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('[network]\ninputs = [1, 6, 6]\n[[layer]]\nkind = "conv2d"\nfilters = 2\nkernel = 9\nactivation = "relu"\n')
    done = subprocess.run([sys.executable, "-m", "symback", "info", str(spec)], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "does not fit" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("example, lines", [
    ("conv_digits", ["layer L-1   conv2d relu, 8 filters, kernel 5×5, padding valid: 1×25×25 → 8×21×21",
                     "layer L     dense 10 softmax, reads all of 8×21×21"]),
    ("rnn_digits", ["layer L-1   recurrent tanh, hidden 16, 25 steps of 25 inputs",
                    "layer L     dense 10 softmax, reads the last of 25 steps"]),
    ("residual_digits", ["layer L-3   dense 20 sigmoid", "layer L-2   dense 20 sigmoid",
                         "layer L-1   residual 20 sigmoid, skip from a(l-2)", "layer L     dense 10 sigmoid"]),
])
def test_info_shows_each_layer_kind_and_its_settings(example, lines, capsys):
    """``symback info`` on a [[layer]] spec: one line a layer, in order, after the activations."""
    from symback.cli import main

    assert main(["info", str(ROOT / "examples" / f"{example}.toml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("layer ")] == lines
    assert out.index(lines[0]) == 2 and out[1].startswith("activations ")


def test_a_dense_table_stack_has_no_layer_lines():
    """[[layer]] tables of plain dense layers describe the same network as ``layers = [...]``: the same summary."""
    tables = network_from_tables({"inputs": 3}, [{"size": 4, "activation": "tanh"}, {"size": 2}])
    assert tables.summary() == symback.Network([3, 4, 2], ["tanh", "sigmoid"], tables.cost.name).summary()
    assert "layer " not in tables.summary()


@pytest.mark.parametrize("skip", [0, 1])
def test_a_residual_skip_from_a_grid_is_refused_in_one_line(skip):
    """A residual layer adds its source entry by entry with one flat index; a grid source (a conv layer,
    a shaped input) has no such index: refused with the reason, not a crash in the lowering."""
    tables = [{"kind": "conv1d", "filters": 1, "kernel": [3], "padding": "same", "activation": "tanh"},
              {"size": 6, "activation": "tanh"}, {"kind": "residual", "size": 6, "skip": skip, "activation": "tanh"},
              {"size": 1}]
    refusal = rf"^\[\[layer\]\] 3 \(residual\): its skip source, layer {skip}, is a grid of 1×6"
    with pytest.raises(SpecError, match=refusal):
        network_from_tables({"inputs": [1, 6]}, tables)
    # After the convolution, a skip from a flat layer (dense layer 2) builds, and its gradient checks.
    import numpy as np

    from symback import Dataset, Parameters
    from symback.verification.verify import gradient_check

    dense = {"size": 6, "activation": "tanh"}
    network = network_from_tables({"inputs": [1, 6]}, [tables[0], dense, dense, {**tables[2], "skip": 2}, tables[3]])
    assert [layer.kind for layer in network.layers] == ["conv1d", "dense", "dense", "residual", "dense"]
    rng = np.random.default_rng(0)
    data = Dataset.from_arrays(rng.normal(size=(3, 6)), rng.uniform(size=(3, 1)))
    result = gradient_check(network, Parameters.initialize(network, seed=1), data)
    assert result.passed, result.layers
