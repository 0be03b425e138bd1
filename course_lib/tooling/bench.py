"""`make bench`: the course's speed and size figures, each compared side by side in one run.

The machines the course runs on are small and shared, so absolute seconds are noisy; each
figure is therefore a ratio or a difference of two measurements taken in the same run, next to
the absolute medians. Nothing here is a test: it prints, and writes build/bench.json.

    python -m course_lib.tooling.bench [--only training,overhead,imports,deployments,latency,course,setup,scaleout]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
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
def _reference(name: str = "orchestrate"):
    """The reference project's ``name`` as the course leaves it (what the learner builds), imported."""
    from course_lib.tooling import project

    return project.reference_module(name)


def bench_overhead() -> None:
    orchestrate = _reference("orchestrate")
    months = ("2023-01", "2023-02")

    def plain():  # the same steps as main_flow, as plain functions: no flow run, no task runs
        df_train = orchestrate.read_data.fn(months[0], source="synthetic")
        df_val = orchestrate.read_data.fn(months[1], source="synthetic")
        X_train, X_val, y_train, y_val = orchestrate.add_features.fn(df_train, df_val)
        rmse = orchestrate.train_best_model.fn(X_train, X_val, y_train, y_val)
        orchestrate.publish_report.fn(*months, len(df_train), len(df_val), rmse)
        return rmse

    def orchestrated():
        return orchestrate.main_flow(*months, source="synthetic")

    # Outside a flow, Prefect warns that artifacts created there are deprecated; expected here.
    warnings.filterwarnings("ignore", message="Artifact creation outside of a flow")
    with contextlib.redirect_stdout(io.StringIO()):  # train_best_model prints its RMSE each time
        plain()  # warm imports and the data once, for both
        plain_s, plain_rmse = timed(plain, 3)
    flow_s, flow_rmse = timed(orchestrated, 3)
    record("pipeline as plain functions (.fn)", plain_s, "s", detail="the reference project's orchestrate.py")
    record("pipeline as a flow against the server (main_flow)", flow_s, "s",
           detail=f"RMSE {flow_rmse:.5f}, plain {plain_rmse:.5f}")
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
def deploy_reference(name: str, pool: str) -> str:
    """The reference project's ``orchestrate.py:main_flow`` deployed to ``pool`` from its folder,
    as lesson 04's ``taxi_local_data``: the worker's run first moves into the folder (a
    ``set_working_directory`` pull step), then imports the entrypoint. Returns ``FLOW/DEPLOYMENT``."""
    from prefect import Flow

    from course_lib.tooling import project

    main_flow = Flow.from_source(str(project.reference_folder()), "orchestrate.py:main_flow")
    with contextlib.redirect_stdout(io.StringIO()):  # its table of deployments
        main_flow.deploy(name, work_pool_name=pool, print_next_steps=False, ignore_warnings=True)
    return f"{main_flow.name}/{name}"


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

    services.ensure_work_pool("bench-pool")
    with services.Worker("bench-pool") as worker:
        record("worker start to ONLINE", worker.startup_seconds, "s")
        deployment = deploy_reference("bench", "bench-pool")
        seconds = []
        for _ in range(3):
            start = time.perf_counter()
            flow_run = run_deployment(deployment, parameters={"source": "synthetic"}, timeout=0, _sync=True)
            state = deployments.wait_for_flow_run(flow_run.id, poll_seconds=0.2)
            seconds.append(time.perf_counter() - start)
            assert state == "Completed", state
    median = statistics.median(seconds)
    record("deployment trigger -> Completed (orchestrate.py:main_flow)", median, "s", "<= 8", median <= 8,
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


def _of(function: str, task_run) -> bool:
    """Whether ``task_run`` is a run of the task function ``function``: the task key starts with the
    function's name (its display name, e.g. "Publish the report", is free)."""
    return (task_run.task_key or "").startswith(f"{function}-")  # the key: "<function>-<hash of its code>"


def _task_seconds(task_runs, function: str) -> float:
    """Seconds the finished runs of the task function ``function`` took, summed."""
    return sum((t.end_time - t.start_time).total_seconds() for t in task_runs
               if _of(function, t) and t.start_time and t.end_time)


def _task_runs(client, flow_run_id) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def _run_parts(client, flow_run_id, triggered: float, seen: float) -> dict[str, float]:
    """Seconds of each part of one deployment run, from the server's state timestamps, the flow
    run's log lines and its task runs."""
    states = {state.type.value: state.timestamp.timestamp() for state in client.read_flow_run_states(flow_run_id)}
    tasks = _task_runs(client, flow_run_id)
    logs = _log_times(client, flow_run_id)
    nan = float("nan")
    return {
        "total": seen - triggered,
        "poll": states["PENDING"] - triggered,
        "process": logs.get("pull_started", nan) - states["PENDING"],
        "pull": logs.get("pull_done", nan) - logs.get("pull_started", nan),
        "flow_module": states["RUNNING"] - logs.get("pull_done", nan),  # the engine loads the flow, then Running
        "read_and_features": _task_seconds(tasks, "read_data") + _task_seconds(tasks, "add_features"),
        "training": _task_seconds(tasks, "train_best_model"),
        "report": _task_seconds(tasks, "publish_report"),
        "body": states["COMPLETED"] - states["RUNNING"],
        "seen": seen - states["COMPLETED"],
    }


def bench_latency() -> None:
    """Lesson 04's ``taxi_local_data`` (the reference project's ``orchestrate.py:main_flow``,
    deployed from its folder) run by a course worker: trigger -> Completed, part by part.

    Every part is measured inside the real runs: the server's state timestamps (Scheduled ->
    Pending -> Running -> Completed; the engine proposes Running once the flow's module is
    imported), the flow run's own log lines (the engine logs its pull steps) and its task runs.
    """
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from course_lib import services
    from course_lib.tooling import deployments

    pool = deployments.LOCAL_POOL
    services.ensure_work_pool(pool)
    deployment = deploy_reference(deployments.LOCAL_DEPLOYMENT, pool)
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

    body_other = median("body") - median("read_and_features") - median("training") - median("report")
    total = median("total")
    parts = [
        ("waiting for the worker's poll", median("poll"),
         f"floor: the worker asks every {query_seconds:g} s (Worker(query_seconds=...)), half of it on average"),
        ("process start + import prefect", median("process"),
         "Pending -> the engine's first log line: a new Python process and Prefect's own import"),
        ("pull step (set_working_directory)", median("pull"), ""),
        ("importing the flow's module", median("flow_module"),
         "orchestrate.py: pandas, xgboost, scikit-learn (course_lib.ml), all used by the run"),
        ("flow body: read data + features", median("read_and_features"), "tasks read_data x 2, add_features"),
        ("flow body: training (xgboost)", median("training"), "task train_best_model, 10 rounds"),
        ("flow body: report (artifacts)", median("report"), 'task publish_report ("Publish the report")'),
        ("flow body: other (engine, task and result bookkeeping)", body_other, ""),
        ("Completed -> seen by the caller", median("seen"), "the caller polls every 0.1 s"),
    ]
    for name, value, detail in parts:
        record(f"latency: {name}", value, "s", detail=detail)
    largest = max((part for part in parts if part[1] == part[1]), key=lambda part: part[1])
    record(f"deployment trigger -> Completed ({deployments.LOCAL_DEPLOYMENT}, median)", total, "s",
           f"<= {LATENCY_TARGET_S:g}", total <= LATENCY_TARGET_S,
           f"{len(runs)} runs: " + ", ".join(f"{run['total']:.1f}" for run in runs)
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
#: Boosting rounds of every training here, in the search and in plain xgboost alike: twice the
#: fast model's 25, so that the trainings, not the per-task overhead, fill the search.
SCALEOUT_ROUNDS = 50


def bench_scaleout() -> None:
    """The reference project's ``search.grid_search`` on a 2-worker Dask cluster vs the same search
    sequential, next to the same trainings in two plain processes (what the cores deliver) and
    where the CPU went; Dask's overhead on a trivial map."""
    from course_lib import services
    from course_lib.tooling import project

    source = _search_source()  # before the workers start: they inherit COURSE_DATA_DIR
    folder = str(project.reference_folder())
    search = _reference("search")
    own_server = None if os.environ.get("PREFECT_API_URL") else services.PrefectServer(name="bench-scaleout").start()
    try:
        # The workers unpickle the tasks by module name (orchestrate, search), as in lesson 08:
        # the project folder on their PYTHONPATH, search.py imported at their start.
        pythonpath = os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))
        with services.temporary_env({"PYTHONPATH": pythonpath}):
            cluster = services.DaskCluster(n_workers=2, preload=["search"], name="bench").start()
        with cluster:
            processes = {"Dask workers": [worker.pid for worker in cluster.workers], "Dask scheduler": [cluster.pid],
                         "this process (the flow)": [os.getpid()]}
            if own_server is not None:
                processes["Prefect server"] = [own_server.pid]
            _bench_search_on_dask(search, cluster.address, source, processes)
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


def _training_task_seconds(flow_run_ids: list, trainings: int, timeout: float = 30) -> float:
    """Seconds of the ``train_best_model`` task runs of these flow runs, summed, from the server
    (task runs report their states as events: wait until each flow run has ``trainings`` finished)."""
    from prefect.client.orchestration import get_client

    total = 0.0
    with get_client(sync_client=True) as client:
        for flow_run_id in flow_run_ids:
            deadline = time.monotonic() + timeout
            while True:
                runs = [run for run in _task_runs(client, flow_run_id)
                        if _of("train_best_model", run) and run.start_time and run.end_time]
                if len(runs) >= trainings or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            if len(runs) < trainings:
                raise RuntimeError(f"flow run {flow_run_id}: {len(runs)} of {trainings} training task runs "
                                   f"finished on the server after {timeout:g} s")
            total += _task_seconds(runs, "train_best_model")
    return total


def _bench_search_on_dask(search, address: str, source: str, processes: dict[str, list[int]]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    grid = list(search.GRID)
    sequential = search.grid_search.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1))
    on_dask = search.grid_search.with_options(task_runner=DaskTaskRunner(address=address))

    def run(flow, configs=None) -> tuple[list[dict], object]:  # (rows best first, flow run id)
        state = flow(grid=configs, source=source, num_boost_round=SCALEOUT_ROUNDS, return_state=True)
        return state.result(), state.state_details.flow_run_id

    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as plain_pool:
        for flow in (sequential, on_dask):  # warm: imports, data, the workers' first task
            run(flow, grid[:2])
        _plain_spans(plain_pool, source, grid[:2])  # warm: imports, data in both processes
        # Interleaved rounds, so a slow minute of a shared machine falls on every side alike; the
        # plain trainings measure what the two cores deliver in the same minutes.
        times = {"sequential": [], "dask": [], "plain 1": [], "plain 2": []}
        cpu_used = {group: 0.0 for group in processes}  # during the Dask searches, summed
        dask_runs = []
        for _ in range(SCALEOUT_PAIRS):
            seconds, (sequential_rows, _) = timed(lambda: run(sequential), 1)
            times["sequential"].append(seconds)
            before = _cpu_seconds(processes)
            seconds, (dask_rows, flow_run_id) = timed(lambda: run(on_dask), 1)
            after = _cpu_seconds(processes)
            times["dask"].append(seconds)
            dask_runs.append(flow_run_id)
            for group in processes:
                cpu_used[group] += after[group] - before[group]
            one, two, plain_rmses = _plain_spans(plain_pool, source, grid)
            times["plain 1"].append(one)
            times["plain 2"].append(two)
    xgboost_seconds = _training_task_seconds(dask_runs, len(grid))
    median = {side: statistics.median(values) for side, values in times.items()}
    speedup = sum(times["sequential"]) / sum(times["dask"])
    cores_deliver = sum(times["plain 1"]) / sum(times["plain 2"])
    best = {"sequential": sequential_rows[0]["rmse"], "dask": dask_rows[0]["rmse"], "plain": min(plain_rmses)}
    record(f"search, {len(grid)} configs x {SCALEOUT_ROUNDS} rounds: sequential", median["sequential"],
           "s", detail=f"reference search.grid_search, 1 thread; {source} data, median of {SCALEOUT_PAIRS}")
    record("search on Dask, 2 workers x 1 thread", median["dask"], "s", detail=f"median of {SCALEOUT_PAIRS}")
    record("search speed-up (sequential / Dask 2 workers)", speedup, "x", ">= 1.6", speedup >= 1.6,
           f"total of {SCALEOUT_PAIRS} runs each")
    record("best RMSE: Dask - sequential", best["dask"] - best["sequential"], "min", "== 0",
           best["dask"] == best["sequential"] == best["plain"],
           f"best {best['dask']:.5f}; plain xgboost {best['plain']:.5f}")
    record("plain xgboost, the same trainings: 1 process", median["plain 1"], "s",
           detail=f"the same GRID and rounds, no Prefect, no Dask; median of {SCALEOUT_PAIRS}, "
                  "each right after a Dask search")
    record("plain xgboost, the same trainings: 2 processes", median["plain 2"], "s",
           detail="split by the 1-process run's training times")
    record("plain xgboost speed-up: what the 2 cores delivered", cores_deliver, "x", detail="total of each")
    record("search speed-up / plain speed-up", speedup / cores_deliver, "x",
           detail="the share of the cores' speed-up the search on Dask kept")
    # Where the CPU went during a Dask search: two workers need both cores, and every other
    # process of the course (server, scheduler, the flow itself) takes its share of the same cores.
    cores = os.cpu_count() or 1
    dask_cpu = {group: seconds / SCALEOUT_PAIRS for group, seconds in cpu_used.items()}  # per search
    total_cpu = sum(dask_cpu.values())
    record("during a Dask search: seconds in the training task runs", xgboost_seconds / SCALEOUT_PAIRS, "s",
           detail="train_best_model task runs on both workers, one thread each, from the server "
                  "(a busy core stretches them); mean of the runs")
    for group, seconds in dask_cpu.items():
        record(f"CPU during a Dask search: {group}", seconds, "s",
               detail="xgboost included" if group == "Dask workers" else "mean of the runs")
    record(f"speed-up ceiling from that CPU on {cores} cores", median["sequential"] / (total_cpu / cores), "x",
           detail=f"sequential {median['sequential']:.1f} s / ({total_cpu:.1f} CPU-s / {cores} cores)")


def _plain_trainings(configs: list[dict], source: str) -> tuple[float, float, int, list[float], list[float]]:
    """In a pool process: train ``configs`` with plain xgboost as the reference ``train_best_model``
    does (fast mode, one thread, ``params=config``), :data:`SCALEOUT_ROUNDS` rounds.

    Returns (start, end) of the trainings (epoch s), the pid, each training's seconds and RMSE."""
    from course_lib.ml import training

    X_train, X_val, y_train, y_val = _plain_features(source)
    start = time.time()
    seconds, rmses = [], []
    for config in configs:
        began = time.perf_counter()
        _booster, rmse = training.train_booster(X_train, y_train, X_val, y_val, mode="fast",
                                                num_boost_round=SCALEOUT_ROUNDS, params=config)
        seconds.append(time.perf_counter() - began)
        rmses.append(rmse)
    return start, time.time(), os.getpid(), seconds, rmses


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


def _plain_spans(pool, source: str, configs: list[dict]) -> tuple[float, float, list[float]]:
    """Seconds for ``configs`` in one pool process, then split over both by :func:`balanced_halves`
    (by that run's training times); and the RMSEs of the one-process run."""
    one = pool.submit(_plain_trainings, configs, source).result()
    halves = balanced_halves(configs, one[3])
    two = [future.result() for future in [pool.submit(_plain_trainings, half, source) for half in halves]]
    if two[0][2] == two[1][2]:  # the pool gave both halves to one process: that is no parallel run
        raise RuntimeError("the bench's process pool ran both halves in one process; run it again")
    return one[1] - one[0], max(run[1] for run in two) - min(run[0] for run in two), one[4]


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
