"""Training examples: inputs ``X`` (one row per example) and targets ``Y``; loaders and preprocessing.

>>> data = Dataset.from_arrays([0, 0.5, 1], [0, 1, 0])
>>> data.X.shape, data.Y.shape
((3, 1), (3, 1))
>>> one_hot([2, 0], 3)
array([[0., 0., 1.],
       [1., 0., 0.]])
>>> train, test = train_test_split(Dataset.from_arrays(range(10), range(10)), test_fraction=0.3, seed=0)
>>> len(train), len(test)
(7, 3)
"""

from __future__ import annotations

import csv
import io
import re
import secrets
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SpecError
from .files import read_npz, read_text

__all__ = [
    "SCALERS",
    "Dataset",
    "Scaler",
    "load_csv",
    "load_npz",
    "loads_with_data_arrays",
    "one_hot",
    "train_test_split",
]


@dataclass(frozen=True, eq=False)
class Dataset:
    """``X`` of shape ``(n_examples, n_inputs)``, ``Y`` of shape ``(n_examples, n_outputs)``.

    Two datasets are equal when their arrays are (``np.array_equal``).
    """

    X: np.ndarray
    Y: np.ndarray

    @classmethod
    def from_arrays(cls, x: Any, y: Any, *, dtype: Any = np.float64) -> Dataset:
        """Accepts lists or arrays; a flat list is one input (or output) per example."""
        X = _matrix(x, "data x", dtype)
        Y = _matrix(y, "data y", dtype)
        if X.shape[0] != Y.shape[0]:
            raise SpecError(f"data has {X.shape[0]} inputs but {Y.shape[0]} targets")
        return cls(X, Y)

    def __len__(self) -> int:
        return self.X.shape[0]

    def check(self, n_inputs: int, n_outputs: int) -> None:
        """Raise SpecError unless the data fit a network with these input and output widths."""
        if self.X.shape[1] != n_inputs:
            raise SpecError(f"data x has {self.X.shape[1]} column(s) but the network has {n_inputs} input(s)")
        if self.Y.shape[1] != n_outputs:
            raise SpecError(f"data y has {self.Y.shape[1]} column(s) but the network has {n_outputs} output(s)")

    def astype(self, dtype: Any) -> Dataset:
        """The data in ``dtype``; arrays already of that dtype are shared, not copied."""
        return Dataset(self.X.astype(dtype, copy=False), self.Y.astype(dtype, copy=False))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dataset) and np.array_equal(self.X, other.X) and np.array_equal(self.Y, other.Y)

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside

    @property
    def is_classification(self) -> bool:
        """True when every target row is one-hot over two or more classes."""
        Y = self.Y
        return Y.shape[1] >= 2 and bool(np.all((Y == 0) | (Y == 1)) and np.all(Y.sum(axis=1) == 1))

    @property
    def labels(self) -> np.ndarray:
        """Class index of every example (argmax of the one-hot target)."""
        return self.Y.argmax(axis=1)

    def take(self, indices: Any) -> Dataset:
        """The examples at ``indices`` (a new Dataset)."""
        return Dataset(self.X[indices], self.Y[indices])


def one_hot(labels: Any, n_classes: int | None = None, *, dtype: Any = np.float64) -> np.ndarray:
    """Integer class labels as one-hot rows; ``n_classes`` defaults to ``max(label) + 1``."""
    values = np.asarray(labels)
    if values.ndim != 1 or values.size == 0:
        raise SpecError("labels must be a non-empty list of class numbers")
    if not np.issubdtype(values.dtype, np.integer):
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            raise SpecError("labels must be whole numbers (class indices)")
        values = values.astype(np.int64)
    if values.min() < 0:
        raise SpecError(f"labels must be 0 or more, got {values.min()}")
    count = int(values.max()) + 1 if n_classes is None else int(n_classes)
    if values.max() >= count:
        raise SpecError(f"label {values.max()} does not fit {count} classes")
    out = np.zeros((values.size, count), dtype=dtype)
    out[np.arange(values.size), values] = 1
    return out


def train_test_split(data: Dataset, test_fraction: float = 0.2, *, seed: int | None = 0) -> tuple[Dataset, Dataset]:
    """Shuffle with ``seed`` and split off ``test_fraction`` of the examples as a test set."""
    if not 0 < test_fraction < 1:
        raise SpecError(f"test fraction must be between 0 and 1, not {test_fraction!r}")
    n = len(data)
    n_test = int(round(n * test_fraction))
    if n_test < 1 or n_test >= n:
        raise SpecError(f"a test fraction of {test_fraction} of {n} examples leaves an empty side")
    order = np.random.default_rng(seed).permutation(n)
    # Both sides stay in shuffled order: the first examples of either are a fair sample of every class.
    return data.take(order[n_test:]), data.take(order[:n_test])


@dataclass(frozen=True, eq=False)
class Scaler:
    """``x' = (x − offset) / scale`` per input column, fitted on training data and applied to any data.

    >>> train = Dataset.from_arrays([[0.0], [2.0], [4.0]], [0, 1, 0])
    >>> scaler = Scaler.fit("minmax", train.X)
    >>> scaler(train).X.ravel().tolist()
    [0.0, 0.5, 1.0]
    """

    kind: str
    offset: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, kind: str, X: np.ndarray) -> Scaler:
        if kind not in SCALERS:
            raise SpecError(f"unknown scaling {kind!r} (known: {', '.join(sorted(SCALERS))})")
        offset, scale = SCALERS[kind](np.asarray(X, dtype=float))
        # A constant column has no spread; leave it unscaled rather than divide by zero.
        scale = np.where(scale > 0, scale, 1.0)
        return cls(kind, offset, scale)

    def __call__(self, data: Dataset) -> Dataset:
        X = ((data.X - self.offset) / self.scale).astype(data.X.dtype, copy=False)
        return Dataset(X, data.Y)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Scaler)
            and self.kind == other.kind
            and np.array_equal(self.offset, other.offset)
            and np.array_equal(self.scale, other.scale)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside


#: Registry of scalings: name -> f(X) -> (offset, scale) per column.
SCALERS: dict[str, Any] = {
    "standardize": lambda X: (X.mean(axis=0), X.std(axis=0)),
    "minmax": lambda X: (X.min(axis=0), X.max(axis=0) - X.min(axis=0)),
}


def load_csv(
    path: str | Path,
    *,
    target: int | str = -1,
    classes: bool = False,
    n_classes: int | None = None,
    delimiter: str = ",",
) -> Dataset:
    """A dataset from a CSV file: one example per row, one column (``target``: index or header name) the target.

    A first row that is not numeric is taken as the header.  With ``classes`` the target
    column holds class numbers and becomes one-hot rows.
    """
    path = Path(path)
    text = read_text(path, "data file")  # a regular file of at most MAX_TEXT_BYTES, never a device
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        rows = [(reader.line_num, row) for row in reader if row]
    except csv.Error as error:
        raise SpecError(f"cannot read data file {str(path)!r}: {error}") from None
    if not rows:
        raise SpecError(f"{path}: no rows")
    header: list[str] | None = None
    try:
        [float(cell) for cell in rows[0][1]]
    except ValueError:
        header, rows = [cell.strip() for cell in rows[0][1]], rows[1:]
    if not rows:
        raise SpecError(f"{path}: a header line but no data rows")
    width = len(rows[0][1])
    # Widths first: NumPy would otherwise fail on ragged rows with a message about the wrong thing.
    for line, row in rows:
        if len(row) != width:
            raise SpecError(f"{path}: line {line} has {len(row)} column(s), the first data row has {width}")
    if header is not None and len(header) != width:
        raise SpecError(f"{path}: the header names {len(header)} column(s) but the rows have {width}")
    if width < 2:
        raise SpecError(f"{path}: needs at least one input column and a target column")
    try:  # NumPy converts the whole table at once; the line at fault is looked for only on failure
        table = np.array([row for _, row in rows], dtype=np.float64)
    except ValueError:
        converted = []
        for line, row in rows:
            try:
                converted.append([float(cell) for cell in row])
            except ValueError as error:
                raise SpecError(f"{path}: line {line}: non-numeric value: {error}") from None
        table = np.array(converted, dtype=np.float64)
    if isinstance(target, str):
        if header is None or target not in header:
            raise SpecError(f"{path}: no column named {target!r}")
        column = header.index(target)
    elif isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise SpecError(f"target must be a column number or a header name, not {target!r}")
    elif not -width <= target < width:
        raise SpecError(f"{path}: target column {target} is out of range for {width} columns")
    else:
        column = int(target) % width  # −1 is the last column
    X = np.delete(table, column, axis=1)
    y = table[:, column]
    if classes:
        return Dataset.from_arrays(X, one_hot(y, n_classes))
    return Dataset.from_arrays(X, y)


def load_npz(path: str | Path, *, x: str = "X", y: str = "Y", classes: bool = False) -> Dataset:
    """A dataset from the arrays ``x`` and ``y`` of an ``.npz`` file (``y`` as class numbers with ``classes``)."""
    archive = read_npz(path, "data file")
    if x not in archive or y not in archive:
        raise SpecError(f"{path}: needs arrays {x!r} and {y!r}, has {', '.join(archive) or 'none'}")
    X, Y = archive[x], archive[y]
    if classes:
        Y = one_hot(Y.ravel())
    return Dataset.from_arrays(X, Y)


def _matrix(values: Any, what: str, dtype: Any) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise SpecError(f"{what} must be a list of numbers or of rows of numbers") from error
    if array.ndim == 0:
        array = array.reshape(1, 1)
    elif array.ndim == 1:
        array = array.reshape(-1, 1)
    elif array.ndim != 2:
        raise SpecError(f"{what} must be one- or two-dimensional, got {array.ndim} dimensions")
    if array.shape[0] == 0:
        raise SpecError(f"{what} is empty")
    if not np.all(np.isfinite(array)):
        raise SpecError(f"{what} contains NaN or infinite values")
    return array


# -- [data] arrays in TOML, read in bulk ---------------------------------------------------------
#
# tomllib reads numbers one Python object at a time (a 75 MB array took 37 s; claims files, parsed
# with Decimal floats, need about 100 bytes a number on top).  A [data] table's x and y are usually
# long arrays of plain numbers: those are checked against TOML's grammar for decimal numbers with
# whole-array NumPy operations, converted by NumPy's text parser (correctly rounded, as tomllib's
# float(); no Python object per number), and replaced by a placeholder before the rest of the file goes through tomllib.  Anything else
# (comments inside the array, underscores, inf, hex, ragged rows, mixed nesting, a [data] written
# as dotted keys or an inline table) is left to tomllib as before.
#
# Why the checks below suffice: once only digits, "eE+-.", commas, brackets and TOML whitespace
# remain, a C strtod (NumPy's parser, as Python's float()) reads exactly TOML's decimal numbers
# except ".5", "5.", "1.e3" (a dot not between digits) and "01" (a leading zero): those are
# refused here; anything it cannot read to the next comma ("1 2", "1e") makes NumPy raise, and
# the count of numbers must match the count of commas.  Empty places ("[]", "[, 1]") are refused
# first: NumPy reads an empty element at either end as -1.  TOML's integer
# -0 is 0 but float("-0") is -0.0, so "-0" is left to tomllib.

_ARRAY_TEXT = b"0123456789eE+-.,[] \t\r\n"
_DATA_HEADER = re.compile(r"^[ \t]*\[[ \t]*data[ \t]*\][ \t]*(?:#[^\n]*)?$", re.M)
_GAP = re.compile(r"(?:[ \t\r\n]+|#[^\n]*)*")  # blank lines and comment lines between keys
_KEY = re.compile(r"([xy])[ \t]*=[ \t]*(?=\[)")
_ARRAY_CHARS = re.compile(r"[0-9eE+\-.,\[\] \t\r\n]*")
_TRAILING_COMMA = re.compile(rb",(?=[ \t\r\n]*\])")
_UNBRACKET = bytes.maketrans(b"[]", b"  ")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]"))


def _byte_set(chars: bytes) -> np.ndarray:
    table = np.zeros(256, dtype=bool)
    table[list(chars)] = True
    return table


_DIGIT, _SIGN = _byte_set(b"0123456789"), _byte_set(b"+-")
_BEFORE_NUMBER = _byte_set(b"[, \t\r\n")
_AFTER_NUMBER = _byte_set(b"], \t\r\n")
_NUMBER_CHAR = _byte_set(b"0123456789eE+-.")


def _elements_present(text: bytes) -> bool:
    """Every "[" opens a row or a number, every "]" closes one, every "," stands between two: no empty places."""
    codes = np.frombuffer(text.translate(None, b" \t\r\n"), dtype=np.uint8)
    opens, closes, commas = (np.flatnonzero(codes == ord(c)) for c in "[],")
    after_open, before_close = codes[opens + 1], codes[closes - 1]
    before_comma, after_comma = codes[commas - 1], codes[commas + 1]
    return bool(
        np.all(_NUMBER_CHAR[after_open] | (after_open == ord("[")))
        and np.all(_NUMBER_CHAR[before_close] | (before_close == ord("]")))
        and np.all(_NUMBER_CHAR[before_comma] | (before_comma == ord("]")))
        and np.all(_NUMBER_CHAR[after_comma] | (after_comma == ord("[")))
    )


def _numeric_array(text: bytes) -> np.ndarray | None:
    """A TOML array (bytes, from "[" to its "]") of plain numbers, 1-d or 2-d of equal rows, as float64.

    None when it is anything else, or anything tomllib might read differently.
    """
    if text.translate(None, _ARRAY_TEXT) or text.count(b"\r") != text.count(b"\r\n"):
        return None
    text = _TRAILING_COMMA.sub(b"", text)
    codes = np.frombuffer(text, dtype=np.uint8)
    brackets = text.translate(None, _NOT_BRACKETS)
    rows = len(brackets) // 2 - 1
    if brackets != b"[]" and brackets != b"[" + b"[]" * rows + b"]":
        return None  # nested deeper, or not one array
    if not _elements_present(text):
        return None  # an empty array, row or element: NumPy would read it as -1
    dots = np.flatnonzero(codes == ord("."))
    if not (np.all(_DIGIT[codes[dots - 1]]) and np.all(_DIGIT[codes[dots + 1]])):
        return None
    zeros = np.flatnonzero(codes == ord("0"))
    before = codes[zeros - 1]
    starts = _BEFORE_NUMBER[before] | (_SIGN[before] & _BEFORE_NUMBER[codes[zeros - 2]])
    after = codes[zeros + 1]
    if np.any(starts & _DIGIT[after]) or np.any(starts & (before == ord("-")) & _AFTER_NUMBER[after]):
        return None  # a leading zero (invalid TOML), or the integer -0
    commas = np.flatnonzero(codes == ord(","))
    if brackets == b"[]":
        shape: tuple[int, ...] = (commas.size + 1,)
    else:
        opens = np.flatnonzero(codes == ord("["))[1:]
        closes = np.flatnonzero(codes == ord("]"))[:-1]
        widths = np.searchsorted(commas, closes) - np.searchsorted(commas, opens) + 1
        if widths.size == 0 or np.any(widths != widths[0]):
            return None  # ragged rows: tomllib and Dataset say so
        shape = (widths.size, int(widths[0]))
    count = int(np.prod(shape))
    if commas.size + 1 != count:
        return None  # numbers beside the rows: each adds a comma the rows do not count
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # NumPy < 2.3 warned where it now raises
        try:
            values = np.fromstring(text.translate(_UNBRACKET), dtype=np.float64, sep=",")
        except (ValueError, DeprecationWarning):  # "1 2", an empty element or row, "1e": the ordinary path says
            return None
    if values.size != count:
        return None
    return values.reshape(shape)


def loads_with_data_arrays(text: str, loads: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """``loads(text)`` (a TOML parser), with the numeric arrays of the ``[data]`` table read by NumPy.

    The result is what ``loads(text)`` gives, except that ``x`` and ``y`` of ``[data]`` are float64
    arrays when they are plain numeric arrays, read in a fraction of the time and memory.

    >>> import tomllib
    >>> raw = loads_with_data_arrays("[data]\\nx = [[1, 2.5], [3, 4e-1]]\\ny = [0, 1]\\n", tomllib.loads)
    >>> raw["data"]["x"].tolist(), raw["data"]["y"].tolist()
    ([[1.0, 2.5], [3.0, 0.4]], [0.0, 1.0])
    """
    found: list[tuple[str, int, int, np.ndarray]] = []  # key, start, end, values
    for header in _DATA_HEADER.finditer(text):
        position = header.end()
        while True:
            position = _GAP.match(text, position).end()
            key = _KEY.match(text, position)
            if key is None:
                break
            start = key.end()
            run = text[start : _ARRAY_CHARS.match(text, start).end()].encode("ascii")
            codes = np.frombuffer(run, dtype=np.uint8)
            where = np.flatnonzero((codes == ord("[")) | (codes == ord("]")))
            depth = np.cumsum(np.where(codes[where] == ord("["), 1, -1))
            closed = np.flatnonzero(depth == 0)
            if closed.size == 0:
                break  # a comment, a string or another value inside: tomllib reads it
            end = int(where[closed[0]]) + 1
            values = _numeric_array(run[:end])
            end += start
            if values is None or not np.isfinite(values).all():
                break  # a number past float64 (1 followed by 400 zeros) is named by the spec's own check
            found.append((key.group(1), start, end, values))
            position = end
    if not found:
        return loads(text)
    mark = f"symback-array-{secrets.token_hex(8)}-"
    pieces, last = [], 0
    for index, (key, start, end, _) in enumerate(found):
        # The placeholder keeps the array's line breaks after it, so tomllib's line numbers stay right.
        pieces += [text[last:start], f'"{mark}{index}"', "\n" * text.count("\n", start, end)]
        last = end
    raw = loads("".join(pieces) + text[last:])
    table = raw.get("data")
    if not isinstance(table, dict) or any(table.get(key) != f"{mark}{i}" for i, (key, *_) in enumerate(found)):
        return loads(text)  # the text was not what it looked like (say, inside a multi-line string)
    for key, _, _, values in found:
        table[key] = values
    return raw
