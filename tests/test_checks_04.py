"""Exercise 04.2's check reads the learner's prefect.yaml (no server needed): each plausible mistake
gets its own hint, the reference passes, and catch-up writes the reference over a failing file."""

import pytest

from course_lib import paths
from course_lib.tooling import checks, project
from course_lib.tooling.checks import lesson04


@pytest.fixture
def their_project(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_WORKDIR", str(tmp_path / "work"))
    folder = project.folder()
    monkeypatch.setenv(project.PROJECT_DIR_VARIABLE, str(folder))  # as open_project() does
    monkeypatch.setenv("COURSE_REPO_ROOT", str(paths.REPO_ROOT))  # as setup_course() does
    (folder / "orchestrate.py").write_text(project.reference("orchestrate.py", 3))
    return folder


def write(folder, text):
    (folder / "prefect.yaml").write_text(text)


def test_the_reference_passes(their_project):
    write(their_project, project.reference("prefect.yaml", 4))
    result = lesson04.deployment_file()
    assert result.passed and str(their_project) in result.message, result.message


@pytest.mark.parametrize("rank", range(len(checks.WRONG_ANSWERS["04.2"])))
def test_each_wrong_answer_gets_its_hint(their_project, rank):
    wrong = checks.WRONG_ANSWERS["04.2"][rank]
    solution = project.solution_for("prefect.yaml", 4)
    write(their_project, wrong.apply(solution).split("\n", 1)[1])  # the file the %%writefile cell writes
    result = lesson04.deployment_file()
    assert not result.passed and not result.crashed, result.message
    assert wrong.hint.lower() in result.message.lower(), result.message


@pytest.mark.parametrize("text, hint", [
    ("name: my-project\npull:\ndeployments:\n", "no deployment under"),
    ("deployments:\n- name: taxi_local_data\n  entrypoint: orchestrate.py:main_flow\n  parameters:\n"
     "    train_path: '2023-01'\n  work_pool:\n    name: local-pool\n", "does not take"),
    ("pull:\n- prefect.projects.steps.set_working_directory:\n    directory: '{{ $MY_PROJECT_DIR }}'\n"
     "deployments:\n- name: taxi_local_data\n  entrypoint: orchestrate.py:main_flow\n  parameters:\n"
     "    train_month: '2023-01'\n    val_month: '2023-02'\n  work_pool:\n    name: local-pool\n", "Prefect 2"),
    ("deployments:\n- name: taxi_local_data\n  entrypoint: orchestrate.py:main_flow\n  parameters:\n"
     "    train_month: '2023-01'\n    val_month: '2023-02'\n  work_pool:\n    name: local-pool\n", "no pull step"),
    ("deployments: [oops\n", "not valid YAML"),
])
def test_other_mistakes_get_a_hint_not_a_crash(their_project, text, hint):
    write(their_project, text)
    result = lesson04.deployment_file()
    assert not result.passed and not result.crashed and hint.lower() in result.message.lower(), result.message


def test_catch_up_writes_the_reference_over_a_failing_file_and_keeps_it(their_project):
    write(their_project, "name: mine\n")
    report = lesson04.catch_up()
    assert (their_project / "prefect.yaml").read_text() == project.reference("prefect.yaml", 4)
    assert "wrote the reference prefect.yaml" in repr(report)
    kept = list(project.replaced_dir().rglob("prefect.yaml"))
    assert [path.read_text() for path in kept] == ["name: mine\n"]
