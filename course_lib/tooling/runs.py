"""Read flow runs and task runs back from the Prefect API, as tables a notebook can show.

Uses Prefect's synchronous client so the calls work the same in a notebook cell (where an
event loop is running) and in a script. Needs PREFECT_API_URL (see course_lib.services):
without it Prefect would quietly start a throwaway temporary server.
"""

from __future__ import annotations

import os
from uuid import UUID

import pandas as pd


def api_client():
    from prefect import get_client

    if not os.environ.get("PREFECT_API_URL"):
        raise RuntimeError("PREFECT_API_URL is not set: start the course's server first "
                           "(setup_course(server=True) or course_lib.services.start_server()).")
    return get_client(sync_client=True)


def _seconds(run) -> float | None:
    return round(run.total_run_time.total_seconds(), 2) if run.total_run_time is not None else None


def flow_run_summary(flow_run_id: UUID | str) -> dict:
    """Name, flow, state, parameters and duration of one flow run."""
    with api_client() as client:
        run = client.read_flow_run(UUID(str(flow_run_id)))
        flow = client.read_flow(run.flow_id)
    return {"flow": flow.name, "flow run": run.name, "state": run.state.name if run.state else None,
            "parameters": run.parameters, "seconds": _seconds(run), "id": str(run.id)}


def task_runs_table(flow_run_id: UUID | str) -> pd.DataFrame:
    """One row per task run of a flow run, in start order: name, state, attempts, seconds."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with api_client() as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(str(flow_run_id))])))
    rows = [{"task run": run.name, "state": run.state.name if run.state else None,
             "attempts": run.run_count, "seconds": _seconds(run), "started": run.start_time}
            for run in task_runs]
    table = pd.DataFrame(rows, columns=["task run", "state", "attempts", "seconds", "started"])
    return table.sort_values("started", kind="stable").reset_index(drop=True)


def flow_run_logs(flow_run_id: UUID | str, limit: int = 200, wait_seconds: float = 15) -> list[str]:
    """The flow run's log messages, oldest first.

    Logs reach the API in batches a couple of seconds after they are written, so this waits
    (up to ``wait_seconds``) for the run's closing "Finished in state" line.
    """
    import time

    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(str(flow_run_id))]))
    deadline = time.monotonic() + wait_seconds
    with api_client() as client:
        while True:
            logs = client.read_logs(log_filter=log_filter, limit=limit, sort=LogSort.TIMESTAMP_ASC)
            flow_finished = any(log.task_run_id is None and log.message.startswith("Finished in state")
                                for log in logs)
            if flow_finished or time.monotonic() > deadline:
                return [log.message for log in logs]
            time.sleep(0.5)


def flow_run_artifacts(flow_run_id: UUID | str) -> pd.DataFrame:
    """The artifacts a flow run created (markdown, table, progress): key, type, description, data."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with api_client() as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(str(flow_run_id))])))
    # Persisted results are stored as untyped "result" artifacts; they are not published output.
    rows = [{"key": artifact.key, "type": artifact.type, "description": artifact.description,
             "data": artifact.data, "created": artifact.created}
            for artifact in artifacts if artifact.type not in (None, "result")]
    table = pd.DataFrame(rows, columns=["key", "type", "description", "data", "created"])
    return table.sort_values("created", kind="stable").reset_index(drop=True)
