"""Checks of lesson 06 (artifacts): they read the learner's artifacts back from the Prefect server."""

from __future__ import annotations

import json

from course_lib.tooling.checks import NotYet, exercise
from course_lib.tooling.runs import api_client

RMSE_KEY = "taxi-rmse"
ROUNDS_KEY = "taxi-rmse-by-rounds"


def _latest_artifact(key: str):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with api_client() as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                      sort=ArtifactSort.CREATED_DESC, limit=1)
    return found[0] if found else None


def _last_run_of(flow_obj):
    """The newest flow run of the learner's flow (by the flow's name)."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    name = getattr(flow_obj, "name", None)
    if name is None:
        raise NotYet(f"Pass your flow object (the function decorated with @flow), not {flow_obj!r}.")
    with api_client() as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[name])),
                                     sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=1)
    if not runs:
        raise NotYet(f"The server has no run of your flow {name!r}: run the exercise cell (it calls the flow).")
    return runs[0]


def _artifact_of_last_run(flow_obj, key: str, kind: str, call: str):
    run = _last_run_of(flow_obj)
    artifact = _latest_artifact(key)
    if artifact is None:
        raise NotYet(f"The server has no artifact with key {key!r}. Inside your flow, call "
                     f"{call} with key={key!r}, then run the exercise cell again.")
    if artifact.flow_run_id != run.id:
        raise NotYet(f"The latest {key!r} artifact was not made by your last run of {flow_obj.name!r} "
                     f"(flow run {run.name}), but by an earlier run or outside a flow. Call {call} with "
                     f"key={key!r} inside the flow, before its return, and run the exercise cell again.")
    if artifact.type != kind:
        raise NotYet(f"The {key!r} artifact of your last run is a {artifact.type} artifact, not {kind}: "
                     f"use {call}.")
    return run, artifact


@exercise("06.1", "A markdown artifact carrying the RMSE")
def rmse_markdown(flow_obj, rmse) -> str:
    if not isinstance(rmse, float):
        raise NotYet(f"`rmse` should be the float your flow returned, got {rmse!r}: "
                     "keep `rmse = rmse_report(...)` at the end of the exercise cell.")
    run, artifact = _artifact_of_last_run(flow_obj, RMSE_KEY, "markdown", "create_markdown_artifact(markdown=...)")
    expected = f"RMSE: {rmse:.5f} minutes"
    if expected not in artifact.data:
        near = [text for text in (f"{rmse:.5f}", f"{rmse:.2f}", f"{rmse:.3f}", str(rmse)) if text in artifact.data]
        detail = (f"it holds the number as {near[0]!r}, but not the line asked for" if near
                  else "it does not hold the RMSE your flow returned")
        raise NotYet(f"The markdown of {RMSE_KEY!r} is {artifact.data[:120]!r}: {detail}. Write the line "
                     f"f\"RMSE: {{rmse:.5f}} minutes\" (here {expected!r}) into the markdown.")
    return f"Flow run {run.name} published {RMSE_KEY!r}: the markdown holds {expected!r}."


@exercise("06.2", "A table artifact: RMSE by number of boosting rounds")
def rounds_table(flow_obj, rows) -> str:
    if not isinstance(rows, list) or not rows:
        raise NotYet(f"`rows` should be the list of dicts your flow returned, got {rows!r}.")
    run, artifact = _artifact_of_last_run(flow_obj, ROUNDS_KEY, "table", "create_table_artifact(table=...)")
    table = json.loads(artifact.data)
    if isinstance(table, dict):  # a dict of columns
        columns = list(table)
        table = [dict(zip(columns, values)) for values in zip(*table.values())]
    if table != rows:
        raise NotYet(f"The table of {ROUNDS_KEY!r} is {table!r}, not the rows your flow returned ({rows!r}): "
                     "pass `table=rows` (the list of {'rounds': ..., 'rmse': ...} dicts).")
    if [row.get("rounds") for row in rows] != [5, 10, 20]:
        raise NotYet(f"The table should have one row per number of rounds 5, 10 and 20, in that order; "
                     f"it has rounds {[row.get('rounds') for row in rows]}.")
    return f"Flow run {run.name} published {ROUNDS_KEY!r}: {len(rows)} rows, rounds 5, 10, 20."
