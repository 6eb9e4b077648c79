"""The quality-time curve as a PNG: final score against full-head time relative to the paper preset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGET_SCORE_GAP = 0.005  # issue 6: the fast preset within 0.005 of paper's score


def plot_curve(rows: list[dict[str, Any]], document: dict[str, Any], path: Path) -> Path:
    """Scatter of (time vs paper, score) per configuration, presets highlighted; writes ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    for row in rows:
        if not row["time_vs_paper"]:  # no network evaluated (identity): a reference line
            axes.axhline(row["score"], color="grey", linestyle="--", linewidth=1)
            axes.annotate(f"{row['label']}: {row['score']:.3f}", (1, row["score"]), xycoords=("axes fraction", "data"),
                          xytext=(-4, 3), textcoords="offset points", ha="right", fontsize=7, color="grey")
            continue
        preset = row["label"] in ("paper", "fast", "cpu")
        axes.scatter(row["time_vs_paper"], row["score"], s=60 if preset else 25,
                     color="tab:red" if preset else "tab:blue", zorder=3)
        axes.annotate(row["label"], (row["time_vs_paper"], row["score"]), textcoords="offset points", xytext=(4, 4),
                      fontsize=7, fontweight="bold" if preset else "normal")
    paper = next((r for r in rows if r["label"] == "paper"), None)
    if paper is not None:
        axes.axhspan(paper["score"] - TARGET_SCORE_GAP, paper["score"] + TARGET_SCORE_GAP, color="tab:red", alpha=0.1,
                     label=f"paper score +- {TARGET_SCORE_GAP}")
        axes.legend(loc="lower right", fontsize=8)
    axes.axvline(1 / 20, color="grey", linestyle=":", linewidth=1)
    axes.text(1 / 20, axes.get_ylim()[0], " 1/20 of paper", fontsize=7, color="grey", va="bottom")
    axes.set_xscale("log")
    axes.set_xlabel("time per case relative to the paper preset (full 1 mm head, window counts)")
    axes.set_ylabel("challenge final score (mean over subjects and contrasts)")
    trained = "trained" if document.get("trained") else "UNTRAINED (random) networks"
    axes.set_title(f"Quality-time curve: {len(document['subject_seeds'])} held-out simulated subjects, "
                   f"{document.get('volume', '')}, {trained}", fontsize=8)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
