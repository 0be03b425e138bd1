"""Checks of lesson 08 · Scale out: they run the learner's flows (their ``read_data``, their
``search.py``) and read the task runs back from the server: which ran, and when."""

from __future__ import annotations

import ast
import json
from uuid import UUID

from course_lib.tooling import project
from course_lib.tooling.checks import CatchUp, NotYet, Wrong, catch_up as _catch_up, exercise

LESSON = 8
# Exercise 08.2 runs the learner's grid_search on a small grid of its own, one thread per configuration.
CHECK_GRID = [{"max_depth": 3}, {"max_depth": 5}, {"max_depth": 7}]
ARTIFACT_KEY = "grid-search"


def task_runs_of(flow_run_id) -> list:
    """The task runs of one flow run, read from the server, in start order."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(str(flow_run_id))])))
    return sorted(runs, key=lambda run: (run.start_time is None, run.start_time))


def of_task(runs: list, function: str) -> list:
    """The runs of the task whose function is ``function`` (run names may be templated; keys are not)."""
    return [run for run in runs if run.task_key.startswith(f"{function}-")]


def overlapping_pairs(runs: list) -> int:
    """How many pairs of ``runs`` were running at the same moment (on the server's clock)."""
    timed = [run for run in runs if run.start_time and run.end_time]
    return sum(1 for index, first in enumerate(timed) for second in timed[index + 1:]
               if first.start_time < second.end_time and second.start_time < first.end_time)


def _is_flow(obj) -> bool:
    from prefect import Flow

    return isinstance(obj, Flow)


def _failure(state, what: str) -> NotYet:
    message = state.message or ""
    if "MappingLengthMismatch" in message or "different lengths" in message:
        return NotYet(f"{what} failed: {message} — .map() maps every iterable argument item by item, and a "
                      "DataFrame or a Series is iterable: wrap what every run gets whole in unmapped(...): "
                      "unmapped(X_train), unmapped(X_val), unmapped(y_train), unmapped(y_val).")
    if "artifact" in message.lower() and "key" in message.lower():
        return NotYet(f"{what} failed: {message} — artifact keys may hold only lowercase letters, digits and "
                      f"dashes: key={ARTIFACT_KEY!r}.")
    return NotYet(f"{what} ended {state.name}: {message}. Run it in a cell and read its error.")


@exercise("08.1", "Read both months at the same time", wrong=[
    Wrong(hint="one after the other", code='''@flow
def read_both(source: str = "synthetic"):
    df_train = read_data.submit("2023-01", source=source).result()
    df_val = read_data.submit("2023-02", source=source).result()
    return df_train, df_val
'''),
    Wrong(hint=".result()", change=("return future_train.result(), future_val.result()",
                                    "return future_train, future_val")),
])
def reads_concurrently(read_both, source: str = "synthetic") -> str:
    import pandas as pd

    if not _is_flow(read_both):
        raise NotYet(f"`read_both` is a {type(read_both).__name__}, not a flow: keep @flow above `def read_both`.")
    state = read_both(source=source, return_state=True)
    if not state.is_completed():
        raise _failure(state, "Your read_both")
    result = state.result(_sync=True)  # a notebook cell has a running event loop: ask for the value itself
    if not (isinstance(result, (tuple, list)) and len(result) == 2
            and all(isinstance(frame, pd.DataFrame) for frame in result)):
        kinds = ", ".join(type(item).__name__ for item in result) if isinstance(result, (tuple, list)) else \
            type(result).__name__
        raise NotYet(f"read_both returned ({kinds}), not two DataFrames: a future is a handle on a run, and a flow "
                     "that returns futures hands back their states. Return future_train.result(), "
                     "future_val.result().")
    reads = of_task(task_runs_of(state.state_details.flow_run_id), "read_data")
    if len(reads) != 2:
        raise NotYet(f"The server has {len(reads)} read_data task run(s) for your flow run, not 2: submit the task "
                     "once per month (read_data.fn is the plain function: it makes no task run).")
    if not overlapping_pairs(reads):
        first, second = reads
        gap = (second.start_time - first.end_time).total_seconds()
        raise NotYet(f"The two reads ran one after the other on the server (the second started {gap:.2f} s after "
                     "the first ended): .result() waits for its run. Submit both months first, then ask both "
                     "futures for their results.")
    first, second = reads
    overlap = (min(first.end_time, second.end_time) - max(first.start_time, second.start_time)).total_seconds()
    return f"The server shows both reads running at once (for {overlap:.2f} s), each in its own task run."


def _their_search():
    path = project.folder() / "search.py"
    if not path.is_file():
        raise NotYet(f"There is no {path}: run the lesson's first code cell, which adds it to your project.")
    try:
        return project.load_module("search")
    except Exception as error:  # noqa: BLE001 - the learner's file: its error is the hint
        raise NotYet(f"Importing your search.py fails: {type(error).__name__}: {error}. Fix the file and run this "
                     "check again.") from None


def _submits_trainings(path) -> bool:
    """Whether grid_search calls train_best_model.map(...) or .submit(...) (the source, as written)."""
    try:
        tree = ast.parse(path.read_text())
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "grid_search":
            return any(isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                       and call.func.attr in ("map", "submit") and isinstance(call.func.value, ast.Name)
                       and call.func.value.id == "train_best_model" for call in ast.walk(node))
    return False


def _published_table(flow_run_id):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[ARTIFACT_KEY]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    if not found:
        return None
    data = found[0].data
    return json.loads(data) if isinstance(data, str) else data


@exercise("08.2", "Your grid search, mapped", wrong=[
    Wrong(hint="one after the other", change=(
        "rmses = train_best_model.map(unmapped(X_train), unmapped(X_val), unmapped(y_train), unmapped(y_val),\n"
        "                                 num_boost_round=num_boost_round, params=grid).result()",
        "rmses = [train_best_model(X_train, X_val, y_train, y_val, num_boost_round=num_boost_round, params=config)\n"
        "             for config in grid]")),
    Wrong(hint="unmapped(X_train)", change=(
        "train_best_model.map(unmapped(X_train), unmapped(X_val), unmapped(y_train), unmapped(y_val),",
        "train_best_model.map(X_train, X_val, y_train, y_val,")),
    Wrong(hint="lowercase letters, digits and dashes", change=('key="grid-search"', 'key="grid_search"')),
])
def mapped_grid_search(source: str = "auto", num_boost_round: int | None = None) -> str:
    from prefect.task_runners import ThreadPoolTaskRunner

    module = _their_search()
    grid_search = getattr(module, "grid_search", None)
    if grid_search is None:
        raise NotYet("Your search.py has no `grid_search`: keep the function's name.")
    if not _is_flow(grid_search):
        raise NotYet("`grid_search` is a plain function: put @flow(log_prints=True) (from prefect) on the line "
                     "above `def grid_search`.")
    # One thread per configuration: trainings that are submitted together can all run at once.
    runner = ThreadPoolTaskRunner(max_workers=len(CHECK_GRID))
    state = grid_search.with_options(task_runner=runner)(grid=CHECK_GRID, source=source,
                                                         num_boost_round=num_boost_round, return_state=True)
    if not state.is_completed():
        raise _failure(state, "Your grid_search")
    rows = state.result(_sync=True)
    flow_run_id = state.state_details.flow_run_id
    runs = task_runs_of(flow_run_id)
    reads, trainings = of_task(runs, "read_data"), of_task(runs, "train_best_model")
    if len(reads) != 2:
        raise NotYet(f"The flow run has {len(reads)} read_data task run(s), not 2: submit read_data once per month "
                     "(read_data.submit(...); read_data.fn is the plain function: no task run).")
    if not of_task(runs, "add_features"):
        raise NotYet("The flow run has no add_features task run: call the task add_features(...) on the two "
                     "futures (add_features.fn is the plain function).")
    if len(trainings) != len(CHECK_GRID):
        raise NotYet(f"For a grid of {len(CHECK_GRID)} configurations the server shows {len(trainings)} "
                     "train_best_model task run(s): map the task over the grid, one run per configuration "
                     "(params=grid), the features unmapped.")
    if not overlapping_pairs(trainings) and not _submits_trainings(project.folder() / "search.py"):
        raise NotYet(f"The server shows your {len(trainings)} trainings one after the other, although "
                     f"{len(CHECK_GRID)} threads were free: a loop of calls waits for each training before it "
                     "starts the next. train_best_model.map(...) submits them all at once.")
    if not (isinstance(rows, list) and len(rows) == len(CHECK_GRID) and all(isinstance(row, dict) for row in rows)):
        raise NotYet(f"grid_search returned {type(rows).__name__}: return the rows, one dict per configuration "
                     "with its rmse (the .map(...) futures' .result() gives the RMSEs, in the grid's order).")
    depths = sorted(row.get("max_depth") for row in rows)
    if depths != sorted(config["max_depth"] for config in CHECK_GRID) or not all("rmse" in row for row in rows):
        raise NotYet(f"The rows {rows} do not match the grid {CHECK_GRID}: one row per configuration, the "
                     "configuration's parameters and its rmse.")
    rmses = [row["rmse"] for row in rows]
    if len(set(rmses)) == 1:
        raise NotYet("Every configuration gave the same RMSE: each training must get its own configuration, "
                     "params=grid mapped (not unmapped).")
    if rmses != sorted(rmses):
        raise NotYet("The rows are not sorted best first (lowest rmse first).")
    table = _published_table(flow_run_id)
    if table is None:
        raise NotYet(f"Your flow run published no artifact {ARTIFACT_KEY!r}: create_table_artifact(key="
                     f"{ARTIFACT_KEY!r}, table=rows) (from prefect.artifacts), inside the flow.")
    if [row.get("rmse") for row in table] != rmses:
        raise NotYet(f"The artifact {ARTIFACT_KEY!r} holds {table}, not the rows the flow returned: publish `rows`.")
    overlap = overlapping_pairs(trainings)
    return (f"{len(trainings)} trainings of your train_best_model on the server, {overlap} pair(s) of them running "
            f"at the same time; best {rows[0]}; the table artifact {ARTIFACT_KEY!r} holds the same rows.")


def catch_up(source: str = "auto", num_boost_round: int | None = None):
    """Stuck or skipped? Writes the course's search.py of lesson 08 if yours does not pass 08.2."""
    return _catch_up(LESSON, [CatchUp(mapped_grid_search, files=("search.py",))], source=source,
                     num_boost_round=num_boost_round)
