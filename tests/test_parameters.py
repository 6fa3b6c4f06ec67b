"""Parameters: initialisation, setting by name (single numbers and whole layers), copies and equality."""

from __future__ import annotations

import numpy as np
import pytest

from symback import Network, Parameters
from symback.errors import SpecError
from symback.symbolic.parameters import packed_views


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


def test_parameters_are_packed_in_the_order_of_flat():
    net = Network([3, 2, 2], "tanh", "mse")
    params = Parameters.initialize(net, seed=4)
    for made in (params, params.copy(), params.astype(np.float32), Parameters.zeros(net)):
        assert made.buffer is not None
        assert all(a.base is made.buffer for a in made.weights + made.biases)
    np.testing.assert_array_equal(params.buffer, params.flat())
    assert params.astype(np.float32).buffer.dtype == np.float32


def test_a_copy_off_the_buffer_is_not_packed():
    import copy
    import pickle

    params = Parameters.initialize(Network([2, 2, 1], "tanh", "mse"), seed=1)
    for clone in (copy.deepcopy(params), pickle.loads(pickle.dumps(params))):
        assert clone == params and clone.buffer is None
    params.biases.append(np.zeros(1))
    assert params.buffer is None


def test_packed_views_refuse_a_buffer_of_the_wrong_size():
    with pytest.raises(ValueError, match="cannot hold"):
        packed_views(np.zeros(5), [(2, 2), (2,)])


def test_copy_keeps_each_arrays_dtype_and_gradients_of_integers_are_float():
    from symback.compile.compiler import Gradients

    mixed = Parameters([np.ones((2, 2), dtype=np.float32)], [np.zeros(2)])
    copied = mixed.copy()
    assert copied.weights[0].dtype == np.float32 and copied.biases[0].dtype == np.float64 and copied == mixed
    assert Gradients.zeros_like(Parameters([np.ones((1, 1), dtype=int)], [np.zeros(1, dtype=int)])).buffer.dtype == np.float64
    with pytest.raises(SpecError, match="one of each per layer"):
        Parameters([np.ones((1, 1)), np.ones((1, 1))], [np.zeros(1)]).packed()


def test_a_deep_copy_shares_the_network_and_copies_the_arrays():
    """The network is immutable and can be large (its frozen set names every frozen parameter): a deep copy
    of parameters shares it, as ``copy()`` does, rather than copying it (16 s for 784-256-256-10 with
    ``trainable = ["b(1)_*"]``, against 0.3 s for the arrays alone)."""
    import copy

    from symback.symbolic.network import NodeRef

    net = Network([3, 2, 2], "tanh", "mse", names={"w(1)_0_0": "w1"}, trainable=["w(1)_0_0"])
    params = Parameters.initialize(net, seed=4)
    clone = copy.deepcopy(params)
    assert clone.network is net and clone == params and clone.get("w1") == params.get("w1")
    assert all(a is not b and not np.shares_memory(a, b) for a, b in zip(clone.weights + clone.biases,
                                                                          params.weights + params.biases))
    clone.set("w1", 5.0)
    assert params.get("w1") != 5.0
    both = copy.deepcopy([params, params])  # the memo still holds: one clone for one original
    assert both[0] is both[1] and both[0].network is net
    bare = copy.deepcopy(Parameters([np.ones((1, 1))], [np.zeros(1)]))
    assert bare.network is None and bare.get(NodeRef("w", 1, 0, 0)) == 1.0
