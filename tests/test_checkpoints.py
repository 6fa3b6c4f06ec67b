"""Checkpoints and parameter files from outside: every damaged or hostile file is one line naming it.

The reproductions of issue 11: deeply nested metadata, a 0-d history, a malformed optimizer key,
a huge RNG integer, an unsupported zip compression, an archive that claims to expand to gigabytes;
and the output side of ``train --save``.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from symback import Dataset, Network, Parameters
from symback.cli import main
from symback.errors import SpecError
from symback.training.train import Trainer, TrainingConfig, load_checkpoint, load_parameters

from .conftest import EXAMPLES
from .test_files import char_device

SEED002 = str(EXAMPLES / "seed002.toml")


@pytest.fixture
def net() -> Network:
    return Network([1, 2, 1], "sigmoid", "squared_error")


@pytest.fixture
def good(tmp_path, net):
    path = tmp_path / "good.npz"
    config = TrainingConfig(epochs=2, optimizer="adam", checkpoint=str(path))
    Trainer(net, config).fit(Parameters.initialize(net, seed=0), Dataset(np.array([[1.0], [2.0]]), np.array([[2.0], [1.0]])))
    return path


def _arrays(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return dict(archive)


def _refused(path, net, message: str) -> str:
    with pytest.raises(SpecError, match=message) as error:
        load_checkpoint(path, net)
    text = str(error.value)
    assert "\n" not in text and str(path) in text
    return text


def test_the_good_checkpoint_loads(good, net):
    checkpoint = load_checkpoint(good, net)
    assert checkpoint.epoch == 2 and checkpoint.optimizer == "adam" and len(checkpoint.history.loss) == 2
    assert sorted(checkpoint.optimizer_state) == ["m/0", "m/1", "m/2", "m/3", "steps", "v/0", "v/1", "v/2", "v/3"]


def test_deeply_nested_metadata_is_one_line(tmp_path, good, net):
    path = tmp_path / "nested.npz"
    np.savez(path, **{**_arrays(good), "meta": np.array("[" * 100_000)})  # RecursionError in json before
    _refused(path, net, "damaged checkpoint metadata: nested too deeply")
    np.savez(path, **{**_arrays(good), "meta": np.array(["{}", "{}"])})
    _refused(path, net, "damaged checkpoint metadata: meta must be one JSON text")


def test_a_0d_history_is_one_line(tmp_path, good, net):
    path = tmp_path / "history.npz"
    np.savez(path, **{**_arrays(good), "history/loss": np.array(0.5)})  # TypeError before
    _refused(path, net, "damaged checkpoint history: history/loss must be a 1-d array")


def test_a_malformed_optimizer_key_is_one_line(tmp_path, good, net):
    path = tmp_path / "optimizer.npz"
    np.savez(path, **{**_arrays(good), "optimizer/m/x": np.zeros(2)})  # ValueError before
    _refused(path, net, "damaged checkpoint optimizer state: 'optimizer/m/x' is not a state array's name")
    arrays = _arrays(good)
    del arrays["optimizer/v/3"]
    np.savez(path, **arrays)
    _refused(path, net, r"slot 'v' needs arrays 0 to 3, has \[0, 1, 2\]")


def test_a_huge_rng_integer_is_one_line(tmp_path, good, net):
    arrays = _arrays(good)
    meta = json.loads(str(arrays["meta"]))
    meta["rng_state"]["state"]["state"] = 10**60  # OverflowError before
    path = tmp_path / "rng.npz"
    np.savez(path, **{**arrays, "meta": np.array(json.dumps(meta))})
    _refused(path, net, "damaged checkpoint metadata: the shuffling .RNG. state is not one NumPy accepts")


def test_an_unsupported_compression_is_one_line(tmp_path, good, net):
    data = bytearray(good.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[8:10] = data[central + 10 : central + 12] = (99).to_bytes(2, "little")
    path = tmp_path / "compressed.npz"
    path.write_bytes(bytes(data))
    _refused(path, net, "uses zip compression method 99")  # NotImplementedError before


def test_an_archive_claiming_gigabytes_is_refused_before_expanding(tmp_path, good, net):
    # What a 3 MB file expanding to 3.2 GB shows the reader: a member's size in the central directory.
    data = bytearray(good.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 24 : central + 28] = (3_200_000_000).to_bytes(4, "little")
    path = tmp_path / "bomb.npz"
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:
        assert sum(m.file_size for m in archive.infolist()) > 3_000_000_000
    _refused(path, net, r"expands to 30\d\d MiB, more than the 256 MiB symback reads")
    with pytest.raises(SpecError, match="expands to"):
        load_parameters(path, net)


def test_cli_resume_from_a_damaged_checkpoint_is_one_line(tmp_path, good, capsys):
    path = tmp_path / "nested.npz"
    arrays = _arrays(good)
    np.savez(path, **{**arrays, "meta": np.array("[" * 100_000)})
    assert main(["train", SEED002, "--resume", str(path), "--quiet", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "damaged checkpoint" in err


# -- train --save: the target is checked before the training it would lose -----------------------


def _train(argv, capsys):
    status = main(["train", SEED002, "--quiet", "--epochs", "2", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_save_refuses_a_target_of_another_format_before_training(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_bytes((EXAMPLES / "seed002.toml").read_bytes())
    before = spec.read_bytes()
    status, out, err = _train(["--save", str(spec)], capsys)
    assert status == 2 and "stopped" not in out and err.count("\n") == 1
    assert "must end in .npz" in err
    assert spec.read_bytes() == before


def test_save_with_a_300_character_name_is_one_line(tmp_path, capsys):
    status, out, err = _train(["--save", str(tmp_path / ("m" * 296 + ".npz"))], capsys)
    assert status == 2 and "stopped" not in out and err.count("\n") == 1 and "longer than 255 bytes" in err


def test_save_refuses_a_fifo_or_a_link_to_a_device(tmp_path, capsys):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    link = tmp_path / "null.npz"
    link.symlink_to(char_device(tmp_path))  # never the system's /dev/null: a regression would replace it
    for target, kind in ((fifo, "fifo"), (link, "symbolic link to a character device")):
        status, out, err = _train(["--save", str(target)], capsys)
        assert status == 2 and "stopped" not in out and err.count("\n") == 1 and kind in err, err
    assert link.is_symlink() and not list(tmp_path.glob("*.part"))


def test_save_into_a_path_under_a_file_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    status, out, err = _train(["--save", str(blocker / "b3.npz")], capsys)
    assert status == 2 and "stopped" not in out and err.count("\n") == 1 and "cannot write" in err


def test_save_then_resume_round_trips(tmp_path, capsys):
    path = tmp_path / "model.npz"
    assert _train(["--save", str(path)], capsys)[0] == 0
    status, out, err = _train(["--resume", str(path), "--save", str(path), "--epochs", "4"], capsys)
    assert status == 0 and err == "" and "4 in all" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


# -- fuzzing: a damaged checkpoint loads or is one line naming the file, never another exception ----

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**70), 10**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
meta_keys = st.sampled_from(["optimizer", "epoch", "steps", "rng_state", "progress", "format"])


def _loads_or_one_line(path, net) -> None:
    try:
        load_checkpoint(path, net)
    except SpecError as error:
        assert str(error) and "\n" not in str(error)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_flipped_bytes_load_or_are_one_line(tmp_path, good, net, flips):
    data = bytearray(good.read_bytes())
    for where, byte in flips:
        data[int(where * (len(data) - 1))] = byte
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(bytes(data))
    _loads_or_one_line(path, net)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(meta_keys, json_values, max_size=4), st.booleans())
def test_any_metadata_loads_or_is_one_line(tmp_path, good, net, changes, replace_all):
    arrays = _arrays(good)
    meta = {} if replace_all else json.loads(str(arrays["meta"]))
    meta.update(changes)
    path = tmp_path / "meta.npz"
    np.savez(path, **{**arrays, "meta": np.array(json.dumps(meta))})
    _loads_or_one_line(path, net)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["history/loss", "history/gradient_norms", "optimizer/m/0", "optimizer/steps", "optimizer/q/7",
                     "W1", "b2", "meta"]),
    st.sampled_from([np.array(1.5), np.zeros((2, 2, 2)), np.array(["x"]), np.array([True]), np.zeros(0),
                     np.array([np.nan]), np.arange(3), np.zeros((1, 2), dtype=np.float32)]),
)
def test_any_array_in_any_slot_loads_or_is_one_line(tmp_path, good, net, key, value):
    path = tmp_path / "arrays.npz"
    np.savez(path, **{**_arrays(good), key: value})
    _loads_or_one_line(path, net)
