"""The exercise mechanism: checks never crash, headless runs prove each exercise both ways."""

import json

import pytest

from course_lib.tooling import checks, runner


@checks.exercise("0.1", "Return forty-two")
def returns_42(value):
    if value != 42:
        raise checks.NotYet(f"You returned {value!r}; the function should return 42. Fix the return line.")
    return "42 it is."


def test_a_check_shows_a_hint_or_a_pass_and_never_raises():
    failed = returns_42(41)
    assert not failed.passed and "return 42" in failed.message and "✗" in repr(failed)
    assert "✗" in failed._repr_html_() and "Exercise 0.1" in failed._repr_html_()
    passed = returns_42(42)
    assert passed.passed and passed.message == "42 it is." and checks.last_result() is passed


def test_an_unexpected_error_inside_a_check_is_a_hint_not_a_crash():
    @checks.exercise("0.2", "Length")
    def has_length(obj):
        return f"length {len(obj)}"

    result = has_length(3)
    assert not result.passed and "TypeError" in result.message


def test_expect_last_catches_a_stub_that_passes_and_a_solution_that_fails():
    returns_42(42)
    with pytest.raises(checks.ExerciseError, match="passes on the untouched stub"):
        checks.expect_last(passed=False)
    returns_42(0)
    with pytest.raises(checks.ExerciseError, match="solution does not pass"):
        checks.expect_last(passed=True)
    assert checks.expect_last(passed=False).message.startswith("You returned 0")


def _cell(kind, source, tags=()):
    cell = {"cell_type": kind, "id": f"c{abs(hash(source)) % 10**8}", "metadata": {"tags": list(tags)}, "source": source}
    if kind == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def _notebook(stub, solution):
    return {"cells": [
        _cell("code", "from tests.test_exercises import returns_42"),
        _cell("code", stub, ["exercise"]),
        _cell("code", "returns_42(answer)", ["check"]),
        _cell("markdown", f"<details><summary>Solution</summary>\n\n```python\n{solution}\n```\n\n</details>",
              ["solution"]),
    ], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}


def test_both_ways_inserts_the_unsolved_and_solved_runs_after_the_check():
    cells = checks.both_ways(_notebook("answer = 0  # TODO", "answer = 42"))["cells"]
    assert [c["metadata"].get("tags") for c in cells[2:6]] == [["check"], ["injected"], ["injected"], ["solution"]]
    assert "expect_last(passed=False)" in cells[3]["source"]
    assert cells[4]["source"].startswith("answer = 42\n") and "expect_last(passed=True)" in cells[4]["source"]


def test_an_incomplete_exercise_is_refused():
    notebook = _notebook("answer = 0", "answer = 42")
    del notebook["cells"][3]
    with pytest.raises(ValueError, match="tagged 'solution'"):
        checks.both_ways(notebook)


def _run(tmp_path, notebook):
    import papermill

    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(checks.both_ways(notebook)))
    return papermill.execute_notebook(str(path), str(tmp_path / "out.ipynb"), cwd=str(runner.paths.REPO_ROOT),
                                      kernel_name="python3", progress_bar=False)


def test_a_real_kernel_runs_a_good_exercise_both_ways(tmp_path):
    _run(tmp_path, _notebook("answer = 0  # TODO: the answer", "answer = 42"))


def test_a_stub_that_already_passes_fails_the_headless_run(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError, match="passes on the untouched stub"):
        _run(tmp_path, _notebook("answer = 42  # TODO", "answer = 42"))


@pytest.mark.parametrize("path", runner.course_notebooks(), ids=lambda path: path.name)
def test_every_exercise_of_a_lesson_is_complete(path):
    checks.exercises_of(json.loads(path.read_text()))
