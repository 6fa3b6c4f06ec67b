"""Shared fixtures: the seed networks used across the test modules."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

# The README's training figures (seed 003's SGD runs, the sweep) are chaotic in the last bit: OpenBLAS
# picks its matrix kernels by CPU, and its Zen/Haswell and Skylake-X kernels round differently, so the
# same run ends at 89.3 % on one machine and 88.8 % on another.  The figures are made with the AVX2
# (Haswell) kernels, which every x86-64 machine of the last decade runs; scripts/test.sh and
# scripts/readme_figures.py pin them too.  It takes effect only if NumPy is not loaded yet.
BLAS_KERNELS = "Haswell"
BLAS_PINNED = os.environ.setdefault("OPENBLAS_CORETYPE", BLAS_KERNELS) == BLAS_KERNELS and "numpy" not in sys.modules

import pytest

import symback

from .tools import load_example

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def seed002() -> symback.Spec:
    """Seed 002's 1-2-1 softplus network with its printed parameters and three examples."""
    return symback.load_spec(EXAMPLES / "seed002.toml")


@pytest.fixture
def chain_network() -> symback.Network:
    """3Blue1Brown's chain: one neuron per layer (seed 001)."""
    return symback.Network([1, 1, 1, 1], "sigmoid", "squared_error")


@pytest.fixture(scope="session")
def seed003_run(tmp_path_factory):
    """Seed 003's example in full, run once a session (about 15 s of CPU): tests/test_seed003.py checks
    it, its tables and pictures, and tests/test_readme_figures.py the README's figures from it.

    Returns (results, what it printed, the folder it wrote).
    """
    out = tmp_path_factory.mktemp("seed003")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        results = load_example("seed003_gradients").run(out)
    return results, printed.getvalue(), out
