"""Deployments from a notebook: run the real `prefect` CLI, wait for flow runs with clear errors.

The lessons teach the CLI a learner types in a terminal (`prefect init`, `prefect deploy`,
`prefect deployment run`), so `prefect_cli()` runs exactly that command, shows it with its
output, and fails with the output when it fails.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path
from uuid import UUID

from course_lib import services

FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
WAITING_STATES = {"SCHEDULED", "PENDING"}  # "Late" is a SCHEDULED state named Late


class DeploymentError(RuntimeError):
    """A deployment or one of its runs did not do what the lesson expects; says why and the fix."""


def prefect_cli(*args: str, cwd: Path | str | None = None, check: bool = True, show: bool = True,
                timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``prefect ARGS`` headless (no prompts, no colours) against the current PREFECT_API_URL."""
    command = [services.executable("prefect"), *args]
    full_env = {**os.environ, **services.HEADLESS_ENV, **(env or {})}
    result = subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    output = (result.stdout + result.stderr).strip()
    if show:
        print("$ prefect " + " ".join(shlex.quote(arg) for arg in args))
        if output:
            print(output)
    if check and result.returncode != 0:
        raise DeploymentError(f"`prefect {' '.join(args)}` exited {result.returncode}:\n{output[-3000:]}")
    return result


def _client():
    from course_lib.runs import _client

    return _client()


def wait_for_flow_run(flow_run_id: UUID | str, timeout: float = 180, poll_seconds: float = 1.0,
                      late_after: float = 45) -> str:
    """Wait until a deployment's flow run finishes; returns its final state name.

    A run that stays Scheduled/Late/Pending while no worker polls its pool will never start:
    after ``late_after`` seconds that is reported with the fix instead of waiting forever.
    """
    flow_run_id = UUID(str(flow_run_id))
    started = time.monotonic()
    with _client() as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            state_type = run.state.type.value if run.state else "SCHEDULED"
            if state_type in FINAL_STATES:
                return run.state.name
            waited = time.monotonic() - started
            if state_type in WAITING_STATES and waited > late_after:
                pool = run.work_pool_name or "its work pool"
                raise DeploymentError(
                    f"flow run {run.name} is still {run.state.name} after {waited:.0f} s: no worker is "
                    f"picking up runs from work pool '{pool}'. Start one with `prefect worker start -p {pool}` "
                    "(or course_lib.services.Worker), then run the deployment again.")
            if waited > timeout:
                raise DeploymentError(f"flow run {run.name} is still {run.state.name} after {timeout:.0f} s; "
                                      "see its logs in the UI or with course_lib.runs.flow_run_logs().")
            time.sleep(poll_seconds)
