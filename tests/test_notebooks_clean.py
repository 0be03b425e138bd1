"""Committed notebooks are clean sources: no outputs, no execution counts, thin, parameterised."""

import ast
import json

import pytest

from course_lib.tooling import runner

NOTEBOOKS = runner.course_notebooks()


def code_cells(path):
    return [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]


def test_the_lessons_are_numbered_in_order():
    numbers = [int(path.name[:2]) for path in NOTEBOOKS]
    assert numbers == list(range(len(numbers))), [path.name for path in NOTEBOOKS]
    assert len(numbers) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_no_outputs_or_execution_counts(path):
    dirty = [i for i, cell in enumerate(code_cells(path)) if cell["outputs"] or cell["execution_count"]]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_one_parameters_cell(path):
    tagged = [cell for cell in code_cells(path) if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    assert runner.declared_parameters(path), f"{path.name}: its parameters cell defines nothing"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name < "02"], ids=lambda path: path.name)
def test_no_logic_defined_before_prefect_lessons(path):
    """Lessons 00-01 call the ML core in course_lib; only the learner's exercise cells define functions.
    (From lesson 02 on, defining tasks and flows in cells is the subject.)"""
    defined = []
    for cell in code_cells(path):
        if "exercise" in cell.get("metadata", {}).get("tags", []):
            continue
        source = "".join(cell["source"])
        if source.lstrip().startswith("%%"):  # a cell magic (%%bash, %%writefile): not Python
            continue
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        defined += [node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    assert not defined, f"{path.name} defines {defined}: move the logic into course_lib"


def test_pictures_shown_in_lessons_exist_and_are_generated():
    """Every picture a lesson shows is in imgs/ and made by `make images` (course_lib.tooling.images)."""
    import re

    from course_lib.tooling import images
    from course_lib import paths

    shown = set()
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            shown |= set(re.findall(r"\]\(\.\./imgs/([^)]+)\.png\)", "".join(cell["source"])))
    assert shown, "no lesson shows a picture"
    assert shown <= set(images.ALL_NAMES), shown - set(images.ALL_NAMES)
    assert all((paths.REPO_ROOT / "imgs" / f"{name}.png").is_file() for name in shown)
    committed = {path.stem for path in (paths.REPO_ROOT / "imgs").glob("*.png")}
    assert committed == set(images.ALL_NAMES), "imgs/ holds a picture no script produces, or misses one"
