"""The exercise mechanism: checks never crash unnoticed, headless runs prove each exercise three ways
(stub, wrong answers, solution), and catch-up writes the reference where the learner's work fails."""

import json
import sys

import pytest

from course_lib.tooling import checks, runner


@checks.exercise("00.1", "Return forty-two", wrong=[
    checks.Wrong(hint="41 is one short", change=("42", "41")),
    checks.Wrong(hint="a string", code="answer = '42'"),
])
def returns_42(value):
    if isinstance(value, str):
        raise checks.NotYet(f"You returned a string, {value!r}: return the number 42, without quotes.")
    if value == 41:
        raise checks.NotYet("41 is one short: the answer is 42.")
    if value != 42:
        raise checks.NotYet(f"You returned {value!r}; the function should return 42. Fix the return line.")
    return "42 it is."


@checks.exercise("00.2", "Length")
def has_length(obj):
    return f"length {len(obj)}"


THIS_MODULE = sys.modules[__name__]


def test_a_check_shows_a_hint_or_a_pass_and_never_raises():
    failed = returns_42(40)
    assert not failed.passed and "return 42" in failed.message and "✗" in repr(failed)
    assert "✗" in failed._repr_html_() and "Exercise 00.1" in failed._repr_html_()
    passed = returns_42(42)
    assert passed.passed and passed.message == "42 it is." and checks.last_result() is passed


def test_an_unexpected_error_inside_a_check_is_a_hint_to_the_learner_but_marked_as_a_crash():
    result = has_length(3)
    assert not result.passed and "TypeError" in result.message and result.crashed
    with pytest.raises(checks.ExerciseError, match="crashed instead of giving a hint"):
        checks.expect_last(passed=False)


def test_exercise_numbers_are_two_digit_lesson_dot_rank():
    with pytest.raises(ValueError, match="'NN.k'"):
        checks.exercise("1.1", "an old-style number")


def test_expect_last_catches_a_stub_that_passes_and_a_solution_that_fails():
    returns_42(42)
    with pytest.raises(checks.ExerciseError, match="passes on the untouched stub"):
        checks.expect_last(passed=False)
    returns_42(0)
    with pytest.raises(checks.ExerciseError, match="solution does not pass"):
        checks.expect_last(passed=True)
    assert checks.expect_last(passed=False).message.startswith("You returned 0")


def test_expect_wrong_needs_a_failure_whose_hint_names_the_mistake():
    returns_42(41)
    assert checks.expect_wrong("00.1", 0).message.startswith("41 is one short")
    returns_42(7)  # fails, but with the generic hint, not the one wrong answer 1 must get
    with pytest.raises(checks.ExerciseError, match="does not name the mistake"):
        checks.expect_wrong("00.1", 0)
    returns_42(42)
    with pytest.raises(checks.ExerciseError, match="PASSES wrong answer 1"):
        checks.expect_wrong("00.1", 0)


def test_a_wrong_answer_must_change_text_that_is_in_the_solution():
    assert checks.Wrong(hint="x", change=("42", "41")).apply("answer = 42") == "answer = 41"
    with pytest.raises(checks.ExerciseError, match="not in the solution"):
        checks.Wrong(hint="x", change=("43", "41")).apply("answer = 42")


def _cell(kind, source, tags=()):
    cell = {"cell_type": kind, "id": f"c{abs(hash(source)) % 10**8}", "metadata": {"tags": list(tags)}, "source": source}
    if kind == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def _notebook(stub, solution, check="check.returns_42(answer)"):
    return {"cells": [
        _cell("code", "from tests.test_exercises import THIS_MODULE as check"),
        _cell("code", stub, ["exercise"]),
        _cell("code", check, ["check"]),
        _cell("markdown", f"<details><summary>Solution</summary>\n\n```python\n{solution}\n```\n\n</details>",
              ["solution"]),
    ], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}


def test_three_ways_runs_the_stub_then_each_wrong_answer_then_the_solution():
    cells = checks.three_ways(_notebook("answer = 0  # TODO", "answer = 42"), 0, checks_module=THIS_MODULE)["cells"]
    injected = [cell["source"].strip() for cell in cells if "injected" in cell["metadata"]["tags"]]
    assert "expect_last(passed=False)" in injected[0]
    assert injected[1] == "answer = 41" and "expect_wrong('00.1', 0)" in injected[2]
    assert injected[3] == "answer = '42'" and "expect_wrong('00.1', 1)" in injected[4]
    assert injected[5] == "answer = 42" and "expect_last(passed=True)" in injected[6]
    assert all("check.returns_42(answer)" in source for source in injected[2::2])
    assert cells[-1]["metadata"]["tags"] == ["solution"]


def test_stubs_only_keeps_the_stub_check_and_drops_every_answer():
    cells = checks.three_ways(_notebook("answer = 0", "answer = 42"), 0, solutions=False,
                              checks_module=THIS_MODULE)["cells"]
    injected = [cell["source"] for cell in cells if "injected" in cell["metadata"]["tags"]]
    assert len(injected) == 1 and "expect_last(passed=False)" in injected[0]


def test_a_solution_with_a_cell_magic_gets_a_cell_of_its_own():
    cells = checks.three_ways(_notebook("answer = 0", "%%capture\nanswer = 42"), 0, checks_module=THIS_MODULE)["cells"]
    solved = [cell["source"].strip() for cell in cells if cell["id"].endswith("-solved-answer")]
    assert solved == ["%%capture\nanswer = 42"]


def test_an_incomplete_exercise_is_refused():
    notebook = _notebook("answer = 0", "answer = 42")
    del notebook["cells"][3]
    with pytest.raises(ValueError, match="tagged 'solution'"):
        checks.three_ways(notebook, 0, checks_module=THIS_MODULE)


def _run(tmp_path, notebook):
    import papermill

    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(checks.three_ways(notebook, 0, checks_module=THIS_MODULE)))
    return papermill.execute_notebook(str(path), str(tmp_path / "out.ipynb"), cwd=str(runner.paths.REPO_ROOT),
                                      kernel_name="python3", progress_bar=False)


def test_a_real_kernel_runs_a_good_exercise_three_ways(tmp_path):
    _run(tmp_path, _notebook("answer = 0  # TODO: the answer", "answer = 42"))


def test_a_stub_that_already_passes_fails_the_headless_run(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError, match="passes on the untouched stub"):
        _run(tmp_path, _notebook("answer = 42  # TODO", "answer = 42"))


def test_a_check_that_passes_a_wrong_answer_fails_the_headless_run(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    # A solution written so that the first wrong answer's change (42 -> 41) still passes: "4" + "2".
    with pytest.raises(PapermillExecutionError, match="does not name the mistake|PASSES wrong answer"):
        _run(tmp_path, _notebook("answer = 0", "answer = int('4' + '2')  # 42", check="check.returns_42(answer)"))


@pytest.mark.parametrize("path", runner.course_notebooks(), ids=lambda path: path.name)
def test_every_exercise_of_a_lesson_is_complete_and_its_wrong_answers_apply(path):
    notebook = json.loads(path.read_text())
    checks.exercises_of(notebook)
    checks.three_ways(notebook, runner.lesson_number(path))  # a wrong answer that changes nothing raises


@pytest.mark.parametrize("path", runner.course_notebooks(), ids=lambda path: path.name)
def test_exercises_are_numbered_in_the_order_they_appear(path):
    notebook = json.loads(path.read_text())
    lesson = runner.lesson_number(path)
    numbers = [checks.check_of("".join(notebook["cells"][check]["source"]), lesson).exercise
               for _exercise, check, _solution in checks.exercises_of(notebook)]
    assert numbers == [f"{lesson:02d}.{rank}" for rank in range(1, len(numbers) + 1)], numbers
