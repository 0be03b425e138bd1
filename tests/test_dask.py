"""Lesson 08's scale-out pieces against real processes: the DaskCluster service, the search on it,
and its faults (a wrong address, a killed worker, a bad grid, processes left behind).

Uses the session's Prefect server (the `prefect_server` fixture). One module-scoped cluster
(2 workers x 1 thread) serves the search tests; the fault tests start their own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from course_lib import services
from course_lib.services import DaskCluster, ServiceError, check_dask_scheduler, free_port
from course_lib.services.base import group_gone
from course_lib.tooling import project
from course_lib.tooling.checks.lesson08 import task_runs_of


@pytest.fixture(scope="module")
def search(prefect_server):
    """The learner's search.py as the course leaves it; its folder on PYTHONPATH, as lesson 08 puts the
    project there, so the Dask workers the tests start import it (`--preload search`)."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project.reference_folder()), before]))
    try:
        yield project.reference_module("search")
    finally:
        os.environ.pop("PYTHONPATH") if before is None else os.environ.update(PYTHONPATH=before)


@pytest.fixture(scope="module")
def cluster(search):
    with DaskCluster(n_workers=2, preload=["search"], name="test") as running:
        yield running
    assert all(group_gone(pid) for pid in running.pids), "a scheduler or worker outlived the cluster's stop()"


def test_a_cluster_is_a_real_scheduler_with_its_workers(cluster):
    assert cluster.running and len(cluster.workers) == 2 and all(worker.running for worker in cluster.workers)
    assert cluster.connected_workers() == 2
    assert check_dask_scheduler(cluster.address) == cluster.address
    assert cluster.commands[0].startswith("dask scheduler --host 127.0.0.1 --port")
    assert all("--nthreads 1" in command for command in cluster.commands[1:])
    assert all(path.exists() for path in cluster.log_paths)
    assert cluster.dashboard_link and services.http_status(cluster.dashboard_link) == 200
    # each process leads its own group (stopped as a group)
    assert all(os.getpgid(pid) == pid for pid in cluster.pids)


def test_the_search_on_the_cluster_matches_the_sequential_search(cluster, search):
    import distributed
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    grid = search.GRID[-4:]
    with distributed.Client(cluster.address, timeout=10) as client, distributed.get_task_stream(client) as stream:
        on_dask = search.grid_search.with_options(task_runner=DaskTaskRunner(address=cluster.address))(
            grid=grid, source="synthetic", num_boost_round=10, return_state=True)
        workers = set(client.scheduler_info()["workers"])
    assert on_dask.is_completed(), on_dask.message
    sequential = search.grid_search.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1))(
        grid=grid, source="synthetic", num_boost_round=10)
    assert on_dask.result() == sequential  # the same configurations, RMSEs and order
    # the mapped task runs are on the server, also with address= (prefect#19925 does not apply here)
    trainings = [run for run in task_runs_of(on_dask.state_details.flow_run_id) if run.name.startswith("Train xgboost")]
    assert len(trainings) == 4 and all(run.state_name == "Completed" for run in trainings)
    # and they ran in the cluster's workers, not in this process
    ran = [task for task in stream.data if str(task["key"]).startswith("train_best_model")]
    assert len(ran) >= 4 and {task["worker"] for task in ran} <= workers


def test_an_unreachable_scheduler_fails_fast_naming_the_address_and_the_fix():
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ServiceError) as error:
        check_dask_scheduler(address)
    assert time.monotonic() - started < 10
    assert address in str(error.value) and "Fix:" in str(error.value) and "COURSE_DASK_ADDRESS" in str(error.value)
    # an address that does not route anywhere times out within the check's timeout, not Dask's 30 s
    started = time.monotonic()
    with pytest.raises(ServiceError, match="10.255.255.1:8786"):
        check_dask_scheduler("tcp://10.255.255.1:8786", timeout=3)
    assert time.monotonic() - started < 10


def test_a_malformed_address_is_refused():
    with pytest.raises(ServiceError, match="tcp://HOST:PORT"):
        check_dask_scheduler("http://127.0.0.1")


def test_a_worker_killed_mid_search_the_search_still_completes(search):
    """Documented outcome: Dask re-runs the lost work on the surviving worker; the flow run Completes."""
    import distributed
    from prefect_dask import DaskTaskRunner

    with DaskCluster(n_workers=2, preload=["search"], name="test-kill") as doomed:
        outcome = {}

        def run():
            outcome["state"] = search.grid_search.with_options(
                task_runner=DaskTaskRunner(address=doomed.address))(
                grid=search.GRID[-4:], source="synthetic", num_boost_round=200, return_state=True)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        victim = None
        with distributed.Client(doomed.address, timeout=10) as client:
            deadline = time.monotonic() + 300
            while victim is None and time.monotonic() < deadline and thread.is_alive():
                workers = client.scheduler_info()["workers"]
                for address, keys in client.processing().items():
                    if any(str(key).startswith("train_best_model") for key in keys):
                        victim = int(str(workers[address]["name"]).rsplit("-", 1)[1])
                        break
                time.sleep(0.2)
        assert victim is not None, "no training ever reached a worker"
        time.sleep(1.0)  # let it start training
        os.killpg(doomed.workers[victim].pid, signal.SIGKILL)
        thread.join(timeout=600)
        assert not thread.is_alive(), "the search hung after a worker was killed"
        state = outcome["state"]
        assert state.is_completed(), state.message
        assert len(state.result()) == 4
        assert not doomed.workers[victim].running
    assert all(group_gone(pid) for pid in doomed.pids)


def test_a_dask_runner_localcluster_leaves_no_process(prefect_server):
    import multiprocessing

    from prefect import flow, task
    from prefect_dask import DaskTaskRunner

    @task
    def double(x):
        return 2 * x

    @flow(task_runner=DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1}))
    def doubles():
        return double.map([1, 2, 3]).result()

    assert doubles() == [2, 4, 6]
    assert multiprocessing.active_children() == []


_FAILING_LESSON = """
import sys
from course_lib.services import DaskCluster
cluster = DaskCluster(n_workers=2).start()
print(" ".join(map(str, cluster.pids)), flush=True)
raise RuntimeError("a lesson cell failed")
"""


def test_a_failing_lesson_leaves_no_scheduler_or_worker(tmp_path):
    done = subprocess.run([sys.executable, "-c", _FAILING_LESSON], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COURSE_WORKDIR": str(tmp_path)})
    assert done.returncode != 0 and "a lesson cell failed" in done.stderr
    pids = [int(pid) for pid in done.stdout.split()]
    assert len(pids) == 3 and all(group_gone(pid) for pid in pids)


def test_a_cluster_without_the_dashboard_still_counts_its_workers(monkeypatch, tmp_path):
    monkeypatch.setattr(DaskCluster, "has_dashboard", property(lambda self: False))
    with DaskCluster(n_workers=1, name="test-nodash") as cluster:
        assert cluster.dashboard_link is None and "--no-dashboard" in cluster.commands[0]
        assert cluster.connected_workers() == 1
    assert all(group_gone(pid) for pid in cluster.pids)


def test_bad_worker_counts_are_refused():
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ServiceError, match="n_workers"):
            DaskCluster(n_workers=bad)
