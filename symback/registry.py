"""The one registry helper (:class:`Registry`) and what every place that looks a name up shares.

Activations, costs, optimizers, initialisers and output formats are each a :class:`Registry`: name ->
object, looked up ignoring case (``"Adam"``, ``" leaky-relu "``), an unknown name answered with the close
matches and the known ones; a layer-kind table is one more ``Registry("layer kind")``.

>>> merged_settings({"slope": 0.1}, {}, "activation")
{'slope': 0.1}

An unknown name is reported by :func:`unknown_name`, with the close matches and what is known:

>>> print(unknown_name("activation", "sigmod", ["relu", "sigmoid", "tanh"]))
unknown activation 'sigmod' (did you mean 'sigmoid'? known: relu, sigmoid, tanh)
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any, Generic, TypeVar, overload

from .errors import FormulaError, SpecError, SymbackError, UnknownNameError, shown

__all__ = [
    "FoldedNames",
    "Registry",
    "close_matches",
    "did_you_mean",
    "finite_number",
    "merged_settings",
    "unknown_name",
    "with_settings",
]

T = TypeVar("T")

#: Names a message lists at most (a network can have thousands of user names).
_LISTED = 12
#: Characters of a name compared for close matches (difflib is quadratic in the length).
_COMPARED = 100


def merged_settings(table: Mapping[str, Any], settings: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A ``{name = ..., setting = ...}`` table's settings with keyword settings; one given in both is an error."""
    twice = sorted(set(table) & set(settings))
    if twice:
        raise SpecError(f"{what} setting {twice[0]!r} is given twice")
    return {**table, **settings}


def with_settings(factory: Callable[..., T], settings: Mapping[str, Any], what: str, name: str) -> T:
    """``factory(**settings)``, where a setting the factory does not take is named, with the ones it takes.

    >>> with_settings(lambda slope=0.01: slope, {"slop": 0.1}, "activation", "leaky_relu")
    Traceback (most recent call last):
    ...
    symback.errors.SpecError: unknown setting 'slop' for activation 'leaky_relu' (did you mean 'slope'? known: slope)
    """
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: let the call say
        parameters = None
    if parameters is not None and not any(p.kind is p.VAR_KEYWORD for p in parameters):
        known = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for key in settings:
            if key not in known:
                raise unknown_name(
                    "setting", key, known, where=f" for {what} {name!r}", error=SpecError,
                    hint="" if known else f"{name} takes no settings",
                )
    return factory(**settings)


def finite_number(value: Any, what: str) -> float:
    """``value`` as a float when it is a finite real number (never a boolean); else a SpecError saying why.

    >>> finite_number(2, "slope")
    2.0
    >>> finite_number(float("nan"), "leaky_relu slope")
    Traceback (most recent call last):
    ...
    symback.errors.SpecError: leaky_relu slope must be a finite number, got nan
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or type(value).__name__ == "bool_":
        raise SpecError(f"{what} must be a number, not {shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        digits = int(int(value).bit_length() * math.log10(2)) + 1
        raise SpecError(f"{what} must be a finite number, got an integer of about {digits:,} digits") from None
    if not math.isfinite(number):
        raise SpecError(f"{what} must be a finite number, got {number}")
    return number


def close_matches(name: Any, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to ``name`` (ignoring case), best first.

    >>> close_matches("Adma", ["adam", "sgd", "momentum"])
    ['adam']
    """
    candidates = {str(k).casefold()[:_COMPARED]: str(k) for k in known}
    folded = str(name).casefold()[:_COMPARED]
    if folded in candidates:  # the same name in other letter case is the one meant
        return [candidates[folded]]
    found = difflib.get_close_matches(folded, list(candidates), n=n, cutoff=0.6)
    return [candidates[f] for f in found]


def did_you_mean(name: Any, known: Iterable[str]) -> str:
    """``"did you mean 'x'?"`` (or ``'x' or 'y'``) for the names close to ``name``; ``""`` when none is.

    >>> did_you_mean("w(l)", ["w(L)", "b(L)"])
    "did you mean 'w(L)'?"
    """
    found = close_matches(name, known)
    return f"did you mean {' or '.join(repr(f) for f in found)}?" if found else ""


def unknown_name(
    what: str,
    name: Any,
    known: Iterable[str],
    *,
    where: str = "",
    hint: str = "",
    listed: bool = True,
    label: str | None = None,
    error: type[SymbackError] = UnknownNameError,
) -> SymbackError:
    """The error for an unknown ``what`` called ``name``: the close matches, then (``listed``) the known names.

    ``where`` follows the name (``" in [network]"``), ``hint`` ends the message (how to write a formula
    instead), ``label`` replaces the quoted name (``"[netwerk]"``); ``error`` is the class raised.

    >>> print(unknown_name("key", "widht", ["width", "layers"], where=" in [network]", error=SpecError))
    unknown key 'widht' in [network] (did you mean 'width'? known: layers, width)
    """
    known = sorted(dict.fromkeys(str(k) for k in known))
    suggestion = did_you_mean(name, known)
    details = []
    if listed and known:
        more = f", … ({len(known):,} in all)" if len(known) > _LISTED else ""
        details.append(f"known: {', '.join(known[:_LISTED])}{more}")
    if hint:
        details.append(hint)
    inner = " ".join(p for p in (suggestion, "; ".join(details)) if p)
    text = label if label is not None else shown(name)
    return error(f"unknown {what} {text}{where}" + (f" ({inner})" if inner else ""))


class FoldedNames:
    """The one rule for looking a user's name up: the exact name, else the one name equal to it ignoring case.

    Two known names equal ignoring case make that spelling ambiguous: an error, not a guess.

    >>> names = FoldedNames(["w1", "b1", "Output"])
    >>> names.lookup("W1"), names.lookup("output"), names.lookup("q")
    ('w1', 'Output', None)
    """

    def __init__(self, known: Iterable[str]) -> None:
        self.known = set(known)
        self._folded: dict[str, list[str]] = {}
        for name in sorted(self.known):
            self._folded.setdefault(name.casefold(), []).append(name)

    def add(self, name: str) -> None:
        """Know ``name`` too (a name a worked example defines itself)."""
        if name not in self.known:
            self.known.add(name)
            self._folded.setdefault(name.casefold(), []).append(name)

    def lookup(self, name: str) -> str | None:
        """The known name ``name`` stands for, or None; FormulaError when it could be two."""
        if name in self.known:
            return name
        found = self._folded.get(name.casefold(), [])
        if len(found) > 1:
            raise FormulaError(f"name {shown(name)} is ambiguous: it could be {' or '.join(found)}")
        return found[0] if found else None


def folded(name: str) -> str:
    """A registry key as looked up: no outer spaces, case folded, ``-`` read as ``_``.

    >>> folded(" Leaky-ReLU ")
    'leaky_relu'
    """
    return name.strip().casefold().replace("-", "_")


class Registry(MutableMapping[str, T], Generic[T]):
    """Name -> object for one kind of thing (``what``: "activation", "cost", "layer kind" ...).

    A mapping whose keys are looked up ignoring case (:func:`folded`); :meth:`lookup` and :meth:`build`
    answer an unknown name with one clear error (close matches, then the known names and ``hint``).
    Several names for one object are aliases; :meth:`listing` shows them together.

    >>> shapes = Registry("shape", {"square": lambda side=1: side**2})
    >>> shapes.register("disc", lambda radius=1: 3 * radius**2)
    >>> shapes.build("Square", {"side": 3}), "DISC" in shapes, shapes.names()
    (9, True, ['disc', 'square'])
    >>> shapes.lookup("sqare")
    Traceback (most recent call last):
    ...
    symback.errors.UnknownNameError: unknown shape 'sqare' (did you mean 'square'? known: disc, square)

    A decorator registers a class or function under a name:

    >>> @shapes.register("triangle")
    ... def triangle(base=1, height=1):
    ...     return base * height / 2
    >>> shapes.listing()
    'disc, square, triangle'
    """

    def __init__(
        self, what: str, entries: Mapping[str, T] | None = None, *, hint: str = "",
        error: type[SymbackError] = UnknownNameError,
    ) -> None:
        self.what, self.hint, self.error = what, hint, error
        self._entries: dict[str, T] = {}
        for name, entry in (entries or {}).items():
            self[name] = entry

    # -- the mapping: keys case-folded ---------------------------------------------------------------
    def __getitem__(self, name: str) -> T:
        return self._entries[folded(name)]

    def __setitem__(self, name: str, entry: T) -> None:
        self._entries[folded(name)] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[folded(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and folded(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {self.listing()})"

    # -- registering, looking up -----------------------------------------------------------------------
    @overload
    def register(self, name: str) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, entry: T) -> None: ...
    def register(self, name: str, entry: Any = None) -> Any:
        """Add (or replace) ``name``; without ``entry``, a decorator that registers what it decorates."""
        if not isinstance(name, str) or not folded(name):
            raise SpecError(f"a {self.what} is registered under a name, not {shown(name)}")
        if entry is None:
            def decorate(obj: T) -> T:
                self[name] = obj
                return obj

            return decorate
        self[name] = entry
        return None

    def lookup(self, name: Any) -> T:
        """The entry called ``name`` (ignoring case); else the error naming the close and the known names."""
        if isinstance(name, str) and name in self:
            return self[name]
        raise unknown_name(self.what, name, self._entries, hint=self.hint, error=self.error)

    def build(self, name: Any, settings: Mapping[str, Any] | None = None) -> Any:
        """``lookup(name)(**settings)``, where a setting the factory does not take is named (:func:`with_settings`)."""
        factory = self.lookup(name)
        return with_settings(factory, dict(settings or {}), self.what, folded(name))  # type: ignore[arg-type]

    def names(self) -> list[str]:
        """Every name (aliases too), sorted."""
        return sorted(self._entries)

    def listing(self) -> str:
        """The names for help and docs, an alias beside the name it stands for: ``'mse, ssr (also sse)'``."""
        owners: dict[int, str] = {}  # the first name an object was registered under owns it
        aliases: dict[str, list[str]] = {}
        for name, entry in self._entries.items():
            owner = owners.setdefault(id(entry), name)
            aliases.setdefault(owner, [])
            if owner != name:
                aliases[owner].append(name)
        return ", ".join(
            name + (f" (also {', '.join(sorted(aliases[name]))})" if aliases[name] else "") for name in sorted(aliases)
        )
