"""What an executed lesson shows a reader: the output budget, and no secret.

A cell prints what the next sentence discusses. :func:`budget_problems` lists, per code cell of
an executed lesson, what breaks the course's budget: more than :data:`MAX_LINES` lines of output,
a traceback (a failure shown on purpose shows its state and message), terminal escape codes, a
warning the lesson does not explain, a stray repr (``UUID('…')``, ``<… object at 0x…>``, an
un-awaited coroutine), and test plumbing in the cell's source (nbval markers, exit-code checks).
Cells the runner injected (the exercises' three-way runs) and cells tagged ``plumbing`` are not
what a learner reads, and are left out; but a ``plumbing`` cell is still in the notebook a
learner opens in JupyterLab, so test plumbing in its source counts too (a `!command` whose failure
matters is followed by a cell that uses what it made, and fails there). :func:`secrets_found`
lists where a secret's value appears.
"""

from __future__ import annotations

import re

MAX_LINES = 40
HIDDEN_TAGS = {"injected", "plumbing"}
#: A cell whose warning the lesson explains carries this tag.
WARNING_EXPLAINED = "warning-explained"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_WARNING = re.compile(r"\b\w*Warning\b:|^\s*warnings\.warn", re.M)
_STRAY_REPR = re.compile(r"^UUID\('|object at 0x[0-9a-f]+>|<coroutine object ", re.M)
_PLUMBING = re.compile(r"NBVAL|_exit_code|nbval|papermill")


def _tags(cell: dict) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def output_text(cell: dict) -> str:
    """Everything a code cell shows, as text (streams, results' text/plain, errors' tracebacks)."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            parts.append("\n".join(output.get("traceback", [])) + "\n")
            continue
        text = output.get("text")
        if text is None:  # a result or a display (Prefect's log lines are displays): its text form
            text = output.get("data", {}).get("text/plain", "")
        parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


def budget_problems(notebook: dict, name: str = "") -> list[str]:
    """One line per learner-visible code cell that breaks the output budget: ``NAME cell N (id): why``."""
    problems = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code" or "injected" in _tags(cell):
            continue
        source = "".join(cell["source"])
        # a plumbing cell's output is hidden from a reader; its source is in the notebook a learner opens
        text = "" if _tags(cell) & HIDDEN_TAGS else output_text(cell)
        why = []
        if _PLUMBING.search(source):
            why.append(f"test plumbing in its source: {_PLUMBING.search(source)[0]!r}")
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        if lines > MAX_LINES:
            why.append(f"{lines} lines of output (at most {MAX_LINES})")
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])) or "Traceback (most recent" in text:
            why.append("a traceback (show the failure's state and message instead)")
        if _ANSI.search(text) or "\x1b" in text:
            why.append("terminal escape codes")
        if _WARNING.search(text) and WARNING_EXPLAINED not in _tags(cell):
            why.append(f"a warning the lesson does not explain: {_WARNING.search(text)[0]!r}")
        if _STRAY_REPR.search(text):
            why.append(f"a stray repr: {_STRAY_REPR.search(text)[0]!r}")
        if why:
            problems.append(f"{name} cell {index} ({cell.get('id', '?')}): " + "; ".join(why))
    return problems


def secrets_found(notebook: dict, secrets: dict[str, str], name: str = "") -> list[str]:
    """Where any of ``secrets`` (label -> value) appears in the notebook's outputs (any cell, any output type)."""
    import json

    found = []
    for index, cell in enumerate(notebook["cells"]):
        dumped = json.dumps(cell.get("outputs", []), ensure_ascii=False)
        for label, value in secrets.items():
            if value and value in dumped:
                found.append(f"{name} cell {index} ({cell.get('id', '?')}) shows {label}")
    return found


def longest_output(notebook: dict) -> int:
    """Lines of the longest learner-visible output (for the closing notes)."""
    return max([output_text(cell).count("\n") for cell in notebook["cells"]
                if cell["cell_type"] == "code" and not _tags(cell) & HIDDEN_TAGS] or [0])


def learner_asserts(notebook: dict) -> int:
    """Assert statements left in the cells a learner reads (not injected, not plumbing, not exercises' stubs)."""
    return sum(len(re.findall(r"^\s*assert\b", "".join(cell["source"]), re.M)) for cell in notebook["cells"]
               if cell["cell_type"] == "code" and not _tags(cell) & (HIDDEN_TAGS | {"exercise"}))
