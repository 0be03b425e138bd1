"""A real ``prefect worker`` process, the work pools it polls, and ``flow.serve()`` in its own process."""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

from course_lib import paths
from course_lib.services.base import (
    DEFAULT_WORKER_START_TIMEOUT,
    HEADLESS_ENV,
    ServiceError,
    _ManagedProcess,
    executable,
    http_status,
)
from course_lib.services.server import PrefectServer


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



class ServedFlow(_ManagedProcess):
    """A real process serving a flow (``flow.serve(name=...)``): a deployment without pool or worker.

    ``ServedFlow("serve.py", deployment="main-flow/taxi-served")`` runs the script ``python
    serve.py`` in the script's folder (what a learner types in a terminal) and waits until the
    deployment it serves is registered.

    The served process polls for runs every ``poll_seconds`` (``PREFECT_RUNNER_POLL_FREQUENCY``;
    Prefect's default is 10 s) and starts each flow run in a subprocess of its own.
    """

    kind = "served flow"
    stop_grace = 10.0

    def __init__(self, script: str | os.PathLike, deployment: str, poll_seconds: float = 2,
                 timeout: float = 120) -> None:
        super().__init__()
        self.poll_seconds, self.timeout = poll_seconds, timeout
        self.script = Path(script).resolve()
        if self.script.suffix != ".py" or not self.script.is_file():
            raise ServiceError(f"{self.script} is not a Python script that exists. Fix: write the serve script "
                               "first (e.g. with %%writefile), then start it.")
        if not deployment or deployment.count("/") != 1:
            raise ServiceError(f"ServedFlow({str(script)!r}) needs deployment='FLOW-NAME/DEPLOYMENT-NAME', "
                               "the deployment the script serves (e.g. 'main-flow/taxi-served').")
        self.deployment_name = deployment
        self.name = deployment.split("/")[1]

    @property
    def argv(self) -> list[str]:
        """The command this service runs (or ran): ``python serve_taxi.py`` with this environment's python."""
        if self.process is not None:
            return list(self.process.args)
        return [sys.executable, self.script.name]

    def start(self) -> "ServedFlow":
        if self.running:
            return self
        api_url, auth, client_env = _client_settings(None)
        cwd = self.script.parent
        env = {**os.environ, **client_env, "PREFECT_RUNNER_POLL_FREQUENCY": str(self.poll_seconds),
               "PYTHONUNBUFFERED": "1"}
        log_path = paths.subdir("prefect") / "served" / f"{self.name}.log"
        self._spawn(self.argv, env, log_path=log_path, cwd=cwd)

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
                slow_fix="read the log lines below (does the script serve that flow and deployment name?).",
            )
        print(f"Serving deployment {self.deployment_name!r} from process {self.pid}; log {self.log_path}")
        return self

    def stop(self) -> None:
        """Stop serving (idempotent); the deployment stays registered but nothing executes its runs."""
        self._terminate()
