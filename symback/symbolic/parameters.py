"""Parameter values (weights and biases) and their initialisation.

``weights[l-1]`` has shape ``(n_l, n_{l-1})`` so that ``z(l) = W(l) a(l-1) + b(l)``;
``biases[l-1]`` has shape ``(n_l,)``.

>>> from symback.symbolic.network import Network, NodeRef
>>> net = Network([2, 3, 1], "tanh", "mse")
>>> params = Parameters.initialize(net, "xavier", seed=0)
>>> [w.shape for w in params.weights]
[(3, 2), (1, 3)]
>>> params.get(NodeRef("b", 2, 0))
0.0

A parameter is read and set by the name the user sees, too: parameters made for a network
(``initialize``, ``zeros``, a spec's, a training result's, and their copies) know its names.

>>> params.set("b(L)", 0.5)
>>> params.get("b(L)"), params.get("w(1)_0_1") == float(params.weights[0][0, 1])
(0.5, True)

Parameters made here (``initialize``, ``zeros``, ``copy``, ``astype``) are *packed*: every array is
a view of one 1-D :attr:`~PackedArrays.buffer`, so an optimizer updates all of them in a single
NumPy pass rather than one pass per array.

>>> params.buffer.shape, params.weights[0].base is params.buffer
((13,), True)
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from math import prod
from typing import Any

import numpy as np

from ..errors import SpecError
from ..registry import Registry
from .network import Network, NodeRef

__all__ = ["INITIALIZERS", "PackedArrays", "Parameters", "packed_views", "register_initializer"]

Initializer = Callable[[np.random.Generator, int, int], np.ndarray]


def _uniform(rng: np.random.Generator, fan_out: int, fan_in: int) -> np.ndarray:
    # Seed 000's "dials start with random settings".
    return rng.uniform(-1.0, 1.0, size=(fan_out, fan_in))


def _normal(rng: np.random.Generator, fan_out: int, fan_in: int) -> np.ndarray:
    return rng.standard_normal((fan_out, fan_in))


def _xavier(rng: np.random.Generator, fan_out: int, fan_in: int) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_out, fan_in))


def _he(rng: np.random.Generator, fan_out: int, fan_in: int) -> np.ndarray:
    return rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / fan_in)


#: Registry of weight initialisers: name -> f(rng, fan_out, fan_in) -> array.
INITIALIZERS: Registry[Initializer] = Registry("initialisation", {
    "uniform": _uniform,
    "normal": _normal,
    "xavier": _xavier,
    "glorot": _xavier,
    "he": _he,
})


def register_initializer(name: str, initializer: Initializer) -> None:
    """Make ``initializer`` available to :meth:`Parameters.initialize`."""
    INITIALIZERS.register(name, initializer)


def packed_views(buffer: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Views of the 1-D ``buffer`` with ``shapes`` (every layer's weights, then every layer's biases),
    laid out layer by layer, ``w(1), b(1), w(2), b(2), …`` (the order of :meth:`Parameters.flat`).

    >>> views = packed_views(np.arange(9.0), [(2, 2), (1, 2), (2,), (1,)])
    >>> [v.tolist() for v in views]
    [[[0.0, 1.0], [2.0, 3.0]], [[6.0, 7.0]], [4.0, 5.0], [8.0]]
    """
    if sum(prod(shape) for shape in shapes) != buffer.size:
        raise ValueError(f"a buffer of {buffer.size} values cannot hold arrays of shapes {list(shapes)}")
    layers = len(shapes) // 2
    views: list[np.ndarray] = [None] * len(shapes)  # type: ignore[list-item]
    offset = 0
    for index in (i for layer in range(layers) for i in (layer, layers + layer)):
        size = prod(shapes[index])
        views[index] = buffer[offset : offset + size].reshape(shapes[index])
        offset += size
    return views


class PackedArrays:
    """Weights and biases that may all be views of one 1-D buffer (see :func:`packed_views`).

    Whole-model operations (an optimizer's update, the largest entry of a gradient) then take one
    NumPy call on :attr:`buffer` instead of one per array.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    _buffer: np.ndarray | None = None
    _views: tuple[np.ndarray, ...] = ()
    _shapes: tuple[tuple[int, ...], ...] = ()

    @property
    def buffer(self) -> np.ndarray | None:
        """The 1-D array every weight and bias is a view of, or None: never packed, or an array has
        been replaced (or copied off) since."""
        views = self._views
        if not views or views[0].base is not self._buffer:
            return None
        arrays = self.weights + self.biases
        return self._buffer if len(arrays) == len(views) and all(map(operator.is_, arrays, views)) else None

    def __getstate__(self) -> dict[str, Any]:
        # A copy or a pickle holds the arrays once, unpacked (the buffer would be a second copy of them).
        state = dict(self.__dict__)
        for name in ("_buffer", "_views", "_shapes"):
            state.pop(name, None)
        return state

    def parts(self) -> list[np.ndarray]:
        """What a whole-model operation visits: the buffer when packed, else every weight and bias array."""
        buffer = self.buffer
        return [buffer] if buffer is not None else self.weights + self.biases

    def _adopt(self, buffer: np.ndarray, views: Sequence[np.ndarray]) -> None:
        # object.__setattr__: Gradients is a frozen dataclass.
        object.__setattr__(self, "_buffer", buffer)
        object.__setattr__(self, "_views", tuple(views))
        object.__setattr__(self, "_shapes", tuple(v.shape for v in views))

    @classmethod
    def _packed(cls, shapes: Sequence[tuple[int, ...]], dtype: Any, fill: Sequence[np.ndarray] | None = None) -> Any:
        buffer = np.zeros(sum(prod(shape) for shape in shapes), dtype=dtype)
        views = packed_views(buffer, shapes)
        for view, values in zip(views, fill or ()):
            view[...] = values
        layers = len(shapes) // 2
        packed = cls(views[:layers], views[layers:])
        packed._adopt(buffer, views)
        return packed


@dataclass
class Parameters(PackedArrays):
    """Weights and biases of a network, as NumPy arrays (mutable: training updates them in place)."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]

    @classmethod
    def initialize(
        cls, network: Network, method: str = "xavier", *, seed: int | None = 0, dtype: Any = np.float64
    ) -> Parameters:
        """Random weights from ``method`` (``uniform``, ``normal``, ``xavier``, ``he``), zero biases.

        ``seed`` makes the draw reproducible; biases start at 0 except for ``uniform``,
        which, like seed 000's dials, draws them too.
        """
        draw = INITIALIZERS.lookup(method)
        rng = np.random.default_rng(seed)
        weights, biases = [], []
        for shape, bias_shape in zip(network.weight_shapes, network.bias_shapes):
            # A kind's weight of any shape is drawn as its (rows, everything a row reads) matrix: a dense
            # layer's (n_l, n_{l-1}); a convolution's (filters, channels × kernel).
            fan_out, fan_in = shape[0], prod(shape[1:])
            weights.append(np.asarray(draw(rng, fan_out, fan_in), dtype=dtype).reshape(shape))
            if method == "uniform":
                biases.append(rng.uniform(-1.0, 1.0, size=bias_shape).astype(dtype))
            else:
                biases.append(np.zeros(bias_shape, dtype=dtype))
        params = cls(weights, biases).packed().of(network)
        for members in network.ties.values():  # a tied parameter takes its first entry's draw
            params.set(members[0], params.get(members[0]))
        return params

    @classmethod
    def zeros(cls, network: Network, dtype: Any = np.float64) -> Parameters:
        return cls._packed([*network.weight_shapes, *network.bias_shapes], dtype).of(network)

    #: The network whose names :meth:`get` and :meth:`set` accept (None: only NodeRefs, or pass one).
    network: Network | None = field(default=None, repr=False, compare=False)

    def of(self, network: Network | None) -> Parameters:
        """These parameters (not a copy), now reading names of ``network``; returns self."""
        self.network = network
        return self

    def _ref(self, key: NodeRef | str, network: Network | None) -> NodeRef:
        if isinstance(key, NodeRef):
            return key
        network = network if network is not None else self.network
        if network is None:
            raise SpecError(
                f"these parameters do not know their network, so not the name {key!r}: "
                f"pass it, params.get({key!r}, network), or attach it once with params.of(network)"
            )
        ref = network.resolve(key)
        if not ref.is_parameter:
            raise SpecError(f"{key!r} is not a weight or bias")
        return ref

    def get(self, key: NodeRef | str, network: Network | None = None) -> float:
        """The value of one weight or bias, by NodeRef or by name (``"w5"``, ``"b(L)"``, ``"w(1)_0_1"``).

        A name is looked up in ``network``, else in the network these parameters were made for.
        """
        ref = self._ref(key, network)
        if ref.kind == "w":
            return float(self.weights[ref.layer - 1][ref.j, ref.k])
        if ref.kind == "b":
            return float(self.biases[ref.layer - 1][ref.j])
        raise SpecError(f"{ref} is not a parameter")

    def set(self, key: NodeRef | str, value: float, network: Network | None = None) -> None:
        """Set one weight or bias, by NodeRef or by name (see :meth:`get`).

        A tied parameter (see :meth:`Network.tied`) is one parameter: where the network is known
        (given, or the one these parameters were made for), setting it, or any of its entries, sets
        every entry.  One entry alone is reached through the arrays themselves.
        """
        ref = self._ref(key, network)
        network = network if network is not None else self.network
        for entry in network.tied(ref) if network is not None and ref.is_parameter else (ref,):
            if entry.kind == "w":
                self.weights[entry.layer - 1][entry.j, entry.k] = value
            elif entry.kind == "b":
                self.biases[entry.layer - 1][entry.j] = value
            else:
                raise SpecError(f"{entry} is not a parameter")

    def set_tied(self, network: Network, ref: NodeRef | str, value: float) -> None:
        """Set the parameter ``ref`` of ``network``: every entry tied to it takes ``value``.

        >>> from symback.symbolic.network import Network
        >>> net = Network([1, 2, 1], names={"b(1)_0": "b1", "b(1)_1": "b1"})
        >>> params = Parameters.zeros(net)
        >>> params.set_tied(net, "b1", 0.35)
        >>> params.biases[0].tolist()
        [0.35, 0.35]
        """
        self.set(ref, value, network)

    def check_tied(self, network: Network, where: str = "") -> None:
        """Raise SpecError when the entries of a tied parameter hold different values."""
        for name, members in network.ties.items():
            values = [self.get(member) for member in members]
            if any(value != values[0] for value in values):
                shown = ", ".join(f"{network.canonical_name(m)} = {v:g}" for m, v in zip(members, values))
                raise SpecError(f"{where}tied parameter {name!r} has different values in its entries: {shown}")

    def update(self, network: Network, values: Mapping[str, Any]) -> None:
        """Set parameters by name: ``{"w1": 3.34, "b(L)": 0, "w(1)": [[...]]}``.

        A name of a whole layer (``w(1)``/``b(1)`` for a layer wider than one neuron) takes an array;
        for a layer of one entry the numbered name (``b(2)`` of a 1-2-1 network) takes one number too.
        The name of a tied parameter (or of any of its entries) sets all of its entries; an array
        giving its entries different values is refused.

        >>> from symback.symbolic.network import Network
        >>> net = Network([1, 2, 1], "sigmoid", "ssr")
        >>> params = Parameters.zeros(net)
        >>> params.update(net, {"b(2)": 0.3, "w(2)": [[1.0, 2.0]]})
        >>> params.biases[1].tolist(), params.weights[1].tolist()
        ([0.3], [[1.0, 2.0]])
        """
        for name, value in values.items():
            layer_array = self._layer_target(network, name)
            if layer_array is not None:
                target = layer_array
                array = _as_array(value, f"parameter {name!r}")
                if array.shape == () and target.size == 1:
                    target[...] = array
                    continue
                if array.shape != target.shape:
                    raise SpecError(f"parameter {name!r} needs shape {target.shape}, got {array.shape}")
                target[...] = array
                continue
            ref = network.resolve(name)
            if not ref.is_parameter:
                raise SpecError(f"{name!r} is not a weight or bias")
            array = _as_array(value, f"parameter {name!r}")
            if array.shape != ():
                raise SpecError(f"parameter {name!r} takes one number, got shape {array.shape}")
            self.set(ref, float(array), network)
        self.check_tied(network)

    def _layer_target(self, network: Network, name: str) -> np.ndarray | None:
        text = str(name).replace(" ", "")
        for kind, arrays in (("w", self.weights), ("b", self.biases)):
            for layer in range(1, network.depth + 1):
                labels = {f"{kind}({layer})", f"{kind}({network.layer_label(layer)})"}
                if text in labels and network.canonical_name(NodeRef(kind, layer, 0, 0 if kind == "w" else None)) != text:
                    return arrays[layer - 1]
        return None

    def packed(self, dtype: Any = None) -> Parameters:
        """A packed copy (see :class:`PackedArrays`), in ``dtype`` or else the arrays' common one."""
        arrays = self.weights + self.biases
        if len(self.weights) != len(self.biases):
            raise SpecError(f"{len(self.weights)} weight arrays but {len(self.biases)} bias arrays: one of each per layer")
        dtype = np.result_type(*arrays) if dtype is None else dtype
        return Parameters._packed([np.shape(a) for a in arrays], dtype, arrays).of(self.network)

    def copy(self) -> Parameters:
        """An independent copy: packed when every array has the same dtype, else each in its own."""
        dtypes = {np.asarray(a).dtype for a in self.weights + self.biases}
        if len(dtypes) == 1 and len(self.weights) == len(self.biases):
            return self.packed()
        return Parameters([np.array(w) for w in self.weights], [np.array(b) for b in self.biases], self.network)

    def astype(self, dtype: Any) -> Parameters:
        """A packed copy in ``dtype``."""
        return self.packed(dtype)

    def named(self, network: Network | None = None) -> dict[str, float]:
        """Every parameter by the name the user sees, one entry per weight and bias, one per tied
        parameter (``network`` defaults to the one these parameters were made for).

        Meant for small networks: seed 000's 625-20-20-10 would give 13,150 entries.
        """
        network = network if network is not None else self.network
        if network is None:
            raise SpecError("these parameters do not know their network: pass it, params.named(network)")
        return {network.name_of(ref): self.get(ref) for ref in network.parameter_refs()}

    def flat(self) -> np.ndarray:
        """All parameters as one vector, in :meth:`Network.parameter_refs` order."""
        return np.concatenate([np.concatenate([w.ravel(), b]) for w, b in zip(self.weights, self.biases)])

    def __deepcopy__(self, memo: dict[int, Any]) -> Parameters:
        # The network is immutable and can be large (its frozen set names every frozen parameter): a
        # deep copy shares it, as copy() does, and copies the arrays (unpacked, see __getstate__).
        memo.setdefault(id(self.network), self.network)
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__getstate__(), memo))
        return clone

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Parameters) or len(self.weights) != len(other.weights):
            return False
        return all(np.array_equal(a, b) for a, b in zip(self.weights + self.biases, other.weights + other.biases))


def _as_array(value: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as error:
        raise SpecError(f"{what} must be numeric, not {value!r}") from error
    if not np.all(np.isfinite(array)):
        raise SpecError(f"{what} must be finite")
    return array
