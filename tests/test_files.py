"""Atomic writes: complete files with ordinary permissions, nothing left behind on failure."""

from __future__ import annotations

import os
import stat

import pytest

from symback.errors import SymbackError
from symback.files import write_atomic


def test_writes_text_and_bytes_with_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "sub" / "a.txt", "héllo")
    finally:
        os.umask(old)
    assert path.read_text(encoding="utf-8") == "héllo"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert write_atomic(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = write_atomic(tmp_path / "report.html", "old")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(SymbackError, match="cannot write .*disk full"):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_unwritable_folder_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SymbackError, match="cannot write"):
        write_atomic(blocker / "inside.txt", "y")


def test_a_folder_in_the_way_is_one_line(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(SymbackError, match="cannot write"):
        write_atomic(tmp_path / "taken", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_read_npz_turns_every_bad_file_into_one_line(tmp_path):
    import numpy as np

    from symback.errors import SpecError
    from symback.files import read_npz

    good = tmp_path / "good.npz"
    np.savez(good, W1=np.eye(2), b1=np.zeros(2))
    arrays = read_npz(good, "parameter file")
    assert sorted(arrays) == ["W1", "b1"] and np.array_equal(arrays["W1"], np.eye(2))
    np.save(tmp_path / "one.npy", np.zeros(3))
    (tmp_path / "text.npz").write_text("W1 = 1\n")
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:100])
    np.savez(tmp_path / "objects.npz", a=np.array([{}], dtype=object))
    cases = {
        "one.npy": "holds a single .npy array",
        "text.npz": "not an .npz archive",
        "cut.npz": "cannot read parameter file",
        "objects.npz": "Object arrays cannot be loaded",
        "missing.npz": "parameter file .* not found",
        ".": "cannot read parameter file",  # a folder
    }
    for name, message in cases.items():
        with pytest.raises(SpecError, match=message) as error:
            read_npz(tmp_path / name, "parameter file")
        assert "\n" not in str(error.value)
