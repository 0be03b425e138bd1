"""Checks of lesson 04's exercises: they read the deployment's schedules and flow runs from the server."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from course_lib.tooling.checks import NotYet, exercise
from course_lib.tooling.runs import api_client

DEPLOYMENT = "main-flow/taxi_local_data"
# Runs older than this kernel's first import of the checks belong to an earlier session, not to
# the exercise the learner is doing now.
SESSION_START = datetime.now(timezone.utc)

_CRON_HINT = ("A cron expression has five fields: minute hour day-of-month month day-of-week; "
              "09:00 on the 3rd of every month is minute 0, hour 9, day-of-month 3, every month, any weekday.")


def _fields(cron: str) -> list[str]:
    """The cron fields with leading zeros dropped ("00 09 03 * *" -> ["0", "9", "3", "*", "*"])."""
    return [str(int(field)) if field.isdigit() else field for field in cron.split()]


@exercise("04.1", "A cron schedule: 09:00 UTC on the 3rd of every month")
def monthly_schedule(deployment: str = DEPLOYMENT) -> str:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with api_client() as client:
        found = client.read_deployment_by_name(deployment)
    crons = [s for s in found.schedules if getattr(s.schedule, "cron", None)]
    command = f'prefect deployment schedule create {deployment} --cron "MIN HOUR DAY MONTH WEEKDAY" --timezone UTC'
    if not crons:
        others = ", ".join(str(s.schedule) for s in found.schedules) or "none"
        raise NotYet(f"{deployment} has no cron schedule (its schedules: {others}). Add one with `{command}`. "
                     + _CRON_HINT)
    matching = [s for s in crons if _fields(s.schedule.cron) == ["0", "9", "3", "*", "*"]]
    if not matching:
        seen = ", ".join(repr(s.schedule.cron) for s in crons)
        raise NotYet(f"{deployment} has the cron schedule(s) {seen}, none of them at 09:00 on the 3rd. "
                     + _CRON_HINT + " Remove a wrong one with `prefect deployment schedule delete "
                     f"{deployment} SCHEDULE_ID` (IDs from `prefect deployment schedule ls {deployment}`).")
    schedule = matching[0]
    if (schedule.schedule.timezone or "UTC") not in ("UTC", "Etc/UTC"):
        raise NotYet(f"The cron schedule {schedule.schedule.cron!r} runs in the timezone "
                     f"{schedule.schedule.timezone!r}, so 09:00 there is not 09:00 UTC. Create it with --timezone UTC.")
    if not schedule.active:
        raise NotYet(f"The cron schedule {schedule.schedule.cron!r} is paused (active: false). Resume it: "
                     f"`prefect deployment schedule resume {deployment} {schedule.id}`.")
    # The server's scheduler turns it into scheduled runs within seconds: they must all be 09:00 UTC on a 3rd.
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    from course_lib.tooling.deployments import schedule_now

    deadline = time.monotonic() + 30
    with api_client() as client:
        schedule_now(client, found.id)  # what the server's scheduler does on its next loop
        while True:
            runs = [run for run in client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))), limit=200)
                if run.created_by and run.created_by.id == schedule.id]
            if runs or time.monotonic() > deadline:
                break
            time.sleep(1)
    if not runs:
        raise NotYet("The schedule is there but the server has not created its scheduled runs after 30 s: "
                     "is the Prefect server still running? Run this check again in a moment.")
    times = sorted(run.expected_start_time.astimezone(timezone.utc) for run in runs)
    wrong = [t for t in times if (t.day, t.hour, t.minute) != (3, 9, 0)]
    if wrong:
        raise NotYet(f"The schedule produced runs at {wrong[0]:%Y-%m-%d %H:%M} UTC, not 09:00 on a 3rd. " + _CRON_HINT)
    return (f"{deployment} runs at 09:00 UTC on the 3rd of every month; the scheduler has already created "
            f"{len(times)} runs: " + ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in times) + " UTC.")


@exercise("04.2", "Run the deployment with overridden parameters: reference mode")
def reference_run(deployment: str = DEPLOYMENT) -> str:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with api_client() as client:
        found = client.read_deployment_by_name(deployment)
        runs = [run for run in client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])),
            sort=FlowRunSort.START_TIME_DESC, limit=50)
            if run.created >= SESSION_START and not run.auto_scheduled]
    how = (f"`prefect deployment run {deployment} --param mode=reference --watch` (plus the lesson's "
           "--param source=... and, for a quick run, --param num_boost_round=...)")
    if not runs:
        raise NotYet(f"No run of {deployment} was started since this lesson's kernel began. Start one with {how}.")
    reference = [run for run in runs if run.parameters.get("mode") == "reference"]
    if not reference:
        modes = sorted({str(run.parameters.get("mode", "the flow's default")) for run in runs})
        raise NotYet(f"Your {len(runs)} run(s) of {deployment} used mode {', '.join(modes)}: the parameter was not "
                     f"overridden. Pass it on the command line: {how}.")
    done = [run for run in reference if run.state and run.state.is_completed()]
    if not done:
        latest = reference[0]
        state = latest.state.name if latest.state else "Scheduled"
        if latest.state and latest.state.is_final():
            raise NotYet(f"The reference run {latest.name} ended {state}. Read its logs in the UI "
                         "(or `prefect flow-run logs " + str(latest.id) + "`), fix the cause, and run it again.")
        raise NotYet(f"The reference run {latest.name} is still {state}: is the worker running? Wait for it "
                     "(--watch waits until it finishes), then run this check again.")
    run = done[0]
    shown = {key: value for key, value in run.parameters.items() if key in ("mode", "source", "num_boost_round")}
    return f"Flow run {run.name} of {deployment} Completed with parameters {shown}."
