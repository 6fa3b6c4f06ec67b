"""Every seed example runs (fast mode where it trains) and shows what it claims, in numbers."""

from __future__ import annotations

from pathlib import Path

from .tools import load_example


def test_seed001_chain(capsys, tmp_path):
    results = load_example("seed001_chain").run(tmp_path)
    out = capsys.readouterr().out
    assert "∂C/∂w(L) = ∂C/∂a(L) · ∂a(L)/∂z(L) · ∂z(L)/∂w(L)" in out
    assert "∂z(L)/∂b(L) = 1" in out and "∂z(L)/∂a(L-1) = w(L)" in out
    assert results["w(L-2) factors"] == 7
    assert results["paths for a(L-1)_2"] == 2
    # a(L-1) = σ(z(L-1)) is in (0, 1), and ∂C/∂b(L) = ∂C/∂w(L) / a(L-1) for the chain.
    ratio = results["w(L)"] / results["b(L)"]
    assert 0 < ratio < 1
    written = {Path(p).suffix for p in results["reports"]}
    assert {".html", ".md", ".tex"} <= written
    assert "a^{(L-1)}" in (tmp_path / "seed001_chain.tex").read_text(encoding="utf-8")
