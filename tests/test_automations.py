"""Lesson 09's events, automations and notifications against the real session server and real
receivers (a local HTTP webhook receiver and a local aiosmtpd SMTP server): the faults included."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timezone

import pytest

from course_lib import services
from course_lib.pipeline import notify
from course_lib.services import ServiceError, SmtpReceiver, WebhookReceiver
from course_lib.services.base import group_gone

TAG = uuid.uuid4().hex[:8]
PASSWORD = f"smtp-pw-{uuid.uuid4().hex}"  # unique: searched for in every output
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))




def _bounded(fn, seconds: float = 180):
    """Run fn() in a thread; fail (instead of hanging the suite) if it does not return in time."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn} still running after {seconds:.0f} s: it hangs"
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.fixture(scope="module")
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def smtp():
    with SmtpReceiver(username="course", password=PASSWORD) as receiver:
        yield receiver


def _save_email_block(name: str, port: int, password: str | None = None, username: str | None = None) -> None:
    from prefect_email import EmailServerCredentials

    EmailServerCredentials(smtp_server="127.0.0.1", smtp_port=port, smtp_type="INSECURE", username=username,
                           password=password or "").save(name, overwrite=True)


def test_webhook_receiver_records_each_request(hook):
    hook.clear()
    body = json.dumps({"text": f"hello {TAG}"}).encode()
    request = urllib.request.Request(hook.url, data=body, method="POST", headers={"Content-Type": "application/json"})
    assert _OPENER.open(request, timeout=5).status == 200
    [record] = hook.wait_for(1, timeout=10)
    assert record["method"] == "POST" and record["path"] == "/hooks/course"
    assert record["json"] == {"text": f"hello {TAG}"}
    assert services.http_status(hook.url.rsplit("/hooks", 1)[0] + "/health") == 200
    assert len(hook.messages()) == 1, "health probes are not recorded as messages"


def test_waiting_for_a_message_that_never_comes_fails_with_the_address(hook):
    hook.clear()
    with pytest.raises(ServiceError, match=f"No notification reached the webhook receiver on {hook.address}"):
        hook.wait_for(1, timeout=1, what="notification")


def test_email_arrives_and_the_smtp_password_is_never_shown(prefect_server, smtp, capsys):
    from course_lib.tooling import runs

    smtp.clear()
    _save_email_block(f"test-email-{TAG}", smtp.port, password=PASSWORD, username="course")
    state = _bounded(lambda: notify.email_report(f"test-email-{TAG}", email_to="team@course.local",
                                                 subject=f"RMSE {TAG}", body="Validation RMSE: 5.19931",
                                                 return_state=True))
    assert state.is_completed(), state
    [message] = smtp.wait_for(1, timeout=20)
    assert message["subject"] == f"RMSE {TAG}" and "5.19931" in message["body"]
    assert message["authenticated"] and message["to"] == ["team@course.local"]
    logs = "\n".join(runs.flow_run_logs(state.state_details.flow_run_id))
    settings = services.smtp_settings(local=smtp)
    shown = "\n".join([capsys.readouterr().out, logs, smtp.log_tail(500), json.dumps(smtp.messages()),
                       repr(settings), repr(smtp), settings.description])
    assert "sent 'RMSE" in shown
    assert PASSWORD not in shown
    assert PASSWORD not in " ".join(smtp.process.args), "the password must not be on the command line"


def test_a_wrong_smtp_password_fails_the_run_without_hanging(prefect_server, smtp):
    _save_email_block(f"test-email-bad-{TAG}", smtp.port, password="not-the-password", username="course")
    state = _bounded(lambda: notify.email_report(f"test-email-bad-{TAG}", email_to="team@course.local",
                                                 subject="never", body="-", return_state=True))
    assert state.is_failed()
    assert "535" in state.message or "Authentication" in state.message, state.message


def test_smtp_server_down_fails_the_flow_run_naming_host_and_port(prefect_server):
    port = services.free_port()
    _save_email_block(f"test-email-down-{TAG}", port)
    state = _bounded(lambda: notify.email_report(f"test-email-down-{TAG}", email_to="team@course.local",
                                                 subject="never", body="-", return_state=True))
    assert state.is_failed()
    with pytest.raises(notify.SmtpUnreachable, match=f"SMTP server 127.0.0.1:{port} is not reachable"):
        state.result()


def test_a_notification_block_name_that_does_not_exist_lists_the_existing_ones(prefect_server, hook):
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    CustomWebhookNotificationBlock(name="x", url=hook.url).save(f"test-hook-{TAG}", overwrite=True)
    with pytest.raises(ValueError) as caught:
        notify.load_block(CustomWebhookNotificationBlock, f"test-hook-typo-{TAG}")
    message = str(caught.value)
    assert f"no Custom Webhook block named 'test-hook-typo-{TAG}'" in message
    assert f"'test-hook-{TAG}'" in message
    assert notify.load_block(CustomWebhookNotificationBlock, f"test-hook-{TAG}").url == hook.url


def test_an_event_with_a_malformed_resource_is_not_sent(prefect_server):
    from prefect.events import emit_event

    assert emit_event(event="taxi.data.arrived", resource={"month": "2023-03"}) is None  # no prefect.resource.id
    assert emit_event(event="taxi.data.arrived", resource={"prefect.resource.id": "taxi.month.x", "month": 3}) is None
    good = emit_event(event="taxi.data.arrived", resource={"prefect.resource.id": f"taxi.month.{TAG}", "month": TAG})
    assert good is not None
    assert notify.wait_for_event(good.id).resource["month"] == TAG


def test_the_automation_notifies_and_records_an_undeliverable_notification(prefect_server, hook):
    from prefect import flow, get_client
    from prefect.automations import Automation, EventTrigger, Posture, SendNotification
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    flow_name = f"test-failing-{TAG}"

    @flow(name=flow_name)
    def failing():
        raise RuntimeError("on purpose")

    down = WebhookReceiver().start()
    down_url = down.url
    down.stop()
    up_id = CustomWebhookNotificationBlock(name="up", url=hook.url, json_data={"text": "{{subject}}"}).save(
        f"test-up-{TAG}", overwrite=True)
    down_id = CustomWebhookNotificationBlock(name="down", url=down_url, json_data={"text": "{{subject}}"}).save(
        f"test-down-{TAG}", overwrite=True)
    trigger = dict(expect={"prefect.flow-run.Failed"}, posture=Posture.Reactive, threshold=1,
                   match_related={"prefect.resource.role": "flow", "prefect.resource.name": flow_name})
    up = Automation(name=f"test-up-{TAG}", trigger=EventTrigger(**trigger),
                    actions=[SendNotification(block_document_id=up_id, subject="failed {{ flow_run.name }}",
                                              body="x")]).create()
    broken = Automation(name=f"test-down-{TAG}", trigger=EventTrigger(**trigger),
                        actions=[SendNotification(block_document_id=down_id, subject="never", body="x")]).create()
    try:
        hook.clear()
        since = datetime.now(timezone.utc)
        state = failing(return_state=True)
        assert state.is_failed()
        [message] = hook.wait_for(1, timeout=60, what="failure notification")
        assert message["json"]["text"].startswith("failed ")
        # The broken one triggered too, but its action never executed: that is the record.
        record = notify.wait_for_automation_record(broken.id, since=since, timeout=30, settle=5)
        assert "prefect.automation.triggered" in set(record["event"])
        assert "prefect.automation.action.executed" not in set(record["event"])
        working = notify.automation_events(up.id, since=since)
        assert "prefect.automation.action.executed" in set(working["event"])
        if prefect_server.log_path is not None:  # the server's log says why
            deadline = time.monotonic() + 30
            while "ConnectError" not in prefect_server.log_tail(2000) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert "ConnectError" in prefect_server.log_tail(2000)
    finally:
        with get_client(sync_client=True) as client:
            for automation in (up, broken):
                client.delete_automation(automation.id)


def test_real_smtp_is_one_setting_away_and_its_password_stays_hidden():
    env = {"COURSE_SMTP_HOST": "smtp.example.org", "COURSE_SMTP_USER": "me@example.org",
           "COURSE_SMTP_PASSWORD": PASSWORD}
    settings = services.smtp_settings(environ=env)
    assert (settings.host, settings.port, settings.smtp_type, settings.real) == ("smtp.example.org", 587, "STARTTLS", True)
    assert settings.password == PASSWORD and PASSWORD not in repr(settings) and PASSWORD not in settings.description
    assert services.smtp_settings(environ={**env, "COURSE_SMTP_TYPE": "ssl"}).port == 465
    with pytest.raises(ServiceError, match="COURSE_SMTP_TYPE='tls1' is not allowed"):
        services.smtp_settings(environ={**env, "COURSE_SMTP_TYPE": "tls1"})
    with pytest.raises(ServiceError, match="COURSE_SMTP_HOST is not set"):
        services.smtp_settings(environ={})


def test_receivers_stop_as_a_group_and_at_exit():
    hook, smtp = WebhookReceiver().start(), SmtpReceiver().start()
    pids = [hook.pid, smtp.pid]
    hook.stop(), smtp.stop()
    hook.stop()  # idempotent
    assert all(group_gone(pid) for pid in pids)
    assert hook.messages() == [] and not hook.running
    # A Python process that exits without stopping them: the services stop at exit.
    code = ("from course_lib.services import WebhookReceiver, SmtpReceiver\n"
            "print(WebhookReceiver().start().pid, SmtpReceiver().start().pid, flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    left = [int(pid) for pid in proc.stdout.split()[-2:]]
    assert all(group_gone(pid) for pid in left), f"receiver process groups {left} outlived their Python"


def test_a_port_in_use_is_named():
    with WebhookReceiver() as hook:
        with pytest.raises(ServiceError, match=f"Port {hook.port} on 127.0.0.1 is already in use"):
            SmtpReceiver(port=hook.port).start()
