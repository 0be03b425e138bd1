"""The course's pictures, built from code: ``python -m course_lib.tooling.images [--out imgs] [--only NAME ...]``.

Two kinds of picture:

* **diagrams** (matplotlib boxes and arrows, 1600x900 PNG): every picture the 2023 lesson
  notes show, redrawn for Prefect 3.9 (see :data:`DIAGRAMS`);
* **screenshots of the real Prefect UI** (see :data:`SCREENSHOTS`): a real local server with
  the UI (its own ``COURSE_WORKDIR`` under ``build/images-work``), two real runs of the learner's
  flow as the course leaves it (``main_flow`` of the reference project's ``orchestrate.py``,
  :func:`course_lib.tooling.project.reference_module`) on synthetic data, a work pool with a worker
  ONLINE, and the ``AwsCredentials`` + ``S3Bucket`` blocks; then headless Chromium (Debian's ``chromium``
  package, driven by Playwright from PyPI) opens each page, waits for the real content (the
  flow run's, block's, worker's or artifact's name) and takes the screenshot.

Every service started here (Prefect server, worker, ``moto_server``, Chromium) is stopped
again, also when something fails. :func:`build` returns, for each screenshot, the text that
was visible on the page when it was taken (the tests check it shows real data).

Needs, beside the course environment: ``apt-get install -y chromium`` (``/usr/bin/chromium``,
or set ``COURSE_CHROMIUM``) and ``pip install playwright`` (Playwright never downloads a
browser here: it drives the system Chromium).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from course_lib import paths, settings

__all__ = [
    "DIAGRAMS",
    "SCREENSHOTS",
    "ALL_NAMES",
    "ImageError",
    "Shot",
    "BuildResult",
    "build",
    "build_diagrams",
    "build_screenshots",
    "find_chromium",
    "main",
]

DEFAULT_OUT = paths.REPO_ROOT / "imgs"
DEFAULT_WORKDIR = paths.REPO_ROOT / "build" / "images-work"
CHROMIUM_HINT = "install it: apt-get install -y chromium (or set COURSE_CHROMIUM to a Chromium binary)"
PLAYWRIGHT_HINT = "install it: .venv/bin/pip install playwright (it drives the system Chromium; no browser download)"

WIDTH_IN, HEIGHT_IN, DPI = 16.0, 9.0, 100  # diagrams: 1600 x 900 px
VIEWPORT = {"width": 1400, "height": 900}  # screenshots: 1400 x 900 px


class ImageError(RuntimeError):
    """A picture could not be built; the message says why and how to fix it."""


# =========================================================================== palette & drawing

INK = "#1f2937"
MUTED = "#6b7280"
LINE = "#9ca3af"
BG = "#ffffff"
PANEL = "#f8fafc"
CODE_BG = "#1e293b"
CODE_FG = "#e2e8f0"
CODE_KEY = "#93c5fd"
CODE_STR = "#86efac"
CODE_COMMENT = "#94a3b8"

#: (edge/accent colour, fill colour) per kind of thing; the same kind has the same colour
#: in every picture.
KINDS = {
    "prefect": ("#2563eb", "#dbeafe"),   # Prefect server, UI, API, flows, runs
    "task": ("#4f46e5", "#e0e7ff"),      # tasks
    "worker": ("#0d9488", "#ccfbf1"),    # work pools, workers, execution
    "code": ("#7c3aed", "#ede9fe"),      # code, prefect.yaml, deployments
    "data": ("#059669", "#d1fae5"),      # data files, buckets
    "ml": ("#d97706", "#fef3c7"),        # training, models, experiment tracking
    "block": ("#db2777", "#fce7f3"),     # blocks (configuration, credentials)
    "cloud": ("#0284c7", "#e0f2fe"),     # Prefect Cloud, AWS
    "neutral": ("#6b7280", "#f3f4f6"),   # machines, people, notes
    "warn": ("#dc2626", "#fee2e2"),      # failures
}

MONO = "DejaVu Sans Mono"
SANS = "DejaVu Sans"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _canvas(title: str, subtitle: str = ""):
    """A 16 x 9 inch figure whose data coordinates are inches: (0, 0) bottom left, (16, 9) top right."""
    plt = _plt()
    fig = plt.figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor=BG)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, WIDTH_IN)
    ax.set_ylim(0, HEIGHT_IN)
    ax.axis("off")
    ax.text(0.5, 8.45, title, fontsize=27, fontweight="bold", color=INK, family=SANS, va="center")
    if subtitle:
        ax.text(0.5, 7.95, subtitle, fontsize=14.5, color=MUTED, family=SANS, va="center")
    return fig, ax


def _box(ax, x, y, w, h, title, lines: Iterable[str] = (), kind="prefect", title_size=16, body_size=12.5,
         mono_body=False, fill=None, edge=None, title_color=None, lw=2.2, dashed=False, top_title=None,
         body_color=INK, radius=0.12):
    """A rounded box at (x, y) (bottom left), ``title`` in bold, then ``lines``.

    The title and lines are centred together in the box unless ``top_title`` is set.
    """
    from matplotlib.patches import FancyBboxPatch

    accent, light = KINDS[kind]
    patch = FancyBboxPatch((x, y), w, h, boxstyle=f"round,pad=0,rounding_size={radius}",
                           linewidth=lw, edgecolor=edge or accent, facecolor=fill or light,
                           linestyle=(0, (5, 3)) if dashed else "-", zorder=2)
    ax.add_patch(patch)
    lines = list(lines)
    title_h = title_size / 72 * 1.45 if title else 0
    line_h = body_size / 72 * 1.5
    total = title_h + line_h * len(lines)
    if top_title is None:
        top = y + h / 2 + total / 2
    else:
        top = y + h - top_title
    cx = x + w / 2
    if title:
        ax.text(cx, top - title_h / 2, title, ha="center", va="center", fontsize=title_size,
                fontweight="bold", color=title_color or accent, family=SANS, zorder=3)
    for i, line in enumerate(lines):
        ax.text(cx, top - title_h - line_h * (i + 0.5), line, ha="center", va="center", fontsize=body_size,
                color=body_color, family=MONO if mono_body else SANS, zorder=3)
    return patch


def _container(ax, x, y, w, h, label, kind="neutral", label_size=15, sublabel=""):
    """A big pale rounded region with its label at the top left (a machine, a flow, a workspace)."""
    from matplotlib.patches import FancyBboxPatch

    accent, light = KINDS[kind]
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.2", linewidth=2,
                                edgecolor=accent, facecolor=PANEL if kind == "neutral" else light,
                                linestyle=(0, (6, 4)), zorder=1, alpha=1.0))
    ax.text(x + 0.22, y + h - 0.3, label, fontsize=label_size, fontweight="bold", color=accent, family=SANS,
            va="center", ha="left", zorder=3)
    if sublabel:
        ax.text(x + w - 0.22, y + h - 0.3, sublabel, fontsize=12, color=MUTED, family=MONO, va="center",
                ha="right", zorder=3)


def _arrow(ax, start, end, label="", color=INK, rad=0.0, lw=2.2, dashed=False, label_pos=0.5, label_size=12,
           both=False, label_offset=(0.0, 0.0), mono_label=False, shrink=4):
    """An arrow from ``start`` to ``end`` with an optional label on a white patch at ``label_pos``."""
    from matplotlib.patches import FancyArrowPatch

    style = "<|-|>" if both else "-|>"
    arrow = FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=20, color=color, linewidth=lw,
                            connectionstyle=f"arc3,rad={rad}", linestyle=(0, (5, 3)) if dashed else "-",
                            shrinkA=shrink, shrinkB=shrink, zorder=4)
    ax.add_patch(arrow)
    if label:
        (x1, y1), (x2, y2) = start, end
        mx, my = x1 + (x2 - x1) * label_pos, y1 + (y2 - y1) * label_pos
        if rad:
            # the arc's offset from the straight line at its middle
            mx += rad * (y2 - y1) * 0.5 * (1 - abs(2 * label_pos - 1))
            my -= rad * (x2 - x1) * 0.5 * (1 - abs(2 * label_pos - 1))
        ax.text(mx + label_offset[0], my + label_offset[1], label, ha="center", va="center",
                fontsize=label_size, color=color, family=MONO if mono_label else SANS, zorder=5,
                bbox=dict(boxstyle="round,pad=0.25", facecolor=BG, edgecolor="none"))
    return arrow


def _code(ax, x, y, w, h, lines: list[str], title="", size=12.5, highlight: Iterable[int] = ()):
    """A dark code panel; ``lines`` are shown in a monospace font, ``highlight`` line numbers (0-based) lit."""
    from matplotlib.patches import FancyBboxPatch, Rectangle

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.12", linewidth=0,
                                facecolor=CODE_BG, zorder=2))
    top = y + h - 0.2
    if title:
        ax.text(x + 0.25, top - 0.12, title, fontsize=12, color=CODE_COMMENT, family=MONO, va="center", zorder=3)
        top -= 0.42
    line_h = size / 72 * 1.42
    lit = set(highlight)
    centers = []
    for i, line in enumerate(lines):
        cy = top - line_h * (i + 0.5)
        centers.append(cy)
        if i in lit:
            ax.add_patch(Rectangle((x + 0.08, cy - line_h / 2), w - 0.16, line_h, facecolor="#334155",
                                   edgecolor="none", zorder=2.5))
        stripped = line.lstrip()
        if stripped.startswith("#"):
            color = CODE_COMMENT
        elif stripped.startswith("@") or stripped.startswith("from ") or stripped.startswith("import "):
            color = CODE_KEY
        elif stripped.startswith("$"):
            color = CODE_STR
        else:
            color = CODE_FG
        ax.text(x + 0.25, cy, line, fontsize=size, color=color, family=MONO, va="center", ha="left", zorder=3)
    return centers


def _note(ax, x, y, text, size=12.5, color=MUTED, ha="left", family=SANS, **kwargs):
    ax.text(x, y, text, fontsize=size, color=color, family=family, ha=ha, va="center", zorder=5, **kwargs)


def _badge(ax, x, y, text, kind="prefect", size=12):
    """A small filled pill with white text (a step number, a state name)."""
    accent, _ = KINDS[kind]
    ax.text(x, y, text, fontsize=size, color="white", fontweight="bold", family=SANS, ha="center", va="center",
            zorder=6, bbox=dict(boxstyle="round,pad=0.3", facecolor=accent, edgecolor="none"))


# =========================================================================== the diagrams


def ml_pipeline():
    # What it draws is the reference project's orchestrate.py as the course leaves it
    # (course_lib/pipeline/project/orchestrate.py, lessons 02-06): its flow, its tasks' names and
    # retries, its report artifacts. Keep the two in step.
    fig, ax = _canvas("Machine learning pipeline",
                      "Your orchestrate.py as the course leaves it (lessons 02–06): each step is a Prefect task, "
                      "the whole is one flow")
    _container(ax, 0.4, 2.3, 15.2, 5.15, "@flow  main_flow(train_month, val_month, source, mode, num_boost_round)",
               kind="prefect", label_size=15, sublabel="persist_result=True")
    steps = [
        ("1  Read data", ["one month of trips:", "a file in work/data,", "else download, else", "synthetic (source)"],
         "data"),
        ("2  Transform", ["duration in minutes", "keep 1–60 min trips", "PU_DO = PU + \"_\" + DO"], "data"),
        ("3  Features", ["PU_DO, trip_distance", "fitted on the", "training month (mode)"], "task"),
        ("4  Train", ["xgboost, early stopping", "on the validation month", "→ validation RMSE"], "ml"),
        ("5  Report", ["markdown: RMSE report", "table: trips per month", "(Prefect artifacts,", "lesson 06)"],
         "prefect"),
    ]
    w, h, gap, x0, y0 = 2.62, 2.3, 0.42, 0.75, 4.3
    for i, (title, lines, kind) in enumerate(steps):
        x = x0 + i * (w + gap)
        _box(ax, x, y0, w, h, title, lines, kind=kind, title_size=15, body_size=12.5)
        if i < len(steps) - 1:
            _arrow(ax, (x + w, y0 + h / 2), (x + w + gap, y0 + h / 2), color=INK)
    # which task does what: brackets under the boxes, the function and the task's name
    spans = [(0, 1, "@task read_data  (one call per month)", "\"Read a month of trips\": runs read-2023-01, read-2023-02"),
             (2, 2, "@task add_features", "\"Build features\""),
             (3, 3, "@task train_best_model", "\"Train xgboost\""),
             (4, 4, "@task publish_report", "\"Publish the report\"")]
    tc = KINDS["task"][0]
    for first, last, function, name in spans:
        xa = x0 + first * (w + gap) + 0.1
        xb = x0 + last * (w + gap) + w - 0.1
        ax.plot([xa, xa, xb, xb], [4.1, 3.9, 3.9, 4.1], color=tc, lw=2, zorder=3)
        _note(ax, (xa + xb) / 2, 3.58, function, size=12.5, color=tc, ha="center", family=MONO)
        _note(ax, (xa + xb) / 2, 3.22, name, size=12, color=INK, ha="center")
    _note(ax, 0.75, 2.7, "A failing read (a download, a file) is tried again twice: retries=2, "
                         "retry_delay_seconds=[1, 5] (after 1 s, then after 5 s).", size=12.5)
    # around the flow: the data it reads, the server it reports to
    c1, c5 = x0 + w / 2, x0 + 4 * (w + gap) + w / 2
    _box(ax, 0.4, 0.35, 4.1, 1.45, "work/data · parquet months", ["green_tripdata_2023-01.parquet", "green_tripdata_2023-02.parquet"],
         kind="data", title_size=14, body_size=12, mono_body=True)
    _arrow(ax, (c1, 1.8), (c1, 2.3), color=KINDS["data"][0], shrink=1)
    _note(ax, 4.9, 1.4, "Every task run and the flow run get a state,", size=13, color=INK)
    _note(ax, 4.9, 1.0, "logs and a duration in the Prefect UI; the flow", size=13, color=INK)
    _note(ax, 4.9, 0.6, "returns the RMSE, persisted for any caller.", size=13, color=INK)
    _box(ax, 10.45, 0.35, 5.15, 1.45, "Prefect server", ["flow and task runs, states, logs;",
                                                         "artifacts duration-model-report",
                                                         "and duration-model-data"],
         kind="prefect", title_size=14, body_size=11.5)
    _arrow(ax, (c5, 2.3), (c5, 1.8), color=KINDS["prefect"][0], shrink=1)
    return fig


def mlops_workflow():
    fig, ax = _canvas("MLOps workflow: what an orchestrator adds",
                      "The ML steps run in order on a schedule; Prefect watches every step and reacts "
                      "when one fails")
    steps = [
        ("Ingest", ["download the", "monthly trips"], "data"),
        ("Clean", ["durations,", "filter outliers"], "data"),
        ("Features", ["PU_DO,", "trip_distance"], "task"),
        ("Train", ["XGBoost,", "evaluate RMSE"], "ml"),
        ("Track", ["runs, metrics,", "model registry"], "ml"),
        ("Deploy", ["serve the", "best model"], "code"),
    ]
    w, h, gap, x0, y0 = 2.05, 1.75, 0.5, 0.55, 5.2
    centers = []
    for i, (title, lines, kind) in enumerate(steps):
        x = x0 + i * (w + gap)
        _box(ax, x, y0, w, h, title, lines, kind=kind, title_size=16, body_size=12.5)
        centers.append(x + w / 2)
        if i < len(steps) - 1:
            _arrow(ax, (x + w, y0 + h / 2), (x + w + gap, y0 + h / 2))
    # what can go wrong above the steps
    problems = {0: "source is down", 1: "schema changed", 3: "out of memory", 5: "bad model shipped"}
    for i, text in problems.items():
        _note(ax, centers[i], y0 + h + 0.35, "⚠ " + text, size=12, color=KINDS["warn"][0], ha="center")
    # the orchestrator band
    accent, light = KINDS["prefect"]
    _container(ax, 0.4, 0.55, 15.2, 3.35, "Prefect: the orchestration layer", kind="prefect", label_size=16)
    for cx in centers:
        _arrow(ax, (cx, 3.9), (cx, y0), color=accent, dashed=True, lw=1.8, both=True)
    features = [
        ("Schedule", "cron / interval:\nretrain monthly"),
        ("Retry", "transient failures\nretried with delay"),
        ("Observe", "states, logs and\ndurations in the UI"),
        ("Parametrise", "months, mode,\nrounds per run"),
        ("Notify", "automations on\nFailed / Crashed"),
        ("Report", "markdown and\ntable artifacts"),
    ]
    fw, fgap = 2.25, 0.23
    for i, (title, body) in enumerate(features):
        x = 0.75 + i * (fw + fgap)
        _box(ax, x, 0.8, fw, 2.3, title, body.split("\n"), kind="prefect", fill="white", title_size=15,
             body_size=12)
    _note(ax, 15.35, 3.6, "each step is a task run: what ran, when, with which inputs, what failed",
          size=12.5, ha="right", color=accent)
    return fig


def prefect_terms_task_flow():
    fig, ax = _canvas("Prefect terms (1): task and flow",
                      "A task is a Python function with superpowers; a flow is the container for the workflow "
                      "logic that calls tasks")
    code = [
        "from prefect import flow, task",
        "",
        "@task(retries=3, retry_delay_seconds=2)",
        "def read_data(month: str) -> pd.DataFrame:",
        "    ...",
        "",
        "@task",
        "def add_features(df_train, df_val): ...",
        "",
        "@task(log_prints=True)",
        "def train_best_model(X_train, X_val, ...): ...",
        "",
        "@flow",
        "def main_flow(train_month=\"2023-01\",",
        "               val_month=\"2023-02\"):",
        "    df_train = read_data(train_month)",
        "    df_val = read_data(val_month)",
        "    X_train, X_val, ... = add_features(...)",
        "    train_best_model(X_train, X_val, ...)",
        "",
        "main_flow()      # calling it = one flow run",
    ]
    _code(ax, 0.45, 0.45, 7.3, 7.15, code, title="orchestrate.py", size=13.5, highlight=[2, 6, 9, 12])
    # right: definitions
    _box(ax, 8.2, 5.2, 3.55, 2.4, "Task", ["a Python function + @task", "one unit of work", "retries, timeouts,",
                                            "caching, logs, state"], kind="task", title_size=18, body_size=12.5)
    _box(ax, 12.05, 5.2, 3.55, 2.4, "Flow", ["a Python function + @flow", "container for the logic",
                                            "parameters, state, logs", "may call subflows"],
         kind="prefect", title_size=18, body_size=12.5)
    # right bottom: one flow run containing task runs
    _container(ax, 8.2, 0.45, 7.4, 4.35, "flow run  (main_flow, e.g. \"crafty-gecko\")", kind="prefect",
               label_size=14)
    # Prefect 3 names a task run after its task plus three random hex digits (unless the task sets
    # task_run_name=...), as the UI and the logs show them.
    runs = [("read_data-2a5", 8.5, 2.85), ("read_data-8c1", 8.5, 1.35), ("add_features-d07", 10.85, 2.1),
            ("train_best_model-4e9", 13.2, 2.1)]
    for name, x, y in runs:
        _box(ax, x, y, 2.15, 1.15, "task run", [name], kind="task", title_size=12.5, body_size=11.5,
             mono_body=True, fill="white")
    _arrow(ax, (10.65, 3.4), (10.85, 2.9), color=KINDS["task"][0], shrink=2)
    _arrow(ax, (10.65, 1.9), (10.85, 2.4), color=KINDS["task"][0], shrink=2)
    _arrow(ax, (13.0, 2.67), (13.2, 2.67), color=KINDS["task"][0], shrink=1)
    for i, (state, kind) in enumerate([("Scheduled", "neutral"), ("Running", "prefect"), ("Completed", "data"),
                                       ("Failed", "warn")]):
        _badge(ax, 9.25 + i * 1.85, 0.85, state, kind=kind, size=11.5)
    _note(ax, 8.45, 4.2, "each call of a task inside the flow is a task run with its own state:", size=12)
    return fig


def prefect_terms_deployment():
    fig, ax = _canvas("Prefect terms (2): deployment, work pool, worker, blocks",
                      "How a flow is run by the server on a schedule or on demand, not by you in a terminal")
    pc, wc, cc, bc = (KINDS[k][0] for k in ("prefect", "worker", "code", "block"))
    _box(ax, 0.5, 4.95, 2.9, 2.45, "Flow", ["the code:", "orchestrate.py", ":main_flow"], kind="prefect",
         title_size=17, body_size=12.5)
    _box(ax, 4.3, 4.95, 3.6, 2.45, "Deployment", ["flow + entrypoint", "+ work pool + schedule", "+ parameters",
                                                  "prefect deploy"], kind="code", title_size=17, body_size=12.5)
    _box(ax, 8.8, 4.95, 3.0, 2.45, "Flow run", ["created by a schedule,", "the UI, the CLI", "or run_deployment"],
         kind="prefect", title_size=17, body_size=12.5)
    _box(ax, 12.7, 4.95, 2.85, 2.45, "Work pool", ["a queue of runs", "+ how to run them", "(type: process)"],
         kind="worker", title_size=17, body_size=12.5)
    _arrow(ax, (3.4, 6.17), (4.3, 6.17), color=cc)
    _arrow(ax, (7.9, 6.17), (8.8, 6.17), color=cc, label="run", label_pos=0.5, label_offset=(0, 0.3))
    _arrow(ax, (11.8, 6.17), (12.7, 6.17), color=pc, label="queued", label_pos=0.5, label_offset=(0, 0.3))
    _box(ax, 12.7, 1.55, 2.85, 2.35, "Worker", ["prefect worker start", "-p local-pool", "polls its pool"],
         kind="worker", title_size=17, body_size=12, )
    _arrow(ax, (14.12, 3.9), (14.12, 4.95), color=wc, label="polls", label_offset=(0.45, 0), label_pos=0.5)
    _box(ax, 8.3, 1.55, 3.55, 2.35, "Process", ["runs the flow:", "pull steps, then", "main_flow(**parameters)"],
         kind="worker", title_size=17, body_size=12, fill="white")
    _arrow(ax, (12.7, 2.72), (11.85, 2.72), color=wc, label="starts", label_offset=(0, 0.3))
    _box(ax, 4.1, 1.55, 3.5, 2.35, "Blocks", ["saved configuration", "and secrets, loaded by",
                                              "name: S3Bucket.load(...)"], kind="block", title_size=17,
         body_size=12)
    _arrow(ax, (8.3, 2.72), (7.6, 2.72), color=bc, label="", shrink=2)
    _note(ax, 7.95, 3.05, "loads", size=11.5, color=bc, ha="center")
    _box(ax, 0.5, 1.55, 2.9, 2.35, "Artifacts", ["markdown, tables,", "progress: results", "shown in the UI"],
         kind="prefect", title_size=17, body_size=12)
    _arrow(ax, (9.6, 3.9), (9.6, 4.95), color=pc, dashed=True, label="states, logs", label_offset=(-0.75, 0))
    _arrow(ax, (9.0, 1.55), (1.95, 1.55), color=pc, rad=-0.1, label="creates", dashed=True)
    _note(ax, 0.5, 0.35, "Schedule: a deployment's schedules (cron, interval, rrule) create flow runs ahead of time. "
                         "No worker polling the pool = runs stay Scheduled, then Late.", size=12.5)
    return fig


def development_environment():
    fig, ax = _canvas("Development environment: everything on one machine",
                      "Lesson 04: code, Prefect server, worker and data all live on your laptop")
    _container(ax, 0.4, 0.4, 15.2, 7.1, "your machine  (127.0.0.1)", kind="neutral", label_size=16)
    _box(ax, 0.9, 4.1, 4.0, 2.75, "Code", ["orchestrate.py  (@flow main_flow)", "prefect.yaml  (deployments)",
                                           "course_lib/ml  (data, xgboost)"], kind="code", title_size=17, body_size=12.5)
    _box(ax, 6.0, 4.1, 4.0, 2.75, "Prefect server", ["prefect server start", "API + UI :4200", "SQLite in PREFECT_HOME"],
         kind="prefect", title_size=17, body_size=12.5)
    _box(ax, 11.1, 4.1, 4.0, 2.75, "Browser", ["http://127.0.0.1:4200", "runs, logs, blocks,", "work pools, artifacts"],
         kind="neutral", title_size=17, body_size=12.5)
    _box(ax, 6.0, 0.8, 4.0, 2.4, "Worker", ["prefect worker start", "-p local-pool", "runs each flow run", "in a subprocess"],
         kind="worker", title_size=17, body_size=12.5)
    _box(ax, 0.9, 0.8, 4.0, 2.4, "Data", ["work/data/", "green_tripdata_2023-01.parquet",
                                          "green_tripdata_2023-02.parquet"], kind="data", title_size=17, body_size=12)
    _box(ax, 11.1, 0.8, 4.0, 2.4, "Results", ["PREFECT_HOME/storage", "each run's returned RMSE",
                                              "(persist_result=True)"], kind="data", title_size=17, body_size=12.5)
    pc, wc, cc, dc = (KINDS[k][0] for k in ("prefect", "worker", "code", "data"))
    _arrow(ax, (4.9, 5.75), (6.0, 5.75), color=cc, label="prefect deploy", mono_label=True,
           label_offset=(0, 0.32), label_size=11.5)
    _arrow(ax, (11.1, 5.48), (10.0, 5.48), color=pc, both=True, label="HTTP", label_offset=(0, 0.3))
    _arrow(ax, (8.0, 3.2), (8.0, 4.1), color=wc, both=True)
    _note(ax, 8.2, 3.65, "polls for runs,\nreports states + logs", size=12, color=wc)
    _arrow(ax, (6.0, 2.9), (3.6, 4.1), color=wc, shrink=2)
    _note(ax, 5.0, 3.75, "imports the flow", size=12, color=wc, ha="left")
    _arrow(ax, (6.0, 1.6), (4.9, 1.6), color=dc, label="reads", label_offset=(0, 0.3))
    _arrow(ax, (10.0, 2.0), (11.1, 2.0), color=dc, label="writes", label_offset=(0, 0.3))
    return fig


def project_yaml():
    fig, ax = _canvas("prefect.yaml: the project's deployment recipe",
                      "prefect init (2023: prefect project init) writes it; prefect deploy reads it; "
                      "the worker runs its pull steps before every flow run")
    yaml = [
        "# prefect.yaml  (prefect init --recipe git)",
        "name: my-project",
        "prefect-version: 3.9.1",
        "",
        "build: null",
        "",
        "push: null",
        "",
        "pull:",
        "- prefect.deployments.steps.git_clone:",
        "    repository: https://github.com/you/my-project",
        "    branch: main",
        "",
        "deployments:",
        "- name: taxi_local_data",
        "  entrypoint: orchestrate.py:main_flow",
        "  parameters: {}",
        "  work_pool:",
        "    name: local-pool",
        "  schedules:",
        "  - cron: \"0 9 1 * *\"",
    ]
    line_y = _code(ax, 0.45, 1.75, 7.4, 5.85, yaml, size=12.5, highlight=[4, 6, 8, 13])
    sections = [
        ("build", "code", "when you run prefect deploy: build what the run needs", "e.g. a Docker image (none for a "
                                                                                   "process worker)", 6.3),
        ("push", "code", "when you run prefect deploy: upload the code", "e.g. to S3 or a registry (none: git "
                                                                        "holds it)", 4.9),
        ("pull", "worker", "on the worker, before EVERY flow run: get the code", "git_clone, set_working_directory, "
                                                                                "pull_from_s3", 3.5),
        ("deployments", "prefect", "one entry per deployment: what runs where", "entrypoint, parameters, work_pool, "
                                                                               "schedules", 2.1),
    ]
    for name, kind, line1, line2, y in sections:
        _box(ax, 9.0, y - 0.05, 6.6, 1.2, "", [], kind=kind)
        ax.text(9.25, y + 0.8, name, fontsize=16, fontweight="bold", color=KINDS[kind][0], family=MONO,
                va="center", zorder=4)
        _note(ax, 9.25, y + 0.45, line1, size=12.5, color=INK)
        _note(ax, 9.25, y + 0.13, line2, size=12, color=MUTED)
    for (name, kind, *_rest, y), line in zip(sections, (4, 6, 8, 13)):
        _arrow(ax, (7.85, line_y[line]), (9.0, y + 0.55), color=KINDS[kind][0], lw=2, shrink=2)
    _note(ax, 0.5, 1.25, "deploy all:  $ prefect deploy --all", size=13, color=INK, family=MONO)
    _note(ax, 0.5, 0.8, "run one:     $ prefect deployment run main-flow/taxi_local_data", size=13, color=INK,
          family=MONO)
    return fig


def aws_credentials_s3_bucket():
    fig, ax = _canvas("Blocks: AwsCredentials and S3Bucket",
                      "Saved once on the Prefect server; the S3Bucket block holds a reference to the AwsCredentials "
                      "block")
    bc, cc, dc, pc = (KINDS[k][0] for k in ("block", "cloud", "data", "prefect"))
    _container(ax, 0.4, 0.45, 9.7, 7.05, "Prefect server: block documents", kind="prefect", label_size=15,
               sublabel="prefect block ls")
    # AwsCredentials
    _box(ax, 0.8, 3.85, 4.1, 3.0, "", [], kind="block")
    ax.text(0.95 + 2.0, 6.45, "AwsCredentials", fontsize=17, fontweight="bold", color=bc, ha="center",
            family=SANS, zorder=4)
    _note(ax, 2.95, 6.05, "block  taxi-aws-creds", size=12.5, color=MUTED, ha="center", family=MONO)
    for i, line in enumerate(["aws_access_key_id     AKIA…", "aws_secret_access_key ********",
                              "region_name           us-east-1", "aws_client_parameters", "  endpoint_url (optional)"]):
        _note(ax, 1.0, 5.55 - i * 0.36, line, size=11.5, color=INK, family=MONO)
    # S3Bucket
    _box(ax, 5.9, 3.85, 3.8, 3.0, "", [], kind="block")
    ax.text(7.8, 6.45, "S3Bucket", fontsize=17, fontweight="bold", color=bc, ha="center", family=SANS, zorder=4)
    _note(ax, 7.8, 6.05, "block  taxi-s3-bucket", size=12.5, color=MUTED, ha="center", family=MONO)
    for i, line in enumerate(["bucket_name  taxi-course-data", "credentials  → taxi-aws-creds", "bucket_folder \"\""]):
        _note(ax, 6.05, 5.55 - i * 0.36, line, size=11.5, color=INK, family=MONO)
    _arrow(ax, (5.9, 5.19), (4.9, 5.19), color=bc, label="", lw=2.5, shrink=1)
    _note(ax, 5.4, 5.5, "refers", size=11.5, color=bc, ha="center")
    _note(ax, 5.4, 4.85, "to", size=11.5, color=bc, ha="center")
    # how they are saved
    code = [
        "from prefect_aws import AwsCredentials, S3Bucket",
        "",
        "creds = AwsCredentials(aws_access_key_id=...,",
        "                       aws_secret_access_key=...)",
        "creds.save(\"taxi-aws-creds\", overwrite=True)",
        "",
        "S3Bucket(bucket_name=\"taxi-course-data\",",
        "         credentials=creds).save(\"taxi-s3-bucket\")",
    ]
    _code(ax, 0.8, 0.75, 8.9, 2.8, code, size=13)
    # the bucket itself
    _box(ax, 11.0, 4.2, 4.6, 2.65, "S3 bucket", ["taxi-course-data/", "data/green_tripdata_2023-01.parquet",
                                                 "data/green_tripdata_2023-02.parquet"], kind="cloud", title_size=17,
         body_size=11.5, mono_body=True)
    _note(ax, 13.3, 3.9, "AWS S3, or the local moto_server", size=12, color=MUTED, ha="center")
    _arrow(ax, (9.7, 5.6), (11.0, 5.6), color=cc, label="boto3", label_offset=(0, 0.3))
    _box(ax, 11.0, 0.75, 4.6, 2.55, "Secret stays secret", ["SecretStr: masked in the UI,", "the CLI and repr()",
                                                            "code only needs the", "block NAME"],
         kind="neutral", title_size=15, body_size=12.5)
    _note(ax, 0.5, 0.2, "Register the block types once: prefect block register -m prefect_aws "
                           "(a fresh 3.9 server already knows them)", size=12)
    return fig


def load_s3_bucket():
    fig, ax = _canvas("Load the S3Bucket block in the flow and download the data",
                      "The flow code holds no key, no endpoint, no secret: only the block's name")
    code = [
        "from prefect import flow, task",
        "from prefect_aws import S3Bucket",
        "",
        "@task(retries=2)",
        "def download_data(block=\"taxi-s3-bucket\"):",
        "    s3_bucket = S3Bucket.load(block)",
        "    s3_bucket.download_folder_to_path(",
        "        from_folder=\"data/\", to_folder=\"data\")",
        "",
        "@flow",
        "def main_flow_s3(train_month=\"2023-01\",",
        "                 val_month=\"2023-02\"):",
        "    download_data()",
        "    df_train = read_data(\"data/green_..._2023-01.parquet\")",
        "    df_val = read_data(\"data/green_..._2023-02.parquet\")",
        "    ...  # add_features, train_best_model",
    ]
    _code(ax, 0.45, 2.2, 7.9, 5.4, code, title="taxi_s3.py", size=13, highlight=[5, 6, 7])
    _note(ax, 0.5, 1.75, "Note the slash in \"data/\": the prefix \"data\" also matches data2/…  and fails "
                         "(\"not in the subpath\").", size=12)
    pc, bc, cc, dc = (KINDS[k][0] for k in ("prefect", "block", "cloud", "data"))
    _box(ax, 9.3, 5.6, 2.85, 1.95, "Prefect server", ["block documents", "taxi-s3-bucket", "taxi-aws-creds"],
         kind="prefect", title_size=15, body_size=12)
    _box(ax, 12.85, 5.6, 2.75, 1.95, "S3 bucket", ["taxi-course-data", "data/*.parquet"], kind="cloud",
         title_size=15, body_size=12)
    _box(ax, 9.3, 1.35, 6.3, 2.6, "Flow run (on the worker)", ["1  S3Bucket.load(\"taxi-s3-bucket\")",
                                                                "2  block + nested credentials arrive",
                                                                "3  boto3 client with those credentials",
                                                                "4  files land in ./data/ → read_data"],
         kind="worker", title_size=15, body_size=12.5)
    _arrow(ax, (10.1, 3.95), (10.1, 5.6), color=pc, label="1 load by name", label_offset=(-0.05, 0))
    _arrow(ax, (11.2, 5.6), (11.2, 3.95), color=bc, label="2 config", label_offset=(0.05, 0))
    _arrow(ax, (13.6, 3.95), (13.6, 5.6), color=cc, label="3 list + GET", label_offset=(0, 0))
    _arrow(ax, (14.9, 5.6), (14.9, 3.95), color=dc, label="4 parquet", label_offset=(0, 0))
    _arrow(ax, (8.35, 5.0), (9.3, 3.2), color=KINDS["code"][0], label="runs", label_offset=(0.1, 0.1))
    return fig


def prefect_cloud():
    fig, ax = _canvas("Prefect Cloud: the server is hosted, the work stays on your machine",
                      "Only the Prefect server moves to a Cloud workspace; your worker polls it over HTTPS "
                      "(outbound only)")
    pc, wc, cc = (KINDS[k][0] for k in ("prefect", "worker", "cloud"))
    _container(ax, 0.4, 0.45, 6.9, 7.05, "your machine (or a VM)", kind="neutral", label_size=16)
    _box(ax, 0.85, 5.05, 6.0, 1.85, "Login once", ["prefect cloud login --key pnu_… \\", "  --workspace you/mlops"],
         kind="code", title_size=15, body_size=12.5, mono_body=True)
    _box(ax, 0.85, 2.75, 6.0, 1.95, "Worker", ["prefect worker start -p cloud-pool", "runs flow runs as local "
                                                                                 "processes"],
         kind="worker", title_size=16, body_size=12.5)
    _box(ax, 0.85, 0.8, 2.85, 1.6, "Code", ["orchestrate.py", "(or git clone)"], kind="code", title_size=15,
         body_size=12)
    _box(ax, 4.0, 0.8, 2.85, 1.6, "Data", ["local files", "or S3 (block)"], kind="data", title_size=15, body_size=12)
    _arrow(ax, (2.3, 2.75), (2.3, 2.4), color=wc, shrink=1)
    _arrow(ax, (5.4, 2.75), (5.4, 2.4), color=wc, shrink=1)
    _container(ax, 9.0, 0.45, 6.6, 7.05, "Prefect Cloud workspace", kind="cloud", label_size=16,
               sublabel="app.prefect.cloud")
    items = [("API + UI", ["hosted, always on, with users"]), ("Deployments & schedules", ["prefect deploy --all"]),
             ("Work pool  cloud-pool", ["queue of flow runs"]), ("Flow runs, logs, artifacts", ["history in one place"]),
             ("Blocks & automations", ["S3Bucket, notifications"])]
    for i, (title, lines) in enumerate(items):
        _box(ax, 9.4, 5.95 - i * 1.28, 5.8, 1.1, title, lines, kind="cloud", fill="white", title_size=14,
             body_size=11.5)
    _arrow(ax, (6.85, 3.95), (9.4, 3.95), color=wc, label="polls for runs (HTTPS)", label_offset=(0, 0.3),
           label_size=12)
    _arrow(ax, (9.4, 3.3), (6.85, 3.3), color=pc, label="states, logs, artifacts", dashed=True,
           label_offset=(0, -0.3))
    _arrow(ax, (6.85, 5.95), (9.4, 6.5), color=KINDS["code"][0], label="API key", label_offset=(0, 0.3))
    return fig


#: name -> function drawing it; the PNG is ``<out>/<name>.png``.
DIAGRAMS: dict[str, Callable] = {
    "ml_pipeline": ml_pipeline,
    "mlops_workflow": mlops_workflow,
    "prefect_terms_task_flow": prefect_terms_task_flow,
    "prefect_terms_deployment": prefect_terms_deployment,
    "development_environment": development_environment,
    "project_yaml": project_yaml,
    "aws_credentials_s3_bucket": aws_credentials_s3_bucket,
    "load_s3_bucket": load_s3_bucket,
    "prefect_cloud": prefect_cloud,
}

#: Screenshots of the real UI; the PNG is ``<out>/<name>.png``.
SCREENSHOTS = ("ui_flow_runs", "ui_flow_run", "ui_blocks", "ui_work_pool", "ui_artifact")
SCREENSHOTS += ("ui_automation_wizard", "ui_automations")  # lesson 09: _automation_scene, _automation_pages
ALL_NAMES = tuple(DIAGRAMS) + SCREENSHOTS


def _save_png(fig_or_path, path: Path, colors: int = 96) -> Path:
    """Save a figure (or re-save a PNG file) as a small palette PNG without timestamps."""
    import io

    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(fig_or_path, (str, Path)):
        image = Image.open(fig_or_path).convert("RGB")
    else:
        buffer = io.BytesIO()
        fig_or_path.savefig(buffer, format="png", dpi=DPI, facecolor=BG, metadata={"Software": None})
        _plt().close(fig_or_path)
        buffer.seek(0)
        image = Image.open(buffer).convert("RGB")
    image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, format="PNG", optimize=True)
    return path


def build_diagrams(out: Path | str = DEFAULT_OUT, only: Iterable[str] | None = None) -> dict[str, Path]:
    """Draw the diagrams (all, or those named in ``only``) into ``out``; returns name -> PNG path."""
    out = Path(out)
    names = [name for name in DIAGRAMS if only is None or name in set(only)]
    made = {}
    for name in names:
        made[name] = _save_png(DIAGRAMS[name](), out / f"{name}.png")
    return made


# =========================================================================== screenshots of the real UI

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
]
POOL = "local-pool"
WORKER_NAME = "local-pool-worker"
FLOW_RUNS = 2
#: The key of the markdown report the runs publish: the reference project's key (its orchestrate.py's
#: publish_report, lesson 06; course_lib/pipeline/project/orchestrate.py).
REPORT_KEY = "duration-model-report"
WAIT_MS = 60_000  # longest wait for a page's real content
_MARKER = ".course-images-workdir"
_BLOCK_ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect x="1" y="1" width="30" height="30" rx="6" '
    'fill="#fce7f3" stroke="#db2777" stroke-width="2"/><path d="M9 12l7-4 7 4v8l-7 4-7-4z" fill="none" '
    'stroke="#db2777" stroke-width="2" stroke-linejoin="round"/><path d="M9 12l7 4 7-4M16 16v8" fill="none" '
    'stroke="#db2777" stroke-width="2" stroke-linejoin="round"/></svg>')


@dataclass
class Shot:
    """One screenshot: where it is, which page, what it waited for and the text visible when taken."""

    name: str
    path: Path
    url: str
    expected: list[str]
    text: str = ""
    seconds: float = 0.0


@dataclass
class BuildResult:
    """What :func:`build` made: diagram paths, screenshots (with their visible text), timings, service pids."""

    diagrams: dict[str, Path] = field(default_factory=dict)
    shots: dict[str, Shot] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    service_pids: list[int] = field(default_factory=list)
    scene: dict = field(default_factory=dict)  # run names, block names, worker, artifact shown

    def to_json(self) -> dict:
        return {
            "diagrams": {name: str(path) for name, path in self.diagrams.items()},
            "shots": {name: {**asdict(shot), "path": str(shot.path)} for name, shot in self.shots.items()},
            "timings": self.timings,
            "service_pids": self.service_pids,
            "scene": self.scene,
        }


def find_chromium() -> str:
    """The Chromium binary Playwright drives: ``COURSE_CHROMIUM``, else Debian's ``/usr/bin/chromium``."""
    try:
        configured = settings.read("chromium")
    except settings.SettingError as exc:
        raise ImageError(f"{exc} ({CHROMIUM_HINT})") from None
    if configured is not None:
        return str(configured)
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ImageError(f"Chromium is needed for the UI screenshots but was not found (looked for /usr/bin/chromium "
                     f"and chromium on PATH); {CHROMIUM_HINT}.")


def _require_playwright() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        raise ImageError(f"The Python package playwright is needed for the UI screenshots; {PLAYWRIGHT_HINT}.") from None


@contextlib.contextmanager
def _isolated_environment(workdir: Path) -> Iterator[None]:
    """Point the course and Prefect at ``workdir`` (no inherited server); restore everything afterwards."""
    from course_lib import services

    updates: dict[str, str | None] = {
        "COURSE_WORKDIR": str(workdir),
        "PREFECT_HOME": str(workdir / "client-home"),
        "PREFECT_API_URL": None,          # never reuse another server: this one must have the UI
        "PREFECT_API_KEY": None,
        "PREFECT_API_AUTH_STRING": None,
        "PREFECT_PROFILE": None,
        "COURSE_PREFECT_PORT": None,
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
        "PREFECT_LOGGING_COLORS": "false",
    }
    updates.update({key: value for key, value in services.HEADLESS_ENV.items() if key not in updates})
    with services.temporary_env(updates):
        yield


def _fresh_workdir(workdir: Path) -> Path:
    """A clean working folder for the screenshots (only ever deletes a folder this module created)."""
    workdir = workdir.expanduser().resolve()
    if workdir.exists():
        if (workdir / _MARKER).exists():
            shutil.rmtree(workdir)
        elif any(workdir.iterdir()):
            raise ImageError(f"The screenshot working folder {workdir} exists and was not made by course_lib.tooling.images; "
                             "pass an empty or new folder (--workdir), so that the screenshots show fresh data only.")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / _MARKER).write_text("made by course_lib.tooling.images; deleted and re-created on every build\n")
    return workdir


def _save_blocks(endpoint) -> tuple[str, str]:
    """Save the AwsCredentials and S3Bucket blocks (against the local S3 endpoint); return their names."""
    from course_lib.services import s3

    target = s3.choose_target(endpoint=endpoint)
    s3.ensure_bucket(target, create=True)
    s3.save_blocks(target)
    return s3.CREDENTIALS_BLOCK, s3.BUCKET_BLOCK


def _make_scene(stack: contextlib.ExitStack, result: BuildResult) -> dict:
    """Start the services and produce the real data the screenshots show; returns names, ids and the UI URL.

    The runs are the learner's flow as the course leaves it: ``main_flow`` of the reference
    project's ``orchestrate.py`` (its tasks, its report artifacts), imported from its one source.
    """
    from course_lib import services
    from course_lib.tooling import project

    t0 = time.monotonic()
    server = stack.enter_context(services.PrefectServer(ui=True, name="images"))
    result.service_pids.append(server.pid)
    result.timings["server start"] = time.monotonic() - t0

    # The worker comes ONLINE (~10 s) while the flows run.
    services.ensure_work_pool(POOL, server=server)
    worker = services.Worker(POOL, name=WORKER_NAME, server=server)
    stack.callback(worker.stop)
    worker_error: list[BaseException] = []

    def start_worker() -> None:
        try:
            worker.start()
        except BaseException as exc:  # reported in the main thread
            worker_error.append(exc)

    worker_thread = threading.Thread(target=start_worker, name="images-worker-start", daemon=True)
    worker_thread.start()

    t1 = time.monotonic()
    main_flow = project.reference_module("orchestrate").main_flow

    run_ids = []
    for _ in range(FLOW_RUNS):
        state = main_flow(source="synthetic", num_boost_round=10, return_state=True)
        if not state.is_completed():
            raise ImageError(f"main_flow ended {state.name}, not Completed: {state.message}")
        run_ids.append(state.state_details.flow_run_id)
    result.timings["flow runs"] = time.monotonic() - t1

    s3_endpoint = stack.enter_context(services.S3Endpoint())
    result.service_pids.append(s3_endpoint.pid)
    credentials_block, bucket_block = _save_blocks(s3_endpoint)

    worker_thread.join(timeout=worker.timeout + 30)
    if worker_error:
        raise worker_error[0]
    if worker_thread.is_alive() or not worker.running:
        raise ImageError(f"The worker {WORKER_NAME!r} did not come ONLINE; see its log {worker.log_path}.")
    result.service_pids.append(worker.pid)

    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        runs = [client.read_flow_run(run_id) for run_id in run_ids]
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[REPORT_KEY])))
    latest = [a for a in artifacts if a.flow_run_id == run_ids[-1]]
    if not latest:
        raise ImageError(f"The flow run {runs[-1].name} published no {REPORT_KEY!r} artifact.")
    _drain_logs()
    result.scene = {
        "ui": server.ui_url,
        "flow": "main-flow",
        "run_names": [run.name for run in runs],
        "run_id": str(run_ids[-1]),
        "blocks": [credentials_block, bucket_block],
        "pool": POOL,
        "worker": WORKER_NAME,
        "artifact_id": str(latest[0].id),
        "artifact_key": REPORT_KEY,
    }
    result.scene.update(_automation_scene())
    result.timings["scene"] = time.monotonic() - t0
    return result.scene


AUTOMATION = "training-failed"


def _automation_scene() -> dict:
    """Lesson 09's automation (failed/crashed training run -> webhook notification), saved on the server.

    The webhook block points at a port where nothing listens: the screenshots need no receiver.
    """
    from prefect.automations import Automation, EventTrigger, Posture, SendNotification
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block_id = CustomWebhookNotificationBlock(name="course-slack", url="http://127.0.0.1:9/hooks/course",
                                              json_data={"text": "*{{subject}}*\n{{body}}"}).save(
        "course-slack", overwrite=True)
    Automation(name=AUTOMATION, description="Tell the team when a run of the training flow fails or crashes.",
               trigger=EventTrigger(expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                                    match_related={"prefect.resource.role": "flow", "prefect.resource.name": "main-flow"},
                                    posture=Posture.Reactive, threshold=1),
               actions=[SendNotification(block_document_id=block_id, subject="Training run {{ flow_run.name }} failed",
                                         body="{{ flow_run.state.message }}")]).create()
    return {"automation": AUTOMATION}


def _automation_pages(scene: dict) -> list[tuple[str, str, list[str]]]:
    """The automation wizard's first step (its three steps named at the top) and the automations list."""
    return [
        ("ui_automation_wizard", "/v2/automations/create", ["Trigger", "Actions", "Details"]),
        ("ui_automations", "/v2/automations", [scene["automation"], "Trigger", "Action", "course-slack"]),
    ]


def _drain_logs() -> None:
    """Send this process's queued logs to the API now, so the flow run page shows all of them."""
    from course_lib import services

    services.base._drain_prefect_clients(timeout=10)


def _pages(scene: dict) -> list[tuple[str, str, list[str]]]:
    """(name, path in the UI, texts that must be visible) for each screenshot."""
    first, last = scene["run_names"][0], scene["run_names"][-1]
    return [
        ("ui_flow_runs", "/v2/runs", ["main-flow", first, last, "Completed"]),
        ("ui_flow_run", f"/v2/runs/flow-run/{scene['run_id']}?tab=Logs",
         [last, "main-flow", "validation RMSE", "Finished in state Completed"]),
        ("ui_blocks", "/v2/blocks", scene["blocks"] + ["AWS Credentials", "S3 Bucket"]),
        ("ui_work_pool", f"/v2/work-pools/work-pool/{POOL}?tab=Workers", [POOL, WORKER_NAME, "Online"]),
        ("ui_artifact", f"/v2/artifacts/artifact/{scene['artifact_id']}",
         [scene["artifact_key"], "RMSE report", "Validation RMSE (minutes)"]),
    ] + _automation_pages(scene)


def _take_screenshots(scene: dict, out: Path, names: list[str], chromium: str, profile: Path) -> dict[str, Shot]:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    shots: dict[str, Shot] = {}
    with sync_playwright() as playwright:
        try:
            context = playwright.chromium.launch_persistent_context(
                str(profile), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
                viewport=VIEWPORT, device_scale_factor=1, color_scheme="light", locale="en-US",
                timezone_id="UTC")
        except PlaywrightError as exc:
            raise ImageError(f"Chromium ({chromium}) did not start under Playwright: {exc}. Fix: check that "
                             f"`{chromium} --headless --no-sandbox --dump-dom about:blank` works; {CHROMIUM_HINT}.") from exc
        try:
            # The machine may be offline: pictures from other hosts (the block types' logos) get a
            # neutral local icon at once, anything else from other hosts is refused at once.
            local = scene["ui"].rstrip("/")

            def outside(route, request) -> None:
                if request.url.startswith(local):
                    route.continue_()
                elif request.resource_type == "image":
                    route.fulfill(status=200, content_type="image/svg+xml", body=_BLOCK_ICON_SVG)
                else:
                    route.abort()

            context.route("**/*", outside)
            page = context.pages[0] if context.pages else context.new_page()
            for name, path, expected in _pages(scene):
                if name not in names:
                    continue
                t0 = time.monotonic()
                url = scene["ui"] + path
                page.goto(url, wait_until="domcontentloaded")
                for text in expected:
                    try:
                        page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=WAIT_MS)
                    except PlaywrightError as exc:
                        seen = page.inner_text("body")[:1500]
                        raise ImageError(f"{name}: the page {url} never showed {text!r} within {WAIT_MS / 1000:.0f} s "
                                         f"({type(exc).__name__}). Visible text:\n{seen}") from exc
                with contextlib.suppress(PlaywrightError):
                    page.wait_for_load_state("networkidle", timeout=5_000)
                page.wait_for_timeout(1_500)  # let the run graph and fonts settle
                png = out / f"{name}.png"
                raw = profile.parent / f"{name}.raw.png"
                page.screenshot(path=str(raw), full_page=False)
                _save_png(raw, png, colors=256)
                raw.unlink()
                shots[name] = Shot(name, png, url, expected, page.inner_text("body"), time.monotonic() - t0)
                print(f"screenshot {png} ({shots[name].seconds:.1f} s)")
        finally:
            context.close()
    return shots


def build_screenshots(out: Path | str = DEFAULT_OUT, only: Iterable[str] | None = None,
                      workdir: Path | str = DEFAULT_WORKDIR, result: BuildResult | None = None) -> dict[str, Shot]:
    """Start a real server with real runs, blocks and a worker; screenshot the UI pages into ``out``.

    Every service is stopped before this returns or raises.
    """
    result = result if result is not None else BuildResult()
    names = [name for name in SCREENSHOTS if only is None or name in set(only)]
    if not names:
        return {}
    chromium = find_chromium()  # fail before starting anything
    _require_playwright()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = _fresh_workdir(Path(workdir))
    t0 = time.monotonic()
    with _isolated_environment(workdir), contextlib.ExitStack() as stack:
        scene = _make_scene(stack, result)
        t1 = time.monotonic()
        shots = _take_screenshots(scene, out, names, chromium, workdir / "chromium-profile")
        result.timings["screenshots (browser)"] = time.monotonic() - t1
    result.timings["screenshots total"] = time.monotonic() - t0
    result.shots.update(shots)
    return shots


def build(out: Path | str = DEFAULT_OUT, only: Iterable[str] | None = None,
          workdir: Path | str = DEFAULT_WORKDIR) -> BuildResult:
    """Build the diagrams and the screenshots (all, or those named in ``only``)."""
    result = BuildResult()
    t0 = time.monotonic()
    result.diagrams = build_diagrams(out, only)
    result.timings["diagrams"] = time.monotonic() - t0
    build_screenshots(out, only, workdir, result)
    return result


def _expand(only: list[str] | None) -> list[str] | None:
    if not only:
        return None
    groups = {"diagrams": list(DIAGRAMS), "screenshots": list(SCREENSHOTS)}
    names: list[str] = []
    for item in only:
        item = item.removesuffix(".png")
        if item in groups:
            names += groups[item]
        elif item in ALL_NAMES:
            names.append(item)
        else:
            raise SystemExit(f"unknown picture {item!r}; choose from: diagrams, screenshots, {', '.join(ALL_NAMES)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.tooling.images", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the PNG files (default: imgs/)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="build only these pictures; also the groups 'diagrams' and 'screenshots'")
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR),
                        help="working folder of the screenshot server (deleted and re-created; default build/images-work)")
    parser.add_argument("--report", help="write a JSON report (paths, visible text of each screenshot, timings) here")
    parser.add_argument("--list", action="store_true", help="list the picture names and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(ALL_NAMES))
        return 0
    only = _expand(args.only)
    result = BuildResult()
    try:
        t0 = time.monotonic()
        result.diagrams = build_diagrams(args.out, only)
        result.timings["diagrams"] = time.monotonic() - t0
        build_screenshots(args.out, only, args.workdir, result)
    except Exception as exc:
        from course_lib.services import ServiceError

        if not isinstance(exc, (ImageError, ServiceError)):
            raise
        print(f"course_lib.tooling.images: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.report:
            Path(args.report).parent.mkdir(parents=True, exist_ok=True)
            Path(args.report).write_text(json.dumps(result.to_json(), indent=2, default=str))
    made = len(result.diagrams) + len(result.shots)
    timing = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.timings.items())
    print(f"{made} picture(s) in {args.out} ({timing})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
