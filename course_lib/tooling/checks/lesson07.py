"""Checks of lesson 07 · Prefect Cloud and remote workspaces.

They reach the remote workspace as the lesson does, through the settings of the ``remote``
profile (``prefect.settings.temporary_settings``), read the learner's deployment there (and the
local server, to name a deployment that went to the wrong API), run it with the worker the lesson
started, and call the learner's function against real flow runs. No key or password is printed.
"""

from __future__ import annotations

import os
import uuid

from course_lib.tooling import project
from course_lib.tooling.checks import CatchUp, NotYet, Wrong, catch_up as _catch_up, exercise

LESSON = 7
REMOTE_PROFILE = "remote"
POOL = "remote-pool"
FLOW_NAME = "main-flow"
ENTRYPOINT = "orchestrate.py:main_flow"
# Exercise 07.1: the learner's flow deployed again to the remote workspace, with other months.
FEB_DEPLOYMENT = "taxi_remote_feb"
FEB_MONTHS = {"train_month": "2023-02", "val_month": "2023-03"}
RUN_TIMEOUT = 300  # seconds: a worker run takes 10-30 s on a quiet 2-core machine

# "account-handle/workspace-handle", as Prefect Cloud's URLs and `prefect cloud workspace ls` show it.


def remote_workspace(prefect_workspace: str | None) -> bool:
    """True to use Prefect Cloud, False for the course's password-protected stand-in.

    Prefect Cloud needs both the key (``PREFECT_API_KEY``, from the environment, never a cell)
    and the workspace (``account-handle/workspace-handle``). A malformed workspace, or a
    workspace without a key, is a clear error; a key without a workspace is dropped from this
    kernel's environment (it would override the stand-in's password) with a note.
    """
    from course_lib.services.remote import check_workspace

    key = os.environ.get("PREFECT_API_KEY", "").strip()
    if not isinstance(prefect_workspace, (str, type(None))):
        raise ValueError(f"prefect_workspace must be a string like 'my-account/my-workspace', "
                         f"not a {type(prefect_workspace).__name__}.")
    workspace = check_workspace(prefect_workspace)  # the form 'account-handle/workspace-handle', or None
    if workspace and not key:
        raise ValueError(f"prefect_workspace={workspace!r} is set, but PREFECT_API_KEY is not: export your key in "
                         "the shell that starts JupyterLab (`export PREFECT_API_KEY=...`, never in a cell), or "
                         "leave prefect_workspace None to use the self-hosted stand-in.")
    if key and not workspace:
        os.environ.pop("PREFECT_API_KEY")
        print("PREFECT_API_KEY is set but prefect_workspace is not: using the stand-in (set both to use "
              "Prefect Cloud).")
    return bool(workspace)


def remote_settings() -> dict:
    """The ``remote`` profile's settings (URL and credentials), for ``temporary_settings``."""
    from prefect.settings import load_profile

    try:
        settings = load_profile(REMOTE_PROFILE).settings
    except ValueError:
        raise NotYet(f"There is no profile {REMOTE_PROFILE!r} any more: run the lesson's cells from "
                     "'The remote workspace' on (they create it), then this exercise.") from None
    if not any(setting.name == "PREFECT_API_URL" for setting in settings):
        raise NotYet(f"The profile {REMOTE_PROFILE!r} has no PREFECT_API_URL: run the cell that configures it.")
    return settings


def _remote_client():
    """A sync client of the remote workspace (the ``remote`` profile's settings)."""
    import contextlib

    from prefect import get_client
    from prefect.settings import temporary_settings

    @contextlib.contextmanager
    def client():
        with temporary_settings(updates=remote_settings()):
            with get_client(sync_client=True) as remote:
                yield remote

    return client()


def _deployment(client, name: str):
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(f"{FLOW_NAME}/{name}")
    except ObjectNotFound:
        return None


def _on_local_server(name: str) -> bool:
    from course_lib.tooling.runs import api_client

    with api_client() as client:
        return _deployment(client, name) is not None


def _run_parameters(source: str, num_boost_round: int | None) -> dict:
    return {"source": source} | ({} if num_boost_round is None else {"num_boost_round": num_boost_round})


_DEPLOY_FEB = (f"`prefect deploy {ENTRYPOINT} -n {FEB_DEPLOYMENT} -p {POOL} --param train_month=2023-02 "
               "--param val_month=2023-03`")


@exercise("07.1", "Deploy your flow to the remote workspace, with other months", wrong=[
    Wrong(hint="unset PREFECT_API_URL", change=(" && unset PREFECT_API_URL", "")),
    Wrong(hint="val_month", change=(" --param val_month=2023-03", "")),
])
def remote_deployment(source: str = "auto", num_boost_round: int | None = None) -> str:
    from prefect.deployments import run_deployment
    from prefect.settings import temporary_settings

    with _remote_client() as client:
        deployment = _deployment(client, FEB_DEPLOYMENT)
    if deployment is None:
        if _on_local_server(FEB_DEPLOYMENT):
            raise NotYet(f"{FLOW_NAME}/{FEB_DEPLOYMENT} is on the LOCAL server, not in the remote workspace: this "
                         "kernel's PREFECT_API_URL (the local server) beats the active profile, so start the cell "
                         "with `unset PREFECT_API_URL` and deploy again (`prefect deployment delete "
                         f"{FLOW_NAME}/{FEB_DEPLOYMENT}` removes the local one).")
        raise NotYet(f"The remote workspace has no deployment {FLOW_NAME}/{FEB_DEPLOYMENT}. Deploy it from your "
                     f"project folder: {_DEPLOY_FEB}. If your cell said that the work pool does not exist, "
                     "prefect deploy talked to an API without that pool: the local server, when the cell does "
                     f"not `unset PREFECT_API_URL` first (the variable beats the profile), or a pool name other "
                     f"than {POOL}.")
    if deployment.entrypoint != ENTRYPOINT:
        raise NotYet(f"Your deployment runs {deployment.entrypoint!r}; it should run your flow, {ENTRYPOINT!r} "
                     "(from your project folder, where prefect.yaml is).")
    if deployment.work_pool_name != POOL:
        raise NotYet(f"Your deployment is on the work pool {deployment.work_pool_name!r}: the worker of this "
                     f"lesson polls {POOL!r} (a pool name other than remote-pool gets no worker). "
                     f"Deploy again with -p {POOL}.")
    wrong = {name: deployment.parameters.get(name) for name, value in FEB_MONTHS.items()
             if deployment.parameters.get(name) != value}
    if wrong:
        names = ", ".join(f"{name}={value!r}" for name, value in wrong.items())
        raise NotYet(f"The deployment's parameters are {deployment.parameters}: {names} (missing means the flow's "
                     f"default, 2023-01 / 2023-02). It should train on 2023-02 and validate on 2023-03: pass "
                     "--param train_month=2023-02 --param val_month=2023-03 to prefect deploy.")
    parameters = _run_parameters(source, num_boost_round)
    with temporary_settings(updates=remote_settings()):
        flow_run = run_deployment(f"{FLOW_NAME}/{FEB_DEPLOYMENT}", parameters=parameters, timeout=RUN_TIMEOUT,
                                  _sync=True)
        state = flow_run.state
        if state.is_scheduled() or state.is_pending():
            raise NotYet(f"The run {flow_run.name} is still {state.name} after {RUN_TIMEOUT} s: no worker picks up "
                         f"runs of {POOL}. Run the cell that starts the worker, then this check again.")
        if not state.is_completed():
            raise NotYet(f"The run {flow_run.name} of your deployment ended {state.name}: {state.message}. Read its "
                         "logs in the remote workspace's UI (or the worker's log).")
        rmse = state.result(_sync=True)
    months = sorted(name for name in _task_states(flow_run.id) if name.startswith("read-"))
    wanted = [f"read-{FEB_MONTHS['train_month']}", f"read-{FEB_MONTHS['val_month']}"]
    if months != wanted:
        raise NotYet(f"The run read {months}, not {wanted}: your orchestrate.py's main_flow must pass its "
                     "train_month and val_month to read_data.")
    return (f"{FLOW_NAME}/{FEB_DEPLOYMENT} ran in the remote workspace ({flow_run.name}, {state.name}): trained "
            f"on 2023-02, validated on 2023-03, RMSE {rmse:.3f} minutes.")


def _deploy_feb() -> str:
    """The reference of exercise 07.1: the learner's flow deployed with the months of the exercise."""
    from course_lib.services import remote
    from course_lib.tooling.deployments import prefect_cli

    env = {"PREFECT_API_URL": None, "PREFECT_API_AUTH_STRING": None} | remote.profile_api_env(REMOTE_PROFILE)
    prefect_cli("deploy", ENTRYPOINT, "-n", FEB_DEPLOYMENT, "-p", POOL, "--param", "train_month=2023-02",
                "--param", "val_month=2023-03", cwd=project.folder(), env=env, show=False)
    return f"deployed {FLOW_NAME}/{FEB_DEPLOYMENT} (your {ENTRYPOINT}) to the remote workspace's {POOL}"


def _task_states(flow_run_id) -> dict[str, str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with _remote_client() as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run.state.name for run in runs}


# Two wrong answers of 07.2, whole: the client left on this kernel's API; the async client in a plain `with`.
_ON_THE_LOCAL_SERVER = '''from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId


def remote_task_states(flow_run_id) -> dict[str, str]:
    """{task run name: state name} of the flow run `flow_run_id` of the remote workspace."""
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run.state.name for run in task_runs}
'''
_ASYNC_CLIENT = '''from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId


def remote_task_states(flow_run_id) -> dict[str, str]:
    """{task run name: state name} of the flow run `flow_run_id` of the remote workspace."""
    with temporary_settings(updates=remote_settings):
        with get_client() as client:
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run.state.name for run in task_runs}
'''


@exercise("07.2", "Ask the remote workspace about your run", wrong=[
    Wrong(hint="local server", code=_ON_THE_LOCAL_SERVER),
    Wrong(hint="filter", change=("client.read_task_runs(\n"
                                 "                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))",
                                 "client.read_task_runs()")),
    Wrong(hint="sync_client=True", code=_ASYNC_CLIENT),
])
def remote_task_states_read(remote_task_states, flow_run_id) -> str:
    if not callable(remote_task_states):
        raise NotYet(f"`remote_task_states` is a {type(remote_task_states).__name__}: define it as a function "
                     "of a flow run id (run the exercise cell).")
    truth = _task_states(flow_run_id)

    def ask(run_id):
        try:
            return remote_task_states(run_id)
        except Exception as error:  # noqa: BLE001 - the learner's code: its error is the hint
            text = f"{type(error).__name__}: {error}"
            if "async" in text.lower():
                raise NotYet(f"remote_task_states raised {text.splitlines()[0][:160]}: get_client() gives the async "
                             "client, which needs `async with` and `await`. In a plain function, ask for the "
                             "sync one: `with get_client(sync_client=True) as client:`.") from None
            if "401" in text or "403" in text or "Unauthorized" in text:
                raise NotYet(f"The remote workspace refused the request ({text.splitlines()[0][:160]}): a URL alone "
                             "carries no credentials. Point the client at it with all the profile's settings, "
                             "`temporary_settings(updates=remote_settings)`: its URL and its credentials.") from None
            raise NotYet(f"remote_task_states({run_id!s}) raised {text.splitlines()[0][:300]}") from None

    found = ask(flow_run_id)
    if not isinstance(found, dict):
        raise NotYet(f"remote_task_states returned a {type(found).__name__}; return a dict "
                     "{task run name: state name}, e.g. {run.name: run.state.name for run in task_runs}.")
    if not found:
        raise NotYet("remote_task_states returned no task run of your run. The run is in the remote workspace; a "
                     "client opened without the remote settings talks to the local server (this kernel's "
                     "PREFECT_API_URL), which has none. Open it inside `with temporary_settings(updates="
                     "remote_settings):`, the remote profile's settings, and read the task runs of that flow run.")
    unknown_run = uuid.uuid4()
    others = ask(unknown_run)
    if others:
        raise NotYet(f"For a flow run id that does not exist, remote_task_states returned {len(others)} task runs: "
                     "it reads every task run of the workspace. Pass the filter of that one flow run, "
                     "flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])).")
    if found != truth:
        raise NotYet(f"remote_task_states returned {found}; the remote workspace records {truth} for that run: "
                     "map each task run's name to its state's name.")
    return (f"Your function reads the remote workspace: {len(found)} task runs of the run, "
            + ", ".join(f"{name} {state}" for name, state in sorted(found.items())) + ".")


def catch_up(source: str = "auto", num_boost_round: int | None = None):
    """Stuck or skipped? Deploys your flow to the remote workspace as exercise 07.1 asks, if it is not there."""
    return _catch_up(LESSON, [CatchUp(remote_deployment, then=_deploy_feb)], source=source,
                     num_boost_round=num_boost_round)
