"""The symbolic model: ``z``, ``a`` and ``C`` of every layer as SymPy expressions, in two forms.

* :class:`ExplicitModel` — every weight, bias, ``z`` and ``a`` its own named
  scalar symbol (named as the user named them).  For small networks and worked
  examples: it grows with the number of parameters.
* :class:`IndexedModel` — one generic neuron per layer written with
  ``IndexedBase`` objects and indices ``j``, ``k``; its size does not depend on
  layer width, so 625-20-20-10 costs what 1-1-1-1 costs.

Each node has a *local* expression in the symbols of the nodes it reads
(``z(l)_j`` in ``w(l)_j_k``, ``a(l-1)_k``, ``b(l)_j``; ``a(l)_j`` in ``z(l)_j``;
``C`` in ``a(L)_j``, ``y_j``).  The chain rule multiplies ``sympy.diff`` of
these local expressions.

>>> from symback import Network
>>> model = ExplicitModel(Network([1, 1, 1], "sigmoid", "squared_error"))
>>> model.local_expression(model.network.resolve("z(L)"))
a(L-1)*w(L) + b(L)
>>> model.local_expression(model.network.resolve("C"))
(a(L) - y)**2
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property, lru_cache

import sympy as sp
from sympy.concrete.delta import deltasummation

from ..errors import SpecError
from .layers import LayerSymbols
from .network import Network, NodeRef

__all__ = ["EXPLICIT_LIMIT", "ExplicitModel", "IndexedModel", "collapse_delta_sums", "explicit_model"]

#: Largest network (in parameters) the explicit form is built for; larger ones use the indexed form.
EXPLICIT_LIMIT = 2000


class ExplicitModel:
    """Every node of the network as its own named scalar SymPy symbol."""

    def __init__(self, network: Network, *, limit: int = EXPLICIT_LIMIT) -> None:
        if network.n_parameters > limit:
            raise SpecError(
                f"network {'-'.join(map(str, network.sizes))} has {network.n_parameters:,} parameters; "
                f"the explicit form is built for at most {limit:,} (use the indexed form)"
            )
        self.network = network
        self.symbols: dict[NodeRef, sp.Symbol] = {}
        for ref in self._all_refs():
            self.symbols[ref] = sp.Symbol(network.name_of(ref), real=True)
        # The entries of a tied parameter share its symbol, which stands for the first of them.
        self.refs: dict[sp.Symbol, NodeRef] = {
            s: network.tied(r)[0] if r.is_parameter else r for r, s in self.symbols.items()
        }
        self._local = self._build_local()
        self._readers: dict[NodeRef, list[NodeRef]] = {ref: [] for ref in self.symbols}
        for ref, expression in self._local.items():
            for symbol in sorted(expression.free_symbols, key=str):
                self._readers[self.refs[symbol]].append(ref)

    def _all_refs(self) -> Iterator[NodeRef]:
        sizes = self.network.sizes
        yield from (NodeRef("x", 0, k) for k in range(sizes[0]))
        for layer in range(1, len(sizes)):
            for j in range(sizes[layer]):
                yield from (NodeRef("w", layer, j, k) for k in range(sizes[layer - 1]))
                yield NodeRef("b", layer, j)
                yield NodeRef("z", layer, j)
                yield NodeRef("a", layer, j)
        yield from (NodeRef("y", 0, j) for j in range(sizes[-1]))
        yield NodeRef("C")

    def symbol(self, ref: NodeRef | str) -> sp.Symbol:
        """The symbol of a node, by reference or by name."""
        return self.symbols[self.network.resolve(ref)]

    def previous_activation(self, layer: int, k: int) -> sp.Symbol:
        """``a(layer-1)_k``, or the input ``x_k`` for the first layer."""
        return self.symbols[NodeRef("x", 0, k) if layer == 1 else NodeRef("a", layer - 1, k)]

    def _build_local(self) -> dict[NodeRef, sp.Expr]:
        net, s = self.network, self.symbols
        local: dict[NodeRef, sp.Expr] = {}
        for layer in range(1, net.depth + 1):
            zs = []
            for j in range(net.sizes[layer]):
                z = sp.Add(
                    *(s[NodeRef("w", layer, j, k)] * self.previous_activation(layer, k) for k in range(net.sizes[layer - 1]))
                ) + s[NodeRef("b", layer, j)]
                local[NodeRef("z", layer, j)] = z
                zs.append(s[NodeRef("z", layer, j)])
            activation = net.activation(layer)
            outputs = activation.layer(zs) if not activation.elementwise else [activation.at(z) for z in zs]
            sources = net.layers[layer - 1].sources
            if len(sources) > 1:  # a skip edge: a(l)_j = σ(z(l)_j) + a(l-back)_j
                outputs = [out + self.previous_activation(layer + sources[1] + 1, j) for j, out in enumerate(outputs)]
            for j, expression in enumerate(outputs):
                local[NodeRef("a", layer, j)] = expression
        L = net.depth
        outputs = [s[NodeRef("a", L, j)] for j in range(net.sizes[L])]
        targets = [s[NodeRef("y", 0, j)] for j in range(net.sizes[L])]
        local[NodeRef("C")] = net.cost.per_example(outputs, targets)
        return local

    def local_expression(self, ref: NodeRef) -> sp.Expr:
        """The expression of ``ref`` in the symbols of the nodes it reads directly."""
        if ref not in self._local:
            raise SpecError(f"{self.network.name_of(ref)} is an input of the network, not computed from other nodes")
        return self._local[ref]

    def readers(self, ref: NodeRef) -> list[NodeRef]:
        """The nodes whose local expression reads ``ref`` (the next steps on every path to C)."""
        return self._readers[ref]

    @cached_property
    def forward_expressions(self) -> dict[NodeRef, sp.Expr]:
        """Every computed node as an expression of parameters, inputs and targets only."""
        full: dict[NodeRef, sp.Expr] = {}
        substitutions: dict[sp.Symbol, sp.Expr] = {}
        net = self.network
        for layer in range(1, net.depth + 1):
            for kind in ("z", "a"):
                for j in range(net.sizes[layer]):
                    ref = NodeRef(kind, layer, j)
                    full[ref] = self._local[ref].xreplace(substitutions)
                for j in range(net.sizes[layer]):
                    ref = NodeRef(kind, layer, j)
                    substitutions[self.symbols[ref]] = full[ref]
        full[NodeRef("C")] = self._local[NodeRef("C")].xreplace(substitutions)
        return full

    def substitute_forward(self, expression: sp.Expr) -> sp.Expr:
        """Replace every ``z`` and ``a`` symbol in ``expression`` by its forward expression."""
        full = self.forward_expressions
        return expression.xreplace({self.symbols[r]: e for r, e in full.items() if r.kind in ("z", "a")})


def collapse_delta_sums(expression: sp.Expr) -> sp.Expr:
    """Evaluate ``Sum(KroneckerDelta(k, m) * f(m), m)`` to ``f(k)``: the bookkeeping of ``∂x_m/∂x_k``.

    Indices are ``Idx`` objects whose range is the layer, so the Kronecker
    delta always fires inside the range and no ``Piecewise`` is needed.
    """

    def collapse(total: sp.Sum) -> sp.Expr:
        if total.function == 0:
            return sp.S.Zero
        if total.function.has(sp.KroneckerDelta):
            return deltasummation(total.function, total.limits[0], no_piecewise=True)
        return total

    return expression.replace(lambda e: isinstance(e, sp.Sum), collapse)


class IndexedModel:
    """One generic neuron per layer, in ``IndexedBase`` objects and ``Idx`` indices.

    >>> from symback import Network
    >>> model = IndexedModel(Network([625, 20, 20, 10], "sigmoid", "squared_error"))
    >>> j, k = model.index("j", 3), model.index("k", 2)
    >>> model.z_expression(3, j, k)
    b(L)[j] + Sum(a(L-1)[k]*w(L)[j, k], (k, 0, 19))
    """

    def __init__(self, network: Network) -> None:
        self.network = network
        L = network.depth
        label = network.layer_label
        self.weights = {l: sp.IndexedBase(f"w({label(l)})", real=True) for l in range(1, L + 1)}
        self.biases = {l: sp.IndexedBase(f"b({label(l)})", real=True) for l in range(1, L + 1)}
        self.zs = {l: sp.IndexedBase(f"z({label(l)})", real=True) for l in range(1, L + 1)}
        self.activations = {l: sp.IndexedBase(f"a({label(l)})", real=True) for l in range(1, L + 1)}
        # The user's names for the whole output, target and input (seed 002's predicted, observed, input).
        groups = network.group_names
        if "output" in groups:
            self.activations[L] = sp.IndexedBase(groups["output"], real=True)
        self.activations[0] = sp.IndexedBase(groups.get("input", "x"), real=True)
        self.targets = sp.IndexedBase(groups.get("target", "y"), real=True)
        self.cost_symbol = sp.Symbol(groups.get("cost", "C"), real=True)

    def index(self, letter: str, layer: int) -> sp.Idx:
        """An index running over the neurons of ``layer`` (0-based, the layer's width as its range)."""
        return sp.Idx(letter, self.network.sizes[layer])

    def base(self, kind: str, layer: int) -> sp.IndexedBase:
        return {"w": self.weights, "b": self.biases, "z": self.zs, "a": self.activations}[kind][layer]

    def parameter(self, name: str, layer: int) -> sp.IndexedBase:
        """The IndexedBase of parameter ``name`` (``"w"``, ``"b"``) of ``layer``."""
        return {"w": self.weights, "b": self.biases}[name][layer]

    def layer_symbols(self, layer: int) -> LayerSymbols:
        """The symbols ``layer``'s local formulas are written in (see :mod:`symback.symbolic.layers`)."""
        kind = self.network.layers[layer - 1]
        skip = self.activations[layer + kind.sources[1]] if len(kind.sources) > 1 else None
        return LayerSymbols(
            self.zs[layer], self.activations[layer], self.activations[layer - 1],
            {"w": self.weights[layer], "b": self.biases[layer]}, skip,
        )

    def z_expression(self, layer: int, j: sp.Idx, k: sp.Idx) -> sp.Expr:
        """``z(l)_j`` by the layer's own formula (``Σ_k w(l)_jk a(l-1)_k + b(l)_j``, ``k`` summed)."""
        return self.network.layers[layer - 1].z_formula(self.layer_symbols(layer), j, k)

    def a_expression(self, layer: int, j: sp.Idx, dummy: sp.Idx) -> sp.Expr:
        """``a(l)_j`` by the layer's own formula: ``σ(z(l)_j)``, the softmax of the layer with ``dummy``
        summed, ``σ(z(l)_j) + a(l-back)_j`` for a residual layer."""
        return self.network.layers[layer - 1].a_formula(self.layer_symbols(layer), j, dummy)

    def cost_expression(self, dummy: sp.Idx) -> sp.Expr:
        """One example's cost ``C = Σ_j term(a(L)_j, y_j)`` with ``dummy`` summed."""
        L = self.network.depth
        return self.network.cost.indexed(self.activations[L], self.targets, dummy)

    def activation_in_terms_of_output(self, layer: int, expression: sp.Expr) -> sp.Expr:
        """Rewrite softmax pieces ``exp(z_i)/Σ exp(z)`` as ``a_i`` so its Jacobian reads ``a_j(δ_ij − a_i)``."""
        if self.network.activation(layer).elementwise:
            return expression
        z, a = self.zs[layer], self.activations[layer]
        total = next(iter(expression.atoms(sp.Sum)), None)
        if total is None:
            return expression
        marker = sp.Dummy("S", positive=True)
        rewritten = expression.xreplace({total: marker}).replace(
            lambda e: isinstance(e, sp.exp) and isinstance(e.args[0], sp.Indexed) and e.args[0].base == z,
            lambda e: a[e.args[0].indices[0]] * marker,
        )
        return sp.factor_terms(sp.expand(rewritten))


@lru_cache(maxsize=32)
def explicit_model(network: Network) -> ExplicitModel:
    """The network's explicit model, built once per network (a Network is immutable and hashed by identity)."""
    return ExplicitModel(network)
