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


# -- issue 11: specs at the edges: one line, exit 2, at once -----------------------------------------

L = "[network]\nlayers = [1, 1]\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # tomllib recursed once per bracket: RecursionError
        ("[network]\nlayers = " + "[" * 1000 + "]" * 1000 + "\n", "line 2 nests arrays and tables more than 32 levels deep"),
        (L + "[training]\nq = " + "{a=" * 1000 + "1" + "}" * 1000 + "\n", "line 4 nests arrays and tables more than 32"),
        (L + "[report]\n" + ".".join(["a"] * 3000) + " = 1\n", "tables, keys and arrays nest more than 32 levels deep"),
        (L + "[" + ".".join(["t"] * 40) + "]\n", "nest more than 32 levels deep"),
        (L + "[training]\nq = " + "9" * 4301 + "\n", "invalid TOML: a number too long to read (Exceeds the limit (4300 digits)"),
        # MemoryError, a hang
        ("[network]\nlayers = [100000, 100000]\n", "10,000,100,000 weights and biases: symback builds at most 50,000,000"),
        ('[network]\nlayers = [1000000000000, 1]\ntrainable = ["b(1)"]\n', "symback builds at most 50,000,000"),
        # TypeError
        ("[network]\nlayers = [1, 1]\nactivations = 1\n", "activations must be a name, a table or a list of them"),
        ("[network]\nlayers = [1, 1]\ntrainable = 1\n", "trainable takes a list of parameter names, not 1"),
        ("[network]\nlayers = [1, 1]\nfrozen = true\n", "frozen takes a list of parameter names, not True"),
        # ValueError from int() of a 4,301-digit index
        ("[network]\nlayers = [1, 2]\n[parameters]\n\"b(1)_" + "9" * 4301 + "\" = 1\n", "unknown name 'b(1)_999"),
        # OverflowError
        (L + '[parameters]\n"w(L)" = 1' + "0" * 400 + "\n", "[parameters] 'w(L)' holds an integer of about 401 digits, too large"),
        (L + "[data]\nx = [[1" + "0" * 400 + "]]\ny = [1]\n", "[data] x holds an integer of about 401 digits, too large for a float"),
        (L + "[data]\nx = [1]\ny = [-1" + "0" * 400 + "]\n", "[data] y holds an integer of about 401 digits"),
        # true is not a number
        (L + '[parameters]\n"w(L)" = true\n', "[parameters] 'w(L)' must be numeric, not the boolean true"),
        ("[network]\nlayers = [1, 2]\n[parameters]\n\"b(1)\" = [0.5, false]\n", "must be numeric, not the boolean false"),
        (L + "[data]\nx = [true]\ny = [1]\n", "[data] x must be numeric, not the boolean true"),
        # "w1\n" passed a $ anchor
        (L + '[names]\n"w(L)" = "w1\\n"\n', "name 'w1\\n' for 'w(L)' must start with a letter"),
        # settings said in words
        (L + 'activations = {name = "leaky_relu", slope = nan}\n', "leaky_relu slope must be a finite number, got nan"),
        (L + 'activations = {name = "elu", alpha = -inf}\n', "elu alpha must be a finite number, got -inf"),
        (L + 'activations = {name = "leaky_relu", slop = 0.1}\n', "unknown setting 'slop' for activation 'leaky_relu' (did you mean 'slope'?"),
        ("[network]\nlayers = [1, 1]\n[names]\n[names.sub]\nx = 1\n", "name {'x': 1} for 'sub' must start with a letter"),
        (L + "[data]\nx = 'text'\ny = [1]\n", "data x must be a list of numbers"),
    ],
)
def test_edge_specs_fail_on_one_line(tmp_path, text, message):
    with pytest.raises(SymbackError) as info:
        load_spec(_write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[network]\nlayers = [1, 1]\nactivations = \"sigmod\"\n", "unknown activation 'sigmod' (did you mean 'sigmoid'? known: elu,"),
        ("[network]\nlayers = [1, 1]\ncost = \"ssd\"\n", "unknown cost 'ssd' (did you mean"),
        ("[network]\nlayers = [1, 1]\nlayer = 3\n", "unknown key 'layer' in [network] (did you mean 'layers'? known: activation,"),
        ("[netwerk]\nlayers = [1, 1]\n", "unknown section [netwerk] (did you mean 'network'? known: data,"),
        ("[network]\nlayers = [1, 1]\n[init]\nmethod = \"xavir\"\n", "unknown initialisation 'xavir' (did you mean 'xavier'?"),
        ("[network]\nlayers = [1, 1]\n[data]\nx = [1]\ny = [1]\nys = [1]\n", "unknown key 'ys' in [data] (did you mean 'y'? known: x, y)"),
        ("[network]\nlayers = [1, 2, 1]\n[names]\n\"b(2)\" = \"bias3\"\n[parameters]\nbias4 = 1\n", "unknown name 'bias4' in network 1-2-1 (did you mean 'bias3'?"),
        ("[network]\nlayers = [1, 2, 1]\ntrainable = [\"w(L)_0_2\"]\n", "unknown name 'w(L)_0_2' in network 1-2-1 (did you mean 'w(L)_0_"),
    ],
)
def test_unknown_names_say_did_you_mean(tmp_path, text, message):
    with pytest.raises(SymbackError) as info:
        load_spec(_write(tmp_path, text))
    assert message in str(info.value)


def test_nesting_scan_skips_strings_and_comments(tmp_path):
    """Brackets inside strings and comments are not nesting; valid specs with them still load."""
    deep = "[" * 40
    text = (
        L + f'[names]\noutput = "out"  # {deep}\n'
        f'[training]\nnote = "{deep}\\"{deep}"\nraw = \'{deep}\'\nblock = """\n{deep}\\"""{deep}\n"""\n'
        f"lit = '''{deep}\n'''\nq = [[1, 2], {{a = [3]}}]\n"
    )
    spec = load_spec(_write(tmp_path, text))
    assert spec.sections["training"]["note"] == f'{deep}"{deep}' and spec.sections["training"]["q"][1] == {"a": [3]}
    assert spec.sections["training"]["block"] == f'{deep}"""{deep}\n'


def test_nesting_up_to_the_limit_is_read():
    from symback.grammar.tomlread import MAX_NESTING, parse_toml

    assert parse_toml("x = " + "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1))["x"] is not None
    with pytest.raises(SpecError, match="nest"):
        parse_toml("x = " + "[" * MAX_NESTING + "]" * MAX_NESTING)
