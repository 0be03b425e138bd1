"""Train a trip-duration model on one month of NYC green-taxi trips; validate it on the next.

Run it with `python orchestrate.py`: it prints the validation RMSE (minutes).
"""

from datetime import datetime, timezone  # [06:]

import pandas as pd
from prefect import flow, task  # [02:]
from prefect.artifacts import create_markdown_artifact, create_table_artifact  # [06:]
from prefect.cache_policies import NO_CACHE  # [02:]

from course_lib.ml import data, features, training


@task(name="Read a month of trips", task_run_name="read-{month}", retries=2, retry_delay_seconds=[1, 5],  # [02:]
      cache_policy=NO_CACHE)  # [02:]
def read_data(month: str, source: str = "auto", data_dir: str | None = None) -> pd.DataFrame:
    """One month of trips ("2023-01"), the ones of 1 to 60 minutes."""
    return features.prepare_trips(data.load_month(month, source=source, data_dir=data_dir))


@task(name="Build features", cache_policy=NO_CACHE)  # [02:]
def add_features(df_train: pd.DataFrame, df_val: pd.DataFrame, mode: str = "fast"):
    """Features fitted on the training month: X_train, X_val, y_train, y_val."""
    X_train, X_val, y_train, y_val, _preprocessor = training.build_features(df_train, df_val, mode=mode)
    return X_train, X_val, y_train, y_val


@task(name="Train xgboost", log_prints=True, cache_policy=NO_CACHE)  # [02:]
def train_best_model(X_train, X_val, y_train, y_val, mode: str = "fast", num_boost_round: int | None = None,
                     params: dict | None = None) -> float:
    """Train xgboost (early stopping on the validation month); return the validation RMSE."""
    _booster, rmse = training.train_booster(X_train, y_train, X_val, y_val, mode=mode,
                                            num_boost_round=num_boost_round, params=params)
    print(f"validation RMSE: {rmse:.5f} minutes")
    return rmse


@task(name="Publish the report", cache_policy=NO_CACHE)  # [06:]
def publish_report(train_month: str, val_month: str, n_train: int, n_val: int, rmse: float) -> None:  # [06:]
    """The run's RMSE report (a markdown artifact) and its trip counts (a table artifact)."""  # [06:]
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")  # [06:]
    create_markdown_artifact(  # [06:]
        key="duration-model-report",  # [06:]
        markdown=(f"# RMSE report\n\nTrip-duration model trained on {train_month}, validated on {val_month}.\n\n"  # [06:]
                  f"| Date | Validation RMSE (minutes) |\n|:---|---:|\n| {today} | {rmse:.5f} |\n"),  # [06:]
        description="Validation RMSE of the trip-duration model",  # [06:]
    )  # [06:]
    create_table_artifact(  # [06:]
        key="duration-model-data",  # [06:]
        table=[{"month": train_month, "role": "training", "trips": n_train},  # [06:]
               {"month": val_month, "role": "validation", "trips": n_val}],  # [06:]
        description="Trips each month contributed",  # [06:]
    )  # [06:]


# persist_result: a run executed by a worker in another process still hands its RMSE back.  # [02:]
@flow(persist_result=True, log_prints=True)  # [02:]
def main_flow(train_month: str = "2023-01", val_month: str = "2023-02", source: str = "auto",
              mode: str = "fast", num_boost_round: int | None = None) -> float:
    """The pipeline: read two months, build the features, train; return the validation RMSE."""
    df_train = read_data(train_month, source=source)
    df_val = read_data(val_month, source=source)
    X_train, X_val, y_train, y_val = add_features(df_train, df_val, mode=mode)
    rmse = train_best_model(X_train, X_val, y_train, y_val, mode=mode, num_boost_round=num_boost_round)
    publish_report(train_month, val_month, len(df_train), len(df_val), rmse)  # [06:]
    return rmse


if __name__ == "__main__":
    main_flow()
