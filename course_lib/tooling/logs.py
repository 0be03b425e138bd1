"""Prefect's console logs, as the course shows them: a failure's traceback shortened to the line that matters.

When a task fails, Prefect logs the exception with its whole traceback, some 30-60 lines through
Prefect's own engine, in the notebook cell, the terminal and the worker's output. The course's
console formatter keeps the last line of *your* code that raised and the exception itself::

    Task run 'divide-295' - Task run failed with exception: ZeroDivisionError('float division by zero')
      File "/tmp/ipykernel_1/180.py", line 3, in divide: return a / b
    ZeroDivisionError: float division by zero

Only the console is shortened: the run's logs on the server (the UI, ``read_logs``) keep the
full traceback. :func:`install` writes a logging configuration, Prefect's own with this
formatter on the console, and points ``PREFECT_LOGGING_SETTINGS_PATH`` at it, so every process
the course starts (workers, ``python orchestrate.py``, served flows) logs the same way.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

from prefect.logging.formatters import PrefectFormatter

SETTINGS_VARIABLE = "PREFECT_LOGGING_SETTINGS_PATH"
_LIBRARY_MARKS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}lib{os.sep}python")


class ShortTracebackFormatter(PrefectFormatter):
    """Prefect's console format; an exception is shown as its last frame in your code, and its line."""

    def format(self, record) -> str:
        # Another handler (the API's) may have cached the full traceback on the record already.
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatException(self, exc_info) -> str:  # noqa: N802 - logging's API
        _kind, error, tb = exc_info
        frames = traceback.extract_tb(tb)
        yours = [frame for frame in frames if not any(mark in frame.filename for mark in _LIBRARY_MARKS)]
        frame = (yours or frames or [None])[-1]
        lines = []
        if frame is not None:
            lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}: {(frame.line or "").strip()}')
        lines.append("".join(traceback.format_exception_only(type(error), error)).rstrip())
        return "\n".join(lines)


def install(folder: Path) -> Path:
    """Write the course's logging configuration into ``folder`` and use it in this process and its children.

    Keeps a ``PREFECT_LOGGING_SETTINGS_PATH`` the learner set. Returns the configuration in use.
    """
    current = os.environ.get(SETTINGS_VARIABLE)
    if current and Path(current).name != "course-logging.yml":
        return Path(current)
    import yaml
    from prefect.logging.configuration import DEFAULT_LOGGING_SETTINGS_PATH, setup_logging

    config = yaml.safe_load(DEFAULT_LOGGING_SETTINGS_PATH.read_text())
    config["formatters"]["standard"]["()"] = f"{__name__}.ShortTracebackFormatter"
    path = Path(folder) / "course-logging.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    if os.environ.get(SETTINGS_VARIABLE) != str(path):
        os.environ[SETTINGS_VARIABLE] = str(path)
        from course_lib.services.base import _refresh_prefect_settings

        _refresh_prefect_settings()
        setup_logging(incremental=False)
    return path
