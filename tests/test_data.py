"""Loading and validating ratings: every layout, every validation problem, the real small data set."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import layout_fixtures, real_data_candidates, real_data_dir, real_data_skip_reason

import movierec.data.readers as readers_module
from movierec.data import (
    NO_GENRES,
    ColumnNames,
    RatingsData,
    detect_layout,
    load_ratings,
)
from movierec.errors import DataError, UnknownLayoutError
from movierec.hashing import sha256_file

FIXTURES = layout_fixtures()
REAL_DATA = real_data_dir() or real_data_candidates()[0]
HEADER = "userId,movieId,rating,timestamp\n"
RATINGS_DTYPES = {"user_id": "int64", "movie_id": "int64", "rating": "float32", "timestamp": "int64"}


def csv_layout(tmp_path: Path, ratings: str) -> Path:
    """A csv layout directory whose ratings.csv holds `ratings` (header included by the caller)."""
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "ratings.csv").write_text(ratings)
    shutil.copy(FIXTURES / "layout_csv" / "movies.csv", directory / "movies.csv")
    return directory


@pytest.fixture(params=["arrow", "pandas"])
def text_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with each validating reader: pyarrow's, and pandas' fallback for when pyarrow is absent."""
    if request.param == "pandas":
        monkeypatch.setattr(readers_module, "_read_text_arrow", lambda *args: None)
    return str(request.param)


def assert_ratings_frame(data: RatingsData) -> None:
    assert list(data.ratings.columns) == list(RATINGS_DTYPES)
    assert {column: str(dtype) for column, dtype in data.ratings.dtypes.items()} == RATINGS_DTYPES
    assert isinstance(data.ratings.index, pd.RangeIndex)
    assert data.ratings.index.equals(pd.RangeIndex(len(data.ratings)))
    assert list(data.movies.columns) == ["movie_id", "title", "genres"]
    assert data.movies["movie_id"].dtype == "int64"
    assert pd.api.types.is_string_dtype(data.movies["title"])
    assert pd.api.types.is_string_dtype(data.movies["genres"])


# --- layouts ---------------------------------------------------------------------------------------


def test_csv_layout_loads_in_file_order_with_dtypes() -> None:
    data = load_ratings(FIXTURES / "layout_csv")

    assert_ratings_frame(data)
    assert data.layout == "csv"
    assert data.rating_scale == (0.5, 5.0)
    assert data.dropped_rows == 0
    assert data.ratings_path == FIXTURES / "layout_csv" / "ratings.csv"
    assert len(data.ratings) == 12
    # File order, not sorted: user 3 comes before user 2, movie 30 before 20.
    assert data.ratings["user_id"].tolist()[:7] == [1, 1, 1, 3, 3, 2, 2]
    assert data.ratings["movie_id"].tolist()[:3] == [10, 30, 20]
    assert data.ratings["rating"].tolist()[:3] == [4.0, 5.0, 3.5]
    assert data.ratings["timestamp"].iloc[0] == 964982703


def test_csv_layout_movies_keep_quoted_commas_and_na_titles() -> None:
    movies = load_ratings(FIXTURES / "layout_csv").movies.set_index("movie_id")

    assert len(movies) == 5
    assert movies.loc[20, "title"] == "American President, The (1995)"
    # "NA" is a title, not a missing value.
    assert movies.loc[40, "title"] == "NA"
    assert movies.loc[40, "genres"] == NO_GENRES
    assert movies.loc[10, "genres"] == "Adventure|Animation|Children|Comedy|Fantasy"


def test_dat_layout_reads_double_colon_and_latin1_titles() -> None:
    data = load_ratings(FIXTURES / "layout_dat")

    assert_ratings_frame(data)
    assert data.layout == "dat"
    assert data.rating_scale == (0.5, 5.0)
    assert data.ratings_path.name == "ratings.dat"
    assert data.ratings.iloc[0].tolist() == [1, 1193, 5.0, 978300760]
    assert data.ratings["user_id"].tolist() == [1, 1, 1, 2, 2, 3, 3, 3, 4, 4]
    movies = data.movies.set_index("movie_id")
    assert movies.loc[4975, "title"] == "Amélie (2001)"
    assert movies.loc[260, "title"] == "Star Wars: Episode IV - A New Hope (1977)"
    assert movies.loc[1, "genres"] == "Animation|Children|Comedy"


def test_100k_layout_turns_genre_flags_into_names() -> None:
    data = load_ratings(FIXTURES / "layout_100k")

    assert_ratings_frame(data)
    assert data.layout == "100k"
    assert data.rating_scale == (1.0, 5.0)
    assert data.ratings_path.name == "u.data"
    assert data.ratings.iloc[0].tolist() == [196, 242, 3.0, 881250949]
    assert len(data.ratings) == 10
    movies = data.movies.set_index("movie_id")
    assert len(movies) == 10
    assert movies.loc[51, "genres"] == "Drama|Romance|War|Western"
    assert movies.loc[465, "genres"] == "Adventure|Children|Romance"
    assert movies.loc[265, "title"] == "Hunt for Red October, The (1990)"
    assert movies.loc[1300, "title"] == "François Truffaut Short (1960)"
    assert movies.loc[1300, "genres"] == NO_GENRES
    # ml-100k's "unknown" flag is the csv sets' "(no genres listed)".
    assert movies.loc[267, "genres"] == NO_GENRES


def test_single_csv_with_custom_column_names() -> None:
    columns = ColumnNames(user="member", movie="item", rating="score", timestamp="when")
    data = load_ratings(FIXTURES / "single" / "custom_columns.csv", columns=columns)

    assert_ratings_frame(data)
    assert data.layout == "file"
    assert data.rating_scale == (0.5, 5.0)
    assert data.ratings["user_id"].tolist() == [7, 7, 8, 9, 8]
    assert data.ratings["rating"].tolist() == [4.0, 2.5, 5.0, 1.0, 3.5]
    assert data.ratings["timestamp"].tolist() == [1000000001 + i for i in range(5)]
    assert data.movies.empty


def test_single_csv_without_timestamp_gets_minus_one(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("u,m,r\n1,2,3.0\n2,2,4.0\n")

    data = load_ratings(path, columns=ColumnNames(user="u", movie="m", rating="r", timestamp=None))

    assert_ratings_frame(data)
    assert data.ratings["timestamp"].tolist() == [-1, -1]


def test_single_csv_with_movies_path_and_scale() -> None:
    data = load_ratings(
        FIXTURES / "layout_csv" / "ratings.csv",
        movies_path=FIXTURES / "layout_csv" / "movies.csv",
        rating_scale=(0.5, 5),
    )

    assert data.layout == "file"
    assert len(data.movies) == 5
    assert data.rating_scale == (0.5, 5.0)


def test_single_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "ratings.parquet"
    pd.DataFrame(
        {
            "who": pd.Series([3, 1, 2], dtype="int32"),
            "what": [10, 20, 10],
            "stars": [4.5, 1.0, 3.0],
            "extra": ["a", "b", "c"],
        }
    ).to_parquet(path)

    data = load_ratings(path, columns=ColumnNames(user="who", movie="what", rating="stars", timestamp=None))

    assert_ratings_frame(data)
    assert data.layout == "file"
    assert data.ratings["user_id"].tolist() == [3, 1, 2]
    assert data.ratings["rating"].tolist() == [4.5, 1.0, 3.0]
    assert data.ratings["timestamp"].tolist() == [-1, -1, -1]


def test_parquet_problems_name_rows(tmp_path: Path) -> None:
    path = tmp_path / "ratings.parquet"
    pd.DataFrame(
        {
            "userId": [1.0, np.nan, 2.5],
            "movieId": [1, 2, 3],
            "rating": [4.0, 4.0, 4.0],
            "timestamp": [1, 2, 3],
        }
    ).to_parquet(path)

    with pytest.raises(DataError) as caught:
        load_ratings(path)

    message = str(caught.value)
    assert "ratings.parquet" in message
    assert "missing value" in message and "row 2" in message
    assert "not an integer" in message and "row 3" in message


# --- layout detection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("directory", "layout"), [("layout_csv", "csv"), ("layout_dat", "dat"), ("layout_100k", "100k")]
)
def test_detect_layout_of_directories(directory: str, layout: str) -> None:
    assert detect_layout(FIXTURES / directory) == layout


def test_detect_layout_of_single_files(tmp_path: Path) -> None:
    assert detect_layout(FIXTURES / "single" / "custom_columns.csv") == "file"
    (tmp_path / "r.parquet").write_bytes(b"")
    assert detect_layout(tmp_path / "r.parquet") == "file"


def test_unknown_layout_names_the_directory_and_the_files_looked_for(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")

    with pytest.raises(UnknownLayoutError) as caught:
        load_ratings(tmp_path)

    message = str(caught.value)
    assert str(tmp_path) in message
    for name in ("ratings.csv", "movies.csv", "ratings.dat", "movies.dat", "u.data", "u.item"):
        assert name in message
    assert isinstance(caught.value, DataError)


def test_unknown_layout_says_what_is_missing_or_nested(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text(HEADER)
    with pytest.raises(UnknownLayoutError, match=r"Found ratings\.csv but not movies\.csv"):
        detect_layout(tmp_path)

    parent = tmp_path / "root"
    shutil.copytree(FIXTURES / "layout_csv", parent / "ml-latest-small")
    with pytest.raises(UnknownLayoutError, match=r"Did you mean .*ml-latest-small"):
        detect_layout(parent)


def test_missing_path_and_unsupported_file(tmp_path: Path) -> None:
    with pytest.raises(UnknownLayoutError, match="does not exist"):
        load_ratings(tmp_path / "nope")
    with pytest.raises(UnknownLayoutError, match="pass its directory"):
        load_ratings(FIXTURES / "layout_dat" / "ratings.dat")


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("1,20,,964981247", "missing value"),
        ("1,x20,3.0,964981247", "user or movie id that is not an integer"),
        ("u1,20,3.0,964981247", "user or movie id that is not an integer"),
        ("1,20.5,3.0,964981247", "user or movie id that is not an integer"),
        ("1,20,5.5,964981247", "rating outside the scale [0.5, 5]"),
        ("1,20,0,964981247", "rating outside the scale [0.5, 5]"),
        ("1,20,NaN,964981247", "non-finite rating"),
        ("1,20,inf,964981247", "non-finite rating"),
        ("1,20,good,964981247", "non-numeric rating"),
        ("1,20,3.0,yesterday", "timestamp that is not an integer"),
    ],
)
def test_bad_row_raises_with_file_line_and_problem(
    tmp_path: Path, text_reader: str, bad_line: str, problem: str
) -> None:
    directory = csv_layout(tmp_path, f"{HEADER}1,10,4.0,964982703\n{bad_line}\n2,10,2.5,835355493\n")

    with pytest.raises(DataError) as caught:
        load_ratings(directory)

    message = str(caught.value)
    assert str(directory / "ratings.csv") in message
    assert problem in message
    assert "1 row with" in message
    assert "line 3:" in message  # header is line 1, so the second rating is line 3
    assert "--drop-invalid" in message


def test_short_row_is_reported_with_its_line(tmp_path: Path, text_reader: str) -> None:
    directory = csv_layout(tmp_path, f"{HEADER}1,10,4.0,1\n1,20,3.0\n")

    with pytest.raises(DataError) as caught:
        load_ratings(directory)

    # pyarrow refuses the short line as a whole; pandas pads it, leaving the timestamp empty.
    expected = "wrong number of fields: line 3" if text_reader == "arrow" else "missing value:\n      line 3:"
    assert expected in str(caught.value)


def test_duplicate_pair_names_both_lines(tmp_path: Path) -> None:
    directory = csv_layout(tmp_path, f"{HEADER}1,10,4.0,1\n2,10,3.0,2\n1,10,2.0,3\n1,20,2.0,4\n")

    with pytest.raises(DataError) as caught:
        load_ratings(directory)

    message = str(caught.value)
    assert "duplicate (user, movie) pair" in message
    assert "line 4: userId=1, movieId=10, rating=2.0, timestamp=3 (first seen on line 2)" in message
    assert "1 of 4 rows failed validation" in message


def test_error_shows_at_most_five_examples_per_problem(tmp_path: Path) -> None:
    bad = "".join(f"{user},10,9.0,1\n" for user in range(1, 8))
    directory = csv_layout(tmp_path, f"{HEADER}{bad}")

    with pytest.raises(DataError) as caught:
        load_ratings(directory)

    message = str(caught.value)
    assert "7 rows with a rating outside the scale" in message
    assert "line 6:" in message
    assert "line 7:" not in message
    assert "... and 2 more" in message


def test_error_lists_every_problem(tmp_path: Path) -> None:
    directory = csv_layout(tmp_path, f"{HEADER}1,10,4.0,1\n1,,4.0,2\n1,10,4.0,3\n1,30,7,4\n")

    with pytest.raises(DataError) as caught:
        load_ratings(directory)

    message = str(caught.value)
    assert "3 of 4 rows failed validation" in message
    assert "missing value:\n      line 3: userId=1, movieId=<missing>" in message
    assert "duplicate" in message and "line 4" in message
    assert "outside the scale" in message and "line 5" in message


def test_line_numbers_count_blank_lines(tmp_path: Path, text_reader: str) -> None:
    directory = csv_layout(tmp_path, f"{HEADER}1,10,4.0,1\n\n\n1,20,6.0,2\n")

    with pytest.raises(DataError, match="line 5: userId=1"):
        load_ratings(directory)


def test_blank_lines_alone_are_not_errors(tmp_path: Path) -> None:
    directory = csv_layout(tmp_path, f"{HEADER}1,10,4.0,1\n\n1,20,3.0,2\n\n")

    data = load_ratings(directory)

    assert data.ratings["movie_id"].tolist() == [10, 20]
    assert data.dropped_rows == 0


def test_validating_read_in_chunks_keeps_lines_and_examples(
    tmp_path: Path, text_reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny chunks, so that blank lines, skipped lines and duplicates straddle chunk borders.
    monkeypatch.setattr(readers_module, "_CHUNK_ROWS", 2)
    rows = [
        "1,10,4.0,1",  # line 2
        "",  # line 3
        "1,20,4.0,2,surplus",  # line 4
        "2,10,9.0,3",  # line 5
        "3,10,4.0,4",  # line 6
        "",  # line 7
        "1,10,2.0,5",  # line 8: repeats line 2
        "4,x,4.0,6",  # line 9
        "5,10,4.0,7",  # line 10
    ]
    directory = csv_layout(tmp_path, HEADER + "\n".join(rows) + "\n")

    with pytest.raises(DataError) as caught:
        load_ratings(directory)

    message = str(caught.value)
    assert "4 of 7 rows failed validation" in message
    assert "wrong number of fields: line 4\n" in message
    assert "line 5: userId=2, movieId=10, rating=9.0, timestamp=3" in message
    assert "line 8: userId=1, movieId=10, rating=2.0, timestamp=5 (first seen on line 2)" in message
    assert "line 9: userId=4, movieId=x, rating=4.0, timestamp=6" in message

    data = load_ratings(directory, drop_invalid=True)
    assert data.ratings["timestamp"].tolist() == [1, 4, 7]
    assert data.dropped_rows == 4


def test_drop_invalid_drops_counts_keeps_order_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = csv_layout(
        tmp_path,
        f"{HEADER}5,50,4.0,1\n1,,4.0,2\n3,30,3.0,3\nx,1,1.0,4\n5,50,2.0,5\n2,20,9.0,6\n4,40,NaN,7\n1,10,1.0,8\n",
    )

    with caplog.at_level(logging.WARNING, logger="movierec.data"):
        data = load_ratings(directory, drop_invalid=True)

    assert data.dropped_rows == 5
    assert_ratings_frame(data)
    assert data.ratings["user_id"].tolist() == [5, 3, 1]
    assert data.ratings["movie_id"].tolist() == [50, 30, 10]
    assert data.ratings["timestamp"].tolist() == [1, 3, 8]
    warning = caplog.text
    assert "dropped 5 of 8 rows" in warning
    assert str(directory / "ratings.csv") in warning
    for expected in (
        "1 with a missing value",
        "1 with a user or movie id that is not an integer",
        "1 with a non-finite rating",
        "1 with a rating outside the scale",
        "1 with a duplicate (user, movie) pair",
    ):
        assert expected in warning


def test_drop_invalid_keeps_a_valid_repeat_of_an_invalid_row(tmp_path: Path) -> None:
    directory = csv_layout(tmp_path, f"{HEADER}1,10,7.0,1\n1,10,4.0,2\n1,10,3.0,3\n")

    data = load_ratings(directory, drop_invalid=True)

    # The out-of-scale row is dropped, so the next (1, 10) is the first valid occurrence.
    assert data.ratings["timestamp"].tolist() == [2]
    assert data.dropped_rows == 2


def test_drop_invalid_with_nothing_left_raises(tmp_path: Path) -> None:
    directory = csv_layout(tmp_path, f"{HEADER}1,10,7.0,1\n")

    with pytest.raises(DataError, match="no valid ratings left"):
        load_ratings(directory, drop_invalid=True)


def test_rating_scale_can_be_narrowed(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"rating outside the scale \[1, 5\]"):
        load_ratings(FIXTURES / "layout_csv", rating_scale=(1, 5))


def test_rows_with_too_many_fields(tmp_path: Path, text_reader: str) -> None:
    directory = csv_layout(tmp_path, f"{HEADER}1,10,4.0,1\n1,20,4.0,2,surplus\n1,30,4.0,3\n")

    with pytest.raises(DataError, match=r"1 row with the wrong number of fields: line 3\n"):
        load_ratings(directory)

    data = load_ratings(directory, drop_invalid=True)
    assert data.ratings["movie_id"].tolist() == [10, 30]
    assert data.dropped_rows == 1


def test_first_row_wider_than_header(tmp_path: Path, text_reader: str) -> None:
    directory = csv_layout(tmp_path, f"{HEADER}1,10,4.0,1,surplus\n1,30,4.0,3\n")

    if text_reader == "arrow":
        data = load_ratings(directory, drop_invalid=True)
        assert data.ratings["movie_id"].tolist() == [30]
        assert data.dropped_rows == 1
    else:
        # pandas lets the first row set the field count, so it cannot tell which row is wrong.
        with pytest.raises(DataError, match="line 2 has more fields than the header"):
            load_ratings(directory, drop_invalid=True)


def test_dat_problems_use_file_line_numbers(tmp_path: Path, text_reader: str) -> None:
    directory = tmp_path / "ml-1m"
    shutil.copytree(FIXTURES / "layout_dat", directory)
    (directory / "ratings.dat").write_text("1::1193::5::978300760\n1::661:3::978302109\n2::1193::abc::9\n")

    with pytest.raises(DataError) as caught:
        load_ratings(directory)

    message = str(caught.value)
    assert str(directory / "ratings.dat") in message
    assert "line 2" in message
    assert "line 3: user=2, movie=1193, rating=abc, timestamp=9" in message


def test_100k_out_of_scale_rating(tmp_path: Path) -> None:
    directory = tmp_path / "ml-100k"
    shutil.copytree(FIXTURES / "layout_100k", directory)
    (directory / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t0.5\t891717742\n")

    with pytest.raises(DataError, match=r"(?s)outside the scale \[1, 5\].*line 2: user=186"):
        load_ratings(directory)


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("user,movie,stars\n1,2,3\n")

    with pytest.raises(DataError, match=r"missing column.*'userId'.*the header has 'user', 'movie', 'stars'"):
        load_ratings(path)


def test_empty_ratings_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no ratings"):
        load_ratings(csv_layout(tmp_path, HEADER))


def test_movies_with_bad_ids_are_reported(tmp_path: Path) -> None:
    directory = csv_layout(tmp_path, f"{HEADER}1,10,4.0,1\n")
    (directory / "movies.csv").write_text("movieId,title,genres\n10,Ten (2000),Drama\nten,Ten again,Drama\n")

    with pytest.raises(DataError, match=r"movies\.csv.*line 3"):
        load_ratings(directory)
    assert load_ratings(directory, drop_invalid=True).movies["movie_id"].tolist() == [10]


def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="rating_scale"):
        load_ratings(FIXTURES / "layout_csv", rating_scale=(5, 1))
    with pytest.raises(ValueError, match="single ratings file"):
        load_ratings(FIXTURES / "layout_csv", columns=ColumnNames())


# --- fingerprint and real data -------------------------------------------------------------------


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    content = bytes(range(256)) * 5000  # more than one read chunk
    path.write_bytes(content)

    assert sha256_file(path) == hashlib.sha256(content).hexdigest()
    assert sha256_file(str(path)) == hashlib.sha256(content).hexdigest()


def test_real_ml_latest_small_loads() -> None:
    if not (REAL_DATA / "ratings.csv").is_file():
        pytest.skip(real_data_skip_reason())

    data = load_ratings(REAL_DATA)

    assert data.layout == "csv"
    assert len(data.ratings) == 100_004
    assert data.ratings["user_id"].nunique() == 671
    assert data.ratings["movie_id"].nunique() == 9_066
    assert data.dropped_rows == 0
    assert_ratings_frame(data)
