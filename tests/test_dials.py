"""Dials (seed 000): the ranking by |∂C/∂p|, and reusing a gradient the caller already has."""

from __future__ import annotations

import numpy as np
import pytest

from symback import Dataset, Network, Parameters
from symback.compile.compiler import CompiledNetwork
from symback.training import dials
from symback.training.dials import rank_dials


def _problem():
    net = Network([2, 3, 2], "sigmoid", "squared_error", frozen=["b(L)_1"])
    rng = np.random.default_rng(0)
    data = Dataset(rng.normal(size=(6, 2)), rng.uniform(size=(6, 2)))
    return net, Parameters.initialize(net, "normal", seed=2), data


def test_ranking_is_by_absolute_partial_with_frozen_dials_showing_their_real_partial():
    net, params, data = _problem()
    ranked = rank_dials(net, params, data, learning_rate=0.5, top=len(params.flat()))
    full = CompiledNetwork(net).gradient(params, data, respect_frozen=False).as_parameters().flat()
    assert sorted(abs(d.partial) for d in ranked) == sorted(np.abs(full).tolist())
    assert [abs(d.partial) for d in ranked] == sorted((abs(d.partial) for d in ranked), reverse=True)
    frozen = next(d for d in ranked if d.frozen)
    assert frozen.name == "b(L)_1" and frozen.partial != 0.0 and frozen.turn == pytest.approx(-0.5 * frozen.partial)
    for dial in ranked:
        assert dial.value == params.get(dial.ref)


def test_a_given_gradient_is_used_as_is_without_compiling(monkeypatch):
    net, params, data = _problem()
    gradients = CompiledNetwork(net).gradient(params, data, respect_frozen=False)
    expected = rank_dials(net, params, data, top=5)

    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled although the gradient was given")

    monkeypatch.setattr(dials, "compile_network", no_compiling)
    assert rank_dials(net, params, gradients=gradients, top=5) == expected
    with pytest.raises(TypeError, match="needs the data or the gradients"):
        rank_dials(net, params)
