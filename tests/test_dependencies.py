"""The two locks: requirements.lock holds what a learner needs to run the lessons,
requirements-dev.lock adds what the tests, the pictures and the bench need (pyproject's `dev`
extra); both agree on every version, and what the lessons import is in the learner's lock."""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Modules of the library that only the developers' tools use (they import the dev extras).
DEVELOPER_MODULES = {"course_lib/tooling/images.py", "course_lib/tooling/bench.py"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))


def pins(lock: str) -> dict[str, str]:
    found = {}
    for line in (ROOT / lock).read_text().splitlines():
        if "==" in line and not line.startswith(("#", " ")):
            name, version = line.split("==")
            found[canonical(name)] = version.strip()
    return found


LEARNER, DEVELOPER = pins("requirements.lock"), pins("requirements-dev.lock")


def test_the_learners_lock_is_part_of_the_developers_lock_with_the_same_versions():
    assert LEARNER, "requirements.lock lists no package"
    differ = {name: (version, DEVELOPER.get(name)) for name, version in LEARNER.items() if DEVELOPER.get(name) != version}
    assert not differ, f"the locks disagree (learner, developer): {differ}; run `make lock`"


def test_the_lessons_dependencies_are_in_the_learners_lock_and_the_tools_only_in_the_developers():
    for requirement in PYPROJECT["dependencies"]:
        assert requirement_name(requirement) in LEARNER, requirement
    extras = PYPROJECT["optional-dependencies"]
    tools = {requirement_name(r) for name, group in extras.items() if name != "dev" for r in group}
    assert tools <= set(DEVELOPER)
    assert {"pytest", "pytest-xdist", "playwright", "myst-nb"} <= tools - set(LEARNER)  # none of them for a learner


def test_the_dev_extra_names_every_other_extra():
    """A new extra (e.g. `book`) joins the developers' lock by being named in `dev`."""
    extras = PYPROJECT["optional-dependencies"]
    (aggregate,) = extras["dev"]
    named = set(re.fullmatch(r"course-lib\[([a-z,]+)\]", aggregate).group(1).split(","))
    assert named == set(extras) - {"dev"}


def _imported_top_level_names(source: str) -> set[str]:
    names = set()
    tree = compile(source, "<source>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _notebook_cells(path: Path) -> list[str]:
    """The Python of each code cell, as IPython runs it, and the files a `%%writefile x.py` cell
    writes (the learner's Python too)."""
    from IPython.core.inputtransformer2 import TransformerManager

    cells = []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        first, _, rest = source.partition("\n")
        if first.startswith("%%writefile") and first.rstrip().endswith(".py"):
            cells.append(rest)
        else:
            cells.append(TransformerManager().transform_cell(source))
    return cells


def test_what_the_lessons_and_the_library_import_is_in_the_learners_lock():
    sources = [(str(path.relative_to(ROOT)), path.read_text()) for path in (ROOT / "course_lib").rglob("*.py")
               if str(path.relative_to(ROOT)) not in DEVELOPER_MODULES]
    sources += [(path.name, cell) for path in sorted((ROOT / "notebooks").glob("*.ipynb")) for cell in _notebook_cells(path)]
    assert len(sources) > 100
    distributions = metadata.packages_distributions()
    # The learner's project files import each other (orchestrate_s3.py: `from orchestrate import ...`).
    project_modules = {path.stem for path in (ROOT / "course_lib" / "pipeline" / "project").glob("*.py")}
    missing = {}
    for where, source in sources:
        for name in (_imported_top_level_names(source) - set(sys.stdlib_module_names)
                     - {"course_lib", "__future__"} - project_modules):
            found = [canonical(dist) for dist in distributions.get(name, [])]
            if not any(dist in LEARNER for dist in found):
                missing.setdefault(name, []).append(where)
    assert not missing, f"imported but not in requirements.lock: {missing}"
