"""Optimizers (seed 003): plain gradient descent, momentum, RMSprop and Adam.

Each is a small object holding its settings and its state (one array per
parameter array), updating :class:`~symback.symbolic.parameters.Parameters` in place with
whole-array NumPy operations.  State can be saved and restored, so training resumes
exactly where it stopped.

>>> import numpy as np
>>> from symback.symbolic.parameters import Parameters
>>> from symback.compile.compiler import Gradients
>>> params = Parameters([np.array([[1.0]])], [np.array([0.0])])
>>> opt = get_optimizer("sgd", learning_rate=0.1)
>>> opt.step(params, Gradients([np.array([[2.0]])], [np.array([-1.0])]))
>>> float(params.weights[0][0, 0]), float(params.biases[0][0])
(0.8, 0.1)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..compile.compiler import Gradients
from ..errors import SpecError
from ..registry import Registry, finite_number, merged_settings
from ..symbolic.parameters import Parameters, packed_views

__all__ = ["OPTIMIZERS", "Adam", "Momentum", "Optimizer", "RMSprop", "SGD", "get_optimizer", "register_optimizer"]


def _arrays(tree: Parameters | Gradients) -> list[np.ndarray]:
    return [*tree.weights, *tree.biases]


class Optimizer:
    """Base: ``step(params, gradients)`` moves the parameters downhill, in place.

    Subclasses name their state arrays in ``slots`` and implement ``_update(p, g, *state)``, which
    updates ``p`` from ``g`` and one state array per slot, all of the same shape.  When the
    parameters and the gradients are packed alike (:class:`~symback.symbolic.parameters.PackedArrays`) it runs
    once, on the whole buffers; otherwise once per weight and bias array.
    """

    name = "optimizer"
    slots: tuple[str, ...] = ()

    def __init__(self, learning_rate: float = 0.01) -> None:
        self.learning_rate = _positive(learning_rate, "learning_rate")
        self.steps = 0
        #: One array per slot and parameter array (views of one buffer per slot once packed).
        self.state: dict[str, list[np.ndarray]] = {}
        self._state_buffers: dict[str, np.ndarray] = {}
        self._packed_state_of: dict[str, list[np.ndarray]] | None = None  # the self.state they back
        self._fitted_state: dict[str, list[np.ndarray]] | None = None  # the self.state checked against the parameters

    def __getstate__(self) -> dict[str, Any]:
        # The buffers are the state's own memory: a copy or a pickle keeps the per-array state only.
        state = dict(self.__dict__)
        state.update(_state_buffers={}, _packed_state_of=None, _fitted_state=None)
        return state

    def step(self, params: Parameters, gradients: Gradients) -> None:
        self.steps += 1
        p_buffer, g_buffer = params.buffer, gradients.buffer
        if p_buffer is not None and g_buffer is not None and params._shapes == gradients._shapes:
            self._update(p_buffer, g_buffer, *self._packed_state(params, p_buffer))
            return
        targets, grads = _arrays(params), _arrays(gradients)
        self._check_state(tuple(p.shape for p in targets))
        if not self.state:
            self.state = {slot: [np.zeros_like(p) for p in targets] for slot in self.slots}
        for p, g, *state in zip(targets, grads, *(self.state[slot] for slot in self.slots)):
            self._update(p, g, *state)

    def _check_state(self, shapes: tuple[tuple[int, ...], ...]) -> None:
        """A state restored (or set) since the last check must have one array per parameter array, of its shape."""
        if self.state is self._fitted_state:
            return
        for slot, arrays in self.state.items():
            found = tuple(np.shape(a) for a in arrays)
            if found != shapes:
                raise SpecError(
                    f"the {self.name} optimizer's {slot!r} state has arrays of shapes {list(found)}, "
                    f"the parameters {list(shapes)}: it belongs to another network"
                )
        self._fitted_state = self.state

    def _packed_state(self, params: Parameters, p_buffer: np.ndarray) -> list[np.ndarray]:
        """One state buffer per slot, packed like ``params``; per-array state is copied in (once)."""
        buffers = self._state_buffers
        if self.state is self._packed_state_of and all(
            self.state[slot][0].base is buffers[slot] and buffers[slot].dtype == p_buffer.dtype
            and buffers[slot].size == p_buffer.size for slot in self.slots
        ):
            return [buffers[slot] for slot in self.slots]
        self._check_state(params._shapes)
        buffers, state = {}, {}
        for slot in self.slots:
            buffers[slot] = np.zeros_like(p_buffer)
            state[slot] = packed_views(buffers[slot], params._shapes)
            for view, old in zip(state[slot], self.state.get(slot, ())):
                view[...] = old
        self.state = self._packed_state_of = self._fitted_state = state
        self._state_buffers = buffers
        return [buffers[slot] for slot in self.slots]

    def _update(self, p: np.ndarray, g: np.ndarray, *state: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def settings(self) -> dict[str, float]:
        return {"learning_rate": self.learning_rate}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat ``{"slot/i": array, "steps": n}`` for saving in an ``.npz``."""
        out: dict[str, np.ndarray] = {"steps": np.array(self.steps)}
        for slot, arrays in self.state.items():
            for index, array in enumerate(arrays):
                out[f"{slot}/{index}"] = array
        return out

    def load_state_dict(self, values: Mapping[str, np.ndarray]) -> None:
        self.steps = int(values.get("steps", 0))
        state: dict[str, list[np.ndarray]] = {}
        for slot in self.slots:
            keys = sorted((k for k in values if k.startswith(f"{slot}/")), key=lambda k: int(k.split("/")[1]))
            if keys:
                state[slot] = [np.array(values[k]) for k in keys]
        self.state = state if len(state) == len(self.slots) else {}

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v:g}" for k, v in self.settings.items())
        return f"{type(self).__name__}({settings})"


class SGD(Optimizer):
    """``p ← p − η g``."""

    name = "sgd"

    def _update(self, p: np.ndarray, g: np.ndarray, *state: np.ndarray) -> None:
        p -= self.learning_rate * g


class Momentum(Optimizer):
    """Heavy-ball momentum (PyTorch's form): ``v ← β v + g``, ``p ← p − η v``."""

    name = "momentum"
    slots = ("velocity",)

    def __init__(self, learning_rate: float = 0.01, beta: float = 0.9) -> None:
        super().__init__(learning_rate)
        self.beta = _fraction(beta, "beta")

    def _update(self, p: np.ndarray, g: np.ndarray, *state: np.ndarray) -> None:
        (v,) = state
        v *= self.beta
        v += g
        p -= self.learning_rate * v

    @property
    def settings(self) -> dict[str, float]:
        return {"learning_rate": self.learning_rate, "beta": self.beta}


class RMSprop(Optimizer):
    """``s ← ρ s + (1 − ρ) g²``, ``p ← p − η g / (√s + ε)``."""

    name = "rmsprop"
    slots = ("square",)

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, epsilon: float = 1e-8) -> None:
        super().__init__(learning_rate)
        self.rho = _fraction(rho, "rho")
        self.epsilon = _positive(epsilon, "epsilon")

    def _update(self, p: np.ndarray, g: np.ndarray, *state: np.ndarray) -> None:
        (s,) = state
        s *= self.rho
        s += (1 - self.rho) * (g * g)
        p -= self.learning_rate * g / (np.sqrt(s) + self.epsilon)

    @property
    def settings(self) -> dict[str, float]:
        return {"learning_rate": self.learning_rate, "rho": self.rho, "epsilon": self.epsilon}


class Adam(Optimizer):
    """Adam with bias correction: ``m ← β1 m + (1 − β1) g``, ``v ← β2 v + (1 − β2) g²``,
    ``p ← p − η m̂ / (√v̂ + ε)`` with ``m̂ = m / (1 − β1^t)``, ``v̂ = v / (1 − β2^t)``."""

    name = "adam"
    slots = ("m", "v")

    def __init__(
        self, learning_rate: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8
    ) -> None:
        super().__init__(learning_rate)
        self.beta1 = _fraction(beta1, "beta1")
        self.beta2 = _fraction(beta2, "beta2")
        self.epsilon = _positive(epsilon, "epsilon")

    def _update(self, p: np.ndarray, g: np.ndarray, *state: np.ndarray) -> None:
        m, v = state
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * (g * g)
        t = self.steps
        step_size = self.learning_rate / (1 - self.beta1**t)
        p -= step_size * m / (np.sqrt(v / (1 - self.beta2**t)) + self.epsilon)

    @property
    def settings(self) -> dict[str, float]:
        return {"learning_rate": self.learning_rate, "beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon}


#: Registry: name -> optimizer class (called with learning_rate and its own settings).
OPTIMIZERS: Registry[Callable[..., Optimizer]] = Registry("optimizer", {
    "sgd": SGD,
    "gradient_descent": SGD,
    "momentum": Momentum,
    "rmsprop": RMSprop,
    "adam": Adam,
})


def register_optimizer(name: str, factory: Callable[..., Optimizer]) -> None:
    """Make ``factory`` available as ``get_optimizer(name, learning_rate=..., **settings)``."""
    OPTIMIZERS.register(name, factory)


def get_optimizer(spec: str | Mapping[str, Any] | Optimizer, **settings: Any) -> Optimizer:
    """An optimizer from a name or a ``{name = "adam", beta1 = 0.9}`` table.

    >>> get_optimizer({"name": "adam", "beta1": 0.8}, learning_rate=0.01)
    Adam(learning_rate=0.01, beta1=0.8, beta2=0.999, epsilon=1e-08)
    """
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "name" not in options:
            raise SpecError(f"an optimizer table needs 'name', got {sorted(options)}")
        name = options.pop("name")
        # The learning rate comes from [training] learning_rate; a second one in the table is an error.
        return get_optimizer(name, **merged_settings(options, settings, "optimizer"))
    if not isinstance(spec, str):
        raise SpecError(f"an optimizer must be a name or a table, not {spec!r}")
    return OPTIMIZERS.build(spec, settings)


def _positive(value: Any, what: str) -> float:
    number = finite_number(value, what)
    if number <= 0:
        raise SpecError(f"{what} must be a positive number, got {number:g}")
    return number


def _fraction(value: Any, what: str) -> float:
    number = finite_number(value, what)
    if not 0 <= number < 1:
        raise SpecError(f"{what} must be a number in [0, 1), got {number:g}")
    return number
