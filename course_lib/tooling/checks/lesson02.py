"""Checks of lesson 02 · Tasks and flows: they read the learner's flow objects and their own
``orchestrate.py``, run it against the course's Prefect server and read its runs back."""

from __future__ import annotations

import contextlib
import io

from course_lib.tooling import project
from course_lib.tooling.checks import CatchUp, NotYet, Wrong, catch_up as _catch_up, exercise, retry_delays

RMSE = 4.25
LESSON = 2

# What exercise 02.2 asks of the learner's orchestrate.py (the lesson's text says it in words).
TASK_NAMES = {"read_data": "Read a month of trips", "add_features": "Build features",
              "train_best_model": "Train xgboost"}
RUN_NAME = "read-{month}"
DELAYS = [1.0, 5.0]


def _is_flow(obj) -> bool:
    from prefect import Flow

    return isinstance(obj, Flow)


def _is_task(obj) -> bool:
    from prefect import Task

    return isinstance(obj, Task)


@exercise("02.1", "Log the RMSE with the run's logger", wrong=[
    Wrong(hint="print() only reaches", code="from prefect import flow\n\n\n@flow\ndef report_rmse(rmse: float) -> None:\n"
                                           "    print(f\"validation RMSE {rmse:.3f} min\")\n"),
    Wrong(hint="not the run's logger", change=("    logger = get_run_logger()\n",
                                               "    import logging\n    logger = logging.getLogger(\"taxi\")\n")),
    Wrong(hint="3 decimals", change=("{rmse:.3f}", "{rmse}")),
])
def logs_rmse(report_rmse) -> str:
    from course_lib.tooling.runs import flow_run_logs

    if not _is_flow(report_rmse):
        raise NotYet(f"`report_rmse` is a {type(report_rmse).__name__}, not a flow: keep `@flow` above "
                     "`def report_rmse` and run the cell again.")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        state = report_rmse(RMSE, return_state=True)
    if not state.is_completed():
        raise NotYet(f"report_rmse({RMSE}) ended {state.name}: {state.message}. Run it in a cell and read its error.")
    expected = f"{RMSE:.3f}"
    logs = flow_run_logs(state.state_details.flow_run_id)
    found = [line for line in logs if expected in line]
    if found:
        return f"The flow run's logs on the server hold your line: {found[0]!r}."
    near = [line for line in logs if "RMSE" in line and "Finished in state" not in line]
    if near:
        raise NotYet(f"The run logged {near[0]!r}, but the RMSE must read {expected} (3 decimals, as in "
                     "f\"{rmse:.3f}\").")
    if expected in printed.getvalue():
        raise NotYet("Your message was printed, but print() only reaches this cell's output, not the run's logs "
                     "on the server. Inside the flow get the run's logger, `logger = get_run_logger()` (from "
                     "prefect), and call `logger.info(message)`.")
    raise NotYet(f"report_rmse({RMSE}) ran, but no line of its run's logs on the server contains {expected!r}: "
                 "a logger from Python's `logging` module is not the run's logger. Use "
                 "`logger = get_run_logger()` (from prefect) inside the flow and `logger.info(message)`.")


def _their_pipeline():
    """The learner's orchestrate.py, imported afresh; a hint when it is missing or does not import."""
    path = project.folder() / "orchestrate.py"
    if not path.is_file():
        raise NotYet(f"There is no {path}: run the lesson's first code cell, which creates your project.")
    try:
        return project.load_module("orchestrate")
    except NameError as error:
        raise NotYet(f"Importing your orchestrate.py fails: NameError: {error}. A template such as "
                     f"task_run_name=\"{RUN_NAME}\" must be a plain string: with an f in front (an f-string) "
                     "Python fills {month} when the file is imported, where no `month` exists.") from None
    except Exception as error:  # noqa: BLE001 - the learner's file: its error is the hint
        raise NotYet(f"Importing your orchestrate.py fails: {type(error).__name__}: {error}. Fix the file and run "
                     "this check again.") from None


def _decorator_problems(module) -> list[str]:
    from prefect.cache_policies import NO_CACHE

    problems = []
    for name, wanted in TASK_NAMES.items():
        obj = getattr(module, name, None)
        if obj is None:
            problems.append(f"`{name}` is missing: keep the function names of the file")
            continue
        if not _is_task(obj):
            problems.append(f"`{name}` is a plain function: put `@task(...)` on the line above `def {name}`")
            continue
        if obj.name != wanted:
            problems.append(f"the task `{name}` is named {obj.name!r}: pass name={wanted!r}")
        if obj.cache_policy is not NO_CACHE:
            problems.append(f"the task `{name}` keeps Prefect's default cache_policy: the flow persists results, so "
                            "it would cache them; pass cache_policy=NO_CACHE (from prefect.cache_policies)")
    read = getattr(module, "read_data", None)
    if _is_task(read):
        if read.task_run_name != RUN_NAME:
            problems.append(f"read_data's runs are named from {read.task_run_name!r}: pass "
                            f"task_run_name=\"{RUN_NAME}\" (a plain string template)")
        if read.retries != len(DELAYS) or retry_delays(read) != DELAYS:
            problems.append(f"read_data retries {read.retries} time(s) with delays {retry_delays(read)} s: pass "
                            f"retries={len(DELAYS)} and retry_delay_seconds=[1, 5] (one delay per retry)")
    flow_obj = getattr(module, "main_flow", None)
    if not _is_flow(flow_obj):
        problems.append("`main_flow` is not a flow: put `@flow(...)` on the line above `def main_flow`")
    elif flow_obj.persist_result is not True:
        problems.append("main_flow does not persist its result: pass persist_result=True to @flow, so that a run "
                        "executed by a worker (lesson 04) still hands its RMSE back")
    return problems


def _task_run_names(flow_run_id) -> list[str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted(run.name for run in task_runs)


@exercise("02.2", "Make your pipeline a flow", wrong=[
    Wrong(hint="f-string", change=(f'task_run_name="{RUN_NAME}"', f'task_run_name=f"{RUN_NAME}"')),
    Wrong(hint="retry_delay_seconds=[1, 5]", change=("retry_delay_seconds=[1, 5]", "retry_delay_seconds=5")),
    Wrong(hint="persist_result=True", change=("@flow(persist_result=True, log_prints=True)", "@flow(log_prints=True)")),
    Wrong(hint="cache_policy=NO_CACHE", change=('@task(name="Build features", cache_policy=NO_CACHE)',
                                                '@task(name="Build features")')),
    Wrong(hint="no task run read-2023-01", change=("df_train = read_data(train_month", "df_train = read_data.fn(train_month")),
])
def decorated_pipeline(train_month: str = "2023-01", val_month: str = "2023-02", source: str = "auto",
                       num_boost_round: int | None = None) -> str:
    import tempfile

    from course_lib.ml import training
    from course_lib.tooling.runs import flow_run_logs

    module = _their_pipeline()
    problems = _decorator_problems(module)
    if problems:
        raise NotYet("Your orchestrate.py is not there yet: " + "; ".join(problems) + ".")
    state = module.main_flow(train_month, val_month, source=source, num_boost_round=num_boost_round,
                             return_state=True)
    if not state.is_completed():
        raise NotYet(f"Your main_flow ended {state.name}: {state.message}. Run `python orchestrate.py` in your "
                     "project folder (or call main_flow in a cell) and read its error.")
    rmse = state.result(_sync=True)  # a notebook cell has a running event loop: ask for the value itself
    with tempfile.TemporaryDirectory(prefix="check-02-") as models:
        plain = training.train_months(train_month, val_month, source=source, num_boost_round=num_boost_round,
                                      models_dir=models).rmse
    if rmse != plain:
        raise NotYet(f"Your flow returned {rmse!r}; the plain pipeline of lesson 01 gives {plain!r} on the same "
                     "months and data. The decorators must not change what the functions compute: keep their bodies.")
    flow_run_id = state.state_details.flow_run_id
    names = _task_run_names(flow_run_id)
    for month in (train_month, val_month):
        if f"read-{month}" not in names:
            raise NotYet(f"The flow run has no task run read-{month} (its task runs: {names}): main_flow must call "
                         "the task `read_data(...)` itself, once per month (`read_data.fn(...)` is the plain "
                         "function: no task run).")
    if not any("validation RMSE" in line for line in flow_run_logs(flow_run_id)):
        raise NotYet("The training task's print() line is not in the run's logs: give the task (or the flow) "
                     "log_prints=True.")
    return (f"Your main_flow ran on the server: task runs {names}, RMSE {rmse:.5f}, the same as the plain "
            "pipeline's. Orchestration changed how it runs, not what it computes.")


def catch_up(**lesson_parameters):
    """Stuck or skipped? Writes the course's orchestrate.py of lesson 02 if yours does not pass 02.2."""
    return _catch_up(LESSON, [CatchUp(decorated_pipeline, files=("orchestrate.py",))], **lesson_parameters)
