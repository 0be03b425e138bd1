"""Checks of lesson 03 · The local server: they compare the learner's answers with what the
course's Prefect server really holds."""

from __future__ import annotations

from course_lib.tooling.checks import NotYet, exercise

FLOW_NAME = "main-flow"


def _count(flow_name: str | None, completed_only: bool) -> int:
    from prefect.client.schemas.filters import (FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterState,
                                                FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType

    from course_lib.tooling.runs import api_client

    flow_filter = FlowFilter(name=FlowFilterName(any_=[flow_name])) if flow_name else None
    run_filter = (FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED])))
                  if completed_only else None)
    with api_client() as client:
        return client.count_flow_runs(flow_filter=flow_filter, flow_run_filter=run_filter)


@exercise("03.1", "Count the Completed runs of main-flow")
def completed_main_flow_runs(completed_runs) -> str:
    if completed_runs is None:
        raise NotYet("`completed_runs` is still None: ask the server for the runs of the flow named "
                     f"{FLOW_NAME!r} whose state type is COMPLETED (client.read_flow_runs with a flow_filter and "
                     "a flow_run_filter), then set completed_runs = len(those runs).")
    if isinstance(completed_runs, (list, tuple)):
        raise NotYet(f"`completed_runs` is a {type(completed_runs).__name__} of runs: the exercise asks for "
                     "their number, completed_runs = len(...).")
    if isinstance(completed_runs, bool) or not isinstance(completed_runs, int):
        raise NotYet(f"`completed_runs` is {completed_runs!r}, a {type(completed_runs).__name__}: it should be "
                     "a whole number, the len() of the list read_flow_runs returned.")
    expected = _count(FLOW_NAME, completed_only=True)
    if completed_runs == expected:
        return f"Right: the server holds {expected} Completed run(s) of {FLOW_NAME}."
    if completed_runs == 200 < expected:
        raise NotYet("read_flow_runs returns at most 200 runs unless you pass limit=..., and the server holds "
                     "more: count them with client.count_flow_runs(...) (same filters) instead.")
    if completed_runs == _count(FLOW_NAME, completed_only=False):
        raise NotYet(f"{completed_runs} is the number of ALL runs of {FLOW_NAME}, failed ones included: add "
                     "flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType("
                     "any_=[StateType.COMPLETED]))).")
    if completed_runs == _count(None, completed_only=True):
        raise NotYet(f"{completed_runs} counts the Completed runs of EVERY flow: add "
                     f"flow_filter=FlowFilter(name=FlowFilterName(any_=[{FLOW_NAME!r}])).")
    raise NotYet(f"You found {completed_runs}, but that is not what the server holds: filter by the flow's name "
                 f"({FLOW_NAME!r}, not the function's name main_flow) AND by the state type COMPLETED, and count "
                 "the runs read_flow_runs returns.")


@exercise("03.2", "Find the slowest task run of a flow run")
def slowest_task_run(flow_run_id, slowest) -> str:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    if not task_runs:
        raise NotYet(f"The server has no task runs for flow run {flow_run_id}: run the cell that ran the taxi "
                     "flow (it sets flow_run_id), then the exercise again.")
    seconds = {run.name: run.total_run_time.total_seconds() for run in task_runs}
    longest = max(seconds.values())
    if slowest is None:
        raise NotYet("`slowest` is still None: read the task runs of flow_run_id (client.read_task_runs with "
                     "flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))), pick the one with "
                     "the largest total_run_time and set slowest = its .name.")
    if not isinstance(slowest, str):
        name = getattr(slowest, "name", None)
        hint = f" (it has .name {name!r}: use that)" if isinstance(name, str) else ""
        raise NotYet(f"`slowest` is a {type(slowest).__name__}{hint}; the exercise asks for the task run's "
                     "name, a string.")
    if slowest not in seconds:
        raise NotYet(f"{slowest!r} is not a task run of this flow run; its task runs are {sorted(seconds)}. "
                     "Filter the task runs by flow_run_id, and compare their .name.")
    if seconds[slowest] < longest:
        raise NotYet(f"{slowest!r} took {seconds[slowest]:.2f} s, but another task run took {longest:.2f} s: "
                     "compare total_run_time (how long each ran), not start_time or the order of the list.")
    return f"{slowest!r} is the slowest task run of this flow run ({longest:.2f} s)."
