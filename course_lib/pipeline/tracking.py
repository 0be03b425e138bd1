"""MLflow tracking, as the 2023 course did it, with the store kept in the course's working folder.

The reference used ``sqlite:///mlflow.db`` in whatever folder the script ran from, and its
artifacts landed in ``./mlruns``; here both live under ``work/mlflow/`` so a learner can run
``mlflow ui --backend-store-uri <uri>`` from anywhere and see every run.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from course_lib import paths, settings

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


#: The MLflow UI's default port; ``COURSE_MLFLOW_PORT`` changes it (see :func:`ui_url`).
MLFLOW_UI_PORT = settings.FIELDS["mlflow_port"].default


def ui_url() -> str:
    """Where the course's MLflow UI is: the one ``make services`` runs now (whatever port it was
    given), else ``http://127.0.0.1:<COURSE_MLFLOW_PORT>``, where :func:`ui_command` starts it."""
    from course_lib.tooling import instructor

    return instructor.running_service("mlflow") or f"http://127.0.0.1:{settings.read('mlflow_port')}"


def run_url(run) -> str:
    """Where the course's MLflow UI (:func:`ui_url`) shows this run."""
    return f"{ui_url()}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"


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
    return f"mlflow ui --backend-store-uri '{tracking_uri()}' --port {settings.read('mlflow_port')}"


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
