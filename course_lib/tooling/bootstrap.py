"""One idempotent setup call at the top of every notebook: ``setup_course()``.

It checks the environment, makes Prefect and Jupyter quiet and headless, seeds the
random generators and (when asked) starts or reuses the local Prefect server. Safe to run
twice; a second call only reports.
"""

from __future__ import annotations

import os
import random
import warnings
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from course_lib import paths
from course_lib.services import HEADLESS_ENV

# What the lessons are written for; setup_course() fails clearly on anything else.
REQUIRED_VERSIONS = {"prefect": "3.9", "prefect-aws": "0.7"}
REPORTED_PACKAGES = ["prefect", "prefect-aws", "pandas", "pyarrow", "scikit-learn",
                     "xgboost-cpu", "moto", "boto3", "papermill", "jupyterlab"]



class EnvironmentProblem(RuntimeError):
    """The Python environment is not the one the course is written for."""


@dataclass
class CourseInfo:
    """What ``setup_course()`` found; shown as a small table in the notebook."""

    python: str
    versions: dict[str, str]
    workdir: Path
    data_dir: Path
    prefect_api_url: str | None = None
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str]]:
        rows = [("python", self.python)]
        rows += [(name, version) for name, version in self.versions.items()]
        rows += [("working folder", str(self.workdir)), ("data folder", str(self.data_dir))]
        rows.append(("Prefect API", self.prefect_api_url or "not started yet (lesson 03)"))
        return rows

    def __repr__(self) -> str:
        width = max(len(name) for name, _ in self.rows())
        lines = [f"{name:<{width}}  {value}" for name, value in self.rows()]
        return "\n".join(lines + [f"note: {note}" for note in self.notes])


def package_versions(names=REPORTED_PACKAGES) -> dict[str, str]:
    """Installed version of each package ("missing" when absent)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def check_versions(versions: dict[str, str]) -> None:
    """Fail with the fix when a package the lessons depend on has the wrong version."""
    for name, wanted in REQUIRED_VERSIONS.items():
        have = versions.get(name) or package_versions([name])[name]
        if not (have == wanted or have.startswith(wanted + ".")):
            raise EnvironmentProblem(
                f"{name} {have} is installed but the course is written for {name} {wanted}.x: "
                "run `make setup` (or `pip install -e .` in a fresh environment) and restart the kernel."
            )


def apply_headless_env(environ=os.environ) -> None:
    """Set the headless defaults (no telemetry, prompts or colours) without overriding the learner's."""
    for key, value in HEADLESS_ENV.items():
        environ.setdefault(key, value)
    # `!prefect ...` and `%%bash` cells run the course environment's CLI, even in a kernel
    # started without activating .venv.
    bin_dir = str(Path(sys.executable).parent)
    if environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        environ["PATH"] = bin_dir + os.pathsep + environ.get("PATH", "")
    # prefect.yaml's taxi_local_data starts its runs here ('{{ $COURSE_REPO_ROOT }}'); workers
    # started from the course inherit it.
    environ.setdefault("COURSE_REPO_ROOT", str(paths.REPO_ROOT))
    # Keep Prefect client state (profiles, persisted results) and Jupyter/IPython state in the
    # course's working folder, not in the learner's home folder.
    environ.setdefault("PREFECT_HOME", str(paths.subdir("prefect") / "client"))
    environ.setdefault("IPYTHONDIR", str(paths.subdir("ipython")))
    environ.setdefault("MPLCONFIGDIR", str(paths.subdir("matplotlib")))
    warnings.filterwarnings("ignore", message="IProgress not found")
    if environ is os.environ:  # a failure's traceback in the console: the line that matters (course_lib.tooling.logs)
        from course_lib.tooling import logs

        logs.install(paths.subdir("prefect"))


def setup_course(server: bool = False, seed: int = 42) -> CourseInfo:
    """Check the environment, set headless defaults, seed RNGs; optionally start the Prefect server."""
    versions = package_versions()
    check_versions(versions)
    apply_headless_env()
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # numpy is a dependency; this only guards odd environments
        pass
    info = CourseInfo(
        python=sys.version.split()[0],
        versions=versions,
        workdir=paths.workdir(),
        data_dir=paths.data_dir(),
    )
    if server:
        from course_lib import services

        info.prefect_api_url = services.start_server().api_url
    else:
        info.prefect_api_url = os.environ.get("PREFECT_API_URL")
    return info


def check_services() -> list[dict]:
    """Prove the programs the course starts can run here: the Prefect CLI and a local S3 endpoint.

    The Prefect server itself starts in lesson 02/03 (it takes 8-45 s on a small machine).
    """
    import time

    from course_lib.tooling import deployments
    from course_lib import services

    rows = []
    started = time.perf_counter()
    result = deployments.prefect_cli("version", check=False, show=False, timeout=120)
    version_line = next((line for line in result.stdout.splitlines() if line.lower().startswith("version")), "")
    rows.append({"service": "prefect CLI", "ok": result.returncode == 0,
                 "detail": version_line.split(":")[-1].strip() or result.stderr.strip()[-200:],
                 "seconds": round(time.perf_counter() - started, 1)})
    started = time.perf_counter()
    with services.S3Endpoint() as endpoint:
        rows.append({"service": "local S3 endpoint (moto_server)", "ok": True,
                     "detail": endpoint.endpoint_url, "seconds": round(time.perf_counter() - started, 1)})
    return rows
