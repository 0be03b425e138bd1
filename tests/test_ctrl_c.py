"""Ctrl-C whatever the parent did: the commands that promise it (`make course`'s runner,
`make services`: see test_instructor) stop on SIGINT even when they were started with SIGINT
ignored, as a script's `cmd &` or nohup starts them (Python then installs no handler itself)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from course_lib.services.base import stop_group
from tests.test_instructor import ignore_sigint

ROOT = Path(__file__).resolve().parent.parent


def _course_processes(workdir: Path) -> list[psutil.Process]:
    """Live processes started with this COURSE_WORKDIR (the runner's Prefect server among them)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("COURSE_WORKDIR") == str(workdir) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_the_runner_stops_on_ctrl_c_when_started_with_sigint_ignored(tmp_path):
    workdir = tmp_path / "work"
    env = {key: value for key, value in os.environ.items() if key not in ("PREFECT_API_URL", "COURSE_PREFECT_PORT")}
    env.update({"COURSE_WORKDIR": str(workdir), "COURSE_PREFECT_UI": "0", "PYTHONUNBUFFERED": "1"})
    runner = subprocess.Popen([sys.executable, "-m", "course_lib.tooling.runner", "run", "--out", str(tmp_path / "out")],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True, preexec_fn=ignore_sigint)
    try:
        deadline = time.monotonic() + 120
        while not any("prefect" in " ".join(p.cmdline()) for p in _course_processes(workdir)):
            assert runner.poll() is None, runner.stdout.read()
            assert time.monotonic() < deadline, "the runner's Prefect server never started"
            time.sleep(0.2)
        runner.send_signal(signal.SIGINT)  # Ctrl-C while it waits for its server
        output, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            stop_group(runner, grace=5)
    assert runner.returncode != 0 and "KeyboardInterrupt" in output, output[-2000:]
    deadline = time.monotonic() + 20
    while _course_processes(workdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _course_processes(workdir), "the runner's server outlived Ctrl-C"
