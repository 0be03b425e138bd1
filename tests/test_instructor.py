"""The instructor's session: `make services` (its module, on test ports) and `make reset`."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from course_lib.services import free_port, http_status, port_is_free

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("Prefect server", "worker (instructor-pool)", "S3 endpoint")


def _env(workdir: Path, learner_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "COURSE_PREFECT_PORT")}
    env.update({"COURSE_WORKDIR": str(workdir), "COURSE_LEARNER_PORT": str(learner_port),
                "COURSE_PREFECT_UI": "0", "PYTHONUNBUFFERED": "1"})
    return env


class _Lines:
    """The lines a process prints, read in a thread, waited for by pattern."""

    def __init__(self, stream) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n" + "\n".join(self.seen))


def ignore_sigint() -> None:  # runs in the child before exec: what `cmd &` in a script, or nohup, does
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_make_services_starts_reports_is_reused_and_stops_on_ctrl_c(tmp_path):
    port, s3_port = free_port(), free_port()
    workdir = tmp_path / "work"
    env = _env(workdir, port)
    # Started as a script's `make services &` starts it: with SIGINT ignored. Ctrl-C must work all the same.
    process = subprocess.Popen(
        [sys.executable, "-m", "course_lib.tooling.instructor", "services", "--s3-port", str(s3_port),
         "--pool", "instructor-pool"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=ignore_sigint)
    lines = _Lines(process.stdout)
    pids: dict[str, int] = {}
    try:
        lines.wait_for(r"^service\s+URL\s+pid\s+log", timeout=600)
        lines.wait_for(r"^-+", timeout=5)
        for _ in SERVICES:
            row = lines.wait_for(r"\S", timeout=5)
            name = next(name for name in SERVICES if row.startswith(name))
            pids[name] = int(row[len(name):].split()[1])
        lines.wait_for(r"course_lib env", timeout=10)
        lines.wait_for(r"Ctrl-C stops them all", timeout=10)
        assert http_status(f"http://127.0.0.1:{port}/api/health") == 200
        assert http_status(f"http://127.0.0.1:{s3_port}/") is not None

        # A lesson finds the server on the learner port, says who started it, and leaves it running.
        code = ("from course_lib import services\n"
                "server = services.start_server()\n"
                "print('REUSED', server.reused)\n"
                "services.stop_server()\n")
        lesson = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
        assert "REUSED True" in lesson.stdout, lesson.stdout + lesson.stderr
        assert "started by `make services`" in lesson.stdout
        assert http_status(f"http://127.0.0.1:{port}/api/health") == 200

        # Lessons can find the other services too.
        record = json.loads((workdir / "prefect" / "services.json").read_text())
        assert record["services"]["s3"] == f"http://127.0.0.1:{s3_port}"

        # A service that dies is reported as it happens.
        os.killpg(pids["S3 endpoint"], signal.SIGKILL)
        lines.wait_for(r"S3 endpoint: running -> exited", timeout=30)

        process.send_signal(signal.SIGINT)  # Ctrl-C
        lines.wait_for(r"All services stopped", timeout=120)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in pids.values():
            try:
                os.killpg(pid, signal.SIGKILL) if _alive(pid) else None
            except ProcessLookupError:
                pass
    assert not [name for name, pid in pids.items() if _alive(pid)]
    assert port_is_free(port) and port_is_free(s3_port)
    assert not (workdir / "course.env").exists()  # the line for other terminals went with the server
    assert not (workdir / "prefect" / "services.json").exists()


def _course_state(workdir: Path) -> None:
    for relative in ("data/green_tripdata_2023-01.parquet", "prefect/local/prefect.db", "prefect/client/profiles.toml",
                     "models/model.json", "my-project/orchestrate.py", "git/my-project.git/HEAD"):
        path = workdir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")


def test_make_reset_keeps_the_data_and_asks_first(tmp_path):
    workdir = tmp_path / "work"
    _course_state(workdir)
    env = {**os.environ, "COURSE_WORKDIR": str(workdir)}
    env.pop("FORCE", None)
    asked = subprocess.run(["make", "--no-print-directory", "reset"], cwd=ROOT, env=env, input="n\n",
                           capture_output=True, text=True, timeout=120)
    assert "Remove it? [y/N]" in asked.stdout and "Nothing removed" in asked.stdout
    assert (workdir / "prefect/local/prefect.db").exists()

    forced = subprocess.run(["make", "--no-print-directory", "reset", "FORCE=1"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert sorted(path.name for path in workdir.iterdir()) == ["data"]
    assert (workdir / "data/green_tripdata_2023-01.parquet").exists()


def test_reset_refuses_while_a_course_server_runs(tmp_path, monkeypatch):
    from course_lib.tooling import instructor

    workdir = tmp_path / "work"
    _course_state(workdir)
    monkeypatch.setenv("COURSE_WORKDIR", str(workdir))
    # A running course server as server.json records it (this process; its /health answers).
    from course_lib.services import server as server_module

    monkeypatch.setattr(server_module, "http_status", lambda url, **_: 200)
    server_module.record_path().write_text(json.dumps(
        {"api_url": "http://127.0.0.1:1/api", "pid": os.getpid(), "owner": "the course"}))
    assert instructor.reset(yes=True) == 1
    assert (workdir / "prefect/local/prefect.db").exists()
