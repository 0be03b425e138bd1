"""Show a file of the course in a lesson, syntax-highlighted, in full: the code a lesson teaches
is read where it is taught, even when it lives in a file that a worker imports or deploys."""

from __future__ import annotations

from pathlib import Path

from course_lib import paths

_LANGUAGES = {".py": "python", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".sh": "bash", ".json": "json"}


def show_file(path: str | Path, function: str | None = None, lines: str | None = None):
    """Display ``path`` (absolute, or relative to the course repository) with syntax highlighting.

    ``function="name"`` shows only that top-level function or class (its decorators included), and
    ``lines="10-30"`` only those lines; a line above the code says which part it is and where the rest is.
    """
    from IPython.display import Code

    path = Path(path)
    if not path.is_absolute():
        path = paths.REPO_ROOT / path
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the lesson expects this file of the course repository")
    text = path.read_text()
    if function is None and lines is None:
        return Code(text, language=_LANGUAGES.get(path.suffix, "text"))
    all_lines = text.splitlines()
    first, last = _function_lines(text, function, path) if function else _line_range(lines, len(all_lines))
    part = f"`{function}`, lines {first}-{last}" if function else f"lines {first}-{last}"
    print(f"{path.name}: {part} of {len(all_lines)} (the whole file: {path})")
    return Code("\n".join(all_lines[first - 1:last]) + "\n", language=_LANGUAGES.get(path.suffix, "text"))


def _function_lines(text: str, name: str, path: Path) -> tuple[int, int]:
    """First and last line (1-based) of the top-level function or class ``name``, decorators included."""
    import ast

    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            first = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
            return first, node.end_lineno
    defined = [node.name for node in ast.parse(text).body
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    raise ValueError(f"{path.name} has no top-level function or class {name!r}; it has: {', '.join(defined) or 'none'}")


def _line_range(lines: str, count: int) -> tuple[int, int]:
    try:
        first, last = (int(part) for part in str(lines).split("-", 1))
    except ValueError:
        raise ValueError(f"lines={lines!r}: give a range such as \"10-30\"") from None
    if not 1 <= first <= last <= count:
        raise ValueError(f"lines={lines!r} is outside the file's {count} lines")
    return first, last


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
