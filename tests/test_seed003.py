"""Seed 003's example, the full run the README quotes: vanishing and exploding gradients, clipping, the sweeps."""

from __future__ import annotations

import contextlib
import csv
import io
import math
import sys
from pathlib import Path

import pytest

from symback import Dataset, Network, Parameters
from symback.training.plots import PLOT_HINT, have_matplotlib
from symback.training.sweep import grid, run_sweep
from symback.training.train import TrainingConfig

from .tools import distinct_colours, in_ci, load_example, png_pixels


def _load():
    return load_example("seed003_gradients")


@pytest.fixture()
def seed003(seed003_run):
    return seed003_run  # the full run, shared with the README figures (tests/conftest.py)


def test_the_chain_multiplies_one_sigmoid_slope_per_layer(seed003):
    results, printed, _ = seed003
    assert results["sigmoid max slope"] == 0.25
    assert results["chain slope factors"] == 9  # 625-16×8-10 has 9 layers after the input
    assert "σ'(0) = 1/4" in printed and "(1/4)^9 = 3.8e-06" in printed


def test_at_initialisation_sigmoid_vanishes_relu_holds_doubled_weights_explode(seed003):
    init = seed003[0]["init"]
    sigmoid, relu, leaky = init["sigmoid, Xavier"], init["relu, He"], init["leaky_relu, He"]
    exploding = init["leaky_relu, He × 2"]
    # Measured (seed 0): sigmoid 4.9e-05, sigmoid with He 3.8e-04, relu 5.55, leaky_relu 5.48.
    assert sigmoid["ratio"] < 1e-3 and init["sigmoid, He"]["ratio"] < 1e-2
    assert relu["ratio"] > 0.3 and leaky["ratio"] > 0.3
    # The first layer's gradient is the last one's × the product of the per-layer δ factors (≈ 0.24 for sigmoid).
    assert sigmoid["delta_factor"] < 0.5 < 0.6 < relu["delta_factor"] < 1.5
    assert 1.5 < exploding["delta_factor"] < 2.5
    assert exploding["total"] > 100 * leaky["total"]
    norms = sigmoid["norms"]
    assert norms[-1] / norms[0] == pytest.approx(1 / sigmoid["ratio"])


def test_training_sigmoid_stays_at_chance_with_sgd_relu_and_adaptive_optimizers_learn(seed003):
    results = seed003[0]
    rows = results["training"]
    chance = math.log(10)
    sigmoid_sgd = rows["sigmoid · sgd η=0.1"]
    assert sigmoid_sgd["final_loss"] > 0.97 * chance
    for label in ("sigmoid · rmsprop η=0.003", "sigmoid · adam η=0.01"):
        assert rows[label]["final_loss"] < sigmoid_sgd["final_loss"] - 0.05
    for optimizer in ("sgd η=0.1", "rmsprop η=0.003", "adam η=0.01"):
        for activation in ("relu", "leaky_relu"):
            # By test accuracy: the final parameters' loss is noisy with SGD (--fast, LeakyReLU: 3.2 at 35.7 %).
            assert rows[f"{activation} · {optimizer}"]["test_accuracy"] > rows[f"sigmoid · {optimizer}"]["test_accuracy"]
    assert all(row["epochs"] == results["epochs"] == 10 and row["stop_reason"] == "epochs" for row in rows.values())
    low, high = results["sgd first/last ratio"]["sigmoid"]
    assert high < 1e-3
    assert min(results["sgd first/last ratio"]["relu"]) > 0.1


def test_learning_rate_cannot_rescue_sigmoid_but_tunes_leaky_relu(seed003):
    rows = seed003[0]["learning rate"]
    assert all(rows[f"η={rate} · sigmoid"]["final_loss"] > 0.97 * math.log(10) for rate in ("0.01", "0.1", "1"))
    leaky = {rate: rows[f"η={rate} · leaky_relu(slope=0.01)"] for rate in ("0.01", "0.1", "1")}
    # By test accuracy: the final parameters' loss is noisy with SGD (--fast, η = 0.1: 3.2 at 35.7 %).
    assert leaky["0.1"]["test_accuracy"] > leaky["0.01"]["test_accuracy"] + 0.1
    assert leaky["1"]["stop_reason"] == "non_finite" or leaky["1"]["test_accuracy"] < leaky["0.1"]["test_accuracy"] - 0.1


def test_clipping_bounds_the_norm_and_the_step_and_keeps_the_loss_finite(seed003):
    clipping = seed003[0]["clipping"]
    assert clipping["no clipping"] == "non_finite"
    assert clipping["start norm"] > 100
    assert clipping["max clipped norm"] <= 1.0 * (1 + 1e-9)
    assert clipping["max step by value"] <= 0.05 * 0.1 * (1 + 1e-9)
    for key in ("clip_norm loss", "clip_value loss"):
        first, last = clipping[key]
        assert math.isfinite(first) and last < first / 5


def test_tables_are_written(seed003):
    results, printed, out = seed003
    markdown = (out / "seed003_gradients.md").read_text(encoding="utf-8")
    for heading in ("Per-layer gradients at initialisation", "Training: activation × optimizer",
                    "Per-layer gradient norms while training with SGD", "The learning rate", "Clipping"):
        assert f"## {heading}" in markdown
    first_layer = next(line for line in markdown.splitlines() if line.startswith("| 1 (L-8) |"))
    assert f"{results['init']['sigmoid, Xavier']['norms'][0]:.3g}" in first_layer
    rows = list(csv.DictReader(io.StringIO((out / "seed003_sweep_optimizers.csv").read_text(encoding="utf-8"))))
    assert [row["run"] for row in rows] == list(results["training"])
    assert float(rows[0]["final_loss"]) == results["training"][rows[0]["run"]]["final_loss"]
    assert (out / "seed003_sweep_learning_rate.json").exists()


def test_pictures_are_real_pngs(seed003):
    results, printed, out = seed003
    names = sorted(Path(p).name for p in results["files"] if p.endswith(".png"))
    if not have_matplotlib():
        if in_ci():
            pytest.fail("matplotlib is not installed (scripts/test.sh installs the plot extra)")
        assert names == [] and PLOT_HINT in printed
        return
    assert names == ["seed003_clipping_loss.png", "seed003_norms_leaky_relu.png", "seed003_norms_relu.png",
                     "seed003_norms_sigmoid.png", "seed003_sweep_learning_rate.png", "seed003_sweep_optimizers.png"]
    for name in names:
        png = (out / name).read_bytes()
        width, height, _, _ = png_pixels(png)
        assert width == 640 and 400 <= height <= 500, name  # taller by the legend rows below the axes
        assert distinct_colours(png) > 10, name


def test_without_matplotlib_the_example_writes_tables_and_prints_the_hint(tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    module = _load()
    net = Network([2, 3, 1], "sigmoid", "squared_error")
    data = Dataset.from_arrays([[0, 1], [1, 0]], [1, 0])
    small = run_sweep(net, Parameters.initialize(net, seed=0), data, grid(learning_rates=[0.1, 1.0]),
                      config=TrainingConfig(epochs=3))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        written = module._write(tmp_path, ["## a table\n"], {"seed003_norms_sigmoid": ("gradient_norm_curves",
                                {"layer 1": [1.0, 0.5]}, "title")}, small, small)
    assert PLOT_HINT in printed.getvalue()
    assert not [p for p in written if p.endswith(".png")] and not list(tmp_path.glob("*.png"))
    assert (tmp_path / "seed003_gradients.md").read_text(encoding="utf-8").endswith("## a table\n")
