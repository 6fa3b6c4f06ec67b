"""Helpers shared by the registries (activations, costs, optimizers).

>>> merged_settings({"slope": 0.1}, {}, "activation")
{'slope': 0.1}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import SpecError

__all__ = ["merged_settings"]


def merged_settings(table: Mapping[str, Any], settings: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A ``{name = ..., setting = ...}`` table's settings with keyword settings; one given in both is an error."""
    twice = sorted(set(table) & set(settings))
    if twice:
        raise SpecError(f"{what} setting {twice[0]!r} is given twice")
    return {**table, **settings}
