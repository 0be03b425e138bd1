"""Checks of lesson 09 (events, automations, notifications): they read the learner's event and
automation back from the server."""

from __future__ import annotations

from course_lib.tooling.checks import NotYet, exercise

TRAINING_FLOW = "main-flow"


@exercise("09.1", "a custom event with the month as a resource")
def month_event(arrived, month: str = "2023-04") -> str:
    from prefect.events import Event

    from course_lib.pipeline import notify

    if arrived is None:
        raise NotYet("`arrived` is None: emit the event with `arrived = emit_event(event=\"taxi.data.arrived\", "
                     f"resource={{\"prefect.resource.id\": \"taxi.month.{month}\", \"month\": \"{month}\"}})`. "
                     "(emit_event also returns None when the resource is malformed: every resource needs a "
                     "string 'prefect.resource.id' and string labels.)")
    if not isinstance(arrived, Event):
        raise NotYet(f"`arrived` is a {type(arrived).__name__}; keep what emit_event(...) returns (an Event).")
    if arrived.event != "taxi.data.arrived":
        raise NotYet(f"the event is named {arrived.event!r}; name it 'taxi.data.arrived' (the deployment's "
                     "trigger expects exactly that name).")
    if arrived.resource.get("month") != month:
        raise NotYet(f"the event's resource has month={arrived.resource.get('month')!r}; add the label "
                     f"\"month\": \"{month}\" to the resource.")
    if not arrived.resource.id.startswith("taxi.month."):
        raise NotYet(f"the resource id is {arrived.resource.id!r}; use 'taxi.month.{month}' so the trigger's "
                     "match on 'taxi.month.*' selects it.")
    try:
        stored = notify.wait_for_event(arrived.id, timeout=30)
    except TimeoutError as error:
        raise NotYet(str(error)) from None
    return f"The server stored {stored.event} for {stored.resource.id} at {stored.occurred:%H:%M:%S} UTC."


@exercise("09.2", "an automation for crashed training runs")
def crash_automation(name: str, block_document_id) -> str:
    from prefect import get_client
    from prefect.automations import EventTrigger, SendNotification

    with get_client(sync_client=True) as client:  # a notebook cell has a running loop: use the sync client
        found = client.read_automations_by_name(name)
    automation = found[0] if found else None
    if automation is None:
        raise NotYet(f"the server has no automation named {name!r}: create it with "
                     f"`await Automation(name={name!r}, trigger=EventTrigger(...), actions=[SendNotification(...)]).acreate()`.")
    trigger = automation.trigger
    if not isinstance(trigger, EventTrigger):
        raise NotYet(f"its trigger is a {type(trigger).__name__}; use an EventTrigger on flow-run events.")
    if "prefect.flow-run.Crashed" not in trigger.expect:
        raise NotYet(f"its trigger expects {sorted(trigger.expect)}; expect 'prefect.flow-run.Crashed'.")
    related = trigger.match_related
    related = related if isinstance(related, list) else [related]
    names = [spec.get("prefect.resource.name") for spec in related if spec]
    if not any(TRAINING_FLOW == value or (isinstance(value, list) and TRAINING_FLOW in value) for value in names):
        raise NotYet("its trigger fires for any flow: add match_related={\"prefect.resource.role\": \"flow\", "
                     f"\"prefect.resource.name\": \"{TRAINING_FLOW}\"}} so only the training flow counts.")
    sends = [action for action in automation.actions if isinstance(action, SendNotification)]
    if not sends:
        raise NotYet(f"its actions are {[action.type for action in automation.actions]}; add "
                     "SendNotification(block_document_id=block_id, subject=..., body=...).")
    if str(sends[0].block_document_id) != str(block_document_id):
        raise NotYet("its notification goes to another block: use the webhook block saved above (block_id).")
    if not automation.enabled:
        raise NotYet("the automation is paused: resume it (`prefect automation resume NAME`).")
    return f"Automation {name!r} (id {automation.id}) notifies the webhook when a {TRAINING_FLOW} run crashes."
