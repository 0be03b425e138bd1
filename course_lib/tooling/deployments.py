"""Deployments from a notebook: the plumbing around the `prefect` commands the lessons show.

The lessons run the CLI as the commands a learner types (`!prefect deployment run ...`,
`%%bash` cells). What is here waits and reads back: :func:`follow` waits for the run that
`prefect deployment run` printed and reads its logs, :func:`wait_for_flow_run` says when no
worker picks a run up, :func:`upcoming_runs` lists the runs each schedule created and
:func:`next_times` computes the times a schedule should give, :func:`child_processes` watches
the processes a served flow starts. :func:`prefect_cli` runs a
`prefect` command headless with its output checked (for tests and the bench).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from course_lib import services
from course_lib.tooling.runs import api_client

if TYPE_CHECKING:  # pandas is imported where a table is built
    import pandas as pd

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_SPINNER = re.compile(r"^\s*[\u2800-\u28ff]")
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
WAITING_STATES = {"SCHEDULED", "PENDING"}  # "Late" is a SCHEDULED state named Late


class DeploymentError(RuntimeError):
    """A deployment or one of its runs did not do what the lesson expects; says why and the fix."""


def prefect_cli(*args: str, cwd: Path | str | None = None, check: bool = True, show: bool = True,
                timeout: float = 300, env: dict | None = None,
                redact: list[str] | tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``prefect ARGS`` headless (no prompts, no colours) against the current PREFECT_API_URL.

    ``env`` adds variables (a None value unsets one). Every string in ``redact`` (an API key, a
    password) is replaced by ``********`` in what is shown and in the returned output.
    """
    command = [services.executable("prefect"), *args]
    full_env = {**os.environ, **services.HEADLESS_ENV}
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    result = subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)

    def hide(text: str) -> str:
        return services.redact(text, redact)

    def plain(text: str) -> str:
        """Without terminal control codes and spinner frames (rich draws them even into a pipe)."""
        text = _ANSI.sub("", text)
        return "\n".join(line for line in text.splitlines() if not _SPINNER.match(line))

    result.args = [hide(str(arg)) for arg in result.args]
    result.stdout, result.stderr = plain(hide(result.stdout)), plain(hide(result.stderr))
    output = (result.stdout + result.stderr).strip()
    shown_args = " ".join(shlex.quote(hide(arg)) for arg in args)
    if show:
        print("$ prefect " + shown_args)
        if output:
            print(output)
    if check and result.returncode != 0:
        raise DeploymentError(f"`prefect {shown_args}` exited {result.returncode}:\n{output[-3000:]}")
    return result


def wait_for_flow_run(flow_run_id: UUID | str, timeout: float = 180, poll_seconds: float = 1.0,
                      late_after: float = 45) -> str:
    """Wait until a deployment's flow run finishes; returns its final state name.

    A run that stays Scheduled/Late/Pending while no worker polls its pool will never start:
    after ``late_after`` seconds that is reported with the fix instead of waiting forever.
    """
    flow_run_id = UUID(str(flow_run_id))
    started = time.monotonic()
    with api_client() as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            state_type = run.state.type.value if run.state else "SCHEDULED"
            if state_type in FINAL_STATES:
                return run.state.name
            waited = time.monotonic() - started
            if state_type in WAITING_STATES and waited > late_after:
                pool = run.work_pool_name or "its work pool"
                raise DeploymentError(
                    f"flow run {run.name} is still {run.state.name} after {waited:.0f} s: no worker is "
                    f"picking up runs from work pool '{pool}'. Start one with `prefect worker start -p {pool}` "
                    "(or course_lib.services.Worker), then run the deployment again.")
            if waited > timeout:
                raise DeploymentError(f"flow run {run.name} is still {run.state.name} after {timeout:.0f} s; "
                                      "see its logs in the UI or with course_lib.tooling.runs.flow_run_logs().")
            time.sleep(poll_seconds)


LOCAL_POOL = "local-pool"
LOCAL_DEPLOYMENT = "taxi_local_data"


def flow_run_id_from_output(output: str) -> UUID:
    """The flow run id that ``prefect deployment run`` prints ("UUID: ...")."""
    found = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
    if not found:
        raise DeploymentError(f"no flow run id in the output of `prefect deployment run`:\n{output[-1000:]}")
    return UUID(found.group(1))


def schedule_label(schedule) -> str:
    """A deployment schedule as one readable line: ``cron 0 6 * * * (UTC)``, ``every 12:00:00 from ...``."""
    inner = getattr(schedule, "schedule", schedule)
    state = "" if getattr(schedule, "active", True) else ", inactive"
    if getattr(inner, "cron", None):
        return f"cron {inner.cron} ({inner.timezone or 'UTC'}{state})"
    if getattr(inner, "interval", None):
        return f"every {inner.interval} from {inner.anchor_date:%Y-%m-%d %H:%M} ({inner.timezone or 'UTC'}{state})"
    if getattr(inner, "rrule", None):
        return f"rrule {inner.rrule}{state}"
    return repr(inner)


def scheduler_min_runs() -> int:
    """How many runs the server's scheduler creates ahead for each schedule (at least an hour ahead)."""
    from prefect.settings import get_current_settings

    return get_current_settings().server.services.scheduler.min_runs


def schedule_now(client, deployment_id) -> None:
    """Ask the server to create a deployment's scheduled runs now (``POST /deployments/{id}/schedule``).

    The server's scheduler does the same in the background: within 5 s for a deployment that was
    just deployed, and on its 60-s loop for a schedule added later (e.g. with
    ``prefect deployment schedule create``). Same rules, same runs: each run carries an
    idempotency key (deployment, schedule, time), so the background loop adds no duplicates.
    """
    response = client.request("POST", "/deployments/{id}/schedule", path_params={"id": str(deployment_id)}, json={})
    response.raise_for_status()


def upcoming_runs(deployment: str, wait_seconds: float = 60) -> "pd.DataFrame":
    """The scheduled flow runs of a deployment ("flow-name/deployment-name"), one row each, by schedule.

    Asks the server to schedule the deployment's runs now (:func:`schedule_now`) instead of
    waiting for its background loop, then waits up to ``wait_seconds`` until every active
    schedule has its runs. Columns: schedule, scheduled for (UTC), flow run, created (when the
    scheduler made it).
    """
    import pandas as pd
    from prefect.client.schemas.filters import (DeploymentFilter, DeploymentFilterId, FlowRunFilter,
                                                FlowRunFilterState, FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    wanted = scheduler_min_runs()
    deadline = time.monotonic() + wait_seconds
    with api_client() as client:
        found = client.read_deployment_by_name(deployment)
        labels = {schedule.id: schedule_label(schedule) for schedule in found.schedules}
        active = {schedule.id for schedule in found.schedules if schedule.active}
        if active:
            schedule_now(client, found.id)
        while True:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=200)
            counts = {sid: sum(1 for run in runs if run.created_by and run.created_by.id == sid) for sid in active}
            if all(count >= wanted for count in counts.values()) or time.monotonic() > deadline:
                break
            time.sleep(1)
    rows = [{"schedule": labels.get(run.created_by.id, "a schedule removed since") if run.created_by else "(manual)",
             "scheduled for (UTC)": pd.Timestamp(run.expected_start_time).tz_convert("UTC"),
             "flow run": run.name, "created": pd.Timestamp(run.created).tz_convert("UTC")} for run in runs]
    table = pd.DataFrame(rows, columns=["schedule", "scheduled for (UTC)", "flow run", "created"])
    return table.sort_values(["schedule", "scheduled for (UTC)"], kind="stable").reset_index(drop=True)


def next_times(anchor: str, every: str, after, n: int) -> list:
    """The first ``n`` times ``anchor + k * every`` (k a whole number) at or after ``after``.

    Plain date arithmetic, independent of Prefect's schedule code: what the lesson expects a
    schedule to produce. ``anchor`` and ``every`` are pandas strings ("2026-01-01 06:00Z", "1D").
    """
    import math

    import pandas as pd

    anchor, every, after = pd.Timestamp(anchor).tz_convert("UTC"), pd.Timedelta(every), pd.Timestamp(after)
    first = math.ceil((after - anchor) / every)
    return [anchor + (first + k) * every for k in range(n)]


@dataclass
class DeploymentRun:
    """One finished run of a deployment: its id, final state and log messages."""

    flow_run_id: str
    state: str
    logs: list[str]

    def printed(self, needle: str) -> bool:
        """True if a log message contains ``needle``."""
        return any(needle in line for line in self.logs)

    def result(self):
        """The run's persisted return value (the flow must persist its result)."""
        with api_client() as client:
            run = client.read_flow_run(UUID(self.flow_run_id))
        return run.state.result(_sync=True)


def follow(cli_output: str | list[str], timeout: float = 300, late_after: float = 60) -> DeploymentRun:
    """Wait for the flow run that ``prefect deployment run`` created (its output), read its logs."""
    from course_lib.tooling import runs

    if not isinstance(cli_output, str):
        cli_output = "\n".join(cli_output)
    flow_run_id = flow_run_id_from_output(cli_output)
    state = wait_for_flow_run(flow_run_id, timeout=timeout, late_after=late_after)
    return DeploymentRun(str(flow_run_id), state, runs.flow_run_logs(flow_run_id))


@contextlib.contextmanager
def child_processes(pid: int, poll_seconds: float = 0.1):
    """The ids of the processes that process ``pid`` has as children while the block runs.

    Sampled in a thread every ``poll_seconds``: a served flow (``flow.serve()``) starts each of its
    flow runs as a child process, which lives as long as the run.
    """
    import threading

    import psutil

    seen: set[int] = set()
    done = threading.Event()
    parent = psutil.Process(pid)

    def sample() -> None:
        while not done.is_set():
            try:
                seen.update(child.pid for child in parent.children())
            except psutil.NoSuchProcess:
                return
            done.wait(poll_seconds)

    sampler = threading.Thread(target=sample, name="child-processes", daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        done.set()
        sampler.join()


def start_profile_worker(pool: str, profile: str) -> services.Worker:
    """A worker for ``pool`` that talks to the API of ``profile`` (lesson 07's remote workspace).

    It runs what ``prefect --profile PROFILE worker start -p POOL`` runs in a terminal without
    ``PREFECT_API_URL``: the profile's URL and credentials reach the worker through its
    environment, never a command line or an output. A service: stopped with ``.stop()``, and when
    the kernel exits.
    """
    from course_lib.services import remote

    with services.temporary_env(remote.profile_api_env(profile)):
        return services.Worker(pool).start()
