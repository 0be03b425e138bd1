"""The Prefect server as a real process: :class:`PrefectServer`, and the notebooks'
idempotent :func:`start_server` / :func:`stop_server`."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from course_lib import paths, settings
from course_lib.services.base import (
    HEADLESS_ENV,
    HOST,
    ServiceError,
    _base_url,
    _drain_prefect_clients,
    _ManagedProcess,
    _refresh_prefect_settings,
    _set_env,
    executable,
    free_port,
    http_status,
    port_is_free,
    setting,
)

#: Where start_server() runs the learners' server by default, so every lesson's kernel finds the
#: same one; ``COURSE_LEARNER_PORT`` overrides it (the tests never touch 4200).
LEARNER_PORT = settings.FIELDS["learner_port"].default


def learner_port() -> int:
    """The learners' shared server port: ``COURSE_LEARNER_PORT`` (default 4200)."""
    return setting("learner_port")

#: Who started a course server, as the reuse message says it.
OWNER_COURSE = "the course"            # a lesson's kernel or a script (start_server, PrefectServer)
OWNER_INSTRUCTOR = "`make services`"   # the instructor's session (course_lib.tooling.instructor)


def record_path() -> Path:
    """``<workdir>/prefect/server.json``: the course server that runs now (API, pid, owner)."""
    return paths.subdir("prefect") / "server.json"


def env_file_path() -> Path:
    """``<workdir>/course.env``: ``source`` it in a terminal to use the course's running server."""
    return paths.workdir() / "course.env"


def client_home() -> Path:
    """The ``PREFECT_HOME`` of the course's clients (kernels, CLI in a terminal): not ``~/.prefect``."""
    return Path(os.environ.get("PREFECT_HOME") or paths.subdir("prefect") / "client").expanduser()


def shell_lines(api_url: str) -> list[str]:
    """The shell lines that point a terminal's ``prefect`` at ``api_url`` with the course's setup."""
    bin_dir = str(Path(sys.executable).parent)
    return [
        f"export PREFECT_API_URL={shlex.quote(api_url)}",
        f"export PREFECT_HOME={shlex.quote(str(client_home()))}",
        f"export COURSE_REPO_ROOT={shlex.quote(str(paths.REPO_ROOT))}",
        # `prefect deploy` in your project fills its pull step's '{{ $MY_PROJECT_DIR }}' from it (lesson 04).
        f"export {paths.PROJECT_DIR_VARIABLE}={shlex.quote(str(paths.project_dir()))}",
        f'export PATH={shlex.quote(bin_dir)}:"$PATH"',
    ]


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_record() -> dict | None:
    """The record of the course server that runs now (``server.json``), or None if it is gone."""
    try:
        record = json.loads(record_path().read_text())
    except (OSError, ValueError):
        return None
    if not _pid_alive(record.get("pid")) or http_status(f"{record.get('api_url')}/health") != 200:
        return None
    return record


def find_course_server() -> tuple[str, str] | None:
    """(api_url, who started it) of a running course server: recorded, on the learner port, or
    at ``PREFECT_API_URL``; None when none answers."""
    record = running_record()
    if record is not None:
        return record["api_url"], f"started by {record.get('owner', OWNER_COURSE)} (pid {record.get('pid')})"
    learner_api = f"http://{HOST}:{learner_port()}/api"
    if http_status(f"{learner_api}/health") == 200:
        return learner_api, "on the learner port, started outside the course"
    existing = os.environ.get("PREFECT_API_URL", "").strip().rstrip("/")
    if existing and http_status(f"{existing}/health") == 200:
        return existing, "at PREFECT_API_URL"
    return None


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
        owner: str = OWNER_COURSE,
    ) -> None:
        super().__init__()
        self.owner = owner
        self.reuse_reason: str | None = None
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
        return setting("prefect_ui")

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
            return self._reuse(existing, self.reuse_reason or "at PREFECT_API_URL")

        port = self._requested_port
        source = "port="
        if port is None:
            port = setting("prefect_port")
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

        timeout = self._timeout if self._timeout is not None else setting("prefect_start_timeout")
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
            if not self.auth_string:  # never write a password into a file
                self._write_record()
        ui_note = f", UI {self.ui_url}" if self.ui else " (no UI)"
        print(f"Prefect server ready in {self.startup_seconds:.0f} s: API {self._api_url}{ui_note}; log {self.log_path}")
        return self

    def _write_record(self) -> None:
        """``server.json`` (for the reuse message and ``python -m course_lib env``) and
        ``course.env`` (for ``source work/course.env`` in a terminal)."""
        record = {"api_url": self._api_url, "ui_url": self.ui_url if self.ui else None, "pid": self.pid,
                  "owner": self.owner, "home": str(self.home), "log": str(self.log_path),
                  "started_by_pid": os.getpid(), "started_at": time.time()}
        try:
            record_path().write_text(json.dumps(record, indent=1))
            env_file_path().write_text(
                "# The course's running Prefect server: `source work/course.env` in a terminal.\n"
                + "\n".join(shell_lines(self._api_url)) + "\n")
        except OSError:  # pragma: no cover - a read-only workdir only loses the convenience
            pass

    def _remove_record(self) -> None:
        try:
            record = json.loads(record_path().read_text())
        except (OSError, ValueError):
            return
        if record.get("pid") == self.pid and record.get("api_url") == self._api_url:
            record_path().unlink(missing_ok=True)
            env_file_path().unlink(missing_ok=True)

    def _reuse(self, api_url: str, found: str = "at PREFECT_API_URL") -> "PrefectServer":
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
        self.reuse_reason = found
        if self.export and self.auth_string:  # child processes (`!prefect` cells, workers) need the auth too
            self._saved_env = _set_env({"PREFECT_API_AUTH_STRING": self.auth_string})
            _refresh_prefect_settings()
        print(f"Reusing the Prefect server at {api_url} ({found}); stop() will leave it running.")
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
            if self._saved_env is not None:
                _set_env(self._saved_env)
                self._saved_env = None
                _refresh_prefect_settings()
            return
        if self.running and not self._exiting:
            _drain_prefect_clients()
        if self.export and self._api_url is not None:
            self._remove_record()
        self._terminate()
        if self._saved_env is not None:
            _set_env(self._saved_env)
            self._saved_env = None
            _refresh_prefect_settings()
        self.started = False



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
    reason = None
    if not os.environ.get("PREFECT_API_URL") and "port" not in kwargs and setting("prefect_port") is None:
        # Lessons run in separate kernels: the first one starts the server on the well-known
        # port, the next ones find it there and reuse it (and leave stopping it to its owner).
        port = learner_port()
        learner_api = f"http://{HOST}:{port}/api"
        if http_status(f"{learner_api}/health") == 200:
            record = running_record()
            if record is not None and record.get("api_url") == learner_api:
                reason = f"on port {port}, started by {record.get('owner', OWNER_COURSE)} (pid {record.get('pid')})"
            else:
                reason = f"on port {port}, not started by the course"
            os.environ["PREFECT_API_URL"] = learner_api
            _refresh_prefect_settings()
        elif port_is_free(port):
            kwargs["port"] = port
    server = PrefectServer(**kwargs)
    server.reuse_reason = reason
    server.start()
    _SERVER = server
    return server


def stop_server() -> None:
    """Stop the server started by :func:`start_server` (no-op if none)."""
    global _SERVER
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None


