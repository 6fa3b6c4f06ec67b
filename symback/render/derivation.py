"""Chain-rule derivations: ∂C/∂(parameter or node) as an ordered product of SymPy-derived factors.

A :class:`Derivation` holds, for one target (a weight, a bias, a weighted input
``z`` or an activation ``a``):

* ``chain`` — the factors in index form, from ``C`` down to the target, e.g.
  ``∂C/∂a(L)_q · ∂a(L)_q/∂z(L)_q · ∂z(L)_q/∂a(L-1)_j · ∂a(L-1)_j/∂z(L-1)_j · ∂z(L-1)_j/∂w(L-1)_jk``,
  summed over ``q`` (every path through layer L).  Its size does not grow with layer width.
* ``paths`` — for small networks, every path written out with the network's own
  (user-named) scalar symbols; their sum is the assembled ``product``.

Every factor is ``sympy.diff`` of a local expression (the cost's term, the
activation's formula, the affine map ``z = Σ w a + b``): nothing is hard-coded,
so a user formula is derived exactly like a built-in one.

>>> from symback import Network, Parameters, Dataset, derive
>>> net = Network([1, 1, 1], "sigmoid", "squared_error")
>>> d = derive(net, "w(L)")
>>> [str(f.of) + "/" + str(f.wrt) for f in d.paths[0]]
['C/a(L)', 'a(L)/z(L)', 'z(L)/w(L)']
>>> d.paths[0][2].derivative
a(L-1)
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp

from ..budget import attempt
from ..compile.compiler import CompiledNetwork, compile_network, evaluate
from ..data import Dataset
from ..errors import SpecError
from ..symbolic.chain import PATH_LIMIT, Factor, delta_recursion, derive_backward, explicit_paths, indexed_chain  # noqa: F401
from ..symbolic.model import EXPLICIT_LIMIT, ExplicitModel, IndexedModel, explicit_model
from ..symbolic.network import Network, NodeRef
from ..symbolic.parameters import Parameters

__all__ = ["BackpropEquations", "Derivation", "Evaluation", "Factor", "activations_in_z", "backprop_equations", "derive"]

#: Expressions larger than this many operations are not passed to ``sympy.simplify``.
SIMPLIFY_LIMIT = 400

#: Most entries of a tied parameter named one by one in its derivation's text.
_TIE_SHOWN = 8



@dataclass(frozen=True)
class Evaluation:
    """Numbers of a derivation at given parameters and data.

    ``factors[p][f]`` is factor ``f`` of path ``p`` for every example (explicit form);
    ``examples`` is ``∂C_i/∂target`` per example and ``value`` their sum or mean.
    """

    factors: list[list[np.ndarray]]
    examples: np.ndarray
    value: float
    reduction: str


@dataclass(frozen=True, eq=False)
class Derivation:
    """The chain-rule derivation of ``∂C/∂target``; see the module docstring."""

    network: Network
    target: NodeRef
    chain: tuple[Factor, ...]
    sum_indices: tuple[sp.Idx, ...]
    indexed_target: sp.Expr
    paths: tuple[tuple[Factor, ...], ...] | None = None
    model: ExplicitModel | None = None

    # -- structure ------------------------------------------------------------
    @property
    def form(self) -> str:
        """``"explicit"`` when every path is written out, else ``"indexed"``."""
        return "explicit" if self.paths is not None else "indexed"

    @property
    def target_name(self) -> str:
        return self.network.name_of(self.target)

    @property
    def cost_name(self) -> str:
        return self.network.name_of(NodeRef("C"))

    @property
    def reduction(self) -> str:
        """How the examples combine: ``"sum"`` (Σ_i) or ``"mean"`` (1/n Σ_i)."""
        return self.network.cost.example_reduction

    @property
    def entries(self) -> tuple[NodeRef, ...]:
        """The entries of the target: several for a tied parameter (see :meth:`Network.tied`), else the target."""
        return self.network.tied(self.target) if self.target.is_parameter else (self.target,)

    @cached_property
    def indexed_product(self) -> sp.Expr:
        """``Σ_{paths} Π factors`` in index form; for a tied parameter, the sum of its entries' products
        (each with the entry's own indices)."""
        if len(self.entries) > 1:
            return _tied_product(self.network, self.entries)
        body = sp.Mul(*(factor.derivative for factor in self.chain))
        return sp.Sum(body, *self.sum_indices) if self.sum_indices else body

    @cached_property
    def product(self) -> sp.Expr:
        """The assembled derivative: Σ over paths of the product of factors (explicit symbols if small)."""
        if self.paths is None:
            return self.indexed_product
        return sp.Add(*(sp.Mul(*(f.derivative for f in path)) for path in self.paths))

    @cached_property
    def expression(self) -> sp.Expr:
        """The derivative of one example's cost in parameters, inputs and targets only (explicit form)."""
        if self.model is None:
            raise SpecError("the indexed form has no fully substituted expression; use .product")
        return self.model.substitute_forward(self.product)

    @property
    def simplified(self) -> sp.Expr:
        """A simplified form of :attr:`product`; the product itself when over budget (see :attr:`simplify_note`)."""
        return self._simplification[0]

    @property
    def simplify_note(self) -> str | None:
        """Why :attr:`simplified` is the product as it is (too large, or over the time budget), else None."""
        return self._simplification[1]

    @cached_property
    def _simplification(self) -> tuple[sp.Expr, str | None]:
        expression = self.product
        if self.paths is None:
            return expression, None
        # Budgeted (symback.budget): (z+1)^50·(z−1)^50 has few operations but simplifies for hours.
        result = attempt(lambda e: sp.factor_terms(sp.simplify(e)), expression, max_weight=SIMPLIFY_LIMIT)
        if result.value is None:
            return expression, f"not simplified: {result.note}"
        return result.value, None

    def over_examples(self, n_examples: int) -> sp.Expr:
        """The total over ``n_examples`` examples: ``Σ_i`` (or ``1/n Σ_i``) of the product.

        In the explicit form every per-example quantity (x, y, z, a) carries the example index
        ``i`` and parameters do not; the index form's generic neuron already stands for any
        example, so its product is summed as it is.

        Seed 002: ``dSSR/db3 = Σ_{i=1}^{3} (−2 observed_i + 2 predicted_i)``.
        """
        i = sp.Symbol("i", integer=True, positive=True)
        if self.model is not None:
            per_example = {
                symbol: sp.IndexedBase(symbol.name, real=True)[i]
                for symbol, ref in self.model.refs.items()
                if ref.kind in ("x", "y", "z", "a")
            }
            body = self.product.xreplace(per_example)
        else:
            body = self.indexed_product
        total = sp.Sum(body, (i, 1, n_examples))
        return total / n_examples if self.reduction == "mean" else total

    # -- numbers --------------------------------------------------------------
    def evaluate(self, params: Parameters, data: Dataset) -> Evaluation:
        """Every factor, every example's derivative and the total at ``params`` and ``data``."""
        data.check(self.network.sizes[0], self.network.sizes[-1])
        compiled = compile_network(self.network)
        forward = compiled.forward(params, data.X)
        if self.paths is not None:
            environment = self._environment(params, data, forward)
            in_z = activations_in_z(self.model)
            factors = [[evaluate(f.derivative.xreplace(in_z), environment, len(data)) for f in path] for path in self.paths]
            examples = evaluate(self.product.xreplace(in_z), environment, len(data))
        else:
            factors = []
            examples = self._indexed_examples(compiled, params, data, forward)
        value = float(examples.sum() if self.reduction == "sum" else examples.mean())
        return Evaluation(factors, examples, value, self.reduction)

    def value(self, params: Parameters, data: Dataset) -> float:
        """``∂C/∂target`` at ``params`` and ``data``, summed or averaged over the examples."""
        return self.evaluate(params, data).value

    def _environment(self, params: Parameters, data: Dataset, forward: Any) -> dict[sp.Symbol, Any]:
        assert self.model is not None
        values: dict[sp.Symbol, Any] = {}
        for ref, symbol in self.model.symbols.items():
            if ref.kind in ("w", "b"):
                values[symbol] = params.get(ref)
            elif ref.kind == "x":
                values[symbol] = data.X[:, ref.j]
            elif ref.kind == "y":
                values[symbol] = data.Y[:, ref.j]
            elif ref.kind == "z":
                values[symbol] = forward.zs[ref.layer - 1][:, ref.j]
            elif ref.kind == "a":
                values[symbol] = forward.activations[ref.layer][:, ref.j]
        return values

    def _indexed_examples(self, compiled: CompiledNetwork, params: Parameters, data: Dataset, forward: Any) -> np.ndarray:
        # A tied parameter's derivative is the sum of its entries' partials (one backward pass for all).
        deltas = self._deltas(compiled, params, data, forward)
        return sum(self._entry_examples(params, data, forward, deltas, t) for t in self.entries)

    def entry_partials(self, params: Parameters, data: Dataset) -> list[tuple[str, float]]:
        """Each entry's own partial ``∂C/∂entry`` (canonical name, value), summed or averaged over the
        examples; for a tied parameter their sum is its derivative, :meth:`value`."""
        compiled = compile_network(self.network)
        forward = compiled.forward(params, data.X)
        deltas = self._deltas(compiled, params, data, forward)
        reduce = np.sum if self.reduction == "sum" else np.mean
        return [
            (self.network.canonical_name(t), float(reduce(self._entry_examples(params, data, forward, deltas, t))))
            for t in self.entries
        ]

    def _deltas(self, compiled: CompiledNetwork, params: Parameters, data: Dataset, forward: Any) -> Any:
        """δ of every layer, or ∂C/∂a(L) alone when the target is an output activation."""
        if self.target.kind == "a" and self.target.layer == self.network.depth:
            return compiled.output_gradient(forward, data.Y)
        return compiled.deltas(params, data, forward)

    def _entry_examples(self, params: Parameters, data: Dataset, forward: Any, deltas: Any, t: NodeRef) -> np.ndarray:
        if t.kind == "a" and t.layer == self.network.depth:
            return deltas[:, t.j]
        if t.kind == "a":
            return (deltas[t.layer] @ params.weights[t.layer])[:, t.j]
        delta = deltas[t.layer - 1][:, t.j]
        if t.kind == "w":
            return delta * forward.activations[t.layer - 1][:, t.k]
        return delta

    # -- output ---------------------------------------------------------------
    @cached_property
    def presentation(self) -> Any:
        """How every output shows this derivation (:class:`symback.render.notation.Presentation`): each factor's
        named form (2(a − y), σ′(z)), the product in chain order, the δ form and derived cancellations."""
        from .notation import present

        return present(self)

    def chain_notation(self, *, indexed: bool | None = None) -> str:
        """``∂C/∂a(L) · ∂a(L)/∂z(L) · ∂z(L)/∂w(L)`` (with ``Σ_q`` in front in index form)."""
        use_index = self.paths is None if indexed is None else indexed
        if not use_index and self.paths is not None and len(self.paths) == 1:
            return " · ".join(f.notation for f in self.paths[0])
        sums = "".join(f"Σ_{idx.label} " for idx in self.sum_indices)
        return sums + " · ".join(f.notation for f in self.chain)

    def to_dict(self, params: Parameters | None = None, data: Dataset | None = None) -> dict[str, Any]:
        """A JSON-ready description: factors (text and LaTeX in their shown forms, SymPy's own under
        ``sympy``), the product in chain order, the δ form, and the value."""
        from .latex import latex
        from .notation import text

        result: dict[str, Any] = {
            "target": self.target_name,
            "cost": self.cost_name,
            "form": self.form,
            "network": "-".join(map(str, self.network.sizes)),
            "chain": {
                "notation": self.chain_notation(indexed=True),
                "sum_over": [str(idx.label) for idx in self.sum_indices],
                "factors": [_factor_dict(f, self) for f in self.chain],
            },
            "examples_reduction": self.reduction,
        }
        if len(self.entries) > 1:  # one shared parameter: its derivative is the sum of its entries' partials
            result["tied"] = {"entries": [self.network.canonical_name(t) for t in self.entries]}
        if self.paths is not None:
            result["paths"] = [[_factor_dict(f, self) for f in path] for path in self.paths]
        # The ordered factors: the single path's in the user's names, else the index form's (Σ over paths).
        one_path = self.paths is not None and len(self.paths) == 1
        result["factors"] = result["paths"][0] if one_path else result["chain"]["factors"]
        shown = self.presentation
        result["product"] = {"text": text(shown.chain_order), "latex": latex(shown.chain_order),
                             "sympy": str(self.product)}
        if shown.delta_form is not None:
            result["delta_form"] = {"text": text(shown.delta_form), "latex": latex(shown.delta_form)}
            result["deltas"] = [{"text": text(e), "latex": latex(e)} for e in shown.deltas]
        result["cancellations"] = [
            {"text": " = ".join(text(s) for s in (c.delta, *c.steps)),
             "latex": " = ".join(latex(s) for s in (c.delta, *c.steps)), "condition": c.condition}
            for c in shown.cancellations
        ]
        result["simplified"] = {"text": text(self.simplified), "latex": latex(self.simplified)}
        if self.simplify_note is not None:
            result["simplified"]["note"] = self.simplify_note
        if params is not None and data is not None:
            evaluation = self.evaluate(params, data)
            result["value"] = evaluation.value
            if len(self.entries) > 1:
                result["tied"]["partials"] = [value for _, value in self.entry_partials(params, data)]
            result["examples"] = [float(v) for v in evaluation.examples]
            if evaluation.factors:
                result["factor_values"] = [[[float(x) for x in values] for values in path] for path in evaluation.factors]
        return result

    def to_json(self, params: Parameters | None = None, data: Dataset | None = None) -> str:
        return json.dumps(self.to_dict(params, data), indent=2, ensure_ascii=False)

    def text(self, params: Parameters | None = None, data: Dataset | None = None, *, expanded: bool = False) -> str:
        """The derivation as readable text in the reports' forms and names, with numbers when ``params``
        and ``data`` are given: each factor as named (σ′(z(L)) = a(L)·(1 − a(L))), the product in chain
        order, the δ form; ``expanded`` adds the derivative written out in the inputs, a factor a line.
        """
        from .notation import ChainProduct, Partial, examples_form, expanded_form, text

        shown = self.presentation
        C, target = self.cost_name, self.target_name
        lines = [f"∂{C}/∂{target}  ({self.form} form, network {'-'.join(map(str, self.network.sizes))})", ""]
        lines += self._tie_lines(params, data)

        def partial(f: Factor) -> str:
            return text(Partial(f.of, f.wrt))

        def factor_lines(factors: tuple[Factor, ...]) -> list[str]:
            width = max(len(partial(f)) for f in factors)
            return [f"    {partial(f):<{width}} = " + " = ".join(text(form) for form in shown.factor(f).line)
                    for f in factors]

        def chain(path: tuple[Factor, ...]) -> str:
            return text(ChainProduct(*(Partial(f.of, f.wrt) for f in path)))

        if self.paths is None:
            lines.append("chain rule, index form:")
            sums = "".join(f"Σ_{idx.label} " for idx in self.sum_indices)
            lines.append(f"  {text(Partial(sp.Symbol(C), self.indexed_target))} = {sums}{chain(self.chain)}")
            lines += factor_lines(self.chain)
        else:
            many = len(self.paths) > 1
            lines.append(f"chain rule, {len(self.paths)} path{'s' if many else ''} through the network:")
            for number, path in enumerate(self.paths, 1):
                lines.append((f"  path {number}: " if many else "  ") + chain(path))
            seen: list[Factor] = []
            for path in self.paths:
                seen += [f for f in path if all((f.of, f.wrt) != (g.of, g.wrt) for g in seen)]
            lines += factor_lines(tuple(seen))
        lines += ["", f"assembled:   {text(shown.lhs)} = {text(shown.chain_order)}"]
        if shown.delta_form is not None:
            lines.append(f"δ form:      {text(shown.lhs)} = {text(shown.delta_form)}")
            # An output δ that cancels in its final form (as the reports and Jupyter list it), its steps below.
            cancelled = {c.delta: c.steps[-1] for c in shown.cancellations}
            lines += [f"  with {text(sp.Eq(e.lhs, cancelled.get(e.lhs, e.rhs), evaluate=False))}" for e in shown.deltas]
        for cancellation in shown.cancellations:
            steps = " = ".join(text(s) for s in (cancellation.delta, *cancellation.steps))
            lines.append(f"  since {steps}" + (f"  (when {cancellation.condition})" if cancellation.condition else ""))
        if self.simplify_note is not None:
            lines.append(f"simplified:  ({self.simplify_note})")
        if expanded:
            pieces = expanded_form(self).lines(lambda e: True)
            lines.append(f"in the inputs: {text(shown.lhs)}")
            lines += [f"  {join} {text(piece)}" for join, piece in pieces]
        if params is not None and data is not None:
            evaluation = self.evaluate(params, data)
            over = "Σ_i" if self.reduction == "sum" else "(1/n) Σ_i"
            lines.append("")
            lines.append(f"over the {len(data)} example{'s' if len(data) != 1 else ''}: ∂{C}/∂{target} = {over} ∂{C}_i/∂{target}")
            seed_form = examples_form(self, len(data))
            if seed_form is not None:
                lines.append(f"  = {text(seed_form.summed)}")
                if seed_form.residuals is not None:
                    lines.append(f"  = {text(seed_form.residuals)},  {text(seed_form.definition)}")
            for number, value in enumerate(evaluation.examples, 1):
                lines.append(f"  example {number}: {value:.6g}")  # plain digits: pasted into Python as they are
            lines.append(f"value:       ∂{C}/∂{target} = {evaluation.value:.6g}")
        return "\n".join(lines)

    def tie_summary(self, params: Parameters | None = None, data: Dataset | None = None) -> str:
        """For a tied parameter, one sentence: its derivative is the sum of its entries' partials (with
        their values when ``params`` and ``data`` are given); ``""`` for anything else."""
        if len(self.entries) < 2:
            return ""
        C, target = self.cost_name, self.target_name
        names = [self.network.canonical_name(t) for t in self.entries]
        many = len(names) > _TIE_SHOWN  # a long tie is shown by its ends and its count
        listed = self.network.entries_text(self.network.name_of(self.target), _TIE_SHOWN)
        text = f"{target} is one parameter shared by {listed}; its derivative is the sum of their partials: "
        text += (f"∂{C}/∂{target} = Σ over the {len(names)} entries of ∂{C}/∂entry" if many
                 else f"∂{C}/∂{target} = " + " + ".join(f"∂{C}/∂{name}" for name in names))
        if params is not None and data is not None:
            partials = [value for _, value in self.entry_partials(params, data)]
            shown = [f"{value:.6g}" for value in partials]
            terms = " + ".join(shown if not many else [*shown[:3], "…", shown[-1]])
            text += " = " + terms.replace(" + -", " − ")  # 0.138499 − 0.0380982, not 0.138499 + -0.0380982
            text += f" = {sum(partials):.6g}"
        return text

    def _tie_lines(self, params: Parameters | None, data: Dataset | None) -> list[str]:
        summary = self.tie_summary(params, data)
        if not summary:
            return []
        lines = [f"tied: {summary}"]
        if self.paths is not None:
            lines.append(f"  (each path below ends at the z of one of these entries, where {self.target_name} enters)")
        return [*lines, ""]

    def __str__(self) -> str:
        return self.text()

    # Jupyter display: the printers of symback.render.latex, imported when a notebook asks (the reports' Jinja2
    # renderer is never needed, and derivation stays below the report stage).
    def _repr_latex_(self) -> str:
        """``$$ ∂C/∂target = the product in chain order, the δ form, each δ $$`` (one line each, the lines of
        :meth:`symback.render.notation.Presentation.summary`, which ``symback derive`` prints too)."""
        from .latex import latex

        lines = self.presentation.summary()
        if len(lines) == 1:
            return "$$" + latex(lines[0]) + "$$"
        return "$$\\begin{gathered}" + " \\\\ ".join(latex(e) for e in lines) + "\\end{gathered}$$"

    def _repr_html_(self) -> str:
        """A small HTML fragment (MathML) of the same lines as :meth:`_repr_latex_`."""
        from .latex import mathml

        parts = [mathml(e, display=True) for e in self.presentation.summary()]
        return "<div class=\"symback\">" + "".join(parts) + "</div>"

    def __repr__(self) -> str:
        return f"Derivation(∂{self.cost_name}/∂{self.target_name}, {self.form}, {len(self.chain)} factors)"


def activations_in_z(model: ExplicitModel) -> dict[sp.Symbol, sp.Expr]:
    """``a(l)_j → σ(z(l)_j)`` for every neuron of an elementwise layer, to substitute before evaluating.

    A derived expression evaluated with the number ``a`` is only as good as ``a``'s rounding: at a
    saturated sigmoid output ``a`` rounds to 1 and binary cross-entropy's ``(1 − y)/(1 − a)`` becomes
    inf.  Written in ``z``, :func:`~symback.compile.compiler.stabilize` (which :func:`~symback.compile.compiler.evaluate`
    applies) turns ``1 − σ(z)`` into σ(−z) and cancels the quotient against σ' = σ(z)σ(−z).

    >>> from symback import Network
    >>> model = explicit_model(Network([1, 1], "sigmoid", "binary_cross_entropy"))
    >>> activations_in_z(model)
    {a(L): 1/(1 + exp(-z(L)))}
    """
    network = model.network
    return {
        symbol: model.local_expression(ref)
        for ref, symbol in model.symbols.items()
        if ref.kind == "a" and network.activation(ref.layer).elementwise
    }


def _factor_dict(factor: Factor, derivation: Derivation) -> dict[str, Any]:
    from .latex import latex
    from .notation import text

    shown = derivation.presentation.factor(factor)
    return {
        "of": str(factor.of),
        "wrt": str(factor.wrt),
        "notation": factor.notation,
        "text": " = ".join(text(form) for form in shown.line),
        "latex": " = ".join(latex(form) for form in shown.line),
        "sympy": str(factor.derivative),
    }


# -- building derivations -------------------------------------------------------------------------


def derive(network: Network, wrt: str | NodeRef, *, form: str = "auto") -> Derivation:
    """Derive ``∂C/∂wrt`` by the chain rule.

    Arguments:
        network: the network.
        wrt: a weight, bias, ``z`` or ``a`` by name (the user's or canonical) or :class:`NodeRef`.
        form: ``"explicit"`` (every path written out in scalar symbols), ``"indexed"``
            (one generic neuron per layer) or ``"auto"`` (explicit when small).

    >>> from symback import Network
    >>> d = derive(Network([625, 20, 20, 10], "sigmoid", "squared_error"), "w(1)_3_7")
    >>> d.form, d.chain_notation()
    ('indexed', 'Σ_r Σ_q ∂C/∂a(L)[r] · ∂a(L)[r]/∂z(L)[r] · ∂z(L)[r]/∂a(L-1)[q] · ∂a(L-1)[q]/∂z(L-1)[q] · ∂z(L-1)[q]/∂a(L-2)[j] · ∂a(L-2)[j]/∂z(L-2)[j] · ∂z(L-2)[j]/∂w(L-2)[j, k]')
    """
    if form not in ("auto", "explicit", "indexed"):
        raise SpecError(f"form must be 'auto', 'explicit' or 'indexed', not {form!r}")
    _check_derivable_kinds(network)
    from .kinds import derive_kind, is_grid_network

    if is_grid_network(network):  # a convolution's or recurrent layer's grid: names and index forms of their own
        if form == "explicit":
            raise SpecError("a network with conv1d, conv2d or recurrent layers is derived in the index form only")
        return derive_kind(network, wrt)  # type: ignore[return-value, arg-type]
    target = network.resolve(wrt)
    if target.is_parameter:  # an entry of a tied parameter stands for the parameter, its first entry
        target = network.tied(target)[0]
    if target.kind not in ("w", "b", "z", "a"):
        raise SpecError(
            f"derivatives are taken with respect to weights, biases, z and a; {network.name_of(target)!r} is not one"
        )
    small = _explicit_is_small(network, target)
    try:
        chain, sums, indexed_target = _indexed_chain(IndexedModel(network), target)
    except SpecError:  # below a skip edge: no single chain, only the explicit paths
        if form == "indexed" or not small:
            raise
        chain, sums, indexed_target = (), (), IndexedModel(network).activations[0]
        form = "explicit"
    if form == "indexed" or (form == "auto" and not small):
        return Derivation(network, target, chain, sums, indexed_target)
    model = explicit_model(network)
    paths = _explicit_paths(model, target)
    return Derivation(network, target, chain, sums, indexed_target, paths, model)


def _check_derivable_kinds(network: Network) -> None:
    """Every layer kind's single-parameter derivation is built (dense and residual here, grid kinds in
    :mod:`symback.render.kinds`); a kind registered later without one is refused in one line.

    >>> from symback import Network
    >>> _check_derivable_kinds(Network([2, 2, 1], "sigmoid", "squared_error")) is None
    True
    """
    from .kinds import GRID_KINDS

    for number, layer in enumerate(network.layers, start=1):
        if layer.kind not in ("dense", "residual", *GRID_KINDS):
            raise SpecError(
                f"single-parameter derive/report is not supported yet for a {layer.kind} layer "
                f"(layer {network.layer_label(number)}) — train, check and info work for every kind"
            )


def _tied_product(network: Network, entries: tuple[NodeRef, ...]) -> sp.Expr:
    """The index-form derivative of a tied parameter: the sum of its entries' products, each at its own
    indices.  Entries of one kind and layer share one chain (derived once); a layer's whole set of
    biases is summed over ``j`` rather than written out entry by entry."""
    im = IndexedModel(network)
    terms = []
    for (kind, layer), group in itertools.groupby(entries, key=lambda ref: (ref.kind, ref.layer)):
        group = list(group)
        chain, sums, indexed = _indexed_chain(im, group[0])
        body = sp.Mul(*(factor.derivative for factor in chain))
        product = sp.Sum(body, *sums) if sums else body
        own = indexed.indices if isinstance(indexed, sp.Indexed) else ()
        if kind == "b" and len(group) == network.sizes[layer] > 1:
            terms.append(sp.Sum(product, (own[0], 0, network.sizes[layer] - 1)))
            continue
        for entry in group:
            fixed = dict(zip(own, (entry.j, entry.k), strict=False))
            terms.append(product.xreplace({index: sp.Integer(value) for index, value in fixed.items()}))
    return sp.Add(*terms)


def _explicit_is_small(network: Network, target: NodeRef) -> bool:
    if network.n_parameters > EXPLICIT_LIMIT:
        return False
    paths = 0
    for entry in network.tied(target) if target.is_parameter else (target,):  # a tied parameter: every entry's
        count = 1
        for layer in range(entry.layer + 1, network.depth + 1):
            count *= network.sizes[layer]
        if not network.activations[-1].elementwise:
            count *= network.sizes[-1]
        paths += count
    return paths <= 64


def _explicit_paths(model: ExplicitModel, target: NodeRef) -> tuple[tuple[Factor, ...], ...]:
    """Every path from ``C`` down to ``target``: the chain engine's explicit walk (:func:`symback.symbolic.chain.explicit_paths`)."""
    return explicit_paths(model, target)


def _indexed_chain(im: IndexedModel, target: NodeRef) -> tuple[tuple[Factor, ...], tuple[sp.Idx, ...], sp.Expr]:
    """The index-form chain down to ``target``: the chain engine's walk (:func:`symback.symbolic.chain.indexed_chain`)."""
    return indexed_chain(im, target)


# -- the δ recursion (Nielsen's BP1–BP4) -----------------------------------------------------------


@dataclass(frozen=True)
class BackpropEquations:
    """The per-layer δ recursion, each equation assembled from derived chain-rule factors.

    ``output`` is BP1 (δ(L)_j), ``hidden[l]`` is BP2 (δ(l)_k from δ(l+1)), ``bias[l]``
    is BP3 and ``weight[l]`` BP4, all as ``sympy.Eq`` in index form; ``matrix`` holds
    the same equations in matrix form (Hadamard product ⊙, transposes).
    """

    output: sp.Eq
    hidden: dict[int, sp.Eq]
    bias: dict[int, sp.Eq]
    weight: dict[int, sp.Eq]
    matrix: dict[str, sp.Eq]
    deltas: dict[int, sp.IndexedBase]


def backprop_equations(network: Network) -> BackpropEquations:
    """Derive δ(L) and δ(l) = (W(l+1)ᵀ δ(l+1)) ⊙ σ'(z(l)) from the activations' and cost's formulas.

    >>> from symback import Network
    >>> eqs = backprop_equations(Network([2, 3, 1], "sigmoid", "squared_error"))
    >>> eqs.output
    Eq(delta(L)[j], (2*a(L)[j] - 2*y[j])*exp(-z(L)[j])/(1 + exp(-z(L)[j]))**2)
    """
    im = IndexedModel(network)
    L = network.depth
    label = network.layer_label
    deltas = {l: sp.IndexedBase(f"delta({label(l)})", real=True) for l in range(1, L + 1)}
    # The chain for z(L)_j is exactly δ(L)_j = ∂C/∂z(L)_j (BP1); its own index is j.
    chain, sums, z_L = _indexed_chain(im, NodeRef("z", L, 0))
    body = sp.Mul(*(f.derivative for f in chain))
    output = sp.Eq(deltas[L][z_L.indices[0]], sp.Sum(body, *sums) if sums else body)

    # BP2–BP4 as the chain engine derives them from the layers' formulas (a skip edge's highway term
    # included): δ(l)_k = σ'(z(l)_k)·Σ_j w(l+1)_jk δ(l+1)_j, ∂C/∂b(l)_j = δ(l)_j, ∂C/∂w(l)_jk = δ(l)_j a(l-1)_k.
    backward = derive_backward(network)
    hidden, bias, weight = {}, {}, {}
    for layer in range(L, 0, -1):
        bias[layer] = sp.Eq(sp.Symbol(f"dC/db({label(layer)})[j]"), backward.gradients[layer]["b"])
        weight[layer] = sp.Eq(sp.Symbol(f"dC/dw({label(layer)})[j, k]"), backward.gradients[layer]["w"])
        if layer < L:
            hidden[layer] = sp.Eq(deltas[layer][backward.own_index[layer]], delta_recursion(backward, layer))
    matrix = _matrix_forms(network)
    return BackpropEquations(output, hidden, bias, weight, matrix, deltas)


def _matrix_forms(network: Network) -> dict[str, sp.Eq]:
    """BP1–BP4 in matrix form for the last two layers (the pattern repeats for every layer)."""
    L = network.depth
    label = network.layer_label
    sizes = network.sizes
    forms: dict[str, sp.Eq] = {}
    delta_L = sp.MatrixSymbol(f"delta({label(L)})", sizes[L], 1)
    grad_a = sp.MatrixSymbol("nabla_a C", sizes[L], 1)
    from .notation import prime_name  # each layer's derivative named by its own function (ReLU′, not σ′)

    sigma_L = sp.MatrixSymbol(f"{prime_name(network.activations[-1])}'(z({label(L)}))", sizes[L], 1)
    if network.activations[-1].elementwise:
        forms["BP1"] = sp.Eq(delta_L, sp.HadamardProduct(grad_a, sigma_L))
    else:
        jac = sp.MatrixSymbol(f"J_a(z({label(L)}))", sizes[L], sizes[L])
        forms["BP1"] = sp.Eq(delta_L, jac.T * grad_a)
    if L > 1:
        W = sp.MatrixSymbol(f"W({label(L)})", sizes[L], sizes[L - 1])
        delta_prev = sp.MatrixSymbol(f"delta({label(L - 1)})", sizes[L - 1], 1)
        sigma_prev = sp.MatrixSymbol(f"{prime_name(network.activations[-2])}'(z({label(L - 1)}))", sizes[L - 1], 1)
        forms["BP2"] = sp.Eq(delta_prev, sp.HadamardProduct(W.T * delta_L, sigma_prev))
    a_prev = sp.MatrixSymbol(f"a({label(L - 1)})" if L > 1 else "x", sizes[L - 1], 1)
    forms["BP3"] = sp.Eq(sp.MatrixSymbol(f"nabla_b({label(L)}) C", sizes[L], 1), delta_L)
    forms["BP4"] = sp.Eq(sp.MatrixSymbol(f"nabla_W({label(L)}) C", sizes[L], sizes[L - 1]), delta_L * a_prev.T)
    return forms
