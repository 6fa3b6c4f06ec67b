"""Files symback ships: templates and the example specs the demo uses.

In an installed wheel they live inside the package: the wheel build
(pyproject.toml) force-includes the top-level ``templates/`` folder as
``symback/templates`` and three files of ``examples/`` (seed002.toml,
seed002_claims.toml, digits.toml) into ``symback/examples``; in a source
checkout they are the top-level ``templates/`` and ``examples/``.  This is
the one place that knows both layouts.

>>> (locate("templates", "report.tex.j2") / "report.tex.j2").is_file()
True
"""

from __future__ import annotations

from pathlib import Path

from .errors import SymbackError

__all__ = ["example_file", "locate"]

_PACKAGE = Path(__file__).resolve().parent


def locate(folder: str, marker: str) -> Path:
    """The folder ``folder`` that holds ``marker``: inside the package first, else beside it in a checkout."""
    for candidate in (_PACKAGE / folder, _PACKAGE.parent / folder):
        if (candidate / marker).is_file():
            return candidate
    raise SymbackError(f"{folder}/{marker} not found next to {_PACKAGE} (reinstall symback)")


def example_file(name: str) -> Path:
    """A file of ``examples/`` that ships with the package, e.g. ``seed002.toml``."""
    return locate("examples", name) / name
