"""Training: gradient descent on the compiled kernels, with history, checkpoints and safe stops.

A :class:`Trainer` runs full-batch or mini-batch steps of an optimizer
(:mod:`symback.training.optimizers`) on a :class:`~symback.compile.compiler.CompiledNetwork`.  It
stops after ``epochs``, when every step ``|η·∂C/∂p|`` is under ``tolerance`` (seed
002's rule; that step is not taken, see :func:`below_tolerance`), when the loss reaches ``loss_target``, when the loss or a gradient is
NaN/inf or ``η·max|g|`` overflows the dtype (the step is not applied: the last good
parameters are kept), or on Ctrl-C (a checkpoint is written when a path is set, and
``fit`` returns normally).  A checkpoint written in the middle of an epoch holds the
shuffling state of that epoch's start and how far the epoch got, so a resumed run
continues with the same batches and ends bit for bit where an uninterrupted one would.

Seed 002 trains only b3 of its 1-2-1 softplus network with η = 0.1 until the step
is under 0.001:

>>> from pathlib import Path
>>> import symback
>>> spec = symback.load_spec(Path(symback.__file__).parent.parent / "examples" / "seed002.toml")
>>> config = TrainingConfig(optimizer="sgd", learning_rate=0.1, epochs=1000, tolerance=0.001)
>>> result = Trainer(spec.network, config).fit(spec.parameters, spec.data)
>>> round(result.parameters.get("b3"), 2), result.stop_reason, result.steps
(2.61, 'tolerance', 9)

The result unpacks into the trained parameters and the :class:`History`:

>>> params, history = result
>>> f"SSR {result.initial_loss:.4g} -> {result.final_loss:.3g}", len(history.loss)
('SSR 20.42 -> 6.42e-05', 10)

The tenth epoch computed a step of 0.00041, under the tolerance, and did not take it: the b3
returned is the one whose step fell under 0.001.

(seed 002 prints 2.21: it stopped after two steps, and wrote new = old + step instead of
old − step; the README's "Training" section works it through.)
"""

from __future__ import annotations

import io
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..compile.compiler import CompiledNetwork, Gradients, Ties
from ..data import Dataset
from ..errors import SpecError, SymbackError
from ..files import MAX_ARRAY_BYTES, check_output, read_npz, write_atomic
from ..registry import finite_number, unknown_name
from ..symbolic.network import Network
from ..symbolic.parameters import Parameters
from .backends import check_name as check_backend
from .backends import make_runner
from .optimizers import Optimizer, _arrays, get_optimizer

__all__ = [
    "Checkpoint",
    "DescentPath",
    "DescentStep",
    "EpochProgress",
    "History",
    "Trainer",
    "TrainingConfig",
    "TrainingResult",
    "below_tolerance",
    "descend",
    "load_checkpoint",
    "load_parameters",
    "save_checkpoint",
    "save_parameters",
]

_DTYPES = {"float64": np.float64, "float32": np.float32}
#: How a result's message says the checkpoint could not be written (the CLI reports that part on stderr).
_NOT_SAVED = "; the checkpoint was not saved: "


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of a training run (the ``[training]`` section of a spec).

    ``batch_size`` None means full batch.  ``tolerance`` stops when every ``|η·g|`` of the epoch's
    last step is below it, without taking that step (:func:`below_tolerance`); ``loss_target`` when
    the epoch's (running) loss is at or below it.  ``progress`` None shows a bar only when stderr is
    a terminal.  ``checkpoint`` is the file written at the end
    of the run, on Ctrl-C, and every ``checkpoint_every`` epochs.
    """

    optimizer: str | Mapping[str, Any] = "sgd"
    learning_rate: float = 0.1
    epochs: int = 100
    batch_size: int | None = None
    tolerance: float | None = None
    loss_target: float | None = None
    clip_value: float | None = None
    clip_norm: float | None = None
    seed: int | None = 0
    shuffle: bool = True
    dtype: str = "float64"
    progress: bool | None = None
    checkpoint: str | None = None
    checkpoint_every: int | None = None
    dataset: str | None = None
    test_fraction: float = 0.2
    #: Where the steps run: ``numpy``, ``jax``, ``fused`` or ``auto`` (:mod:`symback.training.backends`).
    backend: str = "numpy"

    def __post_init__(self) -> None:
        _check_int(self.epochs, "epochs", minimum=0)
        if self.batch_size is not None:
            _check_int(self.batch_size, "batch_size", minimum=1)
        if self.checkpoint_every is not None:
            _check_int(self.checkpoint_every, "checkpoint_every", minimum=1)
        _check_positive(self.learning_rate, "learning_rate")
        for name in ("tolerance", "clip_value", "clip_norm"):
            if getattr(self, name) is not None:
                _check_positive(getattr(self, name), name)
        if self.loss_target is not None:
            _check_number(self.loss_target, "loss_target")
        if self.seed is not None:
            _check_int(self.seed, "seed", minimum=0)
        if not isinstance(self.shuffle, bool):
            raise SpecError(f"[training] shuffle must be true or false, not {self.shuffle!r}")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise SpecError(f"[training] progress must be true or false, not {self.progress!r}")
        if self.dtype not in _DTYPES:
            raise SpecError(f"[training] dtype must be one of {', '.join(_DTYPES)}, not {self.dtype!r}")
        if not isinstance(self.test_fraction, (int, float)) or not 0 < self.test_fraction < 1:
            raise SpecError(f"[training] test_fraction must be between 0 and 1, not {self.test_fraction!r}")
        for name in ("checkpoint", "dataset"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise SpecError(f"[training] {name} must be a string, not {value!r}")
        get_optimizer(self.optimizer, learning_rate=self.learning_rate)  # fails early on a bad name or setting
        check_backend(self.backend)  # the name only: the backend's library is imported when training starts

    @classmethod
    def from_section(cls, section: Mapping[str, Any], **overrides: Any) -> TrainingConfig:
        """From a spec's ``[training]`` table; unknown keys fail naming the key and the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise unknown_name("key", unknown[0], known, where=" in [training]", error=SpecError)
        values = dict(section)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def make_optimizer(self) -> Optimizer:
        return get_optimizer(self.optimizer, learning_rate=self.learning_rate)

    @property
    def numpy_dtype(self) -> Any:
        return _DTYPES[self.dtype]


@dataclass(frozen=True)
class History:
    """Per-epoch records of a run (tuples, one entry per epoch trained).

    ``loss[e]`` is epoch ``e``'s running training loss, as Keras and PyTorch loops report it: the
    mean over the epoch's examples of each batch's loss, taken at the parameters *before* that
    batch's step (full batch: the loss at the epoch's start), and ``accuracy[e]`` likewise; the
    loss of the parameters a run returns is :attr:`TrainingResult.final_loss`.  ``test_loss`` and
    ``test_accuracy`` are measured *after* the epoch.  ``gradient_norms[e]`` holds one norm per
    layer (weights and biases together) of the epoch's last gradient; ``step_sizes[e]`` the largest
    ``|η·g|`` of it.  ``accuracy`` and the test columns are empty when the targets are not one-hot
    classes / there is no test set.
    """

    loss: tuple[float, ...] = ()
    gradient_norms: tuple[tuple[float, ...], ...] = ()
    step_sizes: tuple[float, ...] = ()
    accuracy: tuple[float, ...] = ()
    test_loss: tuple[float, ...] = ()
    test_accuracy: tuple[float, ...] = ()
    seconds: tuple[float, ...] = ()

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f"history/{f.name}": np.asarray(getattr(self, f.name), dtype=float) for f in fields(self)}

    @classmethod
    def from_arrays(cls, values: Mapping[str, np.ndarray]) -> History:
        def column(name: str) -> tuple:
            array = values.get(f"history/{name}")
            if array is None:
                return ()
            return tuple(tuple(float(x) for x in row) if array.ndim == 2 else float(row) for row in array)

        return cls(**{f.name: column(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class TrainingResult:
    """What a run produced: the trained parameters, the history, and why it stopped.

    ``stop_reason`` is one of ``epochs``, ``tolerance``, ``loss_target``, ``non_finite``, ``interrupted``.
    ``checkpoint`` is the file written at the end, None when none was asked for or it could not be
    written (``message`` then says why; the trained parameters are still here).

    ``initial_loss`` and ``final_loss`` are the loss on the whole training set of the parameters this
    run started from and of the returned ``parameters`` (``final_accuracy`` likewise, for one-hot
    targets); ``history.loss`` is each epoch's running loss, taken during the epoch.  A result
    unpacks as ``params, history = trainer.fit(...)``.
    """

    parameters: Parameters
    history: History
    stop_reason: str
    message: str
    epochs: int
    steps: int
    checkpoint: str | None = None
    initial_loss: float | None = None
    final_loss: float | None = None
    final_accuracy: float | None = None
    save_error: str | None = None

    @property
    def stop_message(self) -> str:
        """``message`` without its clause on a checkpoint that could not be saved (that is ``save_error``)."""
        return self.message.partition(_NOT_SAVED)[0]

    def __iter__(self):
        """``params, history = result``: the two things :meth:`Trainer.fit` returns."""
        return iter((self.parameters, self.history))


@dataclass(frozen=True)
class EpochProgress:
    """How far an unfinished epoch got: the examples already stepped over (``offset``, a whole number
    of batches into that epoch's shuffled order) and the loss, correct answers and seconds so far."""

    offset: int
    loss: float
    correct: int
    seconds: float
    batch_size: int
    examples: int


@dataclass(frozen=True)
class Checkpoint:
    """Parameters plus everything needed to resume: optimizer state, counters, RNG state, history.

    ``epoch`` counts finished epochs; ``rng_state`` is the shuffling state at the start of the next
    (or the unfinished) epoch; ``progress`` says how far an unfinished epoch got (None at an epoch's end).
    """

    parameters: Parameters
    optimizer: str
    optimizer_state: dict[str, np.ndarray]
    epoch: int
    steps: int
    rng_state: dict[str, Any] | None
    history: History
    progress: EpochProgress | None = None


def below_tolerance(step: float, tolerance: float | None) -> bool:
    """The stopping rule of ``train``, ``report --descent`` and ``verify``: ``|step| < tolerance``.

    It is tested on a step *before* taking it, and a step under the tolerance is not taken: the
    parameters a descent returns are those at which the rule held (their own step ``η·∂C/∂p`` is
    under the tolerance), and the step count counts the steps taken.

    >>> below_tolerance(-0.0004, 0.001), below_tolerance(0.002, 0.001), below_tolerance(0.0, None)
    (True, False, False)
    """
    return tolerance is not None and abs(step) < tolerance


@dataclass(frozen=True)
class DescentStep:
    """One iteration of gradient descent on one number: ``step = η·slope``, ``new = old − step``.

    ``taken`` is False for the step that ends a descent unapplied: under the tolerance, or not finite.
    """

    old: float
    slope: float
    step: float
    taken: bool = True

    @property
    def new(self) -> float:
        return self.old - self.step if self.taken else self.old


@dataclass(frozen=True)
class DescentPath:
    """Every step of :func:`descend`; ``converged`` when it ended by the tolerance rule."""

    start: float
    steps: tuple[DescentStep, ...]
    converged: bool

    @property
    def final(self) -> float:
        return self.steps[-1].new if self.steps else self.start

    @property
    def taken(self) -> int:
        return sum(step.taken for step in self.steps)

    @property
    def last_step(self) -> float:
        return self.steps[-1].step


def descend(
    value: float,
    slope: Callable[[float], float],
    learning_rate: float,
    *,
    tolerance: float | None = None,
    max_steps: int,
) -> DescentPath:
    """Plain gradient descent on one parameter, the loop shared by ``report --descent`` and ``verify``.

    ``slope(v)`` is ∂C/∂p at p = v.  At most ``max_steps`` steps are taken; the descent stops early,
    *without* taking it, at a step under ``tolerance`` (:func:`below_tolerance`) or a non-finite one.

    >>> path = descend(0.0, lambda b: 6 * (b - 2.5), 0.1, tolerance=0.001, max_steps=100)
    >>> path.converged, path.taken, round(path.final, 4), path.steps[-1].taken
    (True, 8, 2.4984, False)
    """
    start, steps, converged = value, [], False
    for _ in range(max_steps):
        gradient = float(slope(value))
        step = learning_rate * gradient
        if below_tolerance(step, tolerance) or not np.isfinite(step):
            converged = bool(np.isfinite(step))
            steps.append(DescentStep(value, gradient, step, taken=False))
            break
        steps.append(DescentStep(value, gradient, step))
        value = value - step
    return DescentPath(start, tuple(steps), converged)


class _Stop(Exception):
    """Raised inside the loop to end the run with a reason and message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Trainer:
    """Runs gradient descent on a network.

    Arguments:
        network: the network (its frozen/trainable settings are respected).
        config: a :class:`TrainingConfig`.
        compiled: reuse already compiled kernels.
        stream: where the progress bar goes (default stderr).
    """

    def __init__(
        self,
        network: Network,
        config: TrainingConfig | None = None,
        *,
        compiled: CompiledNetwork | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.network = network
        self.config = config or TrainingConfig()
        self.compiled = compiled or CompiledNetwork(network)
        self.stream = stream if stream is not None else sys.stderr

    def fit(
        self,
        params: Parameters,
        train: Dataset,
        test: Dataset | None = None,
        *,
        callback: Callable[[int, History], None] | None = None,
        resume: str | Path | Checkpoint | None = None,
    ) -> TrainingResult:
        """Train a copy of ``params`` on ``train`` (the caller's Parameters are not changed); returns a
        :class:`TrainingResult`, which unpacks as ``params, history = trainer.fit(...)``.

        ``callback(epoch, history)`` runs after every epoch; it may raise KeyboardInterrupt,
        which is handled like Ctrl-C.  ``resume`` continues from a checkpoint (its parameters,
        optimizer state, epoch counter, shuffling state and history replace the fresh ones).
        """
        config = self.config
        dtype = config.numpy_dtype
        train.check(self.network.sizes[0], self.network.sizes[-1])
        if test is not None:
            test.check(self.network.sizes[0], self.network.sizes[-1])
        optimizer = config.make_optimizer()
        rng = np.random.default_rng(config.seed)
        n = len(train)
        batch = min(config.batch_size or n, n)
        epoch, steps = 0, 0
        records = _Records()
        progress_in_epoch = None
        if resume is not None:
            checkpoint = resume if isinstance(resume, Checkpoint) else load_checkpoint(resume, self.network)
            if checkpoint.optimizer != optimizer.name:
                raise SpecError(
                    f"checkpoint was trained with {checkpoint.optimizer!r}, not {optimizer.name!r}; "
                    "resume with the same optimizer"
                )
            progress_in_epoch = checkpoint.progress
            if progress_in_epoch is not None and (progress_in_epoch.batch_size, progress_in_epoch.examples) != (batch, n):
                raise SpecError(
                    f"the checkpoint stopped inside an epoch, {progress_in_epoch.offset} of "
                    f"{progress_in_epoch.examples} examples in batches of {progress_in_epoch.batch_size}; "
                    f"resume with the same data and batch size (here {n} examples, batches of {batch})"
                )
            params = checkpoint.parameters
            optimizer.load_state_dict(checkpoint.optimizer_state)
            if checkpoint.rng_state is not None:
                rng.bit_generator.state = checkpoint.rng_state
            epoch, steps = checkpoint.epoch, checkpoint.steps
            records = _Records.of(checkpoint.history)
        params.check_tied(self.network)  # a tied parameter's entries must start equal to stay one parameter
        params = params.astype(dtype)  # a copy: the caller's values stay as they were
        train = train.astype(dtype)
        test = test.astype(dtype) if test is not None else None
        test_labels = _labels(test)
        train_labels = _labels(train)
        runner = make_runner(self.compiled, config, batch=batch)  # a missing backend fails before training
        classes = train.is_classification
        bar = _Progress(self.stream, config.epochs, config.progress)
        start_epoch = epoch
        # The unfinished epoch: where its shuffle starts, how many examples are done, the sums so far.
        epoch_state = rng.bit_generator.state
        offset, total, correct, seconds = 0, 0.0, 0, 0.0
        if progress_in_epoch is not None:
            p = progress_in_epoch
            offset, total, correct, seconds = p.offset, p.loss, p.correct, p.seconds
        started = time.perf_counter()

        def save() -> str:
            now = EpochProgress(offset, total, correct, seconds + time.perf_counter() - started, batch, n)
            checkpoint = Checkpoint(
                params, optimizer.name, optimizer.state_dict(), epoch, steps, epoch_state, records.freeze(),
                now if offset else None,
            )
            save_checkpoint(config.checkpoint, checkpoint)
            return str(config.checkpoint)

        interrupted = threading.Event()
        restore = _catch_sigint(interrupted)
        reason, message = "epochs", f"trained {config.epochs} epoch(s)"

        def quiet() -> Any:
            return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")

        try:  # the outer try restores the Ctrl-C handler whatever happens
            with quiet():  # one forward pass each way: the loss of the parameters the run starts from and returns
                initial_loss, _ = self._test_metrics(params, train, train_labels)
            try:
                with quiet():
                    converged = False
                    while epoch < config.epochs:
                        started = time.perf_counter()
                        X, Y = train.X, train.Y
                        if config.shuffle and batch < n:
                            order = rng.permutation(n)
                            X, Y = X[order], Y[order]
                        ran = None
                        while offset < n:  # a chunk of batches at a time on the backend; Ctrl-C between chunks
                            end = min(n, offset + runner.batches_per_call * batch)
                            ran = runner.run(
                                params, optimizer, X, Y, offset, end, batch, last_batch_of_epoch_at=n,
                                interrupted=interrupted,
                            )
                            steps += ran.steps
                            total += ran.loss_sum
                            correct += ran.correct
                            step_size, norms = ran.step_size, ran.layer_norms
                            if ran.stopped == "non_finite":
                                offset = ran.offset
                                raise _Stop(
                                    "non_finite",
                                    f"{ran.message} at epoch {epoch + 1}, step {steps + 1}; "
                                    "stopped and kept the parameters of the last good step "
                                    "(try a smaller learning rate or clip_norm)",
                                )
                            offset = ran.offset
                            converged = ran.stopped == "converged"
                            if ran.stopped == "interrupted" or (interrupted.is_set() and offset < n):
                                raise KeyboardInterrupt
                        epoch += 1
                        epoch_loss = total / n if self.compiled._mean_examples else total
                        records.add_epoch(
                            epoch_loss, norms, step_size, correct / n if classes else None,
                            self._test_metrics(params, test, test_labels), seconds + time.perf_counter() - started,
                        )
                        epoch_state = rng.bit_generator.state
                        offset, total, correct, seconds = 0, 0.0, 0, 0.0
                        started = time.perf_counter()
                        bar.update(epoch, epoch_loss)
                        if config.checkpoint and config.checkpoint_every and epoch % config.checkpoint_every == 0:
                            try:
                                save()
                            except SymbackError:
                                pass  # the final save tries again and reports a failure in the result's message
                        if callback is not None:
                            callback(epoch, records.freeze())
                        if interrupted.is_set():
                            raise KeyboardInterrupt
                        if converged:
                            raise _Stop(
                                "tolerance",
                                f"every step |η·g| was under {config.tolerance:g} (largest {step_size:.3g}; not taken)",
                            )
                        if config.loss_target is not None and epoch_loss <= config.loss_target:
                            raise _Stop("loss_target", f"loss {epoch_loss:.6g} reached the target {config.loss_target:g}")
            except _Stop as stop:
                reason, message = stop.reason, stop.message
            except KeyboardInterrupt:
                reason, message = "interrupted", f"interrupted after {epoch} epoch(s), {steps} step(s)"
                if offset:
                    message += f" and {offset} of the {n} examples of epoch {epoch + 1}"
            with quiet():  # still under the Ctrl-C flag: a second Ctrl-C here cannot lose the run
                final_loss, final_accuracy = self._test_metrics(params, train, train_labels)
        finally:
            restore()
            bar.close()
        saved = save_error = None
        if config.checkpoint:
            try:
                saved = save()
            except SymbackError as error:
                save_error = str(error)
                message += f"{_NOT_SAVED}{error}"
            else:
                if reason == "interrupted":
                    message += f"; checkpoint saved to {saved}"
        return TrainingResult(
            params.of(self.network), records.freeze(), reason, message, epoch - start_epoch, steps, saved,
            initial_loss, final_loss, final_accuracy, save_error,
        )

    def _test_metrics(
        self, params: Parameters, test: Dataset | None, labels: np.ndarray | None
    ) -> tuple[float, float | None] | None:
        if test is None:
            return None
        # In slices: one forward pass over a whole (training) set would hold every example's z and a
        # at once, far more than a mini-batch step does.  The reduction is over all examples at once.
        costs, correct = [], 0
        for begin in range(0, len(test) or 1, _EVALUATION_ROWS):
            rows = slice(begin, begin + _EVALUATION_ROWS)
            part = Dataset(test.X[rows], test.Y[rows])
            forward = self.compiled.forward(params, part.X)
            costs.append(self.compiled.example_costs(params, part, forward))
            if labels is not None:
                correct += int(np.count_nonzero(forward.output.argmax(axis=1) == labels[rows]))
        loss = float(self.compiled._reduce(np.concatenate(costs)))
        return loss, (correct / len(test) if labels is not None and len(test) else None)

    def evaluate(self, params: Parameters, data: Dataset) -> dict[str, float]:
        """Loss (and accuracy for one-hot targets) of ``params`` on ``data``."""
        data = data.astype(params.weights[0].dtype)
        metrics = self._test_metrics(params, data, _labels(data))
        assert metrics is not None
        out = {"loss": metrics[0]}
        if metrics[1] is not None:
            out["accuracy"] = metrics[1]
        return out


#: Examples per forward pass when a loss or accuracy is measured (not trained on): a bounded memory.
_EVALUATION_ROWS = 1024


class _Records:
    """Mutable lists behind a History, frozen on demand."""

    def __init__(self) -> None:
        self.columns: dict[str, list] = {f.name: [] for f in fields(History)}

    @classmethod
    def of(cls, history: History) -> _Records:
        records = cls()
        for name in records.columns:
            records.columns[name] = list(getattr(history, name))
        return records

    def add_epoch(self, loss, norms, step_size, accuracy, test, seconds) -> None:
        c = self.columns
        c["loss"].append(float(loss))
        c["gradient_norms"].append(tuple(norms))
        c["step_sizes"].append(float(step_size))
        if accuracy is not None:
            c["accuracy"].append(float(accuracy))
        if test is not None:
            c["test_loss"].append(float(test[0]))
            if test[1] is not None:
                c["test_accuracy"].append(float(test[1]))
        c["seconds"].append(float(seconds))

    def freeze(self) -> History:
        return History(**{name: tuple(values) for name, values in self.columns.items()})


def _peak(gradients: Gradients) -> float:
    """The largest ``|g|`` of the whole gradient; NaN or inf when any entry is."""
    return max(float(np.abs(g).max()) for g in gradients.parts())


def _labels(data: Dataset | None) -> np.ndarray | None:
    """Class index of every example of one-hot data (checked once, not every epoch); None otherwise."""
    return data.labels if data is not None and data.is_classification else None


def _bad_value(loss: float, gradients: Gradients) -> str:
    if not np.isfinite(loss):
        return str(loss)
    for g in _arrays(gradients):
        bad = g[~np.isfinite(g)]
        if bad.size:
            return str(bad.flat[0])
    return "non-finite"


def _clip(gradients: Gradients, clip_value: float | None, clip_norm: float | None, ties: Ties | None = None) -> None:
    """Clip in place: each entry to [−clip_value, clip_value], then the whole vector to norm ≤ clip_norm
    (the norm over the free parameters: a tied one counts once, as PyTorch counts a shared tensor)."""
    arrays = gradients.parts()
    if clip_value is not None:
        for g in arrays:
            np.clip(g, -clip_value, clip_value, out=g)
    if clip_norm is not None:
        # Summed in float64: a float32 sum of squares can overflow to inf.
        norm = gradients.norm() if ties is None else ties.norm(gradients)
        if norm > clip_norm:
            for g in arrays:
                g *= clip_norm / norm


def _catch_sigint(flag: threading.Event) -> Callable[[], None]:
    """Turn Ctrl-C into a flag checked between steps, so no step is ever half applied."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    try:
        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, lambda signum, frame: flag.set())
    except (ValueError, OSError):  # not in the main interpreter, or signals unavailable
        return lambda: None
    return lambda: signal.signal(signal.SIGINT, previous)


class _Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, stream: TextIO, total: int, enabled: bool | None) -> None:
        if enabled is None:
            enabled = bool(getattr(stream, "isatty", lambda: False)())
        self.stream, self.total, self.enabled = stream, max(total, 1), enabled
        self.last = 0.0
        self.drawn = False

    def update(self, epoch: int, loss: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.1 and epoch < self.total:
            return
        self.last = now
        width = 30
        filled = int(width * min(epoch, self.total) / self.total)
        self.stream.write(f"\repoch {epoch}/{self.total} [{'#' * filled}{'.' * (width - filled)}] loss {loss:.6g}")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.enabled and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


# -- saving and loading -----------------------------------------------------------------------


def _parameter_arrays(params: Parameters) -> dict[str, np.ndarray]:
    out = {}
    for index, (w, b) in enumerate(zip(params.weights, params.biases), start=1):
        out[f"W{index}"], out[f"b{index}"] = w, b
    return out


def _atomic_savez(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """An ``.npz`` archive written atomically: never half a file, even on Ctrl-C.

    ``path`` must end in ``.npz`` (a spec or report given by mistake is never overwritten with an
    archive) and must not be a folder, a device or another non-regular file.
    """
    check_output(path, "", [".npz"])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getbuffer())


def save_parameters(path: str | Path, params: Parameters) -> None:
    """Parameters as ``W1, b1, W2, b2, ...`` in an ``.npz`` (written atomically)."""
    _atomic_savez(path, _parameter_arrays(params))


#: Room in a checkpoint besides parameter-sized arrays: history and metadata (256 MiB).
_CHECKPOINT_EXTRA_BYTES = 256 * 2**20
#: Parameter-sized float64 arrays a checkpoint may hold: the parameters and up to three optimizer slots.
_CHECKPOINT_COPIES = 4
#: The longest metadata text (JSON) a checkpoint may hold.
_META_CHARS = 2**20


def _archive_limit(network: Network) -> int:
    """How many bytes a parameter file or checkpoint of ``network`` can reasonably expand to.

    A file far larger than its network (an archive that expands to gigabytes) is refused before
    it is expanded, rather than exhausting memory.
    """
    return min(MAX_ARRAY_BYTES, _CHECKPOINT_COPIES * 8 * network.n_parameters + _CHECKPOINT_EXTRA_BYTES)


def _read_parameters(archive: Mapping[str, np.ndarray], network: Network, where: str) -> Parameters:
    weights, biases = [], []
    for layer in range(1, network.depth + 1):
        shape_w = (network.sizes[layer], network.sizes[layer - 1])
        for key, shape, into in ((f"W{layer}", shape_w, weights), (f"b{layer}", (network.sizes[layer],), biases)):
            if key not in archive:
                raise SpecError(f"{where}: no array {key!r} (is it a symback parameter file?)")
            array = np.array(archive[key])
            if array.shape != shape:
                raise SpecError(f"{where}: {key} has shape {array.shape}, the network needs {shape}")
            if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)):
                raise SpecError(f"{where}: {key} must hold finite floating-point numbers")
            into.append(array)
    if f"W{network.depth + 1}" in archive:
        raise SpecError(f"{where}: has more layers than the network ({network.depth})")
    params = Parameters(weights, biases)
    params.check_tied(network, f"{where}: ")  # saved for another network, or edited by hand
    return params


def load_parameters(path: str | Path, network: Network) -> Parameters:
    """Parameters saved by :func:`save_parameters` (or a checkpoint), checked against the network's shapes."""
    return _read_parameters(read_npz(path, "parameter file", limit=_archive_limit(network)), network, str(path))


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Parameters, optimizer state, counters, RNG state, epoch progress and history in one ``.npz`` (atomic)."""
    arrays = _parameter_arrays(checkpoint.parameters)
    arrays.update({f"optimizer/{k}": v for k, v in checkpoint.optimizer_state.items()})
    arrays.update(checkpoint.history.to_arrays())
    meta = {
        "format": "symback-checkpoint-1",
        "optimizer": checkpoint.optimizer,
        "epoch": checkpoint.epoch,
        "steps": checkpoint.steps,
        "rng_state": checkpoint.rng_state,
    }
    if checkpoint.progress is not None:
        meta["progress"] = asdict(checkpoint.progress)
    arrays["meta"] = np.array(json.dumps(meta))
    _atomic_savez(path, arrays)


class _Damaged(Exception):
    """A part of a checkpoint that is not what :func:`save_checkpoint` writes (the reason, for the message)."""


def _check_history(archive: Mapping[str, np.ndarray]) -> None:
    for f in fields(History):
        array = archive.get(f"history/{f.name}")
        if array is None:
            continue
        rows = 2 if f.name == "gradient_norms" and array.size else 1
        if array.ndim != rows or array.dtype.kind not in "fiu":
            raise _Damaged(f"history: history/{f.name} must be a {rows}-d array of numbers, not {array.ndim}-d {array.dtype}")


def _check_optimizer_state(archive: Mapping[str, np.ndarray], n_arrays: int) -> dict[str, np.ndarray]:
    state = {k.split("/", 1)[1]: v for k, v in archive.items() if k.startswith("optimizer/")}
    slots: dict[str, list[int]] = {}
    for key, value in state.items():
        if key == "steps":
            if value.ndim != 0 or value.dtype.kind not in "iu" or int(value) < 0:
                raise _Damaged("optimizer state: optimizer/steps must be one whole number >= 0")
            continue
        match = re.fullmatch(r"([A-Za-z_]\w{0,63})/(\d{1,9})", key)
        if match is None:
            raise _Damaged(f"optimizer state: {'optimizer/' + key!r} is not a state array's name (slot/index)")
        if value.dtype.kind != "f":
            raise _Damaged(f"optimizer state: optimizer/{key} must hold floating-point numbers")
        slots.setdefault(match.group(1), []).append(int(match.group(2)))
    for slot, indices in slots.items():
        if sorted(indices) != list(range(n_arrays)):
            raise _Damaged(f"optimizer state: slot {slot!r} needs arrays 0 to {n_arrays - 1}, has {sorted(indices)[:10]}")
    return state


def load_checkpoint(path: str | Path, network: Network) -> Checkpoint:
    """A checkpoint written by :func:`save_checkpoint`.

    A plain parameter file (no training state) is refused, naming ``--init-from`` as the way to start from it.
    Anything else that is not what :func:`save_checkpoint` writes is a one-line SpecError naming the file.
    """
    archive = read_npz(path, "checkpoint", limit=_archive_limit(network))
    params = _read_parameters(archive, network, str(path))
    if "meta" not in archive:
        raise SpecError(f"{path}: holds parameters but no training state; load it with --init-from, not --resume")
    try:
        return _read_checkpoint(archive, params, network)
    except _Damaged as error:
        raise SpecError(f"{path}: damaged checkpoint {error}") from None


def _read_checkpoint(archive: Mapping[str, np.ndarray], params: Parameters, network: Network) -> Checkpoint:
    text = archive["meta"]
    if text.ndim != 0 or text.dtype.kind != "U" or len(str(text)) > _META_CHARS:
        raise _Damaged(f"metadata: meta must be one JSON text of at most {_META_CHARS} characters")
    damaged = _Damaged("metadata: not what symback writes")
    try:
        meta = json.loads(str(text))
        optimizer, epoch, steps = meta["optimizer"], meta["epoch"], meta["steps"]
        rng_state = meta.get("rng_state")
        progress = meta.get("progress")
        if progress is not None:
            progress = EpochProgress(**progress)
    except RecursionError:
        raise _Damaged("metadata: nested too deeply") from None
    except (ValueError, TypeError, KeyError, AttributeError):  # not JSON, not an object, a key missing
        raise damaged from None
    counts = [epoch, steps] + ([] if progress is None else [progress.offset, progress.correct, progress.batch_size,
                                                           progress.examples])
    if not isinstance(optimizer, str) or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in counts):
        raise damaged
    if progress is not None and not (
        progress.batch_size >= 1 and 0 < progress.offset < progress.examples and progress.offset % progress.batch_size == 0
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (progress.loss, progress.seconds))
    ):
        raise damaged
    if rng_state is not None:
        try:  # a state the generator refuses is damage too, found now rather than when training starts
            np.random.default_rng().bit_generator.state = rng_state
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError):
            raise _Damaged("metadata: the shuffling (RNG) state is not one NumPy accepts") from None
    _check_history(archive)
    state = _check_optimizer_state(archive, 2 * network.depth)
    return Checkpoint(params, optimizer, state, epoch, steps, rng_state, History.from_arrays(archive), progress)


# -- helpers ------------------------------------------------------------------------------------


def _check_int(value: Any, what: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"[training] {what} must be a whole number >= {minimum}, not {value!r}")


def _check_number(value: Any, what: str) -> None:
    finite_number(value, f"[training] {what}")  # an integer of 400 digits too: a SpecError, not an OverflowError


def _check_positive(value: Any, what: str) -> None:
    _check_number(value, what)
    if value <= 0:
        raise SpecError(f"[training] {what} must be positive, not {value!r}")


def training_data(spec: Any, config: TrainingConfig) -> tuple[Dataset, Dataset | None]:
    """What a spec trains on: the shipped data set named by ``config.dataset``, split into train and
    test with ``config.seed`` and built in ``config.dtype``, or else the spec's own ``[data]`` (no test set)."""
    if config.dataset is not None:
        from ..datasets import get_dataset

        return get_dataset(config.dataset)(config.test_fraction, seed=config.seed, dtype=config.numpy_dtype)
    return spec.require_data(), None
