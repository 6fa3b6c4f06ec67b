"""The local formula of a convolution, for any number of spatial axes (conv1d and conv2d use it).

One generic output neuron — filter ``o`` at position ``j`` — reads its input at a shifted index:

    z[o, j] = Σ_c Σ_m w[o, c, m] · a[c, j + m − P] + b[o]

with ``c`` the input channels, ``m`` the kernel offsets (one index per spatial axis), ``P`` the left
padding (0 for ``valid``, ``(K−1)//2`` for ``same``) and ``a`` zero outside the input.  Nothing else is
written by hand: the chain rule differentiates this expression (``∂z[o,j]/∂a[γ,i]`` collapses, by
Kronecker-delta summation, to ``w[o, γ, i − j + P]``) and the lowering turns the derived sums into
:mod:`symback.compile.lowering_shifted` calls.

>>> formula = ConvFormula(channels=1, filters=2, input_shape=(5,), kernel=(3,), padding="valid")
>>> o, (j,) = formula.output_indices()
>>> formula.z_expression(o, (j,))
b[o] + Sum(a[c, j + m0]*w[o, c, m0], (c, 0, 0), (m0, 0, 2))
>>> formula.output_shape
(3,)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any, ClassVar

import numpy as np
import sympy as sp

from ..errors import SpecError, shown
from ..registry import with_settings
from .activations import Activation
from .layers import Dense, Layer, LayerSymbols
from .padding import PADDINGS, Padding, output_shape
from .padding import padding as padding_of

__all__ = ["ConvFormula", "Convolution", "GridDense", "correlation_formula"]

#: Letters of the output positions and kernel offsets, axis by axis (row, column, …).
_POSITION_LETTERS = ("j", "k", "l")


@dataclass(frozen=True)
class ConvFormula:
    """A convolution's index-form formula: ``filters`` kernels over ``channels`` input channels."""

    channels: int
    filters: int
    input_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    padding: str = "valid"
    weight_name: str = "w"
    bias_name: str = "b"
    input_name: str = "a"
    output_name: str = "z"

    def __post_init__(self) -> None:
        if self.padding not in PADDINGS:
            raise ValueError(f"unknown padding {self.padding!r} (known: {', '.join(PADDINGS)})")
        if len(self.kernel) != len(self.input_shape):
            raise ValueError(f"a {len(self.input_shape)}-D input needs a {len(self.input_shape)}-D kernel")
        if any(o < 1 for o in self.output_shape):
            raise ValueError(f"a kernel of {self.kernel} does not fit an input of {self.input_shape}")

    @property
    def rank(self) -> int:
        """Spatial axes: 1 for conv1d, 2 for conv2d."""
        return len(self.kernel)

    @cached_property
    def pads(self) -> Padding:
        return padding_of(self.kernel, self.padding)

    @cached_property
    def output_shape(self) -> tuple[int, ...]:
        return output_shape(self.input_shape, self.kernel, self.pads)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.filters, self.channels, *self.kernel)

    # --- SymPy objects ------------------------------------------------------------------------------------

    @cached_property
    def w(self) -> sp.IndexedBase:
        return sp.IndexedBase(self.weight_name, real=True)

    @cached_property
    def b(self) -> sp.IndexedBase:
        return sp.IndexedBase(self.bias_name, real=True)

    @cached_property
    def a(self) -> sp.IndexedBase:
        return sp.IndexedBase(self.input_name, real=True)

    @cached_property
    def z(self) -> sp.IndexedBase:
        return sp.IndexedBase(self.output_name, real=True)

    def output_indices(self) -> tuple[sp.Idx, tuple[sp.Idx, ...]]:
        """``o`` over the filters and one position index per axis over the output."""
        letters = _POSITION_LETTERS if self.rank > 1 else ("j",)
        return sp.Idx("o", self.filters), tuple(sp.Idx(letters[d], n) for d, n in enumerate(self.output_shape))

    def input_indices(self) -> tuple[sp.Idx, tuple[sp.Idx, ...]]:
        """``γ`` over the input channels and one position index per axis over the input."""
        letters = ("i", "r", "s") if self.rank > 1 else ("i",)
        return sp.Idx("gamma", self.channels), tuple(sp.Idx(letters[d], n) for d, n in enumerate(self.input_shape))

    def offset_indices(self) -> tuple[sp.Idx, ...]:
        return tuple(sp.Idx(f"m{d}", k) for d, k in enumerate(self.kernel))

    def z_expression(self, o: sp.Expr, positions: tuple[sp.Expr, ...]) -> sp.Expr:
        """``z[o, j] = Σ_c Σ_m w[o, c, m] a[c, j + m − P] + b[o]`` for the given output indices."""
        return correlation_formula(self.w, self.a, self.b, o, positions, self.channels, self.kernel, self.pads.left)


def correlation_formula(
    w: sp.IndexedBase, a: sp.IndexedBase, b: sp.IndexedBase, o: sp.Expr, positions: Sequence[sp.Expr],
    channels: int, kernel: Sequence[int], left: Sequence[int],
) -> sp.Expr:
    """``Σ_c Σ_m w[o, c, m] · a[c, j + m − P] + b[o]``: the one formula every convolution kind writes."""
    c = sp.Idx("c", channels)
    offsets = tuple(sp.Idx(f"m{d}", k) for d, k in enumerate(kernel))
    shifted = tuple(j + m - p for j, m, p in zip(positions, offsets, left))
    return sp.Sum(w[(o, c, *offsets)] * a[(c, *shifted)], c, *offsets) + b[o]


@dataclass(frozen=True)
class Convolution(Layer):
    """A convolution layer (stride 1): ``filters`` kernels over an input of ``channels`` × positions.

    Its neurons are a grid ``(filters, *output positions)``; it reads the layer below (or the network
    input) as ``(channels, *input positions)``.  Build one with :meth:`over`.

    >>> from symback.symbolic.activations import get_activation
    >>> layer = Convolution.over((1, 6, 6), get_activation("relu"), filters=2, kernel=(3, 3))
    >>> layer.grid, layer.width, layer.parameter_shapes(36)
    ((2, 4, 4), 32, {'w': (2, 1, 3, 3), 'b': (2,)})
    """

    input_grid: tuple[int, ...] = (1, 1)
    filters: int = 1
    kernel: tuple[int, ...] = (1,)
    padding: str = "valid"
    kind: ClassVar[str] = "convolution"

    @classmethod
    def over(
        cls, input_grid: Sequence[int], activation: Activation, *, filters: int, kernel: Sequence[int], padding: str = "valid"
    ) -> Convolution:
        """The layer reading ``input_grid`` = ``(channels, *positions)``; its width follows from the kernel."""
        input_grid, kernel = tuple(int(n) for n in input_grid), tuple(int(k) for k in kernel)
        rank = getattr(cls, "rank", len(input_grid) - 1)
        if len(input_grid) != rank + 1:
            raise SpecError(
                f"a {cls.kind} layer reads (channels, {', '.join(['positions'] * rank)}), not {_shape_text(input_grid)}"
            )
        if padding not in PADDINGS:
            raise SpecError(f"unknown padding {padding!r} for a {cls.kind} layer (known: {', '.join(PADDINGS)})")
        if len(kernel) != len(input_grid) - 1:
            raise SpecError(
                f"a {cls.kind} layer's kernel has one size per input axis: {len(input_grid) - 1} for an input of "
                f"{_shape_text(input_grid)}, not {len(kernel)}"
            )
        if not isinstance(filters, int) or isinstance(filters, bool) or filters < 1 or min(kernel) < 1:
            raise SpecError(f"a {cls.kind} layer needs at least one filter and kernel sizes of at least 1")
        out = output_shape(input_grid[1:], kernel, padding_of(kernel, padding))
        if min(out) < 1:
            raise SpecError(f"a {_shape_text(kernel)} kernel does not fit an input of {_shape_text(input_grid[1:])} ({padding})")
        width = filters * int(np.prod(out))
        return cls(width, activation, input_grid=input_grid, filters=filters, kernel=kernel, padding=padding)

    @property
    def channels(self) -> int:
        return self.input_grid[0]

    @property
    def pads(self) -> Padding:
        return padding_of(self.kernel, self.padding)

    @property
    def grid(self) -> tuple[int, ...]:
        return (self.filters, *output_shape(self.input_grid[1:], self.kernel, self.pads))

    def parameter_shapes(self, fan_in: int) -> dict[str, tuple[int, ...]]:
        return {"w": (self.filters, self.channels, *self.kernel), "b": (self.filters,)}

    def z_formula(self, s: LayerSymbols, j: Any, d: sp.Idx) -> sp.Expr:
        o, *positions = j
        w, b = s.parameters["w"], s.parameters["b"]
        return correlation_formula(w, s.inputs, b, o, positions, self.channels, self.kernel, self.pads.left)

    def a_formula(self, s: LayerSymbols, j: Any, d: sp.Idx) -> sp.Expr:
        if not self.activation.elementwise:
            raise SpecError(f"a {self.kind} layer needs an elementwise activation, not {self.activation.label}")
        return self.activation.at(s.z[j])

    @classmethod
    def table_keys(cls, below: tuple[int, ...]) -> frozenset[str]:
        return frozenset({"filters", "kernel", "padding"})

    @classmethod
    def from_table(cls, below: tuple[int, ...], activation: Activation, settings: dict[str, Any]) -> Layer:
        kernel = settings.pop("kernel", None)
        if isinstance(kernel, int) and not isinstance(kernel, bool):
            kernel = [kernel] * (len(below) - 1)
        if not isinstance(kernel, list) or any(isinstance(k, bool) or not isinstance(k, int) for k in kernel):
            raise SpecError(f"kernel must be a size or a list of sizes (one per axis), not {shown(kernel)}")
        return with_settings(partial(cls.over, below, activation, kernel=kernel), settings, "layer kind", cls.kind)

    def describe(self) -> str:
        return (f"{self.kind} {self.activation.label}, {self.filters} filters, kernel {_shape_text(self.kernel)}, "
                f"padding {self.padding}: {_shape_text(self.input_grid)} → {_shape_text(self.grid)}")


@dataclass(frozen=True)
class GridDense(Dense):
    """A dense layer reading a grid (the output of a convolution): ``z_j = Σ_{c,p,q} w[j,c,p,q] a[c,p,q] + b_j``.

    The weight has one axis per input axis (``(width, *input_grid)``); in memory it is the ordinary
    ``(width, fan_in)`` matrix of the flattened input, row-major.
    """

    input_grid: tuple[int, ...] = (1,)
    kind: ClassVar[str] = "dense"

    def parameter_shapes(self, fan_in: int) -> dict[str, tuple[int, ...]]:
        return {"w": (self.width, *self.input_grid), "b": (self.width,)}

    def describe(self) -> str:
        return f"{super().describe()}, reads all of {_shape_text(self.input_grid)}"

    @classmethod
    def from_table(cls, below: tuple[int, ...], activation: Activation, settings: dict[str, Any]) -> Layer:
        settings["input_grid"] = tuple(below)
        return Layer.from_table.__func__(cls, below, activation, settings)

    def z_formula(self, s: LayerSymbols, j: sp.Idx, d: sp.Idx) -> sp.Expr:
        w, b = s.parameters["w"], s.parameters["b"]
        read = tuple(sp.Idx(f"d_{axis}" if axis else "d", n) for axis, n in enumerate(self.input_grid))
        return sp.Sum(w[(j, *read)] * s.inputs[read], *read) + b[j]


def _shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(n) for n in shape)
