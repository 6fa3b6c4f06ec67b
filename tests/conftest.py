"""Shared fixtures: the seed networks used across the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

import symback

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
