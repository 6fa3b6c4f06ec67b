"""Fuzzing what users hand symback (issue 11): spec files, claims files, formulas and checkpoints.

Every input must end in success or in a :class:`~symback.errors.SymbackError` whose message is one
line and names no internals — never another exception, never a hang.  A hang is caught by
``signal.setitimer`` (:func:`bounded`): a generous bound (:data:`HANG_SECONDS`), a hang detector and
not a timing assertion.  Inputs that could hang where no signal reaches (inside one long C call) or
exhaust memory run in a child process under a time and memory limit (:func:`run_cli`).

The second half holds the reproductions of issue 11's "Tracebacks and hangs" list as fixed cases.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import string
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symback.cli import main
from symback.errors import SymbackError
from symback.grammar.formula import FUNCTIONS, parse_formula
from symback.spec.loader import load_spec, spec_from_dict
from symback.symbolic.activations import Z, activation_from_formula
from symback.symbolic.network import Network
from symback.training.train import load_checkpoint
from symback.verification.claims import claims_from_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SEED002 = EXAMPLES / "seed002.toml"

#: No single input may take longer than this (seconds): far above any honest answer, well below "forever".
HANG_SECONDS = 10.0
#: A child process's bounds: wall seconds and address space (bytes).
CHILD_SECONDS = 60.0
CHILD_MEMORY = 3 * 2**30

FUZZ = settings(
    max_examples=60,
    deadline=None,  # time is bounded by `bounded`, not by hypothesis' per-example deadline
    derandomize=True,  # the same examples on every run: CI failures reproduce
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)

# Owned by the helpers fixing them; the marks go when their branches merge (see the issue's closing note).
# Those that hang before the fix are not run until then (each would hold a worker for CHILD_SECONDS).


class Hang(Exception):
    """An input took longer than HANG_SECONDS."""


@contextmanager
def bounded(seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Raise :class:`Hang` in the code under test if it runs past ``seconds``."""

    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_message(message: str, given: str = "") -> None:
    """One line, and no internals: no traceback, no dunder or placeholder the user did not write."""
    assert "\n" not in message and "\r" not in message, message
    assert message.strip(), "an empty message"
    assert "Traceback" not in message, message
    if "__" not in given:
        assert "__" not in message, message


def outcome(call: Callable[..., Any], *args: Any, given: str = "", **kwargs: Any) -> str:
    """Run ``call``: ``"ok"``, or ``"error"`` for a proper one-line SymbackError; anything else fails the test."""
    with bounded():
        try:
            call(*args, **kwargs)
        except SymbackError as error:
            check_message(str(error), given)
            return "error"
    return "ok"


# -- spec files --------------------------------------------------------------------------------------

VALID_SPEC = tomllib.loads(SEED002.read_text(encoding="utf-8"))

NAMES = ["w1", "b3", "w(L)", "b(1)_0", "w(1)_1_0", "b(L)", "a(L)", "x", "y", "C", "w(1)_*", "W1", "b(1)_" + "9" * 30]
WORDS = [
    "sigmoid", "relu", "leaky_relu", "softmax", "identity", "ssr", "mse", "squared_error", "xavier", "he",
    "categorical_cross_entropy", "z/(1+exp(-z))", "z^3", "log(z)", "sqrt(z)", "(a - y)^2", "exp", "", " ", "w1\n",
    "__import__", "nan",
]
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e308, 5e-324, 1e-300, 2.5]),
)
integers = st.one_of(
    st.integers(-3, 12),
    st.integers(-(10**30), 10**30),
    st.sampled_from([10**400, -(10**400), 10**12, 2**63, 100_000, 0]),
)
texts = st.one_of(st.sampled_from(WORDS + NAMES), st.text(st.characters(blacklist_categories=("Cs",)), max_size=12))
scalars = st.one_of(st.booleans(), integers, floats, texts)
toml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["name", "formula", "slope", "alpha", "reduction", "x", "q"]), inner, max_size=3),
    ),
    max_leaves=8,
)


def _toml_key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


def to_toml_value(value: Any) -> str:
    """A TOML literal for ``value`` (basic strings through JSON's escapes; nan and inf as TOML spells them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if np.isfinite(value) else {"nan": "nan", "inf": "inf", "-inf": "-inf"}[repr(value)]
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(to_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {to_toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(document: dict[str, Any]) -> str:
    lines = []
    for section, table in document.items():
        if not isinstance(table, dict):
            lines.append(f"{_toml_key(section)} = {to_toml_value(table)}")
            continue
        lines.append(f"[{_toml_key(section)}]")
        lines += [f"{_toml_key(k)} = {to_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@st.composite
def mutated_specs(draw: Any) -> dict[str, Any]:
    """Seed 002's spec with a few keys replaced by, or added as, random TOML values, or deleted."""
    document = json.loads(json.dumps(VALID_SPEC))
    keys = ["layers", "activations", "activation", "cost", "trainable", "frozen", "width"]
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(["network", "names", "parameters", "init", "data", "training", "sweep", "q"]))
        table = document.setdefault(section, {})
        key = draw(st.sampled_from(sorted(table) + keys + NAMES + ["method", "seed", "x", "y"]))
        if draw(st.integers(0, 4)) == 0:
            table.pop(key, None)
        else:
            table[key] = draw(toml_values)
    return document


TOML_TOKENS = [
    "[network]", "[names]", "[parameters]", "[data]", "[init]", "[[claim]]", "layers", "activations", "cost",
    "trainable", "frozen", "x", "y", "w1", '"w(L)"', "=", " = ", "[", "]", "{", "}", ",", ".", "\n", "#", '"',
    "'", '"""', "'''", "1", "2", "0", "-1", "1e400", "9" * 400, "true", "nan", "inf", '"sigmoid"',
    '"z^2"', "{formula = ", "{name = ", "slope", "\\", "\t", "\ufeff",
]


@FUZZ
@given(st.lists(st.sampled_from(TOML_TOKENS), max_size=30).map("".join))
def test_fuzz_spec_text(tmp_path_factory: Any, text: str) -> None:
    path = tmp_path_factory.mktemp("spec") / "fuzz.toml"
    path.write_text("[network]\nlayers = [1, 2, 1]\n" + text, encoding="utf-8")
    outcome(load_spec, path, given=text)


@FUZZ
@given(mutated_specs())
def test_fuzz_mutated_specs(tmp_path_factory: Any, document: dict[str, Any]) -> None:
    given_text = json.dumps(document, ensure_ascii=False)
    if outcome(spec_from_dict, document, given=given_text) == "ok":
        assert spec_from_dict(document).network.summary()
    path = tmp_path_factory.mktemp("spec") / "fuzz.toml"
    path.write_text(to_toml(document), encoding="utf-8")
    outcome(load_spec, path, given=given_text)


@FUZZ
@given(st.lists(st.integers(-2, 400_000), min_size=0, max_size=5), st.sampled_from([None, ["b(1)_0"], ["w(1)_*"]]))
def test_fuzz_network_sizes(sizes: list[int], trainable: list[str] | None) -> None:
    outcome(Network, sizes, "sigmoid", "ssr", trainable=trainable)


# -- claims files ------------------------------------------------------------------------------------

QUANTITY_TOKENS = [
    "d", "SSR", "ssr", "b3", "w1", "predicted", "observed", "/", "(", ")", "*", "+", "-", "^", "2", "0.5",
    "exp", "log", "sigma", "__sb0", "dpredicted", "db3", "w(L)", "a(L-1)_0", " ", "1e400", "∂",
]
formula_like = st.lists(st.sampled_from(QUANTITY_TOKENS), max_size=10).map("".join)
CLAIM_KEYS = ["quantity", "value", "expression", "tolerance", "at", "example", "update", "learning_rate", "old",
              "slope", "step", "new", "steps", "until_step_below", "max_steps", "set", "text", "colour"]


@st.composite
def claims_documents(draw: Any) -> str:
    claims = []
    for _ in range(draw(st.integers(0, 3))):
        keys = draw(st.lists(st.sampled_from(CLAIM_KEYS), min_size=1, max_size=4, unique=True))
        claim = {}
        for key in keys:
            claim[key] = draw(st.one_of(formula_like, scalars, st.dictionaries(st.sampled_from(["b3", "q"]), floats, max_size=1)))
        claims.append(claim)
    head = f"spec = {json.dumps(str(SEED002))}\n"
    if draw(st.booleans()):
        head += "title = " + to_toml_value(draw(scalars)) + "\n"
    body = "".join(
        "[[claim]]\n" + "".join(f"{_toml_key(k)} = {to_toml_value(v)}\n" for k, v in claim.items()) for claim in claims
    )
    return head + body


@settings(FUZZ, max_examples=40)
@given(claims_documents())
def test_fuzz_claims(text: str) -> None:
    outcome(claims_from_text, text, base=EXAMPLES, given=text)


# -- formulas ----------------------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(0, 999).map(str),
    st.sampled_from(["0.1", "3.14159", "1e-3", "2.5e2", ".5", "1e400", "0"]),
)
atoms = st.one_of(numbers, st.sampled_from(["z", "a", "y", "pi", "e", "q", "__x"]))


def _grow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "^", "**", " − ", "×"]), inner).map(" ".join),
        inner.map(lambda t: f"({t})"),
        inner.map(lambda t: f"-{t}"),
        st.tuples(st.sampled_from([*FUNCTIONS, "eval", "open"]), inner).map(lambda p: f"{p[0]}({p[1]})"),
        st.tuples(st.sampled_from(["max", "min"]), inner, inner).map(lambda p: f"{p[0]}({p[1]}, {p[2]})"),
    )


formulas = st.one_of(
    st.recursive(atoms, _grow, max_leaves=6),
    st.text(alphabet=string.digits + "z+-*/^().,e ", max_size=20),
)


@settings(FUZZ, max_examples=150)
@given(formulas)
def test_fuzz_formulas(text: str) -> None:
    outcome(parse_formula, text, {"z": Z}, given=text)
    outcome(activation_from_formula, text, given=text)


# -- checkpoints -------------------------------------------------------------------------------------

NET = Network([1, 2, 1], ["softplus", "identity"], "ssr")
MEMBERS = ["W1", "b1", "W2", "b2", "meta", "history/loss", "optimizer/m/0", "optimizer/m/x", "optimizer/steps", "q"]
arrays = st.one_of(
    st.sampled_from([np.zeros((2, 1)), np.zeros(2), np.zeros((1, 2)), np.zeros(1), np.array(0.0), np.zeros((0,))]),
    st.sampled_from([np.array("{}"), np.array('{"optimizer": "sgd", "epoch": 1, "steps": 1}'), np.array("[" * 50)]),
    st.lists(st.floats(allow_nan=True), max_size=4).map(np.array),
    st.integers(-(2**62), 2**62).map(np.array),
)


@settings(FUZZ, max_examples=40)
@given(st.one_of(st.binary(max_size=200), st.dictionaries(st.sampled_from(MEMBERS), arrays, max_size=6)))
def test_fuzz_checkpoints(tmp_path_factory: Any, content: bytes | dict[str, np.ndarray]) -> None:
    path = tmp_path_factory.mktemp("checkpoint") / "fuzz.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        buffer = io.BytesIO()
        np.savez(buffer, **content)
        path.write_bytes(buffer.getvalue())
    outcome(load_checkpoint, path, NET)


# == the reproductions of issue 11's "Tracebacks and hangs" list, as fixed cases ========================

L11 = "[network]\nlayers = [1, 1]\n"


def _spec_case(text: str) -> Callable[[Path], str]:
    def run(folder: Path) -> str:
        path = folder / "case.toml"
        path.write_text(text, encoding="utf-8")
        return outcome(load_spec, path, given=text)

    return run


SPEC_CASES = {
    "layers nested 1,000 deep": "[network]\nlayers = " + "[" * 1000 + "]" * 1000 + "\n",
    "inline tables nested 1,000 deep": L11 + "[training]\nq = " + "{a = " * 1000 + "1" + "}" * 1000 + "\n",
    "a dotted key of 3,000 parts": L11 + "[report]\n" + ".".join(["k"] * 3000) + " = 1\n",
    "layers = [100000, 100000]": "[network]\nlayers = [100000, 100000]\n",
    "[10^12, 1] with trainable b(1)": '[network]\nlayers = [1000000000000, 1]\ntrainable = ["b(1)"]\n',
    "activations = 1": L11 + "activations = 1\n",
    "trainable = 1": L11 + "trainable = 1\n",
    "frozen = true": L11 + "frozen = true\n",
    "a parameter index of 4,301 digits": "[network]\nlayers = [1, 2]\n[parameters]\n\"b(1)_" + "9" * 4301 + "\" = 1\n",
    "an integer of 400 zeros in [parameters]": L11 + '[parameters]\n"w(L)" = 1' + "0" * 400 + "\n",
    "an integer of 400 zeros in [data]": L11 + "[data]\nx = [1" + "0" * 400 + "]\ny = [1]\n",
    "true as a parameter": L11 + '[parameters]\n"w(L)" = true\n',
    "true as data": L11 + "[data]\nx = [true]\ny = [1]\n",
    'a name "w1\\n"': L11 + '[names]\n"w(L)" = "w1\\n"\n',
    "leaky_relu slope = nan": L11 + 'activations = {name = "leaky_relu", slope = nan}\n',
}
SPEC_EXPECTED_ERROR = set(SPEC_CASES)


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_issue11_spec_reproductions(tmp_path: Path, case: str) -> None:
    assert _spec_case(SPEC_CASES[case])(tmp_path) == "error"


def test_issue11_a_spec_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + L11.encode())
    assert outcome(load_spec, path) == "ok"


@pytest.mark.parametrize("name", ["b(1)_" + "9" * 4301, "W(l)_" + "1" * 5000])
def test_issue11_wrt_with_a_4301_digit_index(capsys: Any, name: str) -> None:
    with bounded():
        assert main(["derive", str(SEED002), "--wrt", name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("symback: error: unknown name")


# -- claims and checkpoints (files) --------------------------------------------------------------------


def test_issue11_claims_spec_with_a_nul_character() -> None:
    assert outcome(claims_from_text, 'spec = "a\\u0000b"\n[[claim]]\nquantity = "b3"\nvalue = "1"\n', base=EXAMPLES) == "error"


@pytest.fixture(scope="module")
def checkpoint_members(tmp_path_factory: Any) -> dict[str, np.ndarray]:
    """The arrays of a real checkpoint: seed 002 trained one epoch with ``--save``."""
    path = tmp_path_factory.mktemp("run") / "run.npz"
    with bounded():
        assert main(["train", str(SEED002), "--epochs", "1", "--save", str(path), "--quiet"]) == 0
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def _meta(**changes: Any) -> np.ndarray:
    meta = {"format": "symback-checkpoint-1", "optimizer": "sgd", "epoch": 1, "steps": 1}
    return np.array(json.dumps({**meta, **changes}))


CHECKPOINT_CASES = {
    "meta of 100,000 [": {"meta": np.array("[" * 100_000)},
    "a 0-d history/loss": {"history/loss": np.array(1.0)},
    "key optimizer/m/x": {"optimizer/m/x": np.zeros(2)},
    "rng_state 10^60": {
        "meta": _meta(rng_state={"bit_generator": "PCG64", "state": {"state": 10**60, "inc": 1}, "has_uint32": 0,
                                 "uinteger": 0})
    },
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_issue11_checkpoint_reproductions(tmp_path: Path, checkpoint_members: dict[str, np.ndarray], case: str) -> None:
    path = tmp_path / "run.npz"
    np.savez(path, **{**checkpoint_members, **CHECKPOINT_CASES[case]})
    assert outcome(load_checkpoint, path, load_spec(SEED002).network) == "error"


def test_the_unchanged_checkpoint_loads(tmp_path: Path, checkpoint_members: dict[str, np.ndarray]) -> None:
    path = tmp_path / "run.npz"
    np.savez(path, **checkpoint_members)
    assert outcome(load_checkpoint, path, load_spec(SEED002).network) == "ok"


def test_issue11_checkpoint_with_an_unsupported_compression(tmp_path: Path, checkpoint_members: dict[str, np.ndarray]) -> None:
    """A member compressed by a method zipfile cannot read (PPMd, 98) raised NotImplementedError."""
    buffer = io.BytesIO()
    np.savez(buffer, **checkpoint_members)
    data = bytearray(buffer.getvalue())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local and central headers
        start = data.find(signature)
        while start >= 0:
            data[start + offset : start + offset + 2] = (98).to_bytes(2, "little")
            start = data.find(signature, start + 4)
    path = tmp_path / "ppmd.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(NotImplementedError):  # the file is what the issue describes
        zipfile.ZipFile(path).read(zipfile.ZipFile(path).namelist()[0])
    assert outcome(load_checkpoint, path, load_spec(SEED002).network) == "error"


# -- command lines in a child process: hangs no signal interrupts, memory, output files ---------------


def _limits() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))


def run_cli(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str] | None:
    """``python -m symback argv`` under CHILD_SECONDS and CHILD_MEMORY; None when it ran out of time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        return subprocess.run(
            [sys.executable, "-m", "symback", *argv], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=CHILD_SECONDS, preexec_fn=_limits,
        )
    except subprocess.TimeoutExpired:
        return None


def _formula_spec(activation: str | None = None, cost: str | None = None) -> str:
    text = "[network]\nlayers = [1, 1]\n"
    if activation:
        text += f"activations = {{formula = {json.dumps(activation)}}}\n"
    if cost:
        text += f"cost = {{formula = {json.dumps(cost)}}}\n"
    return text + "[data]\nx = [0.5, -0.25]\ny = [1, 0]\n"


#: name -> (files to write, argv, owner mark or None).  Each must end within CHILD_SECONDS with a status of
#: 0, 1 (a verdict or a stop reason) or 2 (a one-line error), and nothing on stderr but "symback: " lines.
CLI_CASES: dict[str, tuple[dict[str, str], list[str], Any]] = {
    "z^1000 trains": ({"s.toml": _formula_spec("z^1000")}, ["train", "s.toml", "--epochs", "1"], None),
    "z^1000 report": ({"s.toml": _formula_spec("z^1000")}, ["report", "s.toml", "--wrt", "b(L)", "-o", "r.md"], None),
    "(z+1)^50*(z-1)^50 derives": (
        {"s.toml": _formula_spec("(z+1)^50*(z-1)^50")}, ["derive", "s.toml", "--wrt", "b(L)"], None),
    "((0.1^1000)^1000)^1000": ({"s.toml": _formula_spec("z + ((0.1^1000)^1000)^1000")}, ["info", "s.toml"], None),
    "cos(exp(10^10))^2": ({"s.toml": _formula_spec("z*cos(exp(10^10))^2")}, ["info", "s.toml"], None),
    "123456789012345678901234567890^(-0.000001)": (
        {"s.toml": _formula_spec("z + 123456789012345678901234567890^(-0.000001)")}, ["info", "s.toml"], None),
    "z*sin(exp(10^10)) derives": (
        {"s.toml": _formula_spec("z*sin(exp(10^10))")}, ["derive", "s.toml", "--wrt", "b(L)"], None),
    "max(exp(exp(exp(1000))), z)": (
        {"s.toml": _formula_spec("max(exp(exp(exp(1000))), z)")}, ["train", "s.toml", "--epochs", "1"], None),
    "(a - y)^2 + log(0)": ({"s.toml": _formula_spec(cost="(a - y)^2 + log(0)")}, ["train", "s.toml", "--epochs", "1"], None),
    "z + tan(10^20)": ({"s.toml": _formula_spec("z + tan(10^20)")}, ["train", "s.toml", "--epochs", "1"], None),
    "z + sqrt(123456789012345678901234567890)": (
        {"s.toml": _formula_spec("z + sqrt(123456789012345678901234567890)")}, ["train", "s.toml", "--epochs", "1"], None),
    "z*3.14159^1000": ({"s.toml": _formula_spec("z*3.14159^1000")}, ["train", "s.toml", "--epochs", "1"], None),
    "(a - y)^2 + 1e400": ({"s.toml": _formula_spec(cost="(a - y)^2 + 1e400")}, ["train", "s.toml", "--epochs", "1"], None),
    "(a - y)^2 * (-8)^(1/3)": (
        {"s.toml": _formula_spec(cost="(a - y)^2 * (-8)^(1/3)")}, ["train", "s.toml", "--epochs", "1"], None),
    "claims spec = /dev/zero": ({"c.toml": 'spec = "/dev/zero"\n[[claim]]\nquantity = "b3"\nvalue = "1"\n'},
                                ["verify", "c.toml"], None),
    "info /dev/zero": ({}, ["info", "/dev/zero"], None),
    "an update claim of 10^12 steps": (
        {"c.toml": f"spec = {json.dumps(str(SEED002))}\n[[claim]]\nupdate = \"b3\"\nlearning_rate = 0.1\n"
                   'at = { b3 = 0 }\nsteps = 1000000000000\nnew = "2.21"\n'},
        ["verify", "c.toml"], None),
    "train --save with a 300-character name": ({"s.toml": SEED002.read_text()},
                                               ["train", "s.toml", "--epochs", "1", "--save", "n" * 300 + ".npz"], None),
    "train --save onto the spec": ({"s.toml": SEED002.read_text()}, ["train", "s.toml", "--epochs", "1", "--save", "s.toml"], None),
    # NumPy's RuntimeWarnings in words (sqrt(z-10), check --step 1e308): in-process in tests/test_cli.py.
}
#: Cases whose spec must not survive as anything but itself.
_KEEPS = {"train --save onto the spec": "s.toml"}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: Any) -> dict[str, Future]:
    """Every CLI case started at once on a pool of two (the children are independent; their bounds are
    per child), so the slow ones overlap."""
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {}
    for name, (files, argv, mark) in CLI_CASES.items():
        if mark is not None and mark.kwargs.get("run") is False:
            continue
        folder = tmp_path_factory.mktemp("cli")
        for file_name, text in files.items():
            (folder / file_name).write_text(text, encoding="utf-8")
        futures[name] = pool.submit(lambda a=argv, f=folder: (run_cli(a, f), f))
    yield futures
    pool.shutdown(wait=True)


@pytest.mark.parametrize(
    "case", [pytest.param(name, marks=[mark] if mark else []) for name, (_, _, mark) in CLI_CASES.items()]
)
def test_issue11_command_line_reproductions(cli_runs: dict[str, Future], case: str) -> None:
    result, folder = cli_runs[case].result()
    assert result is not None, f"still running after {CHILD_SECONDS} s"
    assert result.returncode in (0, 1, 2), result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert all(line.startswith("symback: ") for line in lines), result.stderr[-2000:]
    assert sum(line.startswith("symback: error: ") for line in lines) == (result.returncode == 2)
    for line in lines:
        check_message(line)
    if case in _KEEPS:
        assert (folder / _KEEPS[case]).read_text(encoding="utf-8") == CLI_CASES[case][0][_KEEPS[case]]


def test_issue11_output_onto_a_fifo_is_refused(tmp_path: Path) -> None:
    """An existing non-regular target (as root, ``-o /dev/null`` replaced /dev/null) is refused; a fifo
    stands in for the device node here."""
    fifo = tmp_path / "out.md"
    os.mkfifo(fifo)
    result = run_cli(["report", str(SEED002), "--wrt", "b3", "-o", str(fifo)], tmp_path)
    assert result is not None and result.returncode == 2
    assert fifo.is_fifo()
