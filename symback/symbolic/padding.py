"""The zero padding of a window that slides along spatial axes: which paddings exist, how many zeros each
puts on either side, and the output positions they leave.

A convolution layer (:mod:`symback.symbolic.layers_conv`) declares its geometry with these; the lowering of its shifted
sums (:mod:`symback.compile.lowering_shifted`) pads its arrays by the same numbers, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PADDINGS", "Padding", "output_shape", "padding"]

#: The paddings a convolution kind accepts.
PADDINGS = ("valid", "same")


@dataclass(frozen=True)
class Padding:
    """Zeros added before (``left``) and after (``right``) each spatial axis of the input."""

    left: tuple[int, ...]
    right: tuple[int, ...]

    @property
    def widths(self) -> list[tuple[int, int]]:
        return list(zip(self.left, self.right, strict=True))


def padding(kernel: Sequence[int], mode: str) -> Padding:
    """The padding of ``mode`` for a kernel of ``kernel`` offsets per axis.

    ``same`` pads ``K − 1`` zeros in all, ``(K−1)//2`` of them on the left (PyTorch's rule, so an even
    kernel has its extra zero on the right).

    >>> padding((3, 4), "same")
    Padding(left=(1, 1), right=(1, 2))
    """
    if mode == "valid":
        return Padding(tuple(0 for _ in kernel), tuple(0 for _ in kernel))
    if mode == "same":
        return Padding(tuple((k - 1) // 2 for k in kernel), tuple(k - 1 - (k - 1) // 2 for k in kernel))
    raise ValueError(f"unknown padding {mode!r} (known: {', '.join(PADDINGS)})")


def output_shape(input_shape: Sequence[int], kernel: Sequence[int], pads: Padding) -> tuple[int, ...]:
    """Positions of the output per axis: ``N + left + right − K + 1``.

    >>> output_shape((25, 25), (5, 5), padding((5, 5), "valid"))
    (21, 21)
    """
    return tuple(n + l + r - k + 1 for n, k, l, r in zip(input_shape, kernel, pads.left, pads.right, strict=True))
