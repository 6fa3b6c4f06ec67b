"""Parameters: initialisation, setting by name (single numbers and whole layers), copies and equality."""

from __future__ import annotations

import pytest

from symback import Network, Parameters
from symback.errors import SpecError


def test_numbered_name_of_a_single_bias_takes_one_number():
    """b(2) of a 1-2-1 network names one bias: a number sets it (it used to need shape (1,))."""
    net = Network([1, 2, 1], "sigmoid", "ssr")
    params = Parameters.zeros(net)
    params.update(net, {"b(2)": 0.3})
    assert params.get(net.resolve("b(L)")) == 0.3
    params.update(net, {"b(2)": [0.7]})  # the layer-shaped array still works
    assert params.get(net.resolve("b(L)")) == 0.7
    params.update(net, {"b(L)": -1.5})
    assert params.biases[1].tolist() == [-1.5]


def test_whole_layer_names_take_arrays_of_the_layer_shape():
    net = Network([1, 2, 1], "sigmoid", "ssr")
    params = Parameters.zeros(net)
    params.update(net, {"w(1)": [[1.0], [2.0]], "b(1)": [3.0, 4.0], "w(L)": [[5.0, 6.0]]})
    assert params.weights[0].tolist() == [[1.0], [2.0]] and params.biases[0].tolist() == [3.0, 4.0]
    assert params.weights[1].tolist() == [[5.0, 6.0]]
    with pytest.raises(SpecError, match=r"needs shape \(2,\), got \(\)"):
        params.update(net, {"b(1)": 0.5})  # two biases: one number is ambiguous
    with pytest.raises(SpecError, match="needs shape"):
        params.update(net, {"w(1)": [1.0, 2.0, 3.0]})


def test_single_entry_names_of_a_chain():
    net = Network([1, 1, 1], "sigmoid", "squared_error")
    params = Parameters.zeros(net)
    params.update(net, {"w(1)": 0.25, "b(L)": 0.5, "w(2)": 2.0})
    assert params.flat().tolist() == [0.25, 0.0, 2.0, 0.5]
