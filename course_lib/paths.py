"""Where the course reads and writes files.

Everything the course writes while running (downloaded data, models, the
MLflow store, service state) goes under one git-ignored working folder,
``work/`` at the repository root unless ``COURSE_WORKDIR`` says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def workdir() -> Path:
    """The course's working folder (created on first use)."""
    path = Path(os.environ.get("COURSE_WORKDIR", REPO_ROOT / "work")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def subdir(name: str) -> Path:
    """A named folder inside the working folder, e.g. ``subdir("models")``."""
    path = workdir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Where TLC month files are looked for and downloaded to (``COURSE_DATA_DIR``)."""
    override = os.environ.get("COURSE_DATA_DIR")
    if override:
        return Path(override).expanduser().resolve()
    return subdir("data")


def shared_data_dir() -> Path | None:
    """The read-only real TLC months beside the repository (``../shared/data``), if present."""
    path = REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None
