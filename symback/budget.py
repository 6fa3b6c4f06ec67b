"""Budgets for symbolic work: SymPy's ``simplify``, ``solve``, ``factor`` and ``doit`` can run for hours.

Every optional symbolic step (a simplification, an inversion, a nicer form) goes through
:func:`attempt`, which gives it two budgets and, when either is spent, returns no value and a
one-line reason instead of hanging:

* a *size* budget, checked before the call: :func:`weight` counts operations and adds the
  integer exponents of powers of non-numbers (``(z+1)^50`` expands into 51 terms, which
  ``count_ops`` does not see);
* a *time* budget: a ``SIGALRM`` timer stops the call after ``seconds``.  Python delivers signals
  only to the main thread, so elsewhere (a worker thread, a platform without ``setitimer``) the
  size budget is the only one.

The caller keeps its unsimplified form and shows the reason (``Derivation.simplify_note``).

>>> import sympy as sp
>>> z = sp.Symbol("z")
>>> attempt(sp.factor, z**2 - 1, seconds=5).value
(z - 1)*(z + 1)
>>> result = attempt(sp.simplify, (z + 1)**50 * (z - 1)**50, max_weight=60)
>>> result.value is None, result.note
(True, 'the expression is too large (weight 105, budget 60)')
"""

from __future__ import annotations

import gc
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sympy as sp

__all__ = ["SECONDS", "MAX_WEIGHT", "Attempt", "BudgetExceeded", "attempt", "time_limit", "weight"]

#: Default time budget of one symbolic step, in seconds.
SECONDS = 5.0
#: Default size budget of one symbolic step (see :func:`weight`).
MAX_WEIGHT = 400

T = TypeVar("T")


class BudgetExceeded(BaseException):
    """The time budget of a symbolic step ran out.

    A ``BaseException`` (like ``KeyboardInterrupt``), so that the ``except Exception`` blocks
    inside SymPy do not swallow it and carry on past the deadline.
    """


@dataclass(frozen=True)
class Attempt(Generic[T]):
    """The value of a budgeted step, or None and the reason (``note``, one line) it was not computed."""

    value: T | None
    note: str | None = None


def weight(expression: Any) -> int:
    """A size measure of ``expression``: operations plus the integer exponents of non-numeric powers.

    >>> import sympy as sp
    >>> z = sp.Symbol("z")
    >>> weight(z**2 + 1), weight((z + 1)**50)
    (4, 52)
    """
    if not isinstance(expression, sp.Basic):
        return 0
    total = int(sp.count_ops(expression))
    for power in expression.atoms(sp.Pow):
        base, exponent = power.as_base_exp()
        if not base.is_number and exponent.is_Integer:
            total += abs(int(exponent))
    return total


_deadlines: list[float] = []  # the active time limits (main thread only), innermost last
_collecting = False  # inside a garbage collection, where gc's callbacks run


def _collection_starts(phase: str, info: dict[str, int]) -> None:
    global _collecting
    if phase == "start":
        _collecting = True


def _collection_ends(phase: str, info: dict[str, int]) -> None:
    global _collecting
    if phase == "stop":
        _collecting = False


def _arm() -> None:
    # Repeats every 50 ms after the deadline, in case something catches the first exception.
    signal.setitimer(signal.ITIMER_REAL, max(min(_deadlines) - time.monotonic(), 1e-3), 0.05)


def _on_alarm(signum: int, frame: Any) -> None:
    # An exception raised inside a gc callback (hypothesis keeps one) is lost as "unraisable":
    # wait for the timer's next repeat instead.
    if _collecting:
        return
    if _deadlines and time.monotonic() >= min(_deadlines):
        raise BudgetExceeded
    if _deadlines:  # early (a limit that has ended since the timer was set): wait for the next
        _arm()


def _can_time() -> bool:
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return False
    if _deadlines:
        return True  # nested inside one of ours
    # Someone else's alarm (a test runner's timeout, the user's own) is left alone.
    return signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None) and (
        signal.getitimer(signal.ITIMER_REAL)[0] == 0
    )


@contextmanager
def time_limit(seconds: float | None) -> Iterator[bool]:
    """Raise :class:`BudgetExceeded` in the block after ``seconds`` (main thread only; a no-op elsewhere).

    Nested limits keep the earliest deadline.  Yields whether the limit is enforced.

    >>> with time_limit(10) as enforced:
    ...     pass
    >>> enforced
    True
    """
    if seconds is None or not _can_time():
        yield False
        return
    deadline = time.monotonic() + seconds
    outermost = not _deadlines
    previous = signal.signal(signal.SIGALRM, _on_alarm) if outermost else None
    if outermost:  # first and last of gc's callbacks, so that the others run between them
        gc.callbacks.insert(0, _collection_starts)
        gc.callbacks.append(_collection_ends)
    _deadlines.append(deadline)
    _arm()
    try:
        yield True
    finally:
        _deadlines.remove(deadline)  # first: from here on the handler raises for no one else
        if _deadlines:
            _arm()
        else:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous if outermost else signal.SIG_DFL)
            gc.callbacks.remove(_collection_starts)
            gc.callbacks.remove(_collection_ends)


def attempt(
    function: Callable[..., T],
    expression: Any,
    *args: Any,
    seconds: float | None = SECONDS,
    max_weight: int | None = MAX_WEIGHT,
    **kwargs: Any,
) -> Attempt[T]:
    """``function(expression, *args, **kwargs)`` within the size and time budgets.

    Returns ``Attempt(value)``, or ``Attempt(None, note)`` with a one-line reason when the
    expression is over ``max_weight`` (nothing is run) or the call takes over ``seconds``.
    Errors of the call itself propagate.
    """
    if max_weight is not None:
        size = weight(expression)
        if size > max_weight:
            return Attempt(None, f"the expression is too large (weight {size}, budget {max_weight})")
    start = time.monotonic()
    try:
        with time_limit(seconds):
            value = function(expression, *args, **kwargs)
    except BudgetExceeded:
        if seconds is not None and time.monotonic() - start >= seconds * 0.99:
            return Attempt(None, f"SymPy took longer than the {seconds:g} s budget")
        raise  # an outer limit's: it is that caller's to handle
    return Attempt(value)
