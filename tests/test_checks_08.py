"""Lesson 08's checks: the signals they read (runs that overlap on the server's clock; trainings submitted
in the learner's source), proven on the reference search.py and on its plain-loop wrong answer."""

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from course_lib.tooling import checks, project
from course_lib.tooling.checks import lesson08

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _run(start: float, end: float, key: str = "train_best_model-1a2b"):
    return SimpleNamespace(start_time=T0 + timedelta(seconds=start), end_time=T0 + timedelta(seconds=end),
                           task_key=key)


def test_overlapping_pairs_counts_runs_under_way_at_the_same_moment():
    assert lesson08.overlapping_pairs([_run(0, 1), _run(1, 2), _run(2, 3)]) == 0  # one after the other
    assert lesson08.overlapping_pairs([_run(0, 2), _run(1, 3), _run(2.5, 4)]) == 2
    assert lesson08.overlapping_pairs([_run(0, 5), _run(1, 2), _run(3, 4)]) == 2
    assert lesson08.overlapping_pairs([_run(0, 1), SimpleNamespace(start_time=None, end_time=None)]) == 0


def test_of_task_reads_the_function_from_the_task_key():
    runs = [_run(0, 1, "train_best_model-1a2b"), _run(0, 1, "read_data-99ff"), _run(0, 1, "train_best_model_2-aa")]
    assert lesson08.of_task(runs, "train_best_model") == runs[:1]


def test_the_source_signal_tells_map_from_a_plain_loop(tmp_path):
    solved = tmp_path / "search.py"
    solved.write_text(project.reference("search.py", 8))
    assert lesson08._submits_trainings(solved)
    solved.write_text(project.reference("search.py", 7))  # the plain search: .fn in a loop
    assert not lesson08._submits_trainings(solved)
    plain_loop = checks.WRONG_ANSWERS["08.2"][0].apply(project.solution_for("search.py", 8))
    solved.write_text(plain_loop.split("\n", 1)[1])  # without the %%writefile line
    assert not lesson08._submits_trainings(solved)
    solved.write_text("def grid_search(:\n")
    assert not lesson08._submits_trainings(solved)
