"""The network description: layer sizes, activations, cost, names and frozen parameters.

This is the first stage of symback's pipeline (network → symbolic model →
derivation → render / compile → train / verify).  It holds structure only;
parameter values live in :class:`~symback.symbolic.parameters.Parameters` and training
examples in :class:`~symback.data.Dataset`.

Notation follows 3Blue1Brown (seed 001): layers ``1 … L`` with ``L`` the
output; ``w(L)_j_k`` connects neuron ``k`` of layer ``L-1`` to neuron ``j`` of
layer ``L``; ``b(L)_j``, ``z(L)_j`` and ``a(L)_j`` belong to neuron ``j``.
Indices count from 0; an index is dropped where its layer has one neuron, so
the 1-1-1-1 chain speaks of ``w(L)``, ``a(L-1)``, ``b(L-2)``.  Layer ``0`` is
the input ``x_k``; the target is ``y_j`` and the cost ``C``.

>>> net = Network([625, 20, 20, 10], "sigmoid", "squared_error")
>>> net.n_weights, net.n_biases
(13100, 50)
>>> net.name_of(NodeRef("w", 3, 0, 19))
'w(L)_0_19'
>>> net.resolve("w(1)_2_5")
NodeRef(kind='w', layer=1, j=2, k=5)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SpecError, UnknownNameError, shown
from ..grammar.formula import CONSTANTS, FUNCTIONS
from ..grammar.names import UNLAYERED, Name, is_identifier
from ..grammar.names import Layer as LayerName  # the label "L-1"; layers.Layer is the layer object
from ..grammar.names import parse as parse_name
from ..registry import FoldedNames, did_you_mean
from .activations import Activation, get_activation
from .costs import Cost, get_cost
from .layers import Dense, Layer, Residual

__all__ = ["KINDS", "MAX_LAYERS", "MAX_PARAMETERS", "FrozenParameters", "Network", "NodeRef"]

#: What a node of the network can be.
KINDS = {
    "w": "weight",
    "b": "bias",
    "z": "weighted input",
    "a": "activation",
    "x": "input",
    "y": "target",
    "C": "cost",
}

#: The kinds a name writes with a layer, ``w(L)_j_k`` (the grammar itself is :mod:`symback.grammar.names`).
_LAYERED = ("w", "b", "z", "a")

#: The largest network symback builds: weights and biases in all (each array is allocated whole,
#: and an optimizer keeps up to three more of the same size).
MAX_PARAMETERS = 50_000_000
#: The most layers after the input (the symbolic derivation walks every one).
MAX_LAYERS = 1_000


@dataclass(frozen=True, order=True)
class NodeRef:
    """One node of the network: a weight, bias, weighted input, activation, input, target or the cost.

    ``layer`` counts from 1 (first hidden) to ``L`` (output); inputs are layer 0.
    ``j`` is the neuron in ``layer``; ``k`` the neuron in ``layer - 1`` (weights only).
    """

    kind: str
    layer: int = 0
    j: int | None = None
    k: int | None = None

    @property
    def is_parameter(self) -> bool:
        return self.kind in ("w", "b")


@dataclass(frozen=True, eq=False)
class Network:
    """A fully connected network.

    Arguments:
        sizes: neurons per layer, input first, e.g. ``[1, 2, 1]``.
        activations: one activation for every layer after the input, or one for all
            (names, ``{name=..., slope=...}`` tables, ``{formula="..."}`` tables or
            :class:`~symback.symbolic.activations.Activation` objects).
        cost: a cost name, table or :class:`~symback.symbolic.costs.Cost`.
        names: the user's own names, ``{"w(1)_0_0": "w1", "a(L)": "predicted", ...}``.
            Keys are canonical names (absolute ``w(1)`` or relative ``w(L-1)`` layers);
            ``"output"``, ``"target"``, ``"input"`` and ``"cost"`` name the whole
            output activation, target, input and cost.  One name given to several
            weights or biases ties them into one shared parameter (see :meth:`tied`).
        frozen: parameters that are not trained (names; ``w(1)_*`` for a whole layer).
        trainable: alternatively, the only parameters that are trained.
        skips: skip edges ``{layer: source}``: ``a(layer) = σ(z(layer)) + a(source)`` (a residual
            layer, :class:`~symback.symbolic.layers.Residual`); the source, 0 (the input) up to ``layer - 2``,
            must be as wide as the layer.
        layers: the layers whole, one per size after the input (any registered kind: a convolution, a
            recurrent layer; see :mod:`symback.spec.layer_table`); None entries are the dense or residual
            layers the sizes and skips give.

    >>> net = Network([1, 2, 1], ["softplus", "identity"], "ssr", names={"b(2)": "b3"})
    >>> net.name_of(net.resolve("b3"))
    'b3'
    """

    sizes: tuple[int, ...]
    activations: tuple[Activation, ...]
    cost: Cost
    names: Mapping[NodeRef, str] = field(default_factory=dict)
    frozen: FrozenParameters = field(default_factory=lambda: FrozenParameters((), ()))
    group_names: Mapping[str, str] = field(default_factory=dict)
    #: Tied parameters: a user name given to several weights or biases -> those entries (see :meth:`tied`).
    ties: Mapping[str, tuple[NodeRef, ...]] = field(default_factory=dict)
    #: The layers after the input, each a :class:`~symback.symbolic.layers.Layer` declaring its local formulas.
    layers: tuple[Layer, ...] = ()

    def __init__(
        self,
        sizes: Sequence[int],
        activations: Any = "sigmoid",
        cost: Any = "squared_error",
        *,
        names: Mapping[str, str] | None = None,
        frozen: Iterable[str] = (),
        trainable: Iterable[str] | None = None,
        skips: Mapping[int, int] | None = None,
        layers: Sequence[Layer] | None = None,
    ) -> None:
        sizes = _check_sizes(sizes)
        n_layers = len(sizes) - 1
        if isinstance(activations, (str, Mapping, Activation)):
            activations = [activations] * n_layers
        if not isinstance(activations, (list, tuple)):
            raise SpecError(
                f"activations must be a name, a table or a list of them (one per layer), not {shown(activations)}"
            )
        activations = list(activations)
        if len(activations) != n_layers:
            raise SpecError(
                f"{len(activations)} activation(s) given for {n_layers} layer(s) after the input "
                f"(sizes {list(sizes)}): give one per layer, or one for all"
            )
        resolved = tuple(get_activation(a) for a in activations)
        for layer, activation in enumerate(resolved[:-1], start=1):
            if not activation.elementwise:
                raise SpecError(f"{activation.name} is only supported on the output layer, not layer {layer}")
        cost = get_cost(cost)
        if cost.output_activation and resolved[-1].name != cost.output_activation:
            raise SpecError(
                f"cost {cost.name} needs a {cost.output_activation} output layer, not {resolved[-1].label}"
            )
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "activations", resolved)
        defaults = _build_layers(sizes, resolved, skips)
        object.__setattr__(self, "layers", defaults if layers is None else _check_layers(sizes, resolved, layers, defaults))
        object.__setattr__(self, "cost", cost)
        node_names, group_names = self._check_names(names or {})
        object.__setattr__(self, "names", node_names)
        object.__setattr__(self, "group_names", group_names)
        ties = self._tie_groups()
        object.__setattr__(self, "ties", ties)
        self._refuse_shaped_entries("tying", sorted({ref.layer for members in ties.values() for ref in members}))
        object.__setattr__(self, "_tie_of", {ref: members for members in ties.values() for ref in members})
        # A tied name stands for its first entry (the representative); every entry means the shared parameter.
        by_user_name: dict[str, NodeRef] = {}
        for ref, value in sorted(node_names.items(), key=lambda item: _parameter_order(item[0])):
            by_user_name.setdefault(value, ref)
        object.__setattr__(self, "_by_user_name", by_user_name)
        object.__setattr__(self, "_folded_names", FoldedNames([*node_names.values(), *group_names.values()]))
        object.__setattr__(self, "frozen", self._resolve_frozen(frozen, trainable))

    # -- counts ---------------------------------------------------------------
    @property
    def depth(self) -> int:
        """``L``: the number of layers after the input."""
        return len(self.sizes) - 1

    @property
    def weight_shapes(self) -> list[tuple[int, ...]]:
        """Each layer's ``w`` shape, as its kind declares it (``(n_l, n_{l-1})`` for a dense layer)."""
        return [layer.parameter_shapes(self.sizes[l])["w"] for l, layer in enumerate(self.layers)]

    @property
    def bias_shapes(self) -> list[tuple[int, ...]]:
        return [layer.parameter_shapes(self.sizes[l])["b"] for l, layer in enumerate(self.layers)]

    @property
    def n_weights(self) -> int:
        return sum(int(np.prod(shape)) for shape in self.weight_shapes)

    @property
    def n_biases(self) -> int:
        return sum(int(np.prod(shape)) for shape in self.bias_shapes)

    @property
    def n_parameters(self) -> int:
        return self.n_weights + self.n_biases

    @property
    def n_distinct_parameters(self) -> int:
        """Parameters that take values of their own: a tied parameter counts once, whatever its entries.

        A frozen parameter still counts: this is the number of distinct values, not of free ones.
        """
        return self.n_parameters - sum(len(members) - 1 for members in self.ties.values())

    def tied(self, ref: NodeRef) -> tuple[NodeRef, ...]:
        """Every entry of the parameter ``ref`` belongs to: its tie's entries, or ``(ref,)`` when untied.

        Giving two weights or biases the same user name ties them: they are one shared parameter
        (Mazur's 2-2-2 example shares its bias ``b1`` between the hidden neurons).  The first entry,
        in :meth:`parameter_refs` order, represents it.

        >>> net = Network([2, 2, 1], names={"b(1)_0": "b1", "b(1)_1": "b1"})
        >>> [net.canonical_name(r) for r in net.tied(net.resolve("b1"))]
        ['b(L-1)_0', 'b(L-1)_1']
        >>> net.resolve("b(1)_1") in net.tied(net.resolve("b1")), net.n_distinct_parameters
        (True, 8)
        """
        return self._tie_of.get(ref, (ref,))  # type: ignore[attr-defined]

    def entries_text(self, name: str, limit: int = 8) -> str:
        """The entries of the tied parameter ``name`` by canonical name; past ``limit``, its ends and count.

        >>> net = Network([1, 12, 1], names={f"b(1)_{j}": "c" for j in range(12)})
        >>> net.entries_text("c")
        'b(L-1)_0, b(L-1)_1, b(L-1)_2, …, b(L-1)_11 (12 entries)'
        """
        names = [self.canonical_name(ref) for ref in self.ties[name]]
        if len(names) <= limit:
            return ", ".join(names)
        return f"{', '.join(names[:3])}, …, {names[-1]} ({len(names)} entries)"

    def activation(self, layer: int) -> Activation:
        """The activation of ``layer`` (1 … L)."""
        return self.activations[layer - 1]

    # -- names ----------------------------------------------------------------
    def layer_label(self, layer: int) -> str:
        """``L``, ``L-1``, … for layers counted back from the output (seed 001's notation)."""
        return str(LayerName(self.depth - layer, from_output=True))

    def canonical_name(self, ref: NodeRef) -> str:
        """Default text name of ``ref``, ignoring user names: ``w(L)_0_1``, ``a(L-1)``, ``x_0``."""
        if ref.kind == "C":
            return "C"
        if ref.kind in UNLAYERED:
            width = self.sizes[0] if ref.kind == "x" else self.sizes[-1]
            return str(Name(ref.kind, None, () if width == 1 else (ref.j,)))
        layer = LayerName(self.depth - ref.layer, from_output=True)
        if ref.kind == "w":
            single = self.sizes[ref.layer] == 1 and self.sizes[ref.layer - 1] == 1
            return str(Name("w", layer, () if single else (ref.j, ref.k)))
        return str(Name(ref.kind, layer, () if self.sizes[ref.layer] == 1 else (ref.j,)))

    def name_of(self, ref: NodeRef) -> str:
        """The name the user sees for ``ref``: their own name if they gave one, else the canonical name."""
        return self.names.get(ref) or self.canonical_name(ref)

    def resolve(self, name: str | NodeRef) -> NodeRef:
        """The node called ``name``: a user name, or a canonical name with absolute or relative layer.

        Raises UnknownNameError with the known names when nothing matches.
        """
        if isinstance(name, NodeRef):
            self._check_ref(name, str(name))
            return name
        if not isinstance(name, str):
            raise UnknownNameError(f"a node name must be text, not {shown(name)}")
        text = name.strip()
        ref = self._resolve_exact(text)
        if ref is None:
            # The one rule claims use too (registry.FoldedNames): exact, else the one name equal ignoring case.
            folded = self._folded_names.lookup(text)  # type: ignore[attr-defined]
            if folded is not None:
                ref = self._resolve_exact(folded)
            else:
                ref = self._parse_canonical(_canonical_case(text))
        if ref is None:
            raise UnknownNameError(self._unknown(text))
        self._check_ref(ref, text)
        return ref

    def _resolve_exact(self, text: str) -> NodeRef | None:
        if text in self._by_user_name:  # type: ignore[attr-defined]
            return self._by_user_name[text]  # type: ignore[attr-defined]
        whole = None
        for group, ref in self._group_refs().items():
            if self.group_names.get(group) == text:
                if ref is not None:
                    return ref
                whole = group
        ref = self._parse_canonical(text)
        if ref is None and whole is not None:
            raise UnknownNameError(
                f"{shown(text)} names the whole {whole} of network {'-'.join(map(str, self.sizes))}, "
                f"not one node: give a neuron's name"
            )
        return ref

    def parameter_refs(self) -> Iterator[NodeRef]:
        """Every weight and bias, layer by layer (weights row-major, then biases)."""
        for layer in range(1, self.depth + 1):
            for j in range(self.sizes[layer]):
                for k in range(self.sizes[layer - 1]):
                    yield NodeRef("w", layer, j, k)
            for j in range(self.sizes[layer]):
                yield NodeRef("b", layer, j)

    def is_frozen(self, ref: NodeRef) -> bool:
        return ref in self.frozen

    def trainable_masks(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per layer, 1.0 where a weight / bias is trained and 0.0 where it is frozen."""
        weights = [(~mask).astype(np.float64) for mask in self.frozen.weights]
        biases = [(~mask).astype(np.float64) for mask in self.frozen.biases]
        return weights, biases

    def summary(self) -> str:
        """A few lines describing the network."""
        lines = [
            f"layers      {'-'.join(str(s) for s in self.sizes)}",
            "activations " + ", ".join(f"{self.layer_label(l)}: {a.label}" for l, a in enumerate(self.activations, 1)),
            f"cost        {self.cost.name} (outputs: {self.cost.output_reduction}, "
            f"examples: {self.cost.example_reduction})",
            f"parameters  {self.n_parameters:,} ({self.n_weights:,} weights, {self.n_biases:,} biases)",
        ]
        if self.skips:
            lines.insert(2, "skips       " + ", ".join(
                f"a({self.layer_label(layer)}) = σ(z({self.layer_label(layer)})) + "
                f"{'x' if source == 0 else f'a({self.layer_label(source)})'}"
                for layer, source in self.skips.items()
            ))
        if not self.is_dense_chain:
            # one line a layer, each with its kind's settings; a plain dense chain's sizes already say it all
            lines[2:2] = [f"layer {self.layer_label(l):<5} {layer.describe()}" for l, layer in enumerate(self.layers, 1)]
        if self.ties:
            lines[-1] += f"; {self.n_distinct_parameters:,} distinct"
            lines.append("tied        " + "; ".join(f"{name} = {self.entries_text(name)}" for name in self.ties))
        if self.frozen:
            lines.append(f"frozen      {len(self.frozen):,}")
            tied_frozen = sum(len(m) - 1 for m in self.ties.values() if m[0] in self.frozen)
            if tied_frozen:
                lines[-1] += f" entries ({len(self.frozen) - tied_frozen:,} parameters)"
        return "\n".join(lines)

    @property
    def is_dense_chain(self) -> bool:
        """Whether every layer is a plain dense one (``layers = [...]``, no ``[[layer]]`` kind, no skip).

        >>> Network([2, 3, 1]).is_dense_chain, Network([2, 3, 3, 3, 1], skips={3: 1}).is_dense_chain
        (True, False)
        """
        return all(type(layer) is Dense for layer in self.layers)

    @property
    def skips(self) -> dict[int, int]:
        """The skip edges, ``{layer: source}`` (empty for a plain chain of dense layers)."""
        # a source 0 is the layer itself one step back (a recurrent layer), not a skip edge
        return {
            l: l + layer.sources[1]
            for l, layer in enumerate(self.layers, start=1)
            if len(layer.sources) > 1 and layer.sources[1] < 0
        }

    def __repr__(self) -> str:
        acts = ", ".join(a.label for a in self.activations)
        skips = "".join(f", skip {source}->{layer}" for layer, source in self.skips.items())
        return f"Network({'-'.join(map(str, self.sizes))}, [{acts}], {self.cost.name}{skips})"

    # -- helpers --------------------------------------------------------------
    def _group_refs(self) -> dict[str, NodeRef | None]:
        """The whole-group names (``output`` …) and the single node each names when it is one node."""
        L = self.depth
        one_out = self.sizes[-1] == 1
        one_in = self.sizes[0] == 1
        return {
            "output": NodeRef("a", L, 0) if one_out else None,
            "target": NodeRef("y", 0, 0) if one_out else None,
            "input": NodeRef("x", 0, 0) if one_in else None,
            "cost": NodeRef("C"),
        }

    def _parse_canonical(self, text: str) -> NodeRef | None:
        name = parse_name(text)
        if name is None:
            return None
        if name == Name("C"):
            return NodeRef("C")
        if name.base in UNLAYERED and name.layer is None:
            width = self.sizes[0] if name.base == "x" else self.sizes[-1]
            if not name.indices and width != 1:
                return None
            return NodeRef(name.base, 0, name.indices[0] if name.indices else 0)  # type: ignore[arg-type]
        if name.base not in _LAYERED or name.layer is None or name.wildcard:
            return None
        kind, layer = name.base, name.layer.resolve(self.depth)
        if not 1 <= layer <= self.depth:
            return None
        indices: tuple[int, ...] = name.indices  # type: ignore[assignment]  # no wildcard: ints
        if kind == "w":
            if not indices and self.sizes[layer] == 1 and self.sizes[layer - 1] == 1:
                return NodeRef("w", layer, 0, 0)
            if len(indices) != 2:
                return None
            return NodeRef("w", layer, *indices)
        if len(indices) > 1:
            return None
        if not indices:
            return NodeRef(kind, layer, 0) if self.sizes[layer] == 1 else None
        return NodeRef(kind, layer, indices[0])

    def _check_ref(self, ref: NodeRef, text: str) -> None:
        ok = ref.kind in KINDS
        if ok and ref.kind in ("w", "b", "z", "a"):
            ok = 1 <= ref.layer <= self.depth and ref.j is not None and 0 <= ref.j < self.sizes[ref.layer]
            if ok and ref.kind == "w":
                ok = ref.k is not None and 0 <= ref.k < self.sizes[ref.layer - 1]
        elif ok and ref.kind in ("x", "y"):
            width = self.sizes[0] if ref.kind == "x" else self.sizes[-1]
            ok = ref.j is not None and 0 <= ref.j < width
        if not ok:
            raise UnknownNameError(self._unknown(text))

    def _unknown(self, text: str) -> str:
        user = list(getattr(self, "_by_user_name", {}))
        hint = f"; user names: {', '.join(user[:12])}" if user else ""
        sizes = "-".join(map(str, self.sizes))
        suggestion = did_you_mean(text, self._suggestable())
        return (
            f"unknown name {shown(text)} in network {sizes} ({suggestion + ' ' if suggestion else ''}"
            f"canonical names look like w(L)_j_k, b(L-1)_j, a(2)_j, z(L)_j, x_k, y_j, C with 0-based j, k{hint})"
        )

    def _suggestable(self) -> list[str]:
        """The names a "did you mean" may offer: the user's, and every canonical one in a small network."""
        names = [*getattr(self, "_by_user_name", {}), *getattr(self, "group_names", {}).values()]
        if self.n_parameters + 2 * self.n_biases <= 2_000:
            kinds = ("w", "b", "z", "a")
            refs = [r for r in self.parameter_refs()] + [
                NodeRef(kind, layer, j) for kind in kinds[2:] for layer in range(1, self.depth + 1)
                for j in range(self.sizes[layer])
            ]
            refs += [NodeRef("x", 0, k) for k in range(self.sizes[0])] + [NodeRef("y", 0, j) for j in range(self.sizes[-1])]
            names += [self.canonical_name(r) for r in refs] + ["C"]
        return names

    def _check_names(self, names: Mapping[str, str]) -> tuple[dict[NodeRef, str], dict[str, str]]:
        node_names: dict[NodeRef, str] = {}
        group_names: dict[str, str] = {}
        taken: dict[str, tuple[str, NodeRef | None]] = {}
        reserved = set(FUNCTIONS) | set(CONSTANTS)
        for key, value in names.items():
            if not isinstance(value, str) or not is_identifier(value):
                raise SpecError(
                    f"name {value!r} for {key!r} must start with a letter and use letters, digits and _ only"
                )
            if value in reserved:
                raise SpecError(f"name {value!r} for {key!r} is reserved for a function or constant")
            if key in ("output", "target", "input", "cost"):
                if value in taken:
                    raise SpecError(f"name {value!r} is given to both {taken[value][0]!r} and {key!r}")
                taken[value] = (key, None)
                group_names[key] = value
                single = self._group_refs()[key]
                if single is not None:
                    node_names[single] = value
                continue
            ref = self._parse_canonical(str(key).strip())
            if ref is None:
                raise UnknownNameError(self._unknown(str(key)))
            self._check_ref(ref, str(key))
            if ref in node_names:
                raise SpecError(f"{key!r} is named twice")
            if value in taken:
                # One name for several weights and biases ties them: one shared parameter.
                other_key, other = taken[value]
                if other is None or not (ref.is_parameter and other.is_parameter):
                    raise SpecError(
                        f"name {value!r} is given to both {other_key!r} and {key!r}: only weights and biases "
                        "can share a name (one tied parameter)"
                    )
            else:
                taken[value] = (key, ref)
            node_names[ref] = value
        # A user name must not shadow a different node's canonical name.
        for ref, value in node_names.items():
            other = self._parse_canonical(value)
            if other is not None and other != ref:
                raise SpecError(f"name {value!r} would shadow the canonical name of another node")
        return node_names, group_names

    def _tie_groups(self) -> dict[str, tuple[NodeRef, ...]]:
        """Every name given to two or more parameters, with its entries in :meth:`parameter_refs` order."""
        members: dict[str, list[NodeRef]] = {}
        for ref, value in self.names.items():
            if ref.is_parameter:
                members.setdefault(value, []).append(ref)
        return {
            name: tuple(sorted(refs, key=_parameter_order)) for name, refs in members.items() if len(refs) > 1
        }

    def _resolve_frozen(self, frozen: Iterable[str], trainable: Iterable[str] | None) -> FrozenParameters:
        for what, names in (("frozen", frozen), ("trainable", trainable)):
            if names is not None and (
                not isinstance(names, (list, tuple, set, frozenset)) or not all(isinstance(n, str) for n in names)
            ):
                raise SpecError(f"{what} takes a list of parameter names, not {shown(names)}")
        # One boolean mask per layer, never one object per parameter: freezing a layer of 50 million
        # weights is one slice assignment.
        shapes = [(self.sizes[l], self.sizes[l - 1]) for l in range(1, self.depth + 1)]
        weights = [np.zeros(shape, dtype=bool) for shape in shapes]
        biases = [np.zeros(shape[0], dtype=bool) for shape in shapes]
        for name in frozen:
            self._mark(name, "frozen", weights, biases)
        if trainable is not None:
            keep_weights = [np.zeros_like(w) for w in weights]
            keep_biases = [np.zeros_like(b) for b in biases]
            for name in trainable:
                self._mark(name, "trainable", keep_weights, keep_biases)
            weights = [w | ~k for w, k in zip(weights, keep_weights)]
            biases = [b | ~k for b, k in zip(biases, keep_biases)]
        result = FrozenParameters(weights, biases)
        self._refuse_shaped_entries("freezing", [l for l in range(1, self.depth + 1)
                                                 if weights[l - 1].any() or biases[l - 1].any()])
        for name, members in self.ties.items():
            if 0 < sum(member in result for member in members) < len(members):
                # Part of a tie frozen would pull its entries apart: it is one parameter, trained or not.
                raise SpecError(
                    f"{name!r} is one parameter shared by {', '.join(map(self.canonical_name, members))}: "
                    "freeze all of its entries or none"
                )
        return result

    def _refuse_shaped_entries(self, what: str, layers: Iterable[int]) -> None:
        """Frozen and tied entries are held by a dense layer's (j, k) grid: a layer whose weights have
        another shape (a convolution's kernel, a recurrent layer's [W | U], a readout of a grid) is refused
        in one line, not trained with a mask of the wrong shape."""
        for l in layers:
            shape = self.weight_shapes[l - 1]
            if shape != (self.sizes[l], self.sizes[l - 1]) or self.bias_shapes[l - 1] != (self.sizes[l],):
                kind = self.layers[l - 1].kind
                raise SpecError(
                    f"{what} entries of layer {self.layer_label(l)} is not supported yet: a {kind} layer's weights "
                    f"are shaped {'×'.join(map(str, shape))}, not one row per neuron (frozen and tied entries work "
                    "in dense layers)"
                )

    def _mark(self, name: str, what: str, weights: list[np.ndarray], biases: list[np.ndarray]) -> None:
        """Set the mask entries of a parameter name, or of ``w(1)_*`` / ``b(L)_*`` (a layer's weights or biases)."""
        text = name.strip()
        parsed = parse_name(text)
        if parsed is not None and parsed.base in ("w", "b") and parsed.layer is not None and parsed.wildcard:
            layer = parsed.layer.resolve(self.depth)
            if not 1 <= layer <= self.depth:
                raise UnknownNameError(self._unknown(text))
            (weights if parsed.base == "w" else biases)[layer - 1][...] = True
            return
        ref = self.resolve(text)
        if not ref.is_parameter:
            raise SpecError(f"{what} names parameters (weights and biases), and {text!r} is a {KINDS[ref.kind]}")
        for entry in self.tied(ref):  # a tied name marks every entry of its parameter
            if entry.kind == "w":
                weights[entry.layer - 1][entry.j, entry.k] = True
            else:
                biases[entry.layer - 1][entry.j] = True


class FrozenParameters(AbstractSet[NodeRef]):
    """The frozen weights and biases: a set of :class:`NodeRef` held as one boolean mask per layer.

    Membership and size take no time however large a layer is; iterating lists the frozen ones in
    :meth:`Network.parameter_refs` order.

    >>> frozen = FrozenParameters([np.array([[True, False]])], [np.array([True])])
    >>> len(frozen), NodeRef("w", 1, 0, 0) in frozen, NodeRef("w", 1, 0, 1) in frozen, list(frozen)[-1]
    (2, True, False, NodeRef(kind='b', layer=1, j=0, k=None))
    """

    def __init__(self, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> None:
        self.weights = tuple(np.array(w, dtype=bool) for w in weights)
        self.biases = tuple(np.array(b, dtype=bool) for b in biases)
        for mask in self.weights + self.biases:
            mask.flags.writeable = False
        self._count = int(sum(int(m.sum()) for m in self.weights + self.biases))

    def __contains__(self, ref: object) -> bool:
        if not isinstance(ref, NodeRef) or ref.kind not in ("w", "b") or not 1 <= ref.layer <= len(self.weights):
            return False
        if ref.kind == "w":
            mask = self.weights[ref.layer - 1]
            index: tuple = (ref.j, ref.k)
        else:
            mask = self.biases[ref.layer - 1]
            index = (ref.j,)
        if any(not isinstance(i, int) or not 0 <= i < n for i, n in zip(index, mask.shape)):
            return False
        return bool(mask[index])

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[NodeRef]:
        for layer, (weights, biases) in enumerate(zip(self.weights, self.biases), start=1):
            for j, k in zip(*np.nonzero(weights)):
                yield NodeRef("w", layer, int(j), int(k))
            for (j,) in zip(*np.nonzero(biases)):
                yield NodeRef("b", layer, int(j))

    def __hash__(self) -> int:
        return self._hash()

    def __repr__(self) -> str:
        return f"FrozenParameters({self._count:,} frozen)"


def _parameter_order(ref: NodeRef) -> tuple[int, int, int, int]:
    """Where ``ref`` comes in :meth:`Network.parameter_refs`: layer by layer, weights before biases."""
    return (ref.layer, ref.kind != "w", ref.j or 0, ref.k or 0)


def _build_layers(sizes: tuple[int, ...], activations: tuple[Activation, ...], skips: Any) -> tuple[Layer, ...]:
    """Dense layers, a :class:`~symback.symbolic.layers.Residual` one where a skip edge ends."""
    if skips is None:
        skips = {}
    if not isinstance(skips, Mapping):
        raise SpecError(f"skips maps a layer to the layer its skip edge comes from, not {shown(skips)}")
    n_layers = len(sizes) - 1
    checked: dict[int, int] = {}
    for layer, source in skips.items():
        for what, value in (("layer", layer), ("source", source)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise SpecError(f"a skip edge's {what} must be a layer number, not {shown(value)}")
        layer, source = int(layer), int(source)
        if not 2 <= layer <= n_layers or not 0 <= source <= layer - 2:
            raise SpecError(
                f"skip edge {source} -> {layer}: it ends at a layer 2 … {n_layers} and starts at least two "
                "layers below (0 is the input)"
            )
        if sizes[source] != sizes[layer]:
            raise SpecError(
                f"skip edge {source} -> {layer} adds a(source) to a(layer): widths {sizes[source]} and "
                f"{sizes[layer]} differ"
            )
        checked[layer] = source
    return tuple(
        Residual(sizes[l], activations[l - 1], back=l - checked[l]) if l in checked else Dense(sizes[l], activations[l - 1])
        for l in range(1, n_layers + 1)
    )


def _check_layers(
    sizes: tuple[int, ...], activations: tuple[Activation, ...], layers: Sequence[Layer | None], defaults: tuple[Layer, ...]
) -> tuple[Layer, ...]:
    """Layers given whole (any registered kind): one per width after the input, with its activation; a
    None is the layer the sizes and skips give (dense, or residual where a skip edge ends)."""
    if len(layers) != len(defaults):
        raise SpecError(f"{len(layers)} layers given for sizes {list(sizes)}")
    layers = tuple(default if layer is None else layer for layer, default in zip(layers, defaults))
    if len(layers) != len(sizes) - 1 or any(
        layer.width != size or layer.activation != activation for layer, size, activation in zip(layers, sizes[1:], activations)
    ):
        raise SpecError(f"the layers {[layer.describe() for layer in layers]} do not match sizes {list(sizes)}")
    return layers


def _check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise SpecError(f"layer sizes must be a list of integers, not {shown(sizes)}")
    if len(sizes) < 2:
        raise SpecError(f"a network needs an input layer and at least one more layer, got sizes {list(sizes)}")
    checked = []
    for position, size in enumerate(sizes):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise SpecError(f"layer {position} size must be an integer, not {shown(size)}")
        if size < 1:
            raise SpecError(f"layer {position} has width {size}: every layer needs at least one neuron")
        checked.append(int(size))
    if len(checked) - 1 > MAX_LAYERS:
        raise SpecError(f"a network of {len(checked) - 1:,} layers after the input: symback builds at most {MAX_LAYERS:,}")
    count = sum(checked[l] * checked[l - 1] + checked[l] for l in range(1, len(checked)))
    if count > MAX_PARAMETERS:
        raise SpecError(
            f"a {'-'.join(map(str, checked)) if len(checked) <= 8 else f'{len(checked)}-layer'} network has "
            f"{count:,} weights and biases: symback builds at most {MAX_PARAMETERS:,}"
        )
    return tuple(checked)


def _canonical_case(text: str) -> str:
    """A canonical name that is a plain word, in its own letter case: ``c`` → ``C``, ``X_0`` → ``x_0``.

    Only words fold, as claims' names do (``w(L)`` is written as it is, in claims and here alike).
    """
    if text in ("c", "C"):
        return "C"
    lower = parse_name(text.lower())
    return text.lower() if lower is not None and lower.base in UNLAYERED and lower.layer is None else text
