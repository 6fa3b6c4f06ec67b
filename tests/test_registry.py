"""registry.Registry: the one name -> object table behind activations, costs, optimizers, initialisers and formats."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from symback.datasets import DATASETS, get_dataset
from symback.errors import SpecError, UnknownNameError
from symback.registry import Registry, folded, unknown_name
from symback.render import report
from symback.symbolic.activations import ACTIVATIONS, Activation, Z, get_activation, register_activation
from symback.symbolic.costs import COSTS, get_cost
from symback.symbolic.network import Network
from symback.symbolic.parameters import INITIALIZERS, Parameters
from symback.training.optimizers import OPTIMIZERS, SGD, get_optimizer
from symback.verification import verify

REGISTRIES = {"activation": ACTIVATIONS, "cost": COSTS, "optimizer": OPTIMIZERS, "initialisation": INITIALIZERS,
              "report format": report.FORMATS, "verification format": verify.TEMPLATES, "dataset": DATASETS}


@pytest.mark.parametrize("what", sorted(REGISTRIES))
def test_every_table_is_a_registry_that_finds_its_names_in_any_case(what):
    registry = REGISTRIES[what]
    assert isinstance(registry, Registry) and registry.what == what and len(registry) >= 1
    for name in registry:
        assert registry.lookup(name.upper()) is registry[name] is registry.lookup(f"  {name.title()} ")


@pytest.mark.parametrize("what", sorted(REGISTRIES))
def test_an_unknown_name_is_one_error_with_the_close_matches_and_the_known_names(what):
    registry = REGISTRIES[what]
    name = sorted(registry)[0]
    typo = name[:-1] + ("x" if name[-1] != "x" else "y") + name[-1]
    with pytest.raises(UnknownNameError) as caught:
        registry.lookup(typo)
    message = str(caught.value)
    assert message == str(unknown_name(what, typo, list(registry), hint=registry.hint))
    assert message.startswith(f"unknown {what} {typo!r} (did you mean {name!r}")  # the closest first
    assert all(known in message for known in sorted(registry)[:12])


def test_the_messages_the_stages_gave_before_the_registry_are_unchanged():
    with pytest.raises(UnknownNameError, match=r"^unknown activation 'sigmod' \(did you mean 'sigmoid'\? known: .*"
                       r"; or write \{formula = \"...\"\} in z\)$"):
        get_activation("sigmod")
    with pytest.raises(UnknownNameError, match=r"^unknown cost 'ssq' .*in a and y\)$"):
        get_cost("ssq")
    with pytest.raises(UnknownNameError, match=r"^unknown optimizer 'adma' \(did you mean 'adam'\?"):
        get_optimizer("adma", learning_rate=0.1)
    with pytest.raises(UnknownNameError, match=r"^unknown initialisation 'xavir' \(did you mean 'xavier'\?"):
        Parameters.initialize(Network([1, 1]), "xavir")
    with pytest.raises(SpecError, match=r"^unknown setting 'slop' for activation 'leaky_relu' \(did you mean 'slope'"):
        get_activation("Leaky-ReLU", slop=0.1)
    with pytest.raises(UnknownNameError, match=r"^unknown dataset 'digts' \(did you mean 'digits'\? known: digits\)$"):
        get_dataset("digts")  # (before the registry: no suggestion)


def test_an_initialiser_is_found_in_any_case_and_a_non_name_is_an_error_not_a_crash():
    net = Network([2, 3, 1])
    assert Parameters.initialize(net, "Xavier", seed=4).named() == Parameters.initialize(net, "xavier", seed=4).named()
    with pytest.raises(UnknownNameError, match=r"^unknown initialisation \['he'\]"):
        Parameters.initialize(net, ["he"])  # a list was unhashable: TypeError before the registry


def test_register_adds_replaces_and_del_removes_in_folded_case():
    register_activation("Cube", lambda: Activation("cube", Z**3))
    try:
        assert "cube" in ACTIVATIONS and get_activation("CUBE").derivative == 3 * Z**2
        register_activation("cube", lambda: Activation("cube", 2 * Z**3))  # the same name: replaced
        assert get_activation("cube").derivative == 6 * Z**2
    finally:
        del ACTIVATIONS["CUBE"]
    assert "cube" not in ACTIVATIONS


def test_listing_puts_an_alias_beside_its_name():
    assert "ssr (also sse)" in COSTS.listing()
    assert "categorical_cross_entropy (also cross_entropy)" in COSTS.listing()
    assert OPTIMIZERS.listing() == "adam, momentum, rmsprop, sgd (also gradient_descent)"
    assert "xavier (also glorot)" in INITIALIZERS.listing()


def test_a_layer_kind_table_is_one_more_registry():
    """What the engine's layer kinds need: classes registered by name (decorator), built with checked settings."""
    kinds: Registry[type] = Registry("layer kind", hint="or write [[layer]] tables")

    @kinds.register("dense")
    class Dense:
        def __init__(self, units: int = 1) -> None:
            self.units = units

    assert kinds.build("Dense", {"units": 4}).units == 4
    with pytest.raises(SpecError, match=r"^unknown setting 'unit' for layer kind 'dense' \(did you mean 'units'"):
        kinds.build("dense", {"unit": 4})
    with pytest.raises(UnknownNameError, match=r"^unknown layer kind 'conv' \(known: dense; or write \[\[layer\]\]"):
        kinds.lookup("conv")
    with pytest.raises(SpecError, match="registered under a name"):
        kinds.register("  ", Dense)


def test_an_optimizer_built_through_the_registry_is_the_class_called_with_its_settings():
    built = get_optimizer(" SGD ", learning_rate=0.25)
    assert type(built) is SGD and built.learning_rate == 0.25


@given(st.text(alphabet="abAB-_ ", min_size=1, max_size=8).filter(lambda t: t.strip()))
def test_a_name_is_found_under_every_spelling_that_folds_to_it(name):
    table: Registry[int] = Registry("thing")
    table.register(name, 1)
    assert table.lookup(folded(name).upper()) == 1 and table.lookup(name) == 1
    assert folded(name) in table.names()
