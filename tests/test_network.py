"""Network description: sizes, counts, names (canonical and the user's), frozen parameters, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from symback import FormulaError, Network, NodeRef, SpecError, UnknownNameError


@pytest.mark.parametrize(
    ("sizes", "weights", "biases"),
    [([1, 1, 1, 1], 3, 3), ([1, 2, 1], 4, 3), ([2, 2, 2], 8, 4), ([625, 20, 20, 10], 13_100, 50)],
)
def test_counts(sizes, weights, biases):
    net = Network(sizes, "sigmoid", "squared_error")
    assert (net.n_weights, net.n_biases, net.n_parameters) == (weights, biases, weights + biases)
    assert len(list(net.parameter_refs())) == weights + biases


def test_seed001_names_for_the_chain():
    net = Network([1, 1, 1, 1], "sigmoid", "squared_error")
    assert [net.name_of(r) for r in net.parameter_refs()] == ["w(L-2)", "b(L-2)", "w(L-1)", "b(L-1)", "w(L)", "b(L)"]
    assert net.resolve("a(L-1)") == NodeRef("a", 2, 0)
    assert net.resolve("w(3)") == net.resolve("w(L)") == NodeRef("w", 3, 0, 0)
    assert net.resolve("x") == NodeRef("x", 0, 0) and net.resolve("C") == NodeRef("C")


def test_indices_are_kept_for_wide_layers():
    net = Network([3, 2, 2], "tanh", "mse")
    assert net.name_of(NodeRef("w", 2, 1, 0)) == "w(L)_1_0"
    assert net.name_of(NodeRef("b", 1, 1)) == "b(L-1)_1"
    assert net.name_of(NodeRef("x", 0, 2)) == "x_2"
    assert net.resolve("w(L-1)_1_2") == NodeRef("w", 1, 1, 2)
    for name in ("w(L)", "w(L)_2_0", "w(L)_0_5", "a(4)_0", "x", "b(L)_0_0", "q"):
        with pytest.raises(UnknownNameError, match="unknown name"):
            net.resolve(name)


def test_user_names_replace_canonical_ones():
    net = Network([1, 2, 1], ["softplus", "identity"], "ssr", names={"b(2)": "b3", "w(1)_1_0": "w2", "output": "predicted"})
    assert net.name_of(NodeRef("b", 2, 0)) == "b3"
    assert net.resolve("b3") == net.resolve("b(L)") == NodeRef("b", 2, 0)
    assert net.resolve("predicted") == NodeRef("a", 2, 0)
    assert net.name_of(NodeRef("w", 1, 0, 0)) == "w(L-1)_0_0"


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ({"b(2)": "b 3"}, "must start with a letter"),
        ({"b(2)": "w_{evil}\\input{/etc/passwd}"}, "must start with a letter"),
        ({"b(2)": "<script>"}, "must start with a letter"),
        ({"b(2)": "exp"}, "reserved"),
        # Weights and biases may share a name (a tied parameter, tests/test_tied.py); other nodes may not.
        ({"b(2)": "b3", "a(1)_0": "b3"}, "given to both 'b(2)' and 'a(1)_0': only weights and biases"),
        ({"output": "b3", "b(1)_0": "b3"}, "given to both"),
        ({"b(7)": "b3"}, "unknown name 'b(7)'"),
        ({"b(2)": "w(L)"}, "must start with a letter"),
        ({"b(2)": "x"}, "shadow"),
    ],
)
def test_bad_names(names, message):
    with pytest.raises((SpecError, UnknownNameError), match=message.replace("(", r"\(").replace(")", r"\)")):
        Network([1, 2, 1], "sigmoid", "ssr", names=names)


def test_frozen_and_trainable():
    net = Network([1, 2, 1], "sigmoid", "ssr", frozen=["w(1)_*", "b(L)"])
    assert net.frozen == {NodeRef("w", 1, 0, 0), NodeRef("w", 1, 1, 0), NodeRef("b", 2, 0)}
    weights, biases = net.trainable_masks()
    assert weights[0].sum() == 0 and biases[1].sum() == 0 and weights[1].sum() == 2
    only = Network([1, 2, 1], "sigmoid", "ssr", trainable=["b(L)"])
    assert len(only.frozen) == only.n_parameters - 1
    with pytest.raises(SpecError, match="names parameters"):
        Network([1, 2, 1], "sigmoid", "ssr", frozen=["a(L)"])


@pytest.mark.parametrize(
    ("sizes", "activations", "cost", "message"),
    [
        ([1, 0, 1], "sigmoid", "ssr", "layer 1 has width 0"),
        ([3], "sigmoid", "ssr", "at least one more layer"),
        ([1, 2.5, 1], "sigmoid", "ssr", "must be an integer"),
        ("1-2-1", "sigmoid", "ssr", "list of integers"),
        ([1, 2, 1], "swish2", "ssr", "unknown activation 'swish2'"),
        ([1, 2, 1], ["sigmoid"], "ssr", "1 activation(s) given for 2 layer(s)"),
        ([1, 2, 1], "sigmoid", "hinge", "unknown cost 'hinge'"),
        ([1, 2, 1], "sigmoid", "categorical_cross_entropy", "needs a softmax output"),
        ([1, 2, 1], ["softmax", "identity"], "ssr", "only supported on the output layer"),
        ([1, 2, 1], {"formula": "z + q"}, "ssr", "unknown symbol 'q'"),
        ([1, 2, 1], {"formula": "__import__('os').system('x')"}, "ssr", "unexpected character"),
        ([1, 2, 1], "sigmoid", {"formula": "(a - t)^2"}, "unknown symbol 't'"),
        ([1, 2, 1], {"name": "leaky_relu", "slope": "big"}, "ssr", "slope must be a number"),
        ([1, 2, 1], {"name": "sigmoid", "slope": 1}, "ssr", "unknown setting 'slope' for activation 'sigmoid' (sigmoid takes no settings)"),
        ([1, 2, 1], {"name": "leaky_relu", "slop": 0.1}, "ssr", "unknown setting 'slop' for activation 'leaky_relu' (did you mean 'slope'?"),
        ([1, 2, 1], {"name": "leaky_relu", "slope": float("nan")}, "ssr", "leaky_relu slope must be a finite number, got nan"),
        ([1, 2, 1], {"name": "elu", "alpha": float("inf")}, "ssr", "elu alpha must be a finite number, got inf"),
        ([1, 2, 1], {"name": "elu", "alpha": 10**400}, "ssr", "elu alpha must be a finite number, got an integer of about 401 digits"),
        ([1, 2, 1], {"name": "leaky_relu", "slope": True}, "ssr", "leaky_relu slope must be a number, not True"),
    ],
)
def test_bad_networks_fail_with_one_clear_line(sizes, activations, cost, message):
    with pytest.raises((SpecError, UnknownNameError, FormulaError)) as info:
        Network(sizes, activations, cost)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_summary_mentions_counts_and_activations():
    text = Network([625, 20, 20, 10], "sigmoid", "squared_error").summary()
    assert text == (  # a dense chain's summary, byte for byte (no per-layer lines: the sizes say it)
        "layers      625-20-20-10\n"
        "activations L-2: sigmoid, L-1: sigmoid, L: sigmoid\n"
        "cost        squared_error (outputs: sum, examples: mean)\n"
        "parameters  13,150 (13,100 weights, 50 biases)"
    )
    assert "L-2: sigmoid" in text
    assert Network([np.int64(2), 3], "tanh", "mse").sizes == (2, 3)


# -- issue 11: names and sizes at the edges --------------------------------------------------------


def test_a_name_with_a_trailing_newline_is_refused():
    """``^...$`` matched "w1\\n" ($ matches before a final newline); names are matched whole."""
    with pytest.raises(SpecError, match="must start with a letter"):
        Network([1, 1], "sigmoid", "ssr", names={"w(L)": "w1\n"})
    net = Network([1, 2], "sigmoid", "ssr")
    for name in ("b(1)_0\n", "x\n", "w(1)_0_0\n\n"):
        with pytest.raises(UnknownNameError):
            net._parse_canonical(name) or net._check_ref(NodeRef("q"), name)
    assert net._parse_canonical("b(1)_0\n") is None and net._parse_canonical("b(1)_0") == NodeRef("b", 1, 0)


def test_non_ascii_digits_are_not_indices():
    net = Network([1, 2], "sigmoid", "ssr")
    with pytest.raises(UnknownNameError, match="unknown name"):
        net.resolve("b(1)_\u0661")  # ARABIC-INDIC DIGIT ONE, which int() would read as 1


@pytest.mark.parametrize("name", ["b(1)_" + "9" * 4301, "w(" + "1" * 5000 + ")_0_0", "x_" + "7" * 4400, "b(L-" + "3" * 4301 + ")_0"])
def test_an_index_of_thousands_of_digits_is_an_unknown_name_on_one_short_line(name):
    net = Network([1, 2, 1], "sigmoid", "ssr")
    with pytest.raises(UnknownNameError, match="unknown name") as info:
        net.resolve(name)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400 and "characters)" in message


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ([100_000, 100_000], "a 100000-100000 network has 10,000,100,000 weights and biases: symback builds at most 50,000,000"),
        ([10**12, 1], "has 1,000,000,000,001 weights and biases"),
        ([1] * 1_002, "a network of 1,001 layers after the input: symback builds at most 1,000"),
    ],
)
def test_networks_past_the_documented_size_are_refused_at_once(sizes, message):
    with pytest.raises(SpecError) as info:
        Network(sizes, "sigmoid", "ssr", trainable=["b(1)_0"])
    assert message in str(info.value)


def test_the_size_limits_are_the_documented_ones():
    from symback.symbolic.network import MAX_LAYERS, MAX_PARAMETERS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    for limit in (MAX_PARAMETERS, MAX_LAYERS):
        assert f"{limit:,}" in readme
    Network([MAX_PARAMETERS // 2 - 1, 1, 1], "sigmoid", "ssr")  # just inside: built (no arrays yet)


def test_freezing_a_huge_layer_lists_nothing():
    """[10^12, 1] with trainable = ["b(1)"] hung listing every parameter; frozen is one mask per layer."""
    net = Network([24_999_999, 1, 1], "sigmoid", "ssr", trainable=["b(1)", "w(2)"])
    assert len(net.frozen) == 24_999_999 + 1
    assert NodeRef("w", 1, 0, 24_999_998) in net.frozen and NodeRef("b", 1, 0) not in net.frozen
    assert NodeRef("w", 1, 0, 24_999_999) not in net.frozen and NodeRef("w", 1, -1, 0) not in net.frozen
    weights, biases = net.trainable_masks()
    assert weights[0].sum() == 0 and weights[1].tolist() == [[1.0]] and biases[0].tolist() == [1.0]
    assert Network([24_999_999, 1, 1], "sigmoid", "ssr", frozen=["w(1)_*"]).frozen.weights[0].all()


def test_frozen_is_a_set_of_noderefs():
    net = Network([2, 2, 1], "sigmoid", "ssr", frozen=["b(L)", "w(1)_1_0", "w(1)_0_1"])
    assert list(net.frozen) == [NodeRef("w", 1, 0, 1), NodeRef("w", 1, 1, 0), NodeRef("b", 2, 0)]
    assert net.frozen == {NodeRef("w", 1, 0, 1), NodeRef("w", 1, 1, 0), NodeRef("b", 2, 0)}
    assert {NodeRef("b", 2, 0), NodeRef("w", 1, 1, 0), NodeRef("w", 1, 0, 1)} == net.frozen
    assert hash(net.frozen) == hash(Network([2, 2, 1], "sigmoid", "ssr", frozen=["w(1)_0_1", "w(1)_1_0", "b(2)"]).frozen)
    assert "x" not in net.frozen and NodeRef("a", 2, 0) not in net.frozen and not Network([1, 1]).frozen


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activations": 1}, "activations must be a name, a table or a list of them (one per layer), not 1"),
        ({"trainable": 1}, "trainable takes a list of parameter names, not 1"),
        ({"frozen": True}, "frozen takes a list of parameter names, not True"),
        ({"frozen": "b(L)"}, "frozen takes a list of parameter names, not 'b(L)'"),
        ({"frozen": [1]}, "frozen takes a list of parameter names, not [1]"),
        ({"trainable": {"b": 1}}, "trainable takes a list of parameter names, not {'b': 1}"),
    ],
)
def test_wrong_types_are_said_in_words(kwargs, message):
    with pytest.raises(SpecError) as info:
        Network([1, 2, 1], **{"activations": "sigmoid", "cost": "ssr", **kwargs})
    assert str(info.value) == message


def test_unknown_names_suggest_close_ones():
    net = Network([1, 2, 1], "sigmoid", "ssr", names={"b(2)": "bias3", "w(1)_0_0": "w1"})
    with pytest.raises(UnknownNameError, match=r"unknown name 'bias4' in network 1-2-1 \(did you mean 'bias3'\?"):
        net.resolve("bias4")
    with pytest.raises(UnknownNameError, match=r"did you mean 'w\(L-1\)_0_0'"):
        net.resolve("w(L-1)_0_")
    with pytest.raises(UnknownNameError, match=r"unknown name 'W\(L\)_0_0' .*did you mean 'w\(L\)_0_0'\?"):
        net.resolve("W(L)_0_0")


def test_names_resolve_ignoring_case_by_the_claims_rule():
    """``--wrt`` takes what a claims file takes: the exact name, else the one name equal ignoring case."""
    net = Network([1, 2, 1], "sigmoid", "ssr", names={"b(2)": "Bias", "w(1)_0_0": "w1", "cost": "SSR"})
    assert net.resolve("bias") == net.resolve("BIAS") == NodeRef("b", 2, 0)
    assert net.resolve("W1") == NodeRef("w", 1, 0, 0)
    assert net.resolve("ssr") == net.resolve("c") == NodeRef("C")
    assert net.resolve("X") == NodeRef("x", 0, 0) and net.resolve("Y") == NodeRef("y", 0, 0)
    twice = Network([1, 2, 1], "sigmoid", "ssr", names={"b(2)": "B", "b(1)_0": "b"})
    assert twice.resolve("b") == NodeRef("b", 1, 0) and twice.resolve("B") == NodeRef("b", 2, 0)
    with pytest.raises(FormulaError, match="ambiguous"):
        Network([1, 2, 1], "sigmoid", "ssr", names={"b(2)": "Bb", "b(1)_0": "bB"}).resolve("bb")


def test_wrt_and_claims_agree_on_names(tmp_path):
    from symback.verification.claims import Notation

    net = Network([1, 2, 1], "sigmoid", "ssr", names={"b(2)": "Bias", "w(1)_0_0": "w1", "cost": "SSR"})
    notation = Notation(net)
    for name in ("bias", "W1", "ssr", "c", "X", "b(L)", "w(L)_0_1"):
        assert net.resolve(name) == notation.node(name), name


def test_a_name_for_a_whole_group_is_not_one_node():
    net = Network([1, 2, 2], "sigmoid", "mse", names={"output": "predicted"})
    with pytest.raises(UnknownNameError, match="'predicted' names the whole output of network 1-2-2, not one node"):
        net.resolve("predicted")
