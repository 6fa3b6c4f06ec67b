"""symback: a symbolic derivation engine with a numeric backend for neural networks.

A network is built as SymPy expressions; the chain-rule partials are derived by
SymPy, shown step by step, and compiled into vectorised NumPy kernels that train.

>>> import symback
>>> net = symback.Network([1, 1, 1], "sigmoid", "squared_error")
>>> print(symback.derive(net, "b(L)").chain_notation())
∂C/∂a(L) · ∂a(L)/∂z(L) · ∂z(L)/∂b(L)
"""

from .activations import ACTIVATIONS, Activation, Softmax, activation_from_formula, get_activation, register_activation
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
