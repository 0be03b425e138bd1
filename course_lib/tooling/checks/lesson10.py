"""Checks of lesson 10 (the 2023 module's homework on Prefect 3.9).

The RMSE checks never compare with a number written here: they find the run the learner made
(its months, data source, training mode and rounds), train the plain reference pipeline
(``course_lib.ml.training.train_months``) on the same months and data, and compare. On the real
January/February 2023 files the reference itself is also held to the course's known answer.
"""

from __future__ import annotations

import re

from course_lib.tooling.checks import NotYet, exercise

KNOWN_JAN_FEB = 5.19931  # the 2023 homework's answer on the real TLC files (reference mode, 100 rounds)
TOLERANCE = 1e-4
_EXPECTED: dict[tuple, float] = {}
_RMSE_LINE = re.compile(r"\|\s*Validation RMSE \(minutes\)\s*\|\s*([0-9.]+)\s*\|")
_SOURCE_LINE = re.compile(r"\|\s*Data source\s*\|\s*([^|]+?)\s*\|")


def _client():
    from prefect import get_client

    return get_client(sync_client=True)  # a notebook cell has a running loop: the sync client works in it


def reference_rmse(train: str, val: str, source: str, num_boost_round) -> float:
    """The plain reference pipeline on the same months and data (cached per kernel)."""
    key = (train, val, source, num_boost_round)
    if key not in _EXPECTED:
        import tempfile

        from course_lib.ml import training

        with tempfile.TemporaryDirectory(prefix="check-reference-") as models:
            _EXPECTED[key] = training.train_months(train, val, source=source, mode="reference",
                                                   num_boost_round=num_boost_round, models_dir=models).rmse
    return _EXPECTED[key]


def _report_of(flow_run_id) -> str | None:
    from course_lib.tooling import runs

    artifacts = runs.flow_run_artifacts(flow_run_id)
    markdown = artifacts[artifacts["type"] == "markdown"]
    return None if markdown.empty else markdown.iloc[-1]["data"]


def _rmse_in(report: str) -> float:
    found = _RMSE_LINE.search(report or "")
    if not found:
        raise NotYet("the run's report has no 'Validation RMSE (minutes)' row; run the course's main_flow, "
                     "which publishes it.")
    return float(found.group(1))


def _compare(value, run_rmse: float, train: str, val: str, source: str, data_source: str, rounds) -> str:
    if value is None:
        raise NotYet(f"the run is there (RMSE {run_rmse:.5f} in its report), but your variable is None: "
                     "assign the RMSE you read back to it.")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise NotYet(f"your answer {value!r} is not a number; assign the RMSE (a float).") from None
    expected = reference_rmse(train, val, source, rounds)
    if abs(expected - run_rmse) > TOLERANCE:
        raise NotYet(f"the run's RMSE {run_rmse:.5f} differs from the reference pipeline's {expected:.5f} on the same "
                     f"months ({train} -> {val}, {data_source} data): train in mode 'reference'.")
    if abs(value - run_rmse) > TOLERANCE:
        raise NotYet(f"your answer {value:.5f} is not the run's RMSE; read it back from the run, do not retype it.")
    note = ""
    if (train, val) == ("2023-01", "2023-02") and data_source == "file" and rounds is None:
        if abs(expected - KNOWN_JAN_FEB) > TOLERANCE:
            raise NotYet(f"on the real files the reference gives {expected:.5f}, not the course's {KNOWN_JAN_FEB}: "
                         "the data files differ from the TLC's (delete them and download again).")
        note = f" — the 2023 homework's answer on the real TLC files ({KNOWN_JAN_FEB})"
    return f"RMSE {value:.5f} on {train} -> {val} ({data_source} data{', %d rounds' % rounds if rounds else ''}){note}."


@exercise("10.1", "a task with a human-readable name and retries")
def named_task_with_retries(task_obj) -> str:
    from prefect import Task

    if not isinstance(task_obj, Task):
        raise NotYet(f"{task_obj!r} is not a Prefect task: decorate the function with @task(...).")
    function_name = task_obj.fn.__name__
    if task_obj.name == function_name:
        raise NotYet(f"the task is still called {function_name!r} (its function's name): give it a human-readable "
                     "name, e.g. @task(name=\"Read taxi data\", ...).")
    if task_obj.retries != 3:
        raise NotYet(f"the task has retries={task_obj.retries}; the question asks for 3 (@task(retries=3, ...)).")
    delay = task_obj.retry_delay_seconds
    if delay != 2 and delay != [2, 2, 2]:
        raise NotYet(f"retry_delay_seconds is {delay!r}; wait 2 seconds between attempts (retry_delay_seconds=2).")
    return f"Task {task_obj.name!r}: 3 retries, 2 s apart."


@exercise("10.2", "the 3rd of every month at 09:00 UTC, on the deployment")
def monthly_schedule(deployment: str, cron) -> str:
    if not cron:
        raise NotYet("`cron` is empty: write the five fields minute hour day-of-month month day-of-week.")
    fields = str(cron).split()
    if fields != ["0", "9", "3", "*", "*"]:
        hint = "five fields are needed" if len(fields) != 5 else "minute 0, hour 9, day of month 3, any month, any weekday"
        raise NotYet(f"{cron!r} is not the 3rd of every month at 09:00: {hint}.")
    with _client() as client:
        found = client.read_deployment_by_name(deployment)
    crons = [(getattr(s.schedule, "cron", None), getattr(s.schedule, "timezone", None), s.active)
             for s in found.schedules]
    matching = [entry for entry in crons if entry[0] and entry[0].split() == fields]
    if not matching:
        raise NotYet(f"the deployment {deployment} has no schedule with cron {cron!r} (it has {crons or 'none'}): "
                     f"`prefect deployment schedule create {deployment} --cron \"{cron}\" --timezone UTC`.")
    if matching[0][1] not in ("UTC", "Etc/UTC"):
        raise NotYet(f"the schedule's time zone is {matching[0][1]!r}; the question says UTC (--timezone UTC).")
    if not matching[0][2]:
        raise NotYet("the schedule is paused; make it active.")
    return f"{deployment} runs at 09:00 UTC on the 3rd of every month ({cron})."


def _latest_run(deployment: str, train: str, val: str):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with _client() as client:
        found = client.read_deployment_by_name(deployment)
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])),
                                     sort=FlowRunSort.START_TIME_DESC, limit=50)
    runs = [run for run in runs if run.parameters.get("train_path") == train and run.parameters.get("val_path") == val]
    if not runs:
        raise NotYet(f"no run of {deployment} trained on {train} and validated on {val}: run the deployment with "
                     f"parameters train_path={train!r}, val_path={val!r}, mode='reference' (a worker must be running).")
    done = [run for run in runs if run.state and run.state.is_completed()]
    if not done:
        raise NotYet(f"the run {runs[0].name} is {runs[0].state.name if runs[0].state else 'unknown'}, not Completed: "
                     "wait for it (deployments.wait_for_flow_run) or read its logs.")
    return done[0]


@exercise("10.3", "Jan -> Feb 2023 through the deployment, reference mode: the RMSE")
def rmse_jan_feb(value, deployment: str = "main-flow/taxi-homework") -> str:
    run = _latest_run(deployment, "2023-01", "2023-02")
    if run.parameters.get("mode") != "reference":
        raise NotYet(f"the run {run.name} trained in mode {run.parameters.get('mode', 'fast')!r}; the homework asks "
                     "for the 2023 reference model: add mode='reference' to its parameters.")
    report = _report_of(run.id)
    run_rmse = _rmse_in(report)
    data_source = _SOURCE_LINE.search(report).group(1)
    return _compare(value, run_rmse, "2023-01", "2023-02", run.parameters.get("source", "auto"), data_source,
                    run.parameters.get("num_boost_round"))


@exercise("10.4", "Feb -> Mar 2023, the RMSE read back from the markdown artifact")
def rmse_from_artifact(value, key: str = "homework-feb-mar") -> str:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with _client() as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                          sort=ArtifactSort.CREATED_DESC, limit=1)
        if not artifacts:
            raise NotYet(f"there is no artifact with key {key!r}: run main_flow(..., report_key={key!r}) so its report "
                         "is published under that key.")
        artifact = artifacts[0]
        run = client.read_flow_run(artifact.flow_run_id)
    params = run.parameters
    if (params.get("train_path"), params.get("val_path")) != ("2023-02", "2023-03"):
        raise NotYet(f"the latest {key!r} report comes from a run on {params.get('train_path')} -> "
                     f"{params.get('val_path')}; train on 2023-02 and validate on 2023-03.")
    if params.get("mode") != "reference":
        raise NotYet("that run did not train in mode 'reference'; pass mode='reference'.")
    run_rmse = _rmse_in(artifact.data)
    data_source = _SOURCE_LINE.search(artifact.data).group(1)
    return _compare(value, run_rmse, "2023-02", "2023-03", params.get("source", "auto"), data_source,
                    params.get("num_boost_round"))


@exercise("10.5", "prefect-email's task, in a flow that emails the RMSE")
def email_task(task_name, smtp) -> str:
    import prefect_email
    from prefect import Task

    if not task_name:
        raise NotYet("`task_name` is empty: which task of prefect_email sends a message? (dir(prefect_email))")
    candidate = getattr(prefect_email, str(task_name), None)
    if not isinstance(candidate, Task):
        raise NotYet(f"prefect_email has no task named {task_name!r}; look for the one that sends a message.")
    if task_name != "email_send_message":
        raise NotYet(f"{task_name!r} is a prefect-email task, but not the one that sends a message.")
    mails = [m for m in smtp.messages() if "rmse" in (m["subject"] + m["body"]).lower()]
    if not mails:
        raise NotYet(f"no email mentioning the RMSE reached the local SMTP server ({smtp.address}): call your flow, "
                     "which sends it with email_send_message.submit(...).result().")
    numbers = re.findall(r"\d+\.\d+", mails[-1]["subject"] + " " + mails[-1]["body"])
    if not numbers:
        raise NotYet(f"the email {mails[-1]['subject']!r} mentions the RMSE but not its value; put the number in it.")
    return f"{task_name} sent {mails[-1]['subject']!r} to {', '.join(mails[-1]['to'])}."


@exercise("10.6", "the steps of an automation, with the automation created")
def automation_steps(steps, name: str = "homework-failure") -> str:
    from prefect.events.schemas.automations import EventTrigger

    wanted = ["trigger", "actions", "details"]
    given = [str(step).strip().lower() for step in (steps or [])]
    if sorted(given) == sorted(wanted) and given != wanted:
        raise NotYet(f"those are the three steps, but not in the wizard's order: {steps}.")
    if given != wanted:
        raise NotYet(f"{steps!r} are not the three steps of the UI's automation wizard (Automations -> +), in order.")
    with _client() as client:
        found = client.read_automations_by_name(name)
    if not found:
        raise NotYet(f"the steps are right; now create the automation {name!r} (Automation(...).acreate()).")
    automation = found[0]
    if not isinstance(automation.trigger, EventTrigger) or "prefect.flow-run.Failed" not in automation.trigger.expect:
        raise NotYet(f"the automation {name!r} must trigger on 'prefect.flow-run.Failed' (an EventTrigger).")
    if not automation.actions:
        raise NotYet(f"the automation {name!r} has no action; add one (e.g. SendNotification).")
    return f"Trigger -> Actions -> Details; automation {name!r} acts with {[a.type for a in automation.actions]}."
