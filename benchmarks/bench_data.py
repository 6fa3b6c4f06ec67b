"""Reading a large inline [data] array: tomllib alone (the old path) against symback's bulk reader.

Writes a spec and a claims file whose [data] x is N rows of 20 random numbers (about SIZE MB of
TOML), then times reading it both ways and the peak memory (tracemalloc) of each, and checks that
both give bit-identical arrays.  Run:  python benchmarks/bench_data.py [SIZE_MB]  (default 75).
The machine is noisy: compare the ratios, not absolute times.
"""

from __future__ import annotations

import sys
import tempfile
import time
import tomllib
import tracemalloc
from decimal import Decimal
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from symback.data import Dataset, loads_with_data_arrays  # noqa: E402
from symback.files import read_text  # noqa: E402
from symback.verification.claims import _plain  # noqa: E402

WIDTH = 20


def make_text(megabytes: float) -> str:
    rows = max(1, int(megabytes * 1e6 / (WIDTH * 21)))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, WIDTH))
    body = ",\n".join("[" + ", ".join(map(repr, row.tolist())) + "]" for row in x)
    y = ", ".join(map(repr, rng.standard_normal(rows).tolist()))
    return f"[network]\nlayers = [{WIDTH}, 3, 1]\n\n[data]\nx = [{body}]\ny = [{y}]\n"


def old_spec(text: str) -> Dataset:
    table = tomllib.loads(text)["data"]
    return Dataset.from_arrays(table["x"], table["y"])


def new_spec(text: str) -> Dataset:
    table = loads_with_data_arrays(text, tomllib.loads)["data"]
    return Dataset.from_arrays(table["x"], table["y"])


def old_claims(text: str) -> Dataset:  # claims files parse floats as Decimal, then back to float
    table = _plain(tomllib.loads(text, parse_float=Decimal)["data"])
    return Dataset.from_arrays(table["x"], table["y"])


def new_claims(text: str) -> Dataset:
    table = _plain(loads_with_data_arrays(text, lambda rest: tomllib.loads(rest, parse_float=Decimal))["data"])
    return Dataset.from_arrays(table["x"], table["y"])


def measure(read, text: str) -> tuple[float, float, Dataset]:
    start = time.perf_counter()
    data = read(text)
    seconds = time.perf_counter() - start
    del data
    tracemalloc.start()
    data = read(text)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak / 2**20, data


def main() -> None:
    megabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 75.0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.toml"
        path.write_text(make_text(megabytes), encoding="utf-8")
        start = time.perf_counter()
        text = read_text(path, "spec file")
        print(f"file        {len(text) / 1e6:.1f} MB, read as text in {time.perf_counter() - start:.2f} s")
    results = {}
    for name, read in (("spec old", old_spec), ("spec new", new_spec), ("claims old", old_claims), ("claims new", new_claims)):
        seconds, peak, data = measure(read, text)
        results[name] = (seconds, peak, data)
        print(f"{name:<11} {seconds:7.2f} s   peak {peak:7.0f} MiB   x {data.X.shape}")
    for kind in ("spec", "claims"):
        old, new = results[f"{kind} old"], results[f"{kind} new"]
        same = np.array_equal(old[2].X, new[2].X) and np.array_equal(old[2].Y, new[2].Y)
        print(f"{kind:<11} {old[0] / new[0]:5.1f}x faster, {old[1] / new[1]:5.1f}x less memory, identical: {same}")


if __name__ == "__main__":
    main()
