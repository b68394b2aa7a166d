"""The interface every model kind implements: how it fits, and which scorer serves what it exports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import pandas as pd

from training.config import TrainConfig
from training.fitted import FittedModel, Indexed, Validation

ScorerFamily = Literal["factor", "mlp"]


class ModelKind(ABC):
    """One model kind: the run (training/pipeline.py) asks it to fit and never branches on its name.

    `scorer_family` is recorded in the manifest; the service picks its scorer by it. A kind with
    `chooses_epochs_on_validation` has its epochs and learning-rate drops chosen by early stopping on a
    validation slice of train, then replayed through `schedule`; a kind without is fitted once on the whole train
    split (one entry of `learning_rates` per step, so a refit replays the same count).
    """

    name: str
    scorer_family: ScorerFamily
    chooses_epochs_on_validation: ClassVar[bool] = True
    # What one of its `epochs` is, in logs and reports: a pass of minibatch steps, or a closed-form sweep.
    step_unit: ClassVar[str] = "epochs"
    # Whether `--workers N` can fit it data-parallel (training/distributed.py): the Keras SGD kinds can.
    data_parallel: ClassVar[bool] = False

    @abstractmethod
    def fit(
        self,
        config: TrainConfig,
        train: Indexed,
        rating_scale: tuple[float, float],
        *,
        validation: Validation | None,
        schedule: list[float] | None,
        movies: pd.DataFrame | None,
        restart: FittedModel | None,
        verbose: int,
    ) -> FittedModel:
        """Fit on `train` only: with `validation` choosing the epochs, or replaying `schedule`.

        `movies` (the catalogue) feeds genre and year side features; `restart`, an earlier fit under the same
        id maps, may lend its compiled graph.
        """
