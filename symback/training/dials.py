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
>>> gradients = compile_network(net).gradient(params, data)  # one the caller already has
>>> rank_dials(net, params, gradients=gradients, top=2) == top
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compile.compiler import Gradients, compile_network
from ..data import Dataset
from ..symbolic.network import Network, NodeRef
from ..symbolic.parameters import Parameters

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
    network: Network,
    params: Parameters,
    data: Dataset | None = None,
    *,
    gradients: Gradients | None = None,
    learning_rate: float = 0.1,
    top: int = 10,
) -> list[Dial]:
    """The ``top`` parameters with the largest ``|∂C/∂p|``, largest first (vectorised: one gradient).

    The partials are those of ``params`` on ``data``; a caller that already has that gradient
    passes it as ``gradients`` instead, and nothing is compiled or recomputed.  A frozen
    parameter's dial shows its real partial (the gradient is taken with ``respect_frozen=False``).
    """
    if gradients is None:
        if data is None:
            raise TypeError("rank_dials needs the data or the gradients")
        gradients = compile_network(network).gradient(params, data, respect_frozen=False)
    flat = gradients.as_parameters().flat()
    scores = np.abs(flat)
    # A tied parameter is one dial, shown under its first entry: its other entries are left out.
    repeats = [_position(network, ref) for members in network.ties.values() for ref in members[1:]]
    scores[repeats] = -1.0
    order = np.argsort(-scores, kind="stable")[: max(0, min(top, flat.size - len(repeats)))]
    refs = list(network.parameter_refs())
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


def _position(network: Network, ref: NodeRef) -> int:
    """Where ``ref`` is in :meth:`~symback.symbolic.parameters.Parameters.flat` (layer by layer, weights then biases)."""
    sizes = network.sizes
    offset = sum(sizes[l] * sizes[l - 1] + sizes[l] for l in range(1, ref.layer))
    if ref.kind == "w":
        return offset + ref.j * sizes[ref.layer - 1] + ref.k
    return offset + sizes[ref.layer] * sizes[ref.layer - 1] + ref.j
