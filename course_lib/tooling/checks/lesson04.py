"""Checks of lesson 04 · Deploying your flow: they read the learner's ``prefect.yaml``, and from the
server their deployment (entrypoint, the folder its runs start in), its runs and its schedules."""

from __future__ import annotations

import inspect
import math
import os
import re
from datetime import datetime, timezone

from course_lib.tooling import project
from course_lib.tooling.checks import CatchUp, NotYet, Wrong, catch_up as _catch_up, exercise

LESSON = 4
FLOW_NAME = "main-flow"
DEPLOYMENT_NAME = "taxi_local_data"
DEPLOYMENT = f"{FLOW_NAME}/{DEPLOYMENT_NAME}"
POOL = "local-pool"
ENTRYPOINT = "orchestrate.py:main_flow"
PULL_STEP = "prefect.deployments.steps.set_working_directory"
FOLDER_TEMPLATE = "{{ $MY_PROJECT_DIR }}"
PARAMETERS = {"train_month": "2023-01", "val_month": "2023-02"}
# Exercise 04.1: the model trained on February and validated on January (the other way round).
ASKED_RUN = {"train_month": "2023-02", "val_month": "2023-01"}
# Exercise 04.3: every Monday at 07:30 UTC.
WEEKDAY, HOUR, MINUTE = 0, 7, 30
# Runs older than this kernel's first import of the checks belong to an earlier session, not to
# the exercise the learner is doing now.
SESSION_START = datetime.now(timezone.utc)
_TEMPLATE = re.compile(r"\{\{\s*\$(\w+)\s*\}\}")


def _client():
    from course_lib.tooling.runs import api_client

    return api_client()


def _read_deployment(client, hint: str):
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(DEPLOYMENT)
    except ObjectNotFound:
        raise NotYet(f"The server has no deployment {DEPLOYMENT}. {hint}") from None


def _filled_in(directory: str) -> str:
    """``directory`` with its templates of environment variables filled in, by Prefect's own code, as
    `prefect deploy` does (and a worker, for a template left in a deployment)."""
    from prefect.utilities.templating import apply_values

    return apply_values({"directory": directory}, os.environ, remove_notset=False)["directory"]


def _run_folder(deployment) -> str | None:
    """The folder the deployment's runs start in: its set_working_directory pull step, else its path."""
    for step in deployment.pull_steps or []:
        for name, arguments in step.items():
            if name.endswith("set_working_directory") and isinstance(arguments, dict):
                return _filled_in(str(arguments.get("directory", "")))
    return deployment.path


def _is_theirs(deployment) -> None:
    """The deployment must run the learner's orchestrate.py, from their project folder."""
    folder = str(project.folder())
    if deployment.entrypoint != ENTRYPOINT:
        raise NotYet(f"{DEPLOYMENT} calls {deployment.entrypoint!r}, not your {ENTRYPOINT}: deploy it again "
                     f"from your project folder (`prefect deploy {ENTRYPOINT} -n {DEPLOYMENT_NAME} -p {POOL}`).")
    where = _run_folder(deployment)
    if where is None or os.path.normpath(where) != os.path.normpath(folder):
        raise NotYet(f"The runs of {DEPLOYMENT} start in {where!r}, not in your project folder {folder}, so they would "
                     "not run your orchestrate.py. Deploy it again from your project folder.")


# -- 04.1 ------------------------------------------------------------------------------------------
def _runs_since_session(client, deployment) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    return [run for run in client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
        sort=FlowRunSort.START_TIME_DESC, limit=100)
        if run.created >= SESSION_START and not run.auto_scheduled]


def _result(run):
    """The run's persisted result, or None when this kernel cannot read it (another machine's storage)."""
    try:
        return run.state.result(_sync=True, raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable result only means "not this one"
        return None


def _described(parameters: dict) -> str:
    keys = ("train_month", "val_month")
    return ", ".join(f"{key}={parameters.get(key, '(default)')}" for key in keys)


@exercise("04.1", "Run your deployment with parameters, from Python", wrong=[
    Wrong(hint="no run of", code="reversed_rmse = rmse  # the RMSE of the run above\n"),
    Wrong(hint="coroutine", change=("reversed_rmse = await flow_run.state.result()",
                                    "reversed_rmse = flow_run.state.result()")),
])
def reversed_run(reversed_rmse, source: str = "auto", num_boost_round: int | None = None, **_lesson) -> str:
    asked = ", ".join(f"{key}={value}" for key, value in ASKED_RUN.items())
    how = (f"run_deployment({DEPLOYMENT!r}, parameters={{...}}, timeout=...) (from prefect.deployments; in a cell, "
           "`await` it)")
    with _client() as client:
        deployment = _read_deployment(client, "Run the cells of section 3, which deploy it.")
        _is_theirs(deployment)
        runs = _runs_since_session(client, deployment)
    matching = [run for run in runs if all(run.parameters.get(key) == value for key, value in ASKED_RUN.items())]
    if not matching:
        if inspect.iscoroutine(reversed_rmse):
            reversed_rmse.close()
        seen = "; ".join(sorted({_described(run.parameters) for run in runs})) or "none"
        raise NotYet(f"There is no run of {DEPLOYMENT} with {asked} since this lesson started (its runs: {seen}). "
                     f"Start one with {how}; the parameters you pass override the deployment's.")
    done = [run for run in matching if run.state is not None and run.state.is_completed()]
    if not done:
        latest = matching[0]
        state = latest.state.name if latest.state else "Scheduled"
        if inspect.iscoroutine(reversed_rmse):
            reversed_rmse.close()
        if latest.state is not None and latest.state.is_final():
            raise NotYet(f"Your run {latest.name} ended {state}: {latest.state.message}. Read its logs in the UI, fix "
                         "the cause and run it again.")
        raise NotYet(f"Your run {latest.name} is still {state}: run_deployment returns at once with timeout=0. Give it "
                     "a timeout in seconds (e.g. 600), so that it waits for the run to finish.")
    ours = [run for run in done if run.parameters.get("source", "auto") == source
            and run.parameters.get("num_boost_round") == num_boost_round]
    if not ours:
        used = done[0].parameters
        raise NotYet(f"Your run {done[0].name} Completed, but with source={used.get('source', 'auto')!r} and "
                     f"num_boost_round={used.get('num_boost_round')!r}, not the lesson's {source!r} and "
                     f"{num_boost_round!r}: add the lesson's parameters to yours (**lesson_parameters).")
    if reversed_rmse is None:
        raise NotYet(f"Your run {ours[0].name} Completed; now set reversed_rmse to the RMSE it returned: the run's "
                     "state holds it (its .result(); the flow persists its result).")
    if inspect.iscoroutine(reversed_rmse):
        reversed_rmse.close()
        raise NotYet("reversed_rmse is a coroutine, not a number: in a notebook cell state.result() returns one "
                     "(lesson 02's gotcha). `await` it, or call state.result(_sync=True).")
    if isinstance(reversed_rmse, bool) or not isinstance(reversed_rmse, (int, float)):
        raise NotYet(f"reversed_rmse is a {type(reversed_rmse).__name__}, {reversed_rmse!r}: it should be the "
                     "number the run returned, its state's .result().")
    results = {run.name: _result(run) for run in ours}
    found = [name for name, value in results.items() if isinstance(value, float) and math.isclose(value, reversed_rmse)]
    if not found and all(value is None for value in results.values()):
        raise NotYet(f"Your run {ours[0].name} Completed, but its result cannot be read here: was it run by a worker on "
                     "another machine, with results stored there? Run it with this lesson's worker.")
    if not found:
        others = {}
        with _client() as client:
            for run in _runs_since_session(client, deployment):
                if run.state is not None and run.state.is_completed() and run.name not in results:
                    value = _result(run)
                    if isinstance(value, float) and math.isclose(value, reversed_rmse):
                        others[run.name] = run.parameters
        if others:
            name, parameters = next(iter(others.items()))
            raise NotYet(f"{reversed_rmse:.5f} is the RMSE of run {name} ({_described(parameters)}), not of your run "
                         f"with {asked}: read the result of the run run_deployment returned.")
        shown = ", ".join(f"{name}: {value:.5f}" for name, value in results.items())
        raise NotYet(f"reversed_rmse is {reversed_rmse!r}, but your run(s) with {asked} returned {shown}: set it "
                     "from the state of the run run_deployment returned, not from a number written by hand.")
    return (f"Your deployment ran your flow with {asked} (run {found[0]}, on the worker) and returned an RMSE of "
            f"{reversed_rmse:.5f} minutes.")


# -- 04.2 ------------------------------------------------------------------------------------------
def _their_file() -> dict:
    import yaml

    path = project.folder() / "prefect.yaml"
    if not path.is_file():
        raise NotYet(f"There is no {path}: run `prefect init --recipe local` in your project folder (section 1), "
                     "then the exercise cell.")
    text = path.read_text()
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = text.splitlines()[where.line] if where is not None and where.line < len(text.splitlines()) else ""
        if "{{" in line and not re.search(r"""['"]\{\{""", line):
            raise NotYet(f"Your prefect.yaml is not valid YAML at line {where.line + 1}, {line.strip()!r}: YAML reads "
                         "{ } as a mapping. Quote a template: directory: '{{ $NAME }}'.") from None
        raise NotYet(f"Your prefect.yaml is not valid YAML: {error}. Check the indentation: two spaces per level, "
                     "a `- ` in front of each list item.") from None
    if not isinstance(content, dict):
        raise NotYet("Your prefect.yaml holds no sections (name, pull, deployments...): write it again from the stub.")
    return content


def _main_flow_parameters() -> set[str]:
    try:
        module = project.load_module("orchestrate")
    except Exception as error:  # noqa: BLE001 - the learner's file: its error is the hint
        raise NotYet(f"Importing your orchestrate.py fails ({type(error).__name__}: {error}); "
                     "run this lesson's catch_up() of lesson 03, or fix the file.") from None
    return set(inspect.signature(module.main_flow.fn).parameters)


def _check_deployment_entry(content: dict) -> dict:
    deployments = content.get("deployments")
    if not isinstance(deployments, list) or not deployments:
        raise NotYet("Your prefect.yaml has no deployment under `deployments:`: add one, a list item "
                     f"(`- name: {DEPLOYMENT_NAME}`) with its entrypoint, parameters and work_pool.")
    entries = [entry for entry in deployments if isinstance(entry, dict) and entry.get("name") == DEPLOYMENT_NAME]
    if not entries:
        names = [entry.get("name") for entry in deployments if isinstance(entry, dict)]
        raise NotYet(f"Your prefect.yaml has no deployment named {DEPLOYMENT_NAME!r} (it has {names}): "
                     f"`- name: {DEPLOYMENT_NAME}` under `deployments:`.")
    entry = entries[0]
    entrypoint = entry.get("entrypoint")
    if entrypoint != ENTRYPOINT:
        if isinstance(entrypoint, str) and entrypoint.endswith(f":{FLOW_NAME}"):
            raise NotYet(f"The entrypoint is {entrypoint!r}: after the colon comes the flow's function, main_flow, "
                         f"not the flow's name {FLOW_NAME!r}. The entrypoint is FILE.py:FUNCTION.")
        raise NotYet(f"The entrypoint is {entrypoint!r}: it is the file, relative to the project folder, a colon and "
                     f"the flow's function: {ENTRYPOINT!r}.")
    pool = (entry.get("work_pool") or {}).get("name") if isinstance(entry.get("work_pool") or {}, dict) else None
    if pool != POOL:
        named = f"names the work pool {pool!r}" if pool else "names no work pool"
        raise NotYet(f"The deployment {named}: its runs go to the pool its worker polls, `work_pool:` with "
                     f"`name: {POOL}` under it.")
    parameters = entry.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise NotYet(f"`parameters:` holds {parameters!r}: it is a mapping, one `name: value` per line under it.")
    unknown = sorted(set(parameters) - _main_flow_parameters())
    if unknown:
        raise NotYet(f"The deployment passes {unknown}, which your main_flow does not take (its parameters: "
                     f"{sorted(_main_flow_parameters())}).")
    for key, value in PARAMETERS.items():
        if parameters.get(key) != value:
            raise NotYet(f"The deployment's {key} is {parameters.get(key)!r}; it should be {value!r} (a string: quote "
                         "it in YAML).")
    return entry


def _check_pull_step(content: dict, entry: dict) -> str:
    steps = entry.get("pull") or content.get("pull") or []
    if not isinstance(steps, list) or not steps:
        raise NotYet("Your prefect.yaml has no pull step: without one a worker starts each run in a temporary "
                     f"folder, where there is no orchestrate.py. Add `- {PULL_STEP}:` under `pull:`.")
    step = next((step for step in steps if isinstance(step, dict) and any("set_working_directory" in key
                                                                         for key in step)), None)
    if step is None:
        raise NotYet(f"The pull steps are {steps}: the one that moves a run into a folder is {PULL_STEP}.")
    name, arguments = next(iter(step.items()))
    if name != PULL_STEP:
        raise NotYet(f"The pull step is {name!r}: in Prefect 3 it is {PULL_STEP!r} (prefect.projects.steps was "
                     "Prefect 2's).")
    directory = (arguments or {}).get("directory") if isinstance(arguments, dict) else None
    if not isinstance(directory, str) or not directory:
        raise NotYet(f"The step {PULL_STEP} needs `directory:` under it (indented), the folder to run in.")
    if "{{" not in directory:
        if "MY_PROJECT_DIR" in directory:
            raise NotYet(f"The directory is {directory!r}: prefect.yaml is not a shell script, $MY_PROJECT_DIR stays "
                         f"as it is. Prefect's template of an environment variable is '{FOLDER_TEMPLATE}' (quoted).")
        raise NotYet(f"The directory is {directory!r}, a path of this machine: the file would only work in this "
                     "folder, on this machine. Name the environment variable MY_PROJECT_DIR instead, with Prefect's "
                     f"template '{FOLDER_TEMPLATE}', which `prefect deploy` fills in.")
    folder = project.folder()
    filled = _filled_in(directory)
    if "{{" in filled:
        raise NotYet(f"`prefect deploy` would leave {directory!r} as it is: no such environment variable is set here. "
                     f"Your project folder is in MY_PROJECT_DIR (open_project sets it): '{FOLDER_TEMPLATE}'.")
    if os.path.normpath(filled) != os.path.normpath(str(folder)):
        raise NotYet(f"`prefect deploy` fills {directory!r} in as {filled}: the runs would start there, not in your "
                     f"project folder {folder}, and find no orchestrate.py of yours. The variable that holds your "
                     "project folder is MY_PROJECT_DIR.")
    return filled


@exercise("04.2", "Your deployment in your prefect.yaml", wrong=[
    Wrong(hint="path of this machine", change=(f"'{FOLDER_TEMPLATE}'", "/home/me/my-project")),
    Wrong(hint="not a shell script", change=(f"'{FOLDER_TEMPLATE}'", "$MY_PROJECT_DIR")),
    Wrong(hint="the flow's function", change=(f"entrypoint: {ENTRYPOINT}", f"entrypoint: orchestrate.py:{FLOW_NAME}")),
    Wrong(hint="work pool", change=(f"  work_pool:\n    name: {POOL}\n", "")),
    Wrong(hint="not in your project folder", change=(f"'{FOLDER_TEMPLATE}'", "'{{ $COURSE_REPO_ROOT }}'")),
    Wrong(hint="quote a template", change=(f"'{FOLDER_TEMPLATE}'", FOLDER_TEMPLATE)),
])
def deployment_file(**_lesson) -> str:
    content = _their_file()
    entry = _check_deployment_entry(content)
    folder = _check_pull_step(content, entry)
    parameters = {key: entry["parameters"][key] for key in PARAMETERS}
    return (f"Your prefect.yaml declares {DEPLOYMENT_NAME}: {ENTRYPOINT} with {parameters}, on the pool {POOL}; "
            f"`prefect deploy` will fill '{FOLDER_TEMPLATE}' in as {folder}, your project folder. Deploy it (next cells).")


# -- 04.3 ------------------------------------------------------------------------------------------
def _label(schedule) -> str:
    inner = schedule.schedule
    for kind in ("rrule", "cron", "interval"):
        if getattr(inner, kind, None):
            value = getattr(inner, kind)
            if kind == "rrule":
                value = value.splitlines()[-1]
            return f"{kind} {value!s} ({getattr(inner, 'timezone', None) or 'UTC'})"
    return repr(inner)


def _scheduled_times(client, deployment, schedule) -> list[datetime]:
    """The runs the server's scheduler creates for ``schedule`` (asked now rather than on its next loop)."""
    import time

    from prefect.client.schemas.filters import (DeploymentFilter, DeploymentFilterId, FlowRunFilter,
                                                FlowRunFilterState, FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType

    from course_lib.tooling.deployments import schedule_now

    schedule_now(client, deployment.id)
    deadline = time.monotonic() + 30
    while True:
        runs = [run for run in client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
            limit=200) if run.created_by and run.created_by.id == schedule.id]
        if runs or time.monotonic() > deadline:
            return sorted(run.expected_start_time.astimezone(timezone.utc) for run in runs)
        time.sleep(1)


def _right_time(moment: datetime) -> bool:
    return (moment.weekday(), moment.hour, moment.minute) == (WEEKDAY, HOUR, MINUTE)


@exercise("04.3", "An rrule schedule: every Monday at 07:30 UTC", wrong=[
    Wrong(hint="minute", change=(";BYMINUTE=30", "")),
    Wrong(hint="only on mondays", change=("FREQ=WEEKLY;BYDAY=MO;", "FREQ=DAILY;")),
    Wrong(hint="timezone", change=("--timezone UTC", "--timezone Europe/Paris")),
    Wrong(hint="cron", code=f'!prefect deployment schedule create {DEPLOYMENT} --cron "30 7 * * 1" --timezone UTC\n'),
])
def weekly_schedule(**_lesson) -> str:
    command = f'prefect deployment schedule create {DEPLOYMENT} --rrule "..." --timezone UTC'
    with _client() as client:
        deployment = _read_deployment(client, "Run the cells of section 3, which deploy it.")
        if not deployment.schedules:
            raise NotYet(f"{DEPLOYMENT} has no schedule. Add one with `{command}`, the rule written as FREQ=...;BYDAY=..."
                         ";BYHOUR=...;BYMINUTE=...")
        newest = max(deployment.schedules, key=lambda schedule: schedule.created)
        inner = newest.schedule
        rrule = getattr(inner, "rrule", None)
        times = _scheduled_times(client, deployment, newest) if newest.active else []
    label = _label(newest)
    if not rrule:
        if times and all(_right_time(moment) for moment in times) and getattr(inner, "cron", None):
            raise NotYet(f"Your newest schedule, {label}, gives the right times, but it is a cron schedule: this "
                         "exercise is about rrules. Write the same rule as a recurrence (FREQ, BYDAY, BYHOUR, "
                         f"BYMINUTE) with `{command}`.")
        raise NotYet(f"The newest schedule of {DEPLOYMENT} is {label}, not an rrule. Add one with `{command}`.")
    zone = getattr(inner, "timezone", None) or "UTC"
    if zone not in ("UTC", "Etc/UTC"):
        raise NotYet(f"Your rrule runs in the timezone {zone!r}: 07:30 there is not 07:30 UTC. Create it with "
                     "--timezone UTC.")
    if not newest.active:
        raise NotYet(f"Your schedule {label} is paused (active: false). Resume it: "
                     f"`prefect deployment schedule resume {DEPLOYMENT} {newest.id}`.")
    if not times:
        raise NotYet("The schedule is there but the server has created no run for it after 30 s: is the Prefect "
                     "server still running? Run this check again in a moment.")
    shown = ", ".join(f"{moment:%a %d %b %H:%M}" for moment in times)
    if any(moment.weekday() != WEEKDAY for moment in times):
        raise NotYet(f"Your schedule {label} starts runs on {shown} UTC: not only on Mondays. BYDAY=MO keeps the "
                     "Mondays (with FREQ=WEEKLY: once a week).")
    if any(moment.hour != HOUR for moment in times):
        raise NotYet(f"Your schedule {label} starts runs at {shown} UTC: the hour is wrong. BYHOUR sets it; without it "
                     "the rule keeps the hour of its start date (DTSTART, midnight).")
    if any(moment.minute != MINUTE for moment in times):
        raise NotYet(f"Your schedule {label} starts runs at {shown} UTC: the minute is wrong. BYMINUTE sets it; without "
                     "it the rule keeps the minute of its start date (DTSTART, :00).")
    others = [schedule for schedule in deployment.schedules if schedule.id != newest.id]
    extra = (f" It also has {len(others)} other schedule(s); `prefect deployment schedule ls {DEPLOYMENT}` lists "
             "them, and `... schedule delete` removes one.") if others else ""
    return (f"{DEPLOYMENT} runs every Monday at 07:30 UTC ({label}); the scheduler has already created runs "
            f"for {shown} UTC.{extra}")


def catch_up(**lesson_parameters):
    """Stuck or skipped? Writes the course's prefect.yaml of lesson 04 if yours does not pass 04.2 (the
    lesson's next cell deploys it, `prefect deploy --name taxi_local_data`, whichever version it is)."""
    return _catch_up(LESSON, [CatchUp(deployment_file, files=("prefect.yaml",))], **lesson_parameters)
