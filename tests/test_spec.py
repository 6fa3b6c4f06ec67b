"""Spec files: the documented format loads; every kind of bad input is one line naming the problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import symback
from symback import SpecError, SymbackError, load_spec
from symback.errors import FormulaError, UnknownNameError

README = Path(__file__).resolve().parent.parent / "README.md"


def test_seed002_spec(seed002):
    net = seed002.network
    assert net.sizes == (1, 2, 1)
    assert [a.name for a in net.activations] == ["softplus", "identity"]
    assert net.cost.name == "ssr"
    named = seed002.parameters.named(net)
    assert named == {"w1": 3.34, "w2": -3.53, "b1": -1.43, "b2": 0.57, "w3": -1.22, "w4": -2.30, "b3": 0.0}
    assert len(net.frozen) == 6 and net.resolve("b3") not in net.frozen
    assert seed002.data.X[:, 0].tolist() == [0, 0.5, 1]


def test_readme_spec_example_is_the_shipped_file(tmp_path):
    """The README's complete example must load and describe the same network as examples/seed002.toml."""
    block = re.search(r"```toml\n(\[network\].*?)```", README.read_text(encoding="utf-8"), re.S).group(1)
    path = tmp_path / "readme.toml"
    path.write_text(block, encoding="utf-8")
    spec = load_spec(path)
    shipped = load_spec(Path(__file__).resolve().parent.parent / "examples" / "seed002.toml")
    assert spec.parameters == shipped.parameters
    assert spec.network.sizes == shipped.network.sizes


def _write(tmp_path, text):
    path = tmp_path / "spec.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[network]\nlayers = [1, 0, 1]\n', "layer 1 has width 0"),
        ('[network]\nlayers = [1, 1]\nactivations = "wobble"\n', "unknown activation 'wobble'"),
        ('[network]\nlayers = [1, 1]\nactivations = {formula = "z + q"}\n', "unknown symbol 'q'"),
        ("[network]\nlayers = [1, 1]\nactivations = {formula = \"__import__('os').system('x')\"}\n", "unexpected character"),
        ('[network]\nlayers = [1, 1]\ncost = {formula = "(a - y)^2 + k"}\n', "unknown symbol 'k'"),
        ('[network]\nlayers = [1, 1]\n[parameters]\nw9 = 1\n', "unknown name 'w9'"),
        ('[network]\nlayers = [1, 1]\n[parameters]\n"w(L)" = "big"\n', "must be numeric"),
        ('[network]\nlayers = [1, 2]\n[parameters]\n"w(L)" = [1, 2, 3]\n', "needs shape (2, 1)"),
        ('[network]\nlayers = [1, 1]\n[data]\nx = [1, 2]\ny = [1]\n', "2 inputs but 1 targets"),
        ('[network]\nlayers = [2, 1]\n[data]\nx = [1, 2]\ny = [1, 2]\n', "1 column(s) but the network has 2 input(s)"),
        ('[network]\nlayers = [1, 1]\n[data]\nx = [1]\n', "needs both x and y"),
        ('[network]\nlayers = [1, 1]\nwidth = 3\n', "unknown key 'width' in [network]"),
        ('[netwerk]\nlayers = [1, 1]\n', "unknown section [netwerk]"),
        ('[names]\nx = "q"\n', "missing [network]"),
        ('[network]\nlayers = [1, 1\n', "invalid TOML"),
        ('[network]\nlayers = [1, 1]\n[init]\nmethod = "zeros"\n', "unknown initialisation 'zeros'"),
        ('[network]\nlayers = [1, 1]\n[init]\nseed = "x"\n', "seed must be an integer"),
        ('[network]\nlayers = [1, 1]\n[init]\nseed = -1\n', "seed must be an integer >= 0, not -1"),
        ('[network]\nlayers = [1, 1]\n[init]\nmethod = ["he"]\n', "[init] method must be a name"),
    ],
)
def test_bad_specs(tmp_path, text, message):
    with pytest.raises(SymbackError) as info:
        load_spec(_write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file():
    with pytest.raises(SpecError, match="not found"):
        load_spec("/nonexistent/spec.toml")


def test_whole_layer_values_and_init(tmp_path):
    spec = load_spec(
        _write(
            tmp_path,
            '[network]\nlayers = [2, 2, 1]\n[init]\nmethod = "he"\nseed = 4\n'
            '[parameters]\n"w(1)" = [[1, 2], [3, 4]]\n"b(L)" = 0.5\n',
        )
    )
    assert spec.parameters.weights[0].tolist() == [[1, 2], [3, 4]]
    assert spec.parameters.biases[1].tolist() == [0.5]
    again = symback.Parameters.initialize(spec.network, "he", seed=4)
    assert spec.parameters.weights[1].tolist() == again.weights[1].tolist()


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ('[network]\nlayers = [1, 1]\nactivations = "wobble"\n', UnknownNameError, "unknown activation 'wobble'"),
        ('[network]\nlayers = [1, 1]\nactivations = {formula = "z + q"}\n', FormulaError, "unknown symbol 'q'"),
        ('[network]\nlayers = [1, 1]\n[parameters]\nw9 = 1\n', UnknownNameError, "unknown name 'w9'"),
    ],
)
def test_every_spec_error_names_the_file_and_keeps_its_class(tmp_path, text, kind, message):
    path = _write(tmp_path, text)
    with pytest.raises(kind) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
