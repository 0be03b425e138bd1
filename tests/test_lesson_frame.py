"""Every lesson is a lesson: objectives and a measured time, exercises with checks, a recap, and the
Prefect calls it teaches written where the learner reads them (not hidden behind a helper)."""

import json
import re

import pytest

from course_lib import paths
from course_lib.tooling import checks, runner

NOTEBOOKS = runner.course_notebooks()

# The Prefect names each lesson teaches: each must appear in a code cell of the lesson, or in a file
# the lesson displays in full with show_file(...). A name that moves behind a course_lib helper fails.
TAUGHT = {
    "02": ["@task(", "retries=", "retry_delay_seconds=", "name=", "cache_policy", "log_prints", "get_run_logger",
           "task_run_name", "@flow", "persist_result", "return_state=True"],
    "03": ["get_client(", "read_flow_run(", "read_flow_runs(", "read_task_runs(", "FlowRunFilter", "prefect server start",
           "read_task_run_states(", "read_logs(", "LogFilter"],
    "04": ["prefect init", "prefect work-pool create", "prefect worker start", "prefect deploy", "prefect deployment run",
           "run_deployment(", ".serve(", "schedules", "cron", "prefect deploy --name", "set_working_directory",
           "read_deployment_by_name(", "prefect deployment schedule create", "--watch"],
    "05": ["AwsCredentials(", "S3Bucket(", ".save(", "S3Bucket.load(", "upload_from_path", "download_folder_to_path",
           "Variable.aset", "Secret", "prefect block", "git_clone", "git push", "prefect deploy --all", "run_deployment("],
    "06": ["create_markdown_artifact", "create_table_artifact", "create_progress_artifact", "update_progress_artifact",
           "Artifact.get", "read_artifacts(", "git push"],
    "07": ["prefect cloud login", "prefect profile create", "prefect profile use", "prefect config set",
           "prefect config view", "prefect variable set", "prefect deploy", "load_profile(", "temporary_settings(",
           "run_deployment("],
    "08": [".submit(", ".map(", "unmapped", "wait(", "as_completed", "ThreadPoolTaskRunner", "ProcessPoolTaskRunner",
           "DaskTaskRunner", "tags(", "prefect concurrency-limit create"],
    "09": ["emit_event", "read_events(", "EventFilter", "run_deployment(", "EmailServerCredentials", "email_send_message",
           ".submit(", "CustomWebhookNotificationBlock", "EventTrigger", "SendNotification",
           "prefect automation ls", "prefect automation pause", "prefect automation resume", "aupload_from_path"],
}
MIN_EXERCISES = {"01": 2, "02": 2, "03": 2, "04": 2, "05": 2, "06": 2, "07": 2, "08": 2, "09": 2, "10": 6}
OBJECTIVES = re.compile(r"You will be able to|After this lesson you can", re.I)
TEST_PLUMBING = re.compile(r"papermill|nbval|NBVAL|pytest", re.I)


def cells(path):
    return json.loads(path.read_text())["cells"]


def text(cell):
    return "".join(cell["source"])


def shown_text(path) -> str:
    """Code cells, the files the lesson displays with show_file("..."), and the shell commands it
    shows in ```bash blocks (long-running ones, like `prefect worker start`, that a service runs)."""
    code = [text(cell) for cell in cells(path) if cell["cell_type"] == "code"]
    code += [block for cell in cells(path) if cell["cell_type"] == "markdown"
             for block in re.findall(r"```(?:bash|shell|console)\n(.*?)```", text(cell), re.S)]
    shown = []
    for source in code:
        for name in re.findall(r"show_file\(\s*[\"']([^\"']+)[\"']", source):
            target = paths.REPO_ROOT / name
            if target.is_file():
                shown.append(target.read_text())
    return "\n".join(code + shown)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_a_lesson_opens_with_objectives_and_a_measured_time(path):
    opening = next(text(cell) for cell in cells(path) if cell["cell_type"] == "markdown")
    heading = OBJECTIVES.search(opening)
    assert heading, f"{path.name}: the first cell lists what the learner will be able to do"
    bullets = []
    for line in opening[heading.end():].splitlines()[1:]:
        if re.match(r"\s*([*-]|\d+\.) ", line):
            bullets.append(line)
        elif bullets and not line.startswith("  "):  # the list ends (an indented line continues a point)
            break
    assert 3 <= len(bullets) <= 5, f"{path.name}: {len(bullets)} objectives; give 3 to 5"
    # the line `runner times` rewrites from the last `make course`
    assert runner.TIME_LINE.search(opening), f"{path.name}: say how long its cells take, as runner.TIME_LINE reads it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_a_lesson_ends_with_a_recap(path):
    closing = "\n".join(text(cell) for cell in cells(path)[-5:] if cell["cell_type"] == "markdown")
    assert "## Recap" in closing, f"{path.name}: end with a '## Recap' of the key points"
    assert "Next" in closing or path == NOTEBOOKS[-1], f"{path.name}: say what comes next"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_learner_text_does_not_mention_test_plumbing(path):
    for cell in cells(path):
        if cell["cell_type"] == "markdown":
            assert not TEST_PLUMBING.search(text(cell)), f"{path.name}: {TEST_PLUMBING.search(text(cell))[0]!r} in {text(cell)[:80]!r}"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2] in MIN_EXERCISES], ids=lambda path: path.name)
def test_a_lesson_sets_exercises_with_checks_and_solutions(path):
    found = checks.exercises_of(json.loads(path.read_text()))
    assert len(found) >= MIN_EXERCISES[path.name[:2]], f"{path.name}: {len(found)} exercises"
    for _exercise, check, solution in found:
        assert "check." in text(cells(path)[check]), f"{path.name}: cell {check} must call a check"
        assert "<details>" in text(cells(path)[solution]), f"{path.name}: the solution is hidden in <details>"


def _shows(name: str, shown: str) -> bool:
    """A CLI command counts with global options before its subcommand (`prefect --profile x config set`)."""
    if name.startswith("prefect "):
        words = name.split()[1:]
        return re.search(r"\bprefect(?: --?[\w-]+(?: [\w.-]+)?)* " + r" +".join(map(re.escape, words)), shown) is not None
    return name in shown


@pytest.mark.parametrize("number", sorted(TAUGHT))
def test_a_lesson_shows_the_prefect_calls_it_teaches(number):
    path = next((p for p in NOTEBOOKS if p.name.startswith(number)), None)
    assert path is not None, f"lesson {number} is missing"
    shown = shown_text(path)
    hidden = [name for name in TAUGHT[number] if not _shows(name, shown)]
    assert not hidden, f"{path.name} does not show {hidden} in a cell or a displayed file"
