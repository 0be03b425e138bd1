"""The learner's project: the reference rendered per lesson, files written without loss, fresh imports,
its git remote, and the solutions in the notebooks kept equal to the reference."""

import ast

import pytest
import yaml

from course_lib.tooling import project, runner


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_WORKDIR", str(tmp_path / "work"))
    monkeypatch.delenv(project.PROJECT_DIR_VARIABLE, raising=False)
    return project.folder()


def test_stage_marks_keep_a_line_only_in_its_lessons():
    text = "a\nb  # [02:]\nc  # [:04]\nd  # [05:06]\n"
    assert project.render(text, 1) == "a\nc\n"
    assert project.render(text, 2) == "a\nb\nc\n"
    assert project.render(text, 5) == "a\nb\nd\n"
    assert project.render(text, 7) == "a\nb\n"


def test_dropped_lines_leave_no_double_blank_line():
    assert project.render("x\n\nimport y  # [02:]\n\nz\n", 1) == "x\n\nz\n"
    assert project.render("x\n\nimport y  # [02:]\n\nz\n", 2) == "x\n\nimport y\n\nz\n"


@pytest.mark.parametrize("lesson", range(1, 11))
def test_every_reference_file_is_valid_at_every_lesson(lesson):
    for name in project.reference_files(lesson):
        text = project.reference(name, lesson)
        assert "# [" not in text, f"{name} at lesson {lesson:02d} kept a stage mark"
        if name.endswith(".py"):
            ast.parse(text, filename=name)
        else:
            assert yaml.safe_load(text)["deployments"], name


def test_the_plain_script_is_the_flow_without_prefect():
    plain, decorated = project.reference("orchestrate.py", 1), project.reference("orchestrate.py", 2)
    assert "prefect" not in plain and "@task" in decorated and "@flow" in decorated
    assert [line for line in decorated.splitlines() if "prefect" not in line and not line.lstrip().startswith(("@", "cache_policy"))
            and not line.startswith("# persist_result")] == plain.splitlines()


def test_a_file_appears_in_its_lesson_not_before():
    assert "orchestrate_s3.py" not in project.reference_files(4) and "orchestrate_s3.py" in project.reference_files(5)
    with pytest.raises(project.ProjectError, match="appears in lesson 05"):
        project.reference("orchestrate_s3.py", 4)
    with pytest.raises(project.ProjectError, match="no file 'nope.py'"):
        project.reference("nope.py", 5)


def test_writing_the_reference_keeps_the_learners_version(project_dir):
    (project_dir / "orchestrate.py").write_text("# my own version\n")
    [(name, kept)] = project.write_reference(["orchestrate.py"], 2)
    assert (project_dir / "orchestrate.py").read_text() == project.reference("orchestrate.py", 2)
    assert kept.read_text() == "# my own version\n" and project_dir not in kept.parents
    assert project.write_reference(["orchestrate.py"], 2) == [("orchestrate.py", None)]  # already the reference


def test_open_project_creates_what_is_missing_and_never_overwrites(project_dir, capsys):
    (project_dir / "orchestrate.py").write_text("# mine\n")
    project.open_project(5)
    assert (project_dir / "orchestrate.py").read_text() == "# mine\n"
    assert (project_dir / "prefect.yaml").read_text() == project.reference("prefect.yaml", 4)
    assert "created from the course's reference (lesson 04): prefect.yaml" in capsys.readouterr().out
    import os

    assert os.environ[project.PROJECT_DIR_VARIABLE] == str(project_dir)


def test_from_lesson_06_the_project_is_a_pushed_git_repository(project_dir):
    project.open_project(6, quiet=True)
    assert project.is_repository() and project.pushed("orchestrate_s3.py") == project.reference("orchestrate_s3.py", 5)
    (project_dir / "orchestrate.py").write_text(project.reference("orchestrate.py", 6))
    assert project.pushed("orchestrate.py") == project.reference("orchestrate.py", 5)  # not pushed yet
    project.commit_and_push("Add the report")
    assert project.pushed("orchestrate.py") == project.reference("orchestrate.py", 6)
    assert project.project_summary()["last commit"].endswith("Add the report")


def test_load_module_imports_the_file_as_it_is_now(project_dir):
    (project_dir / "orchestrate.py").write_text("VALUE = 1\n")
    (project_dir / "other.py").write_text("from orchestrate import VALUE\n")
    assert project.load_module("other").VALUE == 1
    (project_dir / "orchestrate.py").write_text("VALUE = 2\n")
    assert project.load_module("orchestrate").VALUE == 2
    assert project.load_module("other").VALUE == 2  # not the older import of orchestrate
    with pytest.raises(project.ProjectError, match="does not exist"):
        project.load_module("missing")


def test_the_notebooks_project_solutions_are_the_reference():
    stale = project.sync_solutions(runner.course_notebooks(), write=False)
    assert not stale, f"run `python -m course_lib.tooling.project sync`: {stale}"


def test_sync_rewrites_a_stale_solution(tmp_path):
    import json

    path = tmp_path / "02_x.ipynb"
    fence = "```python\n%%writefile {project}/orchestrate.py\nold text\n```"
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "id": "s", "metadata": {"tags": ["solution"]},
                                           "source": f"<details><summary>Solution</summary>\n\n{fence}\n\n</details>"}],
                                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert project.sync_solutions([path]) == ["02_x.ipynb: orchestrate.py"]
    assert project.solution_for("orchestrate.py", 2) in json.loads(path.read_text())["cells"][0]["source"]
    assert project.sync_solutions([path]) == []


def _project_stubs():
    """(notebook, lesson, file, body) of every exercise stub that writes a project file."""
    import json

    found = []
    for path in runner.course_notebooks():
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            match = project.WRITEFILE.match(source)
            if match and "exercise" in cell.get("metadata", {}).get("tags", []):
                found.append((path.name, runner.lesson_number(path), match["name"], source[match.end():]))
    return found


def without_todos(text: str) -> str:
    """The stub as the learner's file was before the exercise: TODO comment lines and trailing TODOs removed."""
    import re

    lines = [line for line in text.splitlines() if not line.strip().startswith("# TODO")]
    return "\n".join(re.sub(r"\s+# TODO.*$", "", line) for line in lines).strip("\n") + "\n"


def starting_text(name: str, lesson: int) -> str:
    """The file as the learner has it when lesson ``lesson``'s exercise starts: the previous lesson's reference;
    in the file's first lesson, where no earlier lesson left one, the reference rendered for the lesson before
    (its lines without a stage mark: for prefect.yaml, the file `prefect init` writes, trimmed)."""
    if lesson > project.FIRST_LESSON.get(name, 0):
        return project.reference(name, lesson - 1)
    unmarked = project.render((project.REFERENCE / name).read_text(), lesson - 1)
    # A file without lines marked for its first lesson did not exist before it: its stub holds only TODO comments.
    return unmarked if unmarked != project.reference(name, lesson) else "\n"


@pytest.mark.parametrize("notebook, lesson, name, body", _project_stubs(), ids=lambda value: str(value)[:30])
def test_a_project_stub_is_the_previous_lessons_file_plus_todos(notebook, lesson, name, body):
    assert "# TODO" in body, f"{notebook}: the stub of {name} says nowhere what to do"
    assert without_todos(body) == starting_text(name, lesson), \
        f"{notebook}: the stub of {name}, without its TODO comments, must be the file as lesson {lesson - 1:02d} left it"


def test_a_files_first_stub_starts_from_its_unmarked_lines():
    start = starting_text("prefect.yaml", project.FIRST_LESSON["prefect.yaml"])
    assert "deployments:" in start and "taxi_local_data" not in start and "set_working_directory" not in start
    assert yaml.safe_load(start)["deployments"] is None  # valid YAML, no deployment yet: the exercise writes it


def test_load_module_is_not_shadowed_by_another_folders_orchestrate(tmp_path):
    # A test (or a learner's earlier kernel) imported orchestrate.py from some other folder.
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, value in [(first, 1), (second, 2)]:
        folder.mkdir()
        (folder / "orchestrate.py").write_text(f"VALUE = {value}\n")
        (folder / "other.py").write_text("from orchestrate import VALUE\n")
    assert project.load_module("orchestrate", first).VALUE == 1
    assert project.load_module("other", second).VALUE == 2  # second's own orchestrate.py


def test_the_reference_module_is_the_reference_as_the_course_leaves_it(project_dir):
    orchestrate = project.reference_module("orchestrate")
    assert hasattr(orchestrate, "publish_report")  # lesson 06's report is in the final stage
    assert orchestrate.main_flow.name == "main-flow"  # a Prefect flow, not the plain lesson-01 function
    assert not hasattr(project.reference_module("orchestrate", lesson=2), "publish_report")
    search = project.reference_module("search")  # imports orchestrate from the same folder
    assert search.grid_search.name == "grid-search"
    folder = project.reference_folder()
    assert (folder / "prefect.yaml").read_text() == project.reference("prefect.yaml", project.LAST_LESSON)
