"""Printing symback's symbols in seed 001's notation: LaTeX (and MathML for HTML reports).

The symbolic model names its symbols in plain text (``w(L)_0_1``, ``a(L-1)``,
``delta(L)``, the user's ``w1`` or ``predicted``).  :class:`SymbackLatexPrinter`
turns each *name* into notation — ``w^{(L)}_{01}``, ``a^{(L-1)}``,
``\\delta^{(L)}``, ``w_{1}``, ``\\mathrm{predicted}`` — and prints index sums as
``\\sum_{j}``.  The expression structure is printed by SymPy's own printer
(one ``_print_<Node>`` method per kind of node); only names are parsed, never
``str(expr)``.  Anything that is not a simple identifier is escaped, so a name
cannot inject LaTeX (or, in :class:`SymbackMathMLPrinter`, HTML).

>>> import sympy as sp
>>> latex(sp.Symbol("w(L)_0_1") * sp.Symbol("a(L-1)_1"))
'a^{(L-1)}_{1} w^{(L)}_{01}'
>>> latex(sp.Symbol("b3") + sp.Symbol("predicted"))
'b_{3} + \\\\mathrm{predicted}'
>>> latex(sp.Symbol("w_{evil}\\\\input{x}"))
'\\\\text{w\\\\_\\\\{evil\\\\}\\\\textbackslash{}input\\\\{x\\\\}}'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from xml.dom.minidom import Document, Element

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.mathml import MathMLPresentationPrinter
from sympy.printing.precedence import PRECEDENCE

# The notation's nodes print themselves (printmethod); re-exported here for older imports.
from ..grammar.names import parse as parse_node_name
from .notation import ChainProduct, Difference, Partial

__all__ = [
    "ChainProduct",
    "Difference",
    "EqualityChain",
    "Partial",
    "SymbackLatexPrinter",
    "SymbackMathMLPrinter",
    "TermSum",
    "escape_latex",
    "latex",
    "mathml",
    "name_latex",
]

# -- report-only nodes: kept unevaluated, printed in a fixed order --------------------------------


class EqualityChain(sp.Expr):
    """``e1 = e2 = e3``: successive forms of one quantity."""


class TermSum(sp.Expr):
    """``t1 + t2 + t3`` in the given order, negative numbers in parentheses (a worked example's sum)."""


# -- names -------------------------------------------------------------------------------------------

_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu",
    "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega",
    "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega",
}
# A generic layer l, l+1, l−1 (the network report's matrix pattern for every layer): display names only,
# outside the grammar of a network's nodes (symback.grammar.names), which has L, L-1 and absolute numbers.
_GENERIC_LAYER = re.compile(r"^(?P<base>[A-Za-z]+)\((?P<layer>l(?:[-+]1)?)\)\Z")
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9]*\Z")
_WORD_DIGITS = re.compile(r"^(?P<word>[A-Za-z]+)(?P<digits>\d+)\Z")
_PARTIAL = re.compile(r"^d(?P<of>[A-Za-z][A-Za-z0-9]*)/d(?P<wrt>[^\[\]/]+)(?:\[(?P<idx>[A-Za-z](?:, ?[A-Za-z])*)\])?\Z")
_NABLA = re.compile(r"^nabla_(?P<sub>\S+) (?P<of>\S+)\Z")
_APPLY = re.compile(r"^(?P<f>[A-Za-z]+(?:_[A-Za-z]+)?)(?P<prime>'?)\((?P<arg>.+)\)\Z")


@dataclass(frozen=True)
class _Name:
    """A parsed name: ``kind`` is ident, text, script, partial, nabla or apply; ``parts`` its pieces."""

    kind: str
    parts: tuple[Any, ...]


def parse_name(name: str, *, depth: int = 0) -> _Name:
    """Split a symbol name into notation pieces (never fails: unknown names become escaped text)."""
    if depth > 4 or not name:
        return _Name("text", (name,))
    node = parse_node_name(name)  # w(L)_j_k, a(L-1), delta(L)_0: the one name grammar (symback.grammar.names)
    if node is not None and node.layer is not None:
        indices = tuple(str(i) for i in node.indices)
        return _Name("script", (_Name("ident", (node.base,)), str(node.layer), indices))
    generic = _GENERIC_LAYER.match(name)
    if generic:
        return _Name("script", (_Name("ident", (generic["base"],)), generic["layer"], ()))
    if _IDENT.match(name):
        word = _WORD_DIGITS.match(name)
        if word and word["word"] not in _GREEK:
            return _Name("script", (_Name("ident", (word["word"],)), None, (word["digits"],)))
        return _Name("ident", (name,))
    head, _, tail = name.partition("_")
    if tail and _IDENT.match(head) and re.match(r"^[A-Za-z0-9_]+\Z", tail):
        index = tail if tail.isdigit() else parse_name(tail, depth=depth + 1)
        return _Name("script", (parse_name(head, depth=depth + 1), None, (index,)))
    match = _PARTIAL.match(name)
    if match:
        wrt = parse_name(match["wrt"], depth=depth + 1)
        if match["idx"]:
            wrt = _Name("indexed", (wrt, tuple(i.strip() for i in match["idx"].split(","))))
        return _Name("partial", (parse_name(match["of"], depth=depth + 1), wrt))
    match = _NABLA.match(name)
    if match:
        return _Name("nabla", (parse_name(match["sub"], depth=depth + 1), parse_name(match["of"], depth=depth + 1)))
    match = _APPLY.match(name)
    if match and match["f"] not in ("w", "b", "z", "a"):
        return _Name("apply", (parse_name(match["f"], depth=depth + 1), bool(match["prime"]),
                               parse_name(match["arg"], depth=depth + 1)))
    return _Name("text", (name,))


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': r"\textquotedbl{}",
}


def escape_latex(text: str) -> str:
    """Escape text for LaTeX text mode (``\\``, braces, ``$ & # ^ _ % ~ < > |``); drops control characters.

    >>> escape_latex("a_b & {c}")
    'a\\\\_b \\\\& \\\\{c\\\\}'
    """
    cleaned = "".join(ch for ch in str(text) if ch in "\t" or ch >= " ")
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in cleaned)


def _ident_latex(word: str) -> str:
    if word in _GREEK:
        return "\\" + word
    if len(word) == 1:
        return word
    return r"\mathrm{%s}" % word


def _indices_latex(indices: tuple[Any, ...]) -> str:
    texts = [i if isinstance(i, str) else _name_latex(i) for i in indices]
    # Seed 001 writes w_{jk}; a comma is needed once an index has two digits, or past two indices (a
    # convolution's kernel entry w_{f,c,m,n}: w_{1010} would not say which digit is which axis).
    many_digits = any(isinstance(i, str) and len(i) > 1 for i in indices) or len(indices) > 2
    return ("," if many_digits else "").join(texts)


def _name_latex(name: _Name) -> str:
    kind, parts = name.kind, name.parts
    if kind == "ident":
        return _ident_latex(parts[0])
    if kind == "text":
        return r"\text{%s}" % escape_latex(parts[0])
    if kind == "script":
        base, layer, indices = parts
        out = _name_latex(base)
        if layer is not None:
            out += "^{(%s)}" % layer
        if indices:
            out += "_{%s}" % _indices_latex(indices)
        return out
    if kind == "indexed":
        return _name_latex(parts[0]) + "_{%s}" % "".join(parts[1])
    if kind == "partial":
        return r"\frac{\partial %s}{\partial %s}" % (_name_latex(parts[0]), _name_latex(parts[1]))
    if kind == "nabla":
        return r"\nabla_{%s} %s" % (_name_latex(parts[0]), _name_latex(parts[1]))
    if kind == "apply":
        f, prime, arg = parts
        return r"%s%s\left(%s\right)" % (_name_latex(f), "'" if prime else "", _name_latex(arg))
    raise AssertionError(kind)  # pragma: no cover - parse_name makes only the kinds above


def name_latex(name: str) -> str:
    """LaTeX for one symbol name.

    >>> name_latex("w(L)_0_12"), name_latex("delta(L-1)"), name_latex("x_0")
    ('w^{(L)}_{0,12}', '\\\\delta^{(L-1)}', 'x_{0}')
    """
    return _name_latex(parse_name(name))


class SymbackLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with symback's names, index sums and report nodes.

    Settings are SymPy's (``mul_symbol``, ``fold_short_frac``, …); unknown ones raise.
    """

    printmethod = "_symback_latex"

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        return name_latex(expr.name)

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        return name_latex(str(expr.name))

    def _print_Dummy(self, expr: sp.Dummy) -> str:
        return name_latex(expr.name)

    def _print_IndexedBase(self, expr: sp.IndexedBase) -> str:
        return self._print(expr.label)

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        base = parse_name(str(expr.base.label))
        indices = tuple(self._print(i) for i in expr.indices)
        if base.kind == "ident":
            base = _Name("script", (base, None, ()))
        if base.kind == "script":
            inner, layer, own = base.parts
            return _name_latex(_Name("script", (inner, layer, tuple(own) + indices)))
        return "{%s}_{%s}" % (_name_latex(base), "".join(indices))

    def _print_Idx(self, expr: sp.Idx) -> str:
        return self._print(expr.label)

    def _print_Pow(self, expr: sp.Pow, **kwargs: Any) -> str:
        # a^{(L)}_{j} squared: a second superscript is a TeX error, so the scripted name goes in
        # parentheses, as SymPy already does for a scripted Symbol.
        base, power = expr.as_base_exp()
        if isinstance(base, sp.Indexed) and power.is_Number and power.is_positive and "^" in self._print(base):
            return r"\left(%s\right)^{%s}" % (self._print(base), self._print(power))
        return super()._print_Pow(expr, **kwargs)

    def _print_Sum(self, expr: sp.Sum) -> str:
        if all(isinstance(limit[0], sp.Idx) for limit in expr.limits):
            indices = "".join(r"\sum_{%s} " % self._print(limit[0]) for limit in expr.limits)
            function = self._print(expr.function)
            if isinstance(expr.function, sp.Add):
                function = r"\left(%s\right)" % function
            return indices + function
        return super()._print_Sum(expr)

    def _print_Derivative(self, expr: sp.Derivative) -> str:
        # A flat sum is differentiated inside plain parentheses: \left( \right) would make it one
        # unbreakable box, and a step line of a wide layer then runs off the page.
        from sympy.printing.conventions import requires_partial

        body = expr.expr
        flat = isinstance(body, sp.Add) and not body.has(sp.Sum) and not any(
            p.exp.is_negative for p in body.atoms(sp.Pow))
        if not flat or len(expr.variable_count) != 1 or expr.variable_count[0][1] != 1:
            return super()._print_Derivative(expr)
        d = r"\partial" if requires_partial(body) else "d"
        return r"\frac{%s}{%s %s} (%s)" % (d, d, self._print(expr.variables[0]), self._print(body))

    def _print_HadamardProduct(self, expr: sp.HadamardProduct) -> str:
        return r" \odot ".join(self.parenthesize(a, PRECEDENCE["Mul"]) for a in expr.args)

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta, exp: Any = None) -> str:
        # Iverson's bracket [j = q] (1 when the indices agree), not δ_jq: δ is the error δ(l)_j here.
        out = r"\left[%s = %s\right]" % (self._print(expr.args[0]), self._print(expr.args[1]))
        return out if exp is None else r"%s^{%s}" % (out, exp)

    def _print_EqualityChain(self, expr: EqualityChain) -> str:
        return " = ".join(self._print(a) for a in expr.args)

    def _print_Heaviside(self, expr: sp.Heaviside, exp: Any = None) -> str:
        # The unit step as textbooks write it, H(z); its value at 0 is said where it is introduced.
        out = r"H\left(%s\right)" % self._print(expr.args[0])
        return out if exp is None else r"%s^{%s}" % (out, exp)

    def _print_TermSum(self, expr: TermSum) -> str:
        return " + ".join(
            r"\left(%s\right)" % self._print(a) if a.could_extract_minus_sign() else self._print(a) for a in expr.args
        )



def latex(expr: Any, **settings: Any) -> str:
    """LaTeX of ``expr`` in seed 001's notation (names are printed from the symbols themselves).

    >>> import sympy as sp
    >>> w = sp.IndexedBase("w(L)"); j, k = sp.Idx("j", 3), sp.Idx("k", 2)
    >>> latex(sp.Sum(w[j, k], k))
    '\\\\sum_{k} w^{(L)}_{jk}'
    """
    return SymbackLatexPrinter(settings).doprint(expr)


# -- MathML (for the self-contained HTML report) -------------------------------------------------


class SymbackMathMLPrinter(MathMLPresentationPrinter):
    """SymPy's MathML presentation printer with symback's names.

    Text nodes go through the DOM, which escapes ``<``, ``>`` and ``&``; a name
    like ``<script>`` stays text.
    """

    printmethod = "_symback_mathml"

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        super().__init__(settings)
        # SymPy's printer swaps in a raw (unescaping) text node class during doprint; a plain Document
        # keeps every text node escaped, whichever entry point is used.
        self.dom = Document()

    def doprint(self, expr: Any) -> str:
        holder = self._row(self._print(expr))  # a parent, so that the top node itself is polished too
        _resolve_entities(holder)
        _polish(holder)
        return holder.firstChild.toxml()

    def _print_Derivative(self, e: sp.Derivative) -> Element:
        # SymPy's printer writes d/dx followed by the bare expression: "d/dz 1 + e^{-z}" reads as
        # (d/dz 1) + e^{-z}.  Anything looser than a product is differentiated inside parentheses,
        # as the LaTeX printer already does.
        row = super()._print_Derivative(e)
        row.removeChild(row.lastChild)
        if e.expr.could_extract_minus_sign():  # d/dz (−z), not d/dz −z
            row.appendChild(self._row(self._l_paren(), self._print(e.expr), self._r_paren()))
        else:
            row.appendChild(self.parenthesize(e.expr, PRECEDENCE["Mul"], strict=True))
        return row

    def _el(self, tag: str, *children: Element | str) -> Element:
        element = self.dom.createElement(tag)
        for child in children:
            element.appendChild(self.dom.createTextNode(child) if isinstance(child, str) else child)
        return element

    def _row(self, *children: Element | str) -> Element:
        return self._el("mrow", *children)

    def _ident(self, word: str) -> Element:
        from sympy.printing.pretty.pretty_symbology import greek_unicode

        if word in _GREEK:
            return self._el("mi", greek_unicode.get(word, word))
        element = self._el("mi", word)
        if len(word) > 1:
            element.setAttribute("mathvariant", "normal")
        return element

    def _indices(self, indices: tuple[Any, ...]) -> Element:
        many_digits = any(isinstance(i, str) and len(i) > 1 for i in indices) or len(indices) > 2
        row = self._row()
        for position, index in enumerate(indices):
            if position and many_digits:
                row.appendChild(self._el("mo", ","))
            if isinstance(index, str):
                row.appendChild(self._el("mn" if index.isdigit() else "mi", index))
            elif isinstance(index, _Name):
                row.appendChild(self._name(index))
            else:
                row.appendChild(index)
        return row

    def _name(self, name: _Name) -> Element:
        kind, parts = name.kind, name.parts
        if kind == "ident":
            return self._ident(parts[0])
        if kind == "text":
            return self._el("mtext", parts[0])
        if kind == "script":
            base, layer, indices = parts
            out = self._name(base)
            if layer is not None and indices:
                return self._el("msubsup", out, self._indices(indices), self._layer(layer))
            if layer is not None:
                return self._el("msup", out, self._layer(layer))
            if indices:
                return self._el("msub", out, self._indices(indices))
            return out
        if kind == "indexed":
            return self._el("msub", self._name(parts[0]), self._indices(parts[1]))
        if kind == "partial":
            return self._el(
                "mfrac",
                self._row(self._el("mo", "∂"), self._name(parts[0])),
                self._row(self._el("mo", "∂"), self._name(parts[1])),
            )
        if kind == "nabla":
            return self._row(self._el("msub", self._el("mo", "∇"), self._name(parts[0])), self._name(parts[1]))
        if kind == "apply":
            f, prime, arg = parts
            head = self._name(f)
            if prime:
                head = self._row(head, self._el("mo", "′"))
            return self._row(head, self._el("mo", "("), self._name(arg), self._el("mo", ")"))
        raise AssertionError(kind)  # pragma: no cover

    def _layer(self, layer: str) -> Element:
        # TeX sets a^{(L-1)} in script style: no space around the parentheses or the minus sign.
        row = self._row(_tight(self._el("mo", "(")))
        for piece in re.findall(r"\d+|[A-Za-z]+|[-+]", layer):
            if piece in "-+":
                row.appendChild(_tight(self._el("mo", MINUS if piece == "-" else "+")))
            else:
                row.appendChild(self._el("mn" if piece.isdigit() else "mi", piece))
        row.appendChild(_tight(self._el("mo", ")")))
        return row

    def _print_Symbol(self, sym: sp.Symbol, style: str = "plain") -> Element:
        return self._name(parse_name(sym.name))

    def _print_MatrixSymbol(self, sym: sp.MatrixSymbol) -> Element:
        return self._name(parse_name(str(sym.name)))

    def _print_IndexedBase(self, e: sp.IndexedBase) -> Element:
        return self._print(e.label)

    def _print_Indexed(self, e: sp.Indexed) -> Element:
        base = parse_name(str(e.base.label))
        indices = tuple(self._print(i) for i in e.indices)
        if base.kind == "ident":
            base = _Name("script", (base, None, ()))
        if base.kind == "script":
            inner, layer, own = base.parts
            return self._name(_Name("script", (inner, layer, tuple(own) + indices)))
        return self._el("msub", self._name(base), self._indices(indices))

    def _print_Idx(self, e: sp.Idx) -> Element:
        return self._print(e.label)

    def _print_Sum(self, e: sp.Sum) -> Element:
        if not all(isinstance(limit[0], sp.Idx) for limit in e.limits):
            return super()._print_Sum(e)
        row = self._row()
        for limit in e.limits:
            row.appendChild(self._el("munder", self._el("mo", "∑"), self._print(limit[0])))
        body = self._print(e.function)
        if isinstance(e.function, sp.Add):
            body = self._row(self._el("mo", "("), body, self._el("mo", ")"))
        row.appendChild(body)
        return row

    def _print_KroneckerDelta(self, e: sp.KroneckerDelta) -> Element:
        # [j = q], as the LaTeX printer writes it (δ is the error δ(l)_j).
        return self._row(self._el("mo", "["), self._print(e.args[0]), self._el("mo", "="), self._print(e.args[1]),
                         self._el("mo", "]"))

    def _print_Piecewise(self, e: sp.Piecewise) -> Element:
        table = self._el("mtable")
        for value, condition in e.args:
            if condition is sp.true:
                cond = self._el("mtext", "otherwise")
            else:
                cond = self._row(self._el("mtext", "if\u2002"), self._print(condition))
            table.appendChild(self._el("mtr", self._el("mtd", self._print(value)), self._el("mtd", cond)))
        return self._row(self._el("mo", "{"), table)

    def _print_Heaviside(self, e: sp.Heaviside) -> Element:
        open_, close = self._el("mo", "("), self._el("mo", ")")
        for fence in (open_, close):
            fence.setAttribute("stretchy", "false")
        return self._row(self._el("mi", "H"), open_, self._print(e.args[0]), close)

    def _print_EqualityChain(self, e: EqualityChain) -> Element:
        row = self._row()
        for position, part in enumerate(e.args):
            if position:
                row.appendChild(self._el("mo", "="))
            row.appendChild(self._print(part))
        return row

    def _print_TermSum(self, e: TermSum) -> Element:
        row = self._row()
        for position, term in enumerate(e.args):
            if position:
                row.appendChild(self._el("mo", "+"))
            printed = self._print(term)
            if term.could_extract_minus_sign():
                printed = self._row(self._el("mo", "("), printed, self._el("mo", ")"))
            row.appendChild(printed)
        return row

    def _print_HadamardProduct(self, e: sp.HadamardProduct) -> Element:
        row = self._row()
        for position, factor in enumerate(e.args):
            if position:
                row.appendChild(self._el("mo", "⊙"))
            row.appendChild(self.parenthesize(factor, PRECEDENCE["Mul"]))
        return row


#: U+2212 MINUS SIGN: MathML wants the minus sign itself; a hyphen renders as a short dash.
MINUS = "\u2212"
_FENCES = {"(", ")", "[", "]"}
_DOUBLE_STRUCK = {"\u2146": "d", "\u2147": "e"}
# Content that is taller than a line of text: only around it do parentheses need to stretch.
_TALL = {"mfrac", "munder", "munderover", "mover", "mtable"}


def _tight(mo: Element) -> Element:
    mo.setAttribute("stretchy", "false")
    mo.setAttribute("lspace", "0")
    mo.setAttribute("rspace", "0")
    return mo


def _has_tall(node: Any) -> bool:
    return any(
        child.nodeType == child.ELEMENT_NODE and (child.tagName in _TALL or _has_tall(child))
        for child in node.childNodes
    )


def _polish(node: Any) -> None:
    """Typographic fixes SymPy's printer leaves out: − (U+2212) for "-", parentheses that stretch only
    around tall content (Chromium pads a stretched parenthesis: "( a − y )" with gaps otherwise)."""
    for child in list(node.childNodes):
        if child.nodeType == child.TEXT_NODE:
            continue
        if child.tagName in ("mo", "mi") and child.firstChild is not None and child.firstChild.nodeValue in _DOUBLE_STRUCK:
            # SymPy writes ⅆ (U+2146) and ⅇ (U+2147); the PDF, and textbooks, print d/dz and e.
            letter = child.ownerDocument.createElement("mi")
            letter.appendChild(child.ownerDocument.createTextNode(_DOUBLE_STRUCK[child.firstChild.nodeValue]))
            node.replaceChild(letter, child)
            continue
        if child.tagName in ("mo", "mn") and child.firstChild is not None and child.firstChild.nodeType == child.TEXT_NODE:
            text = child.firstChild.data
            if "-" in text:
                child.firstChild.data = text.replace("-", MINUS)
            if child.tagName == "mo" and text in _FENCES and not child.hasAttribute("stretchy"):
                if not _has_tall(node):
                    child.setAttribute("stretchy", "false")
        else:
            _polish(child)


def _resolve_entities(node: Any) -> None:
    # SymPy's MathML printer writes entities (&InvisibleTimes;, &#x2202;) as text, which the DOM
    # would escape to a literal "&amp;InvisibleTimes;"; put the characters themselves there.
    # Unescaping is safe: the DOM escapes < > & again when it serialises the text.
    import html

    for child in node.childNodes:
        if child.nodeType == child.TEXT_NODE:
            if re.search(r"&(#x[0-9a-fA-F]+|#\d+|\w+);", child.data):
                child.data = html.unescape(child.data)
        else:
            _resolve_entities(child)


def mathml(expr: Any, *, display: bool = False, **settings: Any) -> str:
    """A complete ``<math>`` element for ``expr`` (MathML Core, rendered natively by browsers);
    ``settings`` go to the printer (``order="none"`` keeps a hand-written form's terms in its order).

    >>> mathml(sp.Symbol("w(L)"))
    '<math><msup><mi>w</mi><mrow><mo stretchy="false" lspace="0" rspace="0">(</mo><mi>L</mi><mo stretchy="false" lspace="0" rspace="0">)</mo></mrow></msup></math>'
    """
    printer = SymbackMathMLPrinter(settings or None)
    body = printer._print(expr)
    math = printer.dom.createElement("math")
    if display:
        math.setAttribute("display", "block")
    math.appendChild(body)
    _resolve_entities(math)
    _polish(math)
    return math.toxml()
