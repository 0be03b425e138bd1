"""Nothing orphaned: the services a kernel starts die with it, whatever kills it.

A real ipykernel (jupyter_client) starts a Prefect server on the learner port (a test port,
never 4200), a worker, a served flow and an S3 endpoint, as the lessons do; then the kernel is
killed with SIGKILL (the OOM killer, a forced restart) or SIGTERM (its terminal closed). Within
10 s no process of those services remains and their ports are free: each service's watchdog
(course_lib.services.base.WATCHDOG_CODE) stopped it. The same kernel's server, seen from another
process, is reused with a message that says who started it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from course_lib.services import free_port, port_is_free

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_SECONDS = 10

START_SERVICES = """
import json
from course_lib.tooling import bootstrap
from course_lib import services
bootstrap.apply_headless_env()
server = services.start_server()
services.ensure_work_pool("orphan-pool")
worker = services.Worker("orphan-pool", query_seconds=5).start()
from course_lib import paths
from course_lib.tooling import project
serving = paths.subdir("orphan-served")  # the learner's flow and a serve script, as lesson 04 writes them
(serving / "orchestrate.py").write_text(project.reference("orchestrate.py", project.LAST_LESSON))
(serving / "serve.py").write_text("from orchestrate import main_flow\\n\\nif __name__ == '__main__':\\n"
                                  "    main_flow.serve(name='orphan-served')\\n")
served = services.ServedFlow(serving / "serve.py", "main-flow/orphan-served", poll_seconds=5).start()
s3 = services.S3Endpoint().start()
print("SERVICES=" + json.dumps({
    "server": [server.pid, server.port], "worker": [worker.pid, None],
    "served": [served.pid, None], "s3": [s3.pid, s3.port],
    "watchdogs": [s.watchdog_process.pid for s in (server, worker, served, s3)],
}))
"""


def _kernel_env(workdir: Path, learner_port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("PREFECT_API_URL", "COURSE_PREFECT_PORT", "PREFECT_API_AUTH_STRING")}
    env.update({"COURSE_WORKDIR": str(workdir), "COURSE_LEARNER_PORT": str(learner_port),
                "COURSE_PREFECT_UI": "0", "PYTHONUNBUFFERED": "1"})
    return env


def _group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of a process group (zombies hold no port and run nothing)."""
    members = []
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _kill_groups(pgids) -> None:
    for pgid in pgids:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _run_in_kernel(client, code: str, timeout: float) -> str:
    """Execute ``code`` in the kernel; its stdout (raises on an error output)."""
    chunks: list[str] = []

    def output(msg):
        content = msg["content"]
        if msg["msg_type"] == "stream":
            chunks.append(content["text"])
        elif msg["msg_type"] == "error":
            chunks.append("\n".join(content["traceback"]))

    reply = client.execute_interactive(code, timeout=timeout, output_hook=output)
    text = "".join(chunks)
    assert reply["content"]["status"] == "ok", text
    return text


@pytest.fixture
def kernel_with_services(tmp_path):
    """A real kernel that started its own server, worker, served flow and S3 endpoint."""
    from jupyter_client.manager import KernelManager

    learner_port = free_port()
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=_kernel_env(tmp_path / "work", learner_port), cwd=str(ROOT / "notebooks"))
    client = manager.blocking_client()
    client.start_channels()
    groups: list[int] = []
    try:
        client.wait_for_ready(timeout=120)
        text = _run_in_kernel(client, START_SERVICES, timeout=600)
        line = next(line for line in text.splitlines() if line.startswith("SERVICES="))
        found = json.loads(line[len("SERVICES="):])
        groups = [found[name][0] for name in ("server", "worker", "served", "s3")]
        yield manager, found, learner_port, tmp_path / "work"
    finally:
        client.stop_channels()
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)
        _kill_groups(groups)  # never leak, even when the test failed


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_kernel_leaves_no_service_behind(kernel_with_services, sig):
    manager, found, learner_port, workdir = kernel_with_services
    groups = {name: found[name][0] for name in ("server", "worker", "served", "s3")}
    ports = [found["server"][1], found["s3"][1]]
    assert found["server"][1] == learner_port
    for name, pgid in groups.items():
        assert _group_members(pgid), f"the {name} is not running before the kill"
    assert not any(port_is_free(port) for port in ports)
    _assert_reused_and_kept(found, learner_port, workdir)

    os.kill(manager.provisioner.process.pid, sig)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        alive = {name: pgid for name, pgid in groups.items() if _group_members(pgid)}
        if not alive and all(port_is_free(port) for port in ports) and not _running(found["watchdogs"]):
            break
        time.sleep(0.25)
    alive = {name: [p.pid for p in _group_members(pgid)] for name, pgid in groups.items() if _group_members(pgid)}
    assert not alive, f"still running {DEADLINE_SECONDS} s after {sig.name} of the kernel: {alive}"
    assert all(port_is_free(port) for port in ports), f"a port is still held: {ports}"
    assert not _running(found["watchdogs"]), "a watchdog is still running"


def _running(pids) -> list[int]:
    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.Error:
            pass
    return running


def test_a_stopped_service_takes_its_watchdog_along(tmp_path, monkeypatch):
    """A normal stop leaves no watchdog behind either (it leaves once its group is gone)."""
    from course_lib.services import S3Endpoint

    monkeypatch.setenv("COURSE_WORKDIR", str(tmp_path / "work"))
    with S3Endpoint() as s3:
        watchdog = s3.watchdog_process
        assert watchdog is not None and watchdog.poll() is None
    assert watchdog.poll() is not None
    assert s3.watchdog_process is None


def _assert_reused_and_kept(found, learner_port: int, workdir: Path) -> None:
    """Another process (a second lesson's kernel) reuses the kernel's server on the learner
    port and says the course started it, not that PREFECT_API_URL is set (it is not); its
    stop_server() leaves the server running for its owner."""
    code = ("from course_lib import services\n"
            "server = services.start_server()\n"
            "print('REUSED', server.reused, server.api_url)\n"
            "services.stop_server()\n")
    env = _kernel_env(workdir, learner_port)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert f"REUSED True http://127.0.0.1:{learner_port}/api" in result.stdout
    assert f"started by the course (pid {found['server'][0]})" in result.stdout, result.stdout
    assert "PREFECT_API_URL is set" not in result.stdout
    assert _group_members(found["server"][0]), "stop_server() of a reusing process stopped the server"
