"""The name grammar: how a node of a network is written, parsed in one place.

Seed 001's notation (3Blue1Brown): a layered name is a base, its layer in parentheses and up to four
0-based indices, ``w(L)_0_19``, ``a(L-1)``, ``b(2)_3``, ``z( L - 1 )_0`` (spaces inside the parentheses are
allowed and dropped), ``w(1)_*`` (every entry of a layer, for ``frozen``).  A parameter's name carries one
index per axis of the parameter, in the order of its shape: a dense weight ``w(l)_j_k``; a convolution's
kernel entry ``w(l)_f_c_m`` (filter, input channel, kernel offset; conv2d ``w(l)_f_c_m_n``, offsets by row
and column) and its bias per filter ``b(l)_f``; a recurrent layer's ``W(l)_j_q`` (state q of step t−1 to
unit j), ``U(l)_j_e`` (input e of step t to unit j) and ``b(l)_j``.  The layer is counted back from
the output (``L``, ``L-2``) or absolute (``1`` is the first hidden layer).  Inputs and targets have no
layer, ``x``, ``x_3``, ``y_0``; the cost is ``C``; anything else that is an identifier (``b3``,
``predicted``, ``E_total``) is a plain name — a user's own name, or a display name.

:func:`parse` turns text into a :class:`Name`; ``str(name)`` writes it back in the canonical spelling.
Which bases are nodes of a network (w, b, z, a, x, y, C) and which layers exist is the network's business
(:mod:`symback.symbolic.network`); display names such as ``delta(L)`` or ``W(L)`` parse with the same grammar
(:mod:`symback.render.latex`).  :data:`NODE_PATTERN` and :data:`LAYER_PATTERN` are the same grammar as regular
expression text, for finding node names inside a formula (:mod:`symback.verification.claims`).

>>> parse("w(L)_0_19")
Name(base='w', layer=Layer(number=0, from_output=True), indices=(0, 19))
>>> str(parse("a( L - 1 )")), str(parse("x_2")), parse("b3").is_plain, parse("2b") is None
('a(L-1)', 'x_2', True, True)
>>> parse("w(1)_0_0_1_2").indices, parse("U(L-1)_1_0").base
((0, 0, 1, 2), 'U')
>>> parse("w(1)_*").layer.resolve(depth=3), parse("w(L-1)_*").layer.resolve(depth=3), parse("w(1)_*").wildcard
(1, 2, True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ANY",
    "LAYER_PATTERN",
    "MAX_INDICES",
    "NODE_PATTERN",
    "UNLAYERED",
    "Layer",
    "Name",
    "is_identifier",
    "number",
    "parse",
]

#: An index written ``*``: every entry of the layer (``w(1)_*``, ``b(L)_*``).
ANY = "*"
#: The bases that take an index without a layer: the input ``x_k`` and the target ``y_j``.
UNLAYERED = ("x", "y")
#: The most indices a name carries (a conv2d kernel entry: filter, channel, row offset, column offset).
MAX_INDICES = 4
#: An index or layer written with more digits than this is out of range in any network symback builds.
_DIGITS = 18

# ASCII digits only ([0-9], not \d: "w(٣)" is not a layer); every pattern is used with fullmatch
# or inside a larger one, never with "$" (which also matches before a final newline).
_NUMBER = r"[0-9]+"
#: A layer as written inside the parentheses: ``L``, ``L-2``, ``L - 2``, ``3``.
LAYER_PATTERN = rf"L(?:\s*-\s*{_NUMBER})?|{_NUMBER}"
#: A concrete node name of a network's layered kinds (w, b, z, a), for finding one inside a formula.
NODE_PATTERN = rf"[wbza]\(\s*(?:{LAYER_PATTERN})\s*\)(?:_{_NUMBER}(?:_{_NUMBER})?)?"
_IDENTIFIER = r"[A-Za-z][A-Za-z0-9_]*"

_INDEX = rf"_(?:{_NUMBER}|\*)"
_LAYERED = re.compile(
    rf"(?P<base>[A-Za-z]+)\(\s*(?P<layer>{LAYER_PATTERN})\s*\)(?P<indices>(?:{_INDEX}){{0,{MAX_INDICES}}})",
    re.ASCII,
)
_UNLAYERED = re.compile(rf"(?P<base>{'|'.join(UNLAYERED)})_(?P<j>{_NUMBER})", re.ASCII)
_PLAIN = re.compile(_IDENTIFIER, re.ASCII)


def number(digits: str) -> int:
    """An index or layer number as written; one too long to be in range is a number no network reaches.

    (``int()`` of 4,301 digits raises ValueError, and a long one costs time for nothing.)

    >>> number("019"), number("9" * 5000) == 10**18
    (19, True)
    """
    return int(digits) if len(digits) <= _DIGITS else 10**_DIGITS


@dataclass(frozen=True)
class Layer:
    """A layer as a name writes it: ``number`` layers back from the output ``L`` (``from_output``), or absolute.

    >>> str(Layer(0, from_output=True)), str(Layer(2, from_output=True)), str(Layer(3))
    ('L', 'L-2', '3')
    """

    number: int
    from_output: bool = False

    def resolve(self, depth: int) -> int:
        """The layer's number (1 … depth) in a network whose output layer is ``depth``."""
        return depth - self.number if self.from_output else self.number

    def __str__(self) -> str:
        if not self.from_output:
            return str(self.number)
        return "L" if self.number == 0 else f"L-{self.number}"


@dataclass(frozen=True)
class Name:
    """A parsed name: its ``base`` (``w``, ``x``, ``delta``, a user's ``b3``), ``layer`` and ``indices``.

    An index is a 0-based int, or :data:`ANY` for every entry.  ``str()`` is the canonical spelling.

    >>> str(Name("w", Layer(1, from_output=True), (0, 2))), str(Name("y", indices=(1,))), str(Name("C"))
    ('w(L-1)_0_2', 'y_1', 'C')
    """

    base: str
    layer: Layer | None = None
    indices: tuple[int | str, ...] = ()

    @property
    def is_plain(self) -> bool:
        """A name with neither layer nor index: ``C``, ``x``, a user's ``b3``."""
        return self.layer is None and not self.indices

    @property
    def wildcard(self) -> bool:
        """Whether an index is ``*`` (a whole layer)."""
        return ANY in self.indices

    def __str__(self) -> str:
        layer = f"({self.layer})" if self.layer is not None else ""
        return self.base + layer + "".join(f"_{index}" for index in self.indices)


def _index(text: str) -> int | str:
    return ANY if text == ANY else number(text)


def parse(text: str) -> Name | None:
    """The :class:`Name` written in ``text`` (None when it is not a name at all).

    >>> parse("delta(L-1)_0"), parse("y")
    (Name(base='delta', layer=Layer(number=1, from_output=True), indices=(0,)), Name(base='y', layer=None, indices=()))
    """
    match = _LAYERED.fullmatch(text)
    if match is not None:
        written = match["layer"]
        if written.startswith("L"):
            back = "".join(written[1:].split())[1:]  # "L - 2" -> "2"; "L" -> ""
            layer = Layer(number(back) if back else 0, from_output=True)
        else:
            layer = Layer(number(written))
        indices = tuple(_index(i) for i in match["indices"].split("_")[1:])
        return Name(match["base"], layer, indices)
    match = _UNLAYERED.fullmatch(text)
    if match is not None:
        return Name(match["base"], None, (number(match["j"]),))
    if _PLAIN.fullmatch(text):
        return Name(text)
    return None


def is_identifier(text: str) -> bool:
    """Whether ``text`` can be a user's own name: a letter, then letters, digits and ``_``.

    >>> is_identifier("w1"), is_identifier("E_total"), is_identifier("1w"), is_identifier("w(1)")
    (True, True, False, False)
    """
    return _PLAIN.fullmatch(text) is not None
