"""Checks of lesson 05 · Data in S3, code from git: they read the learner's ``orchestrate_s3.py`` and
``prefect.yaml``, run their flow against a block of the check's own, and resolve their pull step
as a worker does."""

from __future__ import annotations

import ast
import re
import tempfile
from functools import lru_cache
from pathlib import Path

from course_lib.tooling import project
from course_lib.tooling.checks import CatchUp, NotYet, Wrong, catch_up as _catch_up, exercise

LESSON = 5
#: The lesson's blocks (section "Blocks") and the Variable of section "Settings on the server".
BUCKET_BLOCK = "taxi-s3-bucket"
REPOSITORY_VARIABLE = project.REPOSITORY_VARIABLE
POOL = "local-pool"
#: Exercise 05.1's check runs the learner's flow with a block of its own: the same bucket, keys under
#: CHECK_FOLDER, where the two months are swapped (January's key holds February's trips). A flow that
#: honours its `bucket_block` parameter trains on the swapped months; one that loads a fixed block does not.
CHECK_BLOCK = "taxi-s3-check"
CHECK_FOLDER = "course-check-05"
FLOW_PARAMETERS = ("train_month", "val_month", "bucket_block", "num_boost_round")
S3_ENTRYPOINT = "orchestrate_s3.py:main_flow_s3"
DEPLOYMENTS = {"taxi_local_data": "orchestrate.py:main_flow", "taxi_s3_data": S3_ENTRYPOINT}
GIT_CLONE = "prefect.deployments.steps.git_clone"
_VARIABLE_TEMPLATE = re.compile(r"\{\{\s*prefect\.variables\.([\w-]+)\s*\}\}")


# -- exercise 05.1: orchestrate_s3.py -------------------------------------------------------------
def _their_source(name: str) -> str:
    path = project.folder() / name
    if not path.is_file():
        raise NotYet(f"There is no {path} yet: run the exercise cell (it writes the file), or write the file in "
                     "JupyterLab's editor.")
    return path.read_text()


def _function(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    return next((node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.name == name), None)


def _block_loads(tree: ast.AST) -> list[ast.Call]:
    """The calls ``S3Bucket.load(...)`` / ``S3Bucket.aload(...)`` under ``tree``."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("load", "aload") and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "S3Bucket"]


def _static_s3_flow(source: str) -> None:
    """What can be told from the text, before anything runs (a block loaded on import would run then)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise NotYet(f"Your orchestrate_s3.py is not valid Python: line {error.lineno}: {error.msg}.") from None
    flow_def = _function(tree, "main_flow_s3")
    if flow_def is None:
        raise NotYet("Your orchestrate_s3.py defines no function `main_flow_s3`: write the flow under that name "
                     "(the deployment's entrypoint is orchestrate_s3.py:main_flow_s3).")
    inside = {id(node) for node in ast.walk(flow_def)}
    outside = [call for call in _block_loads(tree) if id(call) not in inside]
    if outside:
        raise NotYet(f"Line {outside[0].lineno} loads the S3Bucket block outside the flow, when the file is "
                     "imported: every import (the worker's, a test's) then needs the server, and the flow cannot "
                     "use another block. Load it inside main_flow_s3: `bucket = S3Bucket.load(bucket_block)`.")
    loads = _block_loads(flow_def)
    if not loads:
        raise NotYet("main_flow_s3 never loads the bucket block: inside the flow, `bucket = S3Bucket.load(bucket_block)` "
                     "(from prefect_aws import S3Bucket) gives the bucket and its credentials.")
    fixed = [call for call in loads if call.args and isinstance(call.args[0], ast.Constant)]
    if fixed:
        raise NotYet(f"main_flow_s3 loads the block by a fixed name, {fixed[0].args[0].value!r} (line "
                     f"{fixed[0].lineno}), so it ignores bucket_block: the deployment's parameter would change "
                     "nothing. Load the block whose name the flow receives: `S3Bucket.load(bucket_block)`.")
    parameters = {arg.arg for arg in flow_def.args.args + flow_def.args.kwonlyargs}
    missing = [name for name in FLOW_PARAMETERS if name not in parameters]
    if missing:
        raise NotYet(f"main_flow_s3 has no parameter {', '.join(missing)}: give it the parameters "
                     f"{', '.join(FLOW_PARAMETERS)} (with the defaults the exercise gives), as main_flow has.")


def _load_their(name: str):
    try:
        return project.load_module(name)
    except Exception as error:  # noqa: BLE001 - the learner's file: its error is the hint
        raise NotYet(f"Importing your {name}.py fails: {type(error).__name__}: {error}. Fix the file and run this "
                     "check again.") from None


def _lesson_bucket():
    from prefect_aws import S3Bucket

    try:
        return S3Bucket.load(BUCKET_BLOCK, _sync=True)
    except ValueError:
        raise NotYet(f"The lesson's block {BUCKET_BLOCK!r} is not on the server: run the cells of the section "
                     "\"Blocks\" first (they save it), then this check.") from None


@lru_cache(maxsize=8)
def _month_parquet(month: str, source: str) -> bytes:
    import io

    from course_lib.ml import data

    buffer = io.BytesIO()
    data.load_month(month, source=source).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _prepare_check_block(train_month: str, val_month: str, source: str) -> str:
    """The check's block: the lesson's bucket, keys under CHECK_FOLDER/, the two months swapped, a data2/ sibling."""
    import contextlib
    import io

    from prefect_aws import S3Bucket

    lesson = _lesson_bucket()
    client = lesson.credentials.get_s3_client()
    with contextlib.redirect_stdout(io.StringIO()):  # load_month's "2023-01 green: ..." lines
        swapped = {train_month: _month_parquet(val_month, source), val_month: _month_parquet(train_month, source)}
    for month, payload in swapped.items():
        client.put_object(Bucket=lesson.bucket_name, Key=f"{CHECK_FOLDER}/data/green_tripdata_{month}.parquet",
                          Body=payload)
    # A sibling that starts with "data" too: download_folder_to_path("data") without the slash trips on it.
    client.put_object(Bucket=lesson.bucket_name, Key=f"{CHECK_FOLDER}/data2/notes.txt", Body=b"not training data")
    S3Bucket(bucket_name=lesson.bucket_name, credentials=lesson.credentials,
             bucket_folder=CHECK_FOLDER).save(CHECK_BLOCK, overwrite=True, _sync=True)
    return lesson.bucket_name


@lru_cache(maxsize=8)
def _plain_rmse(train_month: str, val_month: str, source: str, num_boost_round: int | None) -> float:
    """The plain pipeline of lesson 01 (no Prefect), on the same frames the check uploads."""
    import contextlib
    import io

    from course_lib.ml import training

    with tempfile.TemporaryDirectory(prefix="check-05-") as models, contextlib.redirect_stdout(io.StringIO()):
        return training.train_months(train_month, val_month, source=source, num_boost_round=num_boost_round,
                                     models_dir=models).rmse


def _task_run_names(flow_run_id) -> list[str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted(run.name for run in task_runs)


def _s3_flow_src() -> str:
    return project.solution_for("orchestrate_s3.py", LESSON)


_SOLUTION = _s3_flow_src()
_LOAD_LINE = "    bucket = S3Bucket.load(bucket_block)\n"


@exercise("05.1", "Your flow reads its months from S3", wrong=[
    Wrong(hint="outside the flow", code=_SOLUTION.replace(_LOAD_LINE, "").replace(
        "\n\n@flow", '\nbucket = S3Bucket.load("taxi-s3-bucket")\n\n\n@flow', 1)),
    Wrong(hint="ignores bucket_block", change=("S3Bucket.load(bucket_block)", 'S3Bucket.load("taxi-s3-bucket")')),
    Wrong(hint='"data/", with the slash', change=('from_folder="data/"', 'from_folder="data"')),
    Wrong(hint="read-2023-01", change=("df_train = read_data(train_month, source=\"file\", data_dir=folder)",
                                       "df_train = read_data(f\"{folder}/green_tripdata_{train_month}.parquet\")")),
])
def s3_flow(train_month: str = "2023-01", val_month: str = "2023-02", source: str = "auto",
            num_boost_round: int | None = None) -> str:
    from prefect import Flow

    _static_s3_flow(_their_source("orchestrate_s3.py"))
    module = _load_their("orchestrate_s3")
    main_flow_s3 = getattr(module, "main_flow_s3", None)
    if not isinstance(main_flow_s3, Flow):
        raise NotYet("`main_flow_s3` is a plain function: put `@flow(persist_result=True, log_prints=True)` on the "
                     "line above `def main_flow_s3` (from prefect import flow).")
    if main_flow_s3.persist_result is not True:
        raise NotYet("main_flow_s3 does not persist its result: pass persist_result=True to @flow, so that a run "
                     "executed by a worker hands its RMSE back (the lesson reads it).")
    bucket_name = _prepare_check_block(train_month, val_month, source)
    state = main_flow_s3(train_month=train_month, val_month=val_month, bucket_block=CHECK_BLOCK,
                         num_boost_round=num_boost_round, return_state=True)
    if not state.is_completed():
        message = state.message or ""
        if "subpath" in message:
            raise NotYet(f"Your flow failed: {message} The bucket holds a folder data2/ beside data/, and "
                         "download_folder_to_path(\"data\") takes every key that starts with \"data\". Ask for "
                         "\"data/\", with the slash.")
        raise NotYet(f"Your main_flow_s3 ended {state.name}: {message} Run it in a cell "
                     f"(`main_flow_s3(bucket_block={BUCKET_BLOCK!r})`) and read its error.")
    rmse = state.result(_sync=True)
    expected = _plain_rmse(val_month, train_month, source, num_boost_round)
    if rmse != expected:
        if rmse == _plain_rmse(train_month, val_month, source, num_boost_round):
            raise NotYet(f"Called with bucket_block={CHECK_BLOCK!r} (a block of the check: the bucket "
                         f"{bucket_name!r}, folder {CHECK_FOLDER}/, whose months hold other trips), your flow "
                         f"trained on the data of {BUCKET_BLOCK!r}: it ignores bucket_block. Load the block whose "
                         "name the flow receives: `S3Bucket.load(bucket_block)`.")
        raise NotYet(f"Your flow returned the RMSE {rmse!r}; the plain pipeline gives {expected!r} on the data of "
                     f"the block {CHECK_BLOCK!r}. Train as main_flow does: read_data for each month, then "
                     "add_features and train_best_model from orchestrate, with num_boost_round passed on.")
    names = _task_run_names(state.state_details.flow_run_id)
    wanted = [f"read-{train_month}", f"read-{val_month}"]
    if not all(name in names for name in wanted):
        reads = [name for name in names if name.startswith("read")] or names
        raise NotYet(f"Your flow's task runs are {reads}, not {wanted}: call the task with the month, "
                     f"`read_data(train_month, source=\"file\", data_dir=folder)`, so that each run is named after "
                     "its month (a path as first argument names the run after the path).")
    return (f"Your main_flow_s3 loaded the block it was given ({CHECK_BLOCK!r}, a block of the check), downloaded "
            f"its data/ folder and trained on it: RMSE {rmse:.5f}, the plain pipeline's on the same data, with "
            f"task runs {wanted}.")


# -- exercise 05.2: prefect.yaml ------------------------------------------------------------------
def _step_name(step) -> str:
    return next(iter(step)) if isinstance(step, dict) and step else repr(step)


def _read_variable(name: str):
    from course_lib.tooling.runs import api_client

    with api_client() as client:
        return client.read_variable_by_name(name)


def _resolve(inputs: dict) -> dict:
    """The step's inputs as a run sees them: Prefect's own templating, against the server."""
    from prefect.utilities.asyncutils import run_coro_as_sync
    from prefect.utilities.templating import resolve_variables

    return run_coro_as_sync(resolve_variables(inputs))


def _clone(url: str, branch: str | None, into: Path) -> None:
    from course_lib.tooling.project import GitError, run_git

    args = ["clone", "--quiet", "--depth", "1"] + (["--branch", branch] if branch else []) + [url, str(into)]
    try:
        run_git(*args)
    except GitError as error:
        said = next((line.strip() for line in str(error).splitlines()[1:] if line.strip()), str(error))
        where = f"Your pull step clones {url!r}" + (f", branch {branch!r}" if branch else "") + f", and git fails: {said}"
        if branch and branch != project.BRANCH:
            raise NotYet(f"{where} You push to {project.BRANCH}: the branch is {project.BRANCH} "
                         f"(`branch: {project.BRANCH}`).") from None
        raise NotYet(f"{where} Did you push your project (`git push origin {project.BRANCH}`)?") from None


def _yaml_problems(config: dict) -> None:
    pull = config.get("pull") or []
    if not isinstance(pull, list):
        raise NotYet("`pull:` must be a list of steps, each starting with `- ` (a YAML list item).")
    names = [_step_name(step) for step in pull]
    old = [name for name in names if name.startswith("prefect.projects.")]
    if old:
        raise NotYet(f"{old[0]} is Prefect 2.10's name (the 2023 videos): Prefect 3 has no prefect.projects, and "
                     f"a run would crash on it. The step is {GIT_CLONE}.")
    if "prefect.deployments.steps.set_working_directory" in names:
        raise NotYet("The pull steps still start with set_working_directory: the worker would move into your "
                     "project folder and clone the repository inside it. Replace that step: pull with "
                     f"{GIT_CLONE} only, so a run starts from the pushed code.")
    if GIT_CLONE not in names:
        raise NotYet(f"No pull step clones the repository (the steps are {names or 'none'}): the step is "
                     f"{GIT_CLONE}, with `repository:` and `branch: main`.")
    deployments = {entry.get("name"): entry for entry in config.get("deployments") or [] if isinstance(entry, dict)}
    for name, entrypoint in DEPLOYMENTS.items():
        entry = deployments.get(name)
        if entry is None:
            raise NotYet(f"prefect.yaml has no deployment {name!r} (it has {sorted(map(str, deployments))}): keep "
                         "taxi_local_data and add taxi_s3_data under `deployments:`.")
        if entry.get("entrypoint") != entrypoint:
            _entrypoint_problem(name, entry.get("entrypoint"), entrypoint)
        pool = (entry.get("work_pool") or {}).get("name") if isinstance(entry.get("work_pool"), dict) else None
        if pool != POOL:
            raise NotYet(f"The deployment {name!r} runs on work pool {pool!r}: give it `work_pool:` with "
                         f"`name: {POOL}` (the pool of the lesson's worker).")
    parameters = deployments["taxi_s3_data"].get("parameters") or {}
    if parameters.get("bucket_block") != BUCKET_BLOCK:
        raise NotYet(f"taxi_s3_data's parameters are {parameters}: it must pass bucket_block: {BUCKET_BLOCK} (the "
                     "block the lesson saved), as a parameter of the deployment.")


def _entrypoint_problem(name: str, given, wanted: str) -> None:
    if not isinstance(given, str) or ":" not in given:
        raise NotYet(f"The deployment {name!r} has entrypoint {given!r}: write FILE:FLOW_FUNCTION, here {wanted}.")
    file_name, function = given.split(":", 1)
    path = project.folder() / file_name
    if path.is_file() and function not in {node.name for node in ast.parse(path.read_text()).body
                                           if isinstance(node, ast.FunctionDef)}:
        raise NotYet(f"The deployment {name!r} has entrypoint {given}, but {file_name} has no function "
                     f"{function!r}: the entrypoint is {wanted}.")
    raise NotYet(f"The deployment {name!r} has entrypoint {given}: it should be {wanted} (a path relative to the "
                 "project folder, then the flow function).")


@exercise("05.2", "Both deployments, pulled from git", wrong=[
    Wrong(hint="Variable", change=("'{{ prefect.variables.my_project_repository }}'",
                                   "file:///home/me/work/git/my-project.git")),
    Wrong(hint=GIT_CLONE, change=(GIT_CLONE, "prefect.projects.steps.git_clone_project")),
    Wrong(hint="no Variable named 'my_project_repo'", change=("variables.my_project_repository",
                                                              "variables.my_project_repo")),
    Wrong(hint="has no function 'main_flow'", change=(S3_ENTRYPOINT, "orchestrate_s3.py:main_flow")),
    Wrong(hint="set_working_directory", change=("pull:\n", "pull:\n- prefect.deployments.steps.set_working_directory:\n"
                                                         "    directory: '{{ $MY_PROJECT_DIR }}'\n")),
    Wrong(hint="the branch is main", change=("branch: main", "branch: master")),
])
def deployments_file(source: str = "auto", num_boost_round: int | None = None) -> str:
    """(The lesson's parameters are accepted, as catch_up passes them to every check; none is needed here.)"""
    import yaml

    text = _their_source("prefect.yaml")
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise NotYet(f"Your prefect.yaml is not valid YAML: {error}. Indent with spaces, as the file was.") from None
    if not isinstance(config, dict):
        raise NotYet("Your prefect.yaml should be a mapping (name:, pull:, deployments: ...), as `prefect init` wrote it.")
    _yaml_problems(config)
    step = next(step[GIT_CLONE] for step in config["pull"] if _step_name(step) == GIT_CLONE) or {}
    repository = str(step.get("repository", ""))
    variables = _VARIABLE_TEMPLATE.findall(repository)
    if not variables:
        raise NotYet(f"The git_clone step names its repository as {repository!r}, written into the file: with "
                     f"another remote (a fork, GitHub) you would edit and redeploy. Take it from the Prefect "
                     f"Variable the lesson set: repository: '{{{{ prefect.variables.{REPOSITORY_VARIABLE} }}}}'.")
    for name in variables:
        if _read_variable(name) is None:
            raise NotYet(f"The git_clone step reads the Variable {name!r}, and there is no Variable named {name!r} on "
                         f"the server: the lesson set {REPOSITORY_VARIABLE!r}. A run would clone '' and crash.")
    resolved = _resolve(dict(step))
    branch = resolved.get("branch")
    with tempfile.TemporaryDirectory(prefix="check-05-clone-") as folder:
        clone = Path(folder) / "clone"
        _clone(str(resolved["repository"]), branch, clone)
        cloned = sorted(path.name for path in clone.iterdir() if not path.name.startswith("."))
    if "orchestrate.py" not in cloned:
        raise NotYet(f"The clone of {resolved['repository']} holds {cloned}, not orchestrate.py: push your project "
                     "(git add -A, git commit, git push origin main).")
    return (f"Your pull step clones {resolved['repository']} (the Variable {variables[0]!r}) on branch {branch or 'HEAD'}"
            f", as a worker will before each run; the clone holds {', '.join(cloned)}. Both deployments are written "
            "down: `prefect deploy --all` registers them.")


def catch_up(**lesson_parameters):
    """Stuck or skipped? Writes the course's orchestrate_s3.py and prefect.yaml of lesson 05 where yours does not
    pass its check (yours are kept). The lesson's next cells commit, push and deploy them."""
    return _catch_up(LESSON, [CatchUp(s3_flow, files=("orchestrate_s3.py",)),
                              CatchUp(deployments_file, files=("prefect.yaml",))], **lesson_parameters)
