"""The output budget names each cell a reader would trip on, and only those."""

import pytest

from course_lib.tooling import hygiene


def _cell(source="x = 1", outputs=(), tags=(), cell_id="c1"):
    return {"cell_type": "code", "id": cell_id, "source": source, "metadata": {"tags": list(tags)}, "outputs": list(outputs)}


def _stream(text):
    return {"output_type": "stream", "name": "stdout", "text": text}


def _log_display(text):  # how Prefect's log lines reach a notebook: rich displays with a text form
    return {"output_type": "display_data", "data": {"text/html": "<pre>…</pre>", "text/plain": text}}


@pytest.mark.parametrize("cell, why", [
    (_cell(outputs=[_stream("line\n" * 41)]), "41 lines of output"),
    (_cell(outputs=[_log_display("log\n" * 45)]), "45 lines of output"),
    (_cell(outputs=[{"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["Traceback (most recent call last):", "..."]}]), "a traceback"),
    (_cell(outputs=[_stream("Traceback (most recent call last):\n  File x\nValueError: no\n")]), "a traceback"),
    (_cell(outputs=[_stream("\x1b[32mgreen\x1b[0m\n")]), "terminal escape codes"),
    (_cell(outputs=[_stream("/x.py:3: UserWarning: careful\n")]), "a warning the lesson does not explain"),
    (_cell(outputs=[{"output_type": "execute_result", "data": {"text/plain": "UUID('1234')"}}]), "a stray repr"),
    (_cell(outputs=[_stream("<prefect.Thing object at 0x7f00>\n")]), "a stray repr"),
    (_cell(source="!prefect work-pool ls\nassert _exit_code == 0"), "test plumbing"),
    (_cell(source="# NBVAL_CHECK_OUTPUT\nprint(1)"), "test plumbing"),
])
def test_each_rule_names_the_cell_and_why(cell, why):
    [problem] = hygiene.budget_problems({"cells": [_cell(cell_id="ok"), cell]}, "07")
    assert problem.startswith("07 cell 1 (c1): ") and why in problem


def test_a_plumbing_cells_source_is_still_read():
    # JupyterLab shows a cell tagged plumbing: an exit-code check there is in the learner's text
    plumbing = _cell(source="!prefect deploy\nassert _exit_code == 0", tags=["plumbing"])
    [problem] = hygiene.budget_problems({"cells": [plumbing]}, "09")
    assert "test plumbing in its source: '_exit_code'" in problem


def test_forty_lines_pass_and_hidden_cells_are_not_read():
    fine = _cell(outputs=[_stream("line\n" * 40)])
    injected = _cell(outputs=[_stream("line\n" * 400)], tags=["injected"])
    plumbing = _cell(source="shutil.rmtree(scratch)", outputs=[_stream("line\n" * 400)], tags=["plumbing"])
    explained = _cell(outputs=[_stream("UserWarning: explained below\n")], tags=["warning-explained"])
    assert hygiene.budget_problems({"cells": [fine, injected, plumbing, explained]}) == []
    assert hygiene.longest_output({"cells": [fine, injected]}) == 40
