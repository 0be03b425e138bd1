"""Flow code from git, as the 2023 course pulled it from GitHub (lesson 05).

A deployment whose pull step is ``prefect.deployments.steps.git_clone`` runs the code that
is *committed and pushed*, never the files in your working copy. To show that offline, the
lesson creates a git "remote" on this machine:

* a **bare repository** ``<workdir>/git/taxi-flows.git`` (what GitHub would hold), cloned by
  the worker through a ``file://`` URL;
* a **working clone** ``<workdir>/git/taxi-flows`` (your checkout: you edit, commit, push).

The repository holds one small entrypoint, ``taxi_s3.py`` (:data:`ENTRYPOINT_TEMPLATE`): a
flow that prints its ``MESSAGE`` and calls the course's ``main_flow_s3`` (the pipeline logic
stays in ``course_lib``, installed where the worker runs). Editing that message is how the
lesson tells which version of the code a run executed. Data never goes into git: the flow
reads it from the S3 bucket.

``prefect.yaml`` sits at the course repository's root, but entrypoints are relative to the
folder ``prefect deploy`` runs in, so :func:`deploy` runs it in the working clone with
``--prefect-file``.

Which repository the deployment clones is the Prefect Variable ``taxi_flow_repository``
(lesson 05 sets it with ``Variable.set``): the local bare repository by default, or your
own URL. A private repository's token goes into the Secret block ``taxi-git-token``; the
committed ``prefect.yaml`` only references it (``{{ prefect.blocks.secret.taxi-git-token }}``),
so the token is resolved by the run itself and appears neither in the file nor in the logs.

git runs as a subprocess with a fixed author and committer, no global or system git
configuration (your signing or hook settings do not apply here) and no prompts.
Every failure raises :class:`GitSourceError` or ``DeploymentError`` with the fix.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from course_lib import paths

__all__ = [
    "GitSourceError",
    "FlowRepo",
    "create_flow_repo",
    "git",
    "GIT_ENV",
    "ENTRYPOINT_FILE",
    "ENTRYPOINT",
    "ENTRYPOINT_TEMPLATE",
    "REPOSITORY_VARIABLE",
    "TOKEN_BLOCK",
    "PREFECT_YAML",
    "S3_DEPLOYMENT",
    "deploy",
    "explain_deploy_failure",
    "run_deployment",
]

#: The entrypoint file inside the flow repository, and the deployment's entrypoint.
ENTRYPOINT_FILE = "taxi_s3.py"
ENTRYPOINT = f"{ENTRYPOINT_FILE}:main_flow_s3"
#: prefect.yaml at the course repository's root (both deployments of lessons 04-05).
PREFECT_YAML = paths.REPO_ROOT / "prefect.yaml"
S3_DEPLOYMENT = "taxi_s3_data"
#: The Prefect Variable holding the repository URL the ``taxi_s3_data`` run clones.
REPOSITORY_VARIABLE = "taxi_flow_repository"
#: The Secret block holding the access token of a private repository ("" = none needed).
TOKEN_BLOCK = "taxi-git-token"
REPO_NAME = "taxi-flows"
BRANCH = "main"

#: A fixed identity and no outside configuration: commits are reproducible and never
#: depend on (or are blocked by) the learner's own git settings.
GIT_ENV: dict[str, str] = {
    "GIT_AUTHOR_NAME": "Course Learner",
    "GIT_AUTHOR_EMAIL": "learner@course.invalid",
    "GIT_COMMITTER_NAME": "Course Learner",
    "GIT_COMMITTER_EMAIL": "learner@course.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}

ENTRYPOINT_TEMPLATE = '''"""The `taxi_s3_data` deployment's flow, as a worker clones it from git.

The pipeline lives in the course library (course_lib, installed where the worker runs):
this file only decides what the deployment runs. Change MESSAGE, then run the deployment
before and after `git commit` + `git push` to see which code a run executes.
"""

from prefect import flow

from course_lib.pipeline.flows_s3 import main_flow_s3 as train_from_s3

MESSAGE = {message!r}


@flow(name="main-flow-s3", log_prints=True, persist_result=True)
def main_flow_s3(bucket_block: str = "taxi-s3-bucket", train_month: str = "2023-01",
                 val_month: str = "2023-02", data_folder: str = "data", mode: str = "fast",
                 num_boost_round: int | None = None) -> float:
    print(MESSAGE)
    return train_from_s3.fn(bucket_block=bucket_block, train_month=train_month, val_month=val_month,
                            data_folder=data_folder, mode=mode, num_boost_round=num_boost_round)
'''

_MESSAGE_LINE = re.compile(r"^MESSAGE = .*$", re.MULTILINE)


class GitSourceError(RuntimeError):
    """A git step of the lesson failed; the message says what and how to fix it."""


def git(*args: str, cwd: Path | str | None = None, check: bool = True) -> str:
    """Run ``git ARGS`` with :data:`GIT_ENV`; return its stdout (stripped)."""
    if shutil.which("git") is None:
        raise GitSourceError("The `git` program is not installed. Fix: install git (e.g. `apt-get install git`).")
    env = {**os.environ, **GIT_ENV}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise GitSourceError(
            f"`git {' '.join(args)}` failed (exit {result.returncode}) in {cwd or os.getcwd()}:\n"
            f"{(result.stderr or result.stdout).strip()[-2000:]}\n"
            "Fix: read git's message above; `create_flow_repo(fresh=True)` starts the lesson's repository over."
        )
    return result.stdout.strip()


@dataclass
class FlowRepo:
    """The lesson's git remote (a bare repository) and your working clone of it."""

    bare: Path
    clone: Path

    @property
    def url(self) -> str:
        """The remote's URL as the worker clones it (``file://...``; works offline)."""
        return self.bare.resolve().as_uri()

    @property
    def entrypoint_path(self) -> Path:
        return self.clone / ENTRYPOINT_FILE

    # -- the demo's one changing line
    def working_message(self) -> str:
        """MESSAGE as it is in the working copy (what you see in your editor)."""
        return _read_message(self.entrypoint_path.read_text())

    def committed_message(self) -> str:
        """MESSAGE as the remote has it on ``main`` (what a run clones)."""
        return _read_message(git("show", f"{BRANCH}:{ENTRYPOINT_FILE}", cwd=self.bare))

    def set_message(self, message: str) -> None:
        """Edit MESSAGE in the working copy only (no commit, no push)."""
        text = self.entrypoint_path.read_text()
        self.entrypoint_path.write_text(_MESSAGE_LINE.sub(lambda _: f"MESSAGE = {message!r}", text, count=1))

    # -- git
    def status(self) -> str:
        """``git status --short``: files changed in the working copy and not committed."""
        return git("status", "--short", cwd=self.clone)

    def commit(self, message: str) -> str:
        """``git add -A && git commit -m MESSAGE`` in the working clone; returns the new commit id."""
        git("add", "-A", cwd=self.clone)
        if not self.status():
            raise GitSourceError(f"Nothing to commit in {self.clone}. Fix: change a file first (e.g. set_message()).")
        git("commit", "-q", "-m", message, cwd=self.clone)
        return self.head()

    def push(self) -> str:
        """``git push origin main``; returns the commit the remote's ``main`` now points to."""
        git("push", "-q", "origin", BRANCH, cwd=self.clone)
        return self.remote_head()

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.clone)

    def remote_head(self) -> str:
        return git("rev-parse", BRANCH, cwd=self.bare)

    def log(self, n: int = 5) -> str:
        """The remote's last commits, one line each."""
        return git("log", "--oneline", f"-{n}", BRANCH, cwd=self.bare)


def _read_message(source: str) -> str:
    import ast

    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "MESSAGE" for t in node.targets):
            return ast.literal_eval(node.value)
    raise GitSourceError(f"No `MESSAGE = ...` line in {ENTRYPOINT_FILE}. Fix: recreate the repository with create_flow_repo().")


def create_flow_repo(folder: Path | str | None = None, message: str = "taxi_s3_data: version 1",
                     fresh: bool = True) -> FlowRepo:
    """Create the bare "remote" and a working clone holding ``taxi_s3.py``; commit and push it.

    ``folder`` defaults to ``<workdir>/git``. ``fresh=True`` deletes an earlier copy first, so
    the lesson can run again; ``fresh=False`` returns an existing repository unchanged.
    """
    folder = Path(folder) if folder is not None else paths.subdir("git")
    repo = FlowRepo(bare=folder / f"{REPO_NAME}.git", clone=folder / REPO_NAME)
    if not fresh and (repo.bare / "HEAD").exists() and (repo.clone / ".git").exists():
        return repo
    for path in (repo.bare, repo.clone):
        if path.exists():
            shutil.rmtree(path)
    folder.mkdir(parents=True, exist_ok=True)
    git("-c", f"init.defaultBranch={BRANCH}", "init", "-q", "--bare", str(repo.bare))
    git("-c", f"init.defaultBranch={BRANCH}", "clone", "-q", repo.url, str(repo.clone))
    git("checkout", "-q", "-B", BRANCH, cwd=repo.clone)  # an empty clone has no branch yet
    repo.entrypoint_path.write_text(ENTRYPOINT_TEMPLATE.format(message=message))
    (repo.clone / "README.md").write_text(
        "# taxi-flows\n\nThe flow code of the `taxi_s3_data` deployment (lesson 05). Data is not kept in git: "
        "the flow downloads it from the S3 bucket named by the `taxi-s3-bucket` block.\n")
    (repo.clone / ".gitignore").write_text("__pycache__/\n*.parquet\ndata/\n")
    repo.commit("taxi_s3_data entrypoint")
    git("push", "-q", "-u", "origin", BRANCH, cwd=repo.clone)
    return repo


# --------------------------------------------------------------------------- deployments


_ENTRYPOINT_PROBLEMS = re.compile(
    r"(No such file or directory|FileNotFoundError|ScriptError|does not point to a python file|"
    r"could not be found|not found in|has no attribute|Failed to load|ModuleNotFoundError)", re.IGNORECASE)


def explain_deploy_failure(output: str, cwd: Path | str, prefect_file: Path | str) -> str:
    """A learner-facing explanation of a failed ``prefect deploy`` (from its output)."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    # The last line naming an exception says what went wrong; the traceback above it rarely helps.
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b.*:", line)]
    tail = errors[-1] if errors else "\n".join(lines[-15:])
    if "Block document not found" in output:
        try:
            referenced = sorted(set(re.findall(r"prefect\.blocks\.[\w-]+\.[\w-]+", Path(prefect_file).read_text())))
        except OSError:
            referenced = []
        names = ", ".join("{{ %s }}" % ref for ref in referenced) or "a block"
        return (f"`prefect deploy` failed: {prefect_file} references {names}, and that block does not exist on "
                f"the Prefect server ({os.environ.get('PREFECT_API_URL', 'PREFECT_API_URL is not set')}).\n"
                f"Fix: create it first - for the Secret block {TOKEN_BLOCK!r}: "
                f"Secret(value=\"\").save({TOKEN_BLOCK!r}) (empty: no token needed), as lesson 05 does "
                f"(or `prefect block create secret`).\n--- prefect deploy said ---\n{tail}")
    if "work pool" in output.lower() and "does not exist" in output.lower():
        return (f"`prefect deploy` failed: the work pool in {prefect_file} does not exist on the server.\n"
                "Fix: create it first (`prefect work-pool create local-pool --type process`, or "
                f"course_lib.services.ensure_work_pool).\n--- prefect deploy said ---\n{tail}")
    if _ENTRYPOINT_PROBLEMS.search(output):
        return (f"`prefect deploy` could not load a deployment's entrypoint from {cwd}. Entrypoints in "
                f"{prefect_file} are paths relative to the folder you deploy from (and ':flow_function' names "
                f"a function in that file).\nFix: run `prefect deploy` from the folder that holds the file - "
                f"for {S3_DEPLOYMENT} the working clone of the flow repository - or correct `entrypoint:` "
                f"in {prefect_file}.\n--- prefect deploy said ---\n{tail}")
    return f"`prefect deploy` failed (run from {cwd} with {prefect_file}).\n--- prefect deploy said ---\n{tail}"


def deploy(cwd: Path | str, *names: str, prefect_file: Path | str = PREFECT_YAML, pool: str | None = None,
           show: bool = True):
    """``prefect deploy --all`` (or ``--name NAME`` for each name) from ``cwd`` with ``prefect_file``.

    Raises ``DeploymentError`` with an explanation and the fix when it fails (e.g. an entrypoint
    that does not exist in ``cwd``). ``pool`` overrides the work pool of ``prefect.yaml`` for
    named deployments (``prefect deploy --all`` ignores ``--pool``).
    """
    from course_lib.tooling.deployments import DeploymentError, prefect_cli

    if pool and not names:
        # prefect deploy --all ignores --pool ("options will be ignored"): say so instead.
        raise GitSourceError("pool= only applies when deploying named deployments: prefect deploy --all takes "
                             "each deployment's work pool from prefect.yaml. Fix: pass the deployment name(s), "
                             "or change work_pool.name in prefect.yaml.")
    args = ["deploy", "--prefect-file", str(prefect_file)]
    args += [item for name in names for item in ("--name", name)] if names else ["--all"]
    if pool:
        args += ["--pool", pool]
    result = prefect_cli(*args, cwd=cwd, check=False, show=show)
    if result.returncode != 0:
        raise DeploymentError(explain_deploy_failure(result.stdout + result.stderr, cwd, prefect_file))
    return result


def run_deployment(deployment: str = f"main-flow-s3/{S3_DEPLOYMENT}", parameters: dict | None = None,
                   timeout: float = 300, late_after: float = 60, show: bool = True):
    """``prefect deployment run DEPLOYMENT --params JSON``, wait until it finishes, read its logs.

    Returns a :class:`course_lib.tooling.deployments.DeploymentRun`. Raises ``DeploymentError``
    if no worker picks it up (after ``late_after`` s) or it times out; a Failed/Crashed run is
    returned (check ``.state``) with its logs.
    """
    import json

    from course_lib.tooling import deployments

    args = ["deployment", "run", deployment]
    if parameters:
        args += ["--params", json.dumps(parameters)]
    result = deployments.prefect_cli(*args, show=show)
    return deployments.follow(result.stdout, timeout=timeout, late_after=late_after)
