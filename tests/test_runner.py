"""The course runner: notebook discovery, quick parameters, the summary table, error reporting."""

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


def test_prepare_injects_parameters_without_executing(tmp_path):
    import json

    written = runner.prepare(tmp_path)
    assert [path.name for path in written] == [path.name for path in runner.course_notebooks()]
    cells = json.loads((tmp_path / "01_ml_pipeline.ipynb").read_text())["cells"]
    injected = [c for c in cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(injected) == 1 and 'source = "synthetic"' in "".join(injected[0]["source"])
    unchecked = [c for c in cells if c["cell_type"] == "code" and c not in runner.checked_cells({"cells": cells})]
    assert all(not c.get("outputs") for c in unchecked)


def test_table_and_failing_cell_error():
    error = PapermillExecutionError(3, 3, "x = 1\nraise ValueError('boom')", "ValueError", "boom", [])
    runs = [runner.NotebookRun("00_setup.ipynb", "ok", 1.25),
            runner.NotebookRun("01_ml_pipeline.ipynb", "FAILED", 2.0, runner._cell_error(error))]
    table = runner.format_table(runs)
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[2:]}
    assert rows["00_setup.ipynb"] == ["ok", "1.2"] and rows["01_ml_pipeline.ipynb"] == ["FAILED", "2.0"]
    assert rows["total"] == ["3.2"]
    assert "cell 3 raised ValueError: boom" in runs[1].error and "raise ValueError" in runs[1].error


def test_every_checked_cell_has_a_recorded_output_and_prepare_fills_it(tmp_path):
    import json

    expected = json.loads(runner.EXPECTED_OUTPUTS.read_text())
    marked = {nb.name: [cell["id"] for cell in runner.checked_cells(json.loads(nb.read_text()))]
              for nb in runner.notebooks_with_checked_cells()}
    assert marked, "no cell is marked # NBVAL_CHECK_OUTPUT"
    assert {name: sorted(cells) for name, cells in marked.items()} == \
        {name: sorted(cells) for name, cells in expected.items()}, "run: python -m course_lib.tooling.runner record-outputs"
    runner.prepare(tmp_path)
    for name, cell_ids in marked.items():
        prepared = {cell["id"]: cell for cell in json.loads((tmp_path / name).read_text())["cells"]}
        for cell_id in cell_ids:
            assert prepared[cell_id]["outputs"] == expected[name][cell_id]


@pytest.mark.parametrize("printed, passes", [("1", True), ("2", False)])
def test_nbval_compares_a_checked_cell_with_its_expected_output(tmp_path, printed, passes):
    """The mechanism itself: a checked cell whose output differs from the expected one fails."""
    import subprocess
    import sys

    import nbformat

    cell = nbformat.v4.new_code_cell(f"{runner.CHECK_OUTPUT_MARK}\nprint({printed})")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    cell.execution_count = 1
    notebook = nbformat.v4.new_notebook(cells=[cell])
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(notebook, tmp_path / "checked.ipynb")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                             "--nbval-current-env", "--rootdir", str(tmp_path), str(tmp_path / "checked.ipynb")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert (result.returncode == 0) is passes, result.stdout[-2000:]
