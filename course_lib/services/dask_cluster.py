"""A real Dask cluster on this machine: ``dask scheduler`` + N ``dask worker`` processes.

It stands for "an existing cluster" (one on Kubernetes, Coiled, a lab server): lesson 08 starts
it as a course service and connects Prefect to it with ``DaskTaskRunner(address=cluster.address)``.

Each process is a real program in its own process group with its own log file under
``<workdir>/dask/``; :meth:`DaskCluster.stop` stops the workers, then the scheduler (SIGTERM,
a grace period, SIGKILL), and the same happens when Python exits. Every worker runs one thread
(``--nthreads 1``) and no nanny, so N workers are N processes and N cores, no more.

Settings read here (:mod:`course_lib.settings`): ``COURSE_DASK_ADDRESS``, the address of another
scheduler (``tcp://host:8786``) that lesson 08 uses instead of starting this cluster (its workers
need the course's packages and ``PREFECT_API_URL``); ``COURSE_DASK_START_TIMEOUT``, seconds to wait
for the scheduler and its workers (default 120).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import threading
import time

from course_lib import paths
from course_lib import settings
from course_lib.services.base import HOST, ServiceError, _ManagedProcess, _OPENER, executable, free_port, setting

ADDRESS_ENV = settings.variable("dask_address")


def _host_port(address: str) -> tuple[str, int]:
    """``("host", port)`` of a scheduler address such as ``tcp://127.0.0.1:8786`` or ``host:8786``."""
    try:
        return settings.parse_tcp_address(address)
    except ValueError:
        raise ServiceError(
            f"{address!r} is not a Dask scheduler address. "
            "Fix: write it as tcp://HOST:PORT, e.g. tcp://127.0.0.1:8786 (what `dask scheduler` prints)."
        ) from None


def check_dask_scheduler(address: str, timeout: float = 5.0) -> str:
    """Return ``address`` if a Dask scheduler answers there; else a clear ServiceError within ``timeout``.

    It connects with Dask's own protocol and asks the scheduler who it is (``identity``), so a
    wrong host, a closed port or another kind of server fail in seconds, instead of the Dask
    client's 30 s connection timeout inside the flow run.
    """
    _host_port(address)
    result: dict = {}

    async def identity() -> dict:
        from distributed.comm import connect

        comm = await connect(address, timeout=timeout)
        try:
            await comm.write({"op": "identity"})
            return await comm.read()
        finally:
            await comm.close()

    def ask() -> None:  # in a thread of its own: a notebook's event loop is already running
        try:
            result["reply"] = asyncio.run(asyncio.wait_for(identity(), timeout + 1))
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    thread = threading.Thread(target=ask, name="course-dask-check", daemon=True)
    thread.start()
    thread.join(timeout + 3)
    reply, error = result.get("reply"), result.get("error")
    if isinstance(reply, dict) and reply.get("type") == "Scheduler":
        return address
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)) or (reply is None and error is None):
        problem = f"no answer within {timeout:.0f} s"
    elif isinstance(error, OSError):
        problem = str(error)
    else:  # something answered, but not a Dask scheduler
        problem = "what answers there does not speak Dask's protocol"
        problem += f": {str(reply)[:80]}" if reply is not None else ""
    raise ServiceError(
        f"No Dask scheduler answers at {address} ({problem}). "
        "Fix: start one (`dask scheduler`, then `dask worker ADDRESS`), correct the address, "
        f"or unset {ADDRESS_ENV} / dask_address to let the lesson start its own cluster."
    )


def _command(argv: list[str]) -> str:
    return " ".join(["dask", *argv[1:]])


class _DaskWorker(_ManagedProcess):
    kind = "Dask worker"
    stop_grace = 5.0


class DaskCluster(_ManagedProcess):
    """A real ``dask scheduler`` on 127.0.0.1 with ``n_workers`` ``dask worker`` processes.

    >>> with DaskCluster(n_workers=2) as cluster:          # doctest: +SKIP
    ...     print(cluster.address, cluster.dashboard_link)

    ``preload`` names modules every worker imports at start (so the first task does not pay for
    importing them). The dashboard (``dashboard_link``) needs ``bokeh``; without it the scheduler
    runs with ``--no-dashboard``.
    """

    kind = "Dask scheduler"
    stop_grace = 5.0

    def __init__(self, n_workers: int = 2, threads_per_worker: int = 1, port: int | None = None,
                 preload: list[str] | tuple[str, ...] = (), timeout: float | None = None,
                 name: str = "course") -> None:
        super().__init__()
        if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
            raise ServiceError(f"n_workers={n_workers!r}: a Dask cluster needs a whole number of workers >= 1.")
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self._requested_port = port
        self.preload = list(preload)
        self.timeout = timeout if timeout is not None else setting("dask_start_timeout")
        self.name = name
        self.port: int | None = None
        self.dashboard_port: int | None = None
        self.workers: list[_DaskWorker] = []
        self.commands: list[str] = []  # the command lines it runs, as a learner would type them
        self.startup_seconds: float | None = None

    def __repr__(self) -> str:
        address = self.address if self.port else None
        return (f"DaskCluster(address={address!r}, workers={self.n_workers}x{self.threads_per_worker} thread, "
                f"{'running' if self.running else 'stopped'})")

    # -- addresses
    @property
    def address(self) -> str:
        if self.port is None:
            raise ServiceError("The Dask cluster is not started. Fix: call .start() (or `with DaskCluster() as c:`).")
        return f"tcp://{HOST}:{self.port}"

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard (needs bokeh), or None."""
        return f"http://{HOST}:{self.dashboard_port}/status" if self.dashboard_port and self.has_dashboard else None

    @property
    def has_dashboard(self) -> bool:
        """The dashboard pages need bokeh (installed with the course); the scheduler runs without it."""
        return importlib.util.find_spec("bokeh") is not None

    @property
    def log_paths(self) -> list:
        return [self.log_path] + [worker.log_path for worker in self.workers]

    @property
    def pids(self) -> list[int]:
        """Process ids of the scheduler and the workers (each leads its own process group)."""
        return [p.pid for p in [self, *self.workers] if p.pid is not None]

    # -- health
    def connected_workers(self) -> int:
        """How many workers the scheduler knows (its HTTP ``/json/counts.json``); -1 if it does not answer."""
        try:
            with _OPENER.open(f"http://{HOST}:{self.dashboard_port}/json/counts.json", timeout=2) as response:
                return int(json.loads(response.read())["workers"])
        except (OSError, ValueError, KeyError):
            return -1

    # -- lifecycle
    def start(self) -> "DaskCluster":
        if self.running:
            return self
        self.port = self._requested_port or free_port()
        self.dashboard_port = free_port()
        self.workers = []  # a cluster started again gets new workers
        state = paths.subdir("dask") / f"{self.name}-{self.port}"
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # The HTTP server (health, worker counts) always listens; the dashboard pages need bokeh.
        argv = [executable("dask"), "scheduler", "--host", HOST, "--port", str(self.port),
                "--dashboard-address", f"{HOST}:{self.dashboard_port}",
                "--dashboard" if self.has_dashboard else "--no-dashboard"]
        self.commands = [_command(argv)]
        t0 = time.monotonic()
        self._spawn(argv, env, log_path=state / "scheduler.log", cwd=state)
        try:
            self._wait_until(
                lambda: self.connected_workers() >= 0, self.timeout, poll_seconds=0.2,
                died=f"The Dask scheduler {self.address} exited with code {{code}} during start.",
                died_fix="read the log lines below; check that dask[distributed] is installed (`make setup`).",
                slow=f"The Dask scheduler {self.address} did not answer within {self.timeout:.0f} s.",
                slow_fix="pass a larger timeout= (or COURSE_DASK_START_TIMEOUT) on a slow machine.",
            )
            for index in range(self.n_workers):
                worker = _DaskWorker()
                worker_dir = state / f"worker-{index}"
                worker_argv = [executable("dask"), "worker", self.address, "--host", HOST,
                               "--nthreads", str(self.threads_per_worker), "--no-nanny",
                               "--name", f"{self.name}-worker-{index}", "--local-directory", str(worker_dir),
                               "--no-dashboard", "--death-timeout", "60"]
                for module in self.preload:
                    worker_argv += ["--preload", module]
                self.commands.append(_command(worker_argv))
                worker._spawn(worker_argv, env, log_path=state / f"worker-{index}.log", cwd=worker_dir)
                self.workers.append(worker)
            self._wait_until(
                self._workers_ready, self.timeout, poll_seconds=0.3,
                died=f"The Dask scheduler {self.address} exited with code {{code}} while its workers started.",
                died_fix="read the log lines below.",
                slow=(f"Only {max(self.connected_workers(), 0)} of {self.n_workers} Dask workers connected to "
                      f"{self.address} within {self.timeout:.0f} s."),
                slow_fix=f"read the worker logs in {state}; pass a larger timeout= on a slow machine.",
            )
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _workers_ready(self) -> bool:
        for worker in self.workers:
            if not worker.running:
                raise worker._failure(
                    f"A Dask worker exited with code {worker.process.poll()} during start.",
                    "read the worker log lines below; check that the preloaded modules import.")
        return self.connected_workers() >= self.n_workers

    def check(self) -> None:
        """Raise ServiceError unless the scheduler accepts connections."""
        check_dask_scheduler(self.address)

    def stop(self) -> None:
        """Stop the workers, then the scheduler (idempotent)."""
        for worker in self.workers:
            worker._terminate()
        self._terminate()

    def worker_log_tail(self, index: int, n: int = 20) -> str:
        return self.workers[index].log_tail(n)


def dask_address_from_env() -> str | None:
    """``COURSE_DASK_ADDRESS`` if set (stripped and checked to be ``tcp://HOST:PORT``), else None."""
    address = setting("dask_address")
    return address.strip() if address else None
