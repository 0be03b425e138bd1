"""Where the course reads and writes files, and how it writes them.

Everything the course writes while running (downloaded data, models, the
learner's project, service state) goes under one git-ignored working folder,
``work/`` at the repository root unless ``COURSE_WORKDIR`` says otherwise.
Files that a reader may open while they are written (a month, a model) are
written with :func:`atomic_write`: a temporary file beside the target, then a rename.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from course_lib import settings

REPO_ROOT = settings.REPO_ROOT


class FolderError(OSError):
    """A folder the course must write to cannot be created or written (the message says the fix)."""


class WorkdirError(FolderError, settings.SettingError):
    """``COURSE_WORKDIR`` (or the default ``work/``) is not a folder the course can write to."""


def writable_folder(path: Path, what: str, fix: str, error: type[FolderError] = FolderError) -> Path:
    """``path``, created when missing and proven writable (a probe file is written and removed);
    else ``error`` naming ``what`` the folder is for, the reason and the ``fix``."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        raise error(f"{what} {path} cannot be created or written ({exc.strerror or exc}). Fix: {fix}") from None
    return path


def workdir() -> Path:
    """The course's working folder (created and checked on first use)."""
    configured = settings.read("workdir", error=WorkdirError)
    path = configured or REPO_ROOT / "work"
    if path.is_dir() and os.access(path, os.W_OK | os.X_OK):  # the usual case: no probe file each call
        return path
    fix = ("set COURSE_WORKDIR to a folder you can write to, or unset it (default: work/ in the repository)"
           if configured else "make work/ in the repository writable, or set COURSE_WORKDIR to a folder you can write to")
    what = f"The working folder (COURSE_WORKDIR={str(configured)!r})" if configured else "The working folder"
    return writable_folder(path, what, fix, error=WorkdirError)


def subdir(name: str) -> Path:
    """A named folder inside the working folder, e.g. ``subdir("models")``."""
    path = workdir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


#: The learner's own project (course_lib.tooling.project), and the variable that names its folder
#: for `prefect deploy` (lesson 04's pull step: '{{ $MY_PROJECT_DIR }}').
PROJECT_NAME = "my-project"
PROJECT_DIR_VARIABLE = "MY_PROJECT_DIR"


def project_dir() -> Path:
    """The learner's project folder, ``<workdir>/my-project`` (created on first use)."""
    return subdir(PROJECT_NAME)


def data_dir() -> Path:
    """Where TLC month files are looked for and downloaded to (``COURSE_DATA_DIR``)."""
    return settings.read("data_dir") or subdir("data")


def shared_data_dir() -> Path | None:
    """The read-only real TLC months beside the repository (``../shared/data``), if present."""
    path = REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None] | bytes) -> Path:
    """Write ``path`` so that a reader sees the old file or the whole new one, never half of it.

    ``write`` is the bytes to write, or a function that writes a file at the temporary path it is
    given (e.g. ``booster.save_model``; the temporary name keeps ``path``'s suffix, since some
    writers choose the format by it). The temporary file sits beside ``path`` (so the rename is
    atomic) and is removed on any failure, Ctrl-C included.
    """
    path = Path(path)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    temp = Path(temp_name)
    try:
        if callable(write):
            os.close(handle)
            write(temp)
        else:
            with os.fdopen(handle, "wb") as out:
                out.write(write)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path
