"""The course runner: notebook discovery, quick parameters, the summary table, error reporting."""

import pytest
from papermill.exceptions import PapermillExecutionError

from course_lib import runner


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
    assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code")


def test_table_and_failing_cell_error():
    error = PapermillExecutionError(3, 3, "x = 1\nraise ValueError('boom')", "ValueError", "boom", [])
    runs = [runner.NotebookRun("00_setup.ipynb", "ok", 1.25),
            runner.NotebookRun("01_ml_pipeline.ipynb", "FAILED", 2.0, runner._cell_error(error))]
    table = runner.format_table(runs)
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[2:]}
    assert rows["00_setup.ipynb"] == ["ok", "1.2"] and rows["01_ml_pipeline.ipynb"] == ["FAILED", "2.0"]
    assert rows["total"] == ["3.2"]
    assert "cell 3 raised ValueError: boom" in runs[1].error and "raise ValueError" in runs[1].error
