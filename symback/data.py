"""Training examples: inputs ``X`` (one row per example) and targets ``Y``.

>>> data = Dataset.from_arrays([0, 0.5, 1], [0, 1, 0])
>>> data.X.shape, data.Y.shape
((3, 1), (3, 1))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SpecError

__all__ = ["Dataset"]


@dataclass(frozen=True)
class Dataset:
    """``X`` of shape ``(n_examples, n_inputs)``, ``Y`` of shape ``(n_examples, n_outputs)``."""

    X: np.ndarray
    Y: np.ndarray

    @classmethod
    def from_arrays(cls, x: Any, y: Any, *, dtype: Any = np.float64) -> Dataset:
        """Accepts lists or arrays; a flat list is one input (or output) per example."""
        X = _matrix(x, "data x", dtype)
        Y = _matrix(y, "data y", dtype)
        if X.shape[0] != Y.shape[0]:
            raise SpecError(f"data has {X.shape[0]} inputs but {Y.shape[0]} targets")
        return cls(X, Y)

    def __len__(self) -> int:
        return self.X.shape[0]

    def check(self, n_inputs: int, n_outputs: int) -> None:
        """Raise SpecError unless the data fit a network with these input and output widths."""
        if self.X.shape[1] != n_inputs:
            raise SpecError(f"data x has {self.X.shape[1]} column(s) but the network has {n_inputs} input(s)")
        if self.Y.shape[1] != n_outputs:
            raise SpecError(f"data y has {self.Y.shape[1]} column(s) but the network has {n_outputs} output(s)")

    def astype(self, dtype: Any) -> Dataset:
        return Dataset(self.X.astype(dtype), self.Y.astype(dtype))


def _matrix(values: Any, what: str, dtype: Any) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise SpecError(f"{what} must be a list of numbers or of rows of numbers") from error
    if array.ndim == 0:
        array = array.reshape(1, 1)
    elif array.ndim == 1:
        array = array.reshape(-1, 1)
    elif array.ndim != 2:
        raise SpecError(f"{what} must be one- or two-dimensional, got {array.ndim} dimensions")
    if array.shape[0] == 0:
        raise SpecError(f"{what} is empty")
    if not np.all(np.isfinite(array)):
        raise SpecError(f"{what} contains NaN or infinite values")
    return array
