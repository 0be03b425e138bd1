"""Every lesson, executed headless as a learner's JupyterLab kernel runs it while an instructor keeps
`make services` up, its exercises three ways; then read as a learner reads it.

`pytest tests notebooks` collects each lesson notebook as one test (conftest.py: LessonFile), so
`make test` hands lessons to its xdist workers one by one, as it hands out test files.

Each xdist worker starts the instructor's services once (`python -m course_lib.tooling.instructor
services`: the Prefect server, a worker for `local-pool`, the S3 endpoint) on free
ports in its own working folder. A lesson's kernel gets no `PREFECT_API_URL`, only the learners'
port (`COURSE_LEARNER_PORT`, 4200 for real learners), so it finds that server and reuses it, as in
a live class, and a run it sends to `local-pool` may be picked up by the instructor's worker or by
the lesson's own: it must pass either way.

The environment also holds canary secrets (an AWS key pair used through the local S3 endpoint, a
git token, an SMTP password): no executed lesson may show any of them. After the run, each lesson
is read as a learner reads it: the output budget (course_lib.tooling.hygiene), no canary, and the
cells tagged `nbval-check-output` print what tests/notebook_outputs.json recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from course_lib import paths
from course_lib.services import base
from course_lib.tooling import hygiene, project, runner

SERVICES_START_TIMEOUT = 300
# Canaries: values that must never appear in what a lesson shows. The AWS pair makes lesson 05 run
# in "AWS keys" mode, against the local S3 endpoint (AWS_ENDPOINT_URL_S3, as for any S3-compatible store).
CANARY_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIACANARY7Q3ZB2XK9W",
    "AWS_SECRET_ACCESS_KEY": "canary-secret-7f4e2d9c1b0a8e6f5d4c3b2a19087f6e",
    "COURSE_GIT_ACCESS_TOKEN": "ghp_canaryTOKEN0123456789abcdefghijklmn",
}


def _wait_for_services(process: subprocess.Popen, log_path, timeout: float) -> dict:
    from course_lib.tooling import instructor

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`instructor services` exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            record = json.loads(instructor.services_record_path().read_text())
            if record.get("pid") == process.pid:
                return record["services"]
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"`instructor services` was not up after {timeout} s:\n{log_path.read_text()[-3000:]}")


_SERVICES: dict = {}


def teaching_workdir() -> Path:
    """The working folder of the instructor's services and the lessons' kernels: the worker's own,
    apart from the session server's (each server records itself in its working folder, and the
    tests of `python -m course_lib env` expect to find the session's there)."""
    return Path(os.environ["COURSE_WORKDIR"]) / "teaching"


def teaching_services() -> dict:
    """`make services` for this worker, started on first use: its services' URLs and the learners'
    port to find the server. :func:`stop_teaching_services` stops it (at the session's end)."""
    if _SERVICES:
        return _SERVICES
    ports = {"COURSE_LEARNER_PORT": base.free_port(), "COURSE_S3_PORT": base.free_port()}
    env = {**os.environ, **{key: str(value) for key, value in ports.items()}, "COURSE_WORKDIR": str(teaching_workdir())}
    env.pop("PREFECT_API_URL", None)
    log_path = paths.subdir("logs") / "teaching-services.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "course_lib.tooling.instructor", "services"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _SERVICES["process"] = process
    try:
        with base.temporary_env({"COURSE_WORKDIR": str(teaching_workdir())}):  # where it records itself
            urls = _wait_for_services(process, log_path, SERVICES_START_TIMEOUT)
        _create_canary_bucket(urls["s3"])
    except BaseException:
        stop_teaching_services()
        raise
    _SERVICES.update(ports=ports, **urls)
    return _SERVICES


def stop_teaching_services() -> None:
    process = _SERVICES.pop("process", None)
    _SERVICES.clear()
    if process is None:
        return
    process.terminate()  # SIGTERM: `make services` stops everything it started, as on Ctrl-C
    try:
        process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _create_canary_bucket(endpoint_url: str) -> None:
    """In AWS-key mode the course only checks that the learner's bucket exists: create it, as a learner would."""
    import boto3

    from course_lib.services import s3

    client = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1",
                          aws_access_key_id=CANARY_ENV["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=CANARY_ENV["AWS_SECRET_ACCESS_KEY"])
    client.create_bucket(Bucket=s3.DEFAULT_BUCKET)


def _recorded_output_problems(executed: dict, name: str) -> list[str]:
    expected = json.loads(runner.EXPECTED_OUTPUTS.read_text()).get(name, {})
    cells = {cell.get("id"): cell for cell in executed["cells"]}
    problems = []
    for cell_id, outputs in expected.items():
        printed = hygiene.output_text(cells[cell_id]) if cell_id in cells else None
        recorded = hygiene.output_text({"outputs": outputs})
        if printed != recorded:
            problems.append(f"{name} cell {cell_id}: printed {printed!r}, recorded {recorded!r} "
                            "(if the change is right: python -m course_lib.tooling.runner record-outputs)")
    return problems


def _arrive_from_the_previous_lesson() -> None:
    """No project yet: the lesson's open_project writes it as the previous lessons' solutions left it.

    A worker runs whichever lessons xdist hands it, in any order: the project one of them left
    behind is not what a learner arriving at the next lesson has.
    """
    for folder in (project.folder(), project.remote_dir(), project.replaced_dir()):
        shutil.rmtree(folder, ignore_errors=True)


def run_and_read(lesson) -> list[str]:
    """Run ``lesson`` three ways under the teaching services; the problems a learner would see (empty: none).

    A failing cell raises ``AssertionError`` with the runner's account of it.
    """
    services = teaching_services()
    out_dir = paths.subdir("executed")
    kernel_env = {"PREFECT_API_URL": None, **{key: str(value) for key, value in services["ports"].items()},
                  "AWS_ENDPOINT_URL_S3": services["s3"], "COURSE_WORKDIR": str(teaching_workdir()),
                  "MY_PROJECT_DIR": None, **CANARY_ENV}
    with base.temporary_env(kernel_env):
        _arrive_from_the_previous_lesson()
        run = runner.execute(lesson, out_dir, quick=True)
    if run.status != "ok":
        raise AssertionError(f"{lesson.name} failed ({out_dir / lesson.name}):\n{run.error}")
    executed = json.loads((out_dir / lesson.name).read_text())
    problems = hygiene.budget_problems(executed, lesson.name)
    problems += hygiene.secrets_found(executed, {f"the canary {key}": value for key, value in CANARY_ENV.items()},
                                      lesson.name)
    problems += _recorded_output_problems(executed, lesson.name)
    return problems
