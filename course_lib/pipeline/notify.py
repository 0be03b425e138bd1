"""Email from a flow with prefect-email (lesson 09), and how a webhook message looks in Slack.

``email_report`` loads an ``EmailServerCredentials`` block by name (so the flow holds no host,
user or password: the block does) and sends one message with prefect-email's task
``email_send_message``. Before sending, it checks that the SMTP server answers, so a server
that is down fails the run at once with an error naming the host and port (smtplib would say
only "Connection refused", or wait for minutes on a host that drops packets).
"""

from __future__ import annotations

import socket

from prefect import flow, task
from prefect_email import EmailServerCredentials, email_send_message

SENDER = "taxi-pipeline@course.local"
CONNECT_TIMEOUT = 10  # seconds to wait for the SMTP server's greeting


class SmtpUnreachable(ConnectionError):
    """The SMTP server named by the credentials block does not answer (host and port in the message)."""


def smtp_address(credentials: EmailServerCredentials) -> tuple[str, int]:
    """(host, port) the block connects to: its smtp_port, else the default port of its smtp_type."""
    server = getattr(credentials.smtp_server, "value", credentials.smtp_server)
    return str(server), int(credentials.smtp_port or credentials.smtp_type.value)


@task(retries=1, retry_delay_seconds=2)
def check_smtp_server(credentials: EmailServerCredentials) -> str:
    """Raise SmtpUnreachable naming host:port unless an SMTP server greets us there."""
    host, port = smtp_address(credentials)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as sock:
            sock.settimeout(CONNECT_TIMEOUT)
            if credentials.smtp_type.name == "SSL":  # the greeting comes after the TLS handshake
                return f"{host}:{port}"
            greeting = sock.recv(128)
    except OSError as exc:
        raise SmtpUnreachable(
            f"The SMTP server {host}:{port} is not reachable ({exc.strerror or exc}). Fix: start the local one "
            "(services.SmtpReceiver().start()) and save its port in the block, or set COURSE_SMTP_HOST / "
            "COURSE_SMTP_PORT to your provider's.") from None
    if not greeting.startswith(b"220"):
        raise SmtpUnreachable(f"{host}:{port} answered, but not as an SMTP server ({greeting[:60]!r}). "
                              "Fix: check the port in the EmailServerCredentials block.")
    return f"{host}:{port}"


def load_block(block_class, name: str):
    """``block_class.load(name)``, or a ValueError that lists the blocks of that type that do exist."""
    from prefect import get_client

    try:
        return block_class.load(name, _sync=True)
    except ValueError:
        pass
    slug = block_class.get_block_type_slug()
    with get_client(sync_client=True) as client:
        documents = client.read_block_documents_by_type(slug, include_secrets=False)
    existing = sorted(document.name for document in documents if document.name and not document.is_anonymous)
    listed = ", ".join(repr(each) for each in existing) or "none yet"
    raise ValueError(f"There is no {block_class.get_block_type_name()} block named {name!r}. Existing {slug} blocks: "
                     f"{listed}. Fix: use one of those names, or save the block first (block.save({name!r})).")


@flow(name="email-report", log_prints=True)
def email_report(credentials_block: str, email_to: str, subject: str, body: str) -> str:
    """Send ``subject``/``body`` to ``email_to`` through the SMTP server of block ``credentials_block``."""
    credentials = load_block(EmailServerCredentials, credentials_block)
    address = check_smtp_server(credentials)
    # email_send_message is an ASYNC task: in a sync flow, calling it directly would only make a
    # coroutine (nothing sent). .submit() runs it; .result() waits and raises if sending failed.
    email_send_message.submit(email_server_credentials=credentials, subject=subject, msg=body.replace("\n", "<br>"),
                              msg_plain=body, email_to=email_to, email_from=SENDER).result()
    print(f"sent {subject!r} to {email_to} through {address}")
    return subject


def slack_preview(text: str, sender: str = "Prefect"):
    """A webhook message rendered roughly as Slack shows it (``*bold*``, line breaks, links)."""
    import html
    import re

    from IPython.display import HTML

    safe = html.escape(text)
    safe = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", safe)
    safe = re.sub(r"(https?://[^\s<]+)", r'<a href="\1">\1</a>', safe)
    safe = safe.replace("\n", "<br>")
    return HTML(
        '<div style="font-family:Lato,Helvetica,Arial,sans-serif;border:1px solid #ddd;border-radius:6px;'
        'padding:8px 12px;max-width:640px;background:#fff;color:#1d1c1d">'
        '<div style="display:flex;gap:8px;align-items:flex-start">'
        '<div style="width:36px;height:36px;border-radius:4px;background:#2d6df6;color:#fff;font-weight:bold;'
        f'display:flex;align-items:center;justify-content:center">P</div><div><b>{html.escape(sender)}</b> '
        '<span style="color:#616061;font-size:12px">APP</span>'
        f'<div style="margin-top:2px;line-height:1.45">{safe}</div></div></div></div>')


def email_preview(message: dict):
    """A received email (a record of SmtpReceiver) shown as a mail client would: headers, then body."""
    import html

    from IPython.display import HTML

    rows = "".join(f"<tr><td style='color:#666;padding-right:10px'>{name}</td><td>{html.escape(str(value))}</td></tr>"
                   for name, value in (("From", message["from"]), ("To", ", ".join(message["to"])),
                                       ("Subject", message["subject"])))
    return HTML('<div style="border:1px solid #ddd;border-radius:6px;padding:8px 12px;max-width:640px;'
                f'font-family:Helvetica,Arial,sans-serif"><table>{rows}</table><hr>'
                f'<pre style="white-space:pre-wrap;font-family:inherit">{html.escape(message["body"])}</pre></div>')


# --------------------------------------------------------------------------- waiting on the server (plumbing)


def wait_for_event(event_id, timeout: float = 30):
    """The event with this id once the server has stored it (events arrive over a websocket)."""
    import time

    from prefect import get_client
    from prefect.events.filters import EventFilter, EventIDFilter

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_events(filter=EventFilter(id=EventIDFilter(id=[event_id])), limit=1)
            if page.events:
                return page.events[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"event {event_id} did not reach the server within {timeout:.0f} s. Fix: check "
                                   "PREFECT_API_URL and that emit_event returned an event (it returns None on bad input).")
            time.sleep(0.5)


def wait_for_run_event(flow_run_id, event: str, timeout: float = 30):
    """Wait until the server has stored ``event`` (e.g. prefect.flow-run.Completed) of a flow run."""
    import time

    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    deadline = time.monotonic() + timeout
    wanted = EventFilter(event=EventNameFilter(name=[event]),
                         resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]))
    with get_client(sync_client=True) as client:
        while not client.read_events(filter=wanted, limit=1).events:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{event} of flow run {flow_run_id} was not stored within {timeout:.0f} s.")
            time.sleep(0.5)


def wait_for_triggered_run(deployment_id, since, timeout: float = 60):
    """The first flow run of a deployment created at or after ``since`` (e.g. by a trigger)."""
    import time

    from prefect import get_client
    from prefect.client.schemas.filters import (DeploymentFilter, DeploymentFilterId)
    from prefect.client.schemas.sorting import FlowRunSort

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                                         sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=20)
            fresh = [run for run in runs if run.created and run.created >= since]
            if fresh:
                return sorted(fresh, key=lambda run: run.created)[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no run of deployment {deployment_id} started within {timeout:.0f} s of the event. "
                                   "Fix: check the deployment's trigger (expect/match) against the event, "
                                   "e.g. with `prefect automation ls`.")
            time.sleep(0.5)


def wait_for_automation_record(automation_id, since, timeout: float = 30, settle: float = 5):
    """The automation's records since ``since``, once it has triggered (then ``settle`` s for its actions)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        table = automation_events(automation_id, since=since)
        if "prefect.automation.triggered" in set(table["event"]):
            time.sleep(settle)
            return automation_events(automation_id, since=since)
        if time.monotonic() > deadline:
            raise TimeoutError(f"automation {automation_id} did not trigger within {timeout:.0f} s. Fix: check that "
                               "it is enabled (`prefect automation ls`) and that its trigger matches the event.")
        time.sleep(0.5)


def automation_events(automation_id, since=None, limit: int = 50):
    """The server's records of an automation (created, triggered, action.executed/failed), newest first."""
    import pandas as pd
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventOccurredFilter, EventResourceFilter

    occurred = EventOccurredFilter(since=since) if since is not None else EventOccurredFilter()
    with get_client(sync_client=True) as client:
        page = client.read_events(filter=EventFilter(occurred=occurred, resource=EventResourceFilter(
            id=[f"prefect.automation.{automation_id}"])), limit=limit)
    rows = [{"occurred": event.occurred, "event": event.event,
             "triggered by": (event.payload.get("triggering_event") or {}).get("event"),
             "action": event.payload.get("action_type"), "reason": event.payload.get("reason")}
            for event in page.events]
    return pd.DataFrame(rows, columns=["occurred", "event", "triggered by", "action", "reason"])
