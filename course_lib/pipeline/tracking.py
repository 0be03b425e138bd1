"""MLflow tracking, as the 2023 course did it, with the store kept in the course's working folder.

The reference used ``sqlite:///mlflow.db`` in whatever folder the script ran from, and its
artifacts landed in ``./mlruns``; here both live under ``work/mlflow/`` so a learner can run
``mlflow ui --backend-store-uri <uri>`` from anywhere and see every run.
"""

from __future__ import annotations

import contextlib
import functools
import os
from datetime import datetime, timezone

from course_lib import paths

EXPERIMENT_NAME = "nyc-taxi-experiment"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite store inside the working folder."""
    override = os.environ.get("MLFLOW_TRACKING_URI")
    if override:
        return override
    return f"sqlite:///{paths.subdir('mlflow') / 'mlflow.db'}"


def setup_mlflow(experiment: str = EXPERIMENT_NAME) -> str:
    """Point MLflow at the course store and select the experiment; returns its id.

    A new experiment gets an artifact folder beside the database, not ``./mlruns`` in the
    current directory (MLflow's default for a SQLite store).
    """
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        artifacts = paths.subdir("mlflow") / "artifacts"
        experiment_id = mlflow.create_experiment(experiment, artifact_location=artifacts.as_uri())
    else:
        experiment_id = found.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


MLFLOW_UI_PORT = 5001


def run_url(run) -> str:
    """Where ``mlflow ui`` (started with :func:`ui_command`) shows this run."""
    return f"http://127.0.0.1:{MLFLOW_UI_PORT}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"


def recent_runs(limit: int = 10, experiment: str = EXPERIMENT_NAME) -> list[dict]:
    """The latest runs of the experiment, newest first: when, mode, RMSE and the Prefect flow run."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri())
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = client.search_runs([found.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit)
    return [{"started (UTC)": datetime.fromtimestamp(run.info.start_time / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
             "mode": run.data.tags.get("mode", ""), "rmse": round(run.data.metrics.get("rmse", float("nan")), 5),
             "prefect flow run": run.data.tags.get("prefect_flow_run_name", ""), "mlflow run": run.info.run_id}
            for run in runs]


def ui_command() -> str:
    """The shell command that opens the MLflow UI on the course store."""
    return f"mlflow ui --backend-store-uri '{tracking_uri()}' --port {MLFLOW_UI_PORT}"


def read_run(run_id: str):
    """The MLflow run with this id (params, metrics, tags)."""
    import mlflow

    return mlflow.MlflowClient(tracking_uri=tracking_uri()).get_run(run_id)


def run_for_flow_run(flow_run_id, experiment: str = EXPERIMENT_NAME):
    """The MLflow run that a Prefect flow run logged (tagged ``prefect_flow_run_id``), or None."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri())
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.prefect_flow_run_id = '{flow_run_id}'")
    return runs[0] if runs else None


@contextlib.contextmanager
def parent_run(name: str):
    """An active MLflow run for a group of runs (a search); yields {"run_id", "experiment_id"}
    for :func:`log_child_run`, which may run in other threads, processes or machines."""
    import mlflow

    setup_mlflow()
    with mlflow.start_run(run_name=name) as run:
        yield {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id}


def child_runs(parent_run_id: str) -> list:
    """The MLflow runs logged under ``parent_run_id``."""
    client = _client(tracking_uri())
    parent = client.get_run(parent_run_id)
    return client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=1000)


def log_child_run(parent: dict, name: str, metrics: dict, params: dict) -> str:
    """Log one finished MLflow run under ``parent`` ({"run_id", "experiment_id"}); returns its id.

    The client API (not ``mlflow.start_run``) so that it works the same in a thread, a process or
    a Dask worker that has no active run.
    """
    import time

    from mlflow.entities import Metric, Param

    client = _client(tracking_uri())
    run = client.create_run(parent["experiment_id"], run_name=name,
                            tags={"mlflow.parentRunId": parent["run_id"]})
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
                     params=[Param(key, str(value)) for key, value in params.items()])
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@functools.lru_cache(maxsize=None)
def _client(uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)
