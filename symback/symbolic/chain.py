"""The one chain-rule engine: every δ, every ∂C/∂a and every parameter gradient, derived from the
layers' local formulas (:mod:`symback.symbolic.layers`) by SymPy ``Indexed`` differentiation and delta
summation.  No layer kind has backward code of its own.

For one example, with ``δ(l)_k = ∂C/∂z(l)_k`` and ``∇a(l)_k = ∂C/∂a(l)_k``:

* ``∇a(L)_k = ∂C/∂a(L)_k`` — the cost's formula differentiated;
* ``∇a(l)_k = Σ_{readers m} Σ_j ∂z(m)_j/∂a(l)_k · δ(m)_j + Σ_j ∂a(m)_j/∂a(l)_k · ∇a(m)_j`` — every
  layer that reads ``a(l)``, through its ``z`` formula (the layer above) or its ``a`` formula (a skip
  edge);
* ``δ(l)_k = Σ_j ∂a(l)_j/∂z(l)_k · ∇a(l)_j`` — the activation's Jacobian;
* ``∂C/∂θ(l)[idx] = Σ_j ∂z(l)_j/∂θ(l)[idx] · δ(l)_j`` — every parameter the ``z`` formula holds.

Each ``Σ_j (…)·KroneckerDelta(j, k)`` collapses to its ``j = k`` term (:func:`collapse`), so a dense
layer's δ recursion comes out as ``Σ_j w_jk δ_j σ'(z_k)`` and a residual's as ``… + ∇a(l+back)_k``.
Widths are ``Idx`` ranges: the work does not grow with them.

>>> from symback import Network
>>> backward = derive_backward(Network([625, 20, 20, 10], "sigmoid", "squared_error"))
>>> backward.adjoints[2]
Sum(delta(L)[j]*w(L)[j, k], (j, 0, 9))
>>> backward.gradients[3]["w"]
a(L-1)[k]*delta(L)[j]
>>> backward.deltas[2]
exp(-z(L-1)[k])*nabla_a(L-1)[k]/(1 + exp(-z(L-1)[k]))**2

The explicit form (one scalar symbol per weight, every path written out) and the index-form chain of
one target are walks over the same local formulas: :func:`explicit_paths`, :func:`indexed_chain`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp
from sympy.concrete.delta import deltasummation

from ..errors import SpecError
from .activations import Activation
from .layers import Layer, LayerSymbols
from .model import ExplicitModel, IndexedModel, collapse_delta_sums
from .network import Network, NodeRef

__all__ = [
    "Backward",
    "Factor",
    "collapse",
    "delta_recursion",
    "derive_backward",
    "grid_index",
    "grid_limits",
    "grid_tuple",
    "explicit_paths",
    "indexed_chain",
    "local_factor",
]

#: Most explicit paths a derivation writes out before it keeps to the index form.
PATH_LIMIT = 4096
# Letters for the neurons of the layers above the target (j, k belong to the target).
_PATH_LETTERS = ("q", "r", "s", "t", "u", "v", "p", "m", "n", "l")
# Letters for a parameter's own indices, in the order of its shape.
_PARAMETER_LETTERS = ("j", "k", "m", "p")


def collapse(expression: sp.Expr) -> sp.Expr:
    """Every ``Sum`` of ``expression`` with its Kronecker deltas summed out, innermost first.

    A sum's terms are taken one by one (``Σ (f + g) = Σ f + Σ g``); a term with a delta in the
    summation index is its value at the delta's point, a factor free of the index moves out of the
    sum, and the rest stays a ``Sum`` (never written out term by term, whatever the width).

    >>> j, k = sp.Idx("j", 3), sp.Idx("k", 3)
    >>> w, g = sp.IndexedBase("w"), sp.IndexedBase("g")
    >>> collapse(sp.Sum(w[j] * sp.KroneckerDelta(j, k) * 2 + w[j] * g[k], j))
    g[k]*Sum(w[j], (j, 0, 2)) + 2*w[k]
    """
    if not expression.has(sp.Sum):
        return expression
    if isinstance(expression, sp.Sum):
        body = collapse(expression.function)
        for limit in expression.limits:
            body = _sum_out(body, limit)
        return body
    if expression.args:
        return expression.func(*(collapse(argument) for argument in expression.args))
    return expression


def _sum_out(body: sp.Expr, limit: tuple) -> sp.Expr:
    index = limit[0]
    terms = []
    for term in sp.Add.make_args(_deltas_out_of_piecewise(body)):
        # A delta inside a sum that multiplies the rest: distributed one level (never into σ' itself).
        if term.has(sp.KroneckerDelta) and any(f.is_Add and f.has(sp.KroneckerDelta) for f in sp.Mul.make_args(term)):
            terms.extend(sp.Add.make_args(sp.expand_mul(term, deep=False)))
        else:
            terms.append(term)
    total = []
    for term in terms:
        if not term.has(index):
            total.append(term * (limit[2] - limit[1] + 1))
            continue
        outside, inside = [], []
        for factor in sp.Mul.make_args(term):
            (inside if factor.has(index) else outside).append(factor)
        inner = sp.Mul(*inside)
        point = _delta_point(inside, index)
        if point is not None:  # Σ_i f(i)·δ(i, k) = f(k): the index's range is the layer, k lies in it
            delta, value = point
            summed = sp.Mul(*(f for f in inside if f is not delta)).xreplace({index: value})
        elif any(isinstance(f, sp.KroneckerDelta) and f.has(index) for f in inside):
            summed = deltasummation(inner, limit, no_piecewise=True)
        else:
            summed = sp.Sum(inner, limit)
        total.append(sp.Mul(*outside) * summed)
    return sp.Add(*total)


def _delta_point(factors: list[sp.Expr], index: sp.Idx) -> tuple[sp.Expr, sp.Expr] | None:
    """``(δ(index, k), k)`` when exactly one factor is a Kronecker delta of the bare index and an
    expression free of it (no solving needed); None otherwise (``deltasummation`` then solves)."""
    deltas = [f for f in factors if isinstance(f, sp.KroneckerDelta) and f.has(index)]
    if len(deltas) != 1:
        return None
    first, second = deltas[0].args
    if first == index and not second.has(index):
        return deltas[0], second
    if second == index and not first.has(index):
        return deltas[0], first
    return None


def _deltas_out_of_piecewise(expression: sp.Expr) -> sp.Expr:
    """``Piecewise((δ_jk·f, c), (0, True))`` → ``δ_jk·Piecewise((f, c), (0, True))``: a delta every
    branch shares (ReLU's σ' times ∂z_j/∂z_k) moved out where delta summation can fire it."""

    def pull(piecewise: sp.Piecewise) -> sp.Expr:
        shared = None
        for value, _ in piecewise.args:
            if value == 0:
                continue
            deltas = {f for f in sp.Mul.make_args(value) if isinstance(f, sp.KroneckerDelta)}
            shared = deltas if shared is None else shared & deltas
        if not shared:
            return piecewise
        delta = sorted(shared, key=sp.default_sort_key)[0]
        return delta * sp.Piecewise(*((value / delta if value != 0 else value, c) for value, c in piecewise.args))

    if not expression.has(sp.Piecewise):
        return expression
    return expression.replace(lambda e: isinstance(e, sp.Piecewise) and e.has(sp.KroneckerDelta), pull)


def _factor_out_of_piecewise(expression: sp.Expr, factor: sp.Expr) -> sp.Expr:
    """``Piecewise((f·g, c), (f·h, True))`` → ``f·Piecewise((g, c), (h, True))`` (ReLU's δ as σ'(z)·∇a),
    and ``f·g + f·h`` → ``f·(g + h)``."""
    if expression.is_Add:
        terms = sp.Add.make_args(expression)
        if all(sp.Mul.make_args(term).count(factor) == 1 for term in terms):  # σ' of a sum (silu's)
            return factor * sp.Add(*(term / factor for term in terms))
        return expression
    if not isinstance(expression, sp.Piecewise):
        return expression
    values = [value for value, _ in expression.args]
    if not all(value == 0 or sp.Mul.make_args(value).count(factor) for value in values):
        return expression
    return factor * sp.Piecewise(*((value / factor, condition) for value, condition in expression.args))


@dataclass(frozen=True)
class Backward:
    """The derived backward pass of a network, per layer, in index form (one example).

    ``output_adjoint`` is ``∇a(L)_k``; ``adjoints[l]`` is ``∇a(l)_k`` for ``l < L`` (terms in the
    readers' δ and ∇a); ``deltas[l]`` is ``δ(l)_k`` in ``∇a(l)``; ``gradients[l][name]`` is
    ``∂C/∂θ(l)`` at the parameter's own indices (``j, k`` for a weight), in ``δ(l)``; ``forward[l]``
    is ``(z(l)_j, a(l)_j)``.  ``delta``/``nabla`` are the IndexedBases of δ(l) and ∇a(l).
    """

    network: Network
    model: IndexedModel
    output_adjoint: sp.Expr
    adjoints: dict[int, sp.Expr]
    deltas: dict[int, sp.Expr]
    gradients: dict[int, dict[str, sp.Expr]]
    forward: dict[int, tuple[sp.Expr, sp.Expr]]
    delta: dict[int, sp.IndexedBase]
    nabla: dict[int, sp.IndexedBase]
    #: The output index of δ(l), ∇a(l) (``k``) and of z(l), a(l) (``j``), per layer.
    own_index: dict[int, sp.Idx | tuple[sp.Idx, ...]]  # a tuple for a layer whose neurons are a grid
    neuron_index: dict[int, sp.Idx | tuple[sp.Idx, ...]]
    #: A parameter's own indices per layer: ``{"w": (j, k), "b": (j,)}``.
    parameter_indices: dict[int, dict[str, tuple[sp.Idx, ...]]]
    #: The term layer ``l`` adds to ``∂C/∂a(l-1)`` (for layer 1, ``∂C/∂x``): how its ``z`` formula passes the
    #: error down — a convolution's is the correlation with its flipped kernel.
    input_adjoints: dict[int, sp.Expr] = field(default_factory=dict)

    def adjoint(self, layer: int) -> sp.Expr:
        """``∇a(layer)_k`` for any layer, the output's included."""
        return self.output_adjoint if layer == self.network.depth else self.adjoints[layer]


def grid_index(letter: str, grid: tuple[int, ...]) -> sp.Idx | tuple[sp.Idx, ...]:
    """The index of a generic neuron of a layer with neurons ``grid``: one ``Idx`` for a plain layer,
    one per axis (``j``, ``j_1``, ``j_2``) for a grid such as a convolution's ``(filters, rows, columns)``.

    >>> grid_index("j", (3,)), grid_index("j", (2, 4, 4))
    (j, (j, j_1, j_2))
    """
    if len(grid) == 1:
        return sp.Idx(letter, grid[0])
    return tuple(sp.Idx(letter if axis == 0 else f"{letter}_{axis}", n) for axis, n in enumerate(grid))


def grid_tuple(index: sp.Idx | tuple[sp.Idx, ...]) -> tuple[sp.Idx, ...]:
    return index if isinstance(index, tuple) else (index,)


def grid_limits(index: sp.Idx | tuple[sp.Idx, ...]) -> list[tuple[sp.Idx, sp.Expr, sp.Expr]]:
    """``Sum`` limits running ``index`` (every axis of it) over its whole range."""
    return [(i, i.lower, i.upper) for i in grid_tuple(index)]


#: The symbols a layer's rules are derived in before they are renamed to a layer's own.
_T = LayerSymbols(
    sp.IndexedBase("z(·)", real=True), sp.IndexedBase("a(·)", real=True), sp.IndexedBase("a(·-1)", real=True),
    {"w": sp.IndexedBase("w(·)", real=True), "b": sp.IndexedBase("b(·)", real=True)},
    sp.IndexedBase("a(·-back)", real=True),
)
_T_DELTA = sp.IndexedBase("delta(·)", real=True)
_T_NABLA = sp.IndexedBase("nabla_a(·)", real=True)


@dataclass(frozen=True)
class _LayerRules:
    """One layer's derived rules in the template symbols: its formulas, the term it adds to the ∇a of
    each layer it reads (by relative source), its δ and its parameter gradients."""

    z: sp.Expr
    a: sp.Expr
    adjoint_terms: dict[int, sp.Expr]
    delta: sp.Expr
    gradients: dict[str, sp.Expr]
    parameter_indices: dict[str, tuple[sp.Idx, ...]]


@lru_cache(maxsize=256)
def _layer_rules(layer: Layer, fan_in: int) -> _LayerRules:
    grid = layer.grid  # (width,), or a convolution's (filters, *positions), a recurrent layer's (steps, hidden)
    j, k = grid_index("j", grid), grid_index("k", grid)
    # how the layer reads the one below: flat, or as the grid it declares (a convolution's input)
    below = tuple(getattr(layer, "input_grid", None) or (fan_in,))
    symbols = _T if len(layer.sources) > 1 else LayerSymbols(_T.z, _T.a, _T.inputs, _T.parameters, None)
    z = layer.z_formula(symbols, j, sp.Idx("d", fan_in))
    a = layer.a_formula(symbols, j, sp.Idx("d", layer.width))
    adjoint_terms = {}
    for source in layer.sources:
        base = _T.inputs if source == -1 else _T.skip
        target = base[grid_index("k", below if source == -1 else grid)]
        terms = []
        for local, adjoint in ((z, _T_DELTA), (a, _T_NABLA)):
            derivative = sp.diff(local, target)
            if derivative != 0:
                terms.append(collapse(sp.Sum(derivative * adjoint[j], *grid_limits(j))))
        adjoint_terms[source] = sp.Add(*terms)
    derived = collapse(sp.Sum(sp.diff(a, _T.z[k]) * _T_NABLA[j], *grid_limits(j)))
    delta = _in_terms_of_output(layer.activation, _T.z, _T.a, _factor_out_of_piecewise(derived, _T_NABLA[k]))
    summed = grid_index("i", grid)
    z_at = z.xreplace(dict(zip(grid_tuple(j), grid_tuple(summed))))
    gradients, parameter_indices = {}, {}
    for name, shape in layer.parameter_shapes(fan_in).items():
        indices = tuple(sp.Idx(letter, n) for letter, n in zip(_PARAMETER_LETTERS, shape))
        derivative = sp.diff(z_at, symbols.parameters[name][indices])
        gradients[name] = collapse(sp.Sum(derivative * _T_DELTA[summed], *grid_limits(summed)))
        parameter_indices[name] = indices
    return _LayerRules(z, a, adjoint_terms, delta, gradients, parameter_indices)


@lru_cache(maxsize=64)
def derive_backward(network: Network) -> Backward:
    """The δ recursion and every parameter gradient of ``network``, derived from its layers' formulas."""
    im = IndexedModel(network)
    L = network.depth
    label = network.layer_label
    sizes = network.sizes
    delta = {l: sp.IndexedBase(f"delta({label(l)})", real=True) for l in range(1, L + 1)}
    nabla = {l: sp.IndexedBase(f"nabla_a({label(l)})", real=True) for l in range(1, L + 1)}
    grids = {0: (sizes[0],), **{l: layer.grid for l, layer in enumerate(network.layers, start=1)}}
    own = {l: grid_index("k", grids[l]) for l in range(0, L + 1)}
    neuron = {l: grid_index("j", grids[l]) for l in range(0, L + 1)}
    forward: dict[int, tuple[sp.Expr, sp.Expr]] = {}
    terms_for: dict[int, list[sp.Expr]] = {l: [] for l in range(1, L)}
    deltas: dict[int, sp.Expr] = {}
    gradients: dict[int, dict[str, sp.Expr]] = {}
    parameter_indices: dict[int, dict[str, tuple[sp.Idx, ...]]] = {}
    input_adjoints: dict[int, sp.Expr] = {}
    for l, layer in enumerate(network.layers, start=1):
        # One layer's rules, derived once per kind, activation and widths (a deep stack of equal layers
        # is differentiated once), then written in this layer's own symbols.
        rules = _layer_rules(layer, sizes[l - 1])
        own_symbols = im.layer_symbols(l)
        mapping = {
            _T.z: own_symbols.z, _T.a: own_symbols.a, _T.inputs: own_symbols.inputs, _T_DELTA: delta[l], _T_NABLA: nabla[l],
            **{_T.parameters[name]: own_symbols.parameters[name] for name in _T.parameters},
        }
        if own_symbols.skip is not None:
            mapping[_T.skip] = own_symbols.skip
        forward[l] = (rules.z.xreplace(mapping), rules.a.xreplace(mapping))
        input_adjoints[l] = rules.adjoint_terms[-1].xreplace(mapping)
        for source, term in rules.adjoint_terms.items():
            if l + source >= 1:  # a source of 0 is the input: no adjoint of its own
                terms_for[l + source].append(term.xreplace(mapping))
        deltas[l] = rules.delta.xreplace(mapping)
        gradients[l] = {name: g.xreplace(mapping) for name, g in rules.gradients.items()}
        parameter_indices[l] = dict(rules.parameter_indices)
    adjoints = {l: sp.Add(*terms) for l, terms in terms_for.items()}
    output_adjoint = collapse(sp.diff(im.cost_expression(sp.Idx("d", sizes[L])), im.activations[L][own[L]]))
    return Backward(
        network, im, output_adjoint, adjoints, deltas, gradients, forward, delta, nabla, own, neuron,
        parameter_indices, input_adjoints,
    )


def delta_recursion(backward: Backward, layer: int) -> sp.Expr:
    """``δ(layer)_k`` in the δ and ∇a of the layers above: BP2, derived (``∇a(layer)`` substituted).

    >>> from symback import Network
    >>> b = derive_backward(Network([2, 3, 1], "tanh", "squared_error"))
    >>> delta_recursion(b, 1)
    (1 - tanh(z(L-1)[k])**2)*Sum(delta(L)[j]*w(L)[j, k], (j, 0, 0))
    """
    nabla = backward.nabla[layer]
    k = grid_tuple(backward.own_index[layer])
    return backward.deltas[layer].replace(
        lambda e: isinstance(e, sp.Indexed) and e.base == nabla,
        lambda e: backward.adjoint(layer).xreplace(dict(zip(k, e.indices))) if e.indices != k else backward.adjoint(layer),
    )


def _in_terms_of_output(activation: Activation, z: sp.IndexedBase, a: sp.IndexedBase, expression: sp.Expr) -> sp.Expr:
    """A softmax δ with ``exp(z_i)/Σ_d exp(z_d)`` written as ``a_i``: ``a_k ∇a_k − a_k Σ_j a_j ∇a_j``."""
    if activation.elementwise:
        return expression
    totals = [s for s in expression.atoms(sp.Sum) if isinstance(s.function, sp.exp) and s.function.args[0].base == z]
    if not totals:
        return expression
    marker = sp.Dummy("S", positive=True)
    rewritten = expression.xreplace({totals[0]: marker}).replace(
        lambda e: isinstance(e, sp.exp) and isinstance(e.args[0], sp.Indexed) and e.args[0].base == z,
        lambda e: a[e.args[0].indices[0]] * marker,
    )
    return sp.expand(collapse(rewritten))


# -- one target's chain, in both forms ------------------------------------------------------------


@dataclass(frozen=True)
class Factor:
    """One chain-rule factor ``∂of/∂wrt``: ``derivative = sympy.diff(local, wrt)``."""

    of: sp.Expr
    wrt: sp.Expr
    local: sp.Expr
    derivative: sp.Expr

    @property
    def notation(self) -> str:
        return f"∂{self.of}/∂{self.wrt}"

    def __str__(self) -> str:
        return f"{self.notation} = {self.derivative}"


def local_factor(of: sp.Expr, wrt: sp.Expr, local: sp.Expr) -> Factor:
    """``∂of/∂wrt`` from ``of``'s local formula, its delta sums collapsed."""
    return Factor(of, wrt, local, collapse_delta_sums(sp.diff(local, wrt)))


def explicit_paths(model: ExplicitModel, target: NodeRef) -> tuple[tuple[Factor, ...], ...]:
    """Every path from ``C`` down to ``target`` (one scalar symbol per node), each factor ``sympy.diff``
    of a local formula: the walk follows whatever nodes read each node, skip edges included."""
    cost = NodeRef("C")
    memo: dict[NodeRef, list[list[Factor]]] = {}

    def upward(ref: NodeRef) -> list[list[Factor]]:
        if ref == cost:
            return [[]]
        if ref in memo:
            return memo[ref]
        found: list[list[Factor]] = []
        for reader in model.readers(ref):
            local = model.local_expression(reader)
            factor = local_factor(model.symbols[reader], model.symbols[ref], local)
            if factor.derivative == 0:
                continue
            for tail in upward(reader):
                found.append([factor, *tail])
                if len(found) > PATH_LIMIT:
                    raise SpecError(f"more than {PATH_LIMIT} chain-rule paths; use the indexed form")
        memo[ref] = found
        return found

    return tuple(tuple(reversed(path)) for path in upward(target))


def indexed_chain(im: IndexedModel, target: NodeRef) -> tuple[tuple[Factor, ...], tuple[sp.Idx, ...], sp.Expr]:
    """The index-form chain from ``C`` down to ``target`` and the indices summed over (one per layer
    above); every factor is ``sympy.diff`` of a layer's local formula.

    A network with skip edges has more than one chain to a target below a skip: its index form is the
    per-layer recursion of :func:`derive_backward` instead (this raises SpecError for such a target).
    """
    net = im.network
    L = net.depth
    _check_single_chain(net, target)
    # Deep networks run out of single letters: then q_1, q_2, ...
    letters = itertools.chain(_PATH_LETTERS, (f"q_{n}" for n in itertools.count(1)))
    upward: list[Factor] = []
    sums: list[sp.Idx] = []

    def dummy(layer: int) -> sp.Idx:
        return sp.Idx("d", net.sizes[layer])

    layer = target.layer
    if target.kind == "a":
        own = im.index("k", layer)
        target_expr = im.activations[layer][own]
        node = ("a", layer, own)
    else:
        own = im.index("j", layer)
        z = im.zs[layer][own]
        if target.kind in ("w", "b"):
            indices = (own, im.index("k", layer - 1)) if target.kind == "w" else (own,)
            target_expr = im.parameter(target.kind, layer)[indices]
            upward.append(local_factor(z, target_expr, im.z_expression(layer, own, dummy(layer - 1))))
        else:
            target_expr = z
        node = ("z", layer, own)

    while True:
        kind, layer, index = node
        if kind == "z":
            activation = net.activation(layer)
            z = im.zs[layer][index]
            if activation.elementwise:
                upward.append(local_factor(im.activations[layer][index], z, im.a_expression(layer, index, dummy(layer))))
                node = ("a", layer, index)
            else:
                out = im.index(next(letters), layer)
                sums.append(out)
                factor = local_factor(im.activations[layer][out], z, im.a_expression(layer, out, dummy(layer)))
                rewritten = im.activation_in_terms_of_output(layer, factor.derivative)
                upward.append(Factor(factor.of, factor.wrt, factor.local, rewritten))
                node = ("a", layer, out)
        else:  # an activation
            a = im.activations[layer][index]
            if layer == L:
                upward.append(local_factor(im.cost_symbol, a, im.cost_expression(dummy(L))))
                break
            if target.kind == "a" and target.layer == layer:
                above = im.index("j", layer + 1)  # seed 001: k in layer L-1, j in layer L
            else:
                above = im.index(next(letters), layer + 1)
            sums.append(above)
            upward.append(local_factor(im.zs[layer + 1][above], a, im.z_expression(layer + 1, above, dummy(layer))))
            node = ("z", layer + 1, above)

    return tuple(reversed(upward)), tuple(reversed(sums)), target_expr


def _check_single_chain(network: Network, target: NodeRef) -> None:
    """A skip edge leaving layer ``target.layer`` or above gives the target a second chain to the cost."""
    for m, layer in enumerate(network.layers, start=1):
        if any(m + source >= target.layer for source in layer.sources[1:]):
            raise SpecError(
                f"{network.name_of(target)} lies below a skip edge: it has more than one chain to the cost; "
                "use the explicit form or the per-layer recursion (backprop_equations)"
            )
