"""benchmarks/bench_train.py: every peer runs or says why not, the final losses agree, and the agreement
check catches a peer that trains differently.  Nothing here looks at a timing."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from .conftest import ROOT

BENCH = ROOT / "benchmarks" / "bench_train.py"
RESULTS = ROOT / "benchmarks" / "results" / "bench_train.json"


def _bench():
    name = "symback_benchmark_bench_train"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One ``--smoke`` run as a user starts it (its own process, spawned children), with its JSON and output."""
    folder = tmp_path_factory.mktemp("bench_train")
    environment = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--json", str(folder / "results.json")],
        capture_output=True, text=True, env=environment, timeout=900,
    )
    results = json.loads((folder / "results.json").read_text()) if (folder / "results.json").exists() else None
    return done, results


def test_the_smoke_run_succeeds_and_writes_its_results(smoke):
    done, results = smoke
    assert done.returncode == 0, done.stdout + done.stderr
    assert results is not None and results["settings"]["mode"] == "smoke"


def test_every_peer_ran_or_says_why_not_in_every_configuration(smoke):
    bench = _bench()
    done, results = smoke
    plan = bench.PLANS["smoke"]
    rows = {(r["dtype"], r["batch"], r["method"]): r for r in results["throughput"]}
    assert set(rows) == {(d, b, m) for d, b in plan.configs for m in bench.METHODS}
    for (_, _, method), row in rows.items():
        if row["status"] == "ok":
            assert row["samples_per_s_best"] > 0 and math.isfinite(row["final_loss"]), row
        else:
            assert row["status"] == "refused" and row["reason"], row
            assert f"{method:<15} refused: {row['reason']}" in done.stdout
    # the fused backend trains float32 too (a refusal would be printed above, not dropped)
    assert rows["float32", 1, "symback-fused"]["status"] == rows["float64", 1, "symback-fused"]["status"] == "ok"
    assert all(rows[d, b, bench.REFERENCE]["ratio_best"] == 1.0 for d, b in plan.configs)


def test_the_final_losses_agree_with_hand_numpy(smoke):
    bench = _bench()
    _, results = smoke
    for check in results["agreement"]:
        ran = {r["method"] for r in results["throughput"]
               if (r["dtype"], r["batch"]) == (check["dtype"], check["batch"]) and r["status"] == "ok"}
        assert set(check["relative_differences"]) == ran and len(ran) > 4
        assert check["agree"], check
        assert check["tolerance"] == bench.tolerance(check["dtype"])


def test_memory_and_compile_times_are_measured_in_fresh_processes(smoke):
    _, results = smoke
    plan = _bench().PLANS["smoke"]
    assert {(m["dtype"], m["batch"], m["method"]) for m in results["memory"]} == {
        (d, b, m) for d, b in plan.memory_configs for m in plan.memory_methods
    }
    assert all(m["status"] == "ok" and m["growth_kib"] >= 0 and m["rss_before_kib"] > 0 for m in results["memory"])
    derive = results["compile"]["derive_and_compile"]
    assert derive["derive_s"] > 0 and derive["compile_s"] > 0
    assert [(j["method"], j["status"]) for j in results["compile"]["jit"]] == [("hand-jax-scan", "ok")]


def test_the_table_renders_every_method_of_the_run(smoke):
    bench = _bench()
    _, results = smoke
    table = bench.render_table(results)
    for method in bench.METHODS:
        assert f"| {method} |" in table
    # a refused cell (no method refuses in the smoke run: one row is marked so here) renders as such
    marked = copy.deepcopy(results)
    row = next(r for r in marked["throughput"] if r["method"] == "symback-fused")
    row.update(status="refused", reason="the fused backend cannot train this")
    table = bench.render_table(marked)
    assert "| refused |" in table or " refused |" in table


@pytest.mark.parametrize(("dtype", "factor"), [("float64", 1 + 1e-6), ("float32", 1.001)])
def test_the_agreement_check_catches_a_peer_that_trains_differently(monkeypatch, dtype, factor):
    """A hand-numpy whose learning rate is off by ``factor`` fails the check; an identical copy passes it."""
    bench = _bench()

    class Perturbed(bench.HandNumPy):
        name = "perturbed"
        rate = bench.RATE * factor

    class Same(bench.HandNumPy):
        name = "same"

    monkeypatch.setitem(bench.METHODS, "perturbed", Perturbed)
    monkeypatch.setitem(bench.METHODS, "same", Same)
    timings, check = bench.throughput([bench.REFERENCE, "same", "perturbed"], bench.Workload(dtype, 4, 32), 1)
    assert check["disagree"] == ["perturbed"] and not check["agree"]
    assert check["relative_differences"]["same"] == 0.0
    assert {t.method: t.status for t in timings} == {bench.REFERENCE: "ok", "same": "ok", "perturbed": "ok"}


def test_the_readme_table_is_the_committed_results_rendered():
    """The README's speed figures are exactly what the committed JSON renders to (rerun: the table's marker)."""
    bench = _bench()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    begin, end = readme.index(bench.TABLE_BEGIN) + len(bench.TABLE_BEGIN), readme.index(bench.TABLE_END)
    table = bench.render_table(json.loads(RESULTS.read_text(encoding="utf-8")))
    assert readme[begin:end].strip() == table
    assert bench.replace_table(readme, table) == readme
    changed = bench.replace_table(readme, table.replace("×", "x", 1))
    assert changed != readme and changed[begin:end].strip() != table


def test_the_committed_results_describe_the_machine_and_every_target():
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    machine = results["machine"]
    assert machine["cores"] >= 1 and machine["cpu"] and len(machine["loadavg"]) == 3
    assert {"numpy", "jax", "numba", "torch"} <= set(machine["versions"])
    assert results["settings"]["mode"] == "full"
    assert all(check["agree"] for check in results["agreement"])
    methods = {r["method"] for r in results["throughput"]}
    assert set(_bench().METHODS) <= methods


def test_the_targets_table_says_met_only_where_every_configuration_meets_it():
    """Issue 16's targets are read off the results: moving one number across its threshold flips the row."""
    bench = _bench()
    results = json.loads(RESULTS.read_text(encoding="utf-8"))

    def batch_one_met(factor: float) -> bool | None:
        changed = copy.deepcopy(results)
        rows = {(r["dtype"], r["batch"], r["method"]): r for r in changed["throughput"]}
        for dtype in ("float64", "float32"):
            scan = rows[dtype, 1, "hand-jax-scan"]["samples_per_s_best"]
            for name in bench.BACKENDS:
                rows[dtype, 1, name]["samples_per_s_best"] = scan * factor * (0.5 if name != "symback-fused" else 1)
        return bench.target_rows(changed)[0][2]

    assert batch_one_met(1.01) is True and batch_one_met(0.99) is False
    memory = copy.deepcopy(results)
    for m in memory["memory"]:
        if m["method"] == "symback-numpy":
            m["first_epoch_ratio"] = 1.2
    assert bench.target_rows(memory)[4][2] is True
    memory["memory"][[m["method"] for m in memory["memory"]].index("symback-numpy")]["first_epoch_ratio"] = 1.21
    assert bench.target_rows(memory)[4][2] is False
    assert [met for _, _, met in bench.target_rows({"throughput": []})] == [None] * 6
