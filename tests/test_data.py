"""Data loading and preprocessing: one-hot, split, scalers, CSV and NPZ loaders, the shipped digits."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from symback.data import Dataset, Scaler, load_csv, load_npz, one_hot, train_test_split
from symback.datasets import digits_arrays, get_dataset, load_digits
from symback.errors import SpecError, SymbackError

EXAMPLES_DIR = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples"


def test_one_hot_and_errors():
    np.testing.assert_array_equal(one_hot([1, 0, 2]), [[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    assert one_hot([1], 4).shape == (1, 4)
    for bad, message in (([1.5], "whole numbers"), ([-1], "0 or more"), ([5], "does not fit")):
        with pytest.raises(SpecError, match=message):
            one_hot(bad, 3)


def test_split_is_seeded_disjoint_and_complete():
    data = Dataset.from_arrays(np.arange(20.0), np.arange(20.0))
    train, test = train_test_split(data, 0.25, seed=1)
    again, _ = train_test_split(data, 0.25, seed=1)
    other, _ = train_test_split(data, 0.25, seed=2)
    assert len(test) == 5 and len(train) == 15
    assert sorted(np.concatenate([train.X[:, 0], test.X[:, 0]]).tolist()) == list(range(20))
    np.testing.assert_array_equal(train.X, again.X)
    assert not np.array_equal(train.X, other.X)
    with pytest.raises(SpecError, match="between 0 and 1"):
        train_test_split(data, 1.5)


def test_scalers_fit_on_train_and_apply_to_test():
    train = Dataset.from_arrays([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]], [0, 1, 0])
    standard = Scaler.fit("standardize", train.X)(train).X
    np.testing.assert_allclose(standard.mean(axis=0), [0, 0], atol=1e-15)
    np.testing.assert_allclose(standard[:, 0].std(), 1.0)
    np.testing.assert_array_equal(standard[:, 1], 0.0)  # a constant column is centred, not divided by 0
    minmax = Scaler.fit("minmax", train.X)
    np.testing.assert_allclose(minmax(Dataset.from_arrays([[7.0, 10.0]], [0])).X, [[1.5, 0.0]])
    with pytest.raises(SpecError, match="unknown scaling"):
        Scaler.fit("zscore", train.X)


def test_csv_with_header_named_target_and_classes(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x1,label,x2\n0.5,1,2\n1.5,0,3\n2.5,2,4\n")
    data = load_csv(path, target="label", classes=True)
    np.testing.assert_array_equal(data.X, [[0.5, 2], [1.5, 3], [2.5, 4]])
    np.testing.assert_array_equal(data.labels, [1, 0, 2])
    plain = tmp_path / "p.csv"
    plain.write_text("1,2,3\n4,5,6\n")
    data = load_csv(plain)
    np.testing.assert_array_equal(data.Y[:, 0], [3, 6])
    bad = tmp_path / "b.csv"
    bad.write_text("1,2\n3,x\n")
    with pytest.raises(SpecError, match="non-numeric"):
        load_csv(bad)
    with pytest.raises(SpecError, match="not found"):
        load_csv(tmp_path / "none.csv")


def test_npz_loader(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((4, 3)), Y=np.array([0, 1, 1, 0]))
    data = load_npz(path, classes=True)
    assert data.X.shape == (4, 3) and data.Y.shape == (4, 2) and data.is_classification
    with pytest.raises(SpecError, match="needs arrays"):
        load_npz(path, x="inputs")
    with pytest.raises(SpecError) as error:
        load_npz(path, x="inputs")
    assert str(error.value) == f"{path}: needs arrays 'inputs' and 'Y', has X, Y"  # said once, not wrapped again
    single = tmp_path / "x.npy"
    np.save(single, np.ones((4, 3)))
    with pytest.raises(SpecError, match="single .npy array"):
        load_npz(single)


@pytest.mark.parametrize(
    "text, options, message",
    [
        ("1,2,3\n4,5\n6,7,8\n", {}, "line 2 has 2 column\\(s\\), the first data row has 3"),
        ("a,b\n1,2,3\n4,5,6\n", {}, "the header names 2 column\\(s\\) but the rows have 3"),
        ("a,b,c\n", {}, "a header line but no data rows"),
        ("1,2,3\n4,5,6\n", {"target": 3}, "target column 3 is out of range for 3 columns"),
        ("1,2,3\n4,5,6\n", {"target": -4}, "target column -4 is out of range"),
        ("1,2,3\n4,x,6\n", {}, "line 2: non-numeric value"),
        ("1\n2\n", {}, "at least one input column"),
    ],
)
def test_csv_errors_name_the_real_problem(tmp_path, text, options, message):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(SpecError, match=message) as error:
        load_csv(path, **options)
    assert "\n" not in str(error.value)


def test_csv_negative_target_counts_from_the_end(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("1,2,3\n4,5,6\n")
    data = load_csv(path, target=-3)
    np.testing.assert_array_equal(data.Y[:, 0], [1, 4])
    np.testing.assert_array_equal(data.X, [[2, 3], [5, 6]])


def test_datasets_and_scalers_compare_by_their_arrays():
    data = Dataset.from_arrays([[1.0, 2.0], [3.0, 4.0]], [0, 1])
    assert data == Dataset.from_arrays([[1.0, 2.0], [3.0, 4.0]], [0, 1])
    assert data != Dataset.from_arrays([[1.0, 2.0], [3.0, 5.0]], [0, 1])
    assert data != Dataset.from_arrays([[1.0, 2.0]], [0])
    assert data != "data"
    scaler = Scaler.fit("minmax", data.X)
    assert scaler == Scaler.fit("minmax", data.X)
    assert scaler != Scaler.fit("standardize", data.X)


def test_astype_copies_only_when_the_dtype_changes():
    data = Dataset.from_arrays([[1.0, 2.0]], [0.5])
    same = data.astype(np.float64)
    assert same.X is data.X and same.Y is data.Y
    narrow = data.astype(np.float32)
    assert narrow.X.dtype == np.float32 and narrow.Y.dtype == np.float32 and narrow == data


def test_shipped_digits():
    assert resources.files("symback.datasets").joinpath("digits25.npz").is_file()
    pixels, labels = digits_arrays()
    assert pixels.shape == (5000, 625) and pixels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert pixels.max() == 255 and pixels.min() == 0
    train, test = load_digits(0.2, seed=3, dtype=np.float32)
    assert train.X.dtype == np.float32 and train.Y.dtype == np.float32
    assert len(train) == 4000 and len(test) == 1000 and test.is_classification
    assert set(np.unique(test.labels)) == set(range(10))  # the split is shuffled, not the sorted tail
    # every image has ink in its central 13x13 pixels: the crop kept the digits
    images = pixels.reshape(-1, 25, 25)
    assert (images[:, 6:19, 6:19].sum(axis=(1, 2)) > 0).all()
    assert get_dataset("digits") is load_digits
    with pytest.raises(SymbackError, match="unknown dataset 'cifar'"):
        get_dataset("cifar")


# -- [data] arrays read in bulk: the same numbers as tomllib, or tomllib itself -------------------

import tomllib  # noqa: E402
from decimal import Decimal  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from symback.data import loads_with_data_arrays  # noqa: E402


def _both(text: str):
    """(bulk, tomllib) readings of ``text``; the bulk reader must never raise where tomllib does not."""
    try:
        expected = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        with pytest.raises(tomllib.TOMLDecodeError):
            loads_with_data_arrays(text, tomllib.loads)
        return None, None
    return loads_with_data_arrays(text, tomllib.loads), expected


def _same_numbers(got, expected) -> bool:
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    return got.shape == expected.shape and np.array_equal(got.view(np.int64), expected.view(np.int64))


toml_numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["0", "-0", "+0", "-0.0", "+1", "1e5", "1E-05", "0.5e+3", "01", ".5", "5.", "1.e3", "1_000",
                     "inf", "nan", "0x1f", "1e", "--1", "1.2.3", "", "5e-324", "2.4703282292062327e-324"]),
)
separators = st.sampled_from([", ", ",", " , ", ",\n  ", ",\r\n", ",\r", " ,\t", ", # note\n", ",,"])


@st.composite
def toml_arrays(draw):
    width = draw(st.integers(1, 4))
    def row():
        if draw(st.integers(0, 9)) == 0:
            return draw(st.sampled_from(["[]", "[ ]", "[,]", "[\n]"]))
        items = draw(st.lists(toml_numbers, min_size=width, max_size=width + draw(st.sampled_from([0, 0, 0, 1]))))
        trail = draw(st.sampled_from(["", "", ","]))
        return "[" + draw(separators).join(items) + trail + "]"
    if draw(st.booleans()):
        return row()
    rows = [row() for _ in range(draw(st.integers(1, 4)))]
    return "[" + draw(separators).join(rows) + draw(st.sampled_from(["", ",", "\n"])) + "]"


@settings(max_examples=500, deadline=None)
@given(toml_arrays(), toml_arrays(), st.sampled_from(["", "# head\n", 'title = """\n[data]\nx = [1]\n"""\n']))
def test_bulk_reading_equals_tomllib_bit_for_bit_or_falls_back(x, y, prefix):
    text = f"{prefix}[data]\nx = {x}\n\ny = {y}  # trailing comment\n"
    got, expected = _both(text)
    if expected is None:
        return
    for key in ("x", "y"):
        value = got["data"][key]
        if isinstance(value, np.ndarray):  # read in bulk: exactly tomllib's numbers, as float64
            assert _same_numbers(value, expected["data"][key]), (key, text)
        else:
            assert repr(value) == repr(expected["data"][key])  # repr: nan equals nan
    assert {k: v for k, v in got.items() if k != "data"} == {k: v for k, v in expected.items() if k != "data"}


def test_plain_arrays_are_read_in_bulk_and_everything_else_by_tomllib():
    raw = loads_with_data_arrays("[data]\nx = [[1, 2.5], [3, -4e-1],]\ny = [0, 1,]\n", tomllib.loads)
    assert isinstance(raw["data"]["x"], np.ndarray) and raw["data"]["x"].tolist() == [[1.0, 2.5], [3.0, -0.4]]
    assert isinstance(raw["data"]["y"], np.ndarray) and raw["data"]["y"].tolist() == [0.0, 1.0]
    for text in (
        "[data]\nx = [1_000, 2]\ny = [1, 2]\n",  # underscores
        "[data]\nx = [1, 2, # a comment\n]\ny = [1, 2]\n",  # a comment inside
        "[data]\nx = [[1, 2], [3]]\ny = [1, 2]\n",  # ragged: tomllib, then Dataset says so
        "[data]\nx = [1, [2, 3]]\ny = [1, 2]\n",  # mixed nesting
        "[data]\nx = [[[1]]]\ny = [1]\n",  # three deep
        "[data]\nx = [-0, 1]\ny = [1, 2]\n",  # the integer -0 is 0, float('-0') is -0.0
        'title = """\n[data]\nx = [9]\n"""\n[data]\nx = [1]\ny = [2]\n',  # the first [data] is inside a string
    ):
        got, expected = _both(text)
        assert not isinstance(got["data"]["x"], np.ndarray) and got == expected, text


def test_errors_keep_tomllib_line_numbers():
    text = "[data]\nx = [\n1,\n2,\n3]\ny = [1, 2, 3]\nbroken = \n"
    with pytest.raises(tomllib.TOMLDecodeError) as bulk:
        loads_with_data_arrays(text, tomllib.loads)
    with pytest.raises(tomllib.TOMLDecodeError) as plain:
        tomllib.loads(text)
    assert str(bulk.value) == str(plain.value)


def test_claims_files_read_data_in_bulk_with_decimal_floats(tmp_path):
    from symback.verification.claims import load_claims

    text = (EXAMPLES_DIR / "seed002_claims.toml").read_text(encoding="utf-8")
    head, claims = text.split("[[claim]]", 1)
    data = "[data]\nx = [0, 0.5, 1]\ny = [0, 1, 0]\n"
    path = tmp_path / "claims.toml"
    path.write_text(head.replace('spec = "seed002.toml"', f'spec = "{(EXAMPLES_DIR / "seed002.toml").as_posix()}"')
                    + data + "[[claim]]" + claims, encoding="utf-8")
    loaded = load_claims(path)
    assert loaded.spec.data.X.ravel().tolist() == [0.0, 0.5, 1.0]
    raw = loads_with_data_arrays(data + "v = 0.10\n", lambda rest: tomllib.loads(rest, parse_float=Decimal))
    assert raw["data"]["v"] == Decimal("0.10") and isinstance(raw["data"]["x"], np.ndarray)


def test_a_large_data_array_loads_as_tomllib_would(tmp_path):
    from symback.spec.loader import load_spec

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((2000, 3)), rng.standard_normal(2000)
    rows = ",\n".join("[" + ", ".join(map(repr, row)) + "]" for row in x.tolist())
    path = tmp_path / "big.toml"
    path.write_text(f"[network]\nlayers = [3, 2, 1]\n[data]\nx = [{rows}]\ny = [{', '.join(map(repr, y.tolist()))}]\n")
    data = load_spec(path).data
    assert np.array_equal(data.X, x) and np.array_equal(data.Y.ravel(), y)


def test_csv_is_read_through_the_bounded_reader(tmp_path):
    import os

    with pytest.raises(SpecError, match="is a fifo"):
        fifo = tmp_path / "pipe.csv"
        os.mkfifo(fifo)
        load_csv(fifo)  # an open() would wait for a writer forever
    (tmp_path / "marked.csv").write_bytes(b"\xef\xbb\xbfx,y\n1,2\n3,4\n")
    data = load_csv(tmp_path / "marked.csv", target="y")  # the byte-order mark does not hide the header name
    assert data.X.ravel().tolist() == [1.0, 3.0] and data.Y.ravel().tolist() == [2.0, 4.0]


@pytest.mark.parametrize("array", ["[]", "[ ]", "[, 0.0]", "[1, ]", "[[]]", "[[1], []]", "[[, 1]]", "[[1],, [2]]"])
def test_empty_places_are_never_read_as_numbers(array):
    # NumPy's text parser reads an empty element at either end as -1: such arrays are left to tomllib.
    text = f"[data]\nx = {array}\ny = [1]\n"
    try:
        expected = tomllib.loads(text)["data"]["x"]
    except tomllib.TOMLDecodeError:
        with pytest.raises(tomllib.TOMLDecodeError):
            loads_with_data_arrays(text, tomllib.loads)
        return
    got = loads_with_data_arrays(text, tomllib.loads)["data"]["x"]
    assert _same_numbers(got, expected) if isinstance(got, np.ndarray) else got == expected
