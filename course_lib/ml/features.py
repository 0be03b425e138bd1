"""From raw TLC trips to model inputs: the 2023 course's features, kept exactly.

The 2023 ``orchestrate.py`` did three things before training:

1. ``read_data``: trip duration in minutes, keep trips of 1-60 minutes, cast the
   location IDs to strings;
2. ``add_features``: ``PU_DO = PULocationID + "_" + DOLocationID``;
3. a ``DictVectorizer`` over ``[PU_DO, trip_distance]`` records, fitted on the
   training month only.

:func:`prepare_trips` does steps 1-2. :class:`Preprocessor` does step 3 in two
modes that share one interface (fit on train, transform, save, load):

* ``"reference"``: the 2023 ``DictVectorizer`` -> a sparse one-hot matrix;
* ``"fast"``: the same two columns as a small DataFrame, ``PU_DO`` as a pandas
  category whose categories are the training month's (a pair seen only in the
  validation month becomes missing), for xgboost's native categorical support.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction import DictVectorizer

from course_lib import paths
from course_lib.ml.data import DataError

CATEGORICAL = ["PU_DO"]
NUMERICAL = ["trip_distance"]
TARGET = "duration"

#: How features are built and the model trained: ``"fast"`` (the course
#: default) or ``"reference"`` (the 2023 course, reproduced bit for bit).
MODES = ("fast", "reference")

_REQUIRED = ["lpep_pickup_datetime", "lpep_dropoff_datetime", "PULocationID", "DOLocationID", "trip_distance"]


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`MODES`, else raise ``ValueError``."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(map(repr, MODES))}")
    return mode


def prepare_trips(df: pd.DataFrame) -> pd.DataFrame:
    """The 2023 ``read_data`` + ``PU_DO``: durations, the 1-60 minute filter, string IDs.

    Returns a new frame (the input is not modified) with ``duration`` in minutes,
    only trips with ``1 <= duration <= 60``, ``PULocationID``/``DOLocationID``
    as strings and ``PU_DO = PULocationID + "_" + DOLocationID``.
    Raises :class:`~course_lib.ml.data.DataError` if the frame is empty, lacks a
    needed column, or no trip survives the filter.
    """
    if df is None or len(df) == 0:
        raise DataError("no trips to prepare: the frame is empty; check the file/month")
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise DataError(f"not a green-taxi trip table: missing column(s) {', '.join(missing)}")

    df = df.copy()
    df["lpep_dropoff_datetime"] = pd.to_datetime(df["lpep_dropoff_datetime"])
    df["lpep_pickup_datetime"] = pd.to_datetime(df["lpep_pickup_datetime"])
    # Same floats as the reference's ``.apply(lambda td: td.total_seconds() / 60)``.
    df[TARGET] = (df["lpep_dropoff_datetime"] - df["lpep_pickup_datetime"]).dt.total_seconds() / 60

    n_in = len(df)
    df = df[(df[TARGET] >= 1) & (df[TARGET] <= 60)].copy()
    if len(df) == 0:
        raise DataError(
            f"no trips left after keeping 1-60 minute durations: all {n_in} trips were "
            "shorter than 1 minute, longer than 60 or had no valid times; check the file/month"
        )

    categorical = ["PULocationID", "DOLocationID"]
    df[categorical] = df[categorical].astype(str)
    df["PU_DO"] = df["PULocationID"] + "_" + df["DOLocationID"]
    return df


class Preprocessor:
    """Turns prepared trips into model inputs; fitted on the training month only.

    >>> pre = Preprocessor("reference").fit(df_train)   # doctest: +SKIP
    >>> X_val = pre.transform(df_val)                    # doctest: +SKIP
    """

    def __init__(self, mode: str = "fast"):
        self.mode = check_mode(mode)
        self.dv: DictVectorizer | None = None  # reference mode
        self.categories: list[str] | None = None  # fast mode: training PU_DO values, sorted

    # -- fitting and transforming ------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return self.dv is not None or self.categories is not None

    def fit(self, df_train: pd.DataFrame) -> "Preprocessor":
        if self.mode == "reference":
            self.dv = DictVectorizer()
            self.dv.fit(_records(df_train))
        else:
            self.categories = sorted(pd.unique(df_train["PU_DO"].astype(str)))
        return self

    def transform(self, df: pd.DataFrame):
        """A scipy CSR matrix (reference) or a DataFrame ``[PU_DO, trip_distance]`` (fast)."""
        if not self.is_fitted:
            raise ValueError("Preprocessor is not fitted: call fit(df_train) first")
        if self.mode == "reference":
            return self.dv.transform(_records(df))
        # Codes from the training categories; a pair never seen in training gets -1 = missing.
        codes = pd.Index(self.categories).get_indexer(df["PU_DO"].astype(str))
        return pd.DataFrame(
            {
                "PU_DO": pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(self.categories)),
                "trip_distance": df["trip_distance"].to_numpy(dtype=np.float64),
            },
            index=df.index,
        )

    def fit_transform(self, df_train: pd.DataFrame):
        return self.fit(df_train).transform(df_train)

    @property
    def n_features(self) -> int:
        """Width of the feature space learnt from the training month."""
        if self.mode == "reference":
            return len(self.dv.feature_names_)
        return len(self.categories) + len(NUMERICAL)

    def __repr__(self) -> str:
        state = f"n_features={self.n_features}" if self.is_fitted else "not fitted"
        return f"Preprocessor(mode={self.mode!r}, {state})"

    # -- persistence --------------------------------------------------------------
    def save(self, path) -> Path:
        """Pickle to ``path`` (the 2023 course's ``models/preprocessor.b``), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return paths.atomic_write(path, pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))

    @staticmethod
    def load(path) -> "Preprocessor":
        with open(path, "rb") as f_in:
            obj = pickle.load(f_in)
        if not isinstance(obj, Preprocessor):
            raise ValueError(f"{path} does not hold a course_lib Preprocessor (got {type(obj).__name__})")
        return obj


def fit_preprocessor(df_train: pd.DataFrame, mode: str = "fast") -> Preprocessor:
    """A :class:`Preprocessor` fitted on the (prepared) training month only."""
    return Preprocessor(mode).fit(df_train)


def target(df: pd.DataFrame) -> np.ndarray:
    """The label: trip duration in minutes, as the reference's ``df["duration"].values``."""
    return df[TARGET].to_numpy()


def _records(df: pd.DataFrame) -> list[dict]:
    return df[CATEGORICAL + NUMERICAL].to_dict(orient="records")
