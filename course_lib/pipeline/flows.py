"""The 2023 course's ``orchestrate.py``, on Prefect 3.9.

Same tasks, same flow, same MLflow tracking; what changed since Prefect 2.10, and why the
decorators below say what they say:

* Names: each task has a readable ``name=`` (what the UI lists) and a ``task_run_name=``
  template filled from its arguments, so a run shows ``read-2023-01`` instead of ``read_data-0``.
* Caching: in Prefect 3.9 a task is served from the cache only when its result is persisted.
  By default nothing is persisted, so a task runs every time it is called. ``main_flow`` sets
  ``persist_result=True`` (a run executed by a worker in another process still hands its RMSE
  back), and that turns persistence, and with it the default cache (key = task source + flow
  run id + inputs), on for its tasks too. Hashing DataFrames and sparse matrices is slow, the
  run id in the key means the cache never helps across runs, and training has side effects
  (MLflow runs, model files): so every pipeline task says ``cache_policy=NO_CACHE``.
* ``mean_squared_error(squared=False)`` is ``root_mean_squared_error`` (inside ``training``).
* Retries are for transient failures: a :class:`~course_lib.ml.data.DataError` (a bad month,
  a corrupt file) is not retried, so a learner sees the clear error at once.
"""

from __future__ import annotations

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from course_lib.ml import data, features, training
from course_lib.pipeline import reports, tracking


def retry_unless(*permanent: type[Exception]):
    """A ``retry_condition_fn`` that retries transient failures but not ``permanent`` ones.

    Bad input (a wrong month, a missing block) will not heal by retrying: the learner sees the
    clear error at once instead of after every retry delay.
    """

    def should_retry(task, task_run, state) -> bool:
        try:
            state.result()
        except permanent:
            return False
        except Exception:
            return True
        return True

    return should_retry


@task(name="Read a month of trips", task_run_name="read-{month_or_path}",
      retries=3, retry_delay_seconds=2, retry_condition_fn=retry_unless(data.DataError),
      cache_policy=NO_CACHE)
def read_data(month_or_path: str, source: str = "auto") -> pd.DataFrame:
    """Load one month ("2023-01" or a parquet path) and keep the 1-60 minute trips."""
    return features.prepare_trips(data.load_month(month_or_path, source=source))


@task(name="Build features", task_run_name="features-{mode}", cache_policy=NO_CACHE)
def add_features(df_train: pd.DataFrame, df_val: pd.DataFrame, mode: str = "fast"):
    """Fit the preprocessor on the training month; returns X_train, X_val, y_train, y_val, preprocessor."""
    return training.build_features(df_train, df_val, mode=mode)


@task(name="Train xgboost", task_run_name="train-{mode}", log_prints=True, cache_policy=NO_CACHE)
def train_best_model(X_train, X_val, y_train, y_val, preprocessor, mode: str = "fast",
                     num_boost_round: int | None = None, tags: dict | None = None) -> tuple[float, str]:
    """Train xgboost, log params, RMSE, preprocessor and model to MLflow; return (RMSE, MLflow run id).

    A progress artifact follows the boosting rounds while it trains.
    """
    import mlflow
    import xgboost

    tracking.setup_mlflow()
    with mlflow.start_run() as run:
        mlflow.set_tags({"mode": mode, **(tags or {})})
        mlflow.log_params(training.xgb_params(mode))
        progress = reports.ProgressCallback(num_boost_round or training.default_rounds(mode))
        booster, rmse = training.train_booster(X_train, y_train, X_val, y_val, mode=mode,
                                               num_boost_round=num_boost_round, callbacks=[progress])
        mlflow.log_metric("rmse", rmse)
        saved = training.save_model(booster, preprocessor)
        mlflow.log_artifact(str(saved["preprocessor"]), artifact_path="preprocessor")
        # Naming the requirement skips MLflow's slow inference of the environment (~5 s).
        mlflow.xgboost.log_model(booster, name="models_mlflow",
                                 pip_requirements=[f"xgboost-cpu=={xgboost.__version__}"])
        print(f"{mode} model: validation RMSE {rmse:.5f} (MLflow run {run.info.run_id})")
    return rmse, run.info.run_id


@task(name="Publish reports", task_run_name="report-{report_key}", cache_policy=NO_CACHE)
def publish_reports(train_path: str, val_path: str, source: str, mode: str, rmse: float, n_train: int,
                    n_val: int, mlflow_run_id: str, report_key: str = reports.REPORT_KEY) -> None:
    """The markdown report and the RMSE-history table, attached to this flow run as artifacts."""
    mlflow_run = tracking.read_run(mlflow_run_id)
    reports.publish_report(reports.report_markdown(
        train=train_path, val=val_path, source=source, mode=mode, rmse=rmse, n_train=n_train, n_val=n_val,
        mlflow_run_id=mlflow_run_id, mlflow_run_url=tracking.run_url(mlflow_run)), key=report_key)
    reports.publish_rmse_history(tracking.recent_runs())


def flow_run_tags() -> dict:
    """Tags that link an MLflow run back to the Prefect flow run that wrote it."""
    from prefect.runtime import flow_run

    return {"prefect_flow_run_id": str(flow_run.id), "prefect_flow_run_name": str(flow_run.name)}


# persist_result: a run executed by a worker in another process still hands its RMSE back
# to whoever asks for the run's result (stored under PREFECT_HOME/storage).
@flow(persist_result=True)
def main_flow(train_path: str = "2023-01", val_path: str = "2023-02", source: str = "auto",
              mode: str = "fast", num_boost_round: int | None = None,
              report_key: str = reports.REPORT_KEY) -> float:
    """The training pipeline: read two months, build features, train, report; return the validation RMSE.

    ``train_path``/``val_path`` take a month ("2023-01") or a parquet path, as the 2023 code did.
    """
    reports.check_key(report_key)  # a bad key fails here, before any data is read or model trained
    logger = get_run_logger()  # this flow run's logger: its lines are stored with the run, shown in the UI
    df_train = read_data(train_path, source=source)
    df_val = read_data(val_path, source=source)
    X_train, X_val, y_train, y_val, preprocessor = add_features(df_train, df_val, mode=mode)
    rmse, mlflow_run_id = train_best_model(X_train, X_val, y_train, y_val, preprocessor, mode=mode,
                                           num_boost_round=num_boost_round, tags=flow_run_tags())
    logger.info("trained on %s (%d trips), validated on %s (%d trips): RMSE %.5f min",
                train_path, len(df_train), val_path, len(df_val), rmse)
    publish_reports(train_path, val_path, training.source_of(df_train, df_val), mode, rmse, len(df_train),
                    len(df_val), mlflow_run_id, report_key=report_key)
    return rmse
