"""Checks for lesson 01 (the pipeline before orchestration)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from course_lib.ml import data
from course_lib.tooling.checks import NotYet, Wrong, exercise

# Trips on both edges of the rule and just outside it: a month of data may have none of them.
EDGES = [0.5, 1.0, 1.01, 59.99, 60.0, 60.01, 75.0]


def _month_with_edges() -> pd.DataFrame:
    trips = data.make_synthetic_month(2023, 1)
    trips = trips.assign(duration=(trips["lpep_dropoff_datetime"] - trips["lpep_pickup_datetime"]).dt.total_seconds() / 60)
    edges = trips.head(len(EDGES)).assign(duration=EDGES)
    return pd.concat([trips, edges], ignore_index=True)


@exercise("01.1", "Keep the plausible trips", wrong=[
    Wrong(hint="60 minutes themselves stay", change=('between(1, 60)', 'between(1, 60, inclusive="left")')),
    Wrong(hint="1 minute themselves stay", code='def plausible_trips(df):\n    return df[(df["duration"] > 1) & (df["duration"] <= 60)]\n'),
    Wrong(hint="filter the rows", code="def plausible_trips(df):\n    df['duration'].between(1, 60)\n    return df\n"),
])
def plausible_trips(plausible_trips_fn) -> str:
    if not callable(plausible_trips_fn):
        raise NotYet("`plausible_trips` must be a function that takes a DataFrame; define it with `def`.")
    trips = _month_with_edges()
    expected = trips[trips["duration"].between(1, 60)]
    got = plausible_trips_fn(trips.copy())
    if not isinstance(got, pd.DataFrame):
        raise NotYet(f"`plausible_trips` returned a {type(got).__name__}; return the filtered DataFrame.")
    if len(got) == len(trips) and len(expected) < len(trips):
        raise NotYet(f"All {len(trips):,} trips came back: filter the rows with "
                     "`df[\"duration\"].between(1, 60)`.")
    if got["duration"].min() < 1 or got["duration"].max() > 60:
        raise NotYet(f"Durations from {got['duration'].min():.2f} to {got['duration'].max():.2f} minutes remain: "
                     "keep only 1 to 60.")
    kept_edges = set(got["duration"]) & set(EDGES)
    for edge in (1.0, 60.0):
        if edge not in kept_edges:
            raise NotYet(f"A trip of exactly {edge:g} minutes was dropped: both ends are included "
                         f"(trips of {edge:g} minute{'s' if edge > 1 else ''} themselves stay). "
                         "`between(1, 60)` includes both.")
    if len(got) != len(expected):
        raise NotYet(f"You kept {len(got):,} trips, the rule keeps {len(expected):,}: keep exactly the trips of "
                     "1 to 60 minutes, both included.")
    return f"{len(got):,} of {len(trips):,} trips kept, as the pipeline does."


@exercise("01.2", "A baseline to beat", wrong=[
    Wrong(hint="MEAN", change=("np.median(y_train)", "np.mean(y_train)")),
    Wrong(hint="root", change=("float(np.sqrt(np.mean(", "float((np.mean(")),
])
def median_baseline(value, y_train, y_val) -> str:
    if value is None:
        raise NotYet("`median_baseline_rmse` is still None: compute sqrt(mean((y_val - median(y_train))**2)).")
    expected = float(np.sqrt(np.mean((np.asarray(y_val) - np.median(y_train)) ** 2)))
    mean_rmse = float(np.sqrt(np.mean((np.asarray(y_val) - np.mean(y_train)) ** 2)))
    if abs(float(value) - mean_rmse) < 1e-9 and abs(mean_rmse - expected) > 1e-9:
        raise NotYet("That is the RMSE of predicting the MEAN; use np.median(y_train).")
    if abs(float(value) - expected ** 2) < 1e-6:
        raise NotYet("That is the mean squared error: take its square root (np.sqrt) for the RMSE.")
    if abs(float(value) - expected) > 1e-6:
        raise NotYet(f"{float(value):.4f} is not the median baseline's RMSE: predict np.median(y_train) for "
                     "every trip of y_val, then take the root of the mean squared error.")
    return f"The median baseline scores RMSE {expected:.3f} minutes; xgboost must beat it."
