"""Writing output files atomically: a temporary file in the same folder, then a rename.

A crash, a full disk or Ctrl-C never leaves a half-written report, picture or checkpoint
behind: either the old file (if any) or the complete new one is there.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_atomic(folder / "note.txt", "complete").read_text()
'complete'
"""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import SpecError, SymbackError

__all__ = ["read_npz", "read_text", "write_atomic"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike[str], payload: bytes | str) -> Path:
    """Write ``payload`` (text is UTF-8 encoded) to ``path`` atomically; returns the path.

    Raises SymbackError naming the file when its folder cannot be written.
    """
    path = Path(path)
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as error:
        raise SymbackError(f"cannot write {str(path)!r}: {error.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        # mkstemp makes the file private (0600); give it the permissions any new file would get.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:  # a full disk, a folder where the file should go, ...
        Path(temporary).unlink(missing_ok=True)
        raise SymbackError(f"cannot write {str(path)!r}: {error.strerror or error}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_text(path: str | os.PathLike[str], what: str) -> str:
    """The UTF-8 text of ``path``; a missing or unreadable file is a one-line SpecError naming ``what``."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{what} {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"cannot read {what} {str(path)!r}: {error}") from None


def read_npz(path: str | os.PathLike[str], what: str) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` archive at ``path``, by name (never unpickling anything).

    A missing file, a lone ``.npy`` array, a damaged archive or object arrays are a one-line
    SpecError naming ``what`` (e.g. "parameter file") and the path.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.savez(folder / "a.npz", W1=np.eye(2))
    >>> sorted(read_npz(folder / "a.npz", "parameter file"))
    ['W1']
    """
    # symback opens (and so always closes) the file: np.load leaks its own handle when the zip is damaged.
    try:
        with open(path, "rb") as handle:
            try:
                loaded = np.load(handle, allow_pickle=False)
            except ValueError:  # neither zip nor .npy (NumPy would fall back to unpickling), or an object .npy
                raise SpecError(f"cannot read {what} {str(path)!r}: not an .npz archive of numeric arrays") from None
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise SpecError(
                    f"{what} {str(path)!r} holds a single .npy array; an .npz archive of named arrays is needed"
                )
            with loaded:
                return {key: loaded[key] for key in loaded.files}
    except SpecError:
        raise
    except FileNotFoundError:
        raise SpecError(f"{what} {str(path)!r} not found") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise SpecError(f"cannot read {what} {str(path)!r} as .npz: {error}") from None
