"""Layer kind ``conv2d``: a 2-D convolution, stride 1, ``valid`` or ``same`` padding, several filters over
several input channels.

``z[o, j, k] = Σ_c Σ_u Σ_v w[o, c, u, v] · a[c, j + u − P, k + v − Q] + b[o]`` — the formula of
:class:`~symback.symbolic.layers_conv.Convolution` with two spatial axes.

>>> from symback.symbolic.activations import get_activation
>>> layer = Conv2D.over((1, 25, 25), get_activation("relu"), filters=8, kernel=(5, 5))
>>> layer.grid, layer.width
((8, 21, 21), 3528)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .layers import register_layer_kind
from .layers_conv import Convolution

__all__ = ["Conv2D"]


@dataclass(frozen=True)
class Conv2D(Convolution):
    """A convolution over pictures: input ``(channels, rows, columns)``, kernel ``(rows, columns)``."""

    kind: ClassVar[str] = "conv2d"
    rank: ClassVar[int] = 2


register_layer_kind("conv2d", Conv2D)
