"""Network description: sizes, counts, names (canonical and the user's), frozen parameters, bad input."""

from __future__ import annotations

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
        ({"b(2)": "b3", "b(1)_0": "b3"}, "given to both"),
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
    assert "13,150 (13,100 weights, 50 biases)" in text
    assert "L-2: sigmoid" in text
    assert Network([np.int64(2), 3], "tanh", "mse").sizes == (2, 3)
