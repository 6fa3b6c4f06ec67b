"""Time reports: seed 002 in each format, pdflatex's share, and 625-20-20-10 in index form.

Run: python benchmarks/bench_report.py  (prints measured seconds; nothing here is asserted)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import symback  # noqa: E402
from symback.render.report import build_report, compile_pdf, render, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def timed(function, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    spec = symback.load_spec(ROOT / "examples" / "seed002.toml")
    descent = {"learning_rate": 0.1, "tolerance": 1e-3, "max_steps": 1000}
    with tempfile.TemporaryDirectory() as work:
        for fmt in ("tex", "html", "md", "pdf"):
            if fmt == "pdf" and shutil.which("pdflatex") is None:
                print("pdf: pdflatex not installed")
                continue

            def run(fmt=fmt):
                d = symback.derive(spec.network, "b3")
                write_report(d, Path(work) / f"b3.{fmt}", params=spec.parameters, data=spec.data, descent=descent)

            print(f"seed 002 dSSR/db3 report, .{fmt}: {timed(run):.3f} s (derive + build + render + write)")
        if shutil.which("pdflatex"):
            tex = render(build_report(symback.derive(spec.network, "b3"), spec.parameters, spec.data,
                                      descent=descent), "tex")
            print(f"pdflatex alone (two runs): {timed(lambda: compile_pdf(tex)):.3f} s")
    net = symback.Network([625, 20, 20, 10], "sigmoid", "squared_error")

    def big() -> None:
        render(build_report(symback.derive(net, "w(1)_3_7")), "tex")

    def whole() -> None:
        render(build_report(net), "tex")

    print(f"625-20-20-10 dC/dw(1)_3_7 index-form report (.tex): {timed(big):.3f} s")
    print(f"625-20-20-10 whole-network δ report (.tex): {timed(whole):.3f} s")


if __name__ == "__main__":
    main()
