"""``medshare fl run``'s plot: test accuracy and the hospitals' published AUROC of each committed model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from offchain.rounds.run_results import RunResult


def plot_accuracy(result: RunResult, path: Path) -> Path:
    """A PNG of test accuracy by round."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 4))
    scored = [entry for entry in result.rounds if entry.test_accuracy is not None]
    axes.plot([entry.round for entry in scored], [entry.test_accuracy for entry in scored], marker="o",
              label="test accuracy (held-out split)")
    _plot_published_auroc(axes, result)
    axes.set_xlabel("round")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_ylabel("score")
    axes.set_title(f"study {result.study}: committed models by round")
    axes.set_ylim(0, 1)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    pyplot.close(figure)
    return path


def _plot_published_auroc(axes: Any, result: RunResult) -> None:
    """The AUROC the hospitals published on their validation splits: weighted, and each hospital's."""
    scored = [entry for entry in result.rounds if entry.metrics is not None]
    weighted = [(entry.round, (entry.metrics["weighted"] or {}).get("auroc")) for entry in scored]
    weighted = [(number, value) for number, value in weighted if value is not None]
    if weighted:
        axes.plot(*zip(*weighted), marker="s", linewidth=2, label="AUROC, weighted (validation splits)")
    hospitals = sorted({name for entry in scored for name in entry.metrics["hospitals"]})
    for name in hospitals:
        points = [(entry.round, entry.metrics["hospitals"][name].get("auroc")) for entry in scored
                  if name in entry.metrics["hospitals"]]
        points = [(number, value) for number, value in points if value is not None]
        if points:
            axes.plot(*zip(*points), linestyle=":", alpha=0.6, label=f"AUROC, {name}")
