"""Typed training configuration: built from CLI flags, dumped whole into the artifact manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from movierec.model_config import ModelConfig, ModelKind

# Defaults chosen on validation slices of train by `bench/tune.py` (bench/results/tuning.md: seed 42's slice
# chooses, seed 7's confirms), per model kind.
KIND_DEFAULTS: dict[str, dict[str, object]] = {
    # Validation RMSE 0.924 / 0.914 (seeds 42 / 7) against 0.926 / 0.916 at 50 factors and L2 1e-4.
    "dot": {"model": {"n_factors": 32, "l2_factors": 3e-5, "regularization": "weights"}},
    # Side features (training/side_features.py): -0.02 to -0.03 validation RMSE for bias and nn. Batches of
    # 4096 keep the fit fast (the optimizer updates whole tables every step); the L2 penalties, applied once per
    # step, are 4x those of batch 1024 so that the regularisation per epoch stays the same.
    # 64 factors and L2 2e-4: 0.857 / 0.848 against 0.859 / 0.851 at 32 factors and 4e-4.
    "bias": {
        "model": {
            "n_factors": 64,
            "l2_factors": 2e-4,
            "l2_bias": 4e-4,
            "regularization": "weights",
            "side_features": True,
            "side_l2": 4e-2,
        },
        "batch_size": 4096,
        "learning_rate": 0.03,
    },
    # L2 8e-4, side L2 0.01, hidden dropout 0.3: 0.865 / 0.861 against 0.876 / 0.869 (4e-4, 0.04, 0.5).
    "nn": {
        "model": {
            "n_factors": 16,
            "l2_factors": 8e-4,
            "regularization": "weights",
            "side_features": True,
            "side_l2": 1e-2,
            "dropout_input": 0.2,
            "dropout_hidden": 0.3,
        },
        "batch_size": 4096,
        "learning_rate": 0.03,
    },
    # Implicit feedback needs stronger L2 than bias; big batches because each step recomputes every user's
    # implicit term (one pass over the training ratings), and validation RMSE still improved at epoch 20.
    "svdpp": {
        "model": {"l2_factors": 2e-4, "l2_bias": 1e-4, "l2_implicit": 3e-4, "regularization": "weights"},
        "batch_size": 4096,
        "epochs": 30,
    },
    # Gibbs sampling (training/bpmf.py): `epochs` counts sweeps. Precisions, width and burn-in were compared on
    # the validation slice of train; the linear head because the posterior mean is an average of linear scores.
    # 15 factors, prior precision 8, side prior 4, 150 sweeps (30 burn-in): 0.843 / 0.835 against 0.848 / 0.842
    # for 10 factors, 4, 1 and 100 sweeps, at ~2.5x the sampling time (25 s instead of 8.5 s on the fit part).
    "bpmf": {
        "model": {
            "n_factors": 15,
            "prior_precision": 8.0,
            "squash_output": False,
            "side_features": True,
            "side_l2": 4.0,
            "burn_in": 30,
        },
        "epochs": 150,
    },
}

# Overlay on KIND_DEFAULTS when a run sets `side_features=False` (`--no-side-features`): without the learned
# priors the side-feature defaults overfit within a few epochs, so the kinds that use side features get their own
# settings, chosen by `bench/tune.py` on validation slices of train (bench/results/tuning.md).
KIND_DEFAULTS_WITHOUT_SIDE_FEATURES: dict[str, dict[str, object]] = {
    # Validation RMSE 0.887 / 0.876 (seeds 42 / 7) against 0.924 / 0.909 for the side-feature defaults without
    # side features. Back at bias's pre-side-features batch 1024 and Adam 0.01, with weaker L2 on the biases.
    "bias": {
        "model": {"side_features": False, "n_factors": 50, "l2_factors": 1e-4, "l2_bias": 3e-5},
        "batch_size": 1024,
        "learning_rate": 0.01,
    },
    # 0.897 / 0.888 against 0.901 / 0.889: stronger L2 on the embeddings, otherwise nn's side-feature defaults.
    "nn": {"model": {"side_features": False, "l2_factors": 1e-3, "side_l2": 4e-2, "dropout_hidden": 0.5}},
    # 0.878 / 0.870 against 0.880 / 0.872: wider, and more sweeps (~3x the sampling time of 100 sweeps at width 10).
    "bpmf": {
        "model": {"side_features": False, "n_factors": 15, "prior_precision": 4.0, "burn_in": 30},
        "epochs": 150,
    },
}


# Overlay on a kind's defaults when `solver` is not SGD: `--solver als` fits bias by alternating least squares
# (training/als.py), whose penalties are bpmf's prior precisions, with a linear head like bpmf's. Chosen on the
# validation slices of ml-latest-small (seeds 42 / 7) and of a 2M-rating synth (seeds 42 / 7, 16 planted
# factors) for the smallest loss against each one's best: 16 factors and penalty 16 give 0.859 / 0.855 and
# 0.841 / 0.837, against 0.856 (64 factors, 16) and 0.832 / 0.829 (16 factors, 8); more factors overfit the
# synth (32 factors: 0.856) and a penalty scaled by each row's rating count (ALS-WR) did worse there (0.843).
# Patience 3: the first sweeps can stall while the factors grow out of their random start.
SOLVER_DEFAULTS: dict[str, dict[str, dict[str, object]]] = {
    "als": {
        "bias": {
            "model": {
                "n_factors": 16,
                "prior_precision": 16.0,
                "bias_prior_precision": 5.0,
                "side_l2": 4.0,
                "squash_output": False,
            },
            "epochs": 25,
            "patience": 3,
        },
    },
}


class RankerConfig(BaseModel):
    """The top-N ranker fitted next to the rating model: a low-rank EASE^R item-item model (training/ranker.py).

    Rating models are trained for squared error, which ranks poorly (obscure movies with a few high ratings float
    up); EASE is trained to reconstruct who-watched-what, which is what a top-N list must predict. The service
    ranks by `max(E, 0) * sigmoid((predicted_rating - like_threshold) / like_temperature)`: the threshold and
    temperature were chosen on a validation slice of train (seed 42) in the prototype; `l2` is chosen per run
    from `l2_grid` on the run's validation slice. `rank` bounds the serving cost (n_movies x rank per request):
    128 rather than 256 halves it (a list on ml-latest-small: 300 -> 195 us) for held-out NDCG@10 of the served
    lists within 0.3% on random:42 and random:7 and 1.7% lower on the temporal split (bias rating model).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    rank: int = Field(128, ge=1, description="singular triplets kept (full rank reproduces dense EASE)")
    l2_grid: tuple[float, ...] = Field(
        (30.0, 60.0, 125.0, 250.0, 500.0, 1000.0, 2000.0),
        min_length=1,
        description="L2 candidates, chosen on validation",
    )
    max_ranked_users: int = Field(
        5_000,
        ge=1,
        description="users whose lists score a validation or held-out ranking (a fixed random sample beyond "
        "that): ranking every user of ml-25m costs users x movies x rank per L2 candidate",
    )
    like_threshold: float = Field(3.5, description="predicted rating at which the rating gate is one half")
    like_temperature: float = Field(0.6, gt=0, description="softness of the rating gate (rating units)")

    @field_validator("l2_grid")
    @classmethod
    def _positive(cls, grid: tuple[float, ...]) -> tuple[float, ...]:
        if any(not l2 > 0 for l2 in grid):
            raise ValueError(f"every L2 candidate must be positive, got {grid}")
        return grid


class TrainConfig(BaseModel):
    """Everything that determines a training run (besides the data)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelConfig = ModelConfig()
    seed: int = 42
    split: Literal["random", "temporal"] = "random"
    train_fraction: float = Field(0.8, gt=0, lt=1)
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="slice of train used for early stopping")
    epochs: int = Field(40, ge=1, description="upper bound; early stopping picks the count on validation")
    batch_size: int = Field(1024, ge=1)
    learning_rate: float = Field(0.01, gt=0)
    lr_schedule: Literal["plateau", "constant"] = "plateau"
    lr_decay: float = Field(0.5, gt=0, le=1, description="factor applied when validation RMSE stalls")
    patience: int = Field(3, ge=1, description="epochs without validation improvement before stopping")
    solver: Literal["sgd", "als"] = Field(
        "sgd",
        description="sgd: minibatch gradient steps on the Keras graph (see `optimizer`); als: closed-form "
        "alternating least squares sweeps for bias (training/als.py), minutes at ml-25m size; `epochs` counts sweeps",
    )
    optimizer: Literal["adam", "sgd", "adagrad"] = "adam"
    adam_beta_1: float = Field(0.9, ge=0, lt=1, description="Adam's beta_1, or SGD's momentum")
    weight_decay: float = Field(0.0, ge=0, description="AdamW's decoupled weight decay (0: plain Adam)")
    refit: bool = Field(True, description="refit on all ratings with the chosen epochs and schedule")
    fold_in_l2: float = Field(5.0, gt=0)
    ranker: RankerConfig = RankerConfig()

    @classmethod
    def for_kind(cls, kind: ModelKind, **overrides: object) -> TrainConfig:
        """The tuned defaults of a model kind, with explicit overrides on top.

        `model_fields={"side_features": False}` on a kind whose defaults use side features switches to that
        kind's defaults without them (KIND_DEFAULTS_WITHOUT_SIDE_FEATURES), and `solver="als"` to the ALS fit's
        (SOLVER_DEFAULTS), under the other explicit overrides.
        """
        explicit: dict[str, Any] = dict(overrides.pop("model_fields", {}))  # type: ignore[call-overload]
        defaults = _merge(KIND_DEFAULTS[kind], {})
        if explicit.get("side_features") is False and kind in KIND_DEFAULTS_WITHOUT_SIDE_FEATURES:
            defaults = _merge(defaults, KIND_DEFAULTS_WITHOUT_SIDE_FEATURES[kind])
        solver_defaults = SOLVER_DEFAULTS.get(str(overrides.get("solver", "sgd")), {})
        if kind in solver_defaults:
            defaults = _merge(defaults, solver_defaults[kind])
        model_fields: dict[str, Any] = {**defaults.get("model", {}), **explicit}
        top = {k: v for k, v in defaults.items() if k != "model"}
        return cls.model_validate({"model": {"kind": kind, **model_fields}, **top, **overrides})


def _merge(base: dict[str, object], overlay: dict[str, object]) -> dict[str, Any]:
    """`base` with `overlay` on top; the "model" sub-dicts are merged key by key."""
    model: dict[str, Any] = {**base.get("model", {}), **overlay.get("model", {})}  # type: ignore[dict-item]
    return {**base, **overlay, "model": model}


class TrainerSettings(BaseSettings):
    """Environment settings of the trainer (`MOVIEREC_` prefix)."""

    model_config = SettingsConfigDict(env_prefix="MOVIEREC_", extra="ignore")

    data_root: Path = Path("data")
    data_base_url: str = "https://files.grouplens.org/datasets/movielens"
    download_timeout: float = 30.0
    output_dir: Path = Path("models")
    keras_backend: str = "tensorflow"
