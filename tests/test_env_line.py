"""Own terminals: one line points a fresh shell's `prefect` at the course's running server.

The line is ``eval "$(.venv/bin/python -m course_lib env)"`` (or ``source work/course.env``,
written when a course server starts). A fresh shell with nothing else (no venv activated,
no PREFECT_* variable) then lists the course server's deployments and starts a worker that the
course server sees ONLINE.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from course_lib.services import free_port
from course_lib.services import server as server_module
from course_lib.services.base import stop_group

ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)
ENV_LINE = f'eval "$({PYTHON} -m course_lib env)"'


def _fresh_shell_env(tmp_path: Path) -> dict[str, str]:
    """A new terminal: a home folder, the system PATH, and only the test's working folder (where
    `make` would use work/) and a learner port that is not 4200 (other programs may hold it)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "COURSE_WORKDIR": os.environ["COURSE_WORKDIR"], "COURSE_LEARNER_PORT": str(free_port()),
            "COLUMNS": "200"}


def _bash(script: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "--norc", "--noprofile", "-c", script], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=env["HOME"])


@pytest.fixture(scope="module")
def course_deployment(prefect_server):
    """A deployment that exists only on the course's server (so listing it proves which server answered)."""
    from prefect.client.orchestration import SyncPrefectClient

    name = f"env-line-{uuid.uuid4().hex[:6]}"
    with SyncPrefectClient(prefect_server.api_url) as client:
        flow_id = client.create_flow_from_name("env-line-flow")
        client.create_deployment(flow_id=flow_id, name=name)
    return name


def test_env_prints_the_lines_for_the_running_course_server(prefect_server, tmp_path):
    result = subprocess.run([str(PYTHON), "-m", "course_lib", "env"], env=_fresh_shell_env(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"export PREFECT_API_URL={prefect_server.api_url}" in result.stdout
    assert "export PREFECT_HOME=" in result.stdout
    assert "started by the course" in result.stdout


def test_env_without_a_course_server_says_how_to_start_one(tmp_path):
    env = _fresh_shell_env(tmp_path)
    env["COURSE_WORKDIR"] = str(tmp_path / "empty-work")
    result = subprocess.run([str(PYTHON), "-m", "course_lib", "env"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert result.stdout == ""  # so `eval` of it does nothing
    assert "make services" in result.stderr


@pytest.mark.parametrize("line", [ENV_LINE, f". {server_module.env_file_path()}"], ids=["eval-env", "source-course.env"])
def test_a_fresh_shell_with_the_line_lists_the_course_deployments(course_deployment, line, tmp_path):
    result = _bash(f"{line}\nprefect deployment ls", _fresh_shell_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert course_deployment in result.stdout, result.stdout


def test_a_fresh_shell_with_the_line_starts_a_worker_the_course_server_sees(prefect_server, tmp_path):
    from prefect.client.orchestration import SyncPrefectClient

    pool, name = f"env-line-pool-{uuid.uuid4().hex[:4]}", f"env-line-worker-{uuid.uuid4().hex[:4]}"
    env = _fresh_shell_env(tmp_path)
    shell = subprocess.Popen(["bash", "--norc", "--noprofile", "-c",
                              f"{ENV_LINE}\nexec prefect worker start --pool {pool} --name {name}"],
                             env=env, cwd=env["HOME"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    status = None
    try:
        deadline = time.monotonic() + 150
        with SyncPrefectClient(prefect_server.api_url) as client:
            while time.monotonic() < deadline and shell.poll() is None:
                try:
                    workers = {w.name: str(getattr(w.status, "value", w.status))
                               for w in client.read_workers_for_work_pool(pool)}
                except Exception:  # the pool does not exist until the worker creates it
                    workers = {}
                status = workers.get(name)
                if status == "ONLINE":
                    break
                time.sleep(1)
    finally:
        stop_group(shell, grace=20)
    output = shell.stdout.read() if shell.stdout else ""
    assert status == "ONLINE", f"worker {name} not ONLINE on the course server; its output:\n{output[-2000:]}"
