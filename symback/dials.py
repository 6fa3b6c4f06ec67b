"""Seed 000's "dials": which parameters to turn, which way, and by how much.

Each weight and bias is a dial.  Its partial ∂C/∂p (from the compiled
derivation) says how sensitive the cost is to it; gradient descent turns it by
``-η ∂C/∂p``.  :func:`rank_dials` lists the dials whose partials are largest.

>>> from symback import Network, Parameters, Dataset
>>> net = Network([1, 2, 1], "sigmoid", "ssr")
>>> params = Parameters.initialize(net, seed=0)
>>> data = Dataset.from_arrays([0.0, 1.0], [0.0, 1.0])
>>> top = rank_dials(net, params, data, learning_rate=0.1, top=2)
>>> len(top), top[0].direction in ("up", "down")
(2, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .compiler import CompiledNetwork
from .data import Dataset
from .network import Network, NodeRef
from .parameters import Parameters

__all__ = ["Dial", "rank_dials"]


@dataclass(frozen=True)
class Dial:
    """One parameter seen as a dial: its value, its partial, and the turn gradient descent makes."""

    name: str
    ref: NodeRef
    value: float
    partial: float
    turn: float  # -learning_rate * partial
    frozen: bool

    @property
    def direction(self) -> str:
        """``up`` (clockwise, towards larger values) or ``down``; ``none`` when the partial is zero."""
        if self.turn > 0:
            return "up"
        if self.turn < 0:
            return "down"
        return "none"


def rank_dials(
    network: Network, params: Parameters, data: Dataset, *, learning_rate: float = 0.1, top: int = 10
) -> list[Dial]:
    """The ``top`` parameters with the largest ``|∂C/∂p|``, largest first (vectorised: one gradient)."""
    gradients = CompiledNetwork(network).gradient(params, data, respect_frozen=False)
    flat = np.concatenate([np.concatenate([w.ravel(), b]) for w, b in zip(gradients.weights, gradients.biases)])
    order = np.argsort(-np.abs(flat), kind="stable")[: max(0, top)]
    refs = _refs_by_position(network)
    values = params.flat()
    return [
        Dial(
            network.name_of(refs[i]),
            refs[i],
            float(values[i]),
            float(flat[i]),
            float(-learning_rate * flat[i]),
            refs[i] in network.frozen,
        )
        for i in order
    ]


def _refs_by_position(network: Network) -> list[NodeRef]:
    return list(network.parameter_refs())
