"""The ``[[layer]]`` form of a spec: a network written layer by layer, any registered kind.

::

    [network]
    inputs = [1, 25, 25]       # the input's width, or its shape as the first layer reads it
    cost = "categorical_cross_entropy"

    [[layer]]
    kind = "conv2d"
    filters = 8
    kernel = 5                 # or [5, 5]
    padding = "valid"          # or "same"
    activation = "relu"

    [[layer]]
    size = 10                  # kind = "dense" is the default; "residual" adds skip = a layer number
    activation = "softmax"

Each table names a kind (``dense``, ``residual``, ``conv1d``, ``conv2d``, ``recurrent``), an
``activation`` (default sigmoid) and the kind's own keys (:attr:`~symback.symbolic.layers.Layer.table_keys`).
A dense or residual layer reading a flat layer is built by :class:`~symback.symbolic.network.Network` from the
sizes and skip edges, as the ``layers = [...]`` shorthand builds it; every other layer by its kind's
``from_table`` from the shape of the layer below, so a convolution's width and a dense layer's weight
shape follow from the shapes, never typed.

>>> network = network_from_tables({"inputs": [1, 6, 6], "cost": "squared_error"},
...     [{"kind": "conv2d", "filters": 2, "kernel": 3, "activation": "tanh"}, {"size": 1}])
>>> network.sizes, [layer.kind for layer in network.layers]
((36, 32, 1), ['conv2d', 'dense'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import SpecError, shown
from ..registry import unknown_name
from ..symbolic.activations import get_activation
from ..symbolic.layers import Layer, get_layer_kind
from ..symbolic.network import Network

__all__ = ["network_from_tables"]

#: The keys every ``[[layer]]`` table may hold, whatever its kind.
COMMON_KEYS = frozenset({"kind", "activation"})


def _input_grid(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value or any(
        isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in value
    ):
        raise SpecError(f"[network] inputs must be a positive integer or a list of them (its shape), not {shown(value)}")
    return tuple(value)


def network_from_tables(table: Mapping[str, Any], tables: Any, **options: Any) -> Network:
    """The Network of ``[network]`` (``inputs``, ``cost``) and its ``[[layer]]`` tables; ``options``
    (names, frozen, trainable) go to :class:`~symback.symbolic.network.Network`."""
    for key in ("layers", "activations", "activation"):
        if key in table:
            raise SpecError(f"[network] {key} = ... and [[layer]] tables both describe the layers: give one of them")
    if "inputs" not in table:
        raise SpecError("[[layer]] tables need [network] inputs = n, the width of the input (or its shape)")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, Mapping) for t in tables):
        raise SpecError("[[layer]] must be one or more tables, each a layer after the input")
    grid = _input_grid(table["inputs"])
    sizes, activations, layers, skips = [math.prod(grid)], [], [], {}
    grids = [grid]  # each layer's shape, the input's first: a skip edge's source must be flat
    for number, entry in enumerate(tables, start=1):
        settings = dict(entry)
        kind = settings.pop("kind", "dense")
        factory = get_layer_kind(kind)  # an unknown kind is named here, with the known ones
        known = COMMON_KEYS | factory.table_keys(grid)
        unknown = sorted(set(entry) - known)
        if unknown:
            raise unknown_name("key", unknown[0], known, where=f" in [[layer]] {number}", error=SpecError)
        activation = get_activation(settings.pop("activation", "sigmoid"))
        if factory.built_by_network(grid):  # dense or residual on a flat layer: as the shorthand builds it
            if "size" not in settings:
                raise SpecError(f"[[layer]] {number} needs size = n")
            if (kind == "residual") != ("skip" in settings):
                raise SpecError(
                    f"[[layer]] {number}: a residual layer names the layer it adds (skip = 0 for the input), "
                    "and only a residual layer does"
                )
            if kind == "residual":
                skips[number] = settings["skip"]
                _refuse_grid_skip(number, settings["skip"], grids)
            layer = None
            width, grid = settings["size"], (settings["size"],)
        else:
            try:
                layer = factory.from_table(grid, activation, settings)
            except SpecError as error:
                raise SpecError(f"[[layer]] {number} ({kind}): {error}") from None
            width, grid = layer.width, layer.grid
        sizes.append(width)
        grids.append(grid)
        activations.append(activation)
        layers.append(layer)
    return Network(
        sizes, activations, table.get("cost", "squared_error"), skips=skips,
        layers=None if all(layer is None for layer in layers) else layers, **options,
    )


def _refuse_grid_skip(number: int, skip: Any, grids: Sequence[tuple[int, ...]]) -> None:
    """A residual layer adds its source neuron by neuron, ``a(l)_j = σ(z_j) + a(src)_j`` with one flat
    index ``j``; a convolution's or recurrent layer's nodes are a grid (filters × positions, steps ×
    hidden), and the derived highway ``∂C/∂a(src)[o, p] += ∂C/∂a(l)_j`` would need a flattening map
    between the two index spaces that no layer formula writes: refused in one line (it crashed the
    lowering before).  A malformed ``skip`` is left to :class:`~symback.symbolic.network.Network` to name."""
    if isinstance(skip, int) and not isinstance(skip, bool) and 0 <= skip < len(grids) and len(grids[skip]) > 1:
        shape = "×".join(map(str, grids[skip]))
        raise SpecError(
            f"[[layer]] {number} (residual): its skip source, layer {skip}, is a grid of {shape}; a residual layer "
            "adds a flat layer entry by entry (skip from a dense or residual layer, or a flat input)"
        )


def build_layers(input_grid: Sequence[int], tables: Sequence[Mapping[str, Any]]) -> list[Layer]:
    """The layers of ``tables`` on an input of shape ``input_grid`` (a quick way to try a stack).

    >>> [layer.describe() for layer in build_layers([4, 3], [{"kind": "recurrent", "hidden": 2, "activation": "tanh"}])]
    ['recurrent tanh, hidden 2, 4 steps of 3 inputs']
    """
    network = network_from_tables({"inputs": list(input_grid)}, [*tables, {"size": 1}])
    return list(network.layers[:-1])
