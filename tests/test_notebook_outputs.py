"""The expected outputs recorded in tests/notebook_outputs.json (``runner record-outputs``), checked
against an independent source.

nbval compares a checked cell's output with its recording, and the recording is made by running
that same cell: a wrong figure would be recorded and then "confirmed". So every figure in the
recording is recomputed here another way, never through the code path the cell ran (the
synthetic generator's own frames, pandas alone for the features, xgboost called directly), with
the parameters the notebook suite injects (runner.QUICK_PARAMETERS). A new recorded cell that
prints a figure must get its check here: the last test fails until it does.
"""

from __future__ import annotations

import ast
import json
import re

import pandas as pd
import pytest

import numpy as np
import xgboost as xgb

from course_lib.ml import data
from course_lib.tooling import runner

RECORDED = json.loads(runner.EXPECTED_OUTPUTS.read_text())
CHECKED: set[tuple[str, str]] = set()  # (notebook, cell id) covered by a test below


def covers(notebook: str, cell: str):
    CHECKED.add((notebook, cell))
    return pytest.mark.parametrize("recorded", [(notebook, cell)], ids=[f"{notebook}:{cell}"])


def recorded_text(notebook: str, cell: str) -> str:
    """Everything the cell printed or returned, as text."""
    parts = []
    for output in RECORDED[notebook][cell]:
        text = output.get("text") or output.get("data", {}).get("text/plain", "")
        parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


def injected(notebook: str) -> dict:
    """The parameters the notebook suite runs the notebook with."""
    return runner.parameters_for(runner.NOTEBOOK_DIR / notebook, quick=True)


def kept_trips(frame: pd.DataFrame) -> int:
    """Trips of 1-60 minutes, counted with pandas alone (not course_lib.ml.features)."""
    minutes = (frame["lpep_dropoff_datetime"] - frame["lpep_pickup_datetime"]).dt.total_seconds() / 60
    return int(((minutes >= 1) & (minutes <= 60)).sum())


@pytest.fixture(scope="module")
def synthetic_months() -> dict[str, pd.DataFrame]:
    return {"2023-01": data.make_synthetic_month(2023, 1), "2023-02": data.make_synthetic_month(2023, 2)}


@covers("00_setup.ipynb", "c06")
def test_setup_month_row_counts(recorded, synthetic_months):
    assert injected(recorded[0])["source"] == "synthetic"
    text = recorded_text(*recorded)
    counts = {month: len(frame) for month, frame in synthetic_months.items()}
    for month, rows in counts.items():
        assert f"{month} green: synthetic, {rows:,} rows (requested with source='synthetic')" in text
    returned = ast.literal_eval(text.splitlines()[-1])
    assert returned == {month: ("synthetic", rows) for month, rows in counts.items()}


@covers("01_ml_pipeline.ipynb", "c06")
def test_ml_pipeline_kept_trips(recorded, synthetic_months):
    assert injected(recorded[0])["source"] == "synthetic"
    match = re.fullmatch(r"kept ([\d,]+) of ([\d,]+) training trips and ([\d,]+) of ([\d,]+) validation trips\n",
                         recorded_text(*recorded))
    figures = [int(group.replace(",", "")) for group in match.groups()]
    train, val = synthetic_months["2023-01"], synthetic_months["2023-02"]
    assert figures == [kept_trips(train), len(train), kept_trips(val), len(val)]


def fast_mode_features(frame: pd.DataFrame, categories: list[str] | None = None):
    """The fast mode's inputs built with pandas alone (not course_lib.ml.features): trips of 1-60
    minutes, PU_DO as a category of the training month's pairs, trip_distance; and the minutes."""
    minutes = (frame["lpep_dropoff_datetime"] - frame["lpep_pickup_datetime"]).dt.total_seconds() / 60
    kept = frame[(minutes >= 1) & (minutes <= 60)]
    pairs = kept["PULocationID"].astype(str) + "_" + kept["DOLocationID"].astype(str)
    categories = sorted(set(pairs)) if categories is None else categories
    known = pairs.where(pairs.isin(categories))  # a pair the training month lacks is missing
    inputs = pd.DataFrame({"PU_DO": pd.Categorical(known, categories=categories),
                           "trip_distance": kept["trip_distance"].astype("float64")})
    return inputs, minutes[(minutes >= 1) & (minutes <= 60)].to_numpy(), categories


@covers("01_ml_pipeline.ipynb", "c12")
def test_ml_pipeline_params_and_rmse(recorded, synthetic_months):
    params = injected(recorded[0])
    assert params["source"] == "synthetic"
    first, second = recorded_text(*recorded).splitlines()
    printed = ast.literal_eval(first)
    assert printed["tree_method"] == "hist" and printed["objective"] == "reg:squarederror"  # the fast mode's
    # The printed parameters, given to xgboost directly with the inputs built above from the
    # generator's months, for the injected number of rounds, give the printed RMSE.
    x_train, y_train, categories = fast_mode_features(synthetic_months["2023-01"])
    x_val, y_val, _ = fast_mode_features(synthetic_months["2023-02"], categories)
    booster = xgb.train(printed, xgb.DMatrix(x_train, label=y_train, enable_categorical=True),
                        num_boost_round=params["num_boost_round"])
    predicted = booster.predict(xgb.DMatrix(x_val, enable_categorical=True))
    rmse = float(np.sqrt(np.mean((predicted - y_val) ** 2)))
    assert second == f"fast mode, validation RMSE: {rmse:.3f} minutes"


def test_every_recorded_figure_is_checked_here():
    """A recorded cell that prints a number needs a check above against an independent source."""
    with_figures = {(notebook, cell) for notebook, cells in RECORDED.items() for cell in cells
                    if re.search(r"\d", recorded_text(notebook, cell))}
    unchecked = sorted(with_figures - CHECKED)
    assert not unchecked, f"recorded figures without an independent check in {__name__}: {unchecked}"
    assert CHECKED <= with_figures, f"checks of cells no longer recorded: {sorted(CHECKED - with_figures)}"
