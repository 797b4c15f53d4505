"""Scale-curve plots (matplotlib, files only)."""

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from .atomic import atomic_output  # noqa: E402


def plot_curves(curves, path, title):
    """``curves``: {label: DataFrame from scale_curve}; log-scale x axis."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, df in curves.items():
        ax.plot(df["database_images"], df["map"], marker="o", label=label)
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
