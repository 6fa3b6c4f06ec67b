"""Helpers for tests that need an external tool (pdflatex, Chromium, PyTorch).

Outside CI a missing tool skips the test with the reason; in CI (CI=true) it is a failure,
because the README's test command installs every tool the tests need.
"""

from __future__ import annotations

import importlib
import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/test.sh installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"Python package {name} is not installed (scripts/test.sh installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
