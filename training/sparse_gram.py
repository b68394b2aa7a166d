"""Per-entity Gram matrices and right-hand sides of a Gibbs sweep as sparse x dense products, in threads.

Sampling every user's `[p_u, b_u]` given the movies needs, per user u, the Gram matrix `sum_j w_j w_j^T` and
the vector `sum_j t_uj w_j` over the movies j it rated, with `w_j = [q_j, 1]` and t the rating targets. With
A the (n_users, n_movies) indicator of the ratings and O the (n_movies, width (width + 1) / 2) table of each
movie's upper-triangle outer product, all users' Grams are the one product `A @ O`, and the right-hand sides
are `T @ W` for T the same pattern holding the targets: scipy runs both in C, and no per-rating copy of the
features is ever made. The pattern is built once per run for each side (duplicate pairs stay separate ratings,
as they are in the data), so a sweep costs ratings x (width (width + 1) / 2 + width) multiply-adds per side.

scipy's sparse products and numpy's batched solves release the GIL, so row blocks run in a thread pool (one
worker per available core, at most `MAX_WORKERS`); every block writes its own rows, so the result does not
depend on the number of workers.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix

F64 = NDArray[np.float64]

# Past 8 workers the products are bound by memory bandwidth, and each worker holds its own solve temporaries.
MAX_WORKERS = 8


def worker_count() -> int:
    """Cores this process may run on, at most MAX_WORKERS."""
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))


def in_parallel(task: Callable[[int, int], None], bounds: Sequence[int], workers: int) -> None:
    """Run `task(start, end)` for each consecutive pair of `bounds`, on up to `workers` threads."""
    spans = [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]
    if workers <= 1 or len(spans) <= 1:
        for start, end in spans:
            task(start, end)
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(spans))) as pool:
        for future in [pool.submit(task, start, end) for start, end in spans]:
            future.result()


def _csr_over(data: F64, indices: NDArray[Any], indptr: NDArray[Any], shape: tuple[int, int]) -> csr_matrix:
    """A CSR matrix over the given arrays themselves.

    scipy's constructor copies a view that is a small part of its base array, and these views (row blocks of
    one buffer per run, shared by both sides) must stay views.
    """
    matrix = csr_matrix((data, indices, indptr), shape=shape, copy=False)
    matrix.data, matrix.indices = data, indices
    return matrix


def upper_index(width: int) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
    """Rows and columns of the upper triangle, and for each (a, b) entry of a full matrix its upper column."""
    rows, cols = np.triu_indices(width)
    full = np.empty((width, width), dtype=np.intp)
    full[rows, cols] = full[cols, rows] = np.arange(rows.size)
    return rows, cols, full.reshape(-1)


def expand_upper(upper: F64, width: int) -> F64:
    """(n, width, width) symmetric matrices from their (n, width (width + 1) / 2) upper triangles."""
    full: F64 = np.take(upper, upper_index(width)[2], axis=1).reshape(len(upper), width, width)
    return full


class RatingPattern:
    """One side's ratings grouped by the entity being sampled (CSR rows), with per-rating targets.

    `values` are the targets before the other side's bias is taken off (for bpmf: rating - global mean).
    """

    def __init__(
        self,
        rows: NDArray[Any],
        cols: NDArray[Any],
        values: NDArray[Any],
        n_rows: int,
        n_cols: int,
        *,
        workers: int | None = None,
        ones: F64 | None = None,
        scratch: F64 | None = None,
    ) -> None:
        """`ones` and `scratch` (float64, one slot per rating) may be shared with the other side's pattern."""
        nnz = len(rows)
        index_dtype = np.int32 if max(nnz, n_rows, n_cols) < np.iinfo(np.int32).max else np.int64
        # By row, and by column within a row: reading the other side's table in increasing order is up to
        # twice as fast as in rating order once that table outgrows the cache (measured at 162,000 x 62,000).
        key = np.asarray(rows, dtype=np.int64) * n_cols
        key += cols
        order = np.argsort(key)
        del key
        indptr = np.zeros(n_rows + 1, dtype=index_dtype)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
        self.cols: NDArray[Any] = np.asarray(cols)[order].astype(index_dtype, copy=False)
        self.values: F64 = np.asarray(values, dtype=np.float64)[order]
        del order
        self.n_rows, self.n_cols = n_rows, n_cols
        self.workers = worker_count() if workers is None else workers
        ones = np.ones(nnz) if ones is None else ones
        self._scratch = np.empty(nnz) if scratch is None else scratch
        # Row blocks of about equal numbers of ratings (a few per worker, to even out the load), each a CSR
        # matrix over views of the shared arrays.
        n_blocks = 1 if self.workers <= 1 else 4 * self.workers
        cuts = np.searchsorted(indptr, np.linspace(0, nnz, n_blocks + 1)[1:-1])
        self.bounds = np.unique(np.r_[0, cuts, n_rows]).tolist()
        self._blocks: dict[int, tuple[csr_matrix, csr_matrix, slice]] = {}
        for start, end in itertools.pairwise(self.bounds):
            lo, hi = int(indptr[start]), int(indptr[end])
            local = (indptr[start : end + 1] - lo).astype(index_dtype)
            shape = (end - start, n_cols)
            self._blocks[start] = (
                _csr_over(ones[lo:hi], self.cols[lo:hi], local, shape),
                _csr_over(self._scratch[lo:hi], self.cols[lo:hi], local, shape),
                slice(lo, hi),
            )

    @classmethod
    def pair(
        cls,
        users: NDArray[Any],
        movies: NDArray[Any],
        values: NDArray[Any],
        n_users: int,
        n_movies: int,
        *,
        workers: int | None = None,
    ) -> tuple[RatingPattern, RatingPattern]:
        """The by-user and by-movie patterns of one set of ratings, sharing their per-rating buffers."""
        ones, scratch = np.ones(len(users)), np.empty(len(users))
        by_user = cls(users, movies, values, n_users, n_movies, workers=workers, ones=ones, scratch=scratch)
        by_movie = cls(movies, users, values, n_movies, n_users, workers=workers, ones=ones, scratch=scratch)
        return by_user, by_movie

    def gram_and_rhs(self, features: F64, offset: F64) -> tuple[F64, F64]:
        """Per row entity, the upper triangle of `sum f f^T` and the vector `sum (value - offset[col]) f`.

        `features` (n_cols, width) and `offset` (n_cols,) are per column entity; the sums run over the row's
        ratings. Returns (n_rows, width (width + 1) / 2) upper triangles (see `expand_upper`) and
        (n_rows, width) right-hand sides.
        """
        width = features.shape[1]
        products = np.empty((len(features), width * (width + 1) // 2))
        column = 0
        for a in range(width):  # row a of the upper triangle: f_a * f_a..f_width-1
            np.multiply(features[:, a : a + 1], features[:, a:], out=products[:, column : column + width - a])
            column += width - a
        upper = np.empty((self.n_rows, products.shape[1]))
        rhs = np.empty((self.n_rows, width))

        def block(start: int, end: int) -> None:
            indicator, targets, ratings = self._blocks[start]
            data = self._scratch[ratings]
            np.take(offset, self.cols[ratings], out=data)
            np.subtract(self.values[ratings], data, out=data)
            upper[start:end] = indicator @ products
            rhs[start:end] = targets @ features

        in_parallel(block, self.bounds, self.workers)
        return upper, rhs
