"""Reading input files within bounds, and writing output files atomically.

Reading: every file symback reads (specs, claims files, parameter files, checkpoints,
data) is opened by :func:`open_regular`, which refuses anything but a regular file
(a device such as ``/dev/zero``, a fifo, a folder) before a byte is read, and read up
to a documented size: :data:`MAX_TEXT_BYTES` for TOML text (:func:`read_text`, which
also drops a UTF-8 byte-order mark), :data:`MAX_ARRAY_BYTES` for what an ``.npz``
archive may expand to (:func:`read_npz`, which checks every array's declared size
against the archive before allocating it).  Every problem is a one-line SpecError
naming the file.

Writing: :func:`write_atomic` writes a temporary file ``.NAME.PID-XXXXXXXX.part`` in
the same folder, flushes it to disk and renames it over the target, so a crash, a full
disk or Ctrl-C never leaves a half-written report, picture or checkpoint behind:
either the old file (if any) or the complete new one is there.  A temporary file left
by a process that was killed (``kill -9``, a power cut) is removed by the next write of
the same file.  An existing target that is not a regular file (``/dev/null``, a fifo)
is refused; a symbolic link to a regular file is written through (the link stays, its
target gets the new content), as a shell's ``>`` would.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_atomic(folder / "note.toml", "\\ufeffcomplete").name
'note.toml'
>>> read_text(folder / "note.toml", "spec file")  # the byte-order mark is dropped
'complete'
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np

from .errors import SpecError, SymbackError

__all__ = [
    "MAX_ARRAY_BYTES",
    "MAX_TEXT_BYTES",
    "check_output",
    "open_regular",
    "read_bytes",
    "read_npz",
    "read_text",
    "write_atomic",
]

#: The largest text file (spec or claims TOML) read: 256 MiB, room for large inline [data] arrays.
MAX_TEXT_BYTES = 256 * 2**20
#: The most an ``.npz`` archive (parameters, checkpoint, data) may hold once expanded: 4 GiB.
MAX_ARRAY_BYTES = 4 * 2**30

_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a fifo (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
    stat.S_IFLNK: "a symbolic link",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _show(path: str | os.PathLike[str]) -> str:
    return repr(os.fspath(path))


def _size(count: int) -> str:
    return f"{count / 2**20:.0f} MiB" if count >= 2**20 else f"{count} bytes"


def _check_name(path: str | os.PathLike[str], what: str) -> str:
    name = os.fspath(path)
    if not isinstance(name, str):
        raise SpecError(f"{what} path must be text, not {type(name).__name__}")
    if "\x00" in name:
        raise SpecError(f"{what} {name!r}: a file name cannot contain a NUL character")
    if not name:
        raise SpecError(f"{what}: the file name is empty")
    return name


def open_regular(path: str | os.PathLike[str], what: str, *, limit: int) -> IO[bytes]:
    """``path`` opened for reading in binary, when it is a regular file of at most ``limit`` bytes.

    Never blocks (a fifo is refused, not waited on) and never reads from a device.

    >>> open_regular("/dev/zero", "spec file", limit=100)
    Traceback (most recent call last):
    ...
    symback.errors.SpecError: spec file '/dev/zero' is a character device, not a regular file
    """
    name = _check_name(path, what)
    try:
        # Refused before opening: opening some devices (a tape, a terminal) already does something.
        info = os.stat(name)
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(f"{what} {name!r} is {_kind(info.st_mode)}, not a regular file")
        # O_NONBLOCK: should it have become a fifo since, opening it must not wait for a writer forever.
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SpecError(f"{what} {name!r} not found") from None
    except OSError as error:
        raise SpecError(f"cannot read {what} {name!r}: {error.strerror or error}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(f"{what} {name!r} is {_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise SpecError(f"{what} {name!r} is {_size(info.st_size)}, larger than the {_size(limit)} symback reads")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike[str], what: str, *, limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them (a file growing past it is refused)."""
    with open_regular(path, what, limit=limit) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as error:
            raise SpecError(f"cannot read {what} {_show(path)}: {error.strerror or error}") from None
    if len(data) > limit:  # it grew after the size check
        raise SpecError(f"{what} {_show(path)} is larger than the {_size(limit)} symback reads")
    return data


def read_text(path: str | os.PathLike[str], what: str, *, limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of ``path`` (a leading byte-order mark dropped; at most ``limit`` bytes).

    A missing, unreadable, oversized or non-UTF-8 file is a one-line SpecError naming ``what``.
    """
    data = read_bytes(path, what, limit=limit)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise SpecError(
            f"{what} {_show(path)} is not UTF-8 text (byte 0x{data[error.start]:02x} on line {line})"
        ) from None


# -- .npz archives ------------------------------------------------------------------------------

#: dtype kinds an archive may hold: booleans, numbers and (checkpoint metadata) strings; never objects.
_ARRAY_KINDS = frozenset("biufcUS")
_COMPRESSIONS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}  # what np.savez and np.savez_compressed write


def read_npz(
    path: str | os.PathLike[str], what: str, *, limit: int = MAX_ARRAY_BYTES
) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` archive at ``path``, by name (never unpickling anything).

    Each array's declared shape and dtype are checked against the archive before any memory is
    allocated, and the archive may expand to at most ``limit`` bytes.  A missing file, a lone
    ``.npy`` array, a damaged archive, an unsupported compression or object arrays are a one-line
    SpecError naming ``what`` (e.g. "parameter file") and the path.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.savez(folder / "a.npz", W1=np.eye(2))
    >>> sorted(read_npz(folder / "a.npz", "parameter file"))
    ['W1']
    """
    name = _check_name(path, what)
    handle = open_regular(name, what, limit=limit)
    with handle:
        if handle.read(6) == b"\x93NUMPY":
            raise SpecError(f"{what} {name!r} holds a single .npy array; an .npz archive of named arrays is needed")
        handle.seek(0)
        try:
            with zipfile.ZipFile(handle) as archive:
                return _read_members(archive, name, what, limit)
        except SpecError:
            raise
        except zipfile.BadZipFile as error:
            raise SpecError(f"cannot read {what} {name!r}: not an .npz archive of numeric arrays ({error})") from None
        except MemoryError:
            raise SpecError(f"cannot read {what} {name!r}: not enough memory for its arrays") from None
        except (OSError, ValueError, EOFError, zlib.error, NotImplementedError, RuntimeError) as error:
            raise SpecError(f"cannot read {what} {name!r} as .npz: {error}") from None


def _read_members(archive: zipfile.ZipFile, name: str, what: str, limit: int) -> dict[str, np.ndarray]:
    members = archive.infolist()
    total = 0
    for member in members:
        if member.compress_type not in _COMPRESSIONS:
            raise SpecError(
                f"cannot read {what} {name!r}: {member.filename!r} uses zip compression method "
                f"{member.compress_type} (only stored and deflated, as NumPy writes)"
            )
        total += member.file_size
    if total > limit:
        raise SpecError(f"{what} {name!r} expands to {_size(total)}, more than the {_size(limit)} symback reads")
    arrays: dict[str, np.ndarray] = {}
    for member in members:
        key = member.filename.removesuffix(".npy")
        with archive.open(member) as stream:
            arrays[key] = _read_npy(stream, member.file_size, f"{what} {name!r}: array {key!r}")
    return arrays


def _read_npy(stream: IO[bytes], size: int, where: str) -> np.ndarray:
    """One ``.npy`` member, its header checked against the member's ``size`` before allocating."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if header is None:
            raise SpecError(f"{where} has .npy format version {version}, not 1.0 or 2.0")
        shape, fortran, dtype = header(stream)
    except SpecError:
        raise
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as error:
        raise SpecError(f"{where} has a damaged .npy header: {str(error).splitlines()[0] if str(error) else error}") from None
    if dtype.hasobject or dtype.kind not in _ARRAY_KINDS or dtype.fields is not None:
        raise SpecError(f"{where} holds {dtype} values; only numeric arrays are loaded (objects are never unpickled)")
    if any(extent < 0 for extent in shape):
        raise SpecError(f"{where} has a damaged .npy header: shape {shape}")
    count = 1
    for extent in shape:
        count *= extent
    nbytes = count * dtype.itemsize
    if nbytes > size - stream.tell():
        raise SpecError(f"{where} declares shape {shape} ({_size(nbytes)}) but the archive holds fewer bytes")
    raw = np.empty(nbytes, dtype=np.uint8)
    view, done = memoryview(raw), 0
    while done < nbytes:
        got = stream.readinto(view[done:])
        if not got:
            raise SpecError(f"{where} is cut short")
        done += got
    if stream.read(1):  # also makes zipfile check the member's CRC
        raise SpecError(f"{where} has bytes after its {shape} values")
    array = raw.view(dtype)
    if fortran:
        return array.reshape(shape[::-1]).transpose()
    return array.reshape(shape)


# -- writing ------------------------------------------------------------------------------------

_NAME_ROOM = 100  # bytes of the target's name kept in its temporary file's name (file names end at 255 bytes)
_STALE = re.compile(r"\.(\d+)-[A-Za-z0-9_]{8}\.part\Z")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prefix(name: str) -> str:
    # Cut by bytes, not characters: a name of 4-byte characters must fit too.
    return f".{os.fsdecode(os.fsencode(name)[:_NAME_ROOM])}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process (or unknown): leave its file alone
    return True


def _remove_stale(folder: Path, name: str) -> None:
    """Remove the temporary files of earlier writes of ``name`` whose process is gone (killed mid-write)."""
    prefix = _prefix(name)
    try:
        entries = [entry for entry in os.scandir(folder) if entry.name.startswith(prefix)]
    except OSError:
        return
    for entry in entries:
        match = _STALE.fullmatch(entry.name, len(prefix) - 1)
        if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
            try:
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
            except OSError:
                pass


def _resolve_target(path: Path, what: str) -> Path:
    """The file a write of ``path`` replaces: ``path`` itself, or the regular file a symbolic link names."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as error:
        raise SymbackError(f"cannot write {what}{_show(path)}: {error.strerror or error}") from None
    if stat.S_ISLNK(info.st_mode):
        target = Path(os.path.realpath(path))
        try:
            info = os.stat(target)
        except FileNotFoundError:
            raise SymbackError(
                f"cannot write {what}{_show(path)}: it is a symbolic link to {str(target)!r}, which does not exist"
            ) from None
        except OSError as error:
            raise SymbackError(f"cannot write {what}{_show(path)}: {error.strerror or error}") from None
        if stat.S_ISREG(info.st_mode):
            return target
        raise SymbackError(
            f"cannot write {what}{_show(path)}: it is a symbolic link to {_kind(info.st_mode)}, not to a regular file"
        )
    if not stat.S_ISREG(info.st_mode):
        raise SymbackError(f"cannot write {what}{_show(path)}: it is {_kind(info.st_mode)}, not a regular file")
    return path


def check_output(path: str | os.PathLike[str], what: str = "", suffixes: Iterable[str] = ()) -> Path:
    """Refuse an output path before the work that would fill it: a bad name, a wrong extension, a folder,
    a device or other non-regular file.  Returns the path; ``what`` (e.g. ``"--save "``) starts the message.

    >>> check_output("spec.toml", "--save ", [".npz"])
    Traceback (most recent call last):
    ...
    symback.errors.SymbackError: cannot write --save 'spec.toml': the file name must end in .npz
    """
    name = _check_name(path, what.strip() or "output file")
    target = Path(name)
    wanted = tuple(suffixes)
    if len(os.fsencode(target.name)) > 255:
        raise SymbackError(f"cannot write {what}{name!r}: the file name is longer than 255 bytes")
    try:
        if target.is_dir():
            example = str(target / ("model" + (wanted[0] if wanted else "")))
            raise SymbackError(f"cannot write {what}{name!r}: it is a folder; give a file name such as {example!r}")
    except OSError as error:  # a name too long for the file system, a loop of links
        raise SymbackError(f"cannot write {what}{name!r}: {error.strerror or error}") from None
    if wanted and not name.lower().endswith(wanted):
        raise SymbackError(f"cannot write {what}{name!r}: the file name must end in {' or '.join(wanted)}")
    _resolve_target(target, what)
    return target


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` survive a power cut (where the platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], payload: bytes | bytearray | memoryview | str) -> Path:
    """Write ``payload`` (text is UTF-8 encoded) to ``path`` atomically; returns the path.

    Raises SymbackError naming the file when its folder cannot be written or ``path`` exists and is
    not a regular file (nor a link to one).
    """
    path = Path(_check_name(path, "output file"))
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    target = _resolve_target(path, "")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale(folder, target.name)
        handle, temporary = tempfile.mkstemp(
            prefix=f"{_prefix(target.name)}{os.getpid()}-", suffix=".part", dir=folder
        )
    except OSError as error:
        raise SymbackError(f"cannot write {str(path)!r}: {error.strerror or error}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())  # the content is on disk before the name points at it
        # mkstemp makes the file private (0600); give it the permissions any new file would get.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except OSError as error:  # a full disk, a folder where the file should go, ...
        Path(temporary).unlink(missing_ok=True)
        reason = "the name is too long" if error.errno == errno.ENAMETOOLONG else (error.strerror or error)
        raise SymbackError(f"cannot write {str(path)!r}: {reason}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(folder)
    return path
