"""Checks of lesson 10 (the 2023 module's homework on Prefect 3.9), on the learner's own deployment.

Questions 3 and 4 run the learner's deployment ``main-flow/taxi_local_data`` (their ``orchestrate.py``,
cloned by a worker). Their checks find the learner's run on the server, read its RMSE from the run's
result (question 3) and from the markdown report their flow publishes since lesson 06 (question 4:
the artifact ``duration-model-report``, a table whose column ``Validation RMSE (minutes)`` holds the
RMSE with 5 decimals), and never compare with a number written here: they train the plain reference
pipeline (``course_lib.ml.training.train_months``) on the same months and data and compare. On the
real January/February 2023 files the reference itself is also held to the 2023 homework's answer.
"""

from __future__ import annotations

import re

from course_lib.tooling.checks import (CatchUp, CheckResult, NotYet, Wrong, catch_up as _catch_up, exercise,
                                       normalise_cron, retry_delays)

LESSON = 10
KNOWN_JAN_FEB = 5.19931  # the 2023 homework's answer on the real TLC files (reference mode, 100 rounds)
TOLERANCE = 1e-4
DEPLOYMENT = "main-flow/taxi_local_data"
REPORT_KEY = "duration-model-report"  # lesson 06's contract: the key and the table of the report
RMSE_COLUMN = "Validation RMSE (minutes)"
EMAIL_BLOCK = "homework-email"
ALERT = "homework-failure"
CRON = ["0", "9", "3", "*", "*"]
_EXPECTED: dict[tuple, float] = {}
_DATA_SOURCE: dict[tuple, str] = {}


def _client():
    from prefect import get_client

    return get_client(sync_client=True)  # a notebook cell has a running loop: the sync client works in it


def reference_rmse(train: str, val: str, source: str, num_boost_round) -> float:
    """The plain reference pipeline on the same months and data (cached per kernel)."""
    key = (train, val, source, num_boost_round)
    if key not in _EXPECTED:
        import contextlib
        import io
        import tempfile

        from course_lib.ml import training

        # The loader announces each month's source: the check's own training says nothing in the learner's cell.
        with tempfile.TemporaryDirectory(prefix="check-reference-") as models, \
                contextlib.redirect_stdout(io.StringIO()):
            result = training.train_months(train, val, source=source, mode="reference",
                                           num_boost_round=num_boost_round, models_dir=models)
        _EXPECTED[key], _DATA_SOURCE[key] = result.rmse, result.source
    return _EXPECTED[key]


def report_rmse(markdown: str | None) -> float | None:
    """The RMSE in a report's table: the first row's cell under ``Validation RMSE (minutes)`` (None if absent)."""
    lines = [line.strip() for line in (markdown or "").splitlines()]
    for index, line in enumerate(lines):
        if not (line.startswith("|") and RMSE_COLUMN in line):
            continue
        column = [cell.strip() for cell in line.strip("|").split("|")].index(RMSE_COLUMN)
        for row in lines[index + 1:]:
            if not row.startswith("|"):
                return None
            cells = [cell.strip() for cell in row.strip("|").split("|")]
            if column >= len(cells) or set(cells[column]) <= set(":-"):  # the separator row
                continue
            try:
                return float(cells[column])
            except ValueError:
                return None
    return None


def _as_number(value, name: str) -> float:
    if value is None:
        raise NotYet(f"`{name}` is None: assign the RMSE you read back to it.")
    if isinstance(value, bool):
        raise NotYet(f"`{name}` is {value!r}: assign the RMSE (a float).")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise NotYet(f"`{name}` is {value!r}, not a number: assign the RMSE (a float).") from None


def _compare(value, run_rmse: float, train: str, val: str, source: str, data_source: str, rounds) -> str:
    """The learner's value is the run's RMSE, and the run's RMSE the reference pipeline's on the same data."""
    value = _as_number(value, "your answer")
    if value != run_rmse:
        raise NotYet(f"your answer {value!r} is not the run's RMSE ({run_rmse!r}): read it back from the run, "
                     "do not retype it.")
    expected = reference_rmse(train, val, source, rounds)
    if abs(expected - run_rmse) > TOLERANCE:
        raise NotYet(f"the run's RMSE {run_rmse:.5f} differs from the reference pipeline's {expected:.5f} on the same "
                     f"months ({train} -> {val}, {data_source} data): train in mode 'reference', with your "
                     "orchestrate.py as the course left it.")
    note = ""
    if (train, val) == ("2023-01", "2023-02") and data_source == "file" and rounds is None:
        if abs(expected - KNOWN_JAN_FEB) > TOLERANCE:
            raise NotYet(f"on the real files the reference gives {expected:.5f}, not the course's {KNOWN_JAN_FEB}: "
                         "the data files differ from the TLC's (delete them and download again).")
        note = f" - the 2023 homework's answer on the real TLC files ({KNOWN_JAN_FEB})"
    return f"RMSE {value:.5f} on {train} -> {val} ({data_source} data{', %d rounds' % rounds if rounds else ''}){note}."


# -- question 1 ---------------------------------------------------------------------------------------------------
@exercise("10.1", "A task with a human-readable name and retries", wrong=[
    Wrong(hint="human-readable", change=('@task(name="Read taxi data", ', "@task(")),
    Wrong(hint="retries=3", change=("retries=3", "retries=2")),
    Wrong(hint="2 seconds", change=("retry_delay_seconds=2", "retry_delay_seconds=[2, 5, 10]")),
])
def named_task_with_retries(task_obj) -> str:
    from prefect import Task

    if not isinstance(task_obj, Task):
        raise NotYet(f"`read_taxi_month` is a {type(task_obj).__name__}, not a Prefect task: decorate the function "
                     "with @task(...).")
    function_name = task_obj.fn.__name__
    if task_obj.name == function_name:
        raise NotYet(f"the task is still called {function_name!r} (its function's name): give it a human-readable "
                     "name, @task(name=..., ...).")
    if task_obj.retries != 3:
        raise NotYet(f"the task retries {task_obj.retries or 0} time(s); the question asks for 3: retries=3.")
    delays = retry_delays(task_obj)
    if delays != [2.0, 2.0, 2.0]:
        raise NotYet(f"its retries wait {delays} s; the question asks for 2 seconds before each one: "
                     "retry_delay_seconds=2.")
    return f"Task {task_obj.name!r}: 3 retries, 2 s apart."


# -- question 2 ---------------------------------------------------------------------------------------------------
def _cron_problem(fields: list[str]) -> str | None:
    if len(fields) != 5:
        return f"a cron expression has five fields (minute hour day-of-month month day-of-week), not {len(fields)}"
    minute, hour, day, month, weekday = fields
    if weekday != "*" and day == "*":
        return (f"{weekday} in the day-of-week field (the fifth) means a weekday (3: Wednesday): the 3rd of the month "
                "goes in the day-of-month field (the third), and day-of-week stays *")
    if (minute, hour) != ("0", "9"):
        return "09:00 is minute 0, hour 9: the first two fields"
    if day != "3":
        return "the 3rd of the month is the day-of-month field (the third)"
    if (month, weekday) != ("*", "*"):
        return "every month, whatever the weekday: the last two fields are * *"
    return None


@exercise("10.2", "The 3rd of every month at 09:00 UTC, on your deployment", wrong=[
    Wrong(hint="hour 9", change=('cron = "0 9 3 * *"', 'cron = "0 3 9 * *"')),
    Wrong(hint="Wednesday", change=('cron = "0 9 3 * *"', 'cron = "0 9 * * 3"')),
    Wrong(hint="UTC", change=("--timezone UTC", "--timezone Europe/Paris")),
])
def monthly_schedule(cron, deployment: str = DEPLOYMENT) -> str:
    from prefect.exceptions import ObjectNotFound

    if not cron:
        raise NotYet("`cron` is empty: write the five fields, minute hour day-of-month month day-of-week.")
    problem = _cron_problem(normalise_cron(cron))
    if problem:
        raise NotYet(f"{cron!r} is not the 3rd of every month at 09:00: {problem}.")
    with _client() as client:
        try:
            found = client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise NotYet(f"There is no deployment {deployment}: run the cell above that deploys it.") from None
    schedules = [(getattr(s.schedule, "cron", None), getattr(s.schedule, "timezone", None), s.active)
                 for s in found.schedules]
    matching = [entry for entry in schedules if entry[0] and normalise_cron(entry[0]) == CRON]
    if not matching:
        listed = ", ".join(f"{cron_} ({zone or 'UTC'})" if cron_ else "not a cron" for cron_, zone, _ in schedules)
        raise NotYet(f"your deployment {deployment} has no schedule with cron {cron!r} (it has: {listed or 'none'}): "
                     f"create it with `prefect deployment schedule create {deployment} --cron ... --timezone UTC`.")
    cron_, zone, active = matching[0]
    if zone not in (None, "UTC", "Etc/UTC"):
        raise NotYet(f"the schedule's time zone is {zone!r}: the question says 09:00 UTC (--timezone UTC).")
    if not active:
        raise NotYet("the schedule is paused: make it active (--active, or `prefect deployment schedule resume`).")
    return f"{deployment} runs at 09:00 UTC on the 3rd of every month ({cron_})."


# -- questions 3 and 4: runs of your deployment ----------------------------------------------------------------------
def _latest_run(train: str, val: str, deployment: str = DEPLOYMENT):
    """The newest run of the learner's flow on these months, with the deployment's id (None if it has none)."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.exceptions import ObjectNotFound

    with _client() as client:
        try:
            target = client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise NotYet(f"There is no deployment {deployment}: run the cell above that deploys it.") from None
        flow_name = client.read_flow(target.flow_id).name
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                                     sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=200)
    # Not the runs a schedule made ahead of time (question 2's): they carry the deployment's default months too.
    runs = [run for run in runs if not run.auto_scheduled
            and (run.parameters.get("train_month"), run.parameters.get("val_month")) == (train, val)]
    runs.sort(key=lambda run: run.created, reverse=True)
    if not runs:
        raise NotYet(f"there is no run of your flow on {train} -> {val} yet: run your deployment {deployment} with "
                     f"train_month={train!r}, val_month={val!r} and mode='reference'.")
    run = runs[0]
    if run.deployment_id is None:
        raise NotYet(f"the newest run on {train} -> {val}, {run.name}, ran in this notebook's process, not through "
                     f"your deployment: run {deployment} (run_deployment(...)), so that the worker runs it.")
    if run.deployment_id != target.id:
        raise NotYet(f"the newest run on {train} -> {val}, {run.name}, comes from another deployment: run "
                     f"{deployment}.")
    if not run.state or not run.state.is_completed():
        raise NotYet(f"the run {run.name} is {run.state.name if run.state else 'unknown'}, not Completed: wait for it "
                     "(run_deployment(..., timeout=...)) or read its logs in the UI.")
    return run


def _run_result(run) -> float:
    try:
        return run.state.result(_sync=True)
    except Exception as error:  # noqa: BLE001 - a result that cannot be read: its error is the hint
        raise NotYet(f"the result of run {run.name} cannot be read back ({type(error).__name__}: {error}): your "
                     "main_flow must persist its result (persist_result=True, lesson 02).") from None


def _mode_is_reference(run) -> None:
    if run.parameters.get("mode") != "reference":
        raise NotYet(f"the run {run.name} trained in mode {run.parameters.get('mode', 'fast')!r}; the homework asks "
                     "for the 2023 model: add mode='reference' to its parameters.")


@exercise("10.3", "Jan -> Feb 2023 through your deployment, reference mode: the RMSE", wrong=[
    Wrong(hint="mode='reference'", change=('"mode": "reference",\n              ', "")),
    Wrong(hint="do not retype", code="rmse_jan_feb = 5.19931  # the 2023 homework's answer\n"),
    # Run in this process (fast mode: the check refuses it before the mode, and a reference training costs more).
    Wrong(hint="not through your deployment", code=(
        "from course_lib.tooling.project import load_module\n\n"
        "rmse_jan_feb = load_module(\"orchestrate\").main_flow(\"2023-01\", \"2023-02\", source=source, "
        "num_boost_round=num_boost_round)\n")),
])
def rmse_jan_feb(value, deployment: str = DEPLOYMENT) -> str:
    run = _latest_run("2023-01", "2023-02", deployment)
    run_rmse = _run_result(run)
    answer = _as_number(value, "rmse_jan_feb")
    if answer != run_rmse:
        if abs(answer - run_rmse) < 5e-6:
            raise NotYet(f"{answer} is the run's RMSE rounded ({run_rmse!r}): read the run's result itself "
                         "(state.result()), do not retype it.")
        raise NotYet(f"your answer {answer!r} is not the RMSE of your run {run.name} ({run_rmse!r}): read it back from "
                     "the run (its state's result), do not retype it.")
    _mode_is_reference(run)
    source, rounds = run.parameters.get("source", "auto"), run.parameters.get("num_boost_round")
    reference_rmse("2023-01", "2023-02", source, rounds)
    return f"Your run {run.name}: " + _compare(answer, run_rmse, "2023-01", "2023-02", source,
                                              _DATA_SOURCE[("2023-01", "2023-02", source, rounds)], rounds)


def jan_feb_run(source: str = "auto", num_boost_round: int | None = None, **_lesson_parameters) -> CheckResult:
    """For the catch-up: is there a completed reference run of the deployment on January -> February?"""
    try:
        run = _latest_run("2023-01", "2023-02")
        _mode_is_reference(run)
        rmse = _run_result(run)
    except NotYet as hint:
        return CheckResult("10.3", "a run of question 3", False, str(hint))
    return CheckResult("10.3", "a run of question 3", True, f"{run.name}: RMSE {rmse:.5f}")


jan_feb_run.exercise = "10.3"


def run_jan_feb(source: str = "auto", num_boost_round: int | None = None) -> str:
    """Question 3's run, as its solution makes it (catch-up)."""
    from prefect.deployments import run_deployment

    parameters = {"train_month": "2023-01", "val_month": "2023-02", "mode": "reference", "source": source,
                  "num_boost_round": num_boost_round}
    run = run_deployment(DEPLOYMENT, parameters=parameters, timeout=900, _sync=True)
    if not run.state.is_completed():
        return f"ran {DEPLOYMENT} on 2023-01 -> 2023-02 (reference): {run.name} ended {run.state.name}"
    return (f"ran {DEPLOYMENT} on 2023-01 -> 2023-02 (reference): {run.name}, RMSE {run.state.result(_sync=True)!r} "
            "(question 3's answer)")


@exercise("10.4", "Feb -> Mar 2023 through your deployment: the RMSE from its report", wrong=[
    Wrong(hint="mode='reference'", change=('"mode": "reference",\n              ', "")),
    Wrong(hint="the run's result",
          code="rmse_feb_mar = await feb_mar.state.result()  # the run's result, not its report\n"),
    Wrong(hint="not the number in the report", code="rmse_feb_mar = 5.37  # the 2023 homework's answer\n"),
])
def rmse_from_artifact(value, key: str = REPORT_KEY, deployment: str = DEPLOYMENT) -> str:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    from course_lib.tooling import project

    run = _latest_run("2023-02", "2023-03", deployment)
    with _client() as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]),
                                           flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])),
            sort=ArtifactSort.CREATED_DESC, limit=1)
    if not artifacts:
        pushed = project.pushed("orchestrate.py") or ""
        if "create_markdown_artifact" not in pushed:
            raise NotYet(f"your run {run.name} published no report {key!r}: the code the worker clones (what you "
                         "pushed) has no publish_report. Commit and push your orchestrate.py of lesson 06 "
                         "(`git add`, `git commit`, `git push`), then run your deployment again.")
        raise NotYet(f"your run {run.name} published no report {key!r}: keep lesson 06's publish_report (its key "
                     f"{key!r}) in your main_flow.")
    in_report = report_rmse(artifacts[0].data)
    if in_report is None:
        raise NotYet(f"the report of run {run.name} has no table with a column {RMSE_COLUMN!r} and a row "
                     "`| <date> | <RMSE> |`: keep the report of lesson 06 (publish_report) as it is.")
    answer = _as_number(value, "rmse_feb_mar")
    if answer != in_report:
        run_rmse = _run_result(run)
        if answer == run_rmse:
            raise NotYet(f"{answer!r} is the run's result (all its decimals); the question reads the RMSE from the "
                         f"report: the number in its table ({in_report}), from Artifact.get({key!r}).data.")
        raise NotYet(f"{answer!r} is not the number in the report ({in_report}): read it from the artifact's markdown, "
                     "do not retype it.")
    _mode_is_reference(run)
    source, rounds = run.parameters.get("source", "auto"), run.parameters.get("num_boost_round")
    expected = reference_rmse("2023-02", "2023-03", source, rounds)
    if abs(expected - in_report) > 5e-6 + TOLERANCE:  # the report rounds to 5 decimals
        raise NotYet(f"the report's RMSE {in_report} differs from the reference pipeline's {expected:.5f} on the same "
                     "months and data: train in mode 'reference', with your orchestrate.py as the course left it.")
    data_source = _DATA_SOURCE[("2023-02", "2023-03", source, rounds)]
    return (f"RMSE {in_report} on 2023-02 -> 2023-03 ({data_source} data{', %d rounds' % rounds if rounds else ''}), "
            f"read from the report of your run {run.name}.")


# -- question 5 ---------------------------------------------------------------------------------------------------
# A wrong answer: the async task called directly in a sync flow (a coroutine, never run: nothing is sent).
_EMAIL_CALLED_DIRECTLY = '''from prefect import flow
from prefect_email import EmailServerCredentials, email_send_message

task_name = "email_send_message"


@flow
def email_rmse(rmse: float, email_to: str = "me@course.local") -> None:
    credentials = EmailServerCredentials.load("homework-email")
    email_send_message(email_server_credentials=credentials, subject=f"Homework: RMSE {rmse:.5f}",
                       msg=f"Validation RMSE, January -> February 2023: {rmse:.5f}", email_to=email_to)


email_rmse(rmse_jan_feb)
'''


@exercise("10.5", "prefect-email's task, in a flow that emails question 3's RMSE", wrong=[
    Wrong(hint=".submit(", code=_EMAIL_CALLED_DIRECTLY),
    Wrong(hint="no task named", change=('task_name = "email_send_message"', 'task_name = "send_email"')),
    Wrong(hint="question 3", change=("email_rmse(rmse_jan_feb)", "email_rmse(rmse_feb_mar)")),
])
def email_task(task_name, smtp) -> str:
    import prefect_email
    from prefect import Task

    if not task_name:
        raise NotYet("`task_name` is empty: which task of prefect_email sends a message? (dir(prefect_email) lists "
                     "them)")
    candidate = getattr(prefect_email, str(task_name), None)
    if not isinstance(candidate, Task):
        raise NotYet(f"prefect_email has no task named {task_name!r}: look for the one that sends a message.")
    if task_name != "email_send_message":
        raise NotYet(f"{task_name!r} is a prefect-email task, but not the one that sends a message.")
    try:
        run = _latest_run("2023-01", "2023-02")
        _mode_is_reference(run)
        rmse = _run_result(run)
    except NotYet as hint:
        raise NotYet(f"The email must carry question 3's RMSE, and {hint} (Or run the catch-up cell above.)") from None
    mails = smtp.messages()
    if not mails:
        raise NotYet(f"no email reached the local SMTP server ({smtp.address}): call your flow. email_send_message is "
                     "an async task: in a sync flow run it with .submit(...) and wait with .result().")
    mail = mails[-1]
    text = f"{mail['subject']}\n{mail['body']}"
    numbers = [float(number) for number in re.findall(r"\d+\.\d+", text)]
    if f"{rmse:.5f}" in text or repr(rmse) in text:
        return f"{task_name} sent {mail['subject']!r} to {', '.join(mail['to'])}: question 3's RMSE, {rmse:.5f}."
    if any(abs(number - rmse) < 0.006 for number in numbers):
        raise NotYet(f"the email {mail['subject']!r} rounds question 3's RMSE ({rmse:.5f}): give it with 5 decimals.")
    if numbers:
        raise NotYet(f"the email {mail['subject']!r} gives {numbers}, not question 3's RMSE ({rmse:.5f}, your run "
                     f"{run.name}): email rmse_jan_feb.")
    raise NotYet(f"the email {mail['subject']!r} does not give question 3's RMSE ({rmse:.5f}): put it in the subject.")


# -- question 6 ---------------------------------------------------------------------------------------------------
@exercise("10.6", "The wizard's steps, and an alert on your deployment's failures and crashes", wrong=[
    Wrong(hint="order",
          change=('steps = ["Trigger", "Actions", "Details"]', 'steps = ["Trigger", "Details", "Actions"]')),
    Wrong(hint="Crashed", change=('expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}',
                                  'expect={"prefect.flow-run.Failed"}')),
    Wrong(hint="any run of the flow",
          change=('"prefect.resource.role": "deployment", "prefect.resource.name": "taxi_local_data"',
                  '"prefect.resource.role": "flow", "prefect.resource.name": "main-flow"')),
])
def automation_steps(steps, name: str = ALERT, deployment: str = DEPLOYMENT) -> str:
    from prefect.automations import EventTrigger, Posture, SendNotification

    from course_lib.tooling.checks.lesson09 import _includes

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
        target = client.read_deployment_by_name(deployment)
        flow_name = client.read_flow(target.flow_id).name
    automation = found[0]
    trigger = automation.trigger
    if not isinstance(trigger, EventTrigger) or trigger.posture != Posture.Reactive or trigger.threshold != 1:
        raise NotYet(f"the automation {name!r} must react to each event (an EventTrigger, posture=Posture.Reactive, "
                     "threshold=1).")
    missing = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"} - set(trigger.expect)
    if missing:
        raise NotYet(f"its trigger expects {sorted(trigger.expect)}: a run that fails emits prefect.flow-run.Failed, "
                     f"one whose process dies prefect.flow-run.Crashed; the question asks for both (missing: "
                     f"{sorted(missing)}).")
    deployment_run = [{"prefect.resource.id": f"prefect.flow.{target.flow_id}", "prefect.resource.role": "flow",
                       "prefect.resource.name": flow_name},
                      {"prefect.resource.id": f"prefect.deployment.{target.id}", "prefect.resource.role": "deployment",
                       "prefect.resource.name": target.name}]
    if not _includes(trigger.match_related, deployment_run):
        raise NotYet(f"its match_related does not select the runs of your deployment (role 'deployment', name "
                     f"{target.name!r}).")
    if _includes(trigger.match_related, deployment_run[:1]):
        raise NotYet(f"it fires for any run of the flow {flow_name!r}, not only your deployment's: match_related with "
                     f"role 'deployment' and name {target.name!r}.")
    if not any(isinstance(action, SendNotification) for action in automation.actions):
        raise NotYet(f"the automation {name!r} sends no notification: SendNotification(block_document_id=..., ...).")
    return f"Trigger -> Actions -> Details; {name!r} notifies when a run of {deployment} fails or crashes."


def catch_up(**lesson_parameters):
    """Stuck on question 3? Runs your deployment on January -> February in reference mode (what question 3 asks),
    so that question 5 has its RMSE to send."""
    def run_it() -> str:
        return run_jan_feb(**{key: value for key, value in lesson_parameters.items()
                              if key in ("source", "num_boost_round")})

    return _catch_up(LESSON, [CatchUp(jan_feb_run, then=run_it)], **lesson_parameters)
