"""Show a file of the course in a lesson, syntax-highlighted, in full: the code a lesson teaches
is read where it is taught, even when it lives in a file that a worker imports or deploys."""

from __future__ import annotations

from pathlib import Path

from course_lib import paths

_LANGUAGES = {".py": "python", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".sh": "bash", ".json": "json"}


def show_file(path: str | Path):
    """Display ``path`` (absolute, or relative to the course repository) with syntax highlighting."""
    from IPython.display import Code

    path = Path(path)
    if not path.is_absolute():
        path = paths.REPO_ROOT / path
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the lesson expects this file of the course repository")
    return Code(path.read_text(), language=_LANGUAGES.get(path.suffix, "text"))
