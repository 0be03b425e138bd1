"""The bench's own arithmetic: how it splits work and counts CPU (the figures themselves are `make bench`'s)."""

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from course_lib.tooling.bench import _cpu_seconds, _task_seconds, balanced_halves
from course_lib.services.base import stop_group


def test_balanced_halves_evens_out_the_seconds():
    seconds = [2.8, 2.5, 1.8, 2.0, 1.3, 1.8, 1.2, 1.3, 0.7, 0.8, 0.9, 1.0]  # the search's trainings, deepest first
    items = list(range(len(seconds)))
    halves = balanced_halves(items, seconds)
    assert sorted(halves[0] + halves[1]) == items  # every item once
    loads = [sum(seconds[item] for item in half) for half in halves]
    alternate = [sum(seconds[0::2]), sum(seconds[1::2])]  # every other one: what it replaced
    assert max(loads) - min(loads) <= 0.1 < max(alternate) - min(alternate)


def test_balanced_halves_names_a_length_mismatch():
    with pytest.raises(ValueError, match="3 items but 2 durations"):
        balanced_halves([1, 2, 3], [1.0, 2.0])


def test_cpu_seconds_counts_a_process_and_its_children():
    busy = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\ntime.sleep(30)"
    parent = subprocess.Popen([sys.executable, "-c",  # a parent that waits while its child burns 0.6 CPU-s
                               f"import subprocess, sys; subprocess.run([sys.executable, '-c', {busy!r}])"],
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _cpu_seconds({"tree": [parent.pid]})["tree"] < 0.6:
            time.sleep(0.2)
        counted = _cpu_seconds({"tree": [parent.pid], "this process": [os.getpid()], "gone": [2 ** 22 + 1]})
        assert counted["tree"] >= 0.6  # the child's CPU is in its parent's group
        assert counted["this process"] > 0 and counted["gone"] == 0.0  # a missing pid counts nothing
    finally:
        stop_group(parent)


def test_task_seconds_finds_a_task_by_its_function_not_its_display_name():
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def run(key: str, name: str, seconds: float | None):
        return SimpleNamespace(task_key=key, name=name, start_time=start,
                               end_time=None if seconds is None else start + timedelta(seconds=seconds))

    runs = [run("publish_report-5a1b", "Publish the report-e7c", 0.25),
            run("read_data-9f0e", "read-2023-01", 1.0), run("read_data-9f0e", "read-2023-02", 1.5),
            run("train_best_model-77aa", "Train xgboost-0", None)]  # still running: not counted
    assert _task_seconds(runs, "publish_report") == 0.25
    assert _task_seconds(runs, "read_data") == 2.5
    assert _task_seconds(runs, "train_best_model") == 0.0
    assert _task_seconds(runs, "Publish the report") == 0.0  # display names are free; the key is the function
