"""Spec files: a network, its parameter values and its data, from TOML (stdlib ``tomllib``).

A complete example (the 1-2-1 softplus network of seed 002)::

    [network]
    layers = [1, 2, 1]
    activations = ["softplus", "identity"]
    cost = "ssr"
    trainable = ["b3"]            # or frozen = [...]

    [names]
    "w(1)_0_0" = "w1"
    "w(1)_1_0" = "w2"
    "b(1)_0" = "b1"
    "b(1)_1" = "b2"
    "w(2)_0_0" = "w3"
    "w(2)_0_1" = "w4"
    "b(2)" = "b3"
    output = "predicted"
    target = "observed"
    cost = "SSR"

    [parameters]
    w1 = 3.34
    b1 = -1.43
    # ...

    [data]
    x = [0, 0.5, 1]
    y = [0, 1, 0]

Parameters not given are drawn by ``[init]`` (``method``, ``seed``; default
Xavier with seed 0).  Formulas (``{formula = "z/(1+exp(-z))"}``) go through the
whitelisting parser; nothing in a spec is ever passed to ``eval``.  The TOML
is read within bounds (:func:`symback.grammar.tomlread.parse_toml`); booleans and integers
too large for a float are refused as numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import Dataset, loads_with_data_arrays
from ..errors import SpecError, SymbackError, shown
from ..files import read_text
from ..grammar.tomlread import parse_toml
from ..registry import unknown_name
from ..symbolic.network import Network
from ..symbolic.parameters import Parameters
from .layer_table import network_from_tables

__all__ = ["Spec", "load_spec", "read_data", "spec_from_dict"]

_SECTIONS = {
    "network": {"layers", "activations", "activation", "cost", "frozen", "trainable", "inputs"},
    "layer": None,  # [[layer]]: one table per layer after the input (symback.spec.layer_table)
    "names": None,  # free-form: canonical name -> user name
    "parameters": None,  # free-form: name -> value
    "init": {"method", "seed"},
    "data": {"x", "y"},
    # Sections read by later stages (training, reports, verification) are passed through.
    "training": None,
    "report": {"title", "author"},  # the title page of `symback report` (its --title/--author win)
    "sweep": {"learning_rate", "activation", "optimizer"},  # symback sweep: each a value or a list
}


@dataclass
class Spec:
    """A network with parameter values and (optionally) training data."""

    network: Network
    parameters: Parameters
    data: Dataset | None = None
    sections: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def title(self) -> str | None:
        """``[report] title``: the report's title page (None when not given)."""
        return self.sections.get("report", {}).get("title")

    @property
    def author(self) -> str | None:
        """``[report] author``: who the title page names (None when not given)."""
        return self.sections.get("report", {}).get("author")

    def require_data(self) -> Dataset:
        if self.data is None:
            where = f" in {self.path}" if self.path else ""
            raise SpecError(f"no [data] section{where}: give x and y to evaluate derivatives")
        return self.data


#: The largest integer a float64 holds.
_LARGEST = int(float.fromhex("0x1.fffffffffffffp+1023"))


def _check_numbers(value: Any, what: str) -> None:
    """Refuse booleans and integers no float can hold anywhere in ``value`` (a number or nested lists):
    NumPy takes ``true`` for 1 and raises OverflowError on 1 followed by 400 zeros.  Anything else
    that is not numeric is left to the array conversion, which names it.

    >>> _check_numbers([[1, 2.5], [True, 0]], "[data] x")
    Traceback (most recent call last):
    ...
    symback.errors.SpecError: [data] x must be numeric, not the boolean true
    """
    if isinstance(value, list):
        for item in value:
            if isinstance(item, (list, int)):  # bool is an int
                _check_numbers(item, what)  # nesting is bounded by parse_toml
        return
    if isinstance(value, bool):
        raise SpecError(f"{what} must be numeric, not the boolean {str(value).lower()}")
    if isinstance(value, int) and not -_LARGEST <= value <= _LARGEST:
        digits = int(value.bit_length() * math.log10(2)) + 1
        raise SpecError(f"{what} holds an integer of about {digits:,} digits, too large for a float")


def read_data(table: Mapping[str, Any], network: Network) -> Dataset:
    """A ``[data]`` table (``x`` and ``y``) as a Dataset that fits ``network``."""
    if not isinstance(table, Mapping) or "x" not in table or "y" not in table:
        raise SpecError("[data] needs both x and y")
    unknown = sorted(set(table) - {"x", "y"})
    if unknown:
        raise unknown_name("key", unknown[0], ("x", "y"), where=" in [data]", error=SpecError)
    for name in ("x", "y"):
        _check_numbers(table[name], f"[data] {name}")
    data = Dataset.from_arrays(table["x"], table["y"])
    data.check(network.sizes[0], network.sizes[-1])
    return data


def load_spec(path: str | Path) -> Spec:
    """Read a TOML spec file.

    Raises SpecError (one line, naming the file) for unreadable files, invalid TOML
    and any problem in the description; an unknown name or a bad formula keeps its own
    class (UnknownNameError, FormulaError) and is prefixed with the file too.
    """
    path = Path(path)
    text = read_text(path, "spec file")
    raw = loads_with_data_arrays(text, lambda rest: parse_toml(rest, str(path)))  # [data] arrays read by NumPy
    try:
        spec = spec_from_dict(raw)
    except SymbackError as error:
        raise type(error)(f"{path}: {error}") from None
    spec.path = path
    return spec


def spec_from_dict(raw: Mapping[str, Any]) -> Spec:
    """Build a :class:`Spec` from the parsed TOML tables (or an equivalent dict).

    >>> spec = spec_from_dict({"network": {"layers": [1, 1], "activations": "sigmoid", "cost": "squared_error"},
    ...                        "parameters": {"w(L)": 0.5, "b(L)": 0.1}})
    >>> spec.parameters.get(spec.network.resolve("w(L)")), spec.parameters.get(spec.network.resolve("b(L)"))
    (0.5, 0.1)
    """
    for section, value in raw.items():
        if section not in _SECTIONS:
            raise unknown_name("section", section, _SECTIONS, label=f"[{shown(section)[1:-1]}]", error=SpecError)
        if section == "layer":
            continue  # an array of tables, read by symback.spec.layer_table
        allowed = _SECTIONS[section]
        if not isinstance(value, Mapping):
            raise SpecError(f"[{section}] must be a table, not {shown(value)}")
        if allowed is not None:
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise unknown_name("key", unknown[0], allowed, where=f" in [{section}]", error=SpecError)
    if "network" not in raw:
        raise SpecError("missing [network] section")
    table = raw["network"]
    if "layer" in raw:
        network = network_from_tables(
            table, raw["layer"], names=raw.get("names", {}), frozen=table.get("frozen", ()), trainable=table.get("trainable")
        )
    else:
        if "layers" not in table:
            raise SpecError("[network] needs layers = [...], e.g. layers = [1, 2, 1] (or inputs = n and [[layer]] tables)")
        if "activations" in table and "activation" in table:
            raise SpecError("[network] takes activations or activation, not both")
        if "inputs" in table:
            raise SpecError("[network] inputs = n goes with [[layer]] tables; with layers = [...] the first size is the input")
        network = Network(
            table["layers"],
            table.get("activations", table.get("activation", "sigmoid")),
            table.get("cost", "squared_error"),
            names=raw.get("names", {}),
            frozen=table.get("frozen", ()),
            trainable=table.get("trainable"),
        )
    init = raw.get("init", {})
    seed = init.get("seed", 0)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise SpecError(f"[init] seed must be an integer >= 0, not {seed!r}")
    method = init.get("method", "xavier")
    if not isinstance(method, str):
        raise SpecError(f"[init] method must be a name such as \"xavier\", not {method!r}")
    parameters = Parameters.initialize(network, method, seed=seed)
    values = raw.get("parameters", {})
    for name, value in values.items():
        _check_numbers(value, f"[parameters] {shown(name)}")
    parameters.update(network, values)
    data = None
    if "data" in raw:
        data = read_data(raw["data"], network)
    sections = {name: dict(raw[name]) for name in ("training", "report", "sweep") if name in raw}
    for key, value in sections.get("report", {}).items():
        _check_title_text(value, f"[report] {key}")
    return Spec(network, parameters, data, sections)


#: The longest title or author a title page takes.
TITLE_LENGTH = 200


def _check_title_text(value: Any, what: str) -> None:
    """A title page's text: one line of at most :data:`TITLE_LENGTH` characters.

    >>> _check_title_text(3, "[report] title")
    Traceback (most recent call last):
    ...
    symback.errors.SpecError: [report] title must be text, not 3
    """
    if not isinstance(value, str):
        raise SpecError(f"{what} must be text, not {shown(value)}")
    if any(ch < " " or ch == "\x7f" for ch in value):
        raise SpecError(f"{what} must be one line of text (no line breaks or control characters)")
    if len(value) > TITLE_LENGTH:
        raise SpecError(f"{what} is {len(value):,} characters long; at most {TITLE_LENGTH} fit a title page")
