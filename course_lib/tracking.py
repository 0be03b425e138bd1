"""MLflow tracking, as the 2023 course did it, with the store kept in the course's working folder.

The reference used ``sqlite:///mlflow.db`` in whatever folder the script ran from, and its
artifacts landed in ``./mlruns``; here both live under ``work/mlflow/`` so a learner can run
``mlflow ui --backend-store-uri <uri>`` from anywhere and see every run.
"""

from __future__ import annotations

import os

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


def ui_command() -> str:
    """The shell command that opens the MLflow UI on the course store."""
    return f"mlflow ui --backend-store-uri '{tracking_uri()}' --port 5001"


def run_for_flow_run(flow_run_id, experiment: str = EXPERIMENT_NAME):
    """The MLflow run that a Prefect flow run logged (tagged ``prefect_flow_run_id``), or None."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri())
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.prefect_flow_run_id = '{flow_run_id}'")
    return runs[0] if runs else None
