"""Data loading and preprocessing: one-hot, split, scalers, CSV and NPZ loaders, the shipped digits."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from symback.data import Dataset, Scaler, load_csv, load_npz, one_hot, train_test_split
from symback.datasets import digits_arrays, get_dataset, load_digits
from symback.errors import SpecError, SymbackError


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
