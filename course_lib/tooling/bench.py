"""`make bench`: the course's speed and size figures, each compared side by side in one run.

The machines the course runs on are small and shared, so absolute seconds are noisy; each
figure is therefore a ratio or a difference of two measurements taken in the same run, next to
the absolute medians. Nothing here is a test: it prints, and writes build/bench.json.

    python -m course_lib.tooling.bench [--only training,overhead,imports,deployments,latency,course,setup]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from course_lib import paths

SECTIONS = ("training", "overhead", "imports", "deployments", "latency", "course", "setup")
RESULTS: list[dict] = []


def record(name: str, value: float, unit: str, target: str = "", ok: bool | None = None, detail: str = "") -> None:
    RESULTS.append({"figure": name, "value": round(value, 3), "unit": unit, "target": target,
                    "ok": ok, "detail": detail})
    verdict = "" if ok is None else ("  ok" if ok else "  MISSED")
    print(f"  {name:<52} {value:>9.3f} {unit:<4} {target:<14}{verdict}  {detail}", flush=True)


def timed(function, repeats: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls, and the last result."""
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


# ---------------------------------------------------------------- 1. training
def bench_training() -> None:
    from course_lib.ml import data, training

    shared = paths.shared_data_dir()
    if shared and (shared / data.month_filename(2023, 1)).exists():
        months = [data.load_month(str(shared / data.month_filename(2023, m))) for m in (1, 2)]
        which = "real TLC Jan->Feb 2023"
    else:
        months = [data.make_synthetic_month(2023, m) for m in (1, 2)]
        which = "synthetic Jan->Feb 2023 (real files absent)"
    print(f"training on {which}")

    def fit(mode):
        X_train, X_val, y_train, y_val, _ = training.build_features(*months, mode=mode)
        return training.train_booster(X_train, y_train, X_val, y_val, mode=mode)[1]

    fast_s, fast_rmse = timed(lambda: fit("fast"), 5)
    reference_s, reference_rmse = timed(lambda: fit("reference"), 3)
    record("reference mode: features + training", reference_s, "s", detail=f"RMSE {reference_rmse:.5f}")
    record("fast mode: features + training", fast_s, "s", detail=f"RMSE {fast_rmse:.5f}")
    record("training speed-up (reference / fast)", reference_s / fast_s, "x", ">= 10", reference_s / fast_s >= 10)
    record("fast RMSE - reference RMSE", fast_rmse - reference_rmse, "min", "<= 0", fast_rmse <= reference_rmse,
           which)


# ---------------------------------------------------------------- 2. orchestration overhead
def bench_overhead() -> None:
    from course_lib.pipeline import flows

    def plain():
        df_train = flows.read_data.fn("2023-01", source="synthetic")
        df_val = flows.read_data.fn("2023-02", source="synthetic")
        features = flows.add_features.fn(df_train, df_val)
        return flows.train_best_model.fn(*features)[0]

    def orchestrated():
        return flows.main_flow("2023-01", "2023-02", source="synthetic")

    # Outside a flow, Prefect warns that artifacts created there are deprecated; expected here.
    warnings.filterwarnings("ignore", message="Artifact creation outside of a flow")
    plain()  # warm imports and the MLflow store once, for both
    plain_s, _ = timed(plain, 3)
    flow_s, _ = timed(orchestrated, 3)
    record("pipeline as plain functions", plain_s, "s")
    record("pipeline as a flow against the server", flow_s, "s")
    record("orchestration overhead (flow - plain)", flow_s - plain_s, "s", "<= 1.5", flow_s - plain_s <= 1.5)


# ---------------------------------------------------------------- 3. import time
def _command_seconds(argv: list[str], repeats: int = 5, env: dict | None = None) -> float:
    def run():
        subprocess.run(argv, check=True, capture_output=True, env={**os.environ, **(env or {})})
    run()  # page cache
    return timed(run, repeats)[0]


def prefect_only_env() -> Path:
    """A venv holding only Prefect (the lock's version), for the import-time comparison."""
    from importlib import metadata

    folder = paths.REPO_ROOT / "build" / "bench" / "prefect-only"
    python = folder / "bin" / "python"
    if not python.exists():
        uv = Path(sys.executable).parent / "uv"
        subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(folder)], check=True)
        subprocess.run([str(uv), "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python),
                        f"prefect=={metadata.version('prefect')}"], check=True)
    return folder


def bench_imports() -> None:
    other = prefect_only_env()
    env = {"PREFECT_HOME": tempfile.mkdtemp(prefix="bench-prefect-home-")}
    here_import = _command_seconds([sys.executable, "-c", "import prefect"], env=env)
    only_import = _command_seconds([str(other / "bin" / "python"), "-c", "import prefect"], env=env)
    here_cli = _command_seconds([str(Path(sys.executable).parent / "prefect"), "--version"], 3, env)
    only_cli = _command_seconds([str(other / "bin" / "prefect"), "--version"], 3, env)
    record("import prefect: course env", here_import, "s")
    record("import prefect: Prefect-only env", only_import, "s")
    record("import time ratio (course / Prefect only)", here_import / only_import, "x", "<= 1.2",
           here_import / only_import <= 1.2)
    record("prefect --version: course env", here_cli, "s")
    record("prefect --version: Prefect-only env", only_cli, "s")
    record("CLI time ratio (course / Prefect only)", here_cli / only_cli, "x", "<= 1.2", here_cli / only_cli <= 1.2)


# ---------------------------------------------------------------- 4. deployments
def bench_deployments() -> None:
    from prefect.deployments import run_deployment

    from course_lib.tooling import deployments
    from course_lib import services

    cold = []
    for attempt in range(2):  # each on a fresh database
        server = services.PrefectServer(name=f"bench-cold-{attempt}-{time.time_ns()}", ui=False, export=False)
        with server:
            cold.append(server.startup_seconds)
    record("server cold start to healthy (no UI)", statistics.median(cold), "s")

    project = paths.subdir("bench-project")
    deployments.init_project(project, show=False)
    services.ensure_work_pool("bench-pool")
    with services.Worker("bench-pool") as worker:
        record("worker start to ONLINE", worker.startup_seconds, "s")
        deployments.prefect_cli("deploy", "orchestrate.py:main_flow", "-n", "bench", "-p", "bench-pool",
                                cwd=project, show=False)
        seconds = []
        for _ in range(3):
            start = time.perf_counter()
            flow_run = run_deployment("main-flow/bench", parameters={"source": "synthetic"}, timeout=0, _sync=True)
            state = deployments.wait_for_flow_run(flow_run.id, poll_seconds=0.2)
            seconds.append(time.perf_counter() - start)
            assert state == "Completed", state
    median = statistics.median(seconds)
    record("deployment trigger -> Completed (taxi_local_data)", median, "s", "<= 8", median <= 8,
           "runs: " + ", ".join(f"{s:.1f}" for s in seconds))


# ---------------------------------------------------------------- 4b. deployment latency, part by part
LATENCY_RUNS = 5
LATENCY_TARGET_S = 5.0

# One MLflow logging as train_best_model does it, in a fresh process (as in a flow run): the
# seconds from `import mlflow` to the model logged, training excluded.
_MLFLOW_PROBE = """
import sys, time
import numpy as np, xgboost as xgb
from course_lib.pipeline import tracking
booster = xgb.train({"max_depth": 2}, xgb.DMatrix(np.random.rand(50, 3), label=np.random.rand(50)), 2)
start = time.perf_counter()
import mlflow, mlflow.xgboost
tracking.setup_mlflow()
with mlflow.start_run():
    mlflow.log_params({"max_depth": 2})
    mlflow.log_metric("rmse", 1.0)
    mlflow.log_artifact(__file__ if "__file__" in globals() else sys.executable, artifact_path="preprocessor")
    mlflow.xgboost.log_model(booster, name="models_mlflow", pip_requirements=[f"xgboost-cpu=={xgb.__version__}"])
print(time.perf_counter() - start)
"""


def _median_subprocess_seconds(code: str, repeats: int = 3) -> float:
    """Median wall seconds of ``python -c code`` (a fresh process, as a flow run is)."""
    return _command_seconds([sys.executable, "-c", code], repeats)


def _probe_seconds(code: str, repeats: int = 3) -> float:
    """Median of the number a fresh ``python -c code`` prints."""
    values = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"}).stdout
        values.append(float(out.strip().splitlines()[-1]))
    return statistics.median(values)


def _run_parts(client, flow_run_id, triggered: float, seen: float) -> dict[str, float]:
    """Seconds of each observable part of one deployment run, from the server's timestamps."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    states = {state.type.value: state.timestamp.timestamp() for state in client.read_flow_run_states(flow_run_id)}
    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))

    def task_seconds(prefix: str) -> float:
        return sum((t.end_time - t.start_time).total_seconds() for t in tasks
                   if t.name.startswith(prefix) and t.start_time and t.end_time)

    return {
        "total": seen - triggered,
        "poll": states["PENDING"] - triggered,
        "pending_to_running": states["RUNNING"] - states["PENDING"],
        "body": states["COMPLETED"] - states["RUNNING"],
        "read_and_features": task_seconds("read_data") + task_seconds("add_features"),
        "train_and_mlflow": task_seconds("train_best_model"),
        "reports": task_seconds("publish_reports"),
        "seen": seen - states["COMPLETED"],
    }


def bench_latency() -> None:
    """`taxi_local_data` (prefect.yaml) run by a course worker: trigger -> Completed, part by part.

    The parts come from the server's state timestamps (Scheduled -> Pending -> Running ->
    Completed) and task runs; what happens inside Pending -> Running (a new process, `import
    prefect`, the flow's module) and MLflow's share of the training task are measured in fresh
    processes of their own, as a flow run starts them.
    """
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from course_lib import services
    from course_lib.ml import training
    from course_lib.tooling import deployments

    pool, deployment = deployments.LOCAL_POOL, f"main-flow/{deployments.LOCAL_DEPLOYMENT}"
    services.ensure_work_pool(pool)
    deployments.prefect_cli("deploy", "--name", deployments.LOCAL_DEPLOYMENT, cwd=paths.REPO_ROOT, show=False)
    parameters = {"source": "synthetic", "num_boost_round": 10}
    runs: list[dict[str, float]] = []
    with services.Worker(pool) as worker, get_client(sync_client=True) as client:
        for attempt in range(LATENCY_RUNS + 1):  # the first run warms the page cache, not counted
            triggered = time.time()
            flow_run = run_deployment(deployment, parameters=parameters, timeout=0, _sync=True)
            state = deployments.wait_for_flow_run(flow_run.id, poll_seconds=0.1)
            seen = time.time()
            assert state == "Completed", state
            if attempt:
                runs.append(_run_parts(client, flow_run.id, triggered, seen))
        query_seconds = worker.query_seconds

    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    engine_s = _median_subprocess_seconds("import prefect.engine")
    flow_module_s = max(0.0, _median_subprocess_seconds("import prefect.engine, course_lib.pipeline.flows") - engine_s)
    mlflow_s = _probe_seconds(_MLFLOW_PROBE)
    setup_s = max(0.0, median("pending_to_running") - engine_s - flow_module_s)
    body_other = max(0.0, median("body") - median("read_and_features") - median("train_and_mlflow") - median("reports"))
    total = median("total")
    record("latency: waiting for the worker's poll", median("poll"), "s", f"<= {query_seconds:g}",
           median("poll") <= query_seconds + 0.5,
           f"floor: the worker asks every {query_seconds:g} s (PREFECT_WORKER_QUERY_SECONDS), ~half of it on average")
    record("latency: process start + import prefect", engine_s, "s", detail="floor: Prefect's own import, "
           "paid by every flow run process")
    record("latency: importing the flow's module", flow_module_s, "s",
           detail="pandas + xgboost (which imports scikit-learn) + course_lib: what the run uses")
    record("latency: engine setup (pull step, API calls)", setup_s, "s", detail="Pending -> Running, minus the two above")
    record("latency: flow body: read data + features", median("read_and_features"), "s")
    record("latency: flow body: training + MLflow logging", median("train_and_mlflow"), "s",
           detail=f"of which MLflow logging ~{mlflow_s:.2f} s (import mlflow, log params/metric/artifact/model)")
    record("latency: flow body: reports (artifacts)", median("reports"), "s")
    record("latency: flow body: other (flow engine, results)", body_other, "s")
    record("latency: Completed -> seen by the caller", median("seen"), "s", detail="the caller polls every 0.1 s")
    record("deployment trigger -> Completed (taxi_local_data, median)", total, "s", f"<= {LATENCY_TARGET_S:g}",
           total <= LATENCY_TARGET_S, f"{len(runs)} runs: " + ", ".join(f"{run['total']:.1f}" for run in runs))


# ---------------------------------------------------------------- 5. course and setup
def bench_course() -> None:
    from course_lib.tooling import runner

    start = time.perf_counter()
    runs = runner.run_course(quick=True, out_dir=paths.REPO_ROOT / "build" / "bench" / "executed")
    total = time.perf_counter() - start
    for run in runs:
        record(f"  {run.name} ({run.status})", run.seconds, "s")
    record("whole course, quick parameters, one server", total, "s", "<= 480", total <= 480)


def bench_setup() -> None:
    uv = Path(sys.executable).parent / "uv"
    lock = paths.REPO_ROOT / "requirements.lock"
    with tempfile.TemporaryDirectory(prefix="bench-setup-") as folder:
        venv = Path(folder) / "venv"
        start = time.perf_counter()
        subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
        subprocess.run([str(uv), "pip", "sync", "--quiet", "--no-cache", "--compile-bytecode", "--python", str(venv / "bin" / "python"),
                        str(lock)], check=True)
        seconds = time.perf_counter() - start
        size = int(subprocess.run(["du", "-sm", str(venv)], capture_output=True, text=True).stdout.split()[0])
    record("fresh setup from the lock (no cache: downloads)", seconds, "s", "<= 120", seconds <= 120)
    record("environment size", size / 1024, "GB", "<= 1", size <= 1024)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.tooling.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS))
    chosen = [name.strip() for name in parser.parse_args(argv).only.split(",") if name.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    os.environ.setdefault("COURSE_WORKDIR", str(paths.REPO_ROOT / "build" / "bench" / "work"))
    os.environ.setdefault("COURSE_PREFECT_UI", "0")
    from course_lib.tooling import bootstrap
    from course_lib import services

    bootstrap.apply_headless_env()
    needs_server = {"overhead", "deployments"} & set(chosen)
    server = services.PrefectServer(name="bench").start() if needs_server else None
    try:
        for name in chosen:
            print(f"\n== {name}", flush=True)
            globals()[f"bench_{name}"]()
    finally:
        if server is not None:
            server.stop()
    out = paths.REPO_ROOT / "build" / "bench.json"
    out.write_text(json.dumps(RESULTS, indent=2))
    missed = [row["figure"] for row in RESULTS if row["ok"] is False]
    print(f"\n{len(RESULTS)} figures written to {out}; targets missed: {missed or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
