"""Activation functions: each one a small object carrying its SymPy formula in ``z``.

Derivatives are never written by hand: :attr:`Activation.derivative` is
``sympy.diff`` of the formula, so a user formula is treated exactly like a
built-in one.

>>> sigmoid = get_activation("sigmoid")
>>> sigmoid.formula
1/(1 + exp(-z))
>>> sigmoid.derivative
exp(-z)/(1 + exp(-z))**2

New activations are registered, not added to an if-chain:

>>> register_activation("cube", lambda: Activation("cube", Z**3))
>>> get_activation("cube").derivative
3*z**2
>>> del ACTIVATIONS["cube"]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sympy as sp

from ..errors import FormulaError, SpecError
from ..grammar.formula import parse_formula
from ..registry import Registry, finite_number, merged_settings

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Softmax",
    "Z",
    "activation_from_formula",
    "get_activation",
    "register_activation",
]

#: The generic pre-activation every formula is written in.
Z = sp.Symbol("z", real=True)


@dataclass(frozen=True, eq=False)
class Activation:
    """An elementwise activation ``a = formula(z)``.

    Arguments:
        name: registry name or a label for a user formula.
        formula: SymPy expression in :data:`Z`.
        parameters: settings baked into the formula, e.g. ``(("slope", 0.01),)``.
    """

    name: str
    formula: sp.Expr
    parameters: tuple[tuple[str, float], ...] = ()

    elementwise = True

    def __post_init__(self) -> None:
        extra = self.formula.free_symbols - {Z}
        if extra:
            names = ", ".join(sorted(str(s) for s in extra))
            raise FormulaError(f"activation {self.name!r} uses symbols other than z: {names}")

    @cached_property
    def derivative(self) -> sp.Expr:
        """``dσ/dz``, derived by SymPy from :attr:`formula`."""
        return sp.diff(self.formula, Z)

    def at(self, z: sp.Expr) -> sp.Expr:
        """The formula with :data:`Z` replaced by the given ``z`` (a symbol, an Indexed, a number)."""
        return self.formula.subs(Z, z)

    def derivative_at(self, z: sp.Expr) -> sp.Expr:
        return self.derivative.subs(Z, z)

    @property
    def label(self) -> str:
        """``leaky_relu(slope=0.1)``-style text naming the activation and its settings."""
        if not self.parameters:
            return self.name
        settings = ", ".join(f"{key}={value:g}" for key, value in self.parameters)
        return f"{self.name}({settings})"

    # The class is part of the identity: a plain Activation("softmax", exp(z)) is elementwise and must not
    # equal Softmax() (nor share its compiled kernels, which are cached by activation).
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Activation) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple:
        return (type(self), self.name, self.formula, self.parameters)

    def __repr__(self) -> str:
        return f"Activation({self.label!r}: z -> {self.formula})"


@dataclass(frozen=True, eq=False)
class Softmax(Activation):
    """``a_j = exp(z_j) / Σ_q exp(z_q)``: couples every neuron of its layer.

    Its formula is stated for one neuron in index form; the model builds the
    explicit or indexed layer expression and SymPy derives the Jacobian
    ``∂a_j/∂z_i`` (``a_j (δ_ij − a_i)``) from it.
    """

    name: str = "softmax"
    formula: sp.Expr = sp.exp(Z)
    parameters: tuple[tuple[str, float], ...] = ()

    elementwise = False

    def layer(self, zs: Sequence[sp.Expr]) -> list[sp.Expr]:
        """Explicit outputs for the pre-activations ``zs`` of one layer."""
        total = sp.Add(*(sp.exp(z) for z in zs))
        return [sp.exp(z) / total for z in zs]

    def indexed(self, z: sp.IndexedBase, j: sp.Idx, dummy: sp.Idx) -> sp.Expr:
        """Index form ``exp(z[j]) / Sum(exp(z[dummy]), dummy)``."""
        return sp.exp(z[j]) / sp.Sum(sp.exp(z[dummy]), dummy)

    @cached_property
    def derivative(self) -> sp.Expr:  # pragma: no cover - guarded for clarity
        raise TypeError("softmax has a Jacobian, not an elementwise derivative; use the model's layer form")


def _number(value: Any, what: str) -> sp.Rational:
    return sp.Rational(repr(finite_number(value, what)))


def _leaky_relu(slope: float = 0.01) -> Activation:
    s = _number(slope, "leaky_relu slope")
    return Activation("leaky_relu", sp.Piecewise((Z, Z > 0), (s * Z, True)), (("slope", float(slope)),))


def _elu(alpha: float = 1.0) -> Activation:
    s = _number(alpha, "elu alpha")
    return Activation("elu", sp.Piecewise((Z, Z > 0), (s * (sp.exp(Z) - 1), True)), (("alpha", float(alpha)),))


#: Registry: name -> factory taking the activation's keyword settings.
ACTIVATIONS: Registry[Callable[..., Activation]] = Registry("activation", {
    "identity": lambda: Activation("identity", Z),
    "sigmoid": lambda: Activation("sigmoid", 1 / (1 + sp.exp(-Z))),
    "tanh": lambda: Activation("tanh", sp.tanh(Z)),
    # Piecewise rather than Max: its derivative is a clean Piecewise with σ'(0) = 0.
    "relu": lambda: Activation("relu", sp.Piecewise((Z, Z > 0), (0, True))),
    "leaky_relu": _leaky_relu,
    "softplus": lambda: Activation("softplus", sp.log(1 + sp.exp(Z))),
    "elu": _elu,
    "silu": lambda: Activation("silu", Z / (1 + sp.exp(-Z))),
    "softmax": Softmax,
}, hint='or write {formula = "..."} in z')


def register_activation(name: str, factory: Callable[..., Activation]) -> None:
    """Make ``factory`` available as ``get_activation(name, **settings)``."""
    ACTIVATIONS.register(name, factory)


def activation_from_formula(text: str, name: str | None = None) -> Activation:
    """An activation from a formula in ``z``, parsed without ``eval``.

    >>> activation_from_formula("z/(1+exp(-z))").formula
    z/(1 + exp(-z))
    """
    formula = parse_formula(text, {"z": Z})
    return Activation(name or text, formula)


def get_activation(spec: str | Mapping[str, Any] | Activation, **settings: Any) -> Activation:
    """Resolve an activation from a name, a ``{name=..., slope=...}`` or ``{formula=...}`` table.

    >>> get_activation({"name": "leaky_relu", "slope": 0.1}).label
    'leaky_relu(slope=0.1)'
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "formula" in options:
            formula = options.pop("formula")
            label = options.pop("name", None)
            if options:
                raise SpecError(f"unexpected keys for a formula activation: {', '.join(sorted(options))}")
            return activation_from_formula(formula, label)
        if "name" not in options:
            raise SpecError(f"an activation table needs 'name' or 'formula', got {sorted(options)}")
        name = options.pop("name")
        return get_activation(name, **merged_settings(options, settings, "activation"))
    if not isinstance(spec, str):
        raise SpecError(f"an activation must be a name or a table, not {spec!r}")
    return ACTIVATIONS.build(spec, settings)
