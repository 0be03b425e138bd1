"""Small helpers shared by the tests that start and stop real process groups."""

import os
import signal
import subprocess
import time


def group_gone(pgid: int, wait: float = 10.0) -> bool:
    """True once no process of group ``pgid`` is left (polled for ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def stop_group(process: subprocess.Popen, grace: float = 20.0) -> None:
    """Stop a process started with its own session: TERM its group, then KILL after ``grace`` s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass
