"""SVD++: a Keras SGD kind whose graph also learns from which movies each user rated (movierec/svdpp.py)."""

from __future__ import annotations

from typing import Any, ClassVar

from training.config import TrainConfig
from training.fitted import Indexed
from training.kinds.keras_sgd import KerasSgdKind
from training.side_features import SideFeatures


class SvdppKind(KerasSgdKind):
    """The SGD fit of `KerasSgdKind` on `movierec.svdpp.build_svdpp_model`'s graph."""

    # The graph holds N(u) of the ratings it was built for, so a fit on other ratings cannot borrow it.
    lends_graph: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__("svdpp", "factor")

    def build_graph(
        self,
        config: TrainConfig,
        train: Indexed,
        rating_scale: tuple[float, float],
        global_mean: float,
        side: SideFeatures | None,
    ) -> Any:
        """N(u) is the fit data's rated movies: validation and held-out ratings stay unseen, implicitly too."""
        from movierec.svdpp import build_svdpp_model

        return build_svdpp_model(
            config.model,
            len(train.users),
            len(train.movies),
            rating_scale,
            global_mean,
            train.user_idx,
            train.movie_idx,
        )
