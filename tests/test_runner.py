"""The course runner: notebook discovery, quick parameters, the summary table, error reporting,
and ``python -m course_lib.tooling.runner run`` end to end on a failing and a passing notebook."""

import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest
from papermill.exceptions import PapermillExecutionError

from course_lib.tooling import runner


def test_quick_parameters_are_filtered_to_what_each_notebook_declares():
    for notebook in runner.course_notebooks():
        injected = runner.parameters_for(notebook, quick=True)
        assert set(injected) <= runner.declared_parameters(notebook)
        assert runner.parameters_for(notebook, quick=False) == {}
    first = runner.course_notebooks(["01"])[0]
    assert runner.parameters_for(first, quick=True)["source"] == "synthetic"


def test_unknown_notebook_names_the_lessons():
    with pytest.raises(SystemExit, match="00_setup.ipynb"):
        runner.course_notebooks(["99_nothing"])


def test_quick_parameters_are_each_declared_by_some_notebook():
    """No dead quick parameter: each name is one that at least one lesson's parameters cell declares."""
    declared = set().union(*(runner.declared_parameters(nb) for nb in runner.course_notebooks()))
    unused = set(runner.QUICK_PARAMETERS) - declared
    assert not unused, f"QUICK_PARAMETERS {sorted(unused)} are declared by no notebook: drop them"


def test_quick_parameters_go_only_to_the_notebooks_that_declare_them():
    lesson_00 = runner.NOTEBOOK_DIR / "00_setup.ipynb"
    assert runner.parameters_for(lesson_00, quick=True) == {"source": "synthetic"}  # 00 has no num_boost_round
    assert runner.parameters_for(lesson_00, quick=False) == {}


def test_table_and_failing_cell_error():
    error = PapermillExecutionError(3, 3, "x = 1\nraise ValueError('boom')", "ValueError", "boom", [])
    runs = [runner.NotebookRun("00_setup.ipynb", "ok", 1.25),
            runner.NotebookRun("01_ml_pipeline.ipynb", "FAILED", 2.0, runner._cell_error(error))]
    table = runner.format_table(runs)
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[2:]}
    assert rows["00_setup.ipynb"] == ["ok", "1.2"] and rows["01_ml_pipeline.ipynb"] == ["FAILED", "2.0"]
    assert rows["total"] == ["3.2"]
    assert "cell 3 raised ValueError: boom" in runs[1].error and "raise ValueError" in runs[1].error


def test_every_checked_cell_has_a_recorded_output():
    expected = json.loads(runner.EXPECTED_OUTPUTS.read_text())
    marked = {nb.name: [cell["id"] for cell in runner.checked_cells(json.loads(nb.read_text()))]
              for nb in runner.notebooks_with_checked_cells()}
    assert marked, f"no cell is tagged {runner.CHECK_OUTPUT_TAG}"
    assert {name: sorted(cells) for name, cells in marked.items()} == \
        {name: sorted(cells) for name, cells in expected.items()}, "run: python -m course_lib.tooling.runner record-outputs"


# -- python -m course_lib.tooling.runner run, end to end --------------------------------------
def _notebook(path, *sources):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(notebook, path)


def _processes_with(marker: bytes) -> list[str]:
    """Command lines of live processes (not zombies) whose environment contains ``marker``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
            with open(f"/proc/{pid}/stat", "rb") as fh:
                zombie = b") Z" in fh.read()
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                command = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in environ and not zombie:
            found.append(f"{pid}: {command}")
    return found


def test_run_reports_a_failing_notebook_runs_the_next_and_leaves_no_process(tmp_path):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    _notebook(lessons / "01_fails.ipynb", "x = 41", "raise ValueError(f'boom number {x + 1}')", "print('never')")
    _notebook(lessons / "02_passes.ipynb", "from pathlib import Path\nPath('02_ran.txt').write_text('yes')",
              "import subprocess, sys\n"  # a child of the kernel, as a process pool's workers are
              "subprocess.run([sys.executable, '-c', 'import sys; sys.stderr.write(\"child noise\\\\n\")'])")
    work, out = tmp_path / "work", tmp_path / "executed"
    env = {key: value for key, value in os.environ.items()
           if key not in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "COURSE_PREFECT_PORT")}
    env.update(COURSE_WORKDIR=str(work), COURSE_PREFECT_UI="0")

    proc = subprocess.run([sys.executable, "-m", "course_lib.tooling.runner", "run", "--notebook-dir", str(lessons),
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    output = proc.stdout + proc.stderr

    assert proc.returncode == 1, output
    table = proc.stdout[proc.stdout.index("notebook  "):]
    rows = {line.split()[0]: line.split()[1] for line in table.splitlines()[2:4]}
    assert rows == {"01_fails.ipynb": "FAILED", "02_passes.ipynb": "ok"}, table
    # the failing cell's error: its index, the exception, the cell's source, where the executed copy is
    assert f"01_fails.ipynb failed ({out / '01_fails.ipynb'})" in proc.stdout
    assert "cell 1 raised ValueError: boom number 42" in proc.stdout
    assert "raise ValueError(f'boom number {x + 1}')" in proc.stdout
    assert "02_passes.ipynb failed" not in proc.stdout
    assert (lessons / "02_ran.txt").read_text() == "yes"  # the next notebook did run, in its folder
    # what the kernel's child processes print on stderr goes to the lesson's log, not the terminal
    assert "child noise" not in output and "child noise\n" in (out / "02_passes.stderr.log").read_text()
    executed = nbformat.read(out / "02_passes.ipynb", as_version=4)
    assert executed.cells[0].execution_count == 1
    # nothing left behind: no kernel, no Prefect server (started by the runner in this COURSE_WORKDIR)
    marker = f"COURSE_WORKDIR={work}".encode()
    deadline = time.monotonic() + 10
    while (left := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for line in left:  # clean up what the runner leaked before failing
        try:
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert left == []
    assert "Prefect server ready" in proc.stdout  # the runner started (and so had to stop) its own server


def _lesson_with_opening(path, opening: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(opening), nbformat.v4.new_code_cell("1")])
    nbformat.write(nb, path)


def test_times_rewrites_every_lesson_figure_from_the_last_full_run_and_names_a_lesson_without_one(tmp_path):
    lessons, executed = tmp_path / "notebooks", tmp_path / "executed"
    lessons.mkdir(), executed.mkdir()
    measured = "(measured with `make course` on a 2-core machine); plan 10 minutes."
    _lesson_with_opening(lessons / "00_a.ipynb", f"**Time:** the cells run in 6 s {measured}")
    _lesson_with_opening(lessons / "01_b.ipynb", f"**Time:** the cells run in 33 s, exercises included {measured}")
    (executed / runner.TIMINGS_FILE).write_text(json.dumps(
        {"learner defaults": {"00_a.ipynb": 7.2, "01_b.ipynb": 274.0}, "quick": {"00_a.ipynb": 1.0}}))

    _lesson_with_opening(executed / "01_b.ipynb", f"**Time:** the cells run in 33 s, exercises included {measured}")

    assert runner.update_times(executed, notebook_dir=lessons) == ["00_a.ipynb: 7 s", "01_b.ipynb: 4.6 min"]
    second = nbformat.read(lessons / "01_b.ipynb", as_version=4).cells[0].source
    # the figure changes, the words around it stay (", exercises included" too)
    assert second == f"**Time:** the cells run in 4.6 min, exercises included {measured}"
    # the executed copy says the same and stays newer than its lesson (make book takes it as it is)
    assert nbformat.read(executed / "01_b.ipynb", as_version=4).cells[0].source == second
    assert (executed / "01_b.ipynb").stat().st_mtime >= (lessons / "01_b.ipynb").stat().st_mtime
    assert runner.update_times(executed, notebook_dir=lessons) == []  # already current

    _lesson_with_opening(lessons / "01_b.ipynb", "**Time:** about half an hour.")
    with pytest.raises(ValueError, match="01_b.ipynb has no line"):
        runner.update_times(executed, notebook_dir=lessons)
