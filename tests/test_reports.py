"""The artifacts of the training flow (course_lib.pipeline.reports), written to and read back
from the session's real Prefect server. The pure functions (check_key, report_markdown) are
tested without a server in test_reports_text.py."""

import json
from uuid import UUID

import numpy as np
import pytest
import xgboost
from prefect import flow

from course_lib.pipeline import reports
from course_lib.tooling.runs import api_client
from tests.test_reports_text import report_markdown_example


def read_artifact(artifact_id):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterId

    with api_client() as client:
        (found,) = client.read_artifacts(artifact_filter=ArtifactFilter(id=ArtifactFilterId(any_=[artifact_id])))
    return found


def latest_artifact(key):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with api_client() as client:
        (found,) = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                         sort=ArtifactSort.CREATED_DESC, limit=1)
    return found


class StopAfter(xgboost.callback.TrainingCallback):
    """Ends training after ``rounds`` rounds, as early stopping does."""

    def __init__(self, rounds):
        self.rounds = rounds

    def after_iteration(self, model, epoch, evals_log) -> bool:
        return epoch + 1 >= self.rounds


@pytest.fixture
def server_seen(prefect_server, monkeypatch):
    """The progress value the SERVER holds right after each update the callback makes."""
    import prefect.artifacts

    real_update = prefect.artifacts.update_progress_artifact
    seen = []

    def update_and_read_back(artifact_id, progress, **kwargs):
        result = real_update(artifact_id, progress=progress, **kwargs)
        seen.append(read_artifact(artifact_id).data)
        return result

    monkeypatch.setattr(prefect.artifacts, "update_progress_artifact", update_and_read_back)
    return seen


def train_with_progress(rounds: int, every: int, stop_after: int | None = None):
    """Train a small booster inside a flow with the course's ProgressCallback; (callback, rounds trained, run id)."""

    @flow
    def train_small_model():
        from prefect.runtime import flow_run

        rng = np.random.default_rng(0)
        X = rng.normal(size=(300, 3))
        y = X @ np.array([1.0, 2.0, 3.0]) + rng.normal(scale=0.1, size=300)
        progress = reports.ProgressCallback(rounds, every=every)
        callbacks = [progress] + ([StopAfter(stop_after)] if stop_after else [])
        booster = xgboost.train({"nthread": 1, "max_depth": 2}, xgboost.DMatrix(X, label=y),
                                num_boost_round=rounds, callbacks=callbacks)
        return progress, booster.num_boosted_rounds(), UUID(flow_run.id)

    return train_small_model()


def test_progress_is_written_once_per_reporting_step_and_ends_at_100(server_seen):
    progress, trained, flow_run_id = train_with_progress(rounds=20, every=5)
    assert trained == 20
    assert progress.values == [25.0, 50.0, 75.0, 100.0]
    assert server_seen == progress.values  # each value reached the server, in order
    artifact = read_artifact(progress.artifact_id)
    assert (artifact.type, artifact.data, artifact.flow_run_id) == ("progress", 100.0, flow_run_id)
    assert reports.progress_written(progress.artifact_id) == progress.values


def test_progress_steps_when_the_rounds_are_not_a_multiple_of_the_step(server_seen):
    progress, trained, _ = train_with_progress(rounds=12, every=5)
    assert trained == 12
    assert progress.values == pytest.approx([100 * 5 / 12, 100 * 10 / 12, 100.0])
    assert server_seen == pytest.approx(progress.values)


def test_training_that_stops_early_still_ends_at_100(server_seen):
    progress, trained, _ = train_with_progress(rounds=50, every=5, stop_after=7)
    assert trained == 7
    assert progress.values == [10.0, 100.0]  # round 5 of 50, then the end of training
    assert server_seen == progress.values


def test_progress_written_names_an_unknown_artifact():
    with pytest.raises(KeyError, match="no ProgressCallback of this process"):
        reports.progress_written("00000000-0000-0000-0000-000000000000")


def test_prefect_refuses_the_keys_check_key_refuses(prefect_server):
    """check_key anticipates Prefect's own rule: Prefect refuses what check_key refuses."""
    from prefect.artifacts import create_markdown_artifact
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="lowercase letters, numbers, and dashes"):
        create_markdown_artifact(markdown="x", key="Duration_Model_Report")


def test_report_is_a_markdown_table_read_back_from_the_server(prefect_server):
    markdown = report_markdown_example()  # its text is checked without a server in test_reports_text.py

    @flow
    def publish():
        reports.publish_report(markdown, key="test-reports-report")

    publish()
    artifact = latest_artifact("test-reports-report")
    assert (artifact.type, artifact.data) == ("markdown", markdown)
    assert artifact.flow_run_id is not None


def test_rmse_history_is_a_table_read_back_from_the_server(prefect_server):
    rows = [{"run": "b", "rmse": 4.5}, {"run": "a", "rmse": 5.25}]

    @flow
    def publish():
        reports.publish_rmse_history(rows, key="test-reports-rmse-history")

    publish()
    artifact = latest_artifact("test-reports-rmse-history")
    assert artifact.type == "table" and json.loads(artifact.data) == rows
