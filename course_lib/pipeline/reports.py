"""Prefect artifacts of the training flow: a markdown report, an RMSE table, a progress bar.

Lesson 06 shows this file in full: the calls it teaches are `create_markdown_artifact`,
`create_table_artifact`, `create_progress_artifact` and `update_progress_artifact`.

Artifacts are attached to the flow run and shown on its page in the UI (and on the Artifacts
page by key, with their history). Keys may hold only lowercase letters, digits and dashes.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from uuid import UUID

import xgboost

REPORT_KEY = "duration-model-report"
RMSE_TABLE_KEY = "duration-model-rmse-history"
_KEY_PATTERN = re.compile(r"^[a-z0-9-]+$")


def check_key(key: str) -> str:
    """Raise before anything runs when an artifact key would be rejected by Prefect."""
    if not isinstance(key, str) or not _KEY_PATTERN.match(key):
        suggestion = re.sub(r"[^a-z0-9-]+", "-", str(key).lower()).strip("-") or "duration-model-report"
        raise ValueError(f"artifact key {key!r} is invalid: Prefect accepts only lowercase letters, digits and "
                         f"dashes. Use e.g. {suggestion!r}.")
    return key


def report_markdown(*, train: str, val: str, source: str, mode: str, rmse: float, n_train: int, n_val: int,
                    mlflow_run_id: str, mlflow_run_url: str, when: datetime | None = None) -> str:
    """The report as a real markdown table (no indentation: indented lines render as a code block)."""
    when = when or datetime.now(timezone.utc)
    rows = [
        ("Date", when.strftime("%Y-%m-%d %H:%M UTC")),
        ("Training month", f"{train} ({n_train:,} trips)"),
        ("Validation month", f"{val} ({n_val:,} trips)"),
        ("Data source", source),
        ("Training mode", mode),
        ("Validation RMSE (minutes)", f"{rmse:.5f}"),
        ("MLflow run", f"[{mlflow_run_id}]({mlflow_run_url})"),
    ]
    lines = ["# Trip-duration model report", "", "| Item | Value |", "|:---|:---|"]
    lines += [f"| {item} | {value} |" for item, value in rows]
    return "\n".join(lines) + "\n"


def publish_report(markdown: str, key: str = REPORT_KEY):
    from prefect.artifacts import create_markdown_artifact

    return create_markdown_artifact(markdown=markdown, key=check_key(key),
                                    description="Validation RMSE of the trip-duration model")


def publish_rmse_history(rows: list[dict], key: str = RMSE_TABLE_KEY):
    """A table artifact: RMSE of the latest training runs (newest first)."""
    from prefect.artifacts import create_table_artifact

    return create_table_artifact(table=rows, key=check_key(key),
                                 description="Validation RMSE of the latest training runs (from MLflow)")


class ProgressCallback(xgboost.callback.TrainingCallback):
    """An xgboost callback that keeps a Prefect progress artifact at the share of rounds done.

    It reports every ``every`` rounds while training and 100 when training ends (early stopping
    may end it before the last round), one value per reporting step: with 20 rounds and
    ``every=5`` it writes 25, 50, 75, 100. A progress artifact has no history on the server (each
    update replaces its value), so the callback keeps every value it wrote in ``values``, and
    :func:`progress_written` finds them by the artifact's id: tests and lessons check the whole
    sequence, not only the last value.
    """

    _written: dict[UUID, list[float]] = {}

    def __init__(self, total_rounds: int, every: int = 5):
        from prefect.artifacts import create_progress_artifact

        self.total, self.every = max(int(total_rounds), 1), max(int(every), 1)
        self.values: list[float] = []
        self.artifact_id = create_progress_artifact(progress=0.0, description="Boosting rounds completed (%)")
        ProgressCallback._written[UUID(str(self.artifact_id))] = self.values

    def after_iteration(self, model, epoch, evals_log) -> bool:
        done = epoch + 1
        if done % self.every == 0 and done < self.total:  # the last step is written by after_training
            self._update(100.0 * done / self.total)
        return False  # never stop training

    def after_training(self, model):
        self._update(100.0)
        return model

    def _update(self, progress: float) -> None:
        from prefect.artifacts import update_progress_artifact

        progress = min(progress, 100.0)
        update_progress_artifact(self.artifact_id, progress=progress)
        self.values.append(progress)


def progress_written(artifact_id) -> list[float]:
    """The values a :class:`ProgressCallback` of this process wrote to the progress artifact ``artifact_id``."""
    try:
        return list(ProgressCallback._written[UUID(str(artifact_id))])
    except KeyError:
        raise KeyError(f"no ProgressCallback of this process wrote the progress artifact {artifact_id}: "
                       "the values are kept only by the process that trained (run the flow in this kernel)") from None
