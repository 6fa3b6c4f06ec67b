"""symback.symbolic.layers: each kind's local formulas, the registry, and the network built from them."""

from __future__ import annotations

import pytest
import sympy as sp

from symback import Network
from symback.errors import SpecError
from symback.symbolic.activations import get_activation
from symback.symbolic.layers import LAYER_KINDS, Dense, LayerSymbols, Residual, get_layer_kind, register_layer_kind
from symback.symbolic.model import ExplicitModel, IndexedModel


def test_dense_formulas_are_the_textbook_layer():
    layer = Dense(3, get_activation("tanh"))
    s = LayerSymbols.for_layer("2", has_skip=False, below="a(1)")
    j, d = sp.Idx("j", 3), sp.Idx("d", 4)
    w, b, a_in = s.parameters["w"], s.parameters["b"], s.inputs
    assert layer.z_formula(s, j, d) == sp.Sum(w[j, d] * a_in[d], d) + b[j]
    assert layer.a_formula(s, j, d) == sp.tanh(s.z[j])
    assert layer.parameter_shapes(4) == {"w": (3, 4), "b": (3,)}
    assert layer.sources == (-1,)


def test_residual_adds_its_skip_source():
    layer = Residual(3, get_activation("sigmoid"), back=2)
    s = LayerSymbols.for_layer("3", has_skip=True, skip="1")
    j = sp.Idx("j", 3)
    assert layer.a_formula(s, j, sp.Idx("d", 3)) == 1 / (1 + sp.exp(-s.z[j])) + s.skip[j]
    assert layer.sources == (-1, -2)
    assert layer.parameter_shapes(3) == {"w": (3, 3), "b": (3,)}


def test_softmax_layer_formula_sums_over_the_layer():
    layer = Dense(4, get_activation("softmax"))
    s = LayerSymbols.for_layer("L", has_skip=False)
    j, d = sp.Idx("j", 4), sp.Idx("d", 4)
    assert layer.a_formula(s, j, d) == sp.exp(s.z[j]) / sp.Sum(sp.exp(s.z[d]), d)


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"activation": "softmax"}, "elementwise activation"), ({"back": 1}, "2 or more"), ({"back": True}, "2 or more")],
)
def test_residual_rejects_bad_settings(settings, message):
    activation = get_activation(settings.get("activation", "sigmoid"))
    with pytest.raises(SpecError, match=message):
        Residual(3, activation, back=settings.get("back", 2))


def test_registry_lists_and_finds_kinds():
    assert {"dense", "residual"} <= set(LAYER_KINDS)
    assert get_layer_kind("residual") is Residual and get_layer_kind("Residual") is Residual
    with pytest.raises(SpecError, match="did you mean 'dense'"):
        get_layer_kind("dens")


def test_a_registered_kind_is_found_and_derived_without_other_changes():
    from symback.symbolic.chain import derive_backward

    class Doubled(Dense):  # z = 2·(W a + b): a kind declared only by its formula
        kind = "doubled"

        def z_formula(self, s, j, d):
            return 2 * super().z_formula(s, j, d)

    register_layer_kind("doubled", Doubled)
    try:
        assert get_layer_kind("doubled") is Doubled
        net = Network([2, 2], "identity", "squared_error")
        object.__setattr__(net, "layers", (Doubled(2, get_activation("identity")),))
        backward = derive_backward(net)
        j, k = backward.parameter_indices[1]["w"]
        assert backward.gradients[1]["w"] == 2 * backward.delta[1][j] * backward.model.activations[0][k]
    finally:
        del LAYER_KINDS["doubled"]


def test_network_builds_dense_layers_and_residual_ones_where_skips_end():
    net = Network([3, 3, 3, 3, 2], "sigmoid", "squared_error", skips={3: 1})
    kinds = [layer.kind for layer in net.layers]
    assert kinds == ["dense", "dense", "residual", "dense"]
    assert net.layers[2].back == 2 and net.skips == {3: 1}
    assert "skip 1->3" in repr(net)
    assert [layer.kind for layer in Network([2, 2, 1]).layers] == ["dense", "dense"]


@pytest.mark.parametrize(
    ("skips", "message"),
    [
        ({3: 2}, "at least two"),
        ({1: 0}, "at least two"),
        ({5: 1}, "at least two"),
        ({2: 0}, "widths 4 and 3 differ"),
        ({"3": 1}, "layer number"),
        ([3, 1], "skips maps a layer"),
    ],
)
def test_bad_skip_edges_are_one_clear_error(skips, message):
    with pytest.raises(SpecError, match=message):
        Network([4, 3, 3, 3, 2], "sigmoid", "squared_error", skips=skips)


def test_models_read_the_residual_formula():
    net = Network([2, 2, 2, 1], "tanh", "squared_error", skips={2: 0})
    explicit = ExplicitModel(net)
    local = explicit.local_expression(net.resolve("a(2)_1"))
    assert local == sp.tanh(explicit.symbol("z(2)_1")) + explicit.symbol("x_1")
    assert net.resolve("a(2)_1") in explicit.readers(net.resolve("x_1"))
    indexed = IndexedModel(net)
    j = indexed.index("j", 2)
    assert indexed.a_expression(2, j, indexed.index("d", 2)) == sp.tanh(indexed.zs[2][j]) + indexed.activations[0][j]
