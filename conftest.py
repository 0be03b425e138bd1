"""Shared by the tests: the library's and the lessons' (tests/test_lessons.py).

ONE real Prefect server serves the library tests of a session: those that need it ask for the
`prefect_server` fixture. The lessons run against the instructor's services instead, as in a
live class (tests/test_lessons.py).

Under pytest-xdist each worker has its own servers and working folder (see below), and the
controller runs the leak check after the last worker has finished. `make test` hands out whole
files, except tests/test_lessons.py, whose lessons go out one by one (see
pytest_collection_modifyitems).

At session end, after that server is stopped, no service of the course started by this session
may still run (a worker, an S3 endpoint, a served flow, a dask scheduler or worker, a second
Prefect server...): every process started from this session inherits COURSE_TEST_SESSION, so
they are found by that mark in their environment (read with psutil: Linux and macOS alike). Any
found is listed, stopped, and the session fails.
"""

import contextlib
import os
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent
# Tests write into their own working folder, never into the learner's work/. Under
# pytest-xdist (`make test` runs two workers) each worker gets its own: its own server database,
# lesson projects and data, so the two never touch each other's files.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_TEST_WORK = Path(os.environ.get("COURSE_TEST_WORKDIR") or os.environ.get("COURSE_WORKDIR") or ROOT / "build" / "test-work")
os.environ["COURSE_TEST_WORKDIR"] = str(_TEST_WORK)  # the workers inherit the base, not the controller's choice
os.environ["COURSE_WORKDIR"] = str(_TEST_WORK / _WORKER if _WORKER else _TEST_WORK)
# A learner's kernel has no COLUMNS, so the course's 200 applies (services.HEADLESS_ENV); an xdist
# worker inherits COLUMNS=80, which would cut the CLI's tables (`prefect block ls`) as no learner sees them.
if _WORKER:
    os.environ.pop("COLUMNS", None)
os.environ.setdefault("COURSE_PREFECT_UI", "0")  # the server starts ~20 s sooner without the UI
# Unique per session (a nested pytest run gets its own), inherited by every process it starts.
SESSION_MARK = "COURSE_TEST_SESSION"
_INHERITED_MARK = os.environ.get(SESSION_MARK)
os.environ[SESSION_MARK] = uuid.uuid4().hex


def _is_xdist_worker(config) -> bool:
    # Not PYTEST_XDIST_WORKER: a nested pytest run started by a test inherits that variable too.
    return hasattr(config, "workerinput")


def pytest_configure(config):
    # An xdist worker keeps its controller's mark: the controller checks for leaks once every
    # worker has finished (a worker's own check would see the other worker's live services).
    if _is_xdist_worker(config) and _INHERITED_MARK:
        os.environ[SESSION_MARK] = _INHERITED_MARK

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


# -- the real TLC months ----------------------------------------------------------------------
REAL_DATA_ENV = "COURSE_REAL_DATA_DIR"
REAL_MONTHS = {1: "green_tripdata_2023-01.parquet", 2: "green_tripdata_2023-02.parquet"}


def real_data_dir() -> Path:
    """Where the read-only real TLC files are: COURSE_REAL_DATA_DIR, else ../shared/data beside the repository."""
    from course_lib import settings

    return settings.read("real_data_dir") or ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def real_month_files() -> dict[int, Path]:
    """``{1: .../green_tripdata_2023-01.parquet, 2: ...-02.parquet}``; skips only when they are absent."""
    folder = real_data_dir()
    files = {month: folder / name for month, name in REAL_MONTHS.items()}
    missing = [str(path) for path in files.values() if not path.is_file()]
    from course_lib import settings

    if missing and settings.source("real_data_dir") == "environment":
        pytest.fail(f"{REAL_DATA_ENV}={os.environ[REAL_DATA_ENV]} lacks {missing}: "
                    f"point it at the folder holding {', '.join(REAL_MONTHS.values())}, or unset it")
    if missing:
        pytest.skip(f"real TLC files absent: {missing}; put them in ../shared/data beside the repository or set "
                    f"{REAL_DATA_ENV} (the synthetic tests still cover the code)")
    return files


# Seconds each file (or lesson) took in `make test` (2 workers); they only set the order.
FILE_SECONDS = {
    "test_lab_browser.py": 150, "08_scale_out.ipynb": 128, "04_deploy_local_data.ipynb": 118,
    "09_automations.ipynb": 112, "test_images.py": 110, "10_homework.ipynb": 104, "07_prefect_cloud.ipynb": 77,
    "test_s3.py": 75, "test_orphans.py": 74, "test_dask.py": 70, "test_services.py": 70, "test_instructor.py": 60,
    "test_book.py": 55, "test_features_training.py": 50, "05_s3_blocks.ipynb": 49, "02_tasks_and_flows.ipynb": 45,
    "test_remote.py": 40, "test_automations.py": 32, "03_local_server.ipynb": 25, "test_runner.py": 23,
    "06_artifacts.ipynb": 20,
}


def pytest_collection_modifyitems(config, items):
    # `make test` hands whole files (a lesson notebook is one) to two xdist workers (--dist
    # loadfile) in this order: the longest first, so the short ones fill the end and neither
    # worker idles while the other finishes a long lesson. A file's items keep their order.
    items.sort(key=lambda item: -FILE_SECONDS.get(item.path.name, 10))


# -- the lessons: each notebook of notebooks/ is a test ------------------------------------------
def pytest_collect_file(file_path, parent):
    from course_lib.tooling import runner

    if file_path.parent == runner.NOTEBOOK_DIR and file_path in runner.course_notebooks():
        return LessonFile.from_parent(parent, path=file_path)
    return None


class LessonFile(pytest.File):
    """A lesson notebook: one test, the lesson run three ways and read as a learner reads it (tests/lessons.py)."""

    def collect(self):
        yield LessonItem.from_parent(self, name="three ways")


class LessonItem(pytest.Item):
    def runtest(self):
        from tests import lessons

        problems = lessons.run_and_read(self.path)
        if problems:
            raise LessonProblems("\n".join(problems))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, (LessonProblems, AssertionError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}: three ways, then read"


class LessonProblems(Exception):
    """What a learner would trip on in an executed lesson (output budget, secrets, recorded outputs)."""


# -- leaked services ------------------------------------------------------------------------
# What a course service looks like on a command line (see course_lib/services and the lessons).
SERVICE_PATTERNS = {
    "Prefect server": ("prefect server start",),
    "Prefect worker": ("prefect worker start",),
    "S3 endpoint (moto_server)": ("moto_server",),
    "served flow": (".serve(",),
    "flow run": ("prefect.engine", "prefect flow-run execute"),
    "dask scheduler/worker": ("dask", "distributed", "multiprocessing.spawn", "multiprocessing.forkserver"),
}


def service_kind(command_line: str) -> str | None:
    """Which course service ``command_line`` runs, or None."""
    for kind, needles in SERVICE_PATTERNS.items():
        if any(needle in command_line for needle in needles):
            return kind
    return None


def leaked_services(mark: str | None = None) -> list[tuple[int, str, str]]:
    """``(pid, kind, command line)`` of every live course service carrying this session's mark."""
    mark = mark or os.environ[SESSION_MARK]
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get(SESSION_MARK) != mark or process.status() == psutil.STATUS_ZOMBIE:
                continue  # not ours; or a zombie: dead, only not reaped yet
            command = " ".join(process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # gone, or another user's
        kind = service_kind(command)
        if kind is not None:
            found.append((process.pid, kind, command))
    return found


def _stop(pids: list[int]) -> None:
    processes = []
    for pid in pids:
        try:
            processes.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=5)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def pytest_sessionfinish(session, exitstatus):
    if _session_server is not None:
        _session_server.stop()
    if "tests.lessons" in sys.modules:
        sys.modules["tests.lessons"].stop_teaching_services()
    if _is_xdist_worker(session.config):
        return  # its controller checks when every worker has finished
    # A service stopping as the session ends gets a few seconds to finish exiting.
    deadline = time.monotonic() + 5
    leaked = leaked_services()
    while leaked and time.monotonic() < deadline:
        time.sleep(0.25)
        leaked = leaked_services()
    if not leaked:
        return
    lines = [f"  pid {pid}: {kind}: {command[:200]}" for pid, kind, command in leaked]
    message = ("LEAKED SERVICES: these course processes started by this test session were still running "
               "at its end (now stopped); the lesson or test that started them must stop them:\n"
               + "\n".join(lines))
    _stop([pid for pid, _, _ in leaked])
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(message, red=True, bold=True)
    else:
        print(message, file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED

