"""`make bench`: the course's speed and size figures, each compared side by side in one run.

The machines the course runs on are small and shared, so absolute seconds are noisy; each
figure is therefore a ratio or a difference of two measurements taken in the same run, next to
the absolute medians. Nothing here is a test: it prints, and writes build/bench.json.

    python -m course_lib.tooling.bench [--only training,overhead,imports,deployments,latency,course,setup,scaleout]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from course_lib import paths, settings

SECTIONS = ("training", "overhead", "imports", "deployments", "latency", "course", "setup", "scaleout")
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
LATENCY_TARGET_S = 5.0

def _log_times(client, flow_run_id) -> dict[str, float]:
    """When the flow run's own log lines were written (the engine logs its pull steps and start)."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    marks = {"Running ": "pull_started", "All deployment steps completed": "pull_done"}
    times: dict[str, float] = {}
    logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)
    for log in logs:
        for prefix, name in marks.items():
            if log.message.startswith(prefix):
                times[name] = min(times.get(name, float("inf")), log.timestamp.timestamp())
    return times


def _mlflow_times(flow_run_id) -> dict[str, float]:
    """The MLflow run the flow run wrote: its start, when the RMSE was logged (training done), its end."""
    import mlflow

    from course_lib.pipeline import tracking

    client = mlflow.MlflowClient(tracking_uri=tracking.tracking_uri())
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT_NAME)
    runs = client.search_runs([experiment.experiment_id], f"tags.prefect_flow_run_id = '{flow_run_id}'")
    if not runs:
        return {}
    run = runs[0]
    rmse = client.get_metric_history(run.info.run_id, "rmse")
    return {"start": run.info.start_time / 1000, "trained": rmse[-1].timestamp / 1000 if rmse else float("nan"),
            "end": run.info.end_time / 1000}


def _run_parts(client, flow_run_id, triggered: float, seen: float) -> dict[str, float]:
    """Seconds of each part of one deployment run, from the server's state timestamps, the flow
    run's log lines, its task runs and the MLflow run it wrote."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    states = {state.type.value: state.timestamp.timestamp() for state in client.read_flow_run_states(flow_run_id)}
    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    logs = _log_times(client, flow_run_id)
    ml = _mlflow_times(flow_run_id)

    def of(function: str, task) -> bool:  # the task key starts with the function's name; run names are free
        return (task.task_key or "").startswith(function) or task.name.startswith(function)

    def task_seconds(function: str) -> float:
        return sum((t.end_time - t.start_time).total_seconds() for t in tasks
                   if of(function, t) and t.start_time and t.end_time)

    train_task = next((t for t in tasks if of("train_best_model", t) and t.start_time), None)
    nan = float("nan")
    return {
        "total": seen - triggered,
        "poll": states["PENDING"] - triggered,
        "process": logs.get("pull_started", nan) - states["PENDING"],
        "pull": logs.get("pull_done", nan) - logs.get("pull_started", nan),
        "flow_module": states["RUNNING"] - logs.get("pull_done", nan),  # the engine loads the flow, then Running
        "read_and_features": task_seconds("read_data") + task_seconds("add_features"),
        "mlflow_setup": (ml.get("start", nan) - train_task.start_time.timestamp()) if train_task else nan,
        "training": ml.get("trained", nan) - ml.get("start", nan),
        "mlflow_logging": ml.get("end", nan) - ml.get("trained", nan),
        "train_task": task_seconds("train_best_model"),
        "reports": task_seconds("publish_reports"),
        "body": states["COMPLETED"] - states["RUNNING"],
        "seen": seen - states["COMPLETED"],
    }


def bench_latency() -> None:
    """`taxi_local_data` (prefect.yaml) run by a course worker: trigger -> Completed, part by part.

    Every part is measured inside the real runs: the server's state timestamps (Scheduled ->
    Pending -> Running -> Completed; the engine proposes Running once the flow's module is
    imported), the flow run's own log lines (the engine logs its pull steps), its task runs, and the
    MLflow run it wrote (start, when the RMSE was logged, end).
    """
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from course_lib import services
    from course_lib.tooling import deployments

    pool, deployment = deployments.LOCAL_POOL, f"main-flow/{deployments.LOCAL_DEPLOYMENT}"
    services.ensure_work_pool(pool)
    deployments.prefect_cli("deploy", "--name", deployments.LOCAL_DEPLOYMENT, cwd=paths.REPO_ROOT, show=False)
    parameters = {"source": "synthetic", "num_boost_round": 10}
    runs: list[dict[str, float]] = []
    with services.Worker(pool) as worker, get_client(sync_client=True) as client:
        for attempt in range(settings.read("bench_latency_runs") + 1):  # the first run warms the page cache, not counted
            triggered = time.time()
            flow_run = run_deployment(deployment, parameters=parameters, timeout=0, _sync=True)
            state = deployments.wait_for_flow_run(flow_run.id, poll_seconds=0.1)
            seen = time.time()
            assert state == "Completed", state
            if attempt:
                runs.append(_run_parts(client, flow_run.id, triggered, seen))
        query_seconds = worker.query_seconds

    def median(key: str) -> float:
        values = [run[key] for run in runs if run[key] == run[key]]  # NaN: the mark was not found
        return statistics.median(values) if values else float("nan")

    body_other = median("body") - median("read_and_features") - median("train_task") - median("reports")
    total = median("total")
    parts = [
        ("waiting for the worker's poll", median("poll"),
         f"floor: the worker asks every {query_seconds:g} s (Worker(query_seconds=...)), half of it on average"),
        ("process start + import prefect", median("process"),
         "Pending -> the engine's first log line: a new Python process and Prefect's own import"),
        ("pull step (set_working_directory)", median("pull"), ""),
        ("importing the flow's module", median("flow_module"),
         "pandas + xgboost (which imports scikit-learn and scipy) + course_lib: all used by the run"),
        ("flow body: read data + features", median("read_and_features"), ""),
        ("flow body: import mlflow + set up the store", median("mlflow_setup"), "start of train_best_model"),
        ("flow body: training (xgboost)", median("training"), ""),
        ("flow body: MLflow logging (params, artifact, model)", median("mlflow_logging"),
         "mlflow.xgboost.log_model writes the model, its MLmodel file and environment files"),
        ("flow body: reports (artifacts)", median("reports"), ""),
        ("flow body: other (engine, task and result bookkeeping)", body_other, ""),
        ("Completed -> seen by the caller", median("seen"), "the caller polls every 0.1 s"),
    ]
    for name, value, detail in parts:
        record(f"latency: {name}", value, "s", detail=detail)
    largest = max((part for part in parts if part[1] == part[1]), key=lambda part: part[1])
    record("deployment trigger -> Completed (taxi_local_data, median)", total, "s", f"<= {LATENCY_TARGET_S:g}",
           total <= LATENCY_TARGET_S, f"{len(runs)} runs: " + ", ".join(f"{run['total']:.1f}" for run in runs)
           + f"; largest part: {largest[0]} ({largest[1]:.1f} s)")


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
SCALEOUT_PAIRS = 3


def bench_scaleout() -> None:
    """The search on a 2-worker Dask cluster vs the same search sequential, next to the same
    trainings in two plain processes (what the cores deliver) and where the CPU went; Dask's
    overhead on a trivial map."""
    from course_lib import services

    source = _search_source()  # before the workers start: they inherit COURSE_DATA_DIR
    own_server = None if os.environ.get("PREFECT_API_URL") else services.PrefectServer(name="bench-scaleout").start()
    try:
        with services.DaskCluster(n_workers=2, preload=["course_lib.pipeline.search"], name="bench") as cluster:
            processes = {"Dask workers": [worker.pid for worker in cluster.workers], "Dask scheduler": [cluster.pid],
                         "this process (the flow)": [os.getpid()]}
            if own_server is not None:
                processes["Prefect server"] = [own_server.pid]
            _bench_search_on_dask(cluster.address, source, processes)
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


def _cpu_seconds(processes: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each group of processes, with their children
    (not for this process: the cluster's processes are its children)."""
    import psutil

    totals = {}
    for group, pids in processes.items():
        totals[group] = 0.0
        for pid in pids:
            try:
                process = psutil.Process(pid)
                members = [process] if pid == os.getpid() else [process, *process.children(recursive=True)]
                for member in members:
                    times = member.cpu_times()
                    totals[group] += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    return totals


def _bench_search_on_dask(address: str, source: str, processes: dict[str, list[int]]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from course_lib.pipeline import search

    sequential = search.hyperparameter_search.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1))
    on_dask = search.hyperparameter_search.with_options(task_runner=DaskTaskRunner(address=address))
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as plain_pool:
        for flow in (sequential, on_dask):  # warm: imports, MLflow store, the workers' first task, Dask's
            flow(grid=search.GRID[:2], source=source)  # estimate of a training's duration (full rounds)
        _plain_spans(plain_pool, source, search.GRID[:2], [1.0, 1.0])  # warm: imports, data in both processes
        # Interleaved rounds, so a slow minute of a shared machine falls on every side alike; the
        # plain trainings measure what the two cores deliver in the same minutes.
        times = {"sequential": [], "dask": [], "plain 1": [], "plain 2": []}
        cpu_used = {group: 0.0 for group in processes}  # during the Dask searches, summed
        xgboost_seconds = 0.0
        for _ in range(SCALEOUT_PAIRS):
            seconds, sequential_result = timed(lambda: sequential(source=source), 1)
            times["sequential"].append(seconds)
            before = _cpu_seconds(processes)
            seconds, dask_result = timed(lambda: on_dask(source=source), 1)
            after = _cpu_seconds(processes)
            times["dask"].append(seconds)
            for group in processes:
                cpu_used[group] += after[group] - before[group]
            xgboost_seconds += sum(row["train_seconds"] for row in dask_result["rows"])
            seconds_of = {_config_key(row): row["train_seconds"] for row in sequential_result["rows"]}
            one, two = _plain_spans(plain_pool, source, search.GRID,
                                    [seconds_of[_config_key(config)] for config in search.GRID])
            times["plain 1"].append(one)
            times["plain 2"].append(two)
    median = {side: statistics.median(values) for side, values in times.items()}
    speedup = sum(times["sequential"]) / sum(times["dask"])
    cores_deliver = sum(times["plain 1"]) / sum(times["plain 2"])
    same = sequential_result["best"]["rmse"] == dask_result["best"]["rmse"]
    record(f"search, {len(search.GRID)} configs x {search.SEARCH_ROUNDS} rounds: sequential", median["sequential"],
           "s", detail=f"{source} data, median of {SCALEOUT_PAIRS}")
    record("search on Dask, 2 workers x 1 thread", median["dask"], "s", detail=f"median of {SCALEOUT_PAIRS}")
    record("search speed-up (sequential / Dask 2 workers)", speedup, "x", ">= 1.6", speedup >= 1.6,
           f"total of {SCALEOUT_PAIRS} runs each")
    record("best RMSE: Dask - sequential", dask_result["best"]["rmse"] - sequential_result["best"]["rmse"], "min",
           "== 0", same, f"best {dask_result['best']['rmse']:.5f}")
    record("plain xgboost, the same trainings: 1 process", median["plain 1"], "s",
           detail=f"no Prefect, no Dask; median of {SCALEOUT_PAIRS}, each right after a Dask search")
    record("plain xgboost, the same trainings: 2 processes", median["plain 2"], "s",
           detail="split by the sequential search's training times")
    record("plain xgboost speed-up: what the 2 cores delivered", cores_deliver, "x", detail="total of each")
    record("search speed-up / plain speed-up", speedup / cores_deliver, "x",
           detail="the share of the cores' speed-up the search on Dask kept")
    # Where the CPU went during a Dask search: two workers need both cores, and every other
    # process of the course (server, scheduler, the flow itself) takes its share of the same cores.
    cores = os.cpu_count() or 1
    dask_cpu = {group: seconds / SCALEOUT_PAIRS for group, seconds in cpu_used.items()}  # per search
    total_cpu = sum(dask_cpu.values())
    record("during a Dask search: seconds in xgboost, both workers", xgboost_seconds / SCALEOUT_PAIRS, "s",
           detail="the trainings' own wall seconds, one thread each (a busy core stretches them); mean of the runs")
    for group, seconds in dask_cpu.items():
        record(f"CPU during a Dask search: {group}", seconds, "s",
               detail="xgboost included" if group == "Dask workers" else "mean of the runs")
    record(f"speed-up ceiling from that CPU on {cores} cores", median["sequential"] / (total_cpu / cores), "x",
           detail=f"sequential {median['sequential']:.1f} s / ({total_cpu:.1f} CPU-s / {cores} cores)")


def _plain_trainings(configs: list[dict], source: str) -> tuple[float, float, int]:
    """In a pool process: train ``configs`` with plain xgboost; (start, end) of the trainings (epoch s), pid."""
    from course_lib.ml import training
    from course_lib.pipeline import search

    X_train, X_val, y_train, y_val = _plain_features(source)
    start = time.time()
    for config in configs:
        training.train_booster(X_train, y_train, X_val, y_val, mode="fast", num_boost_round=search.SEARCH_ROUNDS,
                               params={**config, "nthread": 1})
    return start, time.time(), os.getpid()


def _config_key(row: dict) -> tuple:
    from course_lib.pipeline import search

    return tuple((name, row[name]) for name in search.SEARCHABLE if name in row)


@functools.lru_cache(maxsize=None)
def _plain_features(source: str) -> tuple:
    from course_lib.ml import data, training

    months = [data.load_month(month, source=source) for month in ("2023-01", "2023-02")]
    return training.build_features(*months, mode="fast")[:4]


def balanced_halves(items: list, seconds: list[float]) -> tuple[list, list]:
    """Split ``items`` in two of nearly equal total ``seconds``: longest first, each to the lighter
    half (what two workers taking the next task when free would do)."""
    if len(items) != len(seconds):
        raise ValueError(f"{len(items)} items but {len(seconds)} durations")
    halves, loads = ([], []), [0.0, 0.0]
    for index in sorted(range(len(items)), key=lambda index: -seconds[index]):
        lighter = loads.index(min(loads))
        halves[lighter].append(items[index])
        loads[lighter] += seconds[index]
    return halves


def _plain_spans(pool, source: str, configs: list[dict], seconds: list[float]) -> tuple[float, float]:
    """Seconds for ``configs`` in one pool process, then split over both by :func:`balanced_halves`."""
    one = pool.submit(_plain_trainings, configs, source).result()
    halves = balanced_halves(configs, seconds)
    two = [future.result() for future in [pool.submit(_plain_trainings, half, source) for half in halves]]
    if two[0][2] == two[1][2]:  # the pool gave both halves to one process: that is no parallel run
        raise RuntimeError("the bench's process pool ran both halves in one process; run it again")
    return one[1] - one[0], max(end for _, end, _ in two) - min(start for start, _, _ in two)


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
    needs_server = {"overhead", "deployments", "latency"} & set(chosen)
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
