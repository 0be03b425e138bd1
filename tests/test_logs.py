"""The console shows a failure as the line of your code that raised, not Prefect's whole stack."""

import logging
import sys

from course_lib.tooling import logs


def _record_of_a_failure() -> logging.LogRecord:
    def divide(a, b):
        return a / b

    try:
        divide(1, 0)
    except ZeroDivisionError:
        return logging.LogRecord("prefect.task_runs", logging.ERROR, __file__, 1, "Task run failed", None,
                                 sys.exc_info())


def test_the_console_keeps_the_raising_line_and_the_error_only():
    record = _record_of_a_failure()
    record.task_run_name = "divide-123"
    record.exc_text = "Traceback (most recent call last):\n  ... 40 lines cached by another handler ..."
    text = logs.ShortTracebackFormatter(format="%(message)s", task_run_fmt="Task run %(task_run_name)r - %(message)s").format(record)
    lines = text.splitlines()
    assert lines[0] == "Task run 'divide-123' - Task run failed"
    assert lines[1].endswith("in divide: return a / b") and "test_logs.py" in lines[1]
    assert lines[2] == "ZeroDivisionError: division by zero" and len(lines) == 3
    assert record.exc_text.startswith("Traceback")  # what another handler cached is left for it


def test_install_points_prefect_at_the_course_configuration(tmp_path, monkeypatch):
    import yaml

    monkeypatch.delenv(logs.SETTINGS_VARIABLE, raising=False)
    path = logs.install(tmp_path)
    assert path == tmp_path / "course-logging.yml"
    config = yaml.safe_load(path.read_text())
    assert config["formatters"]["standard"]["()"].endswith("ShortTracebackFormatter")
    import os

    assert os.environ[logs.SETTINGS_VARIABLE] == str(path)
    monkeypatch.setenv(logs.SETTINGS_VARIABLE, str(tmp_path / "mine.yml"))
    assert logs.install(tmp_path) == tmp_path / "mine.yml"  # a learner's own configuration is kept
