"""Checks of lesson 03 · The local server: the learner writes functions that query the server, and
the checks call them on runs the learner has not seen (small flows of the check's own, run here)
and on the learner's own runs of ``main-flow``, comparing with what the server really holds."""

from __future__ import annotations

import contextlib
import inspect
import logging
import random
import time

from course_lib.tooling.checks import CatchUp, NotYet, Wrong, catch_up as _catch_up, exercise

LESSON = 3
THEIR_FLOW = "main-flow"
# The check's own flows: their runs are made in this kernel, with task-run names drawn at random,
# so no answer can be read off the screen.
TIMING_FLOW = "lesson-03-check-timings"
OTHER_FLOW = "lesson-03-check-other"
LOGGING_FLOW = "lesson-03-check-logs"
WORDS = ["load", "clean", "join", "fit", "score", "plot", "merge", "sample", "split", "rank", "encode", "export",
         "fetch", "index", "parse", "scale", "tune", "zip"]
_MADE: dict[str, dict] = {}


@contextlib.contextmanager
def _quiet_console():
    """The check's own runs log to the server, not into the learner's cell."""
    handlers = [handler for handler in logging.getLogger().handlers if "Console" in type(handler).__name__]
    levels = [handler.level for handler in handlers]
    for handler in handlers:
        handler.setLevel(logging.CRITICAL + 10)
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels):
            handler.setLevel(level)


def _call(function, *args, what: str):
    """Call the learner's function; its error, a coroutine or a missing body becomes a hint."""
    if not callable(function):
        raise NotYet(f"`{what}` is a {type(function).__name__}, not a function: keep `def {what}(...)` and run "
                     "the exercise cell again.")
    if inspect.iscoroutinefunction(function):
        raise NotYet(f"`{what}` is an `async def`: write a plain `def` and use the synchronous client, "
                     "`with get_client(sync_client=True) as client:`.")
    try:
        return function(*args)
    except NotYet:
        raise
    except Exception as error:  # noqa: BLE001 - the learner's code: its error is the hint
        raise NotYet(f"`{what}{args!r}` raised {type(error).__name__}: {error}. Run it in a cell, read the error, "
                     "fix the function, then this check again.") from None


# -- 03.1 ----------------------------------------------------------------------------------------
def _timing_runs() -> dict:
    """Four runs made once per kernel: an older and a newer Completed run of TIMING_FLOW, a newer
    Failed one, and a Completed run of another flow, made last. Returns the names that matter."""
    if "timings" in _MADE:
        return _MADE["timings"]
    from prefect import flow, task

    # A token of this kernel: names never repeat those of an earlier kernel's runs on the same server.
    token = f"{random.randrange(16 ** 3):03x}"
    words = [f"{word}-{token}" for word in random.sample(WORDS, 6)]

    @task(task_run_name="{name}")
    def step(name: str, seconds: float, fail: bool = False) -> None:
        time.sleep(seconds)
        if fail:
            raise RuntimeError(f"{name} failed on purpose (the check's failed run)")

    @flow(name=TIMING_FLOW)
    def timings(plan: list, fail: bool = False) -> None:
        for name, seconds in plan:
            step(name, seconds, fail=fail)

    @flow(name=OTHER_FLOW)
    def other(name: str, seconds: float) -> None:
        step(name, seconds)

    older, fast, slow, last, failed, other_flows = words[:6]
    with _quiet_console():
        # Only the target run's durations matter: a mistake picks a task of another run whatever its duration.
        timings([(older, 0.1)])
        target = timings([(fast, 0.05), (slow, 0.6), (last, 0.3)], return_state=True)
        timings([(failed, 0.1)], fail=True, return_state=True)
        other(other_flows, 0.1)
    _MADE["timings"] = {"target": target.state_details.flow_run_id, "slowest": slow, "fastest": fast,
                        "last started": last}
    return _MADE["timings"]


def _runs_of_task_runs(flow_name: str) -> dict[str, list]:
    """Task-run name -> the flow runs (of the flow ``flow_name``) that have a task run of that name."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        flow_filter = FlowFilter(name=FlowFilterName(any_=[flow_name]))
        task_runs = client.read_task_runs(flow_filter=flow_filter, limit=200)
        flow_run_ids = list({run.flow_run_id for run in task_runs if run.flow_run_id})
        flow_runs = {run.id: run for run in client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)))} if flow_run_ids else {}
    found: dict[str, list] = {}
    for run in task_runs:
        if run.flow_run_id in flow_runs:
            found.setdefault(run.name, []).append(flow_runs[run.flow_run_id])
    return found


def _slowest_of_last_completed(flow_name: str) -> tuple[str | None, str | None]:
    """(flow run name, slowest task-run name) of the flow's latest Completed run, read by the check."""
    from prefect.client.schemas.filters import (FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId,
                                                FlowRunFilterState, FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))),
            sort=FlowRunSort.START_TIME_DESC, limit=1)
        if not runs:
            return None, None
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs[0].id])))
    if not task_runs:
        return runs[0].name, None
    return runs[0].name, max(task_runs, key=lambda run: run.total_run_time).name


def _name_of(answer, what: str) -> str:
    if answer is None:
        raise NotYet(f"`{what}` returns None: write its body (the TODO): read the runs from the server and "
                     "return the task run's name.")
    if inspect.iscoroutine(answer):
        answer.close()
        raise NotYet(f"`{what}` returns a coroutine: the default client is async. Use "
                     "`with get_client(sync_client=True) as client:` in a plain function.")
    if not isinstance(answer, str):
        name = getattr(answer, "name", None)
        hint = f" (its .name is {name!r}: return that)" if isinstance(name, str) else ""
        raise NotYet(f"`{what}` returns a {type(answer).__name__}{hint}; the exercise asks for the task run's "
                     "name, a string.")
    return answer


@exercise("03.1", "The slowest task run of a flow's latest Completed run", wrong=[
    Wrong(hint="older run", change=("FlowRunSort.START_TIME_DESC", "FlowRunSort.START_TIME_ASC")),
    Wrong(hint="did not complete", change=(
        "            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))),\n",
        "")),
    Wrong(hint="another flow", change=("            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),\n", "")),
    Wrong(hint="total_run_time", change=("key=lambda run: run.total_run_time", "key=lambda run: run.start_time")),
])
def slowest_task(slowest_task) -> str:
    made = _timing_runs()
    answer = _name_of(_call(slowest_task, TIMING_FLOW, what="slowest_task"), "slowest_task")
    if answer != made["slowest"]:
        asked = f"slowest_task({TIMING_FLOW!r}) (a flow the check ran just now)"
        if answer == made["last started"]:
            raise NotYet(f"{asked} returned {answer!r}: the task run that started last, not the one that ran "
                         "longest. Compare the task runs' total_run_time.")
        if answer == made["fastest"]:
            raise NotYet(f"{asked} returned {answer!r}: the fastest task run of that run, not the slowest "
                         "(max of total_run_time, not min).")
        runs = [run for run in _runs_of_task_runs(TIMING_FLOW).get(answer, []) if run.id != made["target"]]
        if any(run.state_type is not None and run.state_type.value != "COMPLETED" for run in runs):
            raise NotYet(f"{asked} returned {answer!r}, a task run of the flow's latest run, which did not complete "
                         "(it Failed): keep only the runs whose state type is COMPLETED (a flow_run_filter on "
                         "the state).")
        if runs:
            raise NotYet(f"{asked} returned {answer!r}, a task run of an older run of that flow: sort the flow runs "
                         "newest first (sort=FlowRunSort.START_TIME_DESC) and take the first (limit=1).")
        raise NotYet(f"{asked} returned {answer!r}, which is not a task run of that flow's latest Completed run: "
                     "it looks like a task run of another flow. Filter the flow runs on the flow's name, "
                     "flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])).")
    run_name, expected = _slowest_of_last_completed(THEIR_FLOW)
    if expected is None:
        return (f"Right on the check's runs ({answer!r} ran longest). Your "
                f"server has no Completed run of {THEIR_FLOW} with task runs yet: run the lesson's cell that runs "
                "your flow, then try slowest_task('main-flow').")
    theirs = _name_of(_call(slowest_task, THEIR_FLOW, what="slowest_task"), "slowest_task")
    if theirs != expected:
        raise NotYet(f"Right on the check's runs, but slowest_task({THEIR_FLOW!r}) returned {theirs!r}, while the "
                     f"slowest task run of your latest Completed run ({run_name}) is {expected!r}. Does the "
                     "function use its flow_name argument everywhere?")
    return (f"Right on a run you had not seen ({answer!r}) and on your own: the slowest task run of your latest "
            f"Completed run of {THEIR_FLOW} ({run_name}) is {expected!r}.")


# -- 03.2 ----------------------------------------------------------------------------------------
def _logging_run() -> dict:
    """One Completed run of LOGGING_FLOW that logs at every level (made once per kernel)."""
    if "logs" in _MADE:
        return _MADE["logs"]
    from prefect import flow, get_run_logger

    words = random.sample(WORDS, 4)

    @flow(name=LOGGING_FLOW)
    def noisy(words: list) -> None:
        logger = get_run_logger()
        logger.info("reading the %s table", words[0])
        logger.warning("the %s step is slow today", words[1])
        logger.error("could not %s the March trips", words[2])
        logger.info("retrying without %s", words[3])
        logger.error("gave up on %s: using February only", words[3])

    with _quiet_console():
        state = noisy(words, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    expected = [f"could not {words[2]} the March trips", f"gave up on {words[3]}: using February only"]
    _wait_for_logs(flow_run_id, expected)
    _MADE["logs"] = {"id": flow_run_id, "errors": expected, "warning": f"the {words[1]} step is slow today",
                     "info": f"reading the {words[0]} table"}
    return _MADE["logs"]


def _error_logs(flow_run_id) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterLevel
    from prefect.client.schemas.sorting import LogSort

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]),
                                                     level=LogFilterLevel(ge_=logging.ERROR)),
                                sort=LogSort.TIMESTAMP_ASC)
    return [log.message for log in logs]


def _all_messages(flow_run_id) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        return [log.message for log in client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))]


def _wait_for_logs(flow_run_id, expected: list[str], seconds: float = 20) -> None:
    """Logs reach the server in batches, a moment after they are written."""
    deadline = time.monotonic() + seconds
    while _error_logs(flow_run_id) != expected and time.monotonic() < deadline:
        time.sleep(0.5)


def _their_failed_run():
    """The learner's latest Failed run of main-flow (the lesson makes one), or None."""
    from prefect.client.schemas.filters import (FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterState,
                                                FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[THEIR_FLOW])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.FAILED]))),
            sort=FlowRunSort.START_TIME_DESC, limit=1)
    return runs[0] if runs else None


def _messages(answer, what: str) -> list[str]:
    if answer is None:
        raise NotYet(f"`{what}` returns None: write its body (the TODO): read the run's logs from the server and "
                     "return their messages.")
    if inspect.iscoroutine(answer):
        answer.close()
        raise NotYet(f"`{what}` returns a coroutine: the default client is async. Use "
                     "`with get_client(sync_client=True) as client:` in a plain function.")
    if isinstance(answer, str) or not isinstance(answer, (list, tuple)):
        raise NotYet(f"`{what}` returns a {type(answer).__name__}; the exercise asks for a list of messages "
                     "(strings), oldest first.")
    if answer and not all(isinstance(item, str) for item in answer):
        item = next(item for item in answer if not isinstance(item, str))
        hint = " (return each log's .message)" if hasattr(item, "message") else ""
        raise NotYet(f"`{what}` returns a list of {type(item).__name__}{hint}; the exercise asks for the "
                     "messages, strings.")
    return list(answer)


@exercise("03.2", "The error messages of a flow run", wrong=[
    Wrong(hint="INFO", change=(", level=LogFilterLevel(ge_=logging.ERROR)", "")),
    Wrong(hint="WARNING", change=("LogFilterLevel(ge_=logging.ERROR)", "LogFilterLevel(ge_=logging.WARNING)")),
    Wrong(hint="other runs", change=("flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]), ", "")),
])
def error_messages(error_messages) -> str:
    made = _logging_run()
    answer = _messages(_call(error_messages, made["id"], what="error_messages"), "error_messages")
    asked = f"error_messages({str(made['id'])!r}) (a run the check made just now)"
    expected = made["errors"]
    if answer != expected:
        logged = _all_messages(made["id"])
        strangers = [message for message in answer if message not in logged]
        if strangers:
            raise NotYet(f"{asked} returned {len(answer)} messages, and {strangers[0][:80]!r} is not from that run: "
                         "it comes from other runs. Filter the logs on the flow run's id, "
                         "LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]), ...).")
        if made["info"] in answer:
            raise NotYet(f"{asked} returned {len(answer)} messages, INFO ones among them ({made['info']!r}): keep only "
                         "the records at level ERROR or above, a LogFilter with level=LogFilterLevel(ge_=...) "
                         "(logging.ERROR is 40).")
        if made["warning"] in answer:
            raise NotYet(f"{asked} returned the WARNING line {made['warning']!r} too: ERROR is level 40 "
                         "(logging.ERROR); WARNING, 30, is below it.")
        if sorted(answer) == sorted(expected):
            raise NotYet(f"{asked} returned the right messages in the wrong order: oldest first "
                         "(sort=LogSort.TIMESTAMP_ASC).")
        raise NotYet(f"{asked} returned {answer!r}; that run logged {len(expected)} ERROR messages, "
                     f"the first {expected[0]!r}. Read the run's logs at level ERROR or above, oldest first.")
    failed = _their_failed_run()
    if failed is None:
        return (f"Right on the check's run ({len(expected)} ERROR messages). Your server has no Failed run of "
                f"{THEIR_FLOW} yet: run the lesson's cell that makes one, then try error_messages on its id.")
    theirs = _messages(_call(error_messages, failed.id, what="error_messages"), "error_messages")
    truth = _error_logs(failed.id)
    if theirs != truth:
        raise NotYet(f"Right on the check's run, but on your failed run {failed.name} it returned {len(theirs)} "
                     f"messages where the server holds {len(truth)} at level ERROR or above. Does the function use "
                     "its flow_run_id argument?")
    first = truth[0].splitlines()[0] if truth else ""
    return (f"Right on a run you had not seen ({len(expected)} ERROR messages) and on your own failed run "
            f"{failed.name}: {len(truth)} ERROR messages, the first {first!r}.")


def catch_up(**lesson_parameters):
    """Lesson 03 changes no file; it runs the orchestrate.py of lesson 02. If yours does not pass lesson 02's
    check (02.2), this writes the course's version (yours is kept), so the lesson's cells work."""
    from course_lib.tooling.checks import lesson02

    return _catch_up(LESSON, [CatchUp(lesson02.decorated_pipeline, files=("orchestrate.py",))], **lesson_parameters)
