"""The local formula of a recurrent layer, unrolled through time.

One generic hidden unit ``j`` at time step ``t`` reads the layer's own output one step earlier and
the input of its own step:

    z[t, j] = Σ_k W[j, k] · h[t − 1, k] + Σ_i U[j, i] · x[t, i] + b[j]        h[t, j] = f(z[t, j])

with ``h[−1, ·] = 0`` (the state before the first step; like a convolution's padding, a read outside
the layer is zero).  The chain rule applied to this one formula gives backpropagation through time:
the layer reads itself at ``t − 1``, so ``∂C/∂h[τ, κ]`` collects ``Σ_j δ[τ + 1, j] W[j, κ]`` from the
next step, and every parameter gradient sums over the steps.

>>> formula = RecurrentFormula(hidden=2, inputs=3, steps=4)
>>> t, j = formula.output_indices()
>>> formula.z_expression(t, j)
b[j] + Sum(U[j, i]*x[t, i], (i, 0, 2)) + Sum(W[j, k]*h[t - 1, k], (k, 0, 1))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any, ClassVar

import sympy as sp

from ..errors import SpecError
from ..registry import with_settings
from .activations import Activation
from .layers import Dense, Layer, LayerSymbols, ParameterBlock, register_layer_kind

__all__ = ["LastStep", "Recurrent", "RecurrentFormula"]


@dataclass(frozen=True)
class RecurrentFormula:
    """``hidden`` units over ``steps`` time steps of ``inputs`` features each."""

    hidden: int
    inputs: int
    steps: int
    recurrent_name: str = "W"
    input_weight_name: str = "U"
    bias_name: str = "b"
    input_name: str = "x"
    state_name: str = "h"
    output_name: str = "z"

    def __post_init__(self) -> None:
        for what, value in (("hidden", self.hidden), ("inputs", self.inputs), ("steps", self.steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"a recurrent layer's {what} must be a positive integer, not {value!r}")

    @cached_property
    def W(self) -> sp.IndexedBase:
        return sp.IndexedBase(self.recurrent_name, real=True)

    @cached_property
    def U(self) -> sp.IndexedBase:
        return sp.IndexedBase(self.input_weight_name, real=True)

    @cached_property
    def b(self) -> sp.IndexedBase:
        return sp.IndexedBase(self.bias_name, real=True)

    @cached_property
    def x(self) -> sp.IndexedBase:
        return sp.IndexedBase(self.input_name, real=True)

    @cached_property
    def h(self) -> sp.IndexedBase:
        return sp.IndexedBase(self.state_name, real=True)

    @cached_property
    def z(self) -> sp.IndexedBase:
        return sp.IndexedBase(self.output_name, real=True)

    @property
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"W": (self.hidden, self.hidden), "U": (self.hidden, self.inputs), "b": (self.hidden,)}

    def output_indices(self) -> tuple[sp.Idx, sp.Idx]:
        """``t`` over the time steps, ``j`` over the hidden units."""
        return sp.Idx("t", self.steps), sp.Idx("j", self.hidden)

    def z_expression(self, t: sp.Expr, j: sp.Expr) -> sp.Expr:
        k, i = sp.Idx("k", self.hidden), sp.Idx("i", self.inputs)
        return sp.Sum(self.W[j, k] * self.h[t - 1, k], k) + sp.Sum(self.U[j, i] * self.x[t, i], i) + self.b[j]


@dataclass(frozen=True)
class Recurrent(Layer):
    """Layer kind ``recurrent``: ``h[t, j] = f(Σ_q W[j,q] h[t−1, q] + Σ_e U[j,e] x[t, e] + b[j])``.

    It reads the layer below (or the network input) as ``(steps, inputs)`` and its neurons are the grid
    ``(steps, hidden)``: every state, so the engine derives ∂C/∂h_t for every step (backpropagation
    through time comes out of the formula reading ``h[t − 1]``: the layer is one of its own sources).
    Its two weight matrices are one parameter ``w = [W | U]`` of shape ``(hidden, hidden + inputs)``,
    ``W = w[:, :hidden]`` acting on the previous state and ``U = w[:, hidden:]`` on the input (the
    ``w`` of a dense layer reads the layer below; here it reads the state and the input side by side).

    >>> from symback.symbolic.activations import get_activation
    >>> layer = Recurrent.over((5, 3), get_activation("tanh"), hidden=2)
    >>> layer.grid, layer.parameter_shapes(15)
    ((5, 2), {'w': (2, 5), 'b': (2,)})
    """

    steps: int = 1
    inputs: int = 1
    kind: ClassVar[str] = "recurrent"

    @classmethod
    def over(cls, input_grid: Sequence[int], activation: Activation, *, hidden: int) -> Recurrent:
        """The layer reading ``input_grid = (steps, inputs)`` with ``hidden`` units."""
        if len(input_grid) != 2:
            raise SpecError(f"a recurrent layer reads (steps, inputs), not {'×'.join(map(str, input_grid))}")
        steps, inputs = (int(n) for n in input_grid)
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise SpecError(f"a recurrent layer needs hidden = a positive integer, not {hidden!r}")
        if not activation.elementwise:
            raise SpecError(f"a recurrent layer needs an elementwise activation, not {activation.label}")
        return cls(steps * hidden, activation, steps=steps, inputs=inputs)

    @property
    def hidden(self) -> int:
        return self.width // self.steps

    @property
    def sources(self) -> tuple[int, ...]:
        return (-1, 0)  # the layer below, and itself one step back

    @property
    def grid(self) -> tuple[int, ...]:
        return (self.steps, self.hidden)

    @property
    def input_grid(self) -> tuple[int, ...]:
        """How it reads the layer below: ``(steps, inputs)``."""
        return (self.steps, self.inputs)

    def parameter_shapes(self, fan_in: int) -> dict[str, tuple[int, ...]]:
        return {"w": (self.hidden, self.hidden + self.inputs), "b": (self.hidden,)}

    def parameter_names(self, fan_in: int) -> dict[str, ParameterBlock]:
        """``W`` (state → state) and ``U`` (input → state), the two blocks of the stored ``w = [W | U]``.

        >>> from symback.symbolic.activations import get_activation
        >>> Recurrent.over((3, 2), get_activation("tanh"), hidden=2).parameter_names(6)["U"]
        ParameterBlock(stored='w', shape=(2, 2), offset=(0, 2))
        """
        return {"W": ParameterBlock("w", (self.hidden, self.hidden), (0, 0)),
                "U": ParameterBlock("w", (self.hidden, self.inputs), (0, self.hidden)),
                "b": ParameterBlock("b", (self.hidden,), (0,))}

    def z_formula(self, s: LayerSymbols, j: Any, d: sp.Idx) -> sp.Expr:
        t, unit = j
        w, b = s.parameters["w"], s.parameters["b"]
        q, e = sp.Idx("q", self.hidden), sp.Idx("e", self.inputs)
        state = s.skip  # the second source, which is the layer itself: h one step back
        return sp.Sum(w[unit, q] * state[t - 1, q], q) + sp.Sum(w[unit, self.hidden + e] * s.inputs[t, e], e) + b[unit]

    def a_formula(self, s: LayerSymbols, j: Any, d: sp.Idx) -> sp.Expr:
        return self.activation.at(s.z[j])

    @classmethod
    def table_keys(cls, below: tuple[int, ...]) -> frozenset[str]:
        return frozenset({"hidden"})

    @classmethod
    def from_table(cls, below: tuple[int, ...], activation: Activation, settings: dict[str, Any]) -> Layer:
        return with_settings(partial(cls.over, below, activation), settings, "layer kind", cls.kind)

    def describe(self) -> str:
        return f"{self.kind} {self.activation.label}, hidden {self.hidden}, {self.steps} steps of {self.inputs} inputs"


register_layer_kind("recurrent", Recurrent)


@dataclass(frozen=True)
class LastStep(Dense):
    """A dense layer reading only the last step of a sequence: ``z_j = Σ_k w[j,k] h[T−1, k] + b_j``.

    The readout of a recurrent layer when the cost depends on the final state alone (the classic setting
    of the vanishing gradient: every earlier state reaches the cost only through the recurrence).  In a
    spec: a dense ``[[layer]]`` after a recurrent one with ``reads = "last"``.
    """

    steps: int = 1
    hidden: int = 1
    kind: ClassVar[str] = "dense"

    def parameter_shapes(self, fan_in: int) -> dict[str, tuple[int, ...]]:
        return {"w": (self.width, self.hidden), "b": (self.width,)}

    @property
    def input_grid(self) -> tuple[int, ...]:
        return (self.steps, self.hidden)

    def z_formula(self, s: LayerSymbols, j: sp.Idx, d: sp.Idx) -> sp.Expr:
        w, b = s.parameters["w"], s.parameters["b"]
        k = sp.Idx("d", self.hidden)
        return sp.Sum(w[j, k] * s.inputs[self.steps - 1, k], k) + b[j]

    def describe(self) -> str:
        return f"dense {self.width} {self.activation.label}, reads the last of {self.steps} steps"
