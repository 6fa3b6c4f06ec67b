#!/usr/bin/env bash
# Install symback (non-editable, as users get it) with its test extras in .venv, then run the tests.
# On a fresh Debian machine this also installs what the tests need from apt (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        apt-get update -qq && apt-get install -y -qq python3-venv
        rm -rf .venv && "$PYTHON" -m venv .venv
    fi
fi
# Reports are compiled by real pdflatex and opened in real headless Chromium in the tests.
if ! command -v pdflatex >/dev/null || ! command -v chromium >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends texlive-latex-base texlive-latex-recommended \
        texlive-latex-extra lmodern chromium
fi
.venv/bin/python -m pip install -q --upgrade pip
# PyTorch is a third gradient oracle; torch==2.13.0 exactly (the CPU build this machine kind carries).
# SYMBACK_TEST_TORCH=0 leaves it out (its tests then skip, except in CI where they fail).
# JAX is the jax backend, numba the fused one (tests/test_backends.py and tests/test_fused.py check them
# against the NumPy backend).
if [ "${SYMBACK_TEST_TORCH:-1}" = "1" ]; then
    .venv/bin/python -m pip install -q ".[test,plot,torch,jax,fused]"
else
    .venv/bin/python -m pip install -q ".[test,plot,jax,fused]"
fi
# The README's training figures are made with OpenBLAS's AVX2 (Haswell) kernels: other kernels round
# differently and chaotic runs end elsewhere (tests/conftest.py).
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
# One worker per core (pytest-xdist), each test file on one worker: a file's module fixtures (compiled
# networks, the benchmark's smoke run) are built once.  SYMBACK_TEST_WORKERS=0 runs in one process.
exec .venv/bin/python -m pytest -n "${SYMBACK_TEST_WORKERS:-auto}" --dist loadfile "$@"
