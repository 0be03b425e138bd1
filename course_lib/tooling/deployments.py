"""Deployments from a notebook: run the real `prefect` CLI, wait for flow runs with clear errors.

The lessons teach the CLI a learner types in a terminal (`prefect init`, `prefect deploy`,
`prefect deployment run`), so `prefect_cli()` runs exactly that command, shows it with its
output, and fails with the output when it fails.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path
from uuid import UUID

from course_lib import services
from course_lib.tooling.runs import api_client

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_SPINNER = re.compile(r"^\s*[\u2800-\u28ff]")
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
WAITING_STATES = {"SCHEDULED", "PENDING"}  # "Late" is a SCHEDULED state named Late


class DeploymentError(RuntimeError):
    """A deployment or one of its runs did not do what the lesson expects; says why and the fix."""


def prefect_cli(*args: str, cwd: Path | str | None = None, check: bool = True, show: bool = True,
                timeout: float = 300, env: dict | None = None,
                redact: list[str] | tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``prefect ARGS`` headless (no prompts, no colours) against the current PREFECT_API_URL.

    ``env`` adds variables (a None value unsets one). Every string in ``redact`` (an API key, a
    password) is replaced by ``********`` in what is shown and in the returned output.
    """
    command = [services.executable("prefect"), *args]
    full_env = {**os.environ, **services.HEADLESS_ENV}
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    result = subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)

    def hide(text: str) -> str:
        return services.redact(text, redact)

    def plain(text: str) -> str:
        """Without terminal control codes and spinner frames (rich draws them even into a pipe)."""
        text = _ANSI.sub("", text)
        return "\n".join(line for line in text.splitlines() if not _SPINNER.match(line))

    result.args = [hide(str(arg)) for arg in result.args]
    result.stdout, result.stderr = plain(hide(result.stdout)), plain(hide(result.stderr))
    output = (result.stdout + result.stderr).strip()
    shown_args = " ".join(shlex.quote(hide(arg)) for arg in args)
    if show:
        print("$ prefect " + shown_args)
        if output:
            print(output)
    if check and result.returncode != 0:
        raise DeploymentError(f"`prefect {shown_args}` exited {result.returncode}:\n{output[-3000:]}")
    return result


def wait_for_flow_run(flow_run_id: UUID | str, timeout: float = 180, poll_seconds: float = 1.0,
                      late_after: float = 45) -> str:
    """Wait until a deployment's flow run finishes; returns its final state name.

    A run that stays Scheduled/Late/Pending while no worker polls its pool will never start:
    after ``late_after`` seconds that is reported with the fix instead of waiting forever.
    """
    flow_run_id = UUID(str(flow_run_id))
    started = time.monotonic()
    with api_client() as client:
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
                                      "see its logs in the UI or with course_lib.tooling.runs.flow_run_logs().")
            time.sleep(poll_seconds)


LOCAL_POOL = "local-pool"
LOCAL_DEPLOYMENT = "taxi_local_data"

# The deployment's entrypoint: a script in the project folder, as in the 2023 course, that
# imports the course's flow (its code lives in course_lib, tested once).
ENTRYPOINT_SOURCE = '''"""Entrypoint of the taxi deployments: the course's training flow."""

from course_lib.pipeline.flows import main_flow

if __name__ == "__main__":
    main_flow()
'''


def init_project(folder: Path | str, show: bool = True) -> Path:
    """A fresh Prefect project: ``orchestrate.py`` plus what ``prefect init --recipe local`` writes.

    Starting from a clean folder each time keeps the lesson re-runnable (``prefect init``
    will not overwrite an existing ``prefect.yaml``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for generated in ("prefect.yaml", ".prefectignore"):
        (folder / generated).unlink(missing_ok=True)
    (folder / "orchestrate.py").write_text(ENTRYPOINT_SOURCE)
    prefect_cli("init", "--recipe", "local", cwd=folder, show=show)
    return folder / "prefect.yaml"


def flow_run_id_from_output(output: str) -> UUID:
    """The flow run id that ``prefect deployment run`` prints ("UUID: ...")."""
    found = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
    if not found:
        raise DeploymentError(f"no flow run id in the output of `prefect deployment run`:\n{output[-1000:]}")
    return UUID(found.group(1))


def scheduled_runs(deployment: str, wait_seconds: float = 30) -> "pd.DataFrame":
    """Upcoming scheduled flow runs of a deployment ("flow-name/deployment-name"), soonest first.

    The server's scheduler creates them in the background shortly after a schedule is added,
    so this waits up to ``wait_seconds`` for the first ones to appear.
    """
    import pandas as pd
    from prefect.client.schemas.filters import (DeploymentFilter, DeploymentFilterId, FlowRunFilter,
                                                FlowRunFilterState, FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    deadline = time.monotonic() + wait_seconds
    with api_client() as client:
        found = client.read_deployment_by_name(deployment)
        while True:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=10)
            if runs or time.monotonic() > deadline:
                break
            time.sleep(1)
    return pd.DataFrame([{"flow run": run.name, "scheduled for (UTC)": run.expected_start_time,
                          "state": run.state.name} for run in runs],
                        columns=["flow run", "scheduled for (UTC)", "state"])
