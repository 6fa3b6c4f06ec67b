"""The README's figures are what their scripts give: every phrase of scripts/readme_figures.py is in the README.

Each group reruns its example script in full (the README quotes the full runs, not the fast modes);
a number changed on either side fails here, naming the phrase the README should hold.
"""

from __future__ import annotations

import pytest

from .conftest import BLAS_KERNELS, BLAS_PINNED, ROOT
from .tools import load_script


def _figures():
    return load_script("readme_figures")


FIGURES = _figures().FIGURES


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if f.slow else n for n, f in FIGURES.items()]
)
def test_the_readme_quotes_what_the_script_gives(name, request):
    assert BLAS_PINNED, (
        f"the README's figures are made with OPENBLAS_CORETYPE={BLAS_KERNELS} set before NumPy loads "
        "(scripts/test.sh sets it; tests/conftest.py when NumPy is not loaded yet)"
    )
    # seed003: the full run tests/test_seed003.py checks too, made once a session (tests/conftest.py).
    given = {"results": request.getfixturevalue("seed003_run")[0]} if name == "seed003" else {}
    phrases, absent = _figures().missing(name, **given)
    assert phrases
    assert not absent, f"README.md lacks, from {FIGURES[name].source}:\n" + "\n".join(absent)


def test_a_changed_number_is_caught():
    """The check is not vacuous: a README with one digit changed fails it."""
    figures = _figures()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    phrases, absent = figures.missing("seed002", readme)
    assert not absent
    changed = readme.replace("**b3 = 2.6085**", "**b3 = 2.6089**")
    assert changed != readme
    assert figures.missing("seed002", changed)[1] == [p for p in phrases if "**b3 = 2.6085**" in p]


@pytest.mark.slow
def test_seed003_figures_come_from_the_shared_run_not_a_second_one(seed003_run, monkeypatch):
    from .tools import load_example

    def again(*args, **kwargs):
        raise AssertionError("seed003 ran a second time")

    monkeypatch.setattr(load_example("seed003_gradients"), "run", again)
    phrases, absent = _figures().missing("seed003", results=seed003_run[0])
    assert len(phrases) > 10 and not absent


def test_numbers_are_written_the_readme_way():
    figures = _figures()
    assert figures.sci(4.87e-05) == "4.9·10⁻⁵" and figures.sci(838.2, 3) == "8.38·10²"
    assert figures.percent(0.9214) == "92.1 %" and figures.minus("-1.57") == "−1.57"
    assert figures.normalise("a\n  b") == "a b"
