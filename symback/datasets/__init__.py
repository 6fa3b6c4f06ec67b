"""Data sets shipped with symback (read with :mod:`importlib.resources`, so they work from a wheel).

``digits``: 5,000 MNIST digits (500 per class) cropped to 25×25 = 625 pixels, for seed 000's
625-20-20-10 network.  Source, licences and how the file was made: ``symback/datasets/README.md``.

>>> train, test = load_digits(test_fraction=0.2, seed=0)
>>> train.X.shape, test.Y.shape
((4000, 625), (1000, 10))
>>> float(train.X.min()), float(train.X.max())
(0.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np

from ..data import Dataset, one_hot, train_test_split
from ..registry import Registry

__all__ = ["DATASETS", "digits_arrays", "get_dataset", "load_digits", "register_dataset"]


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The raw shipped arrays: uint8 pixels ``(5000, 625)`` (0..255, row-major 25×25) and uint8 labels."""
    with resources.files(__name__).joinpath("digits25.npz").open("rb") as handle:
        with np.load(handle, allow_pickle=False) as archive:
            return archive["pixels"], archive["labels"]


def load_digits(test_fraction: float = 0.2, *, seed: int | None = 0, dtype: Any = np.float64) -> tuple[Dataset, Dataset]:
    """Train and test :class:`~symback.data.Dataset` of the shipped digits: pixels in [0, 1], one-hot targets.

    The split is a seeded shuffle (the file is sorted by class, so it must be shuffled).
    """
    pixels, labels = digits_arrays()
    data = Dataset((pixels / 255.0).astype(dtype), one_hot(labels, 10, dtype=dtype))
    return train_test_split(data, test_fraction, seed=seed)


#: Registry of shipped data sets: name -> loader(test_fraction, seed=, dtype=) -> (train, test).
DATASETS: Registry[Callable[..., tuple[Dataset, Dataset]]] = Registry("dataset", {"digits": load_digits})


def register_dataset(name: str, loader: Callable[..., tuple[Dataset, Dataset]]) -> None:
    DATASETS.register(name, loader)


def get_dataset(name: str) -> Callable[..., tuple[Dataset, Dataset]]:
    return DATASETS.lookup(name)
