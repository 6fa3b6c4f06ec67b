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
    from .compile.compiler import CompiledNetwork, lambdify
    from .data import Dataset
    from .errors import FormulaError, SpecError, SymbackError, UnknownNameError
    from .grammar.formula import parse_formula
    from .render.derivation import BackpropEquations, Derivation, Factor, backprop_equations, derive
    from .spec.loader import Spec, load_spec, spec_from_dict
    from .symbolic.activations import (
        ACTIVATIONS,
        Activation,
        Softmax,
        activation_from_formula,
        get_activation,
        register_activation,
    )
    from .symbolic.costs import COSTS, Cost, cost_from_formula, get_cost, register_cost
    from .symbolic.model import ExplicitModel, IndexedModel
    from .symbolic.network import Network, NodeRef
    from .symbolic.parameters import INITIALIZERS, Parameters, register_initializer

__version__ = "0.1.0"

# The package root imports nothing: each public name is loaded from its stage module when first used
# (PEP 562), so ``import symback`` (and ``symback --version``) stays light and the root sits below every stage
# in the import graph instead of above them all.  tests/test_imports.py holds this.
_PUBLIC: dict[str, str] = {
    "ACTIVATIONS": "symbolic.activations",
    "Activation": "symbolic.activations",
    "Softmax": "symbolic.activations",
    "activation_from_formula": "symbolic.activations",
    "get_activation": "symbolic.activations",
    "register_activation": "symbolic.activations",
    "CompiledNetwork": "compile.compiler",
    "lambdify": "compile.compiler",
    "COSTS": "symbolic.costs",
    "Cost": "symbolic.costs",
    "cost_from_formula": "symbolic.costs",
    "get_cost": "symbolic.costs",
    "register_cost": "symbolic.costs",
    "Dataset": "data",
    "BackpropEquations": "render.derivation",
    "Derivation": "render.derivation",
    "Factor": "render.derivation",
    "backprop_equations": "render.derivation",
    "derive": "render.derivation",
    "FormulaError": "errors",
    "SpecError": "errors",
    "SymbackError": "errors",
    "UnknownNameError": "errors",
    "parse_formula": "grammar.formula",
    "ExplicitModel": "symbolic.model",
    "IndexedModel": "symbolic.model",
    "Network": "symbolic.network",
    "NodeRef": "symbolic.network",
    "INITIALIZERS": "symbolic.parameters",
    "Parameters": "symbolic.parameters",
    "register_initializer": "symbolic.parameters",
    "Spec": "spec.loader",
    "load_spec": "spec.loader",
    "spec_from_dict": "spec.loader",
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
