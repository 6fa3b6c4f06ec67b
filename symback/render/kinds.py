"""Single-parameter derivations for the layer kinds whose neurons are a grid: conv1d, conv2d, recurrent.

A convolution's kernel entry ``w(l)_f_c_m`` (conv2d ``w(l)_f_c_m_n``), its bias per filter ``b(l)_f``, a
recurrent layer's ``W(l)_j_q``, ``U(l)_j_e`` and ``b(l)_j``, and the weights of the dense layer reading
their grid (one index per axis of the weight, :mod:`symback.grammar.names`) are derived here from the one
chain-rule engine (:func:`symback.symbolic.chain.derive_backward`): nothing below differentiates by hand.
What this module adds is the *reading* of the derived index expressions in the textbook's forms:

* the parameter's gradient, ``∂C/∂w_{f,c,m} = Σ_j δ_{f,j} a_{c,j+m−P}`` (a recurrent ``W``: ``Σ_t δ_{t,j}
  h_{t−1,q}``, backpropagation through time), with the stored ``w = [W | U]`` read as its two blocks;
* every δ from the output down to the parameter's layer, ``δ(l) = f′(z(l)) ∂C/∂a(l)``, the derivative
  named (σ′, tanh′) once SymPy proves it is the factor;
* how the layer passes the error down: a convolution's derived ``Σ_j δ_j w_{k−j+P}`` with the summation
  index changed to the kernel offset, ``Σ_m w_m δ_{k+P−m}`` — the correlation with the flipped kernel (a
  read outside ``δ``'s positions is zero, the full correlation's padding); a recurrent layer's one-step
  Jacobian ``∂h_{t,j}/∂h_{t−1,q} = f′(z_{t,j}) W_{j,q}``, derived, whose product over the steps is the
  vanishing (or exploding) gradient of seed 003.

Numbers: :meth:`KindDerivation.value` evaluates the derived gradient expression itself, entry by entry,
at the compiled forward pass and δ (a read outside an array is zero: the padding, ``h_{−1} = 0``).

>>> from symback.spec.layer_table import network_from_tables
>>> net = network_from_tables({"inputs": [1, 5], "cost": "squared_error"},
...     [{"kind": "conv1d", "filters": 1, "kernel": 3, "activation": "sigmoid"}, {"size": 1, "activation": "sigmoid"}])
>>> d = derive_kind(net, "w(1)_0_0_2")
>>> text(d.gradient_equation)
'∂C/∂w(L-1)_0,0,2 = Σ_j δ(L-1)_0,j·x_0,j + 2'
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp

from ..compile.compiler import compile_network, lambdify
from ..data import Dataset
from ..errors import SpecError
from ..grammar.names import Layer as LayerName
from ..grammar.names import Name
from ..grammar.names import parse as parse_name
from ..symbolic.chain import Backward, collapse, delta_recursion, derive_backward, grid_tuple
from ..symbolic.layers import ParameterBlock
from ..symbolic.network import Network
from ..symbolic.parameters import Parameters
from .notation import Partial, activation_forms, cost_form, product, text
from .notation import _equal as notation_equal

__all__ = ["GRID_KINDS", "KindDerivation", "KindTarget", "derive_kind", "evaluate_indexed", "flip_kernel",
           "is_grid_network", "resolve_target"]

#: The kinds whose neurons are a grid (their names and index forms are this module's).
GRID_KINDS = ("conv1d", "conv2d", "recurrent")


def is_grid_network(network: Network) -> bool:
    """Whether a layer of ``network`` is a convolution or a recurrent layer (or reads one's grid)."""
    return any(layer.kind in GRID_KINDS or len(layer.grid) > 1 or getattr(layer, "input_grid", None)
               for layer in network.layers)


# -- names ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindTarget:
    """One parameter entry by its name: ``name`` (w, W, U, b) of ``layer`` at ``index``, a block of the
    stored parameter ``block.stored`` (entry ``index + block.offset``)."""

    layer: int
    name: str
    index: tuple[int, ...]
    block: ParameterBlock

    @property
    def stored_index(self) -> tuple[int, ...]:
        return tuple(i + o for i, o in zip(self.index, self.block.offset, strict=True))

    def text(self, network: Network) -> str:
        """The canonical spelling, ``w(L-1)_0_0_2``."""
        return str(Name(self.name, LayerName(network.depth - self.layer, from_output=True), self.index))


def _names_of(network: Network, layer: int) -> dict[str, ParameterBlock]:
    return network.layers[layer - 1].parameter_names(network.sizes[layer - 1])


def _index_letters(network: Network, layer: int, name: str) -> tuple[str, ...]:
    """The letters a name's indices read in: a kernel's (f, c, m[, n]), a recurrent W's (j, q) …"""
    kind = network.layers[layer - 1]
    rank = len(_names_of(network, layer)[name].shape)
    if kind.kind in ("conv1d", "conv2d"):
        return ("f", "c", "m", "n")[:rank] if name == "w" else ("f",)
    if kind.kind == "recurrent":
        return {"W": ("j", "q"), "U": ("j", "e"), "b": ("j",)}[name]
    return ("j", "k", "p", "r")[:rank]


def _forms(network: Network, layer: int) -> str:
    label = network.layer_label(layer)
    return ", ".join(f"{name}({label})_" + "_".join(_index_letters(network, layer, name))
                     for name in _names_of(network, layer))


def resolve_target(network: Network, wrt: str) -> KindTarget:
    """The parameter entry ``wrt`` names (one index per axis of the parameter; a SpecError, in one line,
    naming the layer's forms otherwise).

    >>> from symback.spec.layer_table import network_from_tables
    >>> net = network_from_tables({"inputs": [3, 2], "cost": "squared_error"},
    ...     [{"kind": "recurrent", "hidden": 2, "activation": "tanh"}, {"size": 1, "reads": "last"}])
    >>> t = resolve_target(net, "U(1)_1_0")
    >>> t.block.stored, t.stored_index
    ('w', (1, 2))
    """
    if not isinstance(wrt, str):
        raise SpecError(f"name the parameter by text (w(1)_0_0_2, W(1)_0_1, …), not {wrt!r}")
    name = parse_name(wrt.strip())
    if name is None or name.layer is None or name.wildcard:
        raise SpecError(f"{wrt!r} is not a parameter entry of this network; it has "
                               + "; ".join(_forms(network, l) for l in range(1, network.depth + 1)))
    layer = name.layer.resolve(network.depth)
    if not 1 <= layer <= network.depth:
        raise SpecError(f"{wrt!r}: the network has layers 1 … {network.depth} (L = {network.depth})")
    blocks = _names_of(network, layer)
    if name.base in ("z", "a"):
        raise SpecError(f"{wrt!r}: for a network with {', '.join(GRID_KINDS)} layers, derive/report take a "
                        f"parameter ({_forms(network, layer)})")
    block = blocks.get(name.base)
    if block is None or len(name.indices) != len(block.shape) or any(
            not 0 <= i < n for i, n in zip(name.indices, block.shape, strict=True)):  # type: ignore[operator]
        shape = "" if block is None else f" (shape {'×'.join(map(str, block.shape))})"
        raise SpecError(f"{wrt!r} is not an entry of layer {network.layer_label(layer)}{shape}: "
                               f"its parameters are {_forms(network, layer)}, 0-based")
    return KindTarget(layer, name.base, tuple(int(i) for i in name.indices), block)  # type: ignore[arg-type]


# -- reading the derived expressions -----------------------------------------------------------------------


def _bounds(index: sp.Expr) -> tuple[int, int] | None:
    """The least and greatest value of an index expression linear in ``Idx`` symbols (None otherwise)."""
    low = high = 0
    for term, coefficient in sp.expand(index).as_coefficients_dict().items():
        if not coefficient.is_Integer:
            return None
        if term == 1:
            low, high = low + int(coefficient), high + int(coefficient)
        elif isinstance(term, sp.Idx) and term.lower is not None:
            ends = (int(coefficient) * int(term.lower), int(coefficient) * int(term.upper))
            low, high = low + min(ends), high + max(ends)
        else:
            return None
    return low, high


def flip_kernel(expression: sp.Expr, weight: sp.IndexedBase, kernel: tuple[int, ...]) -> sp.Expr:
    """Every sum over an output position ``p`` read by ``weight`` at ``s − p`` rewritten over the kernel
    offset ``m = s − p`` instead: ``Σ_p δ_p w_{s−p} → Σ_{m=0}^{K−1} w_m δ_{s−m}``.

    The two are equal when a read outside an array is zero (outside the kernel on the left, outside
    δ's positions on the right): the derived backward pass of a convolution written as the correlation
    of δ with the flipped kernel.

    >>> p, i = sp.Idx("p", 3), sp.Idx("i", 5)
    >>> w, d = sp.IndexedBase("w"), sp.IndexedBase("d")
    >>> flip_kernel(sp.Sum(d[p] * w[i - p + 1], (p, 0, 2)), w, (3,))
    Sum(d[i - m + 1]*w[m], (m, 0, 2))
    """

    def rewrite(total: sp.Sum) -> sp.Expr:
        body, limits = total.function, list(total.limits)
        reads = [e for e in body.atoms(sp.Indexed) if e.base == weight]
        if len(reads) != 1:
            return total
        offsets = reads[0].indices[-len(kernel):]
        for axis, offset in enumerate(offsets):
            for position, (p, _, _) in enumerate(limits):
                if sp.expand(offset).coeff(p) != -1:
                    continue
                m = sp.Idx("m" if len(kernel) == 1 else ("m", "n")[axis], kernel[axis])
                body = body.xreplace({p: offset + p - m})  # p = s − m, with s = offset + p
                limits[position] = (m, 0, kernel[axis] - 1)
                break
        tidy = body.replace(lambda e: isinstance(e, sp.Indexed),
                            lambda e: e.base[tuple(sp.expand(i) for i in e.indices)])
        return sp.Sum(tidy, *limits)

    return expression.replace(lambda e: isinstance(e, sp.Sum) and e.has(weight), rewrite)


def _blocks(expression: sp.Expr, stored: sp.IndexedBase, blocks: dict[str, ParameterBlock], label: str) -> sp.Expr:
    """Reads of a stored parameter shown as the named block they fall in (``w[j, 2 + e]`` → ``U[j, e]``)."""
    named = [(name, block) for name, block in blocks.items() if block.stored == str(stored.label)[:1]]
    if len(named) < 2:
        return expression

    def as_block(entry: sp.Indexed) -> sp.Expr:
        for name, block in named:
            shifted = [sp.expand(i - o) for i, o in zip(entry.indices, block.offset, strict=True)]
            ranges = [_bounds(i) for i in shifted]
            if all(r is not None and r[0] >= 0 and r[1] <= n - 1 for r, n in zip(ranges, block.shape, strict=True)):
                return sp.IndexedBase(f"{name}({label})", real=True)[tuple(shifted)]
        return entry

    return expression.replace(lambda e: isinstance(e, sp.Indexed) and e.base == stored, as_block)


def _drop_outside(expression: sp.Expr, shapes: dict[sp.IndexedBase, tuple[int, ...]]) -> sp.Expr:
    """Terms reading an array provably outside its range are zero (``x[i, q − 2]`` with ``q < 2``)."""

    def outside(entry: sp.Indexed) -> bool:
        shape = shapes.get(entry.base)
        if shape is None:
            return False
        for index, n in zip(entry.indices, shape, strict=False):
            bounds = _bounds(index)
            if bounds is not None and (bounds[1] < 0 or bounds[0] > n - 1):
                return True
        return False

    dropped = expression.replace(lambda e: isinstance(e, sp.Indexed) and outside(e), lambda e: sp.S.Zero)
    return dropped.replace(lambda e: isinstance(e, sp.Sum) and e.function == 0, lambda e: sp.S.Zero)


#: Letters for a layer's own neurons (δ(l), ∂C/∂a(l)), by kind: a convolution's (filter, positions), a
#: recurrent layer's (step, unit); and those the sums are then written in, in order, skipping any taken.
_OWN_LETTERS = {"conv1d": ("f", "i"), "conv2d": ("f", "i", "r"), "recurrent": ("t", "q")}
_INPUT_LETTERS = {"conv1d": ("c", "i"), "conv2d": ("c", "i", "r"), "recurrent": ("t", "e")}
_SUM_LETTERS = ("j", "o", "p", "s", "u", "v", "k", "n")
#: The forward formulas' letters for a layer's own entries (the gradient lines sum over these positions).
_FORWARD_OWN_LETTERS = {"conv1d": ("f", "j"), "conv2d": ("f", "j", "k"), "recurrent": ("t", "j")}


def _renamed(old: Sequence[sp.Idx], letters: Sequence[str]) -> tuple[sp.Idx, ...]:
    return tuple(sp.Idx(letter, (i.lower, i.upper)) for i, letter in zip(old, letters, strict=False))


def _lettered(expression: sp.Expr, own: tuple[sp.Idx, ...],
              letters: tuple[str, ...]) -> tuple[sp.Expr, tuple[sp.Idx, ...]]:
    """``own`` renamed to ``letters`` and every summed index to the next free letter of :data:`_SUM_LETTERS`."""
    expression, new = _rename(expression, own, letters)
    bound = {x for total in expression.atoms(sp.Sum) for x, _, _ in total.limits}
    taken = {str(i.label) for i in expression.atoms(sp.Idx) if i not in bound}
    taken |= set(letters)
    summed: list[sp.Idx] = []
    for total in sp.preorder_traversal(expression):
        if isinstance(total, sp.Sum):
            summed += [i for i, _, _ in total.limits if isinstance(i, sp.Idx) and i not in summed and i not in new]
    pool = [x for x in _SUM_LETTERS if x not in taken]
    kept = [i for i in summed if str(i.label) in ("m", "n")]  # a flipped kernel's offsets keep their letters
    renamed = [i for i in summed if i not in kept]
    expression, _ = _rename(expression, tuple(renamed), tuple(pool))
    return expression, new


def _rename(expression: sp.Expr, old: tuple[sp.Idx, ...],
            letters: tuple[str, ...]) -> tuple[sp.Expr, tuple[sp.Idx, ...]]:
    new = tuple(sp.Idx(letter, (i.lower, i.upper)) for i, letter in zip(old, letters, strict=False))
    return expression.xreplace(dict(zip(old, new, strict=False))), new


# -- the derivation ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class KindDerivation:
    """``∂C/∂θ`` for one parameter entry of a network with grid layers, read off the engine's backward pass.

    ``gradient_equation`` is the parameter's derived gradient at its entry (its own indices fixed);
    ``generic_gradient`` the same with the indices free; ``delta_equations`` every δ from the output
    down to the parameter's layer; ``passes_down`` how the layer passes the error to the one below
    (a convolution's flipped-kernel correlation); ``jacobian`` a recurrent layer's one-step Jacobian.
    """

    network: Network
    target: KindTarget

    form = "indexed"

    @property
    def backward(self) -> Backward:
        return derive_backward(self.network)

    @property
    def layer(self) -> Any:
        return self.network.layers[self.target.layer - 1]

    @property
    def target_name(self) -> str:
        return self.target.text(self.network)

    @property
    def cost_name(self) -> str:
        return str(self.backward.model.cost_symbol)

    @property
    def reduction(self) -> str:
        return self.network.cost.example_reduction

    @cached_property
    def _shapes(self) -> dict[sp.IndexedBase, tuple[int, ...]]:
        """Every array's shape per example (a parameter's whole), by its IndexedBase."""
        net, b, im = self.network, self.backward, self.backward.model
        first = net.layers[0]
        shapes: dict[sp.IndexedBase, tuple[int, ...]] = {
            im.activations[0]: tuple(getattr(first, "input_grid", None) or (net.sizes[0],)),
            im.targets: (net.sizes[-1],),
        }
        for l, layer in enumerate(net.layers, start=1):
            for base in (im.zs[l], im.activations[l], b.delta[l], b.nabla[l]):
                shapes[base] = layer.grid
            for name, shape in layer.parameter_shapes(net.sizes[l - 1]).items():
                shapes[im.parameter(name, l)] = shape
        return shapes

    def _display(self, expression: sp.Expr) -> sp.Expr:
        """A derived expression as the report shows it: blocks named, reads outside dropped, kernels flipped."""
        net, im = self.network, self.backward.model
        shown = _drop_outside(expression, self._shapes)
        for l, layer in enumerate(net.layers, start=1):
            if layer.kind in ("conv1d", "conv2d"):
                shown = flip_kernel(shown, im.weights[l], tuple(layer.kernel))
            shown = _blocks(shown, im.weights[l], _names_of(net, l), net.layer_label(l))
        return shown

    def display_forward(self, expression: sp.Expr) -> sp.Expr:
        """A layer's forward formula as shown: a recurrent layer's stored ``w`` read as ``W`` and ``U``."""
        net, im = self.network, self.backward.model
        for l in range(1, net.depth + 1):
            expression = _blocks(expression, im.weights[l], _names_of(net, l), net.layer_label(l))
        return expression

    def forward_equations(self) -> list[sp.Eq]:
        """Every layer's ``z(l) = …`` and ``a(l) = …``, in the letters the gradient and δ lines use: a
        convolution's (filter, positions) as ``f, j[, k]`` and its kernel offsets as ``m[, n]``, a recurrent
        layer's (step, unit) as ``t, j``, a readout of a grid summed over the grid's δ letters (``f, i[, r]``),
        not the engine's dummy ``j₁``, ``m₀``, ``d₁``."""
        net, im = self.network, self.backward.model
        equations = []
        for l, layer in enumerate(net.layers, start=1):
            z, a = self.backward.forward[l]
            own = grid_tuple(self.backward.neuron_index[l])
            lhs_z, lhs_a = im.zs[l][own], im.activations[l][own]
            renames: dict[sp.Idx, sp.Idx] = {}
            if layer.kind in _FORWARD_OWN_LETTERS:
                renames |= dict(zip(own, _renamed(own, _FORWARD_OWN_LETTERS[layer.kind]), strict=True))
            summed = [i for total in sp.preorder_traversal(z) if isinstance(total, sp.Sum)
                      for i, _, _ in total.limits]
            offsets = [i for i in summed if re.fullmatch(r"m_?\d+", str(i.label))]
            renames |= dict(zip(offsets, _renamed(offsets, ("m", "n")), strict=False))
            below = net.layers[l - 2].kind if l > 1 else None
            read = [i for i in summed if re.fullmatch(r"d(_\d+)?", str(i.label))]
            if below in _OWN_LETTERS and len(read) == len(_OWN_LETTERS[below]):
                renames |= dict(zip(read, _renamed(read, _OWN_LETTERS[below]), strict=True))
            z, a, lhs_z, lhs_a = (e.xreplace(renames) for e in (z, a, lhs_z, lhs_a))
            equations += [sp.Eq(lhs_z, self.display_forward(z), evaluate=False), sp.Eq(lhs_a, a, evaluate=False)]
        return equations

    # -- the gradient ----------------------------------------------------------------------------------

    def _stored_gradient(self) -> tuple[sp.Expr, tuple[sp.Idx, ...]]:
        l, block = self.target.layer, self.target.block
        return self.backward.gradients[l][block.stored], self.backward.parameter_indices[l][block.stored]

    @cached_property
    def generic_gradient(self) -> sp.Eq:
        """``∂C/∂θ(l)`` at free indices, in the letters of the parameter's name (f, c, m; j, q; j, e)."""
        gradient, indices = self._stored_gradient()
        letters = _index_letters(self.network, self.target.layer, self.target.name)
        block = self.target.block
        own = tuple(sp.Idx(letter, n) for letter, n in zip(letters, block.shape, strict=True))
        at = {i: o + off for i, o, off in zip(indices, own, block.offset, strict=True)}
        # summed positions in the letters the name leaves free (j over a convolution's outputs, t over steps)
        summed = sorted({i for s in gradient.atoms(sp.Sum) for i, _, _ in s.limits}, key=str)
        spare = [x for x in ("j", "k", "t", "s") if x not in letters]
        if self.layer.kind == "recurrent":
            spare = ["t"]
        gradient = gradient.xreplace(at)
        gradient, _ = _rename(gradient, tuple(summed), tuple(spare))
        lhs = Partial(self.backward.model.cost_symbol, sp.IndexedBase(self._base_name, real=True)[own])
        return sp.Eq(lhs, self._display(gradient), evaluate=False)

    @property
    def _base_name(self) -> str:
        return f"{self.target.name}({self.network.layer_label(self.target.layer)})"

    @cached_property
    def gradient_equation(self) -> sp.Eq:
        """``∂C/∂θ`` at the target's entry: the derived gradient with its indices fixed."""
        gradient, indices = self._stored_gradient()
        fixed = dict(zip(indices, (sp.Integer(i) for i in self.target.stored_index), strict=True))
        summed = sorted({i for s in gradient.atoms(sp.Sum) for i, _, _ in s.limits}, key=str)
        spare = ["t"] if self.layer.kind == "recurrent" else ["j", "k"]
        gradient, _ = _rename(gradient.xreplace(fixed), tuple(summed), tuple(spare))
        entry = sp.IndexedBase(self._base_name, real=True)[tuple(sp.Integer(i) for i in self.target.index)]
        return sp.Eq(Partial(self.backward.model.cost_symbol, entry), self._display(gradient), evaluate=False)

    # -- the δ of every layer above ------------------------------------------------------------------------

    def _named_delta(self, layer: int) -> sp.Eq:
        """``δ(l)_k = f′(z(l)_k) · (what the layers above send back)``, the derivative named once SymPy
        proves it is the factor; the output's ``∂C/∂a`` in the cost's own form (2(a − y))."""
        b, net = self.backward, self.network
        own = grid_tuple(b.own_index[layer])
        if layer == net.depth:
            expression = b.deltas[layer].xreplace({b.nabla[layer][own]: b.output_adjoint})
        else:
            expression = delta_recursion(b, layer)
        z = b.model.zs[layer][own]
        activation = net.activation(layer)
        lhs = b.delta[layer][own]
        rest = None
        if activation.elementwise:
            derivative = activation.derivative_at(z)
            quotient = sp.cancel(expression / derivative) if layer == net.depth else None
            factors = sp.Mul.make_args(expression)
            found = [f for f in factors if f.has(z) and notation_equal(f, derivative)]
            if found:
                rest = sp.Mul(*(f for f in factors if f is not found[0]))
            elif quotient is not None and not quotient.has(z):
                rest = quotient
            elif not (expression / derivative).has(z):
                rest = expression / derivative
        if rest is None:
            shown = sp.Eq(lhs, self._display(expression), evaluate=False)
        else:
            if layer == net.depth:
                rest = cost_form(rest, _cost_term(net, b, own), b.model.activations[layer][own])
            named = activation_forms(activation, z, b.model.activations[layer][own]).named
            shown = sp.Eq(lhs, product([named, self._display(rest)]), evaluate=False)
        letters = _OWN_LETTERS.get(net.layers[layer - 1].kind, ("k", "k_1", "k_2")[:len(own)])
        return _lettered(shown, own, letters)[0]

    @cached_property
    def delta_equations(self) -> tuple[sp.Eq, ...]:
        """δ(L), δ(L−1), … down to the target's layer, each derived from the layer above."""
        return tuple(self._named_delta(layer) for layer in range(self.network.depth, self.target.layer - 1, -1))

    @cached_property
    def passes_down(self) -> sp.Eq:
        """``∂C/∂a(l−1)`` (``∂C/∂x`` for the first layer) as the target's layer sends it down, derived."""
        b, l = self.backward, self.target.layer
        term = b.input_adjoints[l]
        below = b.model.activations[l - 1]
        # the input's own index, free in the term (its adjoint's index is k, k_1, … of the layer below)
        grid = self._shapes[below]
        own = tuple(sp.Idx(n, size) for n, size in zip(("k", "k_1", "k_2"), grid, strict=False))
        kind = self.network.layers[l - 2].kind if l > 1 else self.layer.kind
        # what the input is read as: a sequence (steps, inputs) or channels × positions
        source = "recurrent" if kind == "recurrent" else {2: "conv1d", 3: "conv2d"}.get(len(own), "")
        letters = _INPUT_LETTERS.get(source, ("k",))
        shown = sp.Eq(Partial(b.model.cost_symbol, below[own]), self._display(term), evaluate=False)
        return _lettered(shown, own, letters)[0]

    @cached_property
    def jacobian(self) -> sp.Eq | None:
        """A recurrent layer's ``∂h_{t,j}/∂h_{t−1,q} = f′(z_{t,j}) W_{j,q}``: its formula differentiated."""
        if self.layer.kind != "recurrent":
            return None
        l, im, layer = self.target.layer, self.backward.model, self.layer
        t, j, q = sp.Idx("s", layer.steps), sp.Idx("j", layer.hidden), sp.Idx("k", layer.hidden)
        symbols = im.layer_symbols(l)
        z = layer.z_formula(symbols, (t, j), sp.Idx("d", self.network.sizes[l - 1]))
        h = layer.activation.at(z)
        derivative = collapse(sp.diff(h, symbols.skip[t - 1, q]))
        derivative = derivative.xreplace({z: im.zs[l][t, j]})
        named = activation_forms(layer.activation, im.zs[l][t, j], im.activations[l][t, j]).named
        weight = sp.cancel(derivative / layer.activation.derivative_at(im.zs[l][t, j]))
        shown = product([named, self._display(weight)]) if not weight.has(im.zs[l][t, j]) else derivative
        return sp.Eq(Partial(im.activations[l][t, j], im.activations[l][t - 1, q]), shown, evaluate=False)

    @cached_property
    def jacobian_product(self) -> sp.Eq | None:
        """``∂h_{T−1}/∂h_t = Π_{s=t+1}^{T−1} J_s`` with ``J_s`` the one-step Jacobian above (seed 003's product,
        whose size decides whether the error reaching early steps vanishes or explodes)."""
        if self.layer.kind != "recurrent":
            return None
        l, im, layer = self.target.layer, self.backward.model, self.layer
        t, s = sp.Idx("t", layer.steps), sp.Symbol("s", integer=True)
        last = sp.Integer(layer.steps - 1)
        state = im.activations[l]  # the states h of seed 003
        steps = sp.Product(sp.IndexedBase("J", real=True)[s], (s, t + 1, last))
        return sp.Eq(Partial(state[last], state[t]), steps, evaluate=False)

    # -- numbers ---------------------------------------------------------------------------------------

    def _arrays(self, params: Parameters, data: Dataset) -> dict[sp.IndexedBase, np.ndarray]:
        net, b, im = self.network, self.backward, self.backward.model
        compiled = compile_network(net)
        forward = compiled.forward(params, data.X)
        deltas = compiled.deltas(params, data, forward)
        n = len(data)
        arrays = {im.activations[0]: data.X.reshape(n, *self._shapes[im.activations[0]]), im.targets: data.Y}
        for l, layer in enumerate(net.layers, start=1):
            arrays[im.zs[l]] = forward.zs[l - 1].reshape(n, *layer.grid)
            arrays[im.activations[l]] = forward.activations[l].reshape(n, *layer.grid)
            arrays[b.delta[l]] = deltas[l - 1].reshape(n, *layer.grid)
            arrays[im.weights[l]] = params.weights[l - 1][None]
            arrays[im.biases[l]] = params.biases[l - 1][None]
        return arrays

    def examples(self, params: Parameters, data: Dataset) -> np.ndarray:
        """``∂C_i/∂θ`` per example: the derived gradient expression evaluated at the entry."""
        gradient, indices = self._stored_gradient()
        at = dict(zip(indices, self.target.stored_index, strict=True))
        return evaluate_indexed(gradient, at, self._arrays(params, data), len(data))

    def value(self, params: Parameters, data: Dataset) -> float:
        examples = self.examples(params, data)
        return float(examples.sum() if self.reduction == "sum" else examples.mean())

    def step_norms(self, params: Parameters, data: Dataset) -> np.ndarray | None:
        """A recurrent layer's ‖δ_t‖ per step (over the units and the examples): the vanishing gradient."""
        if self.layer.kind != "recurrent":
            return None
        delta = self._arrays(params, data)[self.backward.delta[self.target.layer]]
        return np.sqrt((delta ** 2).sum(axis=(0, 2)))

    # -- output ----------------------------------------------------------------------------------------

    def summary(self) -> list[sp.Expr]:
        """The lines every output shows, in order."""
        lines = [self.gradient_equation, self.generic_gradient, *self.delta_equations, self.passes_down]
        return lines + [e for e in (self.jacobian, self.jacobian_product) if e is not None]

    def text(self, params: Parameters | None = None, data: Dataset | None = None, *, expanded: bool = False) -> str:
        if expanded:
            raise SpecError("--expanded needs the explicit form, which a network with grid layers does not have")
        C = self.cost_name
        lines = [f"∂{C}/∂{self.target_name} by the chain rule (index form, {self.layer.describe()})",
                 f"gradient:    {text(self.gradient_equation)}", f"  at any entry: {text(self.generic_gradient)}"]
        lines += [f"delta:       {text(e)}" for e in self.delta_equations]
        lines.append(f"passed down: {text(self.passes_down)}")
        if self.jacobian is not None and self.jacobian_product is not None:
            lines.append(f"one step:    J_s = {text(self.jacobian)}")
            steps = self.jacobian_product.rhs
            (_, first, last) = steps.limits[0]
            lines.append(f"through time: {text(self.jacobian_product.lhs)} = Π_{{s={text(first)}}}^{{{last}}} J_s"
                         )
        if params is not None and data is not None:
            examples = self.examples(params, data)
            lines += [f"  example {n}: {v:.6g}" for n, v in enumerate(examples, 1)]
            lines.append(f"value:       ∂{C}/∂{self.target_name} = {self.value(params, data):.6g}")
            norms = self.step_norms(params, data)
            if norms is not None:
                lines.append("‖δ_t‖ by step: " + ", ".join(f"{v:.3g}" for v in norms))
        return "\n".join(lines)

    def to_dict(self, params: Parameters | None = None, data: Dataset | None = None) -> dict[str, Any]:
        from .latex import latex

        def both(e: sp.Expr) -> dict[str, str]:
            return {"text": text(e), "latex": latex(e)}

        result: dict[str, Any] = {
            "target": self.target_name, "cost": self.cost_name, "form": self.form, "layer": self.layer.describe(),
            "gradient": both(self.gradient_equation), "generic_gradient": both(self.generic_gradient),
            "deltas": [both(e) for e in self.delta_equations], "passes_down": both(self.passes_down),
            "examples_reduction": self.reduction,
        }
        if self.jacobian is not None and self.jacobian_product is not None:
            result["jacobian"] = both(self.jacobian)
            result["jacobian_product"] = both(self.jacobian_product)
        if params is not None and data is not None:
            result["examples"] = [float(v) for v in self.examples(params, data)]
            result["value"] = self.value(params, data)
        return result

    def to_json(self, params: Parameters | None = None, data: Dataset | None = None) -> str:
        return json.dumps(self.to_dict(params, data), indent=2, ensure_ascii=False)

    def __str__(self) -> str:
        return self.text()

    def _repr_latex_(self) -> str:
        """Jupyter: the lines of :meth:`summary`, one a line."""
        from .latex import latex

        return "$$\\begin{gathered}" + " \\\\ ".join(latex(e) for e in self.summary()) + "\\end{gathered}$$"

    def __repr__(self) -> str:
        return f"KindDerivation(∂{self.cost_name}/∂{self.target_name}, {self.layer.kind})"


def _cost_term(network: Network, backward: Backward, own: tuple[sp.Idx, ...]) -> sp.Expr:
    """One output's cost term, ``(a(L)_k − y_k)²``, the form ``2(a − y)`` is read from."""
    im = backward.model
    k = own[0]
    term = network.cost.indexed(im.activations[network.depth], im.targets, sp.Idx("d", network.sizes[-1]))
    body = term.function if isinstance(term, sp.Sum) else term
    dummy = next((i for i in body.atoms(sp.Idx)), None)
    return body.xreplace({dummy: k}) if dummy is not None else body


def derive_kind(network: Network, wrt: str) -> KindDerivation:
    """The derivation of ``∂C/∂wrt`` for a parameter entry of a network with grid layers."""
    return KindDerivation(network, resolve_target(network, wrt))


# -- evaluating a derived index expression ----------------------------------------------------------------


def evaluate_indexed(expression: sp.Expr, at: dict[sp.Idx, int], arrays: dict[sp.IndexedBase, np.ndarray],
                     n: int) -> np.ndarray:
    """``expression`` per example (shape ``(n,)``), its free indices at ``at``, its sums taken term by term.

    ``arrays[base]`` has the examples as its first axis (a parameter's has 1, broadcast); a read outside an
    array is zero (a convolution's padding, a recurrent layer's ``h_{−1}``).  Sum-free pieces are compiled
    once each (:func:`symback.compile.compiler.lambdify`); only the small reports' index ranges are walked.

    >>> i = sp.Idx("i", 3)
    >>> w = sp.IndexedBase("w")
    >>> evaluate_indexed(sp.Sum(2 * w[i + 1], i), {}, {w: np.array([[1.0, 2.0, 3.0]])}, 1)
    array([10.])
    """
    cache: dict[sp.Expr, Any] = {}

    def entry(e: sp.Expr, env: dict[sp.Expr, int]) -> np.ndarray:
        if isinstance(e, sp.KroneckerDelta):
            first, second = (int(x.xreplace(env)) for x in e.args)
            return np.full(n, float(first == second))
        array = arrays[e.base]
        index = tuple(int(i.xreplace(env)) for i in e.indices)
        if any(not 0 <= i < size for i, size in zip(index, array.shape[1:], strict=True)):
            return np.zeros(n)
        return np.broadcast_to(array[(slice(None), *index)], (n,))

    def walk(e: sp.Expr, env: dict[sp.Expr, int]) -> np.ndarray:
        if isinstance(e, sp.Sum):
            (index, low, high), *rest = e.limits
            inner = sp.Sum(e.function, *rest) if rest else e.function
            total = np.zeros(n)
            for value in range(int(low), int(high) + 1):
                total = total + walk(inner, {**env, index: sp.Integer(value)})
            return total
        if e.has(sp.Sum):
            pieces = [walk(arg, env) for arg in e.args]
            dummies = [sp.Dummy() for _ in pieces]
            key = e.func(*dummies)
            return np.asarray(lambdify(dummies, key)(*pieces), dtype=float) * np.ones(n)
        atoms = sorted(e.atoms(sp.Indexed, sp.KroneckerDelta), key=str)
        if e not in cache:
            symbols = [sp.Dummy() for _ in atoms]
            cache[e] = lambdify(symbols, e.xreplace(dict(zip(atoms, symbols, strict=True))))
        return np.asarray(cache[e](*(entry(a, env) for a in atoms)), dtype=float) * np.ones(n)

    return walk(expression, {k: sp.Integer(v) for k, v in at.items()})
