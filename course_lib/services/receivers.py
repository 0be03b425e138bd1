"""Where notifications land, for real: a local HTTP webhook receiver and a local SMTP server.

* :class:`WebhookReceiver` is a small HTTP server (Python's ``http.server``) in its own process.
  Every request it receives (method, path, content type, body) becomes one line of a JSONL
  file; ``receiver.messages()`` reads them back. A notification block aimed at
  ``receiver.url`` (e.g. ``CustomWebhookNotificationBlock``) really sends HTTP to it, as it
  would to Slack.
* :class:`SmtpReceiver` is an ``aiosmtpd`` SMTP server in its own process. Every message it
  accepts (from, to, subject, plain-text body) becomes one line of a JSONL file. With
  ``username=``/``password=`` it requires SMTP AUTH, like a real provider; the password is
  handed to the child process through its environment, never on its command line, and never
  written to its log or to the JSONL file.

Both are course services (:class:`~course_lib.services.base._ManagedProcess`): a real process
in its own group, a readiness wait, a group stop, stopped at exit too.

Real SMTP is one setting away: :func:`smtp_settings` reads ``COURSE_SMTP_HOST``,
``COURSE_SMTP_PORT``, ``COURSE_SMTP_USER``, ``COURSE_SMTP_TYPE`` (``STARTTLS``, ``SSL`` or
``INSECURE``) and the password from ``COURSE_SMTP_PASSWORD`` (or a ``Secret`` block the lesson
saves from it).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from course_lib import paths, settings
from course_lib.services.base import (HOST, ServiceError, ServiceSettingError, _ManagedProcess, free_port, http_status,
                                      port_is_free)

DEFAULT_RECEIVER_START_TIMEOUT = 30.0
_PASSWORD_ENV = "COURSE_SMTP_RECEIVER_PASSWORD"  # only in the SMTP child's environment


def _read_jsonl(path: Path | None) -> list[dict]:
    if path is None or not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            records.append(json.loads(line))
    return records


class _Receiver(_ManagedProcess):
    """A receiver process that appends what it receives to ``<state>/<name>-<port>.jsonl``."""

    role = "receiver"
    stop_grace = 5.0

    def __init__(self, port: int | None = None, timeout: float = DEFAULT_RECEIVER_START_TIMEOUT) -> None:
        super().__init__()
        self._requested_port = port
        self.port: int | None = None
        self.timeout = timeout
        self.records_path: Path | None = None
        self.startup_seconds: float | None = None

    def _argv(self) -> list[str]:
        code = "import sys; from course_lib.services.receivers import main; main(sys.argv[1:])"
        return [sys.executable, "-c", code, self.role, "--host", HOST,
                "--port", str(self.port), "--out", str(self.records_path)]

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop(_PASSWORD_ENV, None)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _ready(self) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self):
        if self.running:
            return self
        port = self._requested_port
        if port is not None and not port_is_free(port):
            raise ServiceError(
                f"Port {port} on {HOST} is already in use, so the {self.kind} cannot listen on it. "
                f"Fix: stop the program that holds port {port}, or pass another port (or none for a free one).")
        self.port = port if port is not None else free_port()
        state = paths.subdir("receivers")
        self.records_path = state / f"{self.role}-{self.port}.jsonl"
        self.records_path.write_text("")  # a fresh record for each start
        t0 = time.monotonic()
        self._spawn(self._argv(), self._child_env(), log_path=state / f"{self.role}-{self.port}.log", cwd=state)
        self._wait_until(
            self._ready, self.timeout, poll_seconds=0.2,
            died=f"The {self.kind} on {HOST}:{self.port} exited with code {{code}} during start.",
            died_fix="read the log lines below; check that the course environment is installed (`make setup`).",
            slow=f"The {self.kind} on {HOST}:{self.port} did not answer within {self.timeout:.0f} s.",
            slow_fix="pass a larger timeout= on a slow machine.",
        )
        self.startup_seconds = time.monotonic() - t0
        return self

    def messages(self) -> list[dict]:
        """Everything received so far, oldest first."""
        return _read_jsonl(self.records_path)

    def clear(self) -> None:
        """Forget what was received so far (the file is emptied)."""
        if self.records_path is not None:
            self.records_path.write_text("")

    def wait_for(self, count: int = 1, timeout: float = 60, what: str = "message", predicate=None) -> list[dict]:
        """Wait until at least ``count`` records (matching ``predicate``) arrived; return them.

        Fails after ``timeout`` seconds with what was received, so a demo never hangs.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = [record for record in self.messages() if predicate is None or predicate(record)]
            if len(found) >= count:
                return found
            if not self.running:
                raise ServiceError(f"The {self.kind} on {HOST}:{self.port} is not running, so no {what} can arrive. "
                                   "Fix: start it again (.start()).")
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"No {what} reached the {self.kind} on {HOST}:{self.port} within {timeout:.0f} s "
                    f"({len(self.messages())} record(s) received in all). Fix: check that the sender points at "
                    f"{self.address} and, for an automation, read its events "
                    "(`prefect event stream` or the Event Feed in the UI).")
            time.sleep(0.5)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def stop(self) -> None:
        """Stop the receiver (idempotent); what it received stays readable."""
        self._terminate()


class WebhookReceiver(_Receiver):
    """A local HTTP endpoint that records every request: ``url`` is where a webhook should post."""

    kind = "webhook receiver"
    role = "webhook"

    def __repr__(self) -> str:
        return f"WebhookReceiver(url={self.url if self.port else None!r}, {'running' if self.running else 'stopped'})"

    @property
    def url(self) -> str:
        if self.port is None:
            raise ServiceError("The webhook receiver is not started. Fix: call .start() "
                               "(or use `with WebhookReceiver() as hook:`).")
        return f"http://{HOST}:{self.port}/hooks/course"

    def _ready(self) -> bool:
        return http_status(f"http://{HOST}:{self.port}/health", timeout=2) == 200

    def start(self) -> "WebhookReceiver":
        super().start()
        print(f"Webhook receiver listening at {self.url}; records in {self.records_path}")
        return self


@dataclass(frozen=True)
class SmtpSettings:
    """Where email goes: the local SMTP server or a real provider. ``password`` is never printed."""

    host: str
    port: int
    smtp_type: str = "INSECURE"
    username: str | None = None
    password: str | None = None
    real: bool = False

    def __repr__(self) -> str:
        hidden = "********" if self.password else None
        return (f"SmtpSettings(host={self.host!r}, port={self.port}, smtp_type={self.smtp_type!r}, "
                f"username={self.username!r}, password={hidden!r}, real={self.real})")

    @property
    def description(self) -> str:
        where = "a real SMTP server (COURSE_SMTP_HOST)" if self.real else "the local SMTP server (course service)"
        return f"{where} at {self.host}:{self.port} ({self.smtp_type})"


def smtp_settings(local: "SmtpReceiver | None" = None, environ=None) -> SmtpSettings:
    """Real SMTP when ``COURSE_SMTP_HOST`` is set, else the local :class:`SmtpReceiver` ``local``.

    Real: ``COURSE_SMTP_HOST``, ``COURSE_SMTP_PORT`` (default 465 for SSL, 587 for STARTTLS, 25
    for INSECURE), ``COURSE_SMTP_TYPE`` (default STARTTLS), ``COURSE_SMTP_USER``,
    ``COURSE_SMTP_PASSWORD`` (see :mod:`course_lib.settings`; a bad value is a ServiceError).
    """
    configured = settings.get(environ, error=ServiceSettingError)
    host = configured.smtp_host
    if host:
        smtp_type = configured.smtp_type
        port = configured.smtp_port or {"SSL": 465, "STARTTLS": 587}.get(smtp_type, 25)
        password = configured.smtp_password
        return SmtpSettings(host=host, port=port, smtp_type=smtp_type, username=configured.smtp_user or None,
                            password=password.get_secret_value() if password else None, real=True)
    if local is None or local.port is None:
        raise ServiceError("No SMTP server: COURSE_SMTP_HOST is not set and no local SMTP server was given. "
                           "Fix: start one (`smtp = services.SmtpReceiver().start()`) or set COURSE_SMTP_HOST.")
    return SmtpSettings(host=HOST, port=local.port, smtp_type="INSECURE", username=local.username,
                        password=local.password, real=False)


class SmtpReceiver(_Receiver):
    """A local SMTP server (``aiosmtpd``) that stores every message it accepts.

    Args:
        username, password: require SMTP AUTH with these (as a real provider does); default none.
    """

    kind = "SMTP server"
    role = "smtp"

    def __init__(self, port: int | None = None, timeout: float = DEFAULT_RECEIVER_START_TIMEOUT,
                 username: str | None = None, password: str | None = None) -> None:
        super().__init__(port=port, timeout=timeout)
        if bool(username) != bool(password):
            raise ServiceError("SmtpReceiver needs both username= and password= (or neither).")
        self.username, self.password = username, password
        if password:
            self._secrets.append(password)

    def __repr__(self) -> str:
        where = self.address if self.port else None
        return f"SmtpReceiver(address={where!r}, auth={bool(self.username)}, {'running' if self.running else 'stopped'})"

    def _argv(self) -> list[str]:
        argv = super()._argv()
        if self.username:
            argv += ["--user", self.username]
        return argv

    def _child_env(self) -> dict[str, str]:
        env = super()._child_env()
        if self.password:
            env[_PASSWORD_ENV] = self.password
        return env

    def _ready(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=2) as sock:
                return sock.recv(64).startswith(b"220")
        except OSError:
            return False

    def start(self) -> "SmtpReceiver":
        super().start()
        auth = f", AUTH required for user {self.username!r}" if self.username else ""
        print(f"SMTP server listening at {self.address}{auth}; messages in {self.records_path}")
        return self


# --------------------------------------------------------------------------- the child processes


def _append(path: str, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _serve_webhook(host: str, port: int, out: str) -> None:  # pragma: no cover - runs in the child
    from datetime import datetime, timezone
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            text = raw.decode("utf-8", errors="replace")
            try:
                payload = json.loads(text) if text else None
            except ValueError:
                payload = None
            _append(out, {"received": datetime.now(timezone.utc).isoformat(), "method": self.command,
                          "path": self.path, "content_type": self.headers.get("Content-Type"),
                          "user_agent": self.headers.get("User-Agent"), "body": text, "json": payload})
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def do_GET(self) -> None:
            if self.path == "/health":
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")
            else:
                self._record()

        do_POST = do_PUT = do_PATCH = do_DELETE = _record

        def log_message(self, format, *args) -> None:
            sys.stdout.write(f"{self.address_string()} {format % args}\n")

    server = ThreadingHTTPServer((host, port), Handler)
    print(f"webhook receiver on http://{host}:{port}", flush=True)
    server.serve_forever()


def _serve_smtp(host: str, port: int, out: str, user: str | None) -> None:  # pragma: no cover - child
    import asyncio
    from datetime import datetime, timezone
    from email import message_from_bytes
    from email.policy import default as default_policy

    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    import logging
    import warnings

    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # a local demo server: no TLS by design
    password = os.environ.pop(_PASSWORD_ENV, None)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            message = message_from_bytes(envelope.content, policy=default_policy)
            part = message.get_body(preferencelist=("plain", "html"))
            body = part.get_content() if part is not None else ""
            _append(out, {"received": datetime.now(timezone.utc).isoformat(), "from": envelope.mail_from,
                          "to": list(envelope.rcpt_tos), "subject": str(message.get("Subject", "")),
                          "body": body, "authenticated": bool(getattr(session, "authenticated", False))})
            print(f"accepted a message for {', '.join(envelope.rcpt_tos)}", flush=True)
            return "250 Message accepted for delivery"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user
              and auth_data.password.decode() == password)
        print(f"AUTH {mechanism} for {auth_data.login.decode() if isinstance(auth_data, LoginPassword) else '?'}: "
              f"{'accepted' if ok else 'rejected'}", flush=True)
        return AuthResult(success=ok, handled=False)  # handled=False: answer 535 on a bad password

    async def main() -> None:
        loop = asyncio.get_running_loop()
        kwargs = {}
        if user:
            # PLAIN only: smtplib's fallback to LOGIN after a rejected password stalls with aiosmtpd.
            kwargs = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False,
                      "auth_exclude_mechanism": ["LOGIN"]}
        server = await loop.create_server(lambda: SMTP(Handler(), hostname="course-smtp", **kwargs), host, port)
        print(f"SMTP server on {host}:{port}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - runs in the child
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_lib.services.receivers")
    parser.add_argument("role", choices=["webhook", "smtp"])
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--user")
    args = parser.parse_args(argv)
    if args.role == "webhook":
        _serve_webhook(args.host, args.port, args.out)
    else:
        _serve_smtp(args.host, args.port, args.out, args.user)


if __name__ == "__main__":  # pragma: no cover
    main()
