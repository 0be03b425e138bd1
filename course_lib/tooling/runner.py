"""Run the whole course headless: ``make course`` (and the notebook test suite).

Every notebook is executed in order with papermill against ONE local Prefect server that this
runner starts (or reuses), so no lesson pays for its own server. A table of notebook, status
and seconds is printed at the end; any failure shows the failing cell's error and makes the
exit status non-zero.

    python -m course_lib.tooling.runner run [--quick] [--stubs-only] [--notebook-dir DIR] [NOTEBOOK ...]
    python -m course_lib.tooling.runner times            # the lessons' "**Time:**" lines from the last run
    python -m course_lib.tooling.runner record-outputs   # refresh tests/notebook_outputs.json

Every exercise runs three ways (:func:`course_lib.tooling.checks.three_ways`): the stub, its
wrong answers, the solution. ``--stubs-only`` runs the lessons as a learner who writes nothing:
the stubs and the catch-up calls only.

Cells tagged ``nbval-check-output`` have a deterministic output under the quick parameters.
Committed notebooks carry no outputs, so the expected ones live in ``tests/notebook_outputs.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from course_lib import paths
from course_lib.tooling import bootstrap, checks

NOTEBOOK_DIR = paths.REPO_ROOT / "notebooks"
BUILD_DIR = paths.REPO_ROOT / "build"

# A quick variant of every lesson for tests: synthetic data, few boosting rounds.
# Each notebook only receives the names its `parameters` cell declares.
QUICK_PARAMETERS = {"source": "synthetic", "num_boost_round": 10}
CHECK_OUTPUT_TAG = "nbval-check-output"
EXPECTED_OUTPUTS = paths.REPO_ROOT / "tests" / "notebook_outputs.json"
# The kernels' own log shows errors only: no "Kernel is running over TCP without encryption"
# warning per lesson (the kernel listens on 127.0.0.1 and lives as long as its lesson).
QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]


@dataclass
class NotebookRun:
    name: str
    status: str
    seconds: float
    error: str = ""


def course_notebooks(names: list[str] | None = None, notebook_dir: Path | None = None) -> list[Path]:
    """The lessons in order (``NN_topic.ipynb``), or the named ones."""
    found = sorted((notebook_dir or NOTEBOOK_DIR).glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return found
    chosen = [nb for nb in found if nb.name in names or nb.stem in names or nb.name[:2] in names]
    unknown = set(names) - {nb.name for nb in chosen} - {nb.stem for nb in chosen} - {nb.name[:2] for nb in chosen}
    if unknown:
        raise SystemExit(f"unknown notebook(s) {sorted(unknown)}; the lessons are: "
                         + ", ".join(nb.name for nb in found))
    return chosen


def declared_parameters(notebook: Path) -> set[str]:
    """Names defined in the notebook's cell tagged ``parameters``."""
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def parameters_for(notebook: Path, quick: bool) -> dict:
    if not quick:
        return {}
    declared = declared_parameters(notebook)
    return {name: value for name, value in QUICK_PARAMETERS.items() if name in declared}


def checked_cells(notebook: dict) -> list[dict]:
    """The code cells tagged ``nbval-check-output``."""
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"
            and CHECK_OUTPUT_TAG in cell.get("metadata", {}).get("tags", [])]


def _comparable(outputs: list[dict]) -> list[dict]:
    """Outputs without execution counts or metadata (what the lesson tests compare)."""
    kept = []
    for output in outputs:
        output = {key: value for key, value in output.items() if key not in ("execution_count", "metadata")}
        if output["output_type"] == "execute_result":
            output["execution_count"] = None
            output["metadata"] = {}
        kept.append(output)
    return kept


def notebooks_with_checked_cells() -> list[Path]:
    import json

    return [nb for nb in course_notebooks() if checked_cells(json.loads(nb.read_text()))]


def record_outputs(executed_dir: Path) -> dict:
    """Expected outputs of the checked cells, read from notebooks executed with quick parameters."""
    import json

    recorded = {}
    for notebook in notebooks_with_checked_cells():
        executed = json.loads((executed_dir / notebook.name).read_text())
        cells = {cell["id"]: _comparable(cell["outputs"]) for cell in checked_cells(executed)}
        if cells:
            recorded[notebook.name] = cells
    EXPECTED_OUTPUTS.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    return recorded


def _cell_error(exc: Exception) -> str:
    """The failing cell's error, as a learner wants to see it: the exception line and the cell."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        source = "\n".join("    " + line for line in exc.source.splitlines()[:12])
        return f"cell {exc.cell_index} raised {exc.ename}: {exc.evalue}\n{source}"
    return f"{type(exc).__name__}: {exc}"


def lesson_number(notebook: Path) -> int:
    return int(notebook.name[:2])


def execute(notebook: Path, out_dir: Path, quick: bool, solutions: bool = True) -> NotebookRun:
    """Run one lesson with its exercises done three ways: the stub (its check must fail with a
    hint), each wrong answer (a hint about that mistake), the solution (it must pass). With
    ``solutions=False``: the stubs and the catch-up calls only, as a learner who writes nothing."""
    import json

    import papermill

    started = time.perf_counter()
    both = out_dir / f".{notebook.stem}.three-ways.ipynb"
    stderr_log = out_dir / f"{notebook.stem}.stderr.log"
    try:
        both.write_text(json.dumps(checks.three_ways(json.loads(notebook.read_text()), lesson_number(notebook),
                                                     solutions=solutions), indent=1))
        with stderr_to(stderr_log):
            papermill.execute_notebook(str(both), str(out_dir / notebook.name),
                                       parameters=parameters_for(notebook, quick), cwd=str(notebook.parent),
                                       kernel_name="python3", progress_bar=False, log_output=False,
                                       extra_arguments=QUIET_KERNEL)
        from course_lib.tooling import book  # the site's "what ran" note: Prefect version, data folder, commit
        book.stamp_run(out_dir / notebook.name)
    except Exception as exc:  # any failure is reported in the table, the run goes on
        error = _cell_error(exc)
        if stderr_log.exists() and stderr_log.stat().st_size:
            error += f"\nthe kernel's stderr (and its child processes'): {stderr_log}"
        return NotebookRun(notebook.name, "FAILED", time.perf_counter() - started, error)
    finally:
        both.unlink(missing_ok=True)
    return NotebookRun(notebook.name, "ok", time.perf_counter() - started)


@contextlib.contextmanager
def stderr_to(path: Path):
    """Point file descriptor 2 at ``path`` while a lesson runs. The kernel inherits it, and so do
    the processes it starts (a process pool, a LocalCluster's workers), which would otherwise
    print their Prefect logs into the terminal; in JupyterLab they go to `make lab`'s terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield path
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


TIMINGS_FILE = "timings.json"
# "**Time:** the cells run in 33 s, exercises included (measured with `make course` ...": the figure
# and the command are rewritten, the words between them kept.
TIME_LINE = re.compile(r"(\*\*Time:\*\* the cells run in )([0-9.]+ (?:s|min))([^(]*\(measured with )(`[^`]*`)")


def record_timings(out_dir: Path, runs: list[NotebookRun], quick: bool, solutions: bool) -> None:
    """Add this run's seconds per lesson to ``out_dir/timings.json`` (a full run's figures are what
    the lessons quote; quick and stubs-only runs are kept apart)."""
    import json

    path = out_dir / TIMINGS_FILE
    recorded = json.loads(path.read_text()) if path.exists() else {}
    kind = "quick" if quick else ("stubs-only" if not solutions else "learner defaults")
    for run in runs:
        if run.status == "ok":
            recorded.setdefault(kind, {})[run.name] = round(run.seconds, 1)
    path.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")


def spoken_duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 100 else f"{seconds / 60:.1f} min"


def _rewrite_time_line(notebook: Path, seconds: float) -> bool:
    """Put ``seconds`` in ``notebook``'s Time line; True when the file changed."""
    import json

    nb = json.loads(notebook.read_text())
    cell = next((cell for cell in nb["cells"] if TIME_LINE.search("".join(cell["source"]))), None)
    if cell is None:
        raise ValueError(f"{notebook.name} has no line '**Time:** the cells run in N s ... (measured with "
                         "`make course` ...)' to update: write one in its opening cell")
    source = "".join(cell["source"])
    new = TIME_LINE.sub(lambda m: m[1] + spoken_duration(seconds) + m[3] + "`make course`", source, count=1)
    if new == source:
        return False
    cell["source"] = new.splitlines(keepends=True)
    notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return True


def update_times(out_dir: Path = BUILD_DIR / "executed", notebook_dir: Path | None = None) -> list[str]:
    """Rewrite each lesson's "**Time:** the cells run in N" from the last full ``make course`` run.

    The executed copy in ``out_dir`` gets the same line, after the lesson: it stays as new as its
    source, so ``make book`` renders it instead of asking for another ``make course``.
    Returns one line per lesson changed. Lessons with no recorded full run keep their line; a
    lesson with a recorded run but no such line is an error (its figure would go stale unseen).
    """
    import json

    path = out_dir / TIMINGS_FILE
    recorded = json.loads(path.read_text()).get("learner defaults", {}) if path.exists() else {}
    changed = []
    for notebook in course_notebooks(notebook_dir=notebook_dir):
        seconds = recorded.get(notebook.name)
        if seconds is None:
            continue
        if _rewrite_time_line(notebook, seconds):
            changed.append(f"{notebook.name}: {spoken_duration(seconds)}")
        executed = out_dir / notebook.name
        if executed.is_file():
            _rewrite_time_line(executed, seconds)
    return changed


def format_table(runs: list[NotebookRun]) -> str:
    width = max([len("notebook")] + [len(run.name) for run in runs])
    lines = [f"{'notebook':<{width}}  {'status':<6}  {'seconds':>7}", "-" * (width + 17)]
    lines += [f"{run.name:<{width}}  {run.status:<6}  {run.seconds:7.1f}" for run in runs]
    lines.append(f"{'total':<{width}}  {'':<6}  {sum(run.seconds for run in runs):7.1f}")
    return "\n".join(lines)


def run_course(names: list[str] | None = None, quick: bool = False, out_dir: Path = BUILD_DIR / "executed",
               notebook_dir: Path | None = None, solutions: bool = True) -> list[NotebookRun]:
    """Execute the lessons in order against one Prefect server; print the table.

    The seconds each lesson took are kept in ``out_dir/timings.json`` (for :func:`update_times`).
    """
    from course_lib import services

    bootstrap.apply_headless_env()
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = course_notebooks(names, notebook_dir)
    runs = []
    with services.PrefectServer() as server:
        print(f"Prefect server: {server.api_url}" + (" (reused)" if server.reused else ""), flush=True)
        for notebook in notebooks:
            print(f"running {notebook.name} ...", flush=True)
            run = execute(notebook, out_dir, quick, solutions=solutions)
            print(f"  {run.status} in {run.seconds:.1f} s", flush=True)
            runs.append(run)
    record_timings(out_dir, runs, quick=quick, solutions=solutions)
    print()
    print(format_table(runs))
    for run in runs:
        if run.error:
            print(f"\n{run.name} failed ({out_dir / run.name}):\n{run.error}")
    return runs


def main(argv: list[str] | None = None) -> int:
    import signal  # Ctrl-C stops the run even when started with SIGINT ignored (`make course &`, nohup)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(prog="python -m course_lib.tooling.runner", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="execute the notebooks in order into build/executed/")
    run.add_argument("notebooks", nargs="*", help="names or numbers (default: all)")
    run.add_argument("--quick", action="store_true", help="inject the quick test parameters")
    run.add_argument("--stubs-only", action="store_true",
                     help="run the exercises' stubs and the catch-up calls only (a learner who writes nothing)")
    run.add_argument("--out", type=Path, default=BUILD_DIR / "executed")
    run.add_argument("--notebook-dir", type=Path, default=None, help=f"where the NN_*.ipynb are (default: {NOTEBOOK_DIR})")
    commands.add_parser("times", help="rewrite the lessons' '**Time:**' lines from the last make course")
    commands.add_parser("record-outputs", help=f"run the quick course, record checked outputs in {EXPECTED_OUTPUTS.name}")
    args = parser.parse_args(argv)
    if args.command == "record-outputs":
        out_dir = BUILD_DIR / "quick"
        runs = run_course([nb.name for nb in notebooks_with_checked_cells()], quick=True, out_dir=out_dir)
        if any(run.status != "ok" for run in runs):
            return 1
        recorded = record_outputs(out_dir)
        print(f"recorded {sum(map(len, recorded.values()))} checked cells in {EXPECTED_OUTPUTS}")
        return 0
    if args.command == "times":
        try:
            changed = update_times()
        except ValueError as error:
            print(f"runner times: {error}", file=sys.stderr)
            return 1
        for line in changed or ["no lesson changed (no full make course timings, or already current)"]:
            print(line)
        return 0
    out_dir = BUILD_DIR / "stubs-only" if args.stubs_only and args.out == BUILD_DIR / "executed" else args.out
    runs = run_course(args.notebooks, quick=args.quick, out_dir=out_dir, notebook_dir=args.notebook_dir,
                      solutions=not args.stubs_only)
    return 1 if any(run.status != "ok" for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
