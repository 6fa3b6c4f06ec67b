"""files: bounded reading of regular files only, .npz archives checked before allocating, atomic writes."""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from symback.cli import main
from symback.errors import SpecError, SymbackError
from symback.files import MAX_ARRAY_BYTES, MAX_TEXT_BYTES, check_output, read_bytes, read_npz, read_text, write_atomic


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
        "objects.npz": "only numeric arrays are loaded",
        "missing.npz": "parameter file .* not found",
        ".": "is a folder, not a regular file",
    }
    for name, message in cases.items():
        with pytest.raises(SpecError, match=message) as error:
            read_npz(tmp_path / name, "parameter file")
        assert "\n" not in str(error.value)


# -- reading within bounds (issue 11) ---------------------------------------------------------

SEED002 = Path(__file__).resolve().parent.parent / "examples" / "seed002.toml"
needs_dev_zero = pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")


def _one_line(error) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


@needs_dev_zero
def test_a_device_is_refused_before_a_byte_is_read():
    with pytest.raises(SpecError, match="'/dev/zero' is a character device, not a regular file") as error:
        read_text("/dev/zero", "spec file")
    _one_line(error)
    with pytest.raises(SpecError, match="character device"):
        read_npz("/dev/zero", "checkpoint")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="is a fifo"):  # an open() would block here forever
        read_text(fifo, "spec file")


def test_a_file_over_the_limit_is_refused(tmp_path):
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * 2000)
    assert read_bytes(big, "spec file", limit=2000) == b"#" * 2000
    with pytest.raises(SpecError, match="larger than the 1000 bytes symback reads"):
        read_bytes(big, "spec file", limit=1000)
    assert MAX_TEXT_BYTES == 256 * 2**20 and MAX_ARRAY_BYTES == 4 * 2**30  # the README's documented limits
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert "up to 256 MiB of UTF-8 TOML" in readme and "`.npz` archives up to 4 GiB" in readme


def test_a_nul_in_a_path_is_one_line():
    with pytest.raises(SpecError, match="cannot contain a NUL") as error:
        read_text("a\x00b", "spec file")
    _one_line(error)
    with pytest.raises(SpecError, match="cannot contain a NUL"):
        read_npz("a\x00b.npz", "checkpoint")


def test_a_byte_order_mark_is_dropped_and_bad_utf8_is_one_line(tmp_path):
    marked = tmp_path / "marked.toml"
    marked.write_bytes(b"\xef\xbb\xbf" + SEED002.read_bytes())
    from symback.spec.loader import load_spec

    assert load_spec(marked).network.sizes == load_spec(SEED002).network.sizes
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"# caf\xe9\n[network]\n")
    with pytest.raises(SpecError, match=r"not UTF-8 text \(byte 0xe9 on line 1\)") as error:
        read_text(bad, "spec file")
    _one_line(error)


def _cli(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@needs_dev_zero
def test_cli_info_on_a_device_and_claims_naming_a_device_or_a_nul_path(tmp_path, capsys):
    status, out, err = _cli(["info", "/dev/zero"], capsys)
    assert status == 2 and out == "" and err.count("\n") == 1 and "character device" in err
    for spec, message in (("/dev/zero", "character device"), ("a\\u0000b", "cannot contain a NUL")):
        claims = tmp_path / "claims.toml"
        claims.write_text(f'spec = "{spec}"\n[[claim]]\nquantity = "d(C)/d(b3)"\nvalue = "1"\n')
        status, out, err = _cli(["verify", str(claims)], capsys)
        assert status == 2 and err.count("\n") == 1 and message in err, err


# -- .npz archives: sizes checked before anything is allocated ---------------------------------


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_an_npy_header_declaring_more_than_the_archive_holds_is_refused(tmp_path):
    # A 3 MB file may declare 3.2 GB: the header's shape is checked against the member's size first.
    body = np.lib.format
    member = io.BytesIO()
    body.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": (400_000_000,)})
    member.write(b"\x00" * 64)
    path = tmp_path / "lies.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("W1.npy", member.getvalue())
    with pytest.raises(SpecError, match=r"declares shape \(400000000,\) \(3052 MiB\) but the archive holds fewer") as error:
        read_npz(path, "checkpoint")
    _one_line(error)


def test_an_archive_expanding_past_the_limit_is_refused_before_expanding(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, W1=np.zeros(100_000))  # 800 kB of zeros in about 1 kB
    assert path.stat().st_size < 10_000
    with pytest.raises(SpecError, match=r"expands to .* more than the 100000 bytes symback reads"):
        read_npz(path, "checkpoint", limit=100_000)
    assert read_npz(path, "checkpoint")["W1"].shape == (100_000,)


def test_an_unsupported_zip_compression_is_one_line(tmp_path):
    data = bytearray(_npz_bytes(W1=np.eye(2)))
    central = data.index(b"PK\x01\x02")
    data[8:10] = data[central + 10 : central + 12] = (99).to_bytes(2, "little")  # method 99 in both headers
    path = tmp_path / "odd.npz"
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive, pytest.raises(NotImplementedError):
        archive.read("W1.npy")  # what NumPy would have let through
    with pytest.raises(SpecError, match="uses zip compression method 99") as error:
        read_npz(path, "checkpoint")
    _one_line(error)


def test_arrays_round_trip_in_every_layout_and_byte_order(tmp_path):
    arrays = {
        "c": np.arange(6.0).reshape(2, 3),
        "f": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "big": np.arange(4, dtype=">i4"),
        "empty": np.zeros((0, 3)),
        "text": np.array('{"a": 1}'),
        "flag": np.array([True, False]),
    }
    path = tmp_path / "all.npz"
    np.savez(path, **arrays)
    loaded = read_npz(path, "data file")
    for key, array in arrays.items():
        assert loaded[key].dtype == array.dtype and np.array_equal(loaded[key], array), key
        assert loaded[key].flags.writeable
    with np.load(path) as reference:
        assert all(np.array_equal(reference[key], loaded[key]) for key in arrays)


def test_a_damaged_member_crc_is_one_line(tmp_path):
    data = bytearray(_npz_bytes(W1=np.arange(16.0)))
    data[data.index(b"\x93NUMPY") + 200] ^= 0xFF  # one byte of the values, inside the stored member
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(SpecError, match="CRC") as error:
        read_npz(path, "checkpoint")
    _one_line(error)


# -- writing: targets, names, stale temporaries ------------------------------------------------


def char_device(folder: Path) -> Path:
    """A device node like /dev/null, in ``folder``: a test that went wrong replaces it, never the system's."""
    node = folder / "null-device"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (OSError, AttributeError):
        pytest.skip("cannot create a device node here (needs root)")
    return node


def test_a_device_target_is_refused_not_replaced(tmp_path):
    device = char_device(tmp_path)
    link = tmp_path / "null.html"
    link.symlink_to(device)
    for target in (device, link):
        with pytest.raises(SymbackError, match="character device, not") as error:
            write_atomic(target, "x")
        _one_line(error)
    assert device.is_char_device() and link.is_symlink()


def test_a_fifo_target_is_refused(tmp_path):
    fifo = tmp_path / "out.npz"
    os.mkfifo(fifo)
    with pytest.raises(SymbackError, match="is a fifo"):
        write_atomic(fifo, b"x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symlink_to_a_regular_file_is_written_through(tmp_path):
    real = write_atomic(tmp_path / "run3.npz", b"old")
    link = tmp_path / "latest.npz"
    link.symlink_to(real.name)
    write_atomic(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    dangling = tmp_path / "dangling.npz"
    dangling.symlink_to(tmp_path / "nowhere" / "x.npz")
    with pytest.raises(SymbackError, match="symbolic link to .* which does not exist"):
        write_atomic(dangling, b"x")


def test_a_long_name_works_up_to_the_file_system_limit_and_is_one_line_past_it(tmp_path):
    name = "m" * 251 + ".npz"  # 255 bytes: its temporary file's name must still fit
    assert write_atomic(tmp_path / name, b"ok").read_bytes() == b"ok"
    with pytest.raises(SymbackError, match="cannot write") as error:
        write_atomic(tmp_path / ("m" * 296 + ".npz"), b"x")
    _one_line(error)
    with pytest.raises(SymbackError, match="longer than 255 bytes"):
        check_output(tmp_path / ("m" * 296 + ".npz"), "--save ", [".npz"])
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".model.npz.{dead_pid}-abcd1234.part"
    alive = tmp_path / f".model.npz.{os.getppid()}-abcd1234.part"  # a live process (pytest's parent)
    other = tmp_path / f".other.npz.{dead_pid}-abcd1234.part"
    for path in (stale, alive, other):
        path.write_bytes(b"half")
    write_atomic(tmp_path / "model.npz", b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name, "model.npz"])


def test_the_file_and_its_folder_are_flushed_before_and_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    write_atomic(tmp_path / "a.txt", "x")
    assert events == ["fsync", "replace", "fsync"]


def test_check_output_refuses_a_wrong_extension_and_a_folder(tmp_path):
    with pytest.raises(SymbackError, match="must end in .npz"):
        check_output(tmp_path / "spec.toml", "--save ", [".npz"])
    with pytest.raises(SymbackError, match="is a folder"):
        check_output(tmp_path, "--save ", [".npz"])
    assert check_output(tmp_path / "MODEL.NPZ", "--save ", [".npz"]) == tmp_path / "MODEL.NPZ"


def test_every_html_page_symback_writes_forbids_scripts(tmp_path, capsys):
    """The verify page carries the same Content-Security-Policy as the report and the demo."""
    templates = Path(__file__).resolve().parent.parent / "templates"
    policy = re.compile(r'<meta http-equiv="Content-Security-Policy" content="default-src \'none\';[^"]*">')
    pages = [t for t in sorted(templates.glob("*.html.j2")) if "<html" in t.read_text(encoding="utf-8")]
    assert {"report.html.j2", "verify.html.j2", "demo.html.j2"} <= {t.name for t in pages}
    for template in pages:  # a fragment (display.html.j2) is included into one of these pages
        head = template.read_text(encoding="utf-8").split("</head>")[0]
        assert policy.search(head), template.name
    out = tmp_path / "verdicts.html"
    main(["verify", str(SEED002.parent / "seed002_claims.toml"), "--format", "html", "-o", str(out)])
    capsys.readouterr()
    assert policy.search(out.read_text(encoding="utf-8").split("</head>")[0])
