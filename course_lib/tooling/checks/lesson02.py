"""Checks of lesson 02 · Tasks and flows: they inspect the learner's task and flow objects, and
the runs those flows leave on the course's Prefect server."""

from __future__ import annotations

import re

from course_lib.tooling.checks import NotYet, exercise

TASK_NAME = "Fetch a month"
MONTHS = ["2023-01", "2023-02"]
RMSE = 4.25


def _is_task(obj) -> bool:
    from prefect import Task

    return isinstance(obj, Task)


def _is_flow(obj) -> bool:
    from prefect import Flow

    return isinstance(obj, Flow)


@exercise("02.1", "Name a task and give it retries")
def task_with_retries(fetch_month) -> str:
    if not _is_task(fetch_month):
        raise NotYet(f"`fetch_month` is a {type(fetch_month).__name__}, not a Prefect task: put "
                     f"`@task(...)` on the line above `def fetch_month` and run the cell again.")
    problems = []
    if fetch_month.name != TASK_NAME:
        problems.append(f"its name is {fetch_month.name!r} (the function's name, Prefect's default): "
                        f"pass name={TASK_NAME!r} to @task")
    if fetch_month.retries != 3:
        problems.append(f"it has retries={fetch_month.retries}: pass retries=3")
    if fetch_month.retry_delay_seconds != 2:
        problems.append(f"it waits retry_delay_seconds={fetch_month.retry_delay_seconds!r} between attempts: "
                        "pass retry_delay_seconds=2")
    if problems:
        raise NotYet("The task is there, but " + "; ".join(problems) + ".")
    return (f"`fetch_month` is the task {TASK_NAME!r}: a failed call is tried again up to 3 times, "
            "2 s apart, before its run is Failed.")


def _completed_run(flow_fn, name: str, argument, hint: str = ""):
    """Run the learner's flow once; its final state, or a hint when it is no flow or did not complete."""
    if not _is_flow(flow_fn):
        raise NotYet(f"`{name}` is a {type(flow_fn).__name__}, not a flow: keep `@flow` above `def {name}` "
                     "and run the cell again.")
    state = flow_fn(argument, return_state=True)
    if not state.is_completed():
        raise NotYet(f"{name}({argument}) ended {state.name}, not Completed: run it in a cell and read its error."
                     + hint)
    return state


def _task_run_names(flow_run_id) -> list[str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted(run.name for run in task_runs)


@exercise("02.2", "Name each task run after its month")
def task_run_names(download_months) -> str:
    state = _completed_run(download_months, "download_months", MONTHS,
                           hint=" A task_run_name template can only use the task's own parameters, here {month}.")
    names = _task_run_names(state.state_details.flow_run_id)
    expected = [f"download-{month}" for month in MONTHS]
    if names == expected:
        return f"download_months({MONTHS}) ran the task runs {names}: each named after its month."
    if not names:
        raise NotYet("The flow ran no task: call the task `download` once per month inside `download_months`.")
    if len(set(names)) == 1 and len(names) > 1:
        raise NotYet(f"Both task runs are named {names[0]!r}: the name was fixed before the calls, as an f-string "
                     "is filled when the cell runs. Write the template as a plain string (no f in front), so "
                     "Prefect fills {month} from each call's argument.")
    if all(re.fullmatch(r"download-[0-9a-f]{3}", name) for name in names):
        raise NotYet(f"download_months({MONTHS}) ran task runs named {names}: Prefect's default, the task's name "
                     f"plus a random suffix. Expected {expected}: add a task_run_name template to the @task of "
                     "`download`, with {month} where the month goes.")
    raise NotYet(f"Your template gives the task runs {names}; expected {expected}. The template must be exactly "
                 "\"download-{month}\": the text download- then {month}, filled from the call's argument.")


@exercise("02.3", "Log the RMSE with the run's logger")
def logs_rmse(report_rmse) -> str:
    from course_lib.tooling.runs import flow_run_logs

    state = _completed_run(report_rmse, "report_rmse", RMSE)
    expected = f"{RMSE:.3f}"
    logs = flow_run_logs(state.state_details.flow_run_id)
    found = [line for line in logs if expected in line]
    if found:
        return f"The flow run's logs on the server hold your line: {found[0]!r}."
    raise NotYet(f"report_rmse({RMSE}) ran, but no log line of its run on the server contains {expected!r}: "
                 "a plain print() only reaches this cell's output. Inside the flow, get the run's logger with "
                 "`logger = get_run_logger()` (from prefect) and call `logger.info(message)` "
                 "(or decorate the flow with @flow(log_prints=True)).")
