"""Checks of lesson 06 · Artifacts: they run the learner's own flow against the server and read the
artifacts its run published back, comparing them with the run's result and with the server's records."""

from __future__ import annotations

import ast
import json
import re
from datetime import datetime, timezone
from functools import lru_cache

from course_lib.tooling import project
from course_lib.tooling.checks import CatchUp, NotYet, Wrong, catch_up as _catch_up, exercise

LESSON = 6
# The contract later lessons read (09-10): these keys, and the report's row `| <date> | <rmse:.5f> |`
# under a header holding "Validation RMSE (minutes)".
REPORT_KEY = "duration-model-report"
DATA_KEY = "duration-model-data"
RMSE_HEADER = "Validation RMSE (minutes)"
TASK_RUNS_KEY = "duration-model-task-runs"
TASK_RUN_COLUMNS = ("task run", "state", "seconds")
_KEY = re.compile(r"^[a-z0-9-]+$")
_ROW = re.compile(r"^\|\s*(\d{4}-\d{2}-\d{2})\s*\|\s*([-+0-9.eE]+)\s*\|\s*$", re.M)
_ARTIFACT_CALLS = ("create_markdown_artifact", "create_table_artifact")


def _called(node: ast.AST, name: str) -> list[ast.Call]:
    return [call for call in ast.walk(node) if isinstance(call, ast.Call)
            and ((isinstance(call.func, ast.Name) and call.func.id == name)
                 or (isinstance(call.func, ast.Attribute) and call.func.attr == name))]


def _static_report(source: str) -> None:
    """What the text already tells, before a training: every artifact call, its key, and the call in the flow."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise NotYet(f"Your orchestrate.py is not valid Python: line {error.lineno}: {error.msg}.") from None
    for name in _ARTIFACT_CALLS:
        for call in _called(tree, name):
            key = next((kw.value for kw in call.keywords if kw.arg == "key"), None)
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and not _KEY.match(key.value):
                raise NotYet(f"Line {call.lineno}: the key {key.value!r} would fail the run (after the whole "
                             "training): Prefect accepts keys of lowercase letters, digits and dashes only.")
    if not _called(tree, "create_markdown_artifact"):
        raise NotYet(f"Your orchestrate.py never calls create_markdown_artifact (from prefect.artifacts): the report "
                     f"is a markdown artifact with key {REPORT_KEY!r}, published by a task publish_report.")
    if not _called(tree, "create_table_artifact"):
        raise NotYet(f"Your orchestrate.py publishes no table: add create_table_artifact(key={DATA_KEY!r}, "
                     "table=...) to publish_report, one row per month (month, role, trips).")
    flow_def = next((node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main_flow"),
                    None)
    publishes = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                 and any(_called(node, name) for name in _ARTIFACT_CALLS)}
    if flow_def is not None and publishes and not any(_called(flow_def, name) for name in publishes):
        name = sorted(publishes)[0]
        raise NotYet(f"main_flow never calls {name}: define it and call it at the end of the flow, "
                     f"`{name}(train_month, val_month, len(df_train), len(df_val), rmse)`, or nothing is published.")


def _their_orchestrate():
    path = project.folder() / "orchestrate.py"
    if not path.is_file():
        raise NotYet(f"There is no {path}: run the lesson's first code cell, which creates your project.")
    _static_report(path.read_text())
    try:
        return project.load_module("orchestrate")
    except Exception as error:  # noqa: BLE001 - the learner's file: its error is the hint
        raise NotYet(f"Importing your orchestrate.py fails: {type(error).__name__}: {error}. Fix the file and run "
                     "this check again.") from None


def _artifacts_of(flow_run_id) -> list:
    """The artifacts a flow run published (persisted results, type "result", left out)."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return [artifact for artifact in found if artifact.type not in (None, "result")]


def _rows(artifact) -> list[dict]:
    """A table artifact's rows, whether it was given a list of dicts or a dict of columns."""
    table = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    if isinstance(table, dict):
        columns = list(table)
        return [dict(zip(columns, values)) for values in zip(*table.values())]
    return [row for row in table if isinstance(row, dict)] if isinstance(table, list) else []


@lru_cache(maxsize=8)
def _trips(month: str, source: str) -> int:
    """Trips of 1-60 minutes in a month: what read_data hands the flow."""
    import contextlib
    import io

    from course_lib.ml import data, features

    with contextlib.redirect_stdout(io.StringIO()):
        return len(features.prepare_trips(data.load_month(month, source=source)))


def _check_report(markdown: str, rmse: float) -> str:
    if RMSE_HEADER not in markdown:
        raise NotYet(f"The report's table has no column {RMSE_HEADER!r}: its header row is "
                     f"`| Date | {RMSE_HEADER} |` (lesson 10 reads the RMSE under it).")
    if re.search(r"^ {4,}\S", markdown, re.M):
        raise NotYet("Lines of your report are indented by four spaces or more: markdown shows such lines as a code "
                     "block, so the table is plain text (the 2023 code's bug: an indented triple-quoted f-string). "
                     "Write the lines without indentation.")
    rows = _ROW.findall(markdown)
    if not rows:
        raise NotYet("The report has no row `| <date> | <RMSE> |` under its header, e.g. `| 2026-05-04 | 4.63876 |` "
                     "(a markdown table needs the line `|:---|---:|` between the header and the rows).")
    date, number = rows[-1]
    if number != f"{rmse:.5f}":
        try:
            value = float(number)
        except ValueError:
            value = None
        if value is not None and abs(value - rmse) < 0.01:
            raise NotYet(f"The report says {number}; your run's RMSE with 5 decimals is {rmse:.5f}: write it as "
                         "{rmse:.5f}.")
        raise NotYet(f"The report's row says {number}, but your run returned the RMSE {rmse:.5f}: the report must "
                     "carry the RMSE this run computed (publish_report's rmse argument).")
    today = datetime.now(timezone.utc).date()
    if abs((datetime.strptime(date, "%Y-%m-%d").date() - today).days) > 1:
        raise NotYet(f"The report's row is dated {date}; it should be the day of the run ({today}, "
                     "datetime.now(timezone.utc).strftime(\"%Y-%m-%d\")).")
    return number


_SOLUTION = project.solution_for("orchestrate.py", LESSON)
_INDENTED = _SOLUTION.replace('markdown=(f"# RMSE report\\n\\nTrip-duration model trained on {train_month}, '
                              'validated on {val_month}.\\n\\n"\n'
                              '                  f"| Date | Validation RMSE (minutes) |\\n|:---|---:|\\n| {today} | '
                              '{rmse:.5f} |\\n"),',
                              'markdown=f"""# RMSE report\n\n        Trip-duration model trained on {train_month}, '
                              'validated on {val_month}.\n\n        | Date | Validation RMSE (minutes) |\n'
                              '        |:---|---:|\n        | {today} | {rmse:.5f} |\n        """,')


@exercise("06.1", "Your flow publishes its report", wrong=[
    Wrong(hint="main_flow never calls publish_report",
          change=("    publish_report(train_month, val_month, len(df_train), len(df_val), rmse)\n", "")),
    Wrong(hint="lowercase letters, digits and dashes", change=('key="duration-model-report"',
                                                               'key="Duration_Model_Report"')),
    Wrong(hint="indented by four spaces", code=_INDENTED),
    Wrong(hint="publishes no table", change=("    create_table_artifact(\n", "    dict(\n")),
])
def report_published(train_month: str = "2023-01", val_month: str = "2023-02", source: str = "auto",
                     num_boost_round: int | None = None) -> str:
    from prefect import Flow, Task

    module = _their_orchestrate()
    main_flow = getattr(module, "main_flow", None)
    if not isinstance(main_flow, Flow):
        raise NotYet("`main_flow` is not a flow any more: keep `@flow(persist_result=True, log_prints=True)` above it.")
    publish = getattr(module, "publish_report", None)
    if publish is not None and not isinstance(publish, Task):
        raise NotYet("publish_report is a plain function: make it a task, `@task(name=\"Publish the report\", "
                     "cache_policy=NO_CACHE)`, so publishing is a step of its own in the run (with its state).")
    state = main_flow(train_month, val_month, source=source, num_boost_round=num_boost_round, return_state=True)
    if not state.is_completed():
        raise NotYet(f"Your main_flow ended {state.name}: {state.message} Run it in a cell and read its error.")
    rmse = state.result(_sync=True)
    flow_run_id = state.state_details.flow_run_id
    published = _artifacts_of(flow_run_id)
    report = next((a for a in published if a.key == REPORT_KEY), None)
    if report is None:
        kinds = [f"{a.type} {a.key!r}" for a in published] or ["none"]
        raise NotYet(f"Your run published no artifact with key {REPORT_KEY!r} (it published: {', '.join(kinds)}): "
                     f"create_markdown_artifact(key={REPORT_KEY!r}, markdown=...) in publish_report.")
    if report.type != "markdown":
        raise NotYet(f"{REPORT_KEY!r} is a {report.type} artifact: publish it with create_markdown_artifact.")
    shown = _check_report(report.data, rmse)
    data = next((a for a in published if a.key == DATA_KEY), None)
    if data is None or data.type != "table":
        raise NotYet(f"Your run published no table artifact with key {DATA_KEY!r}: create_table_artifact(key="
                     f"{DATA_KEY!r}, table=[...]) in publish_report, one row per month.")
    rows = _rows(data)
    expected = {train_month: ("training", _trips(train_month, source)), val_month: ("validation", _trips(val_month, source))}
    got = {str(row.get("month")): (row.get("role"), row.get("trips")) for row in rows}
    if got != expected:
        wanted = [{"month": month, "role": role, "trips": trips} for month, (role, trips) in expected.items()]
        raise NotYet(f"The table {DATA_KEY!r} holds {rows}; for this run it should hold {wanted}: one row per month "
                     "with its role and the trips it contributed (len(df_train), len(df_val)).")
    return (f"Your run published {REPORT_KEY!r} with the RMSE {shown}, the very value it returned, and "
            f"{DATA_KEY!r} with the trips of {train_month} and {val_month}.")


# -- exercise 06.2: a table of the task runs of your run ---------------------------------------------------
def _task_runs(flow_run_id) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


@exercise("06.2", "A table of your run's task runs", wrong=[
    Wrong(hint="only the task runs of flow run", change=(
        "client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))",
        "client.read_task_runs()")),
    Wrong(hint="lowercase letters, digits and dashes", change=('key="duration-model-task-runs"',
                                                               'key="duration_model_task_runs"')),
    Wrong(hint="no table artifact", change=("    create_table_artifact(", "    # create_table_artifact(")),
    Wrong(hint="seconds", change=('round(run.total_run_time.total_seconds(), 2)', "run.estimated_run_time.seconds")),
])
def task_runs_table(publish_task_runs=None, flow_run_id=None) -> str:
    from prefect import Flow

    if not isinstance(publish_task_runs, Flow):
        raise NotYet(f"`publish_task_runs` is a {type(publish_task_runs).__name__}, not a flow: keep `@flow` above "
                     "`def publish_task_runs` and run the cell again.")
    if flow_run_id is None:
        raise NotYet("`flow_run_id` is None: run the cells of the section \"Your flow's report\" first (they run "
                     "your flow and keep its flow run id).")
    expected = {run.name: run for run in _task_runs(flow_run_id)}
    state = publish_task_runs(str(flow_run_id), return_state=True)
    if not state.is_completed():
        message = state.message or ""
        if "lowercase" in message or "ValidationError" in message:
            raise NotYet(f"Your flow failed: {message} Prefect accepts keys of lowercase letters, digits and dashes "
                         f"only: {TASK_RUNS_KEY!r}.")
        raise NotYet(f"Your flow ended {state.name}: {message} Run it in a cell and read its error.")
    published = _artifacts_of(state.state_details.flow_run_id)
    tables = [a for a in published if a.type == "table"]
    if not tables:
        raise NotYet("Your flow's run published no table artifact: inside the flow, call "
                     f"create_table_artifact(key={TASK_RUNS_KEY!r}, table=rows).")
    table = next((a for a in tables if a.key == TASK_RUNS_KEY), None)
    if table is None:
        raise NotYet(f"Your table's key is {tables[0].key!r}: use {TASK_RUNS_KEY!r}, so that every version is "
                     "found under one key.")
    rows = _rows(table)
    missing = [column for column in TASK_RUN_COLUMNS if not rows or column not in rows[0]]
    if missing:
        raise NotYet(f"The table's rows are {rows[:2]}...: each row needs the columns {list(TASK_RUN_COLUMNS)} "
                     f"(missing: {missing}).")
    names = sorted(str(row["task run"]) for row in rows)
    if names != sorted(expected):
        extra = sorted(set(names) - set(expected))
        if extra:
            raise NotYet(f"Your table lists {len(rows)} task runs; flow run {flow_run_id} has {len(expected)} (e.g. "
                         f"{extra[0]!r} is another run's): list only the task runs of flow run flow_run_id, with "
                         "read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))).")
        raise NotYet(f"Your table lists the task runs {names}; flow run {flow_run_id} has {sorted(expected)}.")
    for row in rows:
        run = expected[str(row["task run"])]
        if row["state"] != run.state.name:
            raise NotYet(f"The row of {run.name} says state {row['state']!r}; the server says {run.state.name!r} "
                         "(run.state.name).")
        wanted = round(run.total_run_time.total_seconds(), 2)
        if not isinstance(row["seconds"], (int, float)) or abs(row["seconds"] - wanted) > 0.011:
            raise NotYet(f"The row of {run.name} says seconds {row['seconds']!r}; the task run ran "
                         f"{run.total_run_time.total_seconds():.3f} s (run.total_run_time.total_seconds(), "
                         "rounded to 2 decimals).")
    return (f"Your flow published {TASK_RUNS_KEY!r}: the {len(rows)} task runs of flow run {flow_run_id}, with "
            "their states and seconds, as the server records them.")


def _commit_and_push() -> str:
    if not project.is_repository():
        project.init_repository()
    commit = project.commit_and_push("Publish the RMSE report and the data table")
    return f"committed and pushed it (commit {commit}): your deployments clone it from now on"


def catch_up(**lesson_parameters):
    """Stuck or skipped? Writes the course's orchestrate.py of lesson 06 if yours does not pass 06.1, then
    commits and pushes it (your deployments clone the pushed code)."""
    return _catch_up(LESSON, [CatchUp(report_published, files=("orchestrate.py",), then=_commit_and_push)],
                     **lesson_parameters)
