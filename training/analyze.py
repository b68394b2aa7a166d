"""`python -m training analyze`: the notebook's bias analysis and learning curves, done on the artifact."""

from __future__ import annotations

from pathlib import Path

from movierec.artifacts import Manifest
from movierec.recommender import Ranked, Recommender


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


def plot(
    recommender: Recommender, manifest: Manifest, path: Path, limit: int = 15, most_rated: int = 2000
) -> None:
    """Learning curves (train/validation RMSE per epoch) and, for bias models, the bias ranking."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = getattr(manifest, "history", None) or {}
    has_bias = recommender.scorer.has_bias
    fig, axes = plt.subplots(1, 2 if has_bias else 1, figsize=(14 if has_bias else 7, 6), squeeze=False)
    ax = axes[0][0]
    for key, label in (("rmse", "train RMSE"), ("val_rmse", "validation RMSE")):
        if key in history:
            ax.plot(range(1, len(history[key]) + 1), history[key], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("RMSE")
    ax.set_title(
        f"{manifest.model_kind}: learning curves (held-out RMSE {manifest.metrics.get('rmse', float('nan')):.4f})"
    )
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
        ax2.set_yticks(range(len(idx)), [recommender.titles[i][:40] for i in idx], fontsize=7)
        ax2.set_title(f"movie bias, lowest and highest among the {most_rated} most-rated")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
