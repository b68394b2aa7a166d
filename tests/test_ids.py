"""IdMap: raw id <-> contiguous index, round trips and unknown ids."""

from __future__ import annotations

import numpy as np
import pytest

from movierec.ids import UNKNOWN_INDEX, IdMap

RAW = np.array([3, 7, 10, 42, 1000], dtype=np.int64)


def test_index_of_and_id_of_round_trip():
    ids = IdMap(RAW)
    indices = ids.index_of(RAW)
    np.testing.assert_array_equal(indices, np.arange(len(RAW)))
    np.testing.assert_array_equal(ids.id_of(indices), RAW)
    assert ids.index(42) == 3
    assert len(ids) == 5


def test_unknown_ids_map_to_minus_one():
    ids = IdMap(RAW)
    # Below, between, above the known ids; the index dtype is int64 whatever the input.
    got = ids.index_of([0, 3, 5, 1000, 1001, -7])
    np.testing.assert_array_equal(got, [UNKNOWN_INDEX, 0, UNKNOWN_INDEX, 4, UNKNOWN_INDEX, UNKNOWN_INDEX])
    assert got.dtype == np.int64
    assert UNKNOWN_INDEX == -1
    assert ids.index(5) is None


def test_index_of_keeps_the_input_shape():
    got = IdMap(RAW).index_of(np.array([[3, 4], [42, 1000]]))
    np.testing.assert_array_equal(got, [[0, -1], [3, 4]])


def test_empty_map_knows_nothing():
    empty = IdMap(np.array([], dtype=np.int64))
    assert len(empty) == 0
    np.testing.assert_array_equal(empty.index_of([1, 2]), [-1, -1])


def test_save_load_round_trip(tmp_path):
    ids = IdMap(RAW)
    ids.save(tmp_path / "ids.npy")
    loaded = IdMap.load(tmp_path / "ids.npy")
    assert loaded == ids
    assert hash(loaded) == hash(ids)
    np.testing.assert_array_equal(loaded.index_of([42, 43]), [3, -1])
    assert loaded.ids.dtype == np.int64


@pytest.mark.parametrize(
    "bad", [[3, 2, 5], [1, 1, 2], [[1, 2], [3, 4]]], ids=["unsorted", "duplicate", "2-d"]
)
def test_constructor_rejects_ids_that_are_not_strictly_increasing_1d(bad):
    with pytest.raises(ValueError):
        IdMap(np.array(bad))


def test_load_rejects_an_unsorted_file(tmp_path):
    np.save(tmp_path / "ids.npy", np.array([5, 1, 9], dtype=np.int64))
    with pytest.raises(ValueError, match="strictly increasing"):
        IdMap.load(tmp_path / "ids.npy")


def test_from_values_is_independent_of_row_order():
    a = IdMap.from_values([42, 3, 3, 1000, 7, 10])
    b = IdMap.from_values([10, 7, 1000, 42, 3])
    assert a == b
    np.testing.assert_array_equal(a.ids, RAW)


def test_ids_are_read_only():
    ids = IdMap(RAW)
    with pytest.raises(ValueError):
        ids.ids[0] = 99


def test_constructor_does_not_freeze_or_alias_the_callers_array():
    # e.g. IdMap(frame["user_id"].to_numpy()) must not make the frame's column read-only.
    raw = np.array([1, 2, 3], dtype=np.int64)
    ids = IdMap(raw)
    raw[0] = -5  # still writable
    np.testing.assert_array_equal(ids.ids, [1, 2, 3])


def test_id_of_rejects_negative_indices():
    # -1 is UNKNOWN_INDEX: numpy's wrap-around would silently turn it into the largest id.
    ids = IdMap(RAW)
    with pytest.raises(IndexError):
        ids.id_of([0, UNKNOWN_INDEX])
    with pytest.raises(IndexError):
        ids.id_of([len(RAW)])
