"""Model hyper-parameters, importable without Keras (the CLI and the service read them before any backend)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ModelKind = Literal["dot", "bias", "nn", "svdpp", "bpmf"]
MODEL_KINDS: tuple[str, ...] = ("dot", "bias", "nn", "svdpp", "bpmf")
# Kinds with learned user and movie biases (scored as `head(b_u + b_i + p_u . q_i)`).
BIAS_KINDS: tuple[str, ...] = ("bias", "svdpp", "bpmf")


class ModelConfig(BaseModel):
    """Architecture hyper-parameters; every field is recorded in the artifact manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ModelKind = "bias"
    n_factors: int = Field(50, ge=1, description="embedding width")
    l2_factors: float = Field(1e-4, ge=0, description="L2 penalty on the embedding matrices")
    l2_bias: float = Field(0.0, ge=0, description="L2 penalty on the bias vectors")
    regularization: Literal["per_example", "weights"] = Field(
        "per_example",
        description="per_example: penalise the looked-up rows, averaged over the batch (classic MF SGD "
        "regularisation, frequency-weighted); weights: Keras L2 on the whole matrices (the notebook's choice)",
    )
    squash_output: bool = Field(True, description="sigmoid-squash predictions into the rating range")
    squash_margin: float = Field(
        0.0,
        ge=0,
        description="the sigmoid spans [min - margin, max + margin]; predictions are clipped to the scale",
    )
    dropout_input: float = Field(0.3, ge=0, lt=1, description="nn: dropout on the concatenated embeddings")
    hidden_units: int = Field(70, ge=1, description="nn: width of the ReLU layer")
    dropout_hidden: float = Field(0.75, ge=0, lt=1, description="nn: dropout after the ReLU layer")
    init_scale: float = Field(
        0.05, gt=0, description="standard deviation of the factor matrices' initialiser"
    )
    l2_implicit: float = Field(
        0.0, ge=0, description="svdpp: L2 penalty on the implicit-feedback factor matrix"
    )
    prior_precision: float = Field(
        4.0,
        gt=0,
        description="bpmf: Gaussian prior precision of the factors, in units of the noise precision; "
        "bias under --solver als: the ridge penalty on the factors (the same prior's mode)",
    )
    bias_prior_precision: float = Field(
        5.0,
        gt=0,
        description="bpmf: Gaussian prior precision of the biases, in units of the noise precision; "
        "bias under --solver als: the ridge penalty on the biases",
    )
    noise_precision: float = Field(1.6, gt=0, description="bpmf: precision of the Gaussian rating noise")
    burn_in: int = Field(20, ge=0, description="bpmf: sweeps discarded before averaging samples")
    side_features: bool = Field(
        False,
        description="learn a prior mean for every embedding row and bias from side information: movie genres "
        "and release decade, and who rated what (training/side_features.py); folded away before export",
    )
    side_l2: float = Field(
        1e-3,
        ge=0,
        description="side features: L2 penalty on the feature projection (bpmf: its prior precision; "
        "--solver als: its ridge penalty)",
    )
    implicit_dim: int = Field(16, ge=1, description="side features: width of the who-rated-what embedding")
    export_rank: int = Field(
        32, ge=1, description="bpmf: width of the served factors (the posterior mean reduced to this rank)"
    )
