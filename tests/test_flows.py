"""The pipeline as a Prefect flow, run against the session's real Prefect server."""

import os
import textwrap

import nbformat
import papermill
import pytest

from course_lib.ml import data, training
from course_lib.pipeline import flows, tracking
from course_lib.tooling import runs
from course_lib import services


@pytest.fixture(scope="module")
def flow_state(prefect_server):
    return flows.main_flow("2023-01", "2023-02", source="synthetic", num_boost_round=5, return_state=True)


def test_flow_returns_rmse_recorded_by_server(flow_state, prefect_server):
    rmse = flow_state.result()
    # the flow computes exactly what the plain pipeline computes
    assert rmse == training.train_months("2023-01", "2023-02", source="synthetic", num_boost_round=5).rmse
    summary = runs.flow_run_summary(flow_state.state_details.flow_run_id)
    assert summary["state"] == "Completed" and summary["flow"] == "main-flow"
    assert summary["parameters"]["source"] == "synthetic"
    tasks = runs.task_runs_table(flow_state.state_details.flow_run_id)
    # task_run_name templates filled from each call's arguments
    assert sorted(tasks["task run"]) == [
        "features-fast", "read-2023-01", "read-2023-02", "report-duration-model-report", "train-fast"]
    assert (tasks["state"] == "Completed").all()


def test_mlflow_run_matches_flow_result(flow_state):
    rmse = flow_state.result()
    mlflow_run = tracking.run_for_flow_run(flow_state.state_details.flow_run_id)
    assert mlflow_run is not None, "the flow's MLflow run is not tagged with its flow run id"
    assert mlflow_run.data.metrics["rmse"] == pytest.approx(rmse, abs=1e-12)
    assert mlflow_run.data.params["tree_method"] == "hist"
    artifacts = {item.path for item in mlflow_client().list_artifacts(mlflow_run.info.run_id)}
    assert "preprocessor" in artifacts
    # MLflow 3 records a model logged in a run as a LoggedModel linked to that run.
    models = mlflow_client().search_logged_models(experiment_ids=[mlflow_run.info.experiment_id],
                                                  filter_string=f"source_run_id = '{mlflow_run.info.run_id}'")
    assert [model.name for model in models] == ["models_mlflow"]


def test_mlflow_store_lives_in_the_working_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("COURSE_WORKDIR", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5001")
    assert tracking.tracking_uri() == "http://127.0.0.1:5001"


def mlflow_client():
    import mlflow

    return mlflow.MlflowClient(tracking_uri=tracking.tracking_uri())


def test_bad_input_is_not_retried(prefect_server):
    state = flows.main_flow("2023-13", "2023-02", source="synthetic", return_state=True)
    assert state.is_failed()
    with pytest.raises(data.DataError, match="1-12|1 and 12"):
        state.result()
    tasks = runs.task_runs_table(state.state_details.flow_run_id)
    failed = tasks[tasks["state"] == "Failed"]
    assert len(failed) >= 1 and (failed["attempts"] == 1).all(), tasks


def test_notebook_failing_midway_leaves_no_server(tmp_path, monkeypatch):
    """A lesson that starts a server and then fails: the kernel's exit still stops the server."""
    port = services.free_port()
    pid_file = tmp_path / "server.pid"
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("COURSE_PREFECT_PORT", str(port))
    monkeypatch.setenv("COURSE_WORKDIR", str(tmp_path / "work"))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(textwrap.dedent(f"""
        from course_lib import services
        import json
        server = services.start_server()
        cmdline = open(f"/proc/{{server.pid}}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
        json.dump({{"pid": server.pid, "running": server.running, "reused": server.reused,
                   "port_free": services.port_is_free({port}), "cmdline": cmdline}}, open({str(pid_file)!r}, "w"))
        raise RuntimeError("a lesson cell failed")
    """))])
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    source = tmp_path / "failing.ipynb"
    nbformat.write(notebook, source)
    with pytest.raises(papermill.PapermillExecutionError, match="a lesson cell failed"):
        papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"), progress_bar=False, kernel_name="python3")
    import json

    seen = json.loads(pid_file.read_text())
    # It was this lesson's own running server (not a reused one) while the cell ran...
    assert seen["running"] is True and seen["reused"] is False and seen["port_free"] is False, seen
    assert "prefect server start" in seen["cmdline"] and f"--port {port}" in seen["cmdline"], seen
    pid = seen["pid"]
    # ...and it is gone once the failed notebook's kernel has exited.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert services.port_is_free(port)


def test_flow_publishes_report_table_and_progress(flow_state):
    import json

    artifacts = runs.flow_run_artifacts(flow_state.state_details.flow_run_id)
    by_type = {kind: group for kind, group in artifacts.groupby("type")}
    assert sorted(artifacts["type"]) == ["markdown", "progress", "table"], artifacts[["key", "type"]]
    report = by_type["markdown"].iloc[0]
    assert report["key"] == "duration-model-report"
    text = report["data"]
    assert "| Validation RMSE (minutes) | " + f"{flow_state.result():.5f} |" in text
    assert "| Data source | synthetic |" in text and "\n    |" not in text  # a table, not a code block
    table = json.loads(by_type["table"].iloc[0]["data"])
    assert table[0]["rmse"] == pytest.approx(flow_state.result(), abs=1e-5)
    assert by_type["progress"].iloc[0]["data"] == 100.0


def test_invalid_report_key_fails_before_any_task(prefect_server):
    from course_lib.pipeline import reports

    with pytest.raises(ValueError, match="lowercase letters, digits and dashes.*'model-report'"):
        reports.check_key("Model_Report")
    state = flows.main_flow(source="synthetic", report_key="Model_Report", return_state=True)
    assert state.is_failed()
    assert runs.task_runs_table(state.state_details.flow_run_id).empty


def test_served_flow_runs_its_deployment_without_a_worker(prefect_server):
    from course_lib.tooling import deployments

    with services.ServedFlow("course_lib.pipeline.flows:main_flow", "test-served") as served:
        assert served.deployment_name == "main-flow/test-served"
        result = deployments.prefect_cli("deployment", "run", served.deployment_name, "--param", "source=synthetic",
                                         "--param", "num_boost_round=3", show=False)
        state = deployments.wait_for_flow_run(deployments.flow_run_id_from_output(result.stdout), late_after=60)
        pid = served.pid
    assert state == "Completed"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_served_flow_rejects_a_bad_path():
    with pytest.raises(services.ServiceError, match="module:flow_function"):
        services.ServedFlow("course_lib.pipeline.flows.main_flow", "x")
