"""`make bench`: the course's speed and size figures, each compared side by side in one run.

The machines the course runs on are small and shared, so absolute seconds are noisy; each
figure is therefore a ratio or a difference of two measurements taken in the same run, next to
the absolute medians. Nothing here is a test: it prints, and writes build/bench.json.

    python -m course_lib.tooling.bench [--only training,overhead,imports,deployments,course,setup,scaleout]
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

SECTIONS = ("training", "overhead", "imports", "deployments", "course", "setup", "scaleout")
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


# ---------------------------------------------------------------- 7. scale-out (lesson 08)
def bench_scaleout() -> None:
    """The search on a 2-worker Dask cluster vs the same search sequential; Dask's overhead on a trivial map."""
    from course_lib import services

    source = _search_source()  # before the workers start: they inherit COURSE_DATA_DIR
    own_server = None if os.environ.get("PREFECT_API_URL") else services.PrefectServer(name="bench-scaleout").start()
    try:
        with services.DaskCluster(n_workers=2, preload=["course_lib.pipeline.search"], name="bench") as cluster:
            _bench_search_on_dask(cluster.address, source)
            _bench_dask_overhead(cluster.address)
    finally:
        if own_server is not None:
            own_server.stop()


def _search_source() -> str:
    from course_lib.ml import data

    shared = paths.shared_data_dir()
    if shared and (shared / data.month_filename(2023, 1)).exists():
        os.environ.setdefault("COURSE_DATA_DIR", str(shared))
        return "file"
    return "synthetic"


def _bench_search_on_dask(address: str, source: str) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from course_lib.pipeline import search

    sequential = search.hyperparameter_search.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1))
    on_dask = search.hyperparameter_search.with_options(task_runner=DaskTaskRunner(address=address))
    for flow in (sequential, on_dask):  # warm: imports, MLflow store, the workers' first task
        flow(grid=search.GRID[:2], source=source, num_boost_round=5)
    sequential_s, sequential_result = timed(lambda: sequential(source=source), 2)
    dask_s, dask_result = timed(lambda: on_dask(source=source), 2)
    same = sequential_result["best"]["rmse"] == dask_result["best"]["rmse"]
    record(f"search, {len(search.GRID)} configs x {search.SEARCH_ROUNDS} rounds: sequential", sequential_s, "s",
           detail=f"{source} data")
    record("search on Dask, 2 workers x 1 thread", dask_s, "s")
    record("search speed-up (sequential / Dask 2 workers)", sequential_s / dask_s, "x", ">= 1.6",
           sequential_s / dask_s >= 1.6)
    record("best RMSE: Dask - sequential", dask_result["best"]["rmse"] - sequential_result["best"]["rmse"], "min",
           "== 0", same, f"best {dask_result['best']['rmse']:.5f}")


def _bench_dask_overhead(address: str) -> None:
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    @task
    def identity(number: int) -> int:
        return number

    @flow
    def trivial_map() -> list:
        return identity.map(range(20)).result()

    runners = {"thread runner": ThreadPoolTaskRunner(max_workers=2),
               "Dask runner, existing cluster": DaskTaskRunner(address=address),
               "Dask runner, new LocalCluster": DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1})}
    seconds = {}
    for name, runner in runners.items():
        run = trivial_map.with_options(task_runner=runner)
        run()  # warm
        seconds[name], _ = timed(run, 3)
        record(f"trivial 20-task map: {name}", seconds[name], "s")
    threads = seconds["thread runner"]
    record("Dask overhead per task (existing cluster - threads) / 20",
           (seconds["Dask runner, existing cluster"] - threads) / 20 * 1000, "ms")
    record("Dask / thread runner, trivial map (existing cluster)", seconds["Dask runner, existing cluster"] / threads, "x")
    record("Dask / thread runner, trivial map (new LocalCluster)", seconds["Dask runner, new LocalCluster"] / threads, "x")


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
