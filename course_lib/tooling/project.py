"""The learner's own project: one folder that grows from lesson 02 to the homework.

As in the 2023 course, the learner's ``orchestrate.py`` gets decorators (lesson 02), a deployment
(04), its data in S3 and its code in git (05), artifacts (06)... Each lesson changes *their* files
and runs *their* flow. The folder is ``<workdir>/my-project`` (``work/my-project``: git-ignored by
the course, never part of its repository); from lesson 05 on it is a git repository of its own,
whose remote is a bare repository on this machine (``work/git/my-project.git``) or the learner's.

**The reference project** (:data:`REFERENCE`, ``course_lib/pipeline/project/``) is the one
source of every file the course expects there, for every lesson. A reference file carries
*stage marks*, comments at the end of a line that say in which lessons the line exists:
``# [06:]`` from lesson 06 on, ``# [:04]`` up to lesson 04, ``# [05:08]`` from 05 to 08.
:func:`reference` renders a file for one lesson (marked lines kept or dropped, marks removed),
so the plain script of lesson 01 is the lesson-02 file without its decorators. A line without a
mark is in every stage.

Two operations keep a learner moving:

* :func:`open_project` (the first cell of a lesson): creates what is *missing* for the lesson,
  from the reference of the lessons before it; never overwrites a file.
* ``check.catch_up()`` (each lesson's checks module, via :func:`course_lib.tooling.checks.catch_up`):
  after the lesson's project exercises, writes the reference version of what the learner's work
  still lacks, keeping their version in ``work/my-project-replaced/``.

The solutions of the project exercises are this reference too: a solution cell is
``%%writefile {project}/FILE`` followed by :func:`reference` of that lesson, which
``python -m course_lib.tooling.project sync`` writes into the notebooks and a test keeps equal.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType

from course_lib import paths

REFERENCE = Path(__file__).resolve().parent.parent / "pipeline" / "project"
PROJECT_NAME = paths.PROJECT_NAME
#: Lesson of the first appearance of each reference file. A file a lesson turns into Prefect code
#: appears one lesson earlier as plain Python, which that lesson's first cell adds to the project:
#: search.py (a plain search, made a mapped flow in lesson 08), notify.py (a plain function, made a
#: flow that emails in lesson 09).
FIRST_LESSON = {"orchestrate.py": 1, "prefect.yaml": 4, "orchestrate_s3.py": 5, "search.py": 7, "notify.py": 8}
#: The last lesson: the reference project as the course leaves it.
LAST_LESSON = 10
#: The git remote of the project from lesson 05 on: a bare repository on this machine.
GIT_LESSON = 5
BRANCH = "main"
#: The Prefect Variable holding the repository URL that the project's deployments clone.
REPOSITORY_VARIABLE = "my_project_repository"
#: The environment variable naming the project folder: `prefect deploy` fills lesson 04's pull step
#: ('{{ $MY_PROJECT_DIR }}') from the environment of whoever deploys.
PROJECT_DIR_VARIABLE = paths.PROJECT_DIR_VARIABLE

_MARK = re.compile(r"\s*#\s*\[(\d\d)?:(\d\d)?\]\s*$")


class ProjectError(RuntimeError):
    """The learner's project is not in a state the course can work with; says what and the fix."""


def folder() -> Path:
    """The learner's project folder, ``<workdir>/my-project`` (created on first use)."""
    return paths.project_dir()


def replaced_dir() -> Path:
    """Where catch-up keeps the learner's versions of the files it replaces."""
    return paths.subdir(f"{PROJECT_NAME}-replaced")


def render(text: str, lesson: int) -> str:
    """``text`` as it is in ``lesson``: lines marked for other lessons dropped, marks removed.

    A blank line that would follow another blank line because the lines between them were
    dropped goes too, so the rendered file is spaced as if written by hand.
    """
    kept: list[str] = []
    dropped = False
    for line in text.splitlines():
        mark = _MARK.search(line)
        if mark:
            first = int(mark[1]) if mark[1] else 0
            last = int(mark[2]) if mark[2] else 99
            if not first <= lesson <= last:
                dropped = True
                continue
            line = line[:mark.start()]
        if dropped and not line.strip() and kept and not kept[-1].strip():
            continue
        dropped = False
        kept.append(line)
    return "\n".join(kept).strip("\n") + "\n"


def reference(name: str, lesson: int) -> str:
    """The reference version of the project's file ``name`` at the end of ``lesson``."""
    path = REFERENCE / name
    if not path.is_file():
        raise ProjectError(f"the reference project has no file {name!r}; it has: "
                           + ", ".join(sorted(p.name for p in REFERENCE.iterdir() if p.is_file())))
    if lesson < FIRST_LESSON.get(name, 0):
        raise ProjectError(f"{name} appears in lesson {FIRST_LESSON[name]:02d}, not before: "
                           f"there is no version of it for lesson {lesson:02d}")
    return render(path.read_text(), lesson)


def reference_files(lesson: int) -> list[str]:
    """The names of the reference files that exist at the end of ``lesson``."""
    return sorted(name for name, first in FIRST_LESSON.items() if first <= lesson)


def write_reference(names: list[str], lesson: int, project_dir: Path | None = None) -> list[tuple[str, Path | None]]:
    """Write the reference version of ``names`` for ``lesson``; returns ``(name, where the learner's
    previous version was kept or None)`` for each. A file that already equals the reference is left alone."""
    project_dir = project_dir or folder()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    done = []
    for name in names:
        target = project_dir / name
        text = reference(name, lesson)
        kept = None
        if target.exists():
            if target.read_text() == text:
                done.append((name, None))
                continue
            kept = replaced_dir() / f"lesson{lesson:02d}-{stamp}" / name
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(target, kept)
        _write_atomically(target, text)
        done.append((name, kept))
    return done


def _write_atomically(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    tmp.replace(target)


def load_module(name: str = "orchestrate", project_dir: Path | None = None) -> ModuleType:
    """Import ``<project>/<name>.py`` afresh (the file as it is now, not a cached older import).

    The project folder is put first on ``sys.path`` while it runs, as Prefect does for an
    entrypoint, so ``from orchestrate import ...`` inside another project file finds the
    learner's file; older imports of the project's modules are dropped first.
    """
    project_dir = Path(project_dir or folder())
    path = project_dir / f"{name}.py"
    if not path.is_file():
        raise ProjectError(f"{path} does not exist: write it first (or run the lesson's catch_up())")
    # A copy of sys.modules: Prefect's background threads may import a module meanwhile.
    # Also any module named like a project file: another folder's orchestrate.py would shadow it.
    project_names = {file.stem for file in project_dir.glob("*.py")}
    for module_name in [m for m, mod in list(sys.modules.items())
                        if m in project_names
                        or (getattr(mod, "__file__", None) and Path(mod.__file__).parent == project_dir)]:
        sys.modules.pop(module_name, None)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(project_dir))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        sys.path.remove(str(project_dir))
    return module


# -- git: the project's own repository, from lesson 05 on -------------------------------------
def reference_module(name: str = "orchestrate", lesson: int = LAST_LESSON) -> ModuleType:
    """The reference project's ``name`` as ``lesson`` leaves it, imported.

    For the course's own tooling (the pictures, the bench, the services' tests): they run the
    pipeline the learner writes, from its one source. The files are rendered into
    ``<workdir>/reference-project/lessonNN/`` (see :func:`reference_folder`).
    """
    return load_module(name, reference_folder(lesson))


def reference_folder(lesson: int = LAST_LESSON) -> Path:
    """A folder holding every reference file as ``lesson`` leaves it (rewritten only when changed)."""
    folder = paths.subdir("reference-project") / f"lesson{lesson:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    for name in reference_files(lesson):
        text = reference(name, lesson)
        target = folder / name
        if not target.is_file() or target.read_text() != text:
            _write_atomically(target, text)
    return folder


def remote_dir() -> Path:
    """The bare repository that plays the project's remote (GitHub in the 2023 course)."""
    return paths.subdir("git") / f"{PROJECT_NAME}.git"


def remote_url() -> str:
    return remote_dir().as_uri()


class GitError(ProjectError):
    """A git command failed; the message has git's own words and the fix."""


#: A fixed identity and no outside configuration: the course's own commits are reproducible and
#: never depend on (or are blocked by) the learner's git settings, and git never prompts.
GIT_ENV: dict[str, str] = {
    "GIT_AUTHOR_NAME": "Course Learner",
    "GIT_AUTHOR_EMAIL": "learner@course.invalid",
    "GIT_COMMITTER_NAME": "Course Learner",
    "GIT_COMMITTER_EMAIL": "learner@course.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}


def run_git(*args: str, cwd: Path | str | None = None, check: bool = True) -> str:
    """``git ARGS`` in ``cwd`` with :data:`GIT_ENV`; returns its output (stripped)."""
    if shutil.which("git") is None:
        raise GitError("The `git` program is not installed. Fix: install git (e.g. `apt-get install git`).")
    result = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True,
                            text=True, timeout=120)
    if check and result.returncode != 0:
        raise GitError(f"`git {' '.join(args)}` failed (exit {result.returncode}) in {cwd or os.getcwd()}:\n"
                       f"{(result.stderr or result.stdout).strip()[-2000:]}\n"
                       "Fix: read git's message above.")
    return result.stdout.strip()


def git(*args: str, project_dir: Path | None = None, check: bool = True) -> str:
    """``git ARGS`` in the project folder, without prompts; returns its output."""
    return run_git(*args, cwd=project_dir or folder(), check=check)


def is_repository(project_dir: Path | None = None) -> bool:
    return ((project_dir or folder()) / ".git").is_dir()


GITIGNORE = "__pycache__/\n*.pyc\n.ipynb_checkpoints/\n"


def init_repository(project_dir: Path | None = None) -> str:
    """Make the project a git repository whose ``origin`` is the bare remote; returns the remote URL.

    Idempotent. A commit needs an author: when git has none configured, the repository gets a
    local one (``Course Learner``), so ``git commit`` works on a fresh machine.
    """
    project_dir = project_dir or folder()
    remote = remote_dir()
    if not (remote / "HEAD").is_file():
        run_git("init", "--bare", "--quiet", f"--initial-branch={BRANCH}", str(remote), cwd=remote.parent)
    if not is_repository(project_dir):
        git("init", "--quiet", f"--initial-branch={BRANCH}", project_dir=project_dir)
    if not git("config", "user.email", project_dir=project_dir, check=False):
        git("config", "user.name", "Course Learner", project_dir=project_dir)
        git("config", "user.email", "learner@course.invalid", project_dir=project_dir)
    if not (project_dir / ".gitignore").exists():
        (project_dir / ".gitignore").write_text(GITIGNORE)
    if git("remote", project_dir=project_dir, check=False).split() != ["origin"]:
        git("remote", "add", "origin", remote_url(), project_dir=project_dir, check=False)
    return remote_url()


def commit_and_push(message: str, project_dir: Path | None = None) -> str:
    """``git add -A && git commit -m MESSAGE && git push origin main``; returns the pushed commit."""
    project_dir = project_dir or folder()
    git("add", "-A", project_dir=project_dir)
    if git("status", "--porcelain", project_dir=project_dir):
        git("commit", "--quiet", "-m", message, project_dir=project_dir)
    git("push", "--quiet", "origin", f"HEAD:{BRANCH}", project_dir=project_dir)
    return git("rev-parse", "--short", "HEAD", project_dir=project_dir)


def pushed(name: str, project_dir: Path | None = None) -> str | None:
    """The text of ``name`` in the remote's ``main`` (what a worker's ``git_clone`` gets), or None."""
    if not (remote_dir() / "HEAD").is_file():
        return None
    try:
        return run_git("show", f"{BRANCH}:{name}", cwd=remote_dir()) + "\n"
    except Exception:  # noqa: BLE001 - not pushed yet, or no such file in the pushed commit
        return None


# -- a lesson's first cell ---------------------------------------------------------------------
def open_project(lesson: int, quiet: bool = False) -> Path:
    """The project folder, with what ``lesson`` needs from earlier lessons created if missing.

    Never overwrites: a file the learner has is theirs (``check.catch_up()`` replaces files that
    fail a lesson's checks). From lesson 06 on the project is a git repository with its remote.
    """
    project_dir = folder()
    # `prefect deploy` fills prefect.yaml's lesson-04 pull step ('{{ $MY_PROJECT_DIR }}') from the
    # deploying process's environment: a `!prefect deploy` cell inherits it from this kernel.
    os.environ.setdefault(PROJECT_DIR_VARIABLE, str(project_dir))
    before = lesson - 1
    created = [name for name in reference_files(before) if not (project_dir / name).exists()]
    for name in created:
        _write_atomically(project_dir / name, reference(name, before))
    if before >= GIT_LESSON and not is_repository(project_dir):
        init_repository(project_dir)
        commit_and_push(f"My project as lesson {before:02d} left it")
        created.append("a git repository with its remote")
    if not quiet:
        files = sorted(p.name for p in project_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        print(f"Your project: {project_dir} ({', '.join(files) or 'empty'})")
        if created:
            print(f"  created from the course's reference (lesson {before:02d}): {', '.join(created)}")
    return project_dir


def project_summary(project_dir: Path | None = None) -> dict:
    """What is in the project: files, git remote and the last commit (for lessons and checks)."""
    project_dir = project_dir or folder()
    summary = {"folder": str(project_dir),
               "files": sorted(p.name for p in project_dir.iterdir() if p.is_file() and not p.name.startswith("."))}
    if is_repository(project_dir):
        summary["remote"] = git("remote", "get-url", "origin", project_dir=project_dir, check=False)
        summary["last commit"] = git("log", "-1", "--format=%h %s", project_dir=project_dir, check=False)
    return summary


# -- solutions generated from the reference ---------------------------------------------------------
WRITEFILE = re.compile(r"^%%writefile \{project\}/(?P<name>[\w.-]+)\n")


def solution_for(name: str, lesson: int) -> str:
    """The code of a solution cell that writes the reference ``name`` of ``lesson``."""
    return f"%%writefile {{project}}/{name}\n" + reference(name, lesson)


def sync_solutions(notebook_paths: list[Path], write: bool = True) -> list[str]:
    """Make every ``%%writefile {project}/FILE`` solution equal :func:`solution_for` of its lesson.

    Returns the cells that differed (``notebook: FILE``); with ``write=False`` it only reports.
    """
    from course_lib.tooling.checks import solution_code

    stale = []
    for path in notebook_paths:
        lesson = int(path.name[:2])
        notebook = json.loads(path.read_text())
        changed = False
        for cell in notebook["cells"]:
            if "solution" not in cell.get("metadata", {}).get("tags", []):
                continue
            source = "".join(cell["source"])
            code = solution_code(source)
            match = WRITEFILE.match(code)
            if not match:
                continue
            wanted = solution_for(match["name"], lesson)
            if code != wanted:
                stale.append(f"{path.name}: {match['name']}")
                cell["source"] = source.replace(code, wanted)
                changed = True
        if changed and write:
            path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return stale


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_lib.tooling.project",
                                     description="The learner's project: render the reference, sync solutions.")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="print a reference file as it is at the end of a lesson")
    show.add_argument("name")
    show.add_argument("lesson", type=int)
    sync = commands.add_parser("sync", help="rewrite the notebooks' %%%%writefile solutions from the reference")
    sync.add_argument("--check", action="store_true", help="only report stale solutions (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.command == "show":
        print(reference(args.name, args.lesson), end="")
        return 0
    from course_lib.tooling.runner import course_notebooks

    stale = sync_solutions(course_notebooks(), write=not args.check)
    for line in stale:
        print(("stale: " if args.check else "rewrote: ") + line)
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
