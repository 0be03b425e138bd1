"""Real local services for the course: a Prefect server, a Prefect worker, an S3 endpoint.

Every service here is a real operating-system process (never an in-process fake):

* :class:`PrefectServer` runs ``prefect server start`` on 127.0.0.1 with its own
  ``PREFECT_HOME`` (so its SQLite database lives in the course working folder),
  waits until ``/api/health`` answers and exports ``PREFECT_API_URL``.
* :class:`Worker` runs ``prefect worker start -p POOL -n NAME`` and waits until the
  server lists that worker as ONLINE.
* :class:`S3Endpoint` runs ``moto_server`` (a local S3-compatible HTTP endpoint).

Each one is started in its own process group with SIGINT back to its default action,
writes stdout and stderr to a log file under its state folder, is stopped as a whole
group (SIGTERM, a grace period, then SIGKILL) and is also stopped when Python exits.
They are context managers::

    with PrefectServer() as server:
        print(server.ui_url)

Notebooks use the idempotent helpers :func:`start_server` and :func:`stop_server`.

Environment variables read here:

``COURSE_PREFECT_PORT``
    port for the Prefect server (default: a free port; :func:`start_server` prefers 4200,
    and reuses a course server already answering there).
``COURSE_PREFECT_UI``
    ``0`` starts the server without the UI (faster; the tests use it). Default: UI on.
``COURSE_PREFECT_START_TIMEOUT``
    seconds to wait for the server to be healthy (default 180).
``COURSE_WORKDIR``
    the working folder (see :mod:`course_lib.paths`); state goes to ``<workdir>/prefect``
    and ``<workdir>/moto``.

Every failure raises :class:`ServiceError` with a message that names the problem and
the fix.
"""

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
import uuid
from collections import deque
from pathlib import Path
from typing import Any, Mapping

from course_lib import paths

__all__ = [
    "ServiceError",
    "PrefectServer",
    "Worker",
    "S3Endpoint",
    "ensure_work_pool",
    "start_server",
    "stop_server",
    "free_port",
    "port_is_free",
    "check_s3_endpoint",
    "use_api",
    "temporary_env",
    "http_status",
    "redact",
    "ServedFlow",
    "executable",
    "HEADLESS_ENV",
]

HOST = "127.0.0.1"

#: Settings that keep Prefect quiet and non-interactive (server, worker, CLI, kernel).
HEADLESS_ENV: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLI_PROMPT": "false",
    "PREFECT_CLI_COLORS": "false",
    "PREFECT_LOGGING_COLORS": "false",
    "COLUMNS": "200",  # the CLI's tables are cut at 80 columns otherwise
}

#: Where start_server() runs the learners' server, so every lesson's kernel finds the same one.
LEARNER_PORT = 4200

DEFAULT_SERVER_START_TIMEOUT = 180.0
DEFAULT_WORKER_START_TIMEOUT = 120.0
DEFAULT_S3_START_TIMEOUT = 30.0
LOG_TAIL_LINES = 30

_FALSEY = {"0", "false", "no", "off", ""}


class ServiceError(RuntimeError):
    """A local service could not be started, reached or stopped (the message says how to fix it)."""


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


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ServiceError(f"{name}={raw!r} is not a number of seconds. Fix: set it to e.g. 180, or unset it.") from None


def _env_port(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return None
    try:
        port = int(raw)
    except ValueError:
        raise ServiceError(f"{name}={raw!r} is not a port number. Fix: set it to e.g. 4200, or unset it.") from None
    if not 0 < port < 65536:
        raise ServiceError(f"{name}={raw!r} is not a valid TCP port (1-65535). Fix: set it to e.g. 4200, or unset it.")
    return port


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


# --------------------------------------------------------------------------- base


class _ManagedProcess:
    """A child process in its own process group, logging to a file, stopped as a group."""

    kind = "process"
    stop_grace = 10.0

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
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
        if not self._atexit_registered:
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True

    def _terminate(self) -> None:
        """Stop the whole process group: SIGTERM, wait, SIGKILL; reap the leader."""
        process = self.process
        if process is None:
            return
        pgid = process.pid  # start_new_session: the child leads its own group
        if process.poll() is None:
            self._signal_group(pgid, signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_grace)
            except subprocess.TimeoutExpired:
                self._signal_group(pgid, signal.SIGKILL)
                process.wait(timeout=30)
        # Children of the leader may outlive it: give them a moment, then kill them.
        deadline = time.monotonic() + 3
        while self._group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._group_alive(pgid):
            self._signal_group(pgid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while self._group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    @staticmethod
    def _group_alive(pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - a foreign group reused the id
            return False
        return True

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


# --------------------------------------------------------------------------- server


class PrefectServer(_ManagedProcess):
    """A real ``prefect server start`` on 127.0.0.1, or a reused running one.

    Args:
        port: port to listen on; default ``COURSE_PREFECT_PORT`` or a free port.
        home: the server's ``PREFECT_HOME``; default ``<workdir>/prefect/<name>``.
        ui: serve the UI; default on unless ``COURSE_PREFECT_UI=0``.
        auth_string: ``"user:pass"`` to require HTTP basic auth
            (``PREFECT_SERVER_API_AUTH_STRING``); clients get ``PREFECT_API_AUTH_STRING``.
        name: names the state folder.
        timeout: seconds to wait for health; default ``COURSE_PREFECT_START_TIMEOUT`` or 180.

    If ``PREFECT_API_URL`` is already set and healthy, :meth:`start` reuses that server
    (``reused`` is True) and :meth:`stop` leaves it running.
    """

    kind = "Prefect server"
    stop_grace = 15.0

    def __init__(
        self,
        port: int | None = None,
        home: str | os.PathLike[str] | None = None,
        ui: bool | None = None,
        auth_string: str | None = None,
        name: str = "local",
        timeout: float | None = None,
        export: bool = True,
    ) -> None:
        super().__init__()
        # export=False: a second server (lesson 07's "remote workspace") that neither reuses the
        # PREFECT_API_URL of this process nor replaces it; talk to it with use_api(server.env()).
        self.export = export
        self._requested_port = port
        self._home = Path(home).expanduser().resolve() if home is not None else None
        self._ui = ui
        self.auth_string = auth_string
        if auth_string:
            self._secrets.append(auth_string)
        self.name = name
        self._timeout = timeout
        self.port: int | None = None
        self.reused = False
        self.started = False
        self._api_url: str | None = None
        self._saved_env: dict[str, str | None] | None = None
        self.startup_seconds: float | None = None

    def __repr__(self) -> str:
        state = "reused" if self.reused else ("running" if self.running else "stopped")
        return f"PrefectServer(api_url={self._api_url!r}, {state})"

    # -- properties
    @property
    def home(self) -> Path:
        if self._home is None:
            self._home = paths.subdir("prefect") / self.name
        return self._home

    @property
    def ui(self) -> bool:
        if self._ui is not None:
            return bool(self._ui)
        return os.environ.get("COURSE_PREFECT_UI", "1").strip().lower() not in _FALSEY

    @property
    def api_url(self) -> str:
        if self._api_url is None:
            raise ServiceError("The Prefect server is not started. Fix: call .start() (or use `with PrefectServer() as server:`).")
        return self._api_url

    @property
    def ui_url(self) -> str:
        return _base_url(self.api_url)

    @property
    def health_url(self) -> str:
        return f"{self.api_url}/health"

    def url_for_flow_run(self, flow_run_id: Any) -> str:
        """The UI page of a flow run (Prefect 3 UI path ``/runs/flow-run/<id>``)."""
        return f"{self.ui_url}/runs/flow-run/{flow_run_id}"

    def env(self) -> dict[str, str]:
        """Environment variables a child process (worker, CLI, flow) needs to use this server."""
        env = dict(HEADLESS_ENV)
        env["PREFECT_API_URL"] = self.api_url
        auth = self.auth_string or (os.environ.get("PREFECT_API_AUTH_STRING") if self.reused else None)
        if auth:
            env["PREFECT_API_AUTH_STRING"] = auth
        return env

    def healthy(self) -> bool:
        return self._api_url is not None and http_status(self.health_url) == 200

    # -- lifecycle
    def start(self) -> "PrefectServer":
        if self.started and (self.reused or self.running):
            return self
        if self.started:  # our server died since: clean up (restores PREFECT_API_URL) and start anew
            self.stop()

        existing = os.environ.get("PREFECT_API_URL", "").strip()
        if existing and self.export:
            return self._reuse(existing)

        port = self._requested_port
        source = "port="
        if port is None:
            port = _env_port("COURSE_PREFECT_PORT")
            source = "COURSE_PREFECT_PORT="
        if port is not None:
            if not port_is_free(port):
                raise ServiceError(
                    f"Port {port} on {HOST} (from {source}{port}) is already in use, so the Prefect server cannot listen on it. "
                    f"Fix: stop the program that holds port {port} (`lsof -i :{port}` shows it), "
                    "or choose another port, or leave the port unset to get a free one."
                )
        else:
            port = free_port()
        self.port = port
        self._api_url = f"http://{HOST}:{port}/api"

        try:
            home = self.home
            home.mkdir(parents=True, exist_ok=True)
            probe = home / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            self._api_url = None
            raise ServiceError(
                f"The Prefect server's home folder {self._home} cannot be created or written: {exc}. "
                "Fix: pass a writable home=..., or point COURSE_WORKDIR at a writable folder."
            ) from exc

        env = self._server_env(port)
        argv = [executable("prefect"), "server", "start", "--host", HOST, "--port", str(port)]
        argv.append("--ui" if self.ui else "--no-ui")
        argv.append("--analytics-off")

        timeout = self._timeout if self._timeout is not None else _env_float(
            "COURSE_PREFECT_START_TIMEOUT", DEFAULT_SERVER_START_TIMEOUT
        )
        t0 = time.monotonic()
        self._spawn(argv, env, log_path=home / "server.log", cwd=home)
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self._api_url = None
            raise
        self.startup_seconds = time.monotonic() - t0
        self.started = True

        if self.export:
            exports: dict[str, str | None] = {"PREFECT_API_URL": self._api_url}
            if self.auth_string:
                exports["PREFECT_API_AUTH_STRING"] = self.auth_string
            self._saved_env = _set_env(exports)
            _refresh_prefect_settings()
        ui_note = f", UI {self.ui_url}" if self.ui else " (no UI)"
        print(f"Prefect server ready in {self.startup_seconds:.0f} s: API {self._api_url}{ui_note}; log {self.log_path}")
        return self

    def _reuse(self, api_url: str) -> "PrefectServer":
        api_url = api_url.rstrip("/")
        status = http_status(f"{api_url}/health")
        if status != 200:
            what = "does not answer" if status is None else f"answers HTTP {status} on /health"
            raise ServiceError(
                f"PREFECT_API_URL is set to {api_url}, but that server {what}. "
                f"Fix: start that server again, or unset PREFECT_API_URL "
                "(`del os.environ['PREFECT_API_URL']` in a notebook, `unset PREFECT_API_URL` in a shell) "
                "so that a new local server is started."
            )
        self._api_url = api_url
        self.reused = True
        self.started = True
        print(f"Reusing the Prefect server at {api_url} (PREFECT_API_URL is set); stop() will leave it running.")
        return self

    def _server_env(self, port: int) -> dict[str, str]:
        env = dict(os.environ)
        # A server is not a client: drop client settings that would confuse it.
        for key in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING", "PREFECT_PROFILE"):
            env.pop(key, None)
        env.update(HEADLESS_ENV)
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_SERVER_API_HOST": HOST,
                "PREFECT_SERVER_API_PORT": str(port),
                "PREFECT_SERVER_UI_ENABLED": "true" if self.ui else "false",
                "PYTHONUNBUFFERED": "1",
                "COLUMNS": "200",
            }
        )
        if self.auth_string:
            env["PREFECT_SERVER_API_AUTH_STRING"] = self.auth_string
        else:
            env.pop("PREFECT_SERVER_API_AUTH_STRING", None)
        return env

    def _wait_healthy(self, timeout: float) -> None:
        self._wait_until(
            lambda: http_status(self.health_url, timeout=2) == 200, timeout,
            died=f"The Prefect server process exited with code {{code}} before it became healthy "
                 f"(expected {self.health_url} to answer 200).",
            died_fix="read the log lines below; common causes are a bad PREFECT_* setting in the environment "
                     "or an unusable database (PREFECT_SERVER_DATABASE_CONNECTION_URL).",
            slow=f"The Prefect server did not become healthy within {timeout:.0f} s ({self.health_url}).",
            slow_fix="the machine may be slow: raise COURSE_PREFECT_START_TIMEOUT (seconds), "
                     "or set COURSE_PREFECT_UI=0 to start faster without the UI.",
        )

    def stop(self) -> None:
        """Stop the server this object started (idempotent); a reused server keeps running."""
        if self.reused:
            self.started = False
            self.reused = False
            self._api_url = None
            return
        if self.running and not self._exiting:
            _drain_prefect_clients()
        self._terminate()
        if self._saved_env is not None:
            _set_env(self._saved_env)
            self._saved_env = None
            _refresh_prefect_settings()
        self.started = False


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


_SERVER: PrefectServer | None = None


def start_server(**kwargs: Any) -> PrefectServer:
    """Start (or return the already started) course Prefect server; for notebooks.

    Keyword arguments go to :class:`PrefectServer` on the first call.
    """
    global _SERVER
    if _SERVER is not None and _SERVER.started:
        if _SERVER.healthy():
            return _SERVER
        _SERVER.stop()
        _SERVER = None
    if not os.environ.get("PREFECT_API_URL") and "port" not in kwargs and _env_port("COURSE_PREFECT_PORT") is None:
        # Lessons run in separate kernels: the first one starts the server on the well-known
        # port, the next ones find it there and reuse it (and leave stopping it to its owner).
        learner_api = f"http://{HOST}:{LEARNER_PORT}/api"
        if http_status(f"{learner_api}/health") == 200:
            os.environ["PREFECT_API_URL"] = learner_api
            _refresh_prefect_settings()
        elif port_is_free(LEARNER_PORT):
            kwargs["port"] = LEARNER_PORT
    server = PrefectServer(**kwargs)
    server.start()
    _SERVER = server
    return server


def stop_server() -> None:
    """Stop the server started by :func:`start_server` (no-op if none)."""
    global _SERVER
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None


# --------------------------------------------------------------------------- worker


def _client_settings(server: PrefectServer | None) -> tuple[str, str | None, dict[str, str]]:
    """(api_url, auth_string, env for child processes) from a server or from os.environ."""
    if server is not None:
        env = server.env()
        return env["PREFECT_API_URL"], env.get("PREFECT_API_AUTH_STRING"), env
    api_url = os.environ.get("PREFECT_API_URL", "").strip().rstrip("/")
    if not api_url:
        raise ServiceError(
            "No Prefect server to talk to: PREFECT_API_URL is not set and no server= was given. "
            "Fix: start one first (`server = start_server()` or `with PrefectServer() as server:`)."
        )
    auth = os.environ.get("PREFECT_API_AUTH_STRING") or None
    env = dict(HEADLESS_ENV)
    env["PREFECT_API_URL"] = api_url
    if auth:
        env["PREFECT_API_AUTH_STRING"] = auth
    return api_url, auth, env


def _require_healthy(api_url: str) -> None:
    status = http_status(f"{api_url}/health")
    if status != 200:
        raise ServiceError(
            f"The Prefect server at {api_url} is not reachable"
            + ("" if status is None else f" (HTTP {status} on /health)")
            + ". Fix: start it (`start_server()`), or correct/unset PREFECT_API_URL."
        )


def _sync_client(api_url: str, auth_string: str | None):
    from prefect.client.orchestration import SyncPrefectClient

    # Prefect Cloud authenticates with an API key, a self-hosted server with basic auth.
    api_key = None if auth_string else os.environ.get("PREFECT_API_KEY")
    return SyncPrefectClient(api_url, api_key=api_key, auth_string=auth_string)


def ensure_work_pool(name: str, type: str = "process", server: PrefectServer | None = None):
    """Create the work pool ``name`` if it does not exist yet; return it (a ``WorkPool``).

    Idempotent: an existing pool is returned unchanged.
    """
    api_url, auth, _ = _client_settings(server)
    _require_healthy(api_url)
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.base import BaseWorker

    with _sync_client(api_url, auth) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            pass
        else:
            if pool.type != type:
                print(f"Work pool {name!r} exists with type {pool.type!r} (not {type!r}); leaving it as it is.")
            return pool
        worker_cls = BaseWorker.get_worker_class_from_type(type)
        if worker_cls is None:
            raise ServiceError(
                f"Unknown work pool type {type!r}: no installed Prefect worker provides it. "
                "Fix: use type='process', or install the package that provides that worker type."
            )
        template = worker_cls.get_default_base_job_template()
        try:
            return client.create_work_pool(WorkPoolCreate(name=name, type=type, base_job_template=template))
        except ObjectAlreadyExists:  # created meanwhile by someone else
            return client.read_work_pool(name)


class Worker(_ManagedProcess):
    """A real ``prefect worker start -p POOL -n NAME`` process.

    Args:
        pool: the work pool to poll (create it first with :func:`ensure_work_pool`).
        name: the worker's name; default ``<pool>-worker-<random>`` (unique).
        server: a :class:`PrefectServer`; default: the one in ``PREFECT_API_URL``.
        query_seconds: ``PREFECT_WORKER_QUERY_SECONDS`` (how often it polls for runs).
        timeout: seconds to wait until the worker is ONLINE (default 120).
    """

    kind = "Prefect worker"
    stop_grace = 10.0

    def __init__(
        self,
        pool: str,
        name: str | None = None,
        server: PrefectServer | None = None,
        query_seconds: float = 2,
        timeout: float = DEFAULT_WORKER_START_TIMEOUT,
    ) -> None:
        super().__init__()
        self.pool = pool
        self.name = name or f"{pool}-worker-{uuid.uuid4().hex[:6]}"
        self.server = server
        self.query_seconds = query_seconds
        self.timeout = timeout
        self.startup_seconds: float | None = None
        self._api_url: str | None = None
        self._auth: str | None = None

    def __repr__(self) -> str:
        return f"Worker(pool={self.pool!r}, name={self.name!r}, {'running' if self.running else 'stopped'})"

    def start(self) -> "Worker":
        if self.running:
            return self
        api_url, auth, client_env = _client_settings(self.server)
        if auth:
            self._secrets.append(auth)
        _require_healthy(api_url)
        self._api_url, self._auth = api_url, auth
        env = dict(os.environ)
        if auth:
            env.pop("PREFECT_API_KEY", None)  # a stray key overrides basic auth
        env.update(client_env)
        env["PREFECT_WORKER_QUERY_SECONDS"] = str(self.query_seconds)
        env["PYTHONUNBUFFERED"] = "1"
        env["COLUMNS"] = "200"
        state = paths.subdir("prefect") / "workers"
        argv = [executable("prefect"), "worker", "start", "-p", self.pool, "-n", self.name]
        t0 = time.monotonic()
        self._spawn(argv, env, log_path=state / f"{self.name}.log", cwd=state)
        self._wait_online()
        self.startup_seconds = time.monotonic() - t0
        print(f"Worker {self.name!r} is ONLINE in pool {self.pool!r} after {self.startup_seconds:.0f} s; log {self.log_path}")
        return self

    def status(self) -> str | None:
        """The server's view of this worker: 'ONLINE', 'OFFLINE' or None (unknown)."""
        assert self._api_url is not None
        with _sync_client(self._api_url, self._auth) as client:
            workers = client.read_workers_for_work_pool(self.pool)
        for worker in workers:
            if worker.name == self.name:
                return str(getattr(worker.status, "value", worker.status))
        return None

    def _wait_online(self) -> None:
        from prefect.exceptions import ObjectNotFound

        def online() -> bool:
            try:
                return self.status() == "ONLINE"
            except ObjectNotFound:
                return False  # the pool may not exist yet: the worker creates it on start
            except Exception:  # a transient API error; the deadline still applies
                return False

        self._wait_until(
            online, self.timeout, poll_seconds=1,
            died=f"The worker {self.name!r} for pool {self.pool!r} exited with code {{code}} before it came ONLINE.",
            died_fix="read the log lines below; check that the pool exists (ensure_work_pool) and the server is up.",
            slow=f"The worker {self.name!r} did not come ONLINE in pool {self.pool!r} within {self.timeout:.0f} s.",
            slow_fix="check the log below; on a slow machine pass a larger timeout=.",
        )

    def stop(self) -> None:
        """Stop the worker's process group (TERM, then KILL) and wait until it is gone (idempotent)."""
        self._terminate()


# --------------------------------------------------------------------------- S3


class ServedFlow(_ManagedProcess):
    """A real process running ``flow.serve(name=...)``: a deployment without pool or worker.

    ``ServedFlow("course_lib.flows:main_flow", "taxi-served")`` imports the flow, registers the
    deployment ``<flow-name>/<name>`` with the server in ``PREFECT_API_URL`` and executes its
    runs itself, polling every ``poll_seconds`` (Prefect's default is 10 s).
    """

    kind = "served flow"
    stop_grace = 10.0

    def __init__(self, flow_path: str, name: str, poll_seconds: float = 2, timeout: float = 120) -> None:
        super().__init__()
        module, _, attribute = flow_path.partition(":")
        if not module or not attribute.isidentifier():
            raise ServiceError(f"{flow_path!r} is not 'module:flow_function'. Fix: pass e.g. 'course_lib.flows:main_flow'.")
        self.module, self.attribute, self.name = module, attribute, name
        self.poll_seconds, self.timeout = poll_seconds, timeout
        self.deployment_name: str | None = None

    def start(self) -> "ServedFlow":
        if self.running:
            return self
        import importlib

        api_url, auth, client_env = _client_settings(None)
        # Resolved here first, so a wrong module or flow name fails before any process starts.
        flow_name = getattr(importlib.import_module(self.module), self.attribute).name
        self.deployment_name = f"{flow_name}/{self.name}"
        env = {**os.environ, **client_env, "PREFECT_RUNNER_POLL_FREQUENCY": str(self.poll_seconds),
               "PYTHONUNBUFFERED": "1"}
        code = (f"from {self.module} import {self.attribute} as flow\n"
                f"flow.serve(name={self.name!r})\n")
        state = paths.subdir("prefect") / "served"
        self._spawn([sys.executable, "-c", code], env, log_path=state / f"{self.name}.log", cwd=state)

        def registered(client) -> bool:
            try:
                client.read_deployment_by_name(self.deployment_name)
                return True
            except Exception:  # not registered yet
                return False

        with _sync_client(api_url, auth) as client:
            self._wait_until(
                lambda: registered(client), self.timeout,
                died=f"The process serving {self.deployment_name} exited (code {{code}}) during start.",
                died_fix="read the log lines below.",
                slow=f"{self.deployment_name} was not registered within {self.timeout:.0f} s.",
                slow_fix="read the log lines below.",
            )
        print(f"Serving deployment {self.deployment_name!r} from process {self.pid}; log {self.log_path}")
        return self

    def stop(self) -> None:
        """Stop serving (idempotent); the deployment stays registered but nothing executes its runs."""
        self._terminate()


class S3Endpoint(_ManagedProcess):
    """A real ``moto_server`` on 127.0.0.1: a local S3-compatible endpoint.

    Use it with any dummy credentials, e.g.
    ``boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id="test",
    aws_secret_access_key="test", region_name="us-east-1")``.
    """

    kind = "S3 endpoint (moto_server)"
    stop_grace = 5.0

    def __init__(self, port: int | None = None, timeout: float = DEFAULT_S3_START_TIMEOUT) -> None:
        super().__init__()
        self._requested_port = port
        self.port: int | None = None
        self.timeout = timeout
        self.startup_seconds: float | None = None

    def __repr__(self) -> str:
        url = f"http://{HOST}:{self.port}" if self.port else None
        return f"S3Endpoint(endpoint_url={url!r}, {'running' if self.running else 'stopped'})"

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise ServiceError("The S3 endpoint is not started. Fix: call .start() (or use `with S3Endpoint() as s3:`).")
        return f"http://{HOST}:{self.port}"

    def start(self) -> "S3Endpoint":
        if self.running:
            return self
        port = self._requested_port
        if port is not None:
            if not port_is_free(port):
                raise ServiceError(
                    f"Port {port} on {HOST} is already in use, so the S3 endpoint cannot listen on it. "
                    f"Fix: stop the program that holds port {port}, or pass another port (or none for a free one)."
                )
        else:
            port = free_port()
        self.port = port
        state = paths.subdir("moto")
        env = dict(os.environ)
        # moto_server needs no credentials; keep none in its environment (and so in its log).
        for key in list(env):
            if key.startswith("AWS_"):
                env.pop(key)
        env["PYTHONUNBUFFERED"] = "1"
        argv = [executable("moto_server"), "-H", HOST, "-p", str(port)]
        t0 = time.monotonic()
        self._spawn(argv, env, log_path=state / f"moto-{port}.log", cwd=state)
        self._wait_until(
            lambda: http_status(self.endpoint_url + "/", timeout=2) is not None, self.timeout,
            poll_seconds=0.2,
            died=f"The S3 endpoint {self.endpoint_url} (moto_server) exited with code {{code}} during start.",
            died_fix="read the log lines below; check that moto, flask and flask-cors are installed (`make setup`).",
            slow=f"The S3 endpoint {self.endpoint_url} did not answer within {self.timeout:.0f} s.",
            slow_fix="pass a larger timeout= on a slow machine.",
        )
        self.startup_seconds = time.monotonic() - t0
        return self

    def check(self) -> None:
        """Raise ServiceError unless the endpoint answers HTTP."""
        check_s3_endpoint(self.endpoint_url)

    def stop(self) -> None:
        """Stop moto_server (idempotent)."""
        self._terminate()


def check_s3_endpoint(endpoint_url: str) -> None:
    """Raise :class:`ServiceError` naming ``endpoint_url`` unless something answers HTTP there."""
    if http_status(endpoint_url.rstrip("/") + "/", timeout=3) is None:
        raise ServiceError(
            f"The S3 endpoint {endpoint_url} does not answer. "
            "Fix: start it (`s3 = S3Endpoint().start()`), or correct the endpoint URL you configured."
        )

