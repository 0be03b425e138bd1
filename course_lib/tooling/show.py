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


class expect_error:
    """``with expect_error(SomeError):`` — the block must raise ``SomeError``: its message is printed
    (the lesson shows the error a learner would meet) and anything else, or no error, fails the cell."""

    def __init__(self, error_type: type[BaseException], match: str | None = None) -> None:
        self.error_type, self.match = error_type, match
        self.error: BaseException | None = None

    def __enter__(self) -> "expect_error":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            raise AssertionError(f"expected {self.error_type.__name__}, but the block ran without an error")
        if not isinstance(exc, self.error_type):
            return False  # a different error: let it show as it is
        if self.match is not None and self.match not in str(exc):
            raise AssertionError(f"{self.error_type.__name__} raised, but its message lacks {self.match!r}: {exc}")
        self.error = exc
        print(f"{type(exc).__name__}: {exc}")
        return True
