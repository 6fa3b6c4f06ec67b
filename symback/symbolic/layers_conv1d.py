"""Layer kind ``conv1d``: a 1-D convolution, stride 1, ``valid`` or ``same`` padding.

``z[o, j] = Σ_c Σ_m w[o, c, m] · a[c, j + m − P] + b[o]`` — the formula of
:class:`~symback.symbolic.layers_conv.Convolution` with one spatial axis; the chain rule derives its backward pass.

>>> from symback.symbolic.activations import get_activation
>>> layer = Conv1D.over((2, 10), get_activation("tanh"), filters=3, kernel=(4,), padding="same")
>>> layer.grid
(3, 10)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .layers import register_layer_kind
from .layers_conv import Convolution

__all__ = ["Conv1D"]


@dataclass(frozen=True)
class Conv1D(Convolution):
    """A convolution over sequences: input ``(channels, length)``, kernel ``(size,)``."""

    kind: ClassVar[str] = "conv1d"
    rank: ClassVar[int] = 1


register_layer_kind("conv1d", Conv1D)
