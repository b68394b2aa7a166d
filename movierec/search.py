"""Title search over a model's catalogue: title-prefix and word-prefix matches, case- and accent-insensitive.

A request must not scan titles with pandas or regular expressions, so the index is built once per loaded model
(`title_index`): the sorted normalised titles (for "the title starts with the query") and a sorted vocabulary
of title words whose postings are stored contiguously in vocabulary order, so the movies of every word that
starts with a query word are one slice of one array. A query is then a few binary searches and intersections.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from movierec.per_model import per_model

if TYPE_CHECKING:
    from movierec.recommender import Recommender

# MovieLens writes "Godfather, The (1972)"; a person types "the godfather". Titles ending their name with one of
# these articles are indexed under both spellings.
_ARTICLES = ("The", "A", "An", "Les", "Le", "La", "L'", "El", "Il", "Die", "Der", "Das", "Los", "Las")
_TRAILING_ARTICLE = re.compile(
    r"^(?P<name>[^(]*?), (?P<article>" + "|".join(_ARTICLES) + r") ?(?P<rest>\(.*)?$"
)
_YEAR = re.compile(r"\((\d{4})(?:\s*[-–]\s*\d{4})?\)\s*$")
_NOT_WORD = re.compile(r"[^0-9a-z]+")
# Sorts after every character a normalised key can hold: [key, key + _HIGH) is "starts with key".
_HIGH = "\uffff"


def normalize(text: str) -> str:
    """Lower case, accents dropped, every run of non-alphanumerics one space: what keys and queries compare."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NOT_WORD.sub(" ", plain.lower()).strip()


def title_year(title: str) -> int | None:
    """The release year MovieLens appends to a title, "(1995)", or None."""
    match = _YEAR.search(title)
    return int(match.group(1)) if match else None


def _spellings(title: str) -> list[str]:
    """The normalised keys a title is found under: as written and, for "Name, The (...)", "The Name (...)"."""
    keys = [normalize(title)]
    match = _TRAILING_ARTICLE.match(title)
    if match:
        moved = f"{match['article']} {match['name']} {match['rest'] or ''}"
        keys.append(normalize(moved))
    return [key for key in dict.fromkeys(keys) if key]


@dataclass(frozen=True)
class SearchPage:
    """One page of matches, best first, and how many there are in all."""

    movie_index: NDArray[np.int64]
    total: int


class TitleIndex:
    """Prefix and word search over titles, ranked title-prefix matches first, then most-rated first.

    Args:
        titles: one title per movie index.
        n_ratings: rating count per movie index (the order within a match tier).
    """

    def __init__(self, titles: Sequence[str], n_ratings: NDArray[np.integer]) -> None:
        self.n_movies = len(titles)
        self.n_ratings = np.asarray(n_ratings, dtype=np.int64)
        keyed = sorted((key, idx) for idx, title in enumerate(titles) for key in _spellings(title))
        self._keys = [key for key, _ in keyed]
        self._key_movies = np.array([idx for _, idx in keyed], dtype=np.int64)
        postings: dict[str, set[int]] = {}
        for key, idx in keyed:
            for word in key.split():
                postings.setdefault(word, set()).add(idx)
        self._vocab = sorted(postings)
        self._word_movies = np.array(
            [idx for word in self._vocab for idx in sorted(postings[word])], dtype=np.int64
        )
        self._word_starts = np.cumsum([0] + [len(postings[word]) for word in self._vocab], dtype=np.int64)
        # Every movie most-rated first: the order of an empty query and the tie-break of every other.
        self._popularity_rank = np.empty(self.n_movies, dtype=np.int64)
        self._popularity_rank[np.lexsort((np.arange(self.n_movies), -self.n_ratings))] = np.arange(
            self.n_movies
        )

    def _prefix_range(self, keys: list[str], prefix: str) -> tuple[int, int]:
        return bisect.bisect_left(keys, prefix), bisect.bisect_left(keys, prefix + _HIGH)

    def _title_prefix_matches(self, query: str) -> NDArray[np.int64]:
        lo, hi = self._prefix_range(self._keys, query)
        return np.unique(self._key_movies[lo:hi])

    def _word_matches(self, words: list[str]) -> NDArray[np.int64]:
        """Movies in which every query word starts some title word."""
        found: NDArray[np.int64] | None = None
        for word in sorted(set(words), key=len, reverse=True):  # longest (rarest) words first
            lo, hi = self._prefix_range(self._vocab, word)
            movies = np.unique(self._word_movies[self._word_starts[lo] : self._word_starts[hi]])
            found = movies if found is None else np.intersect1d(found, movies, assume_unique=True)
            if not len(found):
                break
        return np.empty(0, dtype=np.int64) if found is None else found

    def search(
        self, query: str, *, allowed: NDArray[np.bool_] | None = None, offset: int = 0, limit: int = 20
    ) -> SearchPage:
        """Movies matching `query` among `allowed` (all when None), best first, the page [offset, offset+limit).

        A title matches when it starts with the query or when every query word starts one of its words. Titles
        that start with the query come first, then the rest; within each, most-rated first. An empty query
        matches every movie, most-rated first.
        """
        key = normalize(query)
        if not key:
            candidates = np.arange(self.n_movies, dtype=np.int64)
            tiers = np.zeros(self.n_movies, dtype=np.int64)
        else:
            prefix = self._title_prefix_matches(key)
            words = self._word_matches(key.split())
            candidates = np.union1d(prefix, words)
            tiers = np.where(np.isin(candidates, prefix, assume_unique=True), 0, 1)
        if allowed is not None:
            keep = allowed[candidates]
            candidates, tiers = candidates[keep], tiers[keep]
        order = np.lexsort((self._popularity_rank[candidates], tiers))
        return SearchPage(candidates[order][offset : offset + limit], len(candidates))


@per_model
def title_index(recommender: Recommender) -> TitleIndex:
    """The title index of a loaded model, built once (app.state.load_model builds it) and kept as long as the
    model is."""
    return TitleIndex(recommender.titles, recommender.n_ratings)
