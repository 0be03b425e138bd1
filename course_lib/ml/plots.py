"""The course's plots: one function per picture, each returning the matplotlib Figure."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _figure(width: float = 7.0, height: float = 3.6):
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), layout="constrained")


def duration_histogram(trips: dict[str, pd.DataFrame], column: str = "duration"):
    """Trip-duration distribution of each month (minutes), overlaid."""
    fig, ax = _figure()
    bins = np.arange(0, 61, 1)
    for label, df in trips.items():
        ax.hist(df[column], bins=bins, histtype="step", linewidth=1.6, density=True,
                label=f"{label} (median {df[column].median():.1f} min)")
    ax.set(xlabel="trip duration (minutes)", ylabel="share of trips", title="Trip durations, 1–60 min")
    ax.legend()
    return fig


def predicted_vs_actual(y_true, y_pred, rmse: float | None = None, sample: int = 5000, seed: int = 0):
    """Predicted against actual duration on the validation month, with the ideal diagonal."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) > sample:  # a readable scatter, not 60k overplotted points
        keep = np.random.default_rng(seed).choice(len(y_true), sample, replace=False)
        y_true, y_pred = y_true[keep], y_pred[keep]
    fig, ax = _figure(5.0, 5.0)
    ax.scatter(y_true, y_pred, s=4, alpha=0.3)
    ax.plot([0, 60], [0, 60], color="black", linewidth=1, label="perfect prediction")
    title = "Validation month: predicted vs actual"
    if rmse is not None:
        title += f" (RMSE {rmse:.2f} min)"
    ax.set(xlabel="actual duration (min)", ylabel="predicted duration (min)", xlim=(0, 60), ylim=(0, 60),
           title=title)
    ax.legend(loc="upper left")
    return fig
