"""Checks for lesson 01 (the pipeline before orchestration)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from course_lib.ml import data
from course_lib.tooling.checks import NotYet, exercise


@exercise("1.1", "Keep the plausible trips")
def plausible_trips(plausible_trips_fn) -> str:
    if not callable(plausible_trips_fn):
        raise NotYet("`plausible_trips` must be a function that takes a DataFrame; define it with `def`.")
    trips = data.make_synthetic_month(2023, 1)
    trips = trips.assign(duration=(trips["lpep_dropoff_datetime"] - trips["lpep_pickup_datetime"]).dt.total_seconds() / 60)
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
    if len(got) != len(expected):
        raise NotYet(f"You kept {len(got):,} trips, the rule keeps {len(expected):,}: both ends are included "
                     "(1 and 60 minutes themselves stay).")
    return f"{len(got):,} of {len(trips):,} trips kept, as the pipeline does."


@exercise("1.2", "A baseline to beat")
def median_baseline(value, y_train, y_val) -> str:
    if value is None:
        raise NotYet("`median_baseline_rmse` is still None: compute sqrt(mean((y_val - median(y_train))**2)).")
    expected = float(np.sqrt(np.mean((np.asarray(y_val) - np.median(y_train)) ** 2)))
    mean_rmse = float(np.sqrt(np.mean((np.asarray(y_val) - np.mean(y_train)) ** 2)))
    if abs(float(value) - mean_rmse) < 1e-9 and abs(mean_rmse - expected) > 1e-9:
        raise NotYet("That is the RMSE of predicting the MEAN; use np.median(y_train).")
    if abs(float(value) - expected) > 1e-6:
        raise NotYet(f"{float(value):.4f} is not the median baseline's RMSE: predict np.median(y_train) for "
                     "every trip of y_val, then take the root of the mean squared error.")
    return f"The median baseline scores RMSE {expected:.3f} minutes; xgboost must beat it."
