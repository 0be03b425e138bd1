"""Exercises: a learner's TODO, a check that inspects what they really built, a hidden solution.

A lesson sets an exercise as three cells, in this order:

1. a code cell tagged ``exercise``: a runnable stub with ``TODO`` comments;
2. a code cell tagged ``check``: one call to a check of this package, e.g.
   ``check.decorated_pipeline()`` after ``from course_lib.tooling.checks import lesson02 as check``;
3. a markdown cell tagged ``solution``: the solution in a collapsed ``<details>`` block with
   one ```` ```python ```` fence (revealed with a click; never run by "Run All").

A check never raises: it inspects the learner's project files, flow objects, the server's
deployments, the bucket or the artifact, and *shows* a green ✓ or a red ✗ with a hint that names
what is wrong and how to fix it, so "Run All" still reaches the end of the lesson.

**Three ways.** Headless runs (``make course``, the lesson tests) execute every exercise three
ways in one kernel (:func:`three_ways`): the stub as committed, whose check must fail with a
hint; each of the exercise's *wrong answers* (:class:`Wrong`: the solution with one plausible
mistake, declared with the check), whose check must fail with a hint about that mistake; then the
solution, whose check must pass. A check that crashes (an error it did not turn into a hint) fails
a headless run: to the learner it still shows as "could not inspect your work", never as a
traceback.

**Catch-up.** Exercises that change the learner's project (see :mod:`course_lib.tooling.project`)
are listed in their lesson's ``catch_up()`` (:func:`catch_up`): after them, one call writes the
reference version of whatever still fails its check, so nobody is stuck for the next lessons.
"""

from __future__ import annotations

import functools
import html
import importlib
import re
import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["CheckResult", "NotYet", "ExerciseError", "Wrong", "exercise", "expect_last", "expect_wrong",
           "last_result", "solution_code", "three_ways", "CatchUp", "catch_up", "retry_delays", "normalise_cron"]


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
    crashed: bool = False  # the check raised something other than NotYet: a defect of the check
    at: float = field(default_factory=time.time)

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


@dataclass(frozen=True)
class Wrong:
    """A plausible wrong answer to an exercise, for the headless runs (the learner never sees it).

    ``change=(old, new)`` replaces the first ``old`` in the solution's code by ``new`` (the solution
    with one mistake); ``code`` is a whole other answer instead. The check must fail on it, and its
    hint must contain ``hint``: the words that name *this* mistake.
    """

    hint: str
    change: tuple[str, str] | None = None
    code: str | None = None

    def apply(self, solution: str) -> str:
        if self.code is not None:
            return self.code
        old, new = self.change
        if old not in solution:
            raise ExerciseError(f"a wrong answer changes {old!r}, which is not in the solution:\n{solution[:400]}")
        return solution.replace(old, new, 1)


#: exercise number -> its wrong answers (filled by @exercise)
WRONG_ANSWERS: dict[str, list[Wrong]] = {}


def exercise(number: str, title: str, wrong: tuple[Wrong, ...] | list[Wrong] = ()):
    """Make a check out of a function that raises :class:`NotYet` (the hint) or returns what passed.

    Any other exception inside the check (a learner's object of the wrong kind that the check did
    not foresee, a server that does not answer) is shown to the learner as "could not inspect your
    work" with the error, never as a traceback; the result is marked ``crashed`` and a headless run
    fails on it. ``wrong`` lists the exercise's plausible wrong answers (:class:`Wrong`).
    """
    if not re.fullmatch(r"\d\d\.\d+", number):
        raise ValueError(f"exercise numbers are 'NN.k' (lesson, then the exercise's rank): got {number!r}")
    WRONG_ANSWERS[number] = list(wrong)

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
                                     "Run the exercise cell again, then this one.", crashed=True)
            _LAST.append(result)
            return result

        run.exercise = number
        run.title = title
        return run

    return decorate


def expect_last(passed: bool) -> CheckResult:
    """For headless runs: the check that just ran failed with a hint (``passed=False``) or passed."""
    result = last_result()
    if result is None:
        raise ExerciseError("No check ran before expect_last(): the check cell must call a check.")
    if result.crashed:
        raise ExerciseError(f"Exercise {result.exercise} ({result.title}): the check crashed instead of giving a "
                            f"hint:\n{result.message}")
    if passed and not result.passed:
        raise ExerciseError(f"Exercise {result.exercise} ({result.title}): its solution does not pass "
                            f"the check:\n{result.message}")
    if not passed and result.passed:
        raise ExerciseError(f"Exercise {result.exercise} ({result.title}): the check passes on the untouched "
                            "stub, so it checks nothing the learner does.")
    if not passed and len(result.message.strip()) < 20:
        raise ExerciseError(f"Exercise {result.exercise}: the failing check gives no useful hint: {result.message!r}")
    return result


def expect_wrong(number: str, index: int) -> CheckResult:
    """For headless runs: wrong answer ``index`` of exercise ``number`` failed with the hint it should."""
    wrong = WRONG_ANSWERS[number][index]
    result = last_result()
    if result is None or result.exercise != number:
        raise ExerciseError(f"Exercise {number}: no check of it ran after wrong answer {index + 1}.")
    if result.crashed:
        raise ExerciseError(f"Exercise {number}: the check crashed on wrong answer {index + 1} instead of giving a "
                            f"hint:\n{result.message}")
    if result.passed:
        raise ExerciseError(f"Exercise {number} ({result.title}): the check PASSES wrong answer {index + 1} "
                            f"(its hint should say {wrong.hint!r}):\n{result.message}")
    if wrong.hint.lower() not in result.message.lower():
        raise ExerciseError(f"Exercise {number}: wrong answer {index + 1} fails, but its hint does not name the "
                            f"mistake (expected it to say {wrong.hint!r}):\n{result.message}")
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


_CHECK_CALL = re.compile(r"\bcheck\.(\w+)\(")


def check_of(check_source: str, lesson: int, module=None):
    """The check function a check cell calls (``check.NAME(...)`` of ``checks.lessonNN``, or of ``module``)."""
    found = _CHECK_CALL.search(check_source)
    if not found:
        raise ValueError(f"a check cell calls one check of the lesson's module, as check.NAME(...): {check_source!r}")
    module = module or importlib.import_module(f"course_lib.tooling.checks.lesson{lesson:02d}")
    check = getattr(module, found[1], None)
    if check is None or not hasattr(check, "exercise"):
        raise ValueError(f"{module.__name__} has no check {found[1]!r}")
    return check


def _run_then_check(code: str, check_source: str, expect: str, prefix: str) -> list[dict]:
    """The cells that run ``code`` (a cell of its own: it may start with a cell magic) then the check."""
    return [_code_cell(code, f"{prefix}-answer"),
            _code_cell(f"{check_source}\nfrom course_lib.tooling import checks as _checks\n{expect}", f"{prefix}-check")]


def three_ways(notebook: dict, lesson: int, solutions: bool = True, checks_module=None) -> dict:
    """The notebook with each exercise run three ways after its check (for headless runs).

    After each check cell: a cell asserting that the check failed on the stub with a hint; for each
    wrong answer of the exercise, its code and the check again, asserting a failure with the hint
    that names the mistake; then the solution and the check, asserting it passed. With
    ``solutions=False`` only the first assertion is added: the learner who runs the stubs and the
    catch-up calls (``runner run --stubs-only``). ``checks_module`` stands in for the lesson's
    ``course_lib.tooling.checks.lessonNN`` (the tests use their own).
    """
    cells = notebook["cells"]
    plan = exercises_of(notebook)
    out = []
    after_check = {check: solution for _exercise, check, solution in plan}
    for index, cell in enumerate(cells):
        out.append(cell)
        if index not in after_check:
            continue
        check_source = "".join(cell["source"]).strip()
        prefix = f"{cell.get('id', index)}"
        out.append(_code_cell("from course_lib.tooling import checks as _checks\n"
                              "_checks.expect_last(passed=False)", f"{prefix}-stub"))
        if not solutions:
            continue
        solution = solution_code("".join(cells[after_check[index]]["source"]))
        number = check_of(check_source, lesson, checks_module).exercise
        for rank, wrong in enumerate(WRONG_ANSWERS[number]):
            out += _run_then_check(wrong.apply(solution), check_source,
                                   f"_checks.expect_wrong({number!r}, {rank})", f"{prefix}-wrong{rank + 1}")
        out += _run_then_check(solution, check_source, "_checks.expect_last(passed=True)", f"{prefix}-solved")
    return {**notebook, "cells": out}


# -- what several lessons check the same way ----------------------------------------------------
def retry_delays(task) -> list[float]:
    """The delay before each retry of a Prefect task, in seconds, as Prefect applies them.

    ``retries=3, retry_delay_seconds=2`` and ``retry_delay_seconds=[2, 2, 2]`` are the same; a list
    shorter than ``retries`` repeats its last delay (Prefect's rule).
    """
    retries = task.retries or 0
    delays = task.retry_delay_seconds
    if not delays:
        return [0.0] * retries
    if isinstance(delays, (int, float)):
        return [float(delays)] * retries
    delays = list(delays)
    return [float(delays[min(attempt, len(delays) - 1)]) for attempt in range(retries)]


def normalise_cron(expression: str) -> list[str]:
    """The five fields of a cron expression with leading zeros dropped ("00 09 03 * *" -> "0 9 3 * *").

    The same schedule written either way is accepted everywhere; anything else is compared as written.
    """
    return [str(int(field)) if field.isdigit() else field for field in str(expression).split()]


# -- catch-up ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CatchUp:
    """One project exercise of a lesson, for :func:`catch_up`.

    ``check`` takes no arguments (it reads the learner's project); ``files`` are the project files
    whose reference version is written when it fails; ``then`` does what else the reference
    needs (commit and push, deploy) and returns a line saying what it did.
    """

    check: Callable[[], CheckResult]
    files: tuple[str, ...] = ()
    then: Callable[[], str] | None = None


@dataclass
class CatchUpReport:
    lesson: int
    rows: list[tuple[str, str]]

    def __repr__(self) -> str:
        lines = [f"Catch-up, lesson {self.lesson:02d}:"] + [f"  {exercise}: {done}" for exercise, done in self.rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        items = "".join(f"<li><b>{html.escape(exercise)}</b>: {html.escape(done)}</li>" for exercise, done in self.rows)
        return f"<div><b>Catch-up, lesson {self.lesson:02d}</b><ul>{items}</ul></div>"


class CatchUpError(RuntimeError):
    """The reference version does not pass its own check: a defect of the course, not the learner's."""


def _current(step: CatchUp, params: dict) -> CheckResult:
    """The exercise's last result in this kernel if it is newer than the files it judges, else a fresh one."""
    from course_lib.tooling import project

    number = step.check.exercise
    last = next((result for result in reversed(_LAST) if result.exercise == number), None)
    newest_file = max([(project.folder() / name).stat().st_mtime for name in step.files
                       if (project.folder() / name).exists()] or [0])
    if last is not None and not last.crashed and last.at > newest_file:
        return last
    return step.check(**params)


def catch_up(lesson: int, steps: list[CatchUp], **params) -> CatchUpReport:
    """Bring the learner's project to the reference of ``lesson`` where their work fails its check.

    For each step: the exercise's check (the last result, or a fresh run when the files changed
    since); if it fails, the reference version of its files is written (the learner's kept in
    ``work/my-project-replaced/``) and ``then`` runs; the check must pass afterwards. ``params``
    (the lesson's parameters: data source, boosting rounds) go to every check.
    """
    from course_lib.tooling import project

    rows = []
    for step in steps:
        number = f"Exercise {step.check.exercise}"
        if _current(step, params).passed:
            rows.append((number, "your work passes its check: kept as it is"))
            continue
        written = project.write_reference(list(step.files), lesson)
        done = [f"wrote the reference {name}" + (f" (yours is kept in {kept})" if kept else "")
                for name, kept in written]
        if step.then is not None:
            done.append(step.then())
        after = step.check(**params)
        if not after.passed:
            raise CatchUpError(f"{number}: the reference version does not pass the check: {after.message}")
        rows.append((number, "; ".join(done) or "nothing to write"))
    return CatchUpReport(lesson, rows)
