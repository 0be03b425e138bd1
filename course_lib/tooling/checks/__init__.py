"""Exercises: a learner's TODO, a check that inspects what they really built, a hidden solution.

A lesson sets an exercise as three cells, in this order:

1. a code cell tagged ``exercise``: a runnable stub with ``TODO`` comments;
2. a code cell tagged ``check``: one call to a check of this package, e.g.
   ``check.task_with_retries(read_month)`` after ``from course_lib.tooling.checks import lesson02 as check``;
3. a markdown cell tagged ``solution``: the solution in a collapsed ``<details>`` block with
   one ```` ```python ```` fence (revealed with a click; never run by "Run All").

A check never raises: it inspects the learner's flow object, the server's deployments, the
bucket or the artifact, and *shows* a green ✓ or a red ✗ with a hint that names what is wrong
and how to fix it, so "Run All" still reaches the end of the lesson. Later cells never depend
on an exercise's result.

Headless runs (``make course``, the notebook tests) execute every exercise **both ways** in one
kernel (:func:`both_ways`): the stub as committed, then its check, which must fail with a hint;
then the solution, then the check again, which must pass.
"""

from __future__ import annotations

import functools
import html
import re
from dataclasses import dataclass

__all__ = ["CheckResult", "NotYet", "ExerciseError", "exercise", "expect_last", "last_result",
           "solution_code", "both_ways"]


class NotYet(Exception):
    """Raised inside a check: the learner's work is not there yet; the message is the hint."""


class ExerciseError(AssertionError):
    """A headless run found an exercise that does not behave: a stub that passes, a solution that fails."""


@dataclass(frozen=True)
class CheckResult:
    exercise: str
    title: str
    passed: bool
    message: str

    def __repr__(self) -> str:
        mark = "✓" if self.passed else "✗ not yet"
        return f"{mark} — Exercise {self.exercise}: {self.title}\n{self.message}"

    def _repr_html_(self) -> str:
        colour, mark = ("#1a7f37", "✓") if self.passed else ("#cf222e", "✗ not yet")
        return (f'<div style="border-left:4px solid {colour};padding:4px 10px">'
                f'<b style="color:{colour}">{mark}</b> — <b>Exercise {html.escape(self.exercise)}</b>: '
                f'{html.escape(self.title)}<br>{html.escape(self.message)}</div>')


_LAST: list[CheckResult] = []


def last_result() -> CheckResult | None:
    """The result of the check that ran last in this kernel (None before any)."""
    return _LAST[-1] if _LAST else None


def exercise(number: str, title: str):
    """Make a check out of a function that raises :class:`NotYet` (the hint) or returns what passed.

    Any other exception inside the check (a learner's object of the wrong kind, a server that
    does not know a name) is a "not yet" too, with the error in the hint: a check never crashes.
    """

    def decorate(check):
        @functools.wraps(check)
        def run(*args, **kwargs) -> CheckResult:
            try:
                result = CheckResult(number, title, True, check(*args, **kwargs) or "Well done.")
            except NotYet as hint:
                result = CheckResult(number, title, False, str(hint))
            except Exception as error:  # noqa: BLE001 - shown to the learner as a hint
                result = CheckResult(number, title, False,
                                     f"The check could not inspect your work ({type(error).__name__}: {error}). "
                                     "Run the exercise cell again, then this one.")
            _LAST.append(result)
            return result

        run.exercise = number
        return run

    return decorate


def expect_last(passed: bool) -> CheckResult:
    """For headless runs: the check that just ran failed with a hint (``passed=False``) or passed."""
    result = last_result()
    if result is None:
        raise ExerciseError("No check ran before expect_last(): the check cell must call a check.")
    if passed and not result.passed:
        raise ExerciseError(f"Exercise {result.exercise} ({result.title}): its solution does not pass "
                            f"the check:\n{result.message}")
    if not passed and result.passed:
        raise ExerciseError(f"Exercise {result.exercise} ({result.title}): the check passes on the untouched "
                            "stub, so it checks nothing the learner does.")
    if not passed and len(result.message.strip()) < 20:
        raise ExerciseError(f"Exercise {result.exercise}: the failing check gives no useful hint: {result.message!r}")
    return result


_SOLUTION = re.compile(r"```python\n(.*?)```", re.S)


def solution_code(markdown: str) -> str:
    """The code of a solution cell (its one python fence)."""
    found = _SOLUTION.findall(markdown)
    if len(found) != 1:
        raise ValueError(f"a solution cell needs exactly one ```python fence, found {len(found)}:\n{markdown[:200]}")
    return found[0]


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def exercises_of(notebook: dict) -> list[tuple[int, int, int]]:
    """(exercise, check, solution) cell indices, in order; raises when an exercise is incomplete."""
    cells = notebook["cells"]
    found = []
    for index, cell in enumerate(cells):
        if "exercise" not in _tags(cell):
            continue
        check = next((i for i in range(index + 1, len(cells)) if "check" in _tags(cells[i])), None)
        solution = next((i for i in range(index + 1, len(cells)) if "solution" in _tags(cells[i])), None)
        following = next((i for i in range(index + 1, len(cells)) if "exercise" in _tags(cells[i])), len(cells))
        if cell["cell_type"] != "code" or check is None or solution is None or not index < check < solution < following:
            raise ValueError(f"cell {index}: an exercise is a code cell tagged 'exercise', then a code cell tagged "
                             "'check', then a markdown cell tagged 'solution', before the next exercise")
        solution_code("".join(cells[solution]["source"]))
        found.append((index, check, solution))
    return found


def _code_cell(source: str, cell_id: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "id": cell_id, "metadata": {"tags": ["injected"]},
            "outputs": [], "source": source}


def both_ways(notebook: dict) -> dict:
    """The notebook with each exercise run unsolved, then solved (for headless runs).

    After each check cell: a cell that asserts the check failed with a hint, then a cell with the
    solution, the check again and an assert that it passed.
    """
    cells = notebook["cells"]
    plan = exercises_of(notebook)
    out = []
    after_check = {check: (exercise, solution) for exercise, check, solution in plan}
    for index, cell in enumerate(cells):
        out.append(cell)
        if index in after_check:
            _exercise, solution = after_check[index]
            check_source = "".join(cell["source"]).strip()
            prefix = f"{cell.get('id', index)}"
            out.append(_code_cell("from course_lib.tooling import checks as _checks\n"
                                  "_checks.expect_last(passed=False)", f"{prefix}-unsolved"))
            out.append(_code_cell(solution_code("".join(cells[solution]["source"])) + "\n"
                                  + check_source + "\n_checks.expect_last(passed=True)", f"{prefix}-solved"))
    return {**notebook, "cells": out}
