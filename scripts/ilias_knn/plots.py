"""Scale-curve plots (matplotlib, files only)."""

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from .atomic import atomic_output  # noqa: E402


def plot_curves(curves, path, title):
    """``curves``: dicts with ``label`` and ``table`` (a scale_curve DataFrame),
    and, where the reported search is another one (query expansion), its
    ``expanded`` (label, mAP) drawn as a point at the full database size."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for curve in curves:
        table = curve["table"]
        (line,) = ax.plot(table["database_images"], table["map"], marker="o", label=curve["label"])
        if curve.get("expanded"):
            label, value = curve["expanded"]
            ax.plot(
                [table["database_images"].iloc[-1]],
                [value],
                marker="*",
                markersize=12,
                linestyle="none",
                color=line.get_color(),
                label=label,
            )
    ax.set_xscale("log")
    ax.set_xlabel("database images (positives + distractors)")
    ax.set_ylabel("mAP@k (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
