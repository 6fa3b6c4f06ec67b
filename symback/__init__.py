"""symback: a symbolic derivation engine with a numeric backend for neural networks.

A network is built as SymPy expressions; the chain-rule partials are derived by
SymPy, shown step by step, and compiled into vectorised NumPy kernels that train.

>>> import symback
>>> net = symback.Network([1, 1, 1], "sigmoid", "squared_error")
>>> print(symback.derive(net, "b(L)").chain_notation())
∂C/∂a(L) · ∂a(L)/∂z(L) · ∂z(L)/∂b(L)
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ loads each name
    from .activations import (
        ACTIVATIONS,
        Activation,
        Softmax,
        activation_from_formula,
        get_activation,
        register_activation,
    )
    from .compiler import CompiledNetwork, lambdify
    from .costs import COSTS, Cost, cost_from_formula, get_cost, register_cost
    from .data import Dataset
    from .derivation import BackpropEquations, Derivation, Factor, backprop_equations, derive
    from .errors import FormulaError, SpecError, SymbackError, UnknownNameError
    from .formula import parse_formula
    from .model import ExplicitModel, IndexedModel
    from .network import Network, NodeRef
    from .parameters import INITIALIZERS, Parameters, register_initializer
    from .spec import Spec, load_spec, spec_from_dict

__version__ = "0.1.0"

# The package root imports nothing: each public name is loaded from its stage module when first used
# (PEP 562), so ``import symback`` (and ``symback --version``) stays light and the root sits below every stage
# in the import graph instead of above them all.  tests/test_imports.py holds this.
_PUBLIC: dict[str, str] = {
    "ACTIVATIONS": "activations",
    "Activation": "activations",
    "Softmax": "activations",
    "activation_from_formula": "activations",
    "get_activation": "activations",
    "register_activation": "activations",
    "CompiledNetwork": "compiler",
    "lambdify": "compiler",
    "COSTS": "costs",
    "Cost": "costs",
    "cost_from_formula": "costs",
    "get_cost": "costs",
    "register_cost": "costs",
    "Dataset": "data",
    "BackpropEquations": "derivation",
    "Derivation": "derivation",
    "Factor": "derivation",
    "backprop_equations": "derivation",
    "derive": "derivation",
    "FormulaError": "errors",
    "SpecError": "errors",
    "SymbackError": "errors",
    "UnknownNameError": "errors",
    "parse_formula": "formula",
    "ExplicitModel": "model",
    "IndexedModel": "model",
    "Network": "network",
    "NodeRef": "network",
    "INITIALIZERS": "parameters",
    "Parameters": "parameters",
    "register_initializer": "parameters",
    "Spec": "spec",
    "load_spec": "spec",
    "spec_from_dict": "spec",
}


def __getattr__(name: str) -> Any:
    """``symback.Network`` and the other public names, imported from their module on first use."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # found once; later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = [
    "ACTIVATIONS",
    "COSTS",
    "INITIALIZERS",
    "Activation",
    "BackpropEquations",
    "CompiledNetwork",
    "Cost",
    "Dataset",
    "Derivation",
    "ExplicitModel",
    "Factor",
    "FormulaError",
    "IndexedModel",
    "Network",
    "NodeRef",
    "Parameters",
    "Softmax",
    "Spec",
    "SpecError",
    "SymbackError",
    "UnknownNameError",
    "activation_from_formula",
    "backprop_equations",
    "cost_from_formula",
    "derive",
    "get_activation",
    "get_cost",
    "lambdify",
    "load_spec",
    "parse_formula",
    "register_activation",
    "register_cost",
    "register_initializer",
    "spec_from_dict",
]
