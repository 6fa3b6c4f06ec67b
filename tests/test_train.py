"""The trainer: seed 002's b3, stopping rules, clipping, NaN stop, Ctrl-C checkpoint, save/load/resume,
the spec section and CLI, and a (short, untimed) run on the shipped digits."""

from __future__ import annotations

import io
import json
import signal
from dataclasses import replace

import numpy as np
import pytest

import symback
from symback import Dataset, Network, Parameters
from symback.cli import main
from symback.compile.compiler import CompiledNetwork
from symback.errors import SpecError, SymbackError
from symback.training.train import (
    Trainer,
    TrainingConfig,
    load_checkpoint,
    load_parameters,
    save_parameters,
    training_data,
)

from .conftest import EXAMPLES


def _b3(spec, params):
    return params.get(spec.network.resolve("b3"))


def _prediction_without_b3(spec):
    params = spec.parameters.copy()
    params.set(spec.network.resolve("b3"), 0.0)
    return CompiledNetwork(spec.network).predict(params, spec.data.X)[:, 0]


def test_seed002_b3_alone_ends_near_2_61_and_the_exact_optimum(seed002):
    config = TrainingConfig(optimizer="sgd", learning_rate=0.1, epochs=1000, tolerance=0.001)
    result = Trainer(seed002.network, config).fit(seed002.parameters, seed002.data)
    b3 = _b3(seed002, result.parameters)
    assert result.stop_reason == "tolerance"
    assert b3 == pytest.approx(2.61, abs=0.005)
    # With only b3 free, SSR = Σ (y − (p + b3))² is minimal at b3* = mean(y − p).
    optimum = float(np.mean(seed002.data.Y[:, 0] - _prediction_without_b3(seed002)))
    assert optimum == pytest.approx(2.6092, abs=1e-4)
    # The rule stops once 0.1·|dSSR/db3| = 0.1·6·|b3 − b3*| < 0.001, so |b3 − b3*| < 0.001/0.6.
    assert abs(b3 - optimum) < 0.001 / 0.6
    assert result.history.step_sizes[-1] < 0.001 <= result.history.step_sizes[-2]
    assert result.history.loss[0] == pytest.approx(20.42, abs=0.01)
    # Every other parameter is frozen and unchanged.
    changed = result.parameters.flat() != seed002.parameters.flat()
    assert changed.sum() == 1


def test_seed002_printed_2_21_is_two_steps_of_the_same_descent(seed002):
    """Seed 002's slopes (−15.7 at b3 = 0, −6.26 at the next b3) are those of b3 = 0 → 1.57 → 2.196:
    it subtracts the step (new b3 = 0 − (−1.57) = 1.57, though it writes 0 + (−1.57)) and stopped after
    two steps, at 2.196 ≈ 2.2, while the step was still 0.25, far above its own 0.001 rule."""
    config = TrainingConfig(optimizer="sgd", learning_rate=0.1, epochs=2)
    result = Trainer(seed002.network, config).fit(seed002.parameters, seed002.data)
    compiled = CompiledNetwork(seed002.network)
    start = compiled.gradient(seed002.parameters, seed002.data).biases[1][0]
    assert start == pytest.approx(-15.7, abs=0.05)
    # 2.1917 from the exact slope −15.655; seed 002's 2.196 comes from its rounded −15.7 and −6.26
    assert _b3(seed002, result.parameters) == pytest.approx(2.196, abs=0.005)
    after_one = Trainer(seed002.network, TrainingConfig(learning_rate=0.1, epochs=1)).fit(
        seed002.parameters, seed002.data
    ).parameters
    assert _b3(seed002, after_one) == pytest.approx(+1.57, abs=0.005)  # seed 002 writes −1.57
    assert compiled.gradient(after_one, seed002.data).biases[1][0] == pytest.approx(-6.26, abs=0.01)


def test_loss_target_stops_early():
    net = Network([2, 3, 1], "tanh", "squared_error")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    data = Dataset(X, np.tanh(X[:, :1] - X[:, 1:]))
    config = TrainingConfig(optimizer="adam", learning_rate=0.05, epochs=2000, loss_target=0.01)
    result = Trainer(net, config).fit(Parameters.initialize(net, seed=0), data)
    assert result.stop_reason == "loss_target"
    assert result.history.loss[-1] <= 0.01 < result.history.loss[-2]
    assert result.epochs < 2000


def test_mini_batches_shuffle_reproducibly_with_a_seed():
    net = Network([2, 3, 1], "sigmoid", "squared_error")
    rng = np.random.default_rng(1)
    data = Dataset(rng.normal(size=(25, 2)), rng.uniform(size=(25, 1)))
    params = Parameters.initialize(net, seed=0)

    def run(seed):
        config = TrainingConfig(learning_rate=0.5, epochs=3, batch_size=4, seed=seed)
        return Trainer(net, config).fit(params, data)

    assert run(3).parameters == run(3).parameters
    assert run(3).parameters != run(4).parameters
    assert run(3).steps == 3 * 7  # ceil(25 / 4) steps per epoch


def _one_step_change(config_kwargs):
    net = Network([2, 1], "identity", "squared_error")
    params = Parameters([np.array([[1.0, 1.0]])], [np.array([0.0])])
    data = Dataset(np.array([[10.0, -5.0]]), np.array([[100.0]]))
    config = TrainingConfig(optimizer="sgd", learning_rate=1.0, epochs=1, **config_kwargs)
    result = Trainer(net, config).fit(params, data)
    # gradient: 2(a − y)·x = 2(5 − 100)·(10, −5) = (−1900, 950), and −190 for b
    return np.concatenate([result.parameters.weights[0].ravel(), result.parameters.biases[0]]) - [1.0, 1.0, 0.0]


def test_clipping_by_value_and_by_norm():
    np.testing.assert_allclose(_one_step_change({}), [1900.0, -950.0, 190.0])
    np.testing.assert_allclose(_one_step_change({"clip_value": 100.0}), [100.0, -100.0, 100.0])
    step = _one_step_change({"clip_norm": 3.0})
    assert np.linalg.norm(step) == pytest.approx(3.0)
    np.testing.assert_allclose(step / np.linalg.norm(step), np.array([1900.0, -950.0, 190.0]) / np.linalg.norm([1900.0, -950.0, 190.0]))


def test_non_finite_loss_stops_and_keeps_the_last_good_parameters():
    net = Network([1, 1], "identity", "squared_error")
    data = Dataset(np.array([[1e100]]), np.array([[0.0]]))
    params = Parameters([np.array([[1e-90]])], [np.array([0.0])])
    seen = []
    config = TrainingConfig(optimizer="sgd", learning_rate=1.0, epochs=50)
    result = Trainer(net, config).fit(params, data, callback=lambda epoch, h: seen.append(epoch))
    assert result.stop_reason == "non_finite"
    assert "became inf" in result.message and "last good step" in result.message
    assert np.all(np.isfinite(result.parameters.weights[0]))
    # The parameters are those after the last finite step; re-running those steps gives the same values.
    replay = Trainer(net, TrainingConfig(optimizer="sgd", learning_rate=1.0, epochs=len(seen))).fit(params, data)
    assert replay.parameters == result.parameters
    assert len(result.history.loss) == len(seen)


def test_ctrl_c_from_a_callback_saves_a_checkpoint_and_returns(tmp_path):
    net = Network([2, 3, 1], "sigmoid", "squared_error")
    rng = np.random.default_rng(2)
    data = Dataset(rng.normal(size=(10, 2)), rng.uniform(size=(10, 1)))
    path = tmp_path / "ckpt.npz"
    config = TrainingConfig(optimizer="adam", learning_rate=0.01, epochs=100, checkpoint=str(path))

    def interrupt(epoch, history):
        if epoch == 4:
            raise KeyboardInterrupt

    result = Trainer(net, config).fit(Parameters.initialize(net, seed=0), data, callback=interrupt)
    assert result.stop_reason == "interrupted" and result.epochs == 4
    assert str(path) in result.message
    checkpoint = load_checkpoint(path, net)
    assert checkpoint.epoch == 4 and checkpoint.parameters == result.parameters
    assert checkpoint.history.loss == result.history.loss
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_resume_continues_exactly_as_an_uninterrupted_run(tmp_path, optimizer):
    net = Network([3, 4, 2], "tanh", "squared_error")
    rng = np.random.default_rng(3)
    data = Dataset(rng.normal(size=(22, 3)), rng.normal(size=(22, 2)))
    params = Parameters.initialize(net, seed=0)
    base = {"optimizer": optimizer, "learning_rate": 0.01, "batch_size": 5, "seed": 9}
    straight = Trainer(net, TrainingConfig(epochs=6, **base)).fit(params, data)
    path = tmp_path / "half.npz"
    Trainer(net, TrainingConfig(epochs=3, checkpoint=str(path), **base)).fit(params, data)
    resumed = Trainer(net, TrainingConfig(epochs=6, **base)).fit(params, data, resume=path)
    assert resumed.parameters == straight.parameters  # bit for bit
    assert resumed.history.loss == straight.history.loss
    assert resumed.steps == straight.steps and resumed.epochs == 3


class _InterruptAt(CompiledNetwork):
    """Kernels that press Ctrl-C during the ``at``-th step: a real SIGINT (the step still runs and the
    trainer stops after it) or a KeyboardInterrupt raised inside the step (nothing of it is applied)."""

    def __init__(self, network, at, how):
        super().__init__(network)
        self.at, self.how, self.calls = at, how, 0

    def loss_and_gradient(self, params, X, Y, **options):
        self.calls += 1
        if self.calls == self.at:
            if self.how == "signal":
                signal.raise_signal(signal.SIGINT)
            else:
                raise KeyboardInterrupt
        return super().loss_and_gradient(params, X, Y, **options)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("how, done", [("signal", 15), ("raise", 10)])
def test_ctrl_c_inside_an_epoch_resumes_exactly(tmp_path, optimizer, how, done):
    """Interrupted in epoch 3's third batch (of 22 examples in batches of 5), then resumed: the same
    shuffled batches, the same partial sums, bit for bit the parameters and history of one straight run."""
    net = Network([3, 4, 3], ["tanh", "softmax"], "categorical_cross_entropy")
    rng = np.random.default_rng(8)
    X = rng.normal(size=(22, 3))
    data = Dataset(X, np.eye(3)[(X @ rng.normal(size=(3, 3))).argmax(axis=1)])
    params = Parameters.initialize(net, seed=0)
    base = {"optimizer": optimizer, "learning_rate": 0.05, "batch_size": 5, "seed": 4, "epochs": 6}
    straight = Trainer(net, TrainingConfig(**base)).fit(params, data)
    path = tmp_path / "mid.npz"
    kernels = _InterruptAt(net, at=2 * 5 + 3, how=how)
    stopped = Trainer(net, TrainingConfig(checkpoint=str(path), **base), compiled=kernels).fit(params, data)
    assert stopped.stop_reason == "interrupted" and stopped.epochs == 2 and len(stopped.history.loss) == 2
    assert f"and {done} of the 22 examples of epoch 3" in stopped.message
    checkpoint = load_checkpoint(path, net)
    assert checkpoint.epoch == 2 and checkpoint.progress is not None and checkpoint.progress.offset == done
    assert checkpoint.steps == 2 * 5 + done // 5
    resumed = Trainer(net, TrainingConfig(**base)).fit(params, data, resume=path)
    assert resumed.stop_reason == "epochs" and resumed.epochs == 4 and resumed.steps == straight.steps
    for mine, theirs in zip(resumed.parameters.weights + resumed.parameters.biases,
                            straight.parameters.weights + straight.parameters.biases):
        assert np.array_equal(mine, theirs)
    assert resumed.history.loss == straight.history.loss
    assert resumed.history.accuracy == straight.history.accuracy
    assert resumed.history.step_sizes == straight.history.step_sizes
    # A mid-epoch checkpoint only fits the batches it was cut from.
    with pytest.raises(SpecError, match="resume with the same data and batch size"):
        Trainer(net, TrainingConfig(**{**base, "batch_size": 4})).fit(params, data, resume=path)


def test_a_checkpoint_that_cannot_be_written_keeps_the_result(tmp_path):
    net = Network([2, 3, 1], "sigmoid", "squared_error")
    rng = np.random.default_rng(2)
    data = Dataset(rng.normal(size=(10, 2)), rng.uniform(size=(10, 1)))
    folder = tmp_path / "a-folder"
    folder.mkdir()
    config = TrainingConfig(epochs=5, checkpoint=str(folder), checkpoint_every=2)
    result = Trainer(net, config).fit(Parameters.initialize(net, seed=0), data)
    assert result.stop_reason == "epochs" and result.epochs == 5 and len(result.history.loss) == 5
    assert result.checkpoint is None
    assert "the checkpoint was not saved: cannot write" in result.message and "\n" not in result.message
    assert result.save_error.startswith("cannot write") and result.save_error in result.message
    assert result.stop_message == result.message.split("; the checkpoint")[0] and "saved" not in result.stop_message
    straight = Trainer(net, TrainingConfig(epochs=5)).fit(Parameters.initialize(net, seed=0), data)
    assert result.parameters == straight.parameters
    assert [p.name for p in tmp_path.iterdir()] == ["a-folder"] and not list(folder.iterdir())


def test_cli_refuses_a_folder_as_save_path_before_training(tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["train", str(EXAMPLES / "seed002.toml"), "--save", str(folder), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "is a folder" in captured.err and captured.err.count("\n") == 1
    assert "stopped" not in captured.out  # refused before any training


def test_cli_prints_the_trained_result_when_the_save_fails(tmp_path, capsys, monkeypatch):
    import symback.training.train

    def full_disk(path, payload):
        raise SymbackError(f"cannot write {str(path)!r}: No space left on device")

    monkeypatch.setattr(symback.training.train, "write_atomic", full_disk)
    status = main(["train", str(EXAMPLES / "seed002.toml"), "--learning-rate", "0.1", "--tolerance", "0.001",
                   "--epochs", "1000", "--save", str(tmp_path / "b3.npz"), "--quiet"])
    captured = capsys.readouterr()
    printed = captured.out
    assert status == 2
    assert "stopped     tolerance" in printed and "not saved" not in printed  # the error goes to stderr
    assert captured.err.startswith("symback: error: the trained parameters were not saved: cannot write")
    assert captured.err.count("\n") == 1
    b3_line = next(line for line in printed.splitlines() if line.startswith("b3 "))
    assert float(b3_line.split()[1]) == pytest.approx(2.61, abs=0.005)  # the result is still shown
    assert "saved  " not in printed


def test_float32_update_overflow_stops_with_the_last_good_parameters():
    """η·g overflows float32 (2e40) though the loss and gradient are finite: the step is not applied."""
    net = Network([1, 1], "identity", "squared_error")
    params = Parameters([np.array([[2.5e-21]])], [np.array([0.0])])
    data = Dataset(np.array([[1.0]]), np.array([[0.0]]))
    config = TrainingConfig(optimizer="sgd", learning_rate=1e30, epochs=5, dtype="float32")
    result = Trainer(net, config).fit(params, data)
    assert result.stop_reason == "non_finite" and "overflows float32" in result.message
    assert "last good step" in result.message and result.steps == 1
    assert all(np.all(np.isfinite(a)) for a in result.parameters.weights + result.parameters.biases)
    one_step = Trainer(net, TrainingConfig(optimizer="sgd", learning_rate=1e30, epochs=1, dtype="float32")).fit(params, data)
    assert one_step.stop_reason == "epochs"
    assert result.parameters == one_step.parameters


def test_clip_norm_in_float32_does_not_zero_a_large_gradient():
    """Entries of about 2e20 square beyond float32; the norm is summed in float64, so the step is clip_norm long."""
    net = Network([2, 1], "identity", "squared_error")
    params = Parameters([np.array([[1.0, 1.0]])], [np.array([0.0])])
    data = Dataset(np.array([[1e10, -5e9]]), np.array([[0.0]]))
    config = TrainingConfig(optimizer="sgd", learning_rate=1.0, epochs=1, clip_norm=3.0, dtype="float32")
    result = Trainer(net, config).fit(params, data)
    step = np.concatenate([result.parameters.weights[0].ravel(), result.parameters.biases[0]]) - [1.0, 1.0, 0.0]
    assert np.linalg.norm(step) == pytest.approx(3.0, rel=1e-5)
    # gradient 2(a − y)·(x, 1) with a = 5e9: the direction of (1e10, −5e9, 1), downhill
    direction = -np.array([1e10, -5e9, 1.0]) / np.linalg.norm([1e10, -5e9, 1.0])
    np.testing.assert_allclose(step / 3.0, direction, rtol=1e-5, atol=1e-6)


def test_bad_parameter_and_checkpoint_files_are_one_line(tmp_path, capsys):
    net = Network([1, 1], "identity", "squared_error")
    lone = tmp_path / "w.npy"
    np.save(lone, np.ones(3))
    for load in (load_parameters, load_checkpoint):
        with pytest.raises(SpecError, match="single .npy array"):
            load(lone, net)
    spec = str(EXAMPLES / "seed002.toml")
    for option in ("--init-from", "--resume"):
        assert main(["train", spec, option, str(lone), "--quiet", "--epochs", "1"]) == 2
        assert "single .npy array" in capsys.readouterr().err
    good = tmp_path / "good.npz"
    Trainer(net, TrainingConfig(epochs=1, checkpoint=str(good))).fit(
        Parameters.zeros(net), Dataset(np.array([[1.0]]), np.array([[2.0]])))
    archive = dict(np.load(good, allow_pickle=False))
    meta = json.loads(str(archive["meta"]))
    damaged = [
        {k: v for k, v in meta.items() if k != "epoch"},
        {k: v for k, v in meta.items() if k != "optimizer"},
        {**meta, "steps": -1},
        {**meta, "rng_state": {"bit_generator": "PCG64", "state": "nonsense"}},
        {**meta, "progress": {"offset": 1}},
        ["not", "an", "object"],
    ]
    for index, bad in enumerate(damaged):
        path = tmp_path / f"bad{index}.npz"
        np.savez(path, **{**archive, "meta": np.array(json.dumps(bad))})
        with pytest.raises(SpecError, match="damaged checkpoint metadata"):
            load_checkpoint(path, net)
    assert load_checkpoint(good, net).epoch == 1


def test_training_data_is_built_in_the_training_dtype():
    spec = symback.load_spec(EXAMPLES / "digits.toml")
    config = TrainingConfig.from_section(spec.sections["training"], dtype="float32", epochs=1)
    train, test = training_data(spec, config)
    assert train.X.dtype == train.Y.dtype == test.X.dtype == np.float32
    assert train.astype(np.float32).X is train.X  # fit's conversion is then no copy


def test_save_and_load_parameters_round_trip_exactly(tmp_path):
    net = Network([4, 3, 2], "sigmoid", "squared_error")
    params = Parameters.initialize(net, "normal", seed=11)
    path = tmp_path / "p.npz"
    save_parameters(path, params)
    loaded = load_parameters(path, net)
    assert loaded == params and loaded.weights[0].dtype == np.float64
    with pytest.raises(SpecError, match="shape"):
        load_parameters(path, Network([4, 5, 2], "sigmoid", "squared_error"))
    with pytest.raises(SpecError, match="not found"):
        load_parameters(tmp_path / "missing.npz", net)
    with pytest.raises(SpecError, match="no training state"):
        load_checkpoint(path, net)


def test_history_has_per_layer_norms_accuracy_and_test_metrics():
    net = Network([2, 4, 2], ["tanh", "softmax"], "categorical_cross_entropy")
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 2))
    labels = (X[:, 0] + X[:, 1] > 0).astype(int)
    data = Dataset(X, np.eye(2)[labels])
    train, test = data.take(slice(0, 40)), data.take(slice(40, 60))
    config = TrainingConfig(optimizer="adam", learning_rate=0.05, epochs=60)
    result = Trainer(net, config).fit(Parameters.initialize(net, seed=0), train, test)
    history = result.history
    assert len(history.loss) == len(history.accuracy) == len(history.test_accuracy) == len(history.test_loss) == 60
    assert all(len(norms) == 2 for norms in history.gradient_norms)
    assert history.accuracy[-1] >= 0.9 and history.test_accuracy[-1] >= 0.85
    assert history.loss[-1] < history.loss[0]
    final = CompiledNetwork(net).gradient(result.parameters, train)  # norms are of real gradients
    assert all(n >= 0 for n in final.layer_norms())


def test_progress_bar_only_when_asked_or_on_a_terminal():
    net = Network([1, 1], "identity", "squared_error")
    data = Dataset(np.array([[1.0]]), np.array([[2.0]]))
    quiet, loud = io.StringIO(), io.StringIO()
    Trainer(net, TrainingConfig(epochs=3), stream=quiet).fit(Parameters.zeros(net), data)
    Trainer(net, TrainingConfig(epochs=3, progress=True), stream=loud).fit(Parameters.zeros(net), data)
    assert quiet.getvalue() == ""
    assert "epoch 3/3" in loud.getvalue() and loud.getvalue().endswith("\n")


@pytest.mark.parametrize(
    "section, message",
    [
        ({"epoch": 3}, "unknown key 'epoch' in [training]"),
        ({"learning_rate": -0.1}, "learning_rate must be positive"),
        ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
        ({"optimizer": "nadam"}, "unknown optimizer 'nadam'"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"shuffle": "yes"}, "shuffle must be true or false"),
    ],
)
def test_training_section_errors_are_one_line(section, message):
    with pytest.raises(SymbackError) as error:
        TrainingConfig.from_section(section)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_cli_trains_seed002_and_saves(tmp_path, capsys):
    out = tmp_path / "b3.npz"
    status = main(["train", str(EXAMPLES / "seed002.toml"), "--learning-rate", "0.1", "--tolerance", "0.001",
                   "--epochs", "1000", "--save", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert status == 0
    assert "stopped     tolerance" in printed
    b3_line = next(line for line in printed.splitlines() if line.startswith("b3 "))
    assert float(b3_line.split()[1]) == pytest.approx(2.61, abs=0.005)
    spec = symback.load_spec(EXAMPLES / "seed002.toml")
    assert _b3(spec, load_parameters(out, spec.network)) == pytest.approx(float(b3_line.split()[1]), abs=1e-5)


def test_cli_bad_training_key_is_exit_2(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text((EXAMPLES / "seed002.toml").read_text() + "\n[training]\nlearning_rat = 0.1\n")
    assert main(["train", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'learning_rat' in [training]" in err and err.count("\n") == 1


def test_digits_short_run_reaches_a_meaningful_accuracy():
    """Seed 000's 625-20-20-10 on the shipped digits: 5 epochs (the example runs 40 for ≥ 90 %)."""
    spec = symback.load_spec(EXAMPLES / "digits.toml")
    config = TrainingConfig.from_section(spec.sections["training"], epochs=5)
    train, test = training_data(spec, config)
    assert (len(train), len(test)) == (4000, 1000)
    result = Trainer(spec.network, config).fit(spec.parameters, train, test)
    assert result.history.test_accuracy[-1] >= 0.85  # chance is 0.10
    assert result.history.loss[-1] < 0.5 * result.history.loss[0]


# -- the loss reported is the loss of the returned parameters (issue 11 §2) ---------------------------

# Matt Mazur's 2-2-2 worked example ("A Step by Step Backpropagation Example"): sigmoid, ½Σ(t − o)²,
# η = 0.5, weights only; its total error is 0.298371109 before the first step and 0.291027924 after.
MAZUR = """
[network]
layers = [2, 2, 2]
activations = "sigmoid"
cost = "half_squared_error"
frozen = ["b(1)_0", "b(1)_1", "b(2)_0", "b(2)_1"]

[names]
"w(2)_0_0" = "w5"

[parameters]
"w(1)" = [[0.15, 0.20], [0.25, 0.30]]
"b(1)" = [0.35, 0.35]
"w(2)" = [[0.40, 0.45], [0.50, 0.55]]
"b(2)" = [0.60, 0.60]

[data]
x = [[0.05, 0.10]]
y = [[0.01, 0.99]]
"""


@pytest.fixture()
def mazur(tmp_path):
    path = tmp_path / "mazur.toml"
    path.write_text(MAZUR, encoding="utf-8")
    return path


def test_one_step_reports_the_loss_after_the_step(mazur):
    spec = symback.load_spec(mazur)
    result = Trainer(spec.network, TrainingConfig(learning_rate=0.5, epochs=1)).fit(spec.parameters, spec.data)
    assert result.steps == 1
    assert result.initial_loss == pytest.approx(0.298371109, abs=1e-9)
    # was 0.298371, the loss before the step; Mazur's 0.291027924 carries his rounded intermediates
    assert result.final_loss == pytest.approx(0.291027924, abs=5e-7)
    assert round(result.final_loss, 6) == 0.291028
    # Independently: the cost of the returned parameters, one forward pass of the reference kernels.
    compiled = CompiledNetwork(spec.network)
    forward = compiled.forward(result.parameters, spec.data.X)
    assert result.final_loss == compiled.cost(result.parameters, spec.data, forward)
    # The history's column is the running loss, taken before each step: here the starting loss.
    assert result.history.loss == (result.initial_loss,)
    assert result.parameters.get("w5") == pytest.approx(0.35891648, abs=1e-8)  # Mazur's w5⁺


def test_cli_prints_the_loss_before_and_after(mazur, capsys):
    assert main(["train", str(mazur), "--epochs", "1", "--learning-rate", "0.5", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "loss        0.298371 -> 0.291028" in out
    assert "w5          0.358916" in out


def test_final_loss_and_accuracy_of_a_mini_batch_run_are_those_of_the_returned_parameters():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    Y = np.eye(2)[(X[:, 0] > 0).astype(int)]
    net = Network([3, 4, 2], ["tanh", "softmax"], "categorical_cross_entropy")
    result = Trainer(net, TrainingConfig(learning_rate=0.3, epochs=3, batch_size=8)).fit(
        Parameters.initialize(net, seed=1), Dataset(X, Y)
    )
    assert Trainer(net).evaluate(result.parameters, Dataset(X, Y)) == {
        "loss": result.final_loss, "accuracy": result.final_accuracy}
    assert result.final_loss != result.history.loss[-1]  # the running loss is another number, and named so


def test_resume_reports_the_same_final_loss_as_a_straight_run(tmp_path):
    rng = np.random.default_rng(0)
    data = Dataset(rng.normal(size=(10, 2)), rng.uniform(size=(10, 1)))
    net = Network([2, 3, 1], "sigmoid", "mse")
    params = Parameters.initialize(net, seed=2)
    config = TrainingConfig(learning_rate=0.5, epochs=4, batch_size=3, checkpoint=str(tmp_path / "c.npz"))
    straight = Trainer(net, replace(config, checkpoint=None)).fit(params, data)
    Trainer(net, replace(config, epochs=2)).fit(params, data)
    resumed = Trainer(net, config).fit(params, data, resume=tmp_path / "c.npz")
    assert resumed.final_loss == straight.final_loss and resumed.parameters == straight.parameters


# -- documented API: the result unpacks; parameters by name (issue 11) --------------------------------


def test_fit_result_unpacks_into_parameters_and_history(seed002):
    config = TrainingConfig(learning_rate=0.1, epochs=3)
    result = Trainer(seed002.network, config).fit(seed002.parameters, seed002.data)
    params, history = result
    assert params is result.parameters and history is result.history and len(history.loss) == 3


def test_parameters_by_name(seed002):
    result = Trainer(seed002.network, TrainingConfig(epochs=1)).fit(seed002.parameters, seed002.data)
    assert result.parameters.get("b3") == result.parameters.biases[1][0]
    assert seed002.parameters.get("w1") == 3.34 and seed002.parameters.copy().get("w4") == -2.30
    assert result.parameters.named()["b3"] == result.parameters.get("b3")
    params = result.parameters.copy()
    params.set("b3", 1.5)
    assert params.get("b(L)") == 1.5
    bare = Parameters([w.copy() for w in params.weights], [b.copy() for b in params.biases])
    with pytest.raises(SpecError, match=r"do not know their network.*params.get\('b3', network\)"):
        bare.get("b3")
    assert bare.get("b3", seed002.network) == 1.5 and bare.of(seed002.network).get("b3") == 1.5
    with pytest.raises(SymbackError, match="w99"):
        params.get("w99")
    with pytest.raises(SpecError, match="not a weight or bias"):
        params.get("predicted")


# -- the tolerance rule: a step under it is not taken; train, report --descent and verify agree -------


def test_tolerance_stop_does_not_take_the_step_under_the_tolerance(seed002):
    config = TrainingConfig(optimizer="sgd", learning_rate=0.1, epochs=1000, tolerance=0.001)
    result = Trainer(seed002.network, config).fit(seed002.parameters, seed002.data)
    assert result.stop_reason == "tolerance" and result.steps == 9 and len(result.history.loss) == 10
    # The returned b3 is the one at which the rule held: its own step is under the tolerance ...
    slope = CompiledNetwork(seed002.network).gradient(result.parameters, seed002.data).biases[1][0]
    assert abs(0.1 * slope) < 0.001 and abs(0.1 * slope) == pytest.approx(result.history.step_sizes[-1])
    # ... and nine steps of plain gradient descent, by hand, give it exactly.
    b3 = 0.0
    compiled = CompiledNetwork(seed002.network)
    params = seed002.parameters.copy()
    for _ in range(9):
        params.set("b3", b3)
        b3 -= 0.1 * compiled.gradient(params, seed002.data).biases[1][0]
    assert result.parameters.get("b3") == b3


def test_train_report_descent_and_verify_stop_at_the_same_step(seed002, tmp_path):
    from symback.render.derivation import derive
    from symback.render.report import descent_table
    from symback.verification.claims import load_claims
    from symback.verification.verify import verify

    config = TrainingConfig(optimizer="sgd", learning_rate=0.1, epochs=1000, tolerance=0.001)
    trained = Trainer(seed002.network, config).fit(seed002.parameters, seed002.data)
    table = descent_table(derive(seed002.network, "b3"), seed002.parameters, seed002.data,
                          learning_rate=0.1, tolerance=0.001, max_steps=1000)
    assert table.converged and len(table.rows) == trained.steps + 1 and table.rows[-1].new == "not taken"
    assert table.final == trained.parameters.get("b3")
    claims = tmp_path / "claims.toml"
    claims.write_text(
        f'spec = "{(EXAMPLES / "seed002.toml").as_posix()}"\n\n[[claim]]\nupdate = "b3"\nlearning_rate = 0.1\n'
        'at = { b3 = 0 }\nuntil_step_below = 0.001\nnew = "2.6085"\n',
        encoding="utf-8",
    )
    report = verify(load_claims(claims))
    assert report.verdicts[0].status == "right", report.text()
    assert f"{trained.steps} step(s) from b3 = 0" in report.text() and "not taken" in report.text()


def test_descend_stops_untaken_at_a_non_finite_step_and_runs_out_at_max_steps():
    from symback.training.train import descend

    path = descend(1.5, lambda v: 1.0 if v > 0 else float("inf"), 1.0, tolerance=1e-3, max_steps=10)
    assert not path.converged and not path.steps[-1].taken and not np.isfinite(path.last_step)
    assert path.final == -0.5 and path.taken == 2 == len(path.steps) - 1
    slow = descend(0.0, lambda v: v - 1.0, 0.01, tolerance=1e-9, max_steps=5)
    assert not slow.converged and slow.taken == 5 and all(s.taken for s in slow.steps)
    assert slow.final == pytest.approx(1 - 0.99 ** 5)
    fixed = descend(0.0, lambda v: v - 1.0, 0.5, max_steps=3)  # no tolerance: exactly max_steps steps
    assert fixed.taken == 3 and fixed.final == 0.875 and not fixed.converged
    assert descend(2.0, lambda v: 0.0, 0.1, tolerance=1e-3, max_steps=4).final == 2.0  # already there: no step


def test_the_losses_of_a_mini_batch_run_are_measured_in_slices_not_one_pass_over_every_example(monkeypatch):
    """The start and end losses took one forward pass over the whole training set: a batch-64 run of
    784-256-256-10 on 10,000 examples peaked at 153 MB instead of 71 MB (the pass holds every z and a)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2500, 3))
    Y = np.eye(2)[(X[:, 0] > 0).astype(int)]
    net = Network([3, 4, 2], ["tanh", "softmax"], "categorical_cross_entropy")
    trainer = Trainer(net, TrainingConfig(learning_rate=0.3, epochs=1, batch_size=50))
    rows, forward = [], trainer.compiled.forward

    def counting(params, X, *args, **kwargs):
        rows.append(len(X))
        return forward(params, X, *args, **kwargs)

    monkeypatch.setattr(trainer.compiled, "forward", counting)
    result = trainer.fit(Parameters.initialize(net, seed=1), Dataset(X, Y), Dataset(X[:1500], Y[:1500]))
    assert rows and max(rows) <= 1024
    monkeypatch.undo()
    # ... and give the numbers of one pass: exactly the accuracy, the loss to rounding.
    whole = CompiledNetwork(net)
    for params, loss in ((result.parameters, result.final_loss),
                         (Parameters.initialize(net, seed=1), result.initial_loss)):
        assert loss == pytest.approx(whole.cost(params, Dataset(X, Y)), rel=1e-14)
    pass_ = whole.forward(result.parameters, X)
    assert result.final_accuracy == float(np.mean(pass_.output.argmax(axis=1) == Y.argmax(axis=1)))
    assert Trainer(net).evaluate(result.parameters, Dataset(X, Y)) == {
        "loss": result.final_loss, "accuracy": result.final_accuracy}
