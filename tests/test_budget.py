"""Budgets of symbolic steps: the size guard, the time limit, and the reproductions that hung (issue 11)."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import sympy as sp

import symback
from symback.budget import Attempt, BudgetExceeded, attempt, time_limit, weight
from symback.compile.compiler import derivative_in_output
from symback.grammar.formula import parse_formula
from symback.render.steps import rewrite_in_terms_of
from symback.symbolic.activations import Z

z = sp.Symbol("z")
_HANG_GUARD = 180  # seconds: these steps hung before; a regression fails here instead of hanging the suite


def _spin(expression: sp.Expr) -> sp.Expr:
    while True:  # a step that never ends on its own, as simplify can
        pass


def test_the_time_budget_stops_a_step_and_says_so():
    result = attempt(_spin, z, seconds=0.2)
    assert result == Attempt(None, "SymPy took longer than the 0.2 s budget")


def test_the_size_budget_refuses_before_running():
    calls = []
    result = attempt(lambda e: calls.append(e), (z + 1) ** 50 * (z - 1) ** 50, max_weight=60)
    assert result.value is None and "too large (weight 105, budget 60)" in result.note
    assert calls == []


def test_weight_sees_the_degree_that_count_ops_does_not():
    assert sp.count_ops((z + 1) ** 50) == 2
    assert weight((z + 1) ** 50) == 52
    assert weight(sp.Pow(sp.pi, 50)) == 1  # a number's power expands into nothing


def test_a_step_within_budget_returns_its_value_and_errors_propagate():
    assert attempt(sp.factor, z**2 - 1).value == (z - 1) * (z + 1)
    with pytest.raises(ZeroDivisionError):
        attempt(lambda e: 1 / 0, z)


def test_the_alarm_is_cleared_and_the_handler_restored():
    import signal

    before = signal.getsignal(signal.SIGALRM)
    attempt(_spin, z, seconds=0.1)
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    assert signal.getsignal(signal.SIGALRM) == before


def test_an_alarm_inside_a_garbage_collection_waits_for_its_end():
    """The limit is not lost in a gc callback (where an exception is only 'unraisable'): it fires after."""
    import gc
    import time

    seen = []

    def slow_callback(phase, info):  # like hypothesis's gc timing callback, but slow
        if phase == "start" and not seen:
            seen.append(phase)
            end = time.monotonic() + 0.08  # the deadline passes inside the callback
            while time.monotonic() < end:
                pass

    gc.callbacks.append(slow_callback)
    try:
        with pytest.raises(BudgetExceeded), time_limit(0.02):
            gc.collect()
            assert seen  # the alarm did not interrupt the collection
            while True:
                pass
    finally:
        gc.callbacks.remove(slow_callback)
    assert slow_callback not in gc.callbacks and len(seen) == 1


def test_an_outer_limit_is_the_outer_callers_to_handle():
    # The inner step has a long budget; the outer limit runs out first and must reach the outer caller.
    with pytest.raises(BudgetExceeded):
        with time_limit(0.2):
            attempt(_spin, z, seconds=60)
    assert attempt(_spin, z, seconds=0.1).value is None  # and a later budget works again


def test_outside_the_main_thread_only_the_size_budget_applies():
    answers = []

    def worker():
        with time_limit(0.1) as enforced:
            answers.append(enforced)
        answers.append(attempt(sp.simplify, (z + 1) ** 50, max_weight=10).value)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert answers == [False, None]


def _in_subprocess(program: str) -> str:
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=_HANG_GUARD)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_z_to_the_1000_has_no_output_form_and_does_not_hang():
    # sympy.solve(a = z^1000, z) ran for hours in derivative_in_output.
    answer = _in_subprocess(
        "from symback.compile.compiler import derivative_in_output\n"
        "from symback.grammar.formula import parse_formula\n"
        "from symback.symbolic.activations import Z\n"
        "print(derivative_in_output(parse_formula('z^1000', {'z': Z})))\n"
    )
    assert answer == "None"


def test_a_high_degree_product_is_shown_unsimplified_with_the_reason():
    # Derivation.simplified ran sympy.simplify on (z+1)^50·(z−1)^50 chains for hours.
    answer = _in_subprocess(
        "import symback\n"
        "net = symback.Network([1, 1, 1], [{'formula': '(z+1)^50*(z-1)^50'}] * 2, 'squared_error')\n"
        "d = symback.derive(net, 'w(1)')\n"
        "print(d.simplified == d.product, d.simplify_note)\n"
        "print('note' in d.to_dict()['simplified'], 'not simplified' in d.text())\n"
    )
    first, second = answer.splitlines()
    assert first.startswith("True not simplified: the expression is too large")
    assert second == "True True"


def test_the_simplify_note_reaches_the_report():
    from symback.render.report import build_report

    net = symback.Network([1, 1, 1], [{"formula": "(z+1)^50*(z-1)^50"}] * 2, "squared_error")
    report = build_report(symback.derive(net, "w(1)"))
    assert any("not simplified" in note for note in report.notes)


def test_a_small_derivation_is_simplified_without_a_note(seed002):
    d = symback.derive(seed002.network, "b3")
    assert d.simplify_note is None


def test_rewrite_of_an_overflowing_fit_is_none_not_linalgerror():
    # The least-squares basis of z^1000 overflowed to inf and numpy raised LinAlgError in `report`.
    assert rewrite_in_terms_of(parse_formula("z^1000", {"z": Z}), Z, sp.Symbol("a")) is None


def test_registered_activations_keep_their_output_forms():
    from symback.symbolic.costs import A as a
    assert derivative_in_output(1 / (1 + sp.exp(-Z))) == a * (1 - a)
    assert sp.expand(derivative_in_output(sp.tanh(Z)) - (1 - a**2)) == 0
