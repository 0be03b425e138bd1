"""The shared base of every course service: one real process in its own group, its log file,
its readiness wait and its stop (also at exit); plus the small helpers the services share."""


from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any, Mapping

from course_lib import settings

HOST = "127.0.0.1"

#: Settings that keep Prefect quiet and non-interactive (server, worker, CLI, kernel).
HEADLESS_ENV: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # The client's telemetry too: else the first `!prefect ...` of a lesson (a terminal, for the CLI)
    # prints a three-line "Prefect collects anonymous usage data" notice in the middle of a cell.
    "DO_NOT_TRACK": "1",
    "PREFECT_CLI_PROMPT": "false",
    "PREFECT_CLI_COLORS": "false",
    "PREFECT_LOGGING_COLORS": "false",
    "COLUMNS": "200",  # the CLI's tables are cut at 80 columns otherwise
}

#: How often a watchdog checks that the process which started a service is still alive.
WATCHDOG_POLL_SECONDS = 0.25
#: How long a watchdog waits after SIGTERM before it sends SIGKILL to the service's group.
WATCHDOG_GRACE_SECONDS = 4.0

DEFAULT_WORKER_START_TIMEOUT = 120.0
DEFAULT_S3_START_TIMEOUT = 30.0
LOG_TAIL_LINES = 30

class ServiceError(RuntimeError):
    """A local service could not be started, reached or stopped (the message says how to fix it)."""


class ServiceSettingError(ServiceError, settings.SettingError):
    """A ``COURSE_*`` setting of the services has a bad value (a :class:`ServiceError` too)."""


def setting(field: str):
    """A course setting the services read (:mod:`course_lib.settings`), validated now."""
    return settings.read(field, error=ServiceSettingError)


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True if a server could bind ``127.0.0.1:port`` (SO_REUSEADDR, as servers do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, int(port)))
        except OSError:
            return False
        return True


def executable(name: str) -> str:
    """An executable from this Python's environment (the venv's ``bin``)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    import shutil

    found = shutil.which(name)
    if found:
        return found
    raise ServiceError(
        f"The `{name}` program was not found next to {sys.executable} nor on PATH. "
        "Fix: install the course requirements into this environment "
        "(`pip install -e .` in the repository)."
    )


# A urllib opener that never goes through an HTTP(S)_PROXY: everything here is local.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


MASK = "********"


def redact(text: str, secrets) -> str:
    """``text`` with every non-empty secret (a password, an API key) replaced by ``********``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def http_status(url: str, timeout: float = 3.0, headers: Mapping[str, str] | None = None,
                method: str = "GET", body: bytes | None = None) -> int | None:
    """The HTTP status of a request to ``url`` (never through a proxy); ``None`` if nothing answers."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError, ValueError):
        return None


# The watchdog: a tiny companion process per service (``python -I -S -c WATCHDOG_CODE``). It
# is the child of the process that started the service, in a session of its own. When that
# process is gone - whatever ended it, SIGKILL included, on Linux and macOS alike - the
# watchdog is re-parented (its getppid() changes) and it stops the service's whole process
# group: SIGTERM, a grace period, SIGKILL. It exits by itself as soon as the group is gone.
# Linux's PR_SET_PDEATHSIG is not used for the services: it fires when the *thread* that
# forked exits (a service started from a helper thread would die with that thread) and it
# reaches the group leader only, not the processes the leader started.
WATCHDOG_CODE = """
import os, signal, sys, time
parent, pgid, poll, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
signal.signal(signal.SIGINT, signal.SIG_IGN)
def alive():
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True
while os.getppid() == parent:
    if not alive():
        sys.exit(0)
    time.sleep(poll)
for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        sys.exit(0)
    deadline = time.monotonic() + wait
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not alive():
        sys.exit(0)
"""


def _reset_child_signals() -> None:  # pragma: no cover - runs in the child
    # A process started from a non-interactive shell or a kernel may inherit an
    # ignored SIGINT; Prefect's worker turns SIGTERM into SIGINT, so make both default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _refresh_prefect_settings() -> None:
    """Make an already imported Prefect see changed PREFECT_* environment variables."""
    context = sys.modules.get("prefect.context")
    refresh = getattr(context, "refresh_global_settings_context", None)
    if refresh is not None:
        try:
            refresh()
        except Exception:  # pragma: no cover - best effort
            pass


def _drain_prefect_clients(timeout: float = 5.0) -> None:
    """Send the logs and events this process has queued for the API before its server goes away.

    Without it, Prefect's background log worker later prints "Error logging to API".
    Runs in a helper thread so that it works inside a notebook's running event loop too.
    """
    services_to_drain = []
    handlers = sys.modules.get("prefect.logging.handlers")
    if handlers is not None and hasattr(handlers, "APILogWorker"):
        services_to_drain.append(handlers.APILogWorker)
    events = sys.modules.get("prefect.events.worker")
    if events is not None and hasattr(events, "EventsWorker"):
        services_to_drain.append(events.EventsWorker)
    if not services_to_drain:
        return

    def drain() -> None:
        for service in services_to_drain:
            try:
                service.drain_all(timeout=timeout, at_exit=False)
            except Exception:  # pragma: no cover - best effort
                pass

    import threading

    thread = threading.Thread(target=drain, name="course-drain-prefect", daemon=True)
    thread.start()
    thread.join(timeout=2 * timeout + 1)


def _set_env(updates: Mapping[str, str | None]) -> dict[str, str | None]:
    """Apply ``updates`` to os.environ (None = unset); return the previous values."""
    previous = {key: os.environ.get(key) for key in updates}
    for key, value in updates.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return previous


def _base_url(api_url: str) -> str:
    url = api_url.rstrip("/")
    return url[: -len("/api")] if url.endswith("/api") else url


# --------------------------------------------------------------------------- process groups
# A service, and every process it starts, runs in one process group (start_new_session=True:
# the leader's pid is the group id); it is stopped as a whole.


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to every process of group ``pgid`` (nothing if the group is gone)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` is left (a zombie leader not yet reaped counts)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a foreign group reused the id
        return False
    return True


def group_gone(pgid: int, wait: float = 10.0) -> bool:
    """True once no process of group ``pgid`` is left, polled for up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def stop_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started:
    SIGTERM to its group, ``grace`` seconds for the leader, then SIGKILL; the leader is reaped and
    members that outlive it get 3 s more before SIGKILL."""
    pgid = process.pid
    if process.poll() is None:
        signal_group(pgid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            signal_group(pgid, signal.SIGKILL)
            process.wait(timeout=30)
    if not group_gone(pgid, wait=3):
        signal_group(pgid, signal.SIGKILL)
        group_gone(pgid, wait=5)


# --------------------------------------------------------------------------- base


class _ManagedProcess:
    """A child process in its own process group, logging to a file, stopped as a group."""

    kind = "process"
    stop_grace = 10.0
    #: Stop this service when the process that started it dies (see WATCHDOG_CODE).
    watchdog = True

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.watchdog_process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._secrets: list[str] = []
        self._atexit_registered = False
        self._exiting = False

    # -- state
    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- lifecycle
    def _spawn(self, argv: list[str], env: Mapping[str, str], log_path: Path, cwd: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        cwd.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        with open(log_path, "wb") as log:
            try:
                self.process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(env),
                    cwd=str(cwd),
                    start_new_session=True,
                    preexec_fn=_reset_child_signals,
                    close_fds=True,
                )
            except OSError as exc:
                raise ServiceError(
                    f"Could not launch the {self.kind} ({argv[0]}): {exc}. "
                    "Fix: check that the course environment is installed and the program is executable."
                ) from exc
        if self.watchdog:
            self._start_watchdog(self.process.pid)
        if not self._atexit_registered:
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True

    def _start_watchdog(self, pgid: int) -> None:
        argv = [sys.executable, "-I", "-S", "-c", WATCHDOG_CODE, str(os.getpid()), str(pgid),
                str(WATCHDOG_POLL_SECONDS), str(WATCHDOG_GRACE_SECONDS)]
        try:
            self.watchdog_process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True,
            )
        except OSError as exc:  # the service still runs; it is stopped at exit as before
            print(f"warning: no watchdog for the {self.kind} ({exc}); it may outlive a killed kernel.",
                  file=sys.stderr)

    def _reap_watchdog(self) -> None:
        """The watchdog leaves by itself once the group is gone; collect it (no zombie)."""
        watchdog, self.watchdog_process = self.watchdog_process, None
        if watchdog is None:
            return
        try:
            watchdog.wait(timeout=2)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait(timeout=5)

    def _terminate(self) -> None:
        """Stop the whole process group (:func:`stop_group`), then collect the watchdog."""
        if self.process is not None:
            stop_group(self.process, grace=self.stop_grace)
        self._reap_watchdog()

    def stop(self) -> None:  # overridden, kept idempotent everywhere
        self._terminate()

    def _stop_at_exit(self) -> None:
        self._exiting = True
        try:
            self.stop()
        except Exception:  # pragma: no cover - never fail interpreter shutdown
            pass

    # -- logs
    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def log_tail(self, n: int = LOG_TAIL_LINES) -> str:
        """The last ``n`` lines of this service's log (secrets redacted)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, "r", encoding="utf-8", errors="replace") as fh:
            lines = deque(fh, maxlen=n)
        return self._redact("".join(lines)).rstrip("\n")

    def _failure(self, problem: str, fix: str) -> ServiceError:
        tail = self.log_tail(LOG_TAIL_LINES)
        where = f" (full log: {self.log_path})" if self.log_path else ""
        body = f"{problem}\nFix: {fix}"
        if tail:
            body += f"\n--- last lines of the {self.kind} log{where} ---\n{tail}"
        elif where:
            body += f"\nThe {self.kind} log{where} is empty."
        return ServiceError(body)

    def _wait_until(self, ready, timeout: float, died: str, died_fix: str, slow: str, slow_fix: str,
                    poll_seconds: float = 0.5) -> None:
        """Poll ``ready()`` until it is true; fail with the log tail if the process dies or time runs out.

        ``died`` may use ``{code}`` (the exit code). ``ready`` returns False while the service is
        not there yet. On any failure (Ctrl-C included) the process group is stopped first.
        """
        deadline = time.monotonic() + timeout
        try:
            while True:
                assert self.process is not None
                code = self.process.poll()
                if code is not None:
                    raise self._failure(died.format(code=code), died_fix)
                if ready():
                    return
                if time.monotonic() > deadline:
                    raise self._failure(slow, slow_fix)
                time.sleep(poll_seconds)
        except BaseException:
            self._terminate()
            raise

    # -- context manager
    def start(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()



class temporary_env:
    """Set environment variables (None unsets one) for a ``with`` block, with Prefect's settings
    refreshed on entry and exit, then restore the previous values."""

    def __init__(self, updates: Mapping[str, str | None]) -> None:
        self.updates = dict(updates)
        self._saved: dict[str, str | None] | None = None

    def __enter__(self) -> "temporary_env":
        self._saved = _set_env(self.updates)
        _refresh_prefect_settings()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _set_env(self._saved or {})
        _refresh_prefect_settings()


def use_api(env: Mapping[str, str | None]) -> temporary_env:
    """Point this process's Prefect client at another API for a ``with`` block, then restore.

    ``with use_api(remote.env()):`` (or a dict of PREFECT_* variables, None to unset one).
    """
    return temporary_env({key: value for key, value in env.items() if key.startswith("PREFECT_")})

