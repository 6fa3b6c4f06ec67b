"""Layer kinds: each one declares its local formulas in index form, and nothing else.

A layer of symback's network is the pair ``z(l)``, ``a(l)`` of one generic neuron ``j``, written
with SymPy ``IndexedBase`` objects (:class:`LayerSymbols`) and ``Idx`` indices.  A kind says

* its parameters and their shapes (:meth:`Layer.parameter_shapes`),
* ``z(l)_j`` in its parameters and the activations it reads (:meth:`Layer.z_formula`),
* ``a(l)_j`` in ``z(l)`` and any activation it reads directly (:meth:`Layer.a_formula`),
* which earlier layers it reads (:attr:`Layer.sources`: the layer below, and a skip edge's source).

The chain-rule engine (:mod:`symback.symbolic.chain`) differentiates those formulas — the δ recursion and
every parameter gradient come out of them — and the lowering (:mod:`symback.compile.lowering`) turns the
derived index expressions into array calls.  Neither has per-kind code: a new kind is one class here
(or one module) and one :func:`register_layer_kind` call.

>>> import sympy as sp
>>> from symback.symbolic.activations import get_activation
>>> layer = Dense(3, get_activation("sigmoid"))
>>> s = LayerSymbols.for_layer("1", has_skip=False)
>>> j, d = sp.Idx("j", 3), sp.Idx("d", 2)
>>> layer.z_formula(s, j, d)
b(1)[j] + Sum(a(0)[d]*w(1)[j, d], (d, 0, 1))
>>> layer.a_formula(s, j, sp.Idx("e", 3))
1/(1 + exp(-z(1)[j]))
>>> known_layer_kinds()
['conv1d', 'conv2d', 'dense', 'recurrent', 'residual']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import sympy as sp

from ..errors import SpecError, shown
from ..registry import Registry, with_settings
from .activations import Activation

__all__ = [
    "KIND_MODULES", "LAYER_KINDS", "Dense", "Layer", "LayerSymbols", "ParameterBlock", "Residual", "get_layer_kind", "known_layer_kinds",
    "register_layer_kind",
]


@dataclass(frozen=True)
class LayerSymbols:
    """The ``IndexedBase`` objects one layer's formulas are written in.

    ``inputs`` is the activation of the layer below (``x`` for the first layer), ``skip`` the one a
    skip edge brings (None without one), ``parameters`` the layer's own (``{"w": w(l), "b": b(l)}``).
    """

    z: sp.IndexedBase
    a: sp.IndexedBase
    inputs: sp.IndexedBase
    parameters: Mapping[str, sp.IndexedBase]
    skip: sp.IndexedBase | None = None

    @classmethod
    def for_layer(cls, label: str, *, has_skip: bool, below: str | None = None, skip: str = "s") -> LayerSymbols:
        """Plain symbols for a layer labelled ``label`` (for examples and tests)."""
        base = lambda name: sp.IndexedBase(name, real=True)  # noqa: E731
        return cls(
            base(f"z({label})"), base(f"a({label})"), base(below or "a(0)"),
            {"w": base(f"w({label})"), "b": base(f"b({label})")}, base(f"a({skip})") if has_skip else None,
        )


@dataclass(frozen=True)
class ParameterBlock:
    """A named parameter as a block of a stored one: entry ``i`` of the name is ``stored[offset + i]``
    (a recurrent layer's ``W`` and ``U`` are the two blocks of its one stored ``w = [W | U]``)."""

    stored: str
    shape: tuple[int, ...]
    offset: tuple[int, ...]


@dataclass(frozen=True)
class Layer:
    """One layer kind: its width, activation and local formulas.  Subclasses set :attr:`kind`.

    Every formula is for one generic neuron ``j`` and one example; ``d`` is the dummy index a formula
    may sum over (it runs over the layer below for ``z``, over this layer for ``a``).
    """

    width: int
    activation: Activation
    kind: ClassVar[str] = ""

    @property
    def sources(self) -> tuple[int, ...]:
        """The layers this one reads, relative to itself: ``(-1,)`` for the layer below."""
        return (-1,)

    @property
    def grid(self) -> tuple[int, ...]:
        """The shape of the layer's neurons: ``(width,)``, or ``(filters, rows, columns)`` for a 2-D
        convolution (then ``z``, ``a``, ``δ`` carry one index per axis; arrays are ``(n, *grid)``)."""
        return (self.width,)

    def parameter_shapes(self, fan_in: int) -> dict[str, tuple[int, ...]]:
        """``{name: shape}`` of the layer's parameters, in the order they are packed."""
        raise NotImplementedError

    def parameter_names(self, fan_in: int) -> dict[str, ParameterBlock]:
        """The names a user writes for the layer's parameters (:mod:`symback.grammar.names`), each a block of
        a stored parameter: by default every parameter under its own name, whole.

        >>> Dense(3, None).parameter_names(2)["w"]
        ParameterBlock(stored='w', shape=(3, 2), offset=(0, 0))
        """
        return {name: ParameterBlock(name, shape, (0,) * len(shape))
                for name, shape in self.parameter_shapes(fan_in).items()}

    def z_formula(self, s: LayerSymbols, j: sp.Idx, d: sp.Idx) -> sp.Expr:
        raise NotImplementedError

    def a_formula(self, s: LayerSymbols, j: sp.Idx, d: sp.Idx) -> sp.Expr:
        """``a_j = σ(z_j)``, or the softmax of the whole layer with ``d`` summed."""
        if self.activation.elementwise:
            return self.activation.at(s.z[j])
        return self.activation.indexed(s.z, j, d)  # type: ignore[attr-defined]

    def describe(self) -> str:
        """The kind, width and activation, then the kind's own settings: one line of ``symback info``.

        >>> from symback.symbolic.activations import get_activation
        >>> Dense(3, get_activation("tanh")).describe()
        'dense 3 tanh'
        """
        return f"{self.kind} {self.width} {self.activation.label}"

    # -- the [[layer]] form (symback.spec.layer_table) --------------------------------------------------------

    @classmethod
    def table_keys(cls, below: tuple[int, ...]) -> frozenset[str]:
        """The keys of this kind's ``[[layer]]`` table besides ``kind`` and ``activation``."""
        return frozenset({"size"})

    @classmethod
    def built_by_network(cls, below: tuple[int, ...]) -> bool:
        """Whether :class:`~symback.symbolic.network.Network` builds this layer from sizes and skips (as the
        ``layers = [...]`` shorthand does) rather than :meth:`from_table`."""
        return False

    @classmethod
    def from_table(cls, below: tuple[int, ...], activation: Activation, settings: dict[str, Any]) -> Layer:
        """The layer a spec's ``[[layer]]`` table describes, reading a layer (or input) of shape ``below``."""
        size = settings.pop("size", None)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise SpecError(f"a {cls.kind} layer needs size = a positive integer, not {shown(size)}")
        return with_settings(partial(cls, size, activation), settings, "layer kind", cls.kind)


@dataclass(frozen=True)
class Dense(Layer):
    """``z_j = Σ_k w_jk a(l-1)_k + b_j`` and ``a_j = σ(z_j)`` (or softmax): the textbook layer."""

    kind: ClassVar[str] = "dense"

    def parameter_shapes(self, fan_in: int) -> dict[str, tuple[int, ...]]:
        return {"w": (self.width, fan_in), "b": (self.width,)}

    def z_formula(self, s: LayerSymbols, j: sp.Idx, d: sp.Idx) -> sp.Expr:
        w, b = s.parameters["w"], s.parameters["b"]
        return sp.Sum(w[j, d] * s.inputs[d], d) + b[j]

    @classmethod
    def table_keys(cls, below: tuple[int, ...]) -> frozenset[str]:
        # skip is a residual layer's: given to a dense one, the table says so (symback.spec.layer_table)
        return frozenset({"size", "reads"}) if len(below) > 1 else frozenset({"size", "skip"})

    @classmethod
    def built_by_network(cls, below: tuple[int, ...]) -> bool:
        return len(below) == 1

    @classmethod
    def from_table(cls, below: tuple[int, ...], activation: Activation, settings: dict[str, Any]) -> Layer:
        if len(below) > 1 and cls is Dense:  # reading a convolution's or a recurrent layer's grid
            from .layers_conv import GridDense
            from .layers_recurrent import LastStep

            reads = settings.pop("reads", "all")
            if reads == "last" and len(below) == 2:  # the last state of a sequence (steps, hidden)
                return LastStep.from_table(below, activation, {**settings, "steps": below[0], "hidden": below[1]})
            if reads != "all":
                raise SpecError(f"reads must be \"all\" or, after a recurrent layer, \"last\", not {shown(reads)}")
            return GridDense.from_table(below, activation, {**settings, "input_grid": below})
        return super().from_table(below, activation, settings)


@dataclass(frozen=True)
class Residual(Dense):
    """A dense layer with a skip edge: ``a(l)_j = σ(z(l)_j) + a(l-back)_j`` (He et al.'s identity shortcut).

    ``back`` counts layers down (2 skips one layer); the source must be as wide as this layer.
    The gradient highway ``∂C/∂a(l-back) = … + ∂C/∂a(l)`` is derived from the ``+ a(l-back)_j`` term,
    not written here.
    """

    back: int = 2
    kind: ClassVar[str] = "residual"

    def __post_init__(self) -> None:
        if not self.activation.elementwise:
            raise SpecError(f"a residual layer needs an elementwise activation, not {self.activation.label}")
        if isinstance(self.back, bool) or not isinstance(self.back, int) or self.back < 2:
            raise SpecError(f"a residual layer's skip reaches back 2 or more layers, not {self.back!r}")

    @property
    def sources(self) -> tuple[int, ...]:
        return (-1, -self.back)

    def a_formula(self, s: LayerSymbols, j: sp.Idx, d: sp.Idx) -> sp.Expr:
        assert s.skip is not None, "a residual layer's symbols carry its skip source"
        return super().a_formula(s, j, d) + s.skip[j]

    def describe(self) -> str:
        return f"{super().describe()}, skip from a(l-{self.back})"

    @classmethod
    def table_keys(cls, below: tuple[int, ...]) -> frozenset[str]:
        return frozenset({"size", "skip"})

    @classmethod
    def from_table(cls, below: tuple[int, ...], activation: Activation, settings: dict[str, Any]) -> Layer:
        raise SpecError(f"a residual layer adds flat layers; it cannot read a grid of {'×'.join(map(str, below))}")


#: Layer kinds by name: ``{name: factory(width, activation, **settings)}`` (a :class:`~symback.registry.Registry`).
LAYER_KINDS: Registry[Callable[..., Layer]] = Registry("layer kind", error=SpecError)


def register_layer_kind(name: str, factory: Callable[..., Layer]) -> None:
    """Make ``factory(width, activation, **settings)`` available as layer kind ``name``."""
    LAYER_KINDS.register(name, factory)


#: Kinds that live in modules of their own (which register them), imported the first time one is
#: asked for: importing this module does not load them, and they import it without a cycle.
KIND_MODULES: dict[str, str] = {"conv1d": "layers_conv1d", "conv2d": "layers_conv2d", "recurrent": "layers_recurrent"}


def known_layer_kinds() -> list[str]:
    """Every layer kind's name, the ones in modules not yet imported included.

    >>> known_layer_kinds()
    ['conv1d', 'conv2d', 'dense', 'recurrent', 'residual']
    """
    return sorted({*LAYER_KINDS, *KIND_MODULES})


def get_layer_kind(name: Any) -> Callable[..., Layer]:
    """The factory of layer kind ``name`` (ignoring case); an unknown one is a SpecError naming the known kinds.

    >>> get_layer_kind("Dense")(2, None).kind
    'dense'
    >>> get_layer_kind("conv2d").kind
    'conv2d'
    """
    if not isinstance(name, str) or name not in LAYER_KINDS:
        # a kind in a module of its own, or an unknown name: load those modules (their kinds register
        # themselves), so the lookup finds it, or names every kind in its error
        wanted = KIND_MODULES.get(name.casefold()) if isinstance(name, str) else None
        for module in [wanted] if wanted else KIND_MODULES.values():
            importlib.import_module(f"{__package__}.{module}")
    return LAYER_KINDS.lookup(name)


register_layer_kind("dense", Dense)
register_layer_kind("residual", Residual)
