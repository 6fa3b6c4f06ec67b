"""The JAX backend: the derived kernels lowered onto ``jax.numpy``, a whole step jitted, a chunk of
steps as one ``lax.scan``, the batch sharded over the local devices.

The same derivation the NumPy backend runs (:func:`~symback.symbolic.chain.derive_backward`: the forward
formulas, the δ recursion, every parameter gradient) goes through the same lowering table
(:func:`~symback.compile.lowering.lower`) with :data:`JAX` as the array namespace and the stable elementwise
forms (:func:`~symback.compile.compiler.stabilize`) printed for ``jax.numpy``; σ' is the same known factor
(``a·σ(−z)`` for a sigmoid, the monomial in ``a`` where SymPy proves one, else the stable form in z).
A training step (forward, cost, δ(L), δ recursion, gradients, ties, frozen masks, the non-finite
test, clipping, the tolerance and overflow rules, the optimizer's update) is one traced function;
``lax.scan`` runs a chunk of them carrying the parameters, the optimizer state and a "stopped" flag, so
a non-finite step is not applied and nothing after it runs: the parameters are the last good ones,
exactly as on NumPy.  Each step's loss, argmax hits, ``η·max|g|``, layer norms and outcome come back
per step and are summed on the host in float64, as the NumPy loop sums them.

Many devices: with more than one local device (GPUs of one host, or CPU devices made with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``) the batch axis is sharded over a one-axis
``Mesh`` (``NamedSharding``), the parameters and optimizer state replicated; XLA inserts the
all-reduce of the gradient.  A batch that the devices do not divide runs replicated.

Every layer kind runs: a convolution's shifted-index sums (correlate, the flipped-kernel transposed
correlation, the kernel gradient) are the lowering's own patterns (:mod:`symback.compile.lowering_shifted`),
called on :data:`JAX` (a functional namespace: a zero-filled shifted copy is an ``.at[].set``, not a write),
their loop over the kernel offsets unrolled once at trace time.  A recurrent layer's z and ∇h are split
where the NumPy program splits them (:func:`~symback.compile.lowering_scan.split_recurrence`): the rest of
every step at once through the table, then the one-step-back product as a ``lax.scan`` over the steps
inside the jitted step, forward and (reversed) backward.  A scan, not a Python loop unrolled at trace
time: the traced program is one step long whatever the sequence.  Not unrolled either: a first fit of
an 8-step recurrent network (mostly compiling) took 2.7 s with ``unroll=4`` against 1.5 s plain (one
run each, loaded 2-core machine).

float64 training turns on ``jax_enable_x64`` (when this backend is chosen, not on import).  An optimizer
with no update registered here (:func:`register_update`) is refused with a SpecError when the runner is made.

>>> import numpy as np, symback
>>> from symback.training.train import TrainingConfig
>>> net = symback.Network([2, 3, 1], "sigmoid", "squared_error")
>>> config = TrainingConfig(learning_rate=0.5, backend="jax")
>>> runner = make_runner(symback.CompiledNetwork(net), config)
>>> params = symback.Parameters.initialize(net, seed=0)
>>> X, Y = np.ones((4, 2)), np.zeros((4, 1))
>>> ran = runner.run(params, config.make_optimizer(), X, Y, 0, 4, 2, last_batch_of_epoch_at=4)
>>> ran.offset, ran.steps, ran.stopped
(4, 2, None)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jax import lax

from ...compile.compiler import _ERF_NAME, _LOGISTIC_NAME, COMPLEMENT, LOG_A, CompiledNetwork, _NumPyPrinter, stabilize
from ...compile.lowering import ArrayNamespace, KnownFactor, lower
from ...compile.lowering_scan import StepProduct, split_recurrence
from ...errors import SpecError
from ...registry import Registry
from ...symbolic.activations import Z
from ...symbolic.chain import grid_tuple
from ...symbolic.costs import A, Y
from ...symbolic.parameters import Parameters
from ..optimizers import SGD, Adam, Momentum, Optimizer, RMSprop
from ..train import TrainingConfig
from . import Ran
from .numpy import NumPyRunner, one_hot

__all__ = ["JAX", "UPDATES", "JaxRunner", "make_runner", "register_update"]

#: The lowering's array namespace on ``jax.numpy`` (``out=`` hints are dropped: JAX arrays are values).
JAX = ArrayNamespace(jnp, "jax", functional=True)

#: Step outcomes, one per step of a scan.
_APPLIED, _NON_FINITE, _OVERFLOW, _CONVERGED, _SKIPPED, _SUSPECT = 0, 1, 2, 3, 4, 5


def jax_lambdify(arguments: Sequence[sp.Symbol], expression: sp.Expr) -> Callable[..., Any]:
    """``expression`` as a ``jax.numpy`` function: symback's NumPy printer (the stable forms: logistic,
    ``logaddexp(0, x)``, nested max/min) with ``numpy`` bound to ``jax.numpy``.  Only ever fed
    expressions symback derived (``lambdify`` uses ``exec``)."""
    namespace = {_LOGISTIC_NAME: jax.nn.sigmoid, _ERF_NAME: jax.scipy.special.erf, "numpy": jnp}
    return sp.lambdify(list(arguments), expression, modules=[namespace], cse=True, dummify=True, printer=_NumPyPrinter)


def _stable(arguments: Sequence[sp.Symbol], expression: sp.Expr) -> Callable[..., Any]:
    return jax_lambdify(arguments, stabilize(expression))


# -- optimizers: the same updates as symback.training.optimizers, as pure functions -------------------------

#: Optimizer class -> ``update(optimizer, p, g, state, t) -> (p, state)`` (``state`` a tuple, one array
#: per slot; ``t`` the step number after this step, as ``Optimizer.steps`` counts it).
UPDATES: Registry[Callable[..., Any]] = Registry("optimizer for the jax backend", error=SpecError)


def register_update(optimizer: type[Optimizer], update: Callable[..., Any]) -> None:
    """Let the JAX backend run ``optimizer`` (a class of :mod:`symback.training.optimizers`) by ``update``."""
    UPDATES.register(optimizer.__name__, update)


def _sgd(opt: SGD, p: Any, g: Any, state: tuple, t: Any) -> tuple[Any, tuple]:
    return p - opt.learning_rate * g, state


def _momentum(opt: Momentum, p: Any, g: Any, state: tuple, t: Any) -> tuple[Any, tuple]:
    (v,) = state
    v = v * opt.beta + g
    return p - opt.learning_rate * v, (v,)


def _rmsprop(opt: RMSprop, p: Any, g: Any, state: tuple, t: Any) -> tuple[Any, tuple]:
    (s,) = state
    s = s * opt.rho + (1 - opt.rho) * (g * g)
    return p - opt.learning_rate * g / (jnp.sqrt(s) + opt.epsilon), (s,)


def _adam(opt: Adam, p: Any, g: Any, state: tuple, t: Any) -> tuple[Any, tuple]:
    m, v = state
    m = m * opt.beta1 + (1 - opt.beta1) * g
    v = v * opt.beta2 + (1 - opt.beta2) * (g * g)
    step_size = opt.learning_rate / (1 - opt.beta1**t)
    return p - step_size * m / (jnp.sqrt(v / (1 - opt.beta2**t)) + opt.epsilon), (m, v)


for _class, _update in ((SGD, _sgd), (Momentum, _momentum), (RMSprop, _rmsprop), (Adam, _adam)):
    register_update(_class, _update)


# -- the lowered step ------------------------------------------------------------------------------


class _Step:
    """The derived kernels of one network on ``jax.numpy``: the forward pass, cost, δ and gradients.

    Slots as in :class:`symback.compile.compiler._Program` (the same derivation, the same lowering): a list of
    traced arrays, one for each of the derivation's IndexedBases.
    """

    def __init__(self, compiled: CompiledNetwork, dtype: Any) -> None:
        program = compiled.program
        self.compiled, self.program, self.dtype = compiled, program, dtype
        backward, network = compiled.backward, compiled.network
        im = backward.model
        L = self.L = network.depth
        options = {"batched": _batched(program, backward), "elementwise": _stable, "key": program.slots.__getitem__,
                   "xp": JAX}
        self.z_kernels, self.a_rests, self.sigma, self.complement = [], [], [], []
        #: A layer that reads itself one step back (a recurrent layer): its z less that read, lowered for
        #: every step at once, and the step product the scan adds (as the NumPy program splits it).
        self.scans: list[StepProduct | None] = list(program.scans)
        self.carries: list[StepProduct | None] = list(program.carries)
        self.grids = [tuple(layer.grid) for layer in network.layers]
        for l in range(1, L + 1):
            z_formula, a_formula = backward.forward[l]
            j = grid_tuple(backward.neuron_index[l])
            if self.scans[l - 1] is not None:
                z_formula = split_recurrence(z_formula, im.activations[l], j, -1)[0]
            self.z_kernels.append(lower(z_formula, j, **options).run)
            activation, layer = network.activation(l), compiled.layers[l - 1]
            if activation.elementwise:
                own = activation.at(im.zs[l][j])
                self.sigma.append(jax_lambdify([Z], layer.stable_formula))
            else:
                own = activation.indexed(im.zs[l], j[0], sp.Idx("d", network.sizes[l]))
                self.sigma.append(jax.nn.softmax)
            self.complement.append(layer.complement)
            rest = a_formula - own
            self.a_rests.append(lower(rest, j, **options).run if rest != 0 else None)
        self.adjoint_kernels = []
        for l in range(1, L):
            adjoint, own = backward.adjoints[l], grid_tuple(backward.own_index[l])
            if self.carries[l - 1] is not None:  # ∇h(t) reads δ(t + 1): the rest here, the read in a scan
                adjoint = split_recurrence(adjoint, backward.delta[l], own, +1)[0]
            self.adjoint_kernels.append(lower(adjoint, own, **options).run)
        self.delta_kernels = []
        for l in range(1, L + 1):
            known = {}
            activation = network.activation(l)
            if activation.elementwise:
                known[activation.derivative_at(im.zs[l][grid_tuple(backward.own_index[l])])] = KnownFactor(
                    self._sigma_prime(compiled.layers[l - 1], l - 1)
                )
            self.delta_kernels.append(lower(backward.deltas[l], grid_tuple(backward.own_index[l]), known=known,
                                            **options).run)
        self.weight_kernels = [lower(backward.gradients[l]["w"], backward.parameter_indices[l]["w"],
                                     over_examples=True, **options).run for l in range(1, L + 1)]
        self.bias_kernels = [lower(backward.gradients[l]["b"], backward.parameter_indices[l]["b"],
                                   over_examples=True, **options).run for l in range(1, L + 1)]
        self._output(compiled)
        self.masks = None
        if compiled._masks is not None:
            self.masks = [m if m is None else np.asarray(m, dtype=dtype) for pair in compiled._masks for m in pair]
            self.masks = self.masks[0::2] + self.masks[1::2]  # weights, then biases
        self.ties = compiled.ties

    def _sigma_prime(self, kernels: Any, index: int) -> Callable[[Sequence[Any]], Any]:
        """σ'(z) of layer ``index + 1`` from its slots, in the form the NumPy backend uses."""
        program = self.program
        z_slot, s_slot, c_slot = program.Z + index, program.S + index, program.C + index
        if kernels.complement:
            return lambda arrays: arrays[s_slot] * arrays[c_slot]
        if kernels.output_derivative is not None:
            in_a = jax_lambdify([A], kernels.derivative_expression)
            return lambda arrays: in_a(arrays[s_slot]) + jnp.zeros_like(arrays[s_slot])  # a constant broadcasts
        in_z = jax_lambdify([Z], stabilize(sp.diff(kernels.stable_formula, Z)))
        return lambda arrays: in_z(arrays[z_slot]) + jnp.zeros_like(arrays[z_slot])

    def _output(self, compiled: CompiledNetwork) -> None:
        """The cost terms and δ(L): the same stable forms the NumPy backend evaluates."""
        network, output = compiled.network, compiled.layers[-1]
        cost = network.cost
        if compiled._cost_in_z is not None:
            in_z = jax_lambdify([Z, Y], compiled.terms_in_z)
            self.terms = lambda z, a, y: in_z(z, y)
        elif compiled._cost_in_log_a is not None:
            in_log = jax_lambdify([A, LOG_A, Y], cost.term.subs(sp.log(A), LOG_A))
            self.terms = lambda z, a, y: jnp.broadcast_to(in_log(a, jax.nn.log_softmax(z, axis=1), y), a.shape)
        else:
            in_a = jax_lambdify([A, Y], stabilize(cost.term))
            self.terms = lambda z, a, y: jnp.broadcast_to(in_a(a, y), a.shape)
        self.cost_derivative = jax_lambdify([A, Y], cost.derivative)
        self.output_delta = None
        if compiled.output_delta_expression is not None:
            arguments = [A, COMPLEMENT, Y] if output.complement else [A, Y]
            self.output_delta = jax_lambdify(arguments, compiled.output_delta_expression)
        self.softmax_cross_entropy = compiled._softmax_cross_entropy

    def loss_and_gradients(self, weights: list, biases: list, x: Any, y: Any) -> tuple[Any, list, Any]:
        """The batch's loss, its gradient (weights then biases) and the network's output."""
        program, compiled, L = self.program, self.compiled, self.L
        arrays: list[Any] = [None] * program.size
        arrays[program.A] = x if program.input_grid is None else x.reshape(x.shape[0], *program.input_grid)
        arrays[program.W : program.W + L] = weights
        arrays[program.B : program.B + L] = biases
        for index in range(L):
            z = self.z_kernels[index](arrays)
            f = jax.nn.sigmoid if self.complement[index] else self.sigma[index]
            if self.scans[index] is not None:
                z = jnp.broadcast_to(z, (x.shape[0], *self.grids[index]))
                step = self.scans[index]
                z, a = _scan_forward(z, step, step.matrix(arrays, program.slots), f)
            else:
                a = f(z)
            c = jax.nn.sigmoid(-z) if self.complement[index] else None
            arrays[program.S + index] = a
            if self.a_rests[index] is not None:
                a = a + self.a_rests[index](arrays)
            arrays[program.A + index + 1], arrays[program.C + index], arrays[program.Z + index] = a, c, z
        out, z = arrays[program.A + L], arrays[program.Z + L - 1]
        terms = self.terms(z, out, y)
        divisor = (out.shape[1] if compiled._mean_outputs else 1) * (out.shape[0] if compiled._mean_examples else 1)
        loss = jnp.sum(terms) / divisor
        if self.output_delta is not None:
            args = (out, arrays[program.C + L - 1], y) if self.complement[-1] else (out, y)
            delta = self.output_delta(*args) + jnp.zeros_like(out)
        elif self.softmax_cross_entropy:
            delta = out * jnp.sum(y, axis=1, keepdims=True) - y
        else:
            arrays[program.NABLA + L - 1] = self.cost_derivative(out, y) + jnp.zeros_like(out)
            delta = self.delta_kernels[-1](arrays)
        scale = 1.0 / out.shape[0] if compiled._mean_examples else 1.0
        if compiled._mean_outputs:
            scale /= out.shape[1]
        if program.reads_output_nabla and scale != 1.0:
            arrays[program.NABLA + L - 1] = arrays[program.NABLA + L - 1] * scale
        if scale != 1.0:
            delta = delta * scale
        arrays[program.DELTA + L - 1] = delta
        for index in range(L - 2, -1, -1):
            nabla = self.adjoint_kernels[index](arrays)
            if self.carries[index] is not None:  # backpropagation through time: δ(t) needs δ(t + 1)
                nabla = jnp.broadcast_to(nabla, (x.shape[0], *self.grids[index]))
                probe = list(arrays)
                probe[program.NABLA + index] = jnp.ones_like(nabla)
                slope = self.delta_kernels[index](probe)  # σ'(z): δ is linear in ∇h
                carry = self.carries[index]
                nabla, delta = _scan_backward(nabla, slope, carry, carry.matrix(arrays, program.slots))
                arrays[program.NABLA + index], arrays[program.DELTA + index] = nabla, delta
                continue
            arrays[program.NABLA + index] = nabla
            arrays[program.DELTA + index] = self.delta_kernels[index](arrays)
        grads = [run(arrays) for run in self.weight_kernels] + [run(arrays) for run in self.bias_kernels]
        grads = [jnp.broadcast_to(g, p.shape).astype(p.dtype) for g, p in zip(grads, weights + biases)]
        tied_total = None
        if self.ties is not None:
            grads, tied_total = self._sum_ties(grads)
        if self.masks is not None:
            grads = [g if m is None else g * m for g, m in zip(grads, self.masks)]
        return loss, grads, out, tied_total

    def _sum_ties(self, grads: list) -> tuple[list, Any]:
        """As :meth:`symback.compile.compiler.Ties.sum_gradients`: every tied entry holds its parameter's sum."""
        ties = self.ties
        total = jnp.zeros(ties.n_groups, dtype=grads[0].dtype)
        for array, index, groups in ties.entries:
            total = total.at[groups].add(grads[array][index])
        grads = list(grads)
        for array, index, groups in ties.entries:
            grads[array] = grads[array].at[index].set(total[groups])
        return grads, total

    def norm(self, grads: list, tied_total: Any) -> Any:
        """The gradient's Euclidean norm over the free parameters (a tied one counted once)."""
        squares = sum(jnp.vdot(g, g) for g in grads)
        if tied_total is not None:
            sizes = jnp.asarray(self.ties.sizes, dtype=tied_total.dtype)
            squares = jnp.maximum(squares - jnp.dot((sizes - 1) * tied_total, tied_total), 0.0)
        return jnp.sqrt(squares)


def _scan_forward(rest: Any, product: StepProduct, matrix: Any, f: Callable[[Any], Any]) -> tuple[Any, Any]:
    """``a[:, t] = f(z[:, t])`` with ``z[:, t] = rest[:, t] + product(a[:, t − 1], matrix)`` (``a[:, −1] = 0``):
    one ``lax.scan`` over the steps (axis 1), so the traced program is one step long whatever the sequence."""

    def step(previous: Any, rest_t: Any) -> tuple[Any, tuple[Any, Any]]:
        z_t = rest_t + product(previous, matrix)
        a_t = f(z_t)
        return a_t, (z_t, a_t)

    steps = jnp.swapaxes(rest, 0, 1)
    _, (z, a) = lax.scan(step, jnp.zeros_like(steps[0]), steps)
    return jnp.swapaxes(z, 0, 1), jnp.swapaxes(a, 0, 1)


def _scan_backward(rest: Any, slope: Any, product: StepProduct, matrix: Any) -> tuple[Any, Any]:
    """From the last step back: ``∇h[:, t] = rest[:, t] + product(δ[:, t + 1], matrix)`` and
    ``δ[:, t] = σ'[:, t] ∇h[:, t]`` (``δ[:, T] = 0``); returns ``(∇h, δ)``."""

    def step(later: Any, pair: tuple[Any, Any]) -> tuple[Any, tuple[Any, Any]]:
        rest_t, slope_t = pair
        nabla_t = rest_t + product(later, matrix)
        delta_t = slope_t * nabla_t
        return delta_t, (nabla_t, delta_t)

    pair = (jnp.swapaxes(rest, 0, 1), jnp.swapaxes(jnp.broadcast_to(slope, rest.shape), 0, 1))
    _, (nabla, delta) = lax.scan(step, jnp.zeros_like(pair[0][0]), pair, reverse=True)
    return jnp.swapaxes(nabla, 0, 1), jnp.swapaxes(delta, 0, 1)


def _batched(program: Any, backward: Any) -> frozenset:
    im = backward.model
    L = program.depth
    return frozenset([*program.a_bases, *(im.zs[l] for l in range(1, L + 1)), *backward.delta.values(),
                      *backward.nabla.values(), im.targets])


# -- the runner ------------------------------------------------------------------------------------


class JaxRunner:
    """Runs chunks of steps as one jitted ``lax.scan`` (one compile per chunk length and batch shape)."""

    #: Batches per scan: Ctrl-C is noticed between scans (milliseconds apart for small networks).
    batches_per_call = 1024

    def __init__(self, compiled: CompiledNetwork, config: TrainingConfig) -> None:
        self.config = config
        self.dtype = np.dtype(config.numpy_dtype)
        self.step = _Step(compiled, self.dtype)
        self.optimizer = config.make_optimizer()
        self.update = UPDATES.lookup(type(self.optimizer).__name__)
        devices = jax.local_devices()
        self.mesh = jax.sharding.Mesh(np.array(devices), ("data",))
        self.replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        self.sharded = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec(None, "data"))
        self._scans: dict[bool, Callable[..., Any]] = {}
        self._gradient = jax.jit(self.step.loss_and_gradients)
        #: Runs a step the scan's screen could not prove good, by the NumPy backend's exact rules.
        self.fallback = NumPyRunner(compiled, config)

    @property
    def devices(self) -> int:
        return self.mesh.size

    def _scan(self, classes: bool) -> Callable[..., Any]:
        if classes not in self._scans:
            self._scans[classes] = jax.jit(partial(self._chunk, classes), donate_argnums=())
        return self._scans[classes]

    def _chunk(self, classes: bool, params: list, state: list, t: Any, xs: Any, ys: Any, last: Any) -> tuple:
        """``lax.scan`` of the steps over ``xs``/``ys`` (chunk × batch × features) but the last, then the
        last, exactly (``max|g|``, the tolerance rule, the layer norms); ``last`` marks the epoch's last batch."""
        one = partial(self._one, classes)
        carry = (params, state, t, jnp.bool_(False))
        carry, records = lax.scan(partial(one, False), carry, (xs[:-1], ys[:-1], last[:-1]))
        carry, final = one(True, carry, (xs[-1], ys[-1], last[-1]))
        records = jnp.concatenate([records, final[None]])
        params, state, t, _ = carry
        return params, state, t, records

    def _one(self, classes: bool, exact: bool, carry: tuple, batch: tuple) -> tuple:
        """One step.  Inside a scan (``exact`` false) the screen is a sum: Σ|g| finite and η·Σ|g| within
        the dtype prove the step good (max|g| ≤ Σ|g|); with η ≤ 1 a finite Σg does (every entry is then
        finite, and η·|g| cannot overflow).  A step the screen cannot prove is not applied, ends the scan
        as "suspect", and the host runs it on the NumPy backend.  (A max reduction per step costs
        more on XLA's CPU backend than the rest of a batch-1 step.)  ``exact``: the NumPy rules on max|g|."""
        config, step, update, optimizer = self.config, self.step, self.update, self.optimizer
        L = step.L
        limit = float(np.finfo(self.dtype).max)
        params, state, t, stopped = carry
        x, y, is_last = batch
        loss, grads, out, tied_total = step.loss_and_gradients(params[:L], params[L:], x, y)
        screen = _sum if config.learning_rate <= 1 else _abs_sum
        size = _peak(grads) if exact else screen(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(size)
        if config.clip_value is not None:
            grads = [jnp.clip(g, -config.clip_value, config.clip_value) for g in grads]
            if tied_total is not None:
                tied_total = jnp.clip(tied_total, -config.clip_value, config.clip_value)
        if config.clip_norm is not None:
            norm = step.norm(grads, tied_total)
            factor = jnp.where(norm > config.clip_norm, config.clip_norm / norm, 1.0)
            grads = [g * factor.astype(g.dtype) for g in grads]
        if config.clip_value is not None or config.clip_norm is not None:
            size = _peak(grads) if exact else screen(grads)
        step_size = config.learning_rate * size
        overflow = ~(step_size <= limit)
        if exact:
            converged = is_last & (step_size < config.tolerance) if config.tolerance is not None else jnp.bool_(False)
            status = jnp.where(~finite, _NON_FINITE, jnp.where(converged, _CONVERGED,
                                                                jnp.where(overflow, _OVERFLOW, _APPLIED)))
        else:
            status = jnp.where(finite & ~overflow, _APPLIED, _SUSPECT)
        status = jnp.where(stopped, _SKIPPED, status).astype(jnp.int32)
        # One select per array, fused with the update: a step after a stop, or a bad one, is not applied
        # (its numbers are computed and dropped: cheaper than a branch at these sizes).
        apply = status == _APPLIED
        t_new = t + 1
        moved, moved_state = [], [[] for _ in state]
        for i, (p, g) in enumerate(zip(params, grads)):
            p_new, s_new = update(optimizer, p, g, tuple(s[i] for s in state), t_new)
            moved.append(jnp.where(apply, p_new, p))
            for k, value in enumerate(s_new):
                moved_state[k].append(jnp.where(apply, value, state[k][i]))
        hits = jnp.sum(jnp.argmax(out, axis=1) == jnp.argmax(y, axis=1)) if classes else jnp.zeros((), jnp.int32)
        # η·max|g| and the layer norms are recorded for an epoch's last gradient: the exact step's.
        norms = _layer_norms(L, grads) if exact else jnp.zeros(L, self.dtype)
        # One row per step (status, loss, hits, η·|g|, layer norms): one output to write per step, not five.
        record = jnp.concatenate([jnp.stack([status.astype(self.dtype), loss.astype(self.dtype),
                                             hits.astype(self.dtype), step_size.astype(self.dtype)]),
                                  norms.astype(self.dtype)])
        return (moved, moved_state, jnp.where(apply, t_new, t), stopped | ~apply), record

    def run(
        self, params: Parameters, optimizer: Optimizer, X: np.ndarray, Y: np.ndarray, begin: int, end: int, batch: int,
        *, last_batch_of_epoch_at: int, interrupted: threading.Event | None = None,
    ) -> Ran:
        n = last_batch_of_epoch_at
        full_end = begin + (end - begin) // batch * batch  # whole batches; the rest is the epoch's shorter last
        classes = one_hot(Y[begin:end])
        slots = self._slots(optimizer)
        pieces = []  # (start, stop, batch size): a scan each
        if full_end > begin:
            pieces.append((begin, full_end, batch))
        if full_end < end:  # the epoch's last, shorter batch: a scan of one step of its own shape
            pieces.append((full_end, end, end - full_end))
        result = Ran(begin, 0, 0.0, 0, 0.0, [], None, None)
        weight_of = (lambda size: size) if self.step.compiled._mean_examples else (lambda size: 1)
        while pieces:
            start, stop, size = pieces.pop(0)
            status, losses, hits, step_sizes, norms = self._scan_piece(params, optimizer, slots, classes, X, Y,
                                                                       start, stop, size, n)
            count = len(status)
            stopped = np.flatnonzero(status != _APPLIED)
            done = int(stopped[0]) if stopped.size else count
            counted = done + 1 if done < count and status[done] == _CONVERGED else done
            result.loss_sum += float(np.sum(losses[:counted].astype(np.float64) * weight_of(size)))
            result.correct += int(hits[:counted].sum())
            result.steps += done
            result.offset = start + counted * size
            if counted:
                result.step_size = float(step_sizes[counted - 1])
                result.layer_norms = [float(v) for v in norms[counted - 1]]
            if done == count:
                continue
            outcome, at = int(status[done]), start + done * size
            if outcome == _SUSPECT:  # the screen could not prove it good: the NumPy backend's exact rules decide
                ran = self.fallback.run(params, optimizer, X, Y, at, at + size, size, last_batch_of_epoch_at=n)
                result.loss_sum += ran.loss_sum
                result.correct += ran.correct
                result.steps += ran.steps
                result.offset = ran.offset
                if ran.offset > at:
                    result.step_size, result.layer_norms = ran.step_size, ran.layer_norms
                if ran.stopped is not None:
                    result.stopped, result.message = ran.stopped, ran.message
                    break
                if at + size < stop:
                    pieces.insert(0, (at + size, stop, size))
                continue
            if outcome == _CONVERGED:
                result.stopped = "converged"
            else:
                result.stopped = "non_finite"
                rows = slice(at, at + size)
                result.message = self._bad(params, X[rows], Y[rows], outcome, float(step_sizes[done]))
            break
        return result

    def _scan_piece(self, params: Parameters, optimizer: Optimizer, slots: tuple, classes: bool, X: np.ndarray,
                    Y: np.ndarray, start: int, stop: int, size: int, n: int) -> tuple:
        """One scan over the batches of ``[start, stop)``; the parameters and optimizer state written back."""
        flat = [*params.weights, *params.biases]
        values = [jax.device_put(p, self.replicated) for p in flat]
        state = [[jax.device_put(optimizer.state[slot][i] if optimizer.state else np.zeros_like(p), self.replicated)
                  for i, p in enumerate(flat)] for slot in slots]
        count = (stop - start) // size
        xs = np.asarray(X[start:stop]).reshape(count, size, *X.shape[1:])
        ys = np.asarray(Y[start:stop], dtype=self.dtype).reshape(count, size, Y.shape[1])
        last = np.arange(start + size, stop + 1, size) >= n
        sharding = self.sharded if size % self.devices == 0 else self.replicated
        xs, ys = jax.device_put(xs, sharding), jax.device_put(ys, sharding)
        values, state, t, records = self._scan(classes)(values, state, jnp.asarray(optimizer.steps), xs, ys,
                                                        jax.device_put(last, self.replicated))
        self._write_back(params, optimizer, values, state, slots, int(t))
        rows = np.asarray(records)
        return rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2].astype(np.int64), rows[:, 3], rows[:, 4:]

    def _slots(self, optimizer: Optimizer) -> tuple[str, ...]:
        # The update is traced with the settings of the config's optimizer: the one passed must be it.
        if type(optimizer) is not type(self.optimizer) or optimizer.settings != self.optimizer.settings:
            raise SpecError(f"the jax runner was made for {self.optimizer!r}, not {optimizer!r}")
        return optimizer.slots

    def _bad(self, params: Parameters, x: np.ndarray, y: np.ndarray, outcome: int, step_size: float) -> str:
        """What became non-finite, in the NumPy backend's words (the step recomputed, not applied)."""
        if outcome == _OVERFLOW:
            return f"the step η·max|g| = {step_size:.3g} overflows {self.config.dtype}"
        x, y = jnp.asarray(x), jnp.asarray(y, dtype=self.dtype)
        loss, grads, _, _ = self._gradient(params.weights, params.biases, x, y)
        loss = float(loss)
        if not np.isfinite(loss):
            return f"the loss became {loss}"
        for g in grads:
            g = np.asarray(g)
            bad = g[~np.isfinite(g)]
            if bad.size:
                return f"the gradient became {bad.flat[0]}"
        return "the gradient became non-finite"

    def _write_back(self, params: Parameters, optimizer: Optimizer, values: list, state: list, slots: tuple,
                    steps: int) -> None:
        """The parameters and the optimizer's state and step count, back into their NumPy arrays."""
        for target, value in zip([*params.weights, *params.biases], values):
            target[...] = np.asarray(value)
        if slots:
            arrays = {slot: [np.array(v) for v in state[k]] for k, slot in enumerate(slots)}
            if optimizer.state:
                for slot in slots:
                    for target, value in zip(optimizer.state[slot], arrays[slot]):
                        target[...] = value
            else:
                optimizer.state = arrays
        optimizer.steps = steps


def _layer_norms(L: int, grads: list) -> Any:
    """Euclidean norm of each layer's (weights, biases) gradient."""
    return jnp.stack([jnp.sqrt(jnp.vdot(grads[l], grads[l]) + jnp.vdot(grads[L + l], grads[L + l])) for l in range(L)])


def _sum(grads: list) -> Any:
    """Σg over every array: non-finite when an entry is (or when the sum overflows: a false alarm only)."""
    return sum(jnp.sum(g) for g in grads)


def _abs_sum(grads: list) -> Any:
    """Σ|g| over every array: non-finite when an entry is, and never under max|g|."""
    return sum(jnp.sum(jnp.abs(g)) for g in grads)


def _peak(grads: list) -> Any:
    """max |g| over every array (NaN propagates: a non-finite peak is a bad gradient)."""
    return jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in grads]))


def make_runner(compiled: CompiledNetwork, config: TrainingConfig) -> JaxRunner:
    """The JAX step runner (see :mod:`symback.training.backends`); float64 turns on ``jax_enable_x64``."""
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    return JaxRunner(compiled, config)
