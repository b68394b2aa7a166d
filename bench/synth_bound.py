"""The attainable-RMSE bound of a `python -m training synth` data set on the trainer's default split.

The planted floor (planted.json) scores the noiseless planted ratings, which no model can know: a model learns
each user from that user's own train ratings (a median of ~80 at ml-25m size), and that estimate carries error
whatever the method. This bound grants far more than any trainer has, every movie's planted factors and bias
exactly, and estimates only each user's `[p_u, b_u]`, Bayes-optimally: the posterior mean under the planted
Gaussian priors and noise (rounding to half stars added to the noise as a uniform's variance), from the user's
train ratings. A trained model's held-out RMSE above this bound is what better fitting could still win; the
distance from the bound down to the floor no method can close on this data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from movierec.data import load_ratings
from movierec.split import split_mask
from training.sparse_gram import RatingPattern, expand_upper
from training.synth import MAX_RATING, MIN_RATING, SynthSpec, plant

# A half-star rounding error is uniform on [-0.25, 0.25]: variance 0.25^2 / 3.
_ROUNDING_VARIANCE = 0.25**2 / 3


def known_movies_bound(data_dir: Path, seed: int = 42, train_fraction: float = 0.8) -> dict[str, Any]:
    """Held-out RMSE of the Bayes-optimal user estimates given the planted movie side, and the planted floor."""
    spec = SynthSpec(**json.loads((data_dir / "planted.json").read_text())["spec"])
    planted = plant(spec, np.random.default_rng(spec.seed))  # the generator's first draws: the same model
    ratings = load_ratings(data_dir).ratings
    train = split_mask(ratings, "random", seed, train_fraction)
    users = ratings["user_id"].to_numpy() - 1  # synth ids are index + 1
    movies = ratings["movie_id"].to_numpy() - 1
    observed = ratings["rating"].to_numpy(np.float64)
    q = planted.movie_factors.astype(np.float64)
    movie_bias = planted.movie_bias.astype(np.float64)
    k = q.shape[1]
    noise_variance = spec.noise**2 + _ROUNDING_VARIANCE
    factor_variance = np.sqrt(spec.interaction_std**2 / k)  # per entry, as `plant` draws them
    penalty = np.r_[np.full(k, noise_variance / factor_variance), noise_variance / spec.user_bias_std**2]
    by_user = RatingPattern(
        users[train], movies[train], observed[train] - spec.global_mean, spec.n_users, spec.n_movies
    )
    upper, rhs = by_user.gram_and_rhs(np.hstack([q, np.ones((len(q), 1))]), movie_bias)
    system = expand_upper(upper, k + 1) + np.diag(penalty)
    solved = np.linalg.solve(system, rhs[..., None])[..., 0]
    held_u, held_m = users[~train], movies[~train]
    estimate = spec.global_mean + solved[held_u, k] + movie_bias[held_m]
    estimate += np.einsum("ij,ij->i", solved[held_u, :k], q[held_m])
    truth = np.clip(planted.ratings(held_u, held_m), MIN_RATING, MAX_RATING)
    actual = observed[~train]
    return {
        "definition": "held-out RMSE of each user's Bayes-optimal [p_u, b_u] from their train ratings, "
        "given every movie's planted factors and bias",
        "known_movies_bound": round(
            float(np.sqrt(np.mean((np.clip(estimate, MIN_RATING, MAX_RATING) - actual) ** 2))), 5
        ),
        "planted_floor_on_heldout": round(float(np.sqrt(np.mean((truth - actual) ** 2))), 5),
        "n_heldout": int(actual.size),
    }
