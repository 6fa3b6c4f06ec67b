"""Sweeps: the grid, runs identical to plain Trainer runs, the tables and picture, Ctrl-C, and `symback sweep`."""

from __future__ import annotations

import csv
import io
import json
import math
import sys

import numpy as np
import pytest

from symback import Dataset, Network, Parameters, SpecError, UnknownNameError
from symback.cli import main
from symback.training import sweep
from symback.training.plots import PLOT_HINT
from symback.training.sweep import Run, grid, run_sweep, with_hidden_activation, write_sweep
from symback.training.train import Trainer, TrainingConfig

from .tools import distinct_colours, png_pixels, require_module


def _classes(n: int = 90, seed: int = 3) -> Dataset:
    """Three seeded classes in 4-D: the label is the argmax of a fixed linear map."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    labels = (X @ rng.normal(size=(4, 3))).argmax(axis=1)
    return Dataset(X, np.eye(3)[labels])


@pytest.fixture
def problem():
    net = Network([4, 6, 6, 3], ["sigmoid", "sigmoid", "softmax"], "categorical_cross_entropy")
    data = _classes()
    return net, Parameters.initialize(net, seed=1), data.take(np.arange(70)), data.take(np.arange(70, 90))


def _hide_matplotlib(monkeypatch) -> None:
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError


# -- the grid -------------------------------------------------------------------------------------------


def test_grid_is_every_combination_learning_rate_slowest_and_labels_name_what_varies():
    runs = grid(learning_rates=[0.1, 0.5], activations=["sigmoid", "relu"], optimizers=["sgd", "adam"])
    assert len(runs) == 8
    assert [(r.learning_rate, r.activation.name, r.optimizer) for r in runs[:3]] == [
        (0.1, "sigmoid", "sgd"), (0.1, "sigmoid", "adam"), (0.1, "relu", "sgd")]
    assert runs[0].label == "η=0.1 · sigmoid · sgd"
    only_rates = grid(learning_rates=[0.1, 0.1, 1])  # duplicates dropped
    assert [r.label for r in only_rates] == ["η=0.1", "η=1"]
    assert only_rates[0].activation is None and only_rates[0].optimizer_name == "sgd"
    leaky = grid(activations=[{"name": "leaky_relu", "slope": 0.2}, "tanh"])
    assert [r.label for r in leaky] == ["leaky_relu(slope=0.2)", "tanh"]
    assert grid()[0].label == "η=0.1 · sgd"  # a single run still says what it is


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"activations": ["sigmoid", "nope"]}, UnknownNameError, "unknown activation 'nope'"),
        ({"optimizers": ["adamw"]}, UnknownNameError, "unknown optimizer 'adamw'"),
        ({"learning_rates": [0.1, -1.0]}, SpecError, "positive number, not -1.0"),
        ({"learning_rates": [float("nan")]}, SpecError, "positive number"),
        ({"learning_rates": ["fast"]}, SpecError, "positive number, not 'fast'"),
        ({"learning_rates": []}, SpecError, "at least one learning_rate"),
        ({"activations": [{"name": "softmax"}]}, SpecError, "only supported on the output layer"),
    ],
)
def test_grid_rejects_bad_settings_before_training(kwargs, error, message):
    with pytest.raises(error, match=message):
        runs = grid(**kwargs)
        with_hidden_activation(Network([2, 3, 1]), runs[0].activation)


def test_with_hidden_activation_keeps_output_names_and_frozen_parameters():
    net = Network([1, 2, 1], ["softplus", "identity"], "ssr", names={"b(2)": "b3", "output": "predicted"},
                  trainable=["b3"])
    relu = with_hidden_activation(net, "relu")
    assert [a.name for a in relu.activations] == ["relu", "identity"]
    assert relu.name_of(relu.resolve("b3")) == "b3" and relu.group_names == {"output": "predicted"}
    assert relu.frozen == net.frozen and len(relu.frozen) == net.n_parameters - 1
    with pytest.raises(SpecError, match="has no hidden layer"):
        with_hidden_activation(Network([2, 1], "sigmoid"), "relu")


# -- running ----------------------------------------------------------------------------------------------


def test_every_run_is_exactly_the_trainer_run_with_those_settings(problem):
    net, params, train, test = problem
    before = params.copy()
    config = TrainingConfig(epochs=6, batch_size=16, seed=4)
    runs = grid(learning_rates=[0.05, 0.5], activations=["sigmoid", "tanh"], optimizers=["sgd", "adam"])
    result = run_sweep(net, params, train, runs, test=test, config=config)
    assert [r.run for r in result.results] == list(runs) and not result.interrupted
    for item in result.results:
        trained = with_hidden_activation(net, item.run.activation)
        settings = TrainingConfig(epochs=6, batch_size=16, seed=4, optimizer=item.run.optimizer,
                                  learning_rate=item.run.learning_rate)
        alone = Trainer(trained, settings).fit(params, train, test)
        assert item.loss == alone.history.loss  # same start, same shuffles: identical numbers
        assert item.gradient_norms == alone.history.gradient_norms
        assert item.test_accuracy == alone.history.test_accuracy[-1]
        # The final loss and accuracy are those of the parameters the run returned, not the running ones.
        assert item.final_loss == alone.final_loss != alone.history.loss[-1]
        assert item.accuracy == alone.final_accuracy
        assert item.epochs == 6 and item.stop_reason == "epochs" and item.seconds > 0
    for a, b in zip(params.weights + params.biases, before.weights + before.biases):
        np.testing.assert_array_equal(a, b)  # the caller's parameters are untouched
    rows = result.rows()
    assert rows[0]["activation"] == "sigmoid" and rows[1]["optimizer"] == "adam"
    assert all(0 <= row["test_accuracy"] <= 1 and 0 <= row["accuracy"] <= 1 for row in rows)
    assert result.best().final_loss == min(row["final_loss"] for row in rows)


def test_a_diverging_run_is_recorded_not_fatal():
    net = Network([1, 3, 1], ["tanh", "identity"], "ssr")
    data = Dataset.from_arrays(np.linspace(-3, 3, 20), np.linspace(-30, 30, 20))
    runs = grid(learning_rates=[0.001, 1e6])
    result = run_sweep(net, Parameters.initialize(net, seed=0), data, runs, config=TrainingConfig(epochs=20))
    calm, wild = result.results
    assert calm.stop_reason == "epochs" and calm.final_loss < calm.loss[0]
    assert wild.stop_reason == "non_finite" and "learning rate" in wild.message
    assert result.best() is calm
    document = json.loads(result.to_json())  # strict JSON: no NaN or Infinity
    assert document["runs"][1]["stop_reason"] == "non_finite"
    assert all(v is None or math.isfinite(v) for v in document["runs"][1]["loss_per_epoch"])


def test_activations_of_the_same_name_are_different_networks_with_different_labels(problem):
    """Two user formulas both called "mine" used to share one network (looked up by label) and one curve."""
    net, params, train, _ = problem
    runs = grid(activations=[{"formula": "tanh(z)", "name": "mine"}, {"formula": "z/(1+exp(-z))", "name": "mine"}])
    assert [r.label for r in runs] == ["mine: tanh(z)", "mine: z/(1 + exp(-z))"]
    result = run_sweep(net, params, train, runs, config=TrainingConfig(epochs=3))
    first, second = result.results
    reference = Trainer(with_hidden_activation(net, runs[1].activation), TrainingConfig(epochs=3, progress=False))
    assert second.loss == reference.fit(params, train).history.loss  # the second formula really trained
    assert first.loss != second.loss
    assert list(result.curves()) == [r.label for r in runs]


def test_optimizer_tables_differing_in_settings_keep_their_own_labels_and_curves(problem):
    net, params, train, _ = problem
    runs = grid(optimizers=[{"name": "momentum", "beta": 0.5}, {"name": "momentum", "beta": 0.9}, "sgd"])
    assert [r.label for r in runs] == ["momentum(beta=0.5)", "momentum(beta=0.9)", "sgd"]
    twins = grid(optimizers=["adam", {"name": "adam"}])  # the same optimizer written two ways: numbered
    assert [r.label for r in twins] == ["adam #1", "adam #2"]
    result = run_sweep(net, params, train, runs, config=TrainingConfig(epochs=2))
    assert len(result.curves()) == 3 and [row["optimizer"] for row in result.rows()] == ["momentum", "momentum", "sgd"]


def test_curves_keep_every_run_even_when_hand_made_labels_repeat():
    results = tuple(
        sweep.RunResult(Run("same", None, "sgd", rate), (1.0, rate), None, None, None, 2, 0.01, "epochs", "ok")
        for rate in (0.1, 0.2)
    )
    assert sweep.SweepResult(results).curves() == {"same": (1.0, 0.1), "same #2": (1.0, 0.2)}


def test_a_run_builds_its_optimizer_name_once(monkeypatch):
    run = Run("r", None, {"name": "adam", "beta1": 0.8}, 0.1)
    calls = []
    real = sweep.get_optimizer
    monkeypatch.setattr(sweep, "get_optimizer", lambda *a, **k: calls.append(a) or real(*a, **k))
    result = sweep.RunResult(run, (1.0,), None, None, None, 1, 0.01, "epochs", "ok")
    assert [result.row()["optimizer"] for _ in range(3)] == ["adam"] * 3
    assert len(calls) == 1


def test_ctrl_c_keeps_the_finished_runs(problem, monkeypatch):
    net, params, train, _ = problem
    runs = grid(learning_rates=[0.1, 0.2, 0.3], activations=["sigmoid", "relu"])

    class StopInSecondRun(Trainer):
        calls = 0

        def fit(self, *args, **kwargs):
            StopInSecondRun.calls += 1
            if StopInSecondRun.calls == 2:
                def ctrl_c(epoch, history):
                    if epoch == 3:
                        raise KeyboardInterrupt
                kwargs["callback"] = ctrl_c
            return super().fit(*args, **kwargs)

    monkeypatch.setattr(sweep, "Trainer", StopInSecondRun)
    result = run_sweep(net, params, train, runs, config=TrainingConfig(epochs=10))
    assert result.interrupted and len(result.results) == 2
    assert [r.epochs for r in result.results] == [10, 3]
    assert result.results[1].stop_reason == "interrupted"
    assert "interrupted" in result.markdown()

    class CtrlCWhileCompiling:
        def __init__(self, network):
            raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "Trainer", Trainer)
    monkeypatch.setattr(sweep, "CompiledNetwork", CtrlCWhileCompiling)
    stopped = run_sweep(net, params, train, runs, config=TrainingConfig(epochs=2))
    assert stopped.interrupted and stopped.results == ()


# -- writing ----------------------------------------------------------------------------------------------


def test_tables_agree_with_the_runs_and_the_picture_is_real(problem, tmp_path):
    require_module("matplotlib")
    net, params, train, test = problem
    runs = grid(learning_rates=[0.05, 0.5], optimizers=["sgd", "rmsprop"])
    result = run_sweep(net, params, train, runs, test=test, config=TrainingConfig(epochs=5, batch_size=10))
    files = write_sweep(result, tmp_path / "new" / "folder")
    assert sorted(p.name for p in files.paths) == ["sweep.csv", "sweep.json", "sweep.md", "sweep.png"]
    assert files.note is None
    assert sorted(p.name for p in files.markdown.parent.iterdir()) == sorted(p.name for p in files.paths)

    rows = list(csv.DictReader(io.StringIO(files.csv.read_text(encoding="utf-8"))))
    assert [row["run"] for row in rows] == [r.run.label for r in result.results]
    for row, item in zip(rows, result.results):
        assert float(row["final_loss"]) == item.final_loss and float(row["test_accuracy"]) == item.test_accuracy
        assert int(row["epochs"]) == 5 and row["stop_reason"] == "epochs"
    document = json.loads(files.json.read_text(encoding="utf-8"))
    assert [run["loss_per_epoch"] for run in document["runs"]] == [list(r.loss) for r in result.results]
    assert len(document["runs"][0]["gradient_norms_per_epoch"][0]) == net.depth
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "on 70 training / 20 test examples: up to 5 epochs, batch 10" in markdown
    assert markdown.count("\n| η=") == 4 and f"{result.results[0].final_loss:.4g}" in markdown

    png = files.picture.read_bytes()
    width, height, _, _ = png_pixels(png)
    assert width == 640 and 400 < height <= 450 and distinct_colours(png) > 10  # the legend below the axes


def test_without_matplotlib_the_tables_are_written_and_the_note_names_the_extra(problem, tmp_path, monkeypatch):
    _hide_matplotlib(monkeypatch)
    net, params, train, _ = problem
    result = run_sweep(net, params, train, grid(learning_rates=[0.1, 1.0]), config=TrainingConfig(epochs=2))
    files = write_sweep(result, tmp_path)
    assert files.picture is None and files.note == PLOT_HINT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.csv", "sweep.json", "sweep.md"]


def test_markdown_cells_cannot_be_split_by_a_label():
    label = "z/(1+exp(-z)) | x"
    item = sweep.RunResult(Run(label, None, "sgd", 0.1), (1.0, 0.5), None, None, None, 2, 0.01, "epochs", "ok")
    line = sweep.SweepResult((item,)).markdown().splitlines()[-1]
    assert line.startswith("| z/(1+exp(-z)) \\| x |") and line.count(" | ") == 10


def test_an_output_folder_that_is_a_file_is_a_one_line_error(problem, tmp_path):
    net, params, train, _ = problem
    result = run_sweep(net, params, train, grid(), config=TrainingConfig(epochs=1))
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(SpecError, match="is a file"):
        write_sweep(result, tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "mine"


# -- symback sweep ----------------------------------------------------------------------------------------

SPEC = """
[network]
layers = [2, 4, 1]
activations = ["tanh", "sigmoid"]
cost = "squared_error"

[data]
x = [[0, 0], [0, 1], [1, 0], [1, 1]]
y = [0, 1, 1, 0]

[training]
epochs = 30
learning_rate = 0.5
"""


def test_cli_sweep_writes_table_and_picture(tmp_path, capsys):
    spec = tmp_path / "xor.toml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    status = main(["sweep", str(spec), "--learning-rate", "0.5", "2", "--activation", "sigmoid", "relu",
                   "--optimizer", "sgd", "adam", "--epochs", "12", "-o", str(out)])
    printed = capsys.readouterr().out
    assert status == 0
    assert "sweep: 8 run(s)" in printed and "[8/8] η=2 · relu · adam" in printed
    assert "lowest final loss:" in printed
    rows = list(csv.DictReader(io.StringIO((out / "sweep.csv").read_text(encoding="utf-8"))))
    assert len(rows) == 8 and {row["epochs"] for row in rows} == {"12"}
    assert {row["activation"] for row in rows} == {"sigmoid", "relu"}
    assert (out / "sweep.png").exists() or "no picture: " + PLOT_HINT in printed


def test_cli_sweep_reads_the_sweep_section_and_flags_override_it(tmp_path, capsys):
    spec = tmp_path / "xor.toml"
    spec.write_text(SPEC + '\n[sweep]\nlearning_rate = [0.1, 1.0, 3.0]\noptimizer = "momentum"\n')
    assert main(["sweep", str(spec), "--epochs", "3", "-o", str(tmp_path / "a")]) == 0
    rows = json.loads((tmp_path / "a" / "sweep.json").read_text())["runs"]
    assert [(r["learning_rate"], r["optimizer"]) for r in rows] == [(0.1, "momentum"), (1.0, "momentum"),
                                                                    (3.0, "momentum")]
    assert main(["sweep", str(spec), "--epochs", "3", "--learning-rate", "0.2", "-o", str(tmp_path / "b")]) == 0
    rows = json.loads((tmp_path / "b" / "sweep.json").read_text())["runs"]
    assert [(r["learning_rate"], r["optimizer"], r["activation"]) for r in rows] == [(0.2, "momentum", "tanh")]
    capsys.readouterr()


@pytest.mark.parametrize(
    ("extra", "args", "message"),
    [
        ("", ["--activation", "sigmoid", "swish2"], "unknown activation 'swish2'"),
        ("", ["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
        ("", ["--learning-rate", "-0.1"], "positive number, not -0.1"),
        ("", ["--epochs", "-2"], "epochs must be a whole number"),
        ("\n[sweep]\nrate = [0.1]\n", [], "unknown key 'rate' in [sweep]"),
        ("\n[sweep]\nlearning_rate = []\n", [], "[sweep] learning_rate is an empty list"),
        ("\n[sweep]\nlearning_rate = [0.1, \"x\"]\n", [], "positive number, not 'x'"),
    ],
)
def test_cli_sweep_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, args, message):
    spec = tmp_path / "xor.toml"
    spec.write_text(SPEC + extra)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "-o", str(out), *args]) == 2
    error = capsys.readouterr().err
    assert error.startswith("symback: error: ") and message in error and error.count("\n") == 1
    assert not out.exists()  # nothing half-written


def test_cli_sweep_activation_needs_a_hidden_layer(tmp_path, capsys):
    spec = tmp_path / "one.toml"
    spec.write_text('[network]\nlayers = [2, 1]\n[data]\nx = [[0, 1]]\ny = [1]\n')
    assert main(["sweep", str(spec), "--activation", "relu", "-o", str(tmp_path / "out")]) == 2
    assert "has no hidden layer" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.toml"), "-o", str(tmp_path / "out")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_sweep_ctrl_c_writes_what_finished_and_exits_130(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "xor.toml"
    spec.write_text(SPEC)
    real = sweep.CompiledNetwork
    built = []

    def compile_then_ctrl_c(network):
        built.append(network)
        if len(built) == 2:
            raise KeyboardInterrupt
        return real(network)

    monkeypatch.setattr(sweep, "CompiledNetwork", compile_then_ctrl_c)
    status = main(["sweep", str(spec), "--activation", "sigmoid", "relu", "--epochs", "4", "-o", str(tmp_path / "o")])
    assert status == 130
    rows = list(csv.DictReader(io.StringIO((tmp_path / "o" / "sweep.csv").read_text(encoding="utf-8"))))
    assert [row["activation"] for row in rows] == ["sigmoid"]
    assert "interrupted" in (tmp_path / "o" / "sweep.md").read_text(encoding="utf-8")
    capsys.readouterr()


def test_every_command_spells_its_output_option_alike():
    """-o, --output and --out name the same option in every command that writes a file or folder."""
    from symback.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    with_output = {name: sub for name, sub in commands.items()
                   if any(action.dest in ("output", "out") for action in sub._actions)}
    assert {"sweep", "report", "verify", "demo"} <= set(with_output)
    for name, sub in with_output.items():
        required = [a for a in sub._actions if a.required and a.dest != "output" and not a.option_strings]
        positional = ["x"] * len(required)
        extra = ["--wrt", "b3"] if name == "report" else []
        values = {spelling: vars(sub.parse_args([*positional, *extra, spelling, "DEST"])) for spelling in
                  ("-o", "--output", "--out")}
        assert all(v.get("output") == "DEST" for v in values.values()), (name, values)
