"""`python -m training analyze`: the notebook's bias analysis and learning curves, done on the artifact."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from movierec.artifacts import Manifest
from movierec.errors import MovieRecError
from movierec.recommender import Ranked, Recommender

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def provenance(manifest: Manifest) -> str:
    """Which model the held-out metrics describe and which model the artifact serves: after a refit, not the same."""
    evaluated, served = manifest.evaluated_model, manifest.served_model
    rmse = manifest.metrics.get("rmse", float("nan"))
    return (
        f"evaluated model: fitted on the {evaluated.get('fitted_on', '?')} ({evaluated.get('n_ratings', 0):,} "
        f"ratings, {evaluated.get('epochs', '?')} epochs), held-out RMSE {rmse:.4f} on the "
        f"{evaluated.get('scored_on', '?')} ({evaluated.get('n_heldout', 0):,} ratings)\n"
        f"served model:    fitted on {served.get('fitted_on', '?')} ({served.get('n_ratings', 0):,} ratings, "
        f"{served.get('epochs', '?')} epochs), scored by the {manifest.scorer!r} scorer\n"
        + ranker_line(manifest)
    )


def ranker_line(manifest: Manifest) -> str:
    """The top-N ranker the artifact serves lists with, and how well it ranked held-out ratings."""
    ranker = manifest.ranker
    if ranker is None:
        return "ranker:          none (lists ranked by predicted rating)"
    ndcg = manifest.metrics.get("ndcg@10")
    heldout = f", held-out NDCG@10 {ndcg:.4f} with the rating model" if isinstance(ndcg, float) else ""
    best = ranker.get("validation", {}).get(f"{ranker.get('l2', 0):g}")
    chosen = f" (validation NDCG@10 {best:.4f})" if isinstance(best, float) else ""
    return (
        f"ranker:          {ranker.get('kind', '?')} rank {ranker.get('rank', '?')}, L2 {ranker.get('l2', 0):g}"
        f"{chosen}, fitted on {ranker.get('fitted_on', '?')}{heldout}"
    )


def format_ranking(recommender: Recommender, ranked: Ranked, heading: str) -> str:
    """A plain-text table of a bias ranking."""
    lines = [heading]
    for idx, bias in zip(ranked.movie_index, ranked.scores, strict=True):
        lines.append(
            f"  {bias:+.3f}  {int(recommender.n_ratings[idx]):5d} ratings  {recommender.titles[idx]}"
        )
    return "\n".join(lines)


def bias_report(recommender: Recommender, limit: int = 15, most_rated: int = 2000) -> str:
    """Lowest and highest learned movie biases among the most-rated movies."""
    low = recommender.bias_ranking("asc", limit, most_rated)
    high = recommender.bias_ranking("desc", limit, most_rated)
    return "\n\n".join(
        [
            format_ranking(
                recommender, low, f"{limit} lowest movie biases among the {most_rated} most-rated:"
            ),
            format_ranking(
                recommender, high, f"{limit} highest movie biases among the {most_rated} most-rated:"
            ),
        ]
    )


# Longest movie title on the bias chart's axis; longer ones are shortened by `short_title`.
TITLE_WIDTH = 40
_YEAR = re.compile(r"\s*\(\d{4}(?:[-–]\d{0,4})?\)\s*$")


def short_title(title: str, width: int = TITLE_WIDTH) -> str:
    """`title` in at most `width` characters: cut with an ellipsis before the year, which is kept."""
    if len(title) <= width:
        return title
    match = _YEAR.search(title)
    year = f" {match.group().strip()}" if match else ""
    name = title[: match.start()] if match else title
    keep = max(width - len(year) - 1, 1)
    return f"{name[:keep].rstrip()}…{year}"


def figure(recommender: Recommender, manifest: Manifest, limit: int = 15, most_rated: int = 2000) -> Figure:
    """Learning curves (train/validation RMSE per epoch, the chosen epoch marked) and, for bias models, the
    bias ranking."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = getattr(manifest, "history", None) or {}
    has_bias = recommender.scorer.has_bias
    fig, axes = plt.subplots(1, 2 if has_bias else 1, figsize=(14 if has_bias else 7, 6), squeeze=False)
    ax = axes[0][0]
    longest = 0
    for key, label in (("rmse", "train RMSE"), ("val_rmse", "validation RMSE")):
        if key in history:
            longest = max(longest, len(history[key]))
            ax.plot(range(1, len(history[key]) + 1), history[key], marker="o", label=label)
    chosen = manifest.metrics.get("epochs")
    if isinstance(chosen, int) and 1 <= chosen <= longest:
        ax.axvline(chosen, color="gray", linestyle="--", label=f"chosen epoch ({chosen})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("RMSE")
    ax.set_title(
        f"{manifest.model_kind}: learning curves (held-out RMSE {manifest.metrics.get('rmse', float('nan')):.4f})"
    )
    if longest:
        ax.legend()
    if has_bias:
        low = recommender.bias_ranking("asc", limit, most_rated)
        high = recommender.bias_ranking("desc", limit, most_rated)
        idx = list(low.movie_index) + list(high.movie_index)[::-1]
        values = list(low.scores) + list(high.scores)[::-1]
        ax2 = axes[0][1]
        ax2.barh(
            range(len(idx)), values, color=["tab:red"] * len(low.scores) + ["tab:green"] * len(high.scores)
        )
        ax2.set_yticks(range(len(idx)), [short_title(recommender.titles[i]) for i in idx], fontsize=7)
        ax2.set_xlabel("learned movie bias (stars above or below the average rating)")
        ax2.set_title(f"movie bias, lowest and highest among the {most_rated} most-rated")
    fig.tight_layout()
    return fig


def plot(
    recommender: Recommender, manifest: Manifest, path: Path, limit: int = 15, most_rated: int = 2000
) -> None:
    """Write `figure` to `path` (format from its suffix), creating missing parent directories.

    Raises:
        MovieRecError: The file cannot be written (a parent that is a file, no permission, unknown format).
    """
    import matplotlib.pyplot as plt

    fig = figure(recommender, manifest, limit, most_rated)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    except (OSError, ValueError) as error:
        raise MovieRecError(f"cannot write the plot to {path}: {error}") from error
    finally:
        plt.close(fig)
