"""Checks of lesson 09 · Events, automations and notifications: they run the learner's own work.

* 09.1 imports their ``notify.py``, runs its flow and reads the email it sent from the SMTP server
  that the email block names (the course's local one keeps every message it accepts).
* 09.2 reads their automation back from the server, then makes it fire: a run of their deployment
  ``main-flow/taxi_local_data`` that fails on purpose, and the notification read from the webhook
  receiver the block is aimed at.
* 09.3 reads the trigger in their ``prefect.yaml``, deploys ``taxi_s3_data`` with it and reads the
  automation the server made of it.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlparse

from course_lib.tooling import project
from course_lib.tooling.checks import CatchUp, NotYet, Wrong, catch_up as _catch_up, exercise

LESSON = 9
#: What the lesson saves and the exercises use (the lesson's text says them in words).
EMAIL_BLOCK = "taxi-email"
WEBHOOK_BLOCK = "taxi-slack"
ALERT = "taxi-training-failed"
DEPLOYMENT = "main-flow/taxi_local_data"
S3_DEPLOYMENT = "taxi_s3_data"
ARRIVED = "taxi.data.arrived"
#: A training mode that does not exist: the run reads its months, then fails at once (no retries there).
FAILING_PARAMETERS = {"mode": "turbo"}
FAILING_REASON = "unknown mode"  # in the failed state's message, so in a notification that says why
_BY_NAME = object()  # failure_alert() without an automation: look it up by name (catch-up)


def _records(kind: str, port: int | None) -> list[dict] | None:
    """What the course's local receiver on ``port`` accepted (None: no such receiver on this machine)."""
    from course_lib import paths
    from course_lib.services.receivers import _read_jsonl

    path = paths.subdir("receivers") / f"{kind}-{port}.jsonl"
    return _read_jsonl(path) if port and path.exists() else None


def _since(records: list[dict], started: datetime) -> list[dict]:
    return [record for record in records if datetime.fromisoformat(record["received"]) >= started]


# -- 09.1 · your flow emails its RMSE ------------------------------------------------------------------------------
def _their_notify():
    path = project.folder() / "notify.py"
    if not path.is_file():
        raise NotYet(f"There is no {path}: run the lesson's first code cell (it creates your project), then the "
                     "exercise cell.")
    try:
        return project.load_module("notify")
    except Exception as error:  # noqa: BLE001 - the learner's file: its error is the hint
        raise NotYet(f"Importing your notify.py fails: {type(error).__name__}: {error}. Fix the file (the names come "
                     "from `prefect` and `prefect_email`) and run this check again.") from None


def _wrong_notify(*replacements: tuple[str, str]) -> str:
    """The solution of 09.1 with every ``old`` replaced by ``new`` (a wrong answer)."""
    code = project.solution_for("notify.py", LESSON)
    for old, new in replacements:
        assert old in code, old
        code = code.replace(old, new)
    return code


@exercise("09.1", "Email the RMSE from your flow", wrong=[
    Wrong(hint="not a flow", change=("@flow\n", "")),
    Wrong(hint=".submit(", code=_wrong_notify(("email_send_message.submit(", "email_send_message("),
                                              (").result()", ")"))),
    Wrong(hint="not to the address", change=("email_to=email_to,", 'email_to="ml-team@course.local",')),
    Wrong(hint="5 decimals", code=_wrong_notify(("{rmse:.5f}", "{rmse:.2f}"))),
])
def emailed_rmse(train_month: str = "2023-01", val_month: str = "2023-02", source: str = "auto",
                 num_boost_round: int | None = None, email_block: str = EMAIL_BLOCK) -> str:
    from prefect import Flow
    from prefect_email import EmailServerCredentials

    module = _their_notify()
    flow_obj = getattr(module, "train_and_email", None)
    if flow_obj is None:
        raise NotYet("Your notify.py has no `train_and_email`: keep the function's name.")
    if not isinstance(flow_obj, Flow):
        raise NotYet("`train_and_email` is not a flow yet: put `@flow` (from prefect) on the line above "
                     "`def train_and_email`, so that its runs, and the email task's, are recorded.")
    try:
        credentials = EmailServerCredentials.load(email_block, _sync=True)
    except ValueError:
        raise NotYet(f"There is no EmailServerCredentials block named {email_block!r}: run the cell above the exercise "
                     "that saves it.") from None
    port = int(credentials.smtp_port or credentials.smtp_type.value)
    address = f"you-{uuid.uuid4().hex[:6]}@course.local"  # an address of the check's own: it must come from email_to
    started = datetime.now(timezone.utc)
    try:
        state = flow_obj(email_to=address, train_month=train_month, val_month=val_month, source=source,
                         num_boost_round=num_boost_round, email_block=email_block, return_state=True)
    except TypeError as error:
        raise NotYet(f"Calling train_and_email(email_to=..., train_month=..., ...) fails: {error}. Keep the function's "
                     "parameters as the file had them.") from None
    if not state.is_completed():
        message = state.message or ""
        if "coroutine" in message:
            raise NotYet(f"Your flow ended {state.name}: {message}. email_send_message is an async task: called in a "
                         "sync flow it only makes a coroutine. Run it with .submit(...) and wait with .result().")
        raise NotYet(f"Your flow ended {state.name}: {message}. Run `train_and_email(...)` in a cell to read its "
                     "error.")
    rmse = state.result(_sync=True)
    if not isinstance(rmse, float):
        raise NotYet(f"train_and_email returned {rmse!r}: return the RMSE that main_flow returned.")
    records = _records("smtp", port)
    if records is None:  # a real provider: the check cannot read your mailbox, only the run
        return (f"Your flow trained (RMSE {rmse:.5f}) and sent the email through {credentials.smtp_server}:{port}: "
                f"look for it at {address}'s mailbox... which is the check's own: send one to yourself to see it.")
    deadline = time.monotonic() + 5  # the SMTP server writes what it accepted a moment later
    while not (mine := [r for r in _since(_records("smtp", port), started) if address in r["to"]]):
        if time.monotonic() > deadline:
            others = _since(_records("smtp", port), started)
            if others:
                raise NotYet(f"Your flow sent {others[-1]['subject']!r} to {', '.join(others[-1]['to'])}, not to the "
                             f"address it was given ({address}): pass email_to=email_to to email_send_message.")
            raise NotYet(f"Your flow completed, but no email reached the SMTP server at 127.0.0.1:{port}. "
                         "email_send_message is an async task: called in a sync flow it only makes a coroutine and "
                         "sends nothing. Run it with .submit(...) and wait for it with .result().")
        time.sleep(0.3)
    email = mine[-1]
    text = f"{email['subject']}\n{email['body']}"
    if f"{rmse:.5f}" not in text:
        rounded = [f"{rmse:.{digits}f}" for digits in range(5)]
        if any(value in text for value in rounded):
            raise NotYet(f"The email {email['subject']!r} gives the RMSE with fewer than 5 decimals: write it as "
                         f"{{rmse:.5f}} ({rmse:.5f}), as the report of lesson 06 does.")
        raise NotYet(f"The email {email['subject']!r} does not give the run's RMSE ({rmse:.5f}): put it in the subject "
                     "(and the message), as {rmse:.5f}.")
    return (f"Your flow trained (RMSE {rmse:.5f}) and emailed {email['subject']!r} to {address}: the SMTP server at "
            f"127.0.0.1:{port} accepted it.")


# -- 09.2 · an alert on your deployment's failures --------------------------------------------------------------------
def _includes(spec, related: list[dict]) -> bool:
    """Whether a trigger's match_related (a spec or a list of them, all required) selects these related resources."""
    from prefect.events.schemas.events import RelatedResource, ResourceSpecification

    specs = spec if isinstance(spec, list) else [spec]
    resources = [RelatedResource(resource) for resource in related]
    return all((each if isinstance(each, ResourceSpecification) else ResourceSpecification(each)).includes(resources)
               for each in specs)


def _webhook_url(client, block_document_id) -> str | None:
    document = client.read_block_document(block_document_id, include_secrets=True)
    url = document.data.get("url")
    return getattr(url, "get_secret_value", lambda: url)() if url is not None else None


def _failing_run(client, deployment, parameters: dict):
    """A run of the deployment that fails on purpose (a training mode that does not exist); its final state."""
    from course_lib.tooling import deployments

    run = client.create_flow_run_from_deployment(deployment.id, parameters={**parameters, **FAILING_PARAMETERS})
    try:
        state = deployments.wait_for_flow_run(run.id, timeout=300, late_after=90)
    except deployments.DeploymentError as error:
        raise NotYet(f"To make your automation fire, the check started a run of {DEPLOYMENT} that must fail, but: "
                     f"{error}") from None
    return client.read_flow_run(run.id), state


def _alert_problems(automation, deployment, flow_name: str) -> str | None:
    from prefect.automations import EventTrigger, Posture, SendNotification

    trigger = automation.trigger
    if not isinstance(trigger, EventTrigger):
        return (f"its trigger is a {type(trigger).__name__}; a run's state change is one event: use an "
                "EventTrigger(expect=..., match_related=..., posture=Posture.Reactive, threshold=1).")
    if trigger.posture == Posture.Proactive:
        return ("its trigger is Proactive: it fires when the expected events do NOT happen within `within` (a run "
                "that never arrives). An alert on failures reacts to the event: posture=Posture.Reactive.")
    expected = set(trigger.expect)
    if "prefect.flow-run.Failed" not in expected:
        if any("*" in name for name in expected):
            return (f"it expects {sorted(expected)}: a wildcard takes every state change of the run (Pending, "
                    "Running, Completed...). Expect the one event: 'prefect.flow-run.Failed'.")
        return (f"it expects {sorted(expected)}; a run that fails emits 'prefect.flow-run.Failed' (the events table "
                "of section 1 lists a run's events).")
    if trigger.threshold != 1:
        return (f"its threshold is {trigger.threshold}: it fires only after {trigger.threshold} failures within "
                f"`within` ({trigger.within}). Alert on the first failure: threshold=1.")
    deployment_run = [{"prefect.resource.id": f"prefect.flow.{deployment.flow_id}", "prefect.resource.role": "flow",
                       "prefect.resource.name": flow_name},
                      {"prefect.resource.id": f"prefect.deployment.{deployment.id}",
                       "prefect.resource.role": "deployment", "prefect.resource.name": deployment.name},
                      {"prefect.resource.id": "prefect.work-pool.x", "prefect.resource.role": "work-pool",
                       "prefect.resource.name": deployment.work_pool_name or "local-pool"}]
    run_in_a_notebook = deployment_run[:1]
    if not _includes(trigger.match_related, deployment_run):
        return (f"its match_related does not select the runs of your deployment: their related resource has role "
                f"'deployment' and name {deployment.name!r} (section 1's table).")
    if _includes(trigger.match_related, run_in_a_notebook):
        return (f"it fires for any run of the flow {flow_name!r}, also the ones started in a notebook or a terminal. "
                f"Select your deployment's runs: match_related with role 'deployment' and name {deployment.name!r}.")
    sends = [action for action in automation.actions if isinstance(action, SendNotification)]
    if not sends:
        return (f"its actions are {[action.type for action in automation.actions]}: send a notification through the "
                f"webhook block, SendNotification(block_document_id=..., subject=..., body=...).")
    if not automation.enabled:
        return f"it is paused: `prefect automation resume {automation.name}`."
    return None


@exercise("09.2", "Alert when a run of your deployment fails", wrong=[
    Wrong(hint="Proactive", change=("posture=Posture.Reactive,", "posture=Posture.Proactive,")),
    Wrong(hint="threshold", change=("threshold=1,", "threshold=5,")),
    Wrong(hint="any run of the flow",
          change=('"prefect.resource.role": "deployment", "prefect.resource.name": "taxi_local_data"',
                  '"prefect.resource.role": "flow", "prefect.resource.name": "main-flow"')),
    Wrong(hint="does not say why", change=("{{ flow_run.state.message }}", "{{ flow_run.state_message }}")),
])
def failure_alert(automation=_BY_NAME, name: str = ALERT, deployment: str = DEPLOYMENT, source: str = "auto",
                  num_boost_round: int | None = None, **_lesson_parameters) -> str:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    from course_lib.pipeline import notify

    if automation is None:
        raise NotYet("`taxi_alert` is None: keep what `await Automation(...).acreate()` returns in it.")
    with get_client(sync_client=True) as client:  # a notebook cell has a running loop: the sync client
        found = client.read_automations_by_name(name)
        if automation is not _BY_NAME and getattr(automation, "id", None) not in {each.id for each in found}:
            raise NotYet(f"`taxi_alert` is not the automation named {name!r} on the server: name it {name!r} and keep "
                         "what `.acreate()` returns.")
        if not found:
            raise NotYet(f"The server has no automation named {name!r}: create it with "
                         f"Automation(name={name!r}, trigger=..., actions=[...]) and `await ....acreate()`.")
        if len(found) > 1:
            raise NotYet(f"The server has {len(found)} automations named {name!r} (names are not unique): delete the "
                         "older ones first, as the lesson's cells do, so that one alert fires.")
        alert = found[0]
        try:
            target = client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise NotYet(f"There is no deployment {deployment} on the server: run the lesson's cell that deploys your "
                         "project (`prefect deploy --name taxi_local_data`).") from None
        flow_name = client.read_flow(target.flow_id).name
        problem = _alert_problems(alert, target, flow_name)
        if problem:
            raise NotYet(f"Your automation {name!r} is not there yet: {problem}")
        block_id = next(action.block_document_id for action in alert.actions if hasattr(action, "block_document_id"))
        url = _webhook_url(client, block_id)
        port = urlparse(url).port if url and urlparse(url).hostname in ("127.0.0.1", "localhost") else None
        if _records("webhook", port) is None:
            raise NotYet(f"Its notification goes to {url or 'a block without a URL'}, not to the lesson's webhook "
                         f"receiver: use the block {WEBHOOK_BLOCK!r} (block_id), which is aimed at it.")
        started = datetime.now(timezone.utc)
        run, state = _failing_run(client, target, {"source": source, "num_boost_round": num_boost_round})
    if state != "Failed":
        raise NotYet(f"The check's run {run.name} of {deployment} (parameters {FAILING_PARAMETERS}) ended {state}, "
                     "not Failed: keep your orchestrate.py's training as it is (it refuses a mode it does not know).")
    deadline = time.monotonic() + 45
    while True:
        record = notify.automation_events(alert.id, since=started)
        events = set(record["event"])
        if events & {"prefect.automation.action.executed", "prefect.automation.action.failed"}:
            break
        if time.monotonic() > deadline:
            if "prefect.automation.triggered" in events:
                raise NotYet(f"Your automation fired for run {run.name}, but its notification was not sent within "
                             f"45 s: read its events in the UI (Automations > {name} > Events).")
            raise NotYet(f"Run {run.name} of {deployment} failed, and your automation did not fire within 45 s: its "
                         "trigger does not match the run's Failed event.")
        time.sleep(1)
    if "prefect.automation.action.failed" in events and "prefect.automation.action.executed" not in events:
        raise NotYet(f"Your automation fired for run {run.name}, but its notification could not be delivered to {url}: "
                     "is the webhook receiver running?")
    time.sleep(1)  # the receiver writes the request a moment after it answered
    arrived = _since(_records("webhook", port) or [], started)
    if not arrived:
        raise NotYet(f"Your automation fired for run {run.name} and says it notified, but nothing reached {url}.")
    naming = [each for each in arrived if run.name in each["body"]]
    if not naming:
        raise NotYet(f"The notification arrived, but it does not name the failed run ({run.name}): "
                     f"{arrived[-1]['body']!r}. Put {{{{ flow_run.name }}}} in the subject.")
    message = naming[-1]["body"]
    if FAILING_REASON not in message:
        raise NotYet(f"The notification names run {run.name} but does not say why it failed: {message!r}. Put the "
                     "failed state's message in the body: {{ flow_run.state.message }}.")
    return (f"Run {run.name} of {deployment} failed on purpose ({FAILING_PARAMETERS}); your automation "
            f"{name!r} fired and the webhook receiver got: {message[:160]!r}.")


def create_reference_alert(name: str = ALERT) -> str:
    """The automation 09.2 asks for, on the lesson's webhook block (catch-up)."""
    from prefect import get_client
    from prefect.automations import Automation, EventTrigger, Posture, SendNotification
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock.load(WEBHOOK_BLOCK, _sync=True)
    with get_client(sync_client=True) as client:
        for old in client.read_automations_by_name(name):
            client.delete_automation(old.id)
    Automation(
        name=name,
        description="A run of my deployment taxi_local_data failed.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed"},
            match_related={"prefect.resource.role": "deployment", "prefect.resource.name": "taxi_local_data"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[SendNotification(block_document_id=block._block_document_id,
                                  subject="{{ deployment.name }}: run {{ flow_run.name }} failed",
                                  body="{{ flow_run.state.message }}")],
    ).create(_sync=True)
    return f"created the automation {name!r} (the course's version)"


# -- 09.3 · retrain when a month lands -------------------------------------------------------------------------------
SAMPLE_EVENT = {"event": ARRIVED, "resource": {"prefect.resource.id": "taxi.month.2023-03", "month": "2023-03"},
                "payload": {"previous_month": "2023-02"}}


def _render(template) -> str:
    import jinja2

    return jinja2.Environment().from_string(str(template)).render(event=SAMPLE_EVENT)


def _misplaced_trigger() -> str:
    """The solution of 09.3 with the trigger under taxi_local_data (a wrong answer)."""
    code = project.solution_for("prefect.yaml", LESSON)
    start = code.index("  # Retrain when a month lands")
    block = code[start:]
    code = code[:start]
    anchor = "    name: local-pool\n"
    at = code.index(anchor) + len(anchor)
    return code[:at] + block + code[at:]


def _their_yaml() -> dict:
    import yaml

    path = project.folder() / "prefect.yaml"
    if not path.is_file():
        raise NotYet(f"There is no {path}: run the lesson's first code cell, which creates your project.")
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise NotYet(f"Your prefect.yaml is not valid YAML: {error}. Indent with spaces, as the rest of the "
                     "file.") from None
    if not isinstance(content, dict) or not isinstance(content.get("deployments"), list):
        raise NotYet("Your prefect.yaml has no `deployments:` list any more: keep the file as lesson 05 left it and "
                     "add the trigger under taxi_s3_data.")
    return content


def _trigger_problem(trigger: dict) -> str | None:
    expect = trigger.get("expect") or []
    if ARRIVED not in expect:
        return f"it expects {expect!r}; the upload job's event is named {ARRIVED!r}."
    match = trigger.get("match") or {}
    pattern = match.get("prefect.resource.id") if isinstance(match, dict) else None
    if not pattern:
        return ("it has no `match` on the resource: select the months' resources, whose ids are taxi.month.<month> "
                "(prefect.resource.id with a * wildcard).")
    from prefect.events.schemas.events import Resource, ResourceSpecification

    if not ResourceSpecification(match).matches(Resource(SAMPLE_EVENT["resource"])):
        return (f"its match {match!r} does not select the resource taxi.month.2023-03: a pattern without a * wildcard "
                "matches one id exactly; end it with * (taxi.month.*).")
    parameters = trigger.get("parameters") or {}
    wanted = {"train_month": "2023-02", "val_month": "2023-03"}
    for name, value in wanted.items():
        if name not in parameters:
            return f"its parameters have no {name}: the run takes it from the event."
        template = str(parameters[name])
        if "{" in template and "{{" not in template:
            return (f"{name} is {template!r}: a Jinja template has two braces on each side, "
                    "'{{ event.resource.month }}'.")
        try:
            rendered = _render(template)
        except Exception as error:  # noqa: BLE001 - a template that does not render: its error is the hint
            return f"{name}'s template {template!r} does not render: {error}."
        if rendered != value:
            return (f"for the event of March (resource label month '2023-03', payload previous_month '2023-02'), "
                    f"{name} renders as {rendered!r}, not {value!r}: the validation month is the event's resource "
                    "label ({{ event.resource.month }}), the training month the one before, in its payload "
                    "({{ event.payload.previous_month }}).")
    return None


@exercise("09.3", "Retrain when a month lands in the bucket", wrong=[
    Wrong(hint="two braces", change=("'{{ event.resource.month }}'", "'{event.resource.month}'")),
    Wrong(hint="wildcard", change=("prefect.resource.id: taxi.month.*", "prefect.resource.id: taxi.month")),
    Wrong(hint="under taxi_local_data", code=_misplaced_trigger()),
    Wrong(hint="a list", change=("    expect:\n    - taxi.data.arrived\n", "    expect: taxi.data.arrived\n")),
])
def retrain_trigger(**_lesson_parameters) -> str:
    from prefect import get_client
    from prefect.events.actions import RunDeployment

    from course_lib.tooling import deployments

    content = _their_yaml()
    by_name = {entry.get("name"): entry for entry in content["deployments"] if isinstance(entry, dict)}
    if S3_DEPLOYMENT not in by_name:
        raise NotYet(f"Your prefect.yaml has no deployment {S3_DEPLOYMENT} (lesson 05 added it): keep it, and add the "
                     "trigger under it.")
    triggers = by_name[S3_DEPLOYMENT].get("triggers")
    if not triggers:
        elsewhere = [name for name, entry in by_name.items() if entry.get("triggers")]
        if elsewhere:
            raise NotYet(f"The trigger is under {elsewhere[0]}: it would run that deployment. The S3 flow retrains "
                         f"from the bucket: put `triggers:` under {S3_DEPLOYMENT} (at the level of its `work_pool:`).")
        raise NotYet(f"The deployment {S3_DEPLOYMENT} in your prefect.yaml has no `triggers:` yet.")
    if not isinstance(triggers, list) or not all(isinstance(each, dict) for each in triggers):
        raise NotYet("`triggers:` is a list of triggers: each one starts with `- type: event`.")
    problems = [problem for problem in map(_trigger_problem, triggers) if problem]
    if len(problems) == len(triggers):
        raise NotYet(f"The trigger of {S3_DEPLOYMENT} is not there yet: {problems[0]}")
    # What the server makes of it: deploy as `prefect deploy --name taxi_s3_data` does, read the automation back.
    result = deployments.prefect_cli("deploy", "--name", S3_DEPLOYMENT, cwd=project.folder(), check=False, show=False)
    if result.returncode != 0:
        said = [line.strip() for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and not line.strip().startswith("For further information")][-4:]
        hint = " ".join(said)
        if "valid set" in hint or "valid list" in hint:
            hint += (" - expect is a list of event names: one `- taxi.data.arrived` line under `expect:`, as in the "
                     "table above.")
        raise NotYet(f"`prefect deploy --name {S3_DEPLOYMENT}` refused your prefect.yaml: {hint}")
    with get_client(sync_client=True) as client:
        target = client.read_deployment_by_name(f"main-flow-s3/{S3_DEPLOYMENT}")
        automations = client.read_resource_related_automations(f"prefect.deployment.{target.id}")
    runs = [automation for automation in automations if ARRIVED in automation.trigger.expect
            and any(isinstance(action, RunDeployment) and action.deployment_id == target.id
                    for action in automation.actions)]
    if not runs:
        raise NotYet(f"After `prefect deploy`, the server holds no trigger of {S3_DEPLOYMENT} on {ARRIVED}.")
    if not runs[0].enabled:
        raise NotYet(f"The server holds your trigger ({runs[0].name}) disabled: drop `enabled: false`.")
    parameters = next(action.parameters for action in runs[0].actions if isinstance(action, RunDeployment))
    return (f"Deployed: the server holds your trigger as the automation {runs[0].name!r}: {ARRIVED} on taxi.month.* "
            f"runs main-flow-s3/{S3_DEPLOYMENT} with {parameters}.")


def catch_up(**lesson_parameters):
    """Stuck or skipped? Writes the course's notify.py and prefect.yaml of lesson 09 where yours do not pass their
    checks (yours are kept), creates the course's alert if yours does not fire, and deploys the trigger."""
    return _catch_up(LESSON, [CatchUp(emailed_rmse, files=("notify.py",)),
                              CatchUp(failure_alert, then=create_reference_alert),
                              CatchUp(retrain_trigger, files=("prefect.yaml",))], **lesson_parameters)
