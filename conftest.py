"""Shared by the library tests (tests/) and the notebook suite (build/prepared/*.ipynb).

ONE real Prefect server serves the whole session: library tests that need it ask for the
`prefect_server` fixture, and before the first notebook cell runs it is started and exported
as PREFECT_API_URL, so every notebook's kernel inherits it and reuses it.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
# Tests write into their own working folder, never into the learner's work/.
os.environ.setdefault("COURSE_WORKDIR", str(ROOT / "build" / "test-work"))
os.environ.setdefault("COURSE_PREFECT_UI", "0")  # the server starts ~20 s sooner without the UI

_session_server = None


def session_server():
    global _session_server
    if _session_server is None:
        from course_lib.tooling import bootstrap
        from course_lib import services

        bootstrap.apply_headless_env()
        _session_server = services.PrefectServer(name="test-session")
        _session_server.start()
    return _session_server


@pytest.fixture(scope="session")
def prefect_server():
    """The session's running Prefect server (PREFECT_API_URL points at it)."""
    return session_server()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # nbval starts a notebook's kernel when its first cell is set up: the server must be up
    # and PREFECT_API_URL exported before that, so the kernel inherits it.
    if item.path.suffix == ".ipynb":
        session_server()


def pytest_sessionfinish(session, exitstatus):
    if _session_server is not None:
        _session_server.stop()
