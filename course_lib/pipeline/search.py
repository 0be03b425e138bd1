"""Lesson 08: a hyperparameter search of the fast model, fanned out with ``.map()``.

The tasks live in this importable module (not in a notebook cell) because the task runners of
lesson 08 run them in other processes: a process pool, Dask workers, maybe other machines.
Each of them imports this file by name, so it must be installed there too.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import time
from itertools import product

from prefect import flow, task, unmapped
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from course_lib.ml import training
from course_lib.pipeline import tracking
from course_lib.pipeline.flows import read_data

# 3 depths x 2 learning rates x 2 L2 strengths = 12 configurations of the fast model, deepest
# (slowest) first: the short ones come last and fill the gaps, so no worker idles at the end.
GRID = [{"max_depth": depth, "learning_rate": rate, "reg_lambda": l2}
        for depth, rate, l2 in product((8, 6, 4), (0.3, 0.5), (10, 50))]
# What a configuration may change; nthread is pinned to 1 so N workers use N cores, not N x all.
SEARCHABLE = ("max_depth", "learning_rate", "min_child_weight", "reg_lambda", "reg_alpha", "max_cat_threshold",
              "max_bin", "subsample", "colsample_bytree", "gamma")
SEARCH_ROUNDS = 50
RESULTS_KEY = "hyperparameter-search"


def check_grid(grid) -> list[dict]:
    """The grid as a list of dicts, or a clear ValueError before anything is submitted."""
    if not isinstance(grid, (list, tuple)) or not grid:
        raise ValueError(f"the grid is empty or not a list ({grid!r}): give a list of configurations, "
                         "e.g. [{'max_depth': 4}, {'max_depth': 6}]")
    for number, config in enumerate(grid):
        if not isinstance(config, dict) or not config:
            raise ValueError(f"grid[{number}] = {config!r} is not a non-empty dict of xgboost parameters")
        unknown = sorted(set(config) - set(SEARCHABLE))
        if unknown:
            raise ValueError(f"grid[{number}] has unknown parameter(s) {unknown}: a configuration may set only "
                             f"{', '.join(SEARCHABLE)}")
    return [dict(config) for config in grid]


@task(cache_policy=NO_CACHE)
def make_features(df_train, df_val):
    """Features of both months (the preprocessor is fitted on the training month)."""
    X_train, X_val, y_train, y_val, _ = training.build_features(df_train, df_val, mode="fast")
    return X_train, X_val, y_train, y_val


# No tag of its own: every tagged task run asks the server for a concurrency slot before it starts
# (with 12 configurations that cost the sequential search ~8 s in stalls); lesson 08 adds the tag
# with `with tags("xgboost"):` where it sets a limit. A retry if the shared MLflow SQLite file is busy.
@task(cache_policy=NO_CACHE, retries=1)
def train_config(config: dict, features, num_boost_round: int, mlflow_parent: dict) -> dict:
    """Train one configuration (one thread), log it as a child MLflow run; return its row."""
    X_train, X_val, y_train, y_val = features
    started = time.perf_counter()
    booster, rmse = training.train_booster(X_train, y_train, X_val, y_val, mode="fast",
                                           num_boost_round=num_boost_round, params={**config, "nthread": 1})
    seconds = time.perf_counter() - started
    run_id = log_child_run(mlflow_parent, name=str(config), metrics={"rmse": rmse},
                                    params={**config, "num_boost_round": num_boost_round})
    return {**config, "rmse": round(rmse, 5), "best_iteration": int(booster.best_iteration),
            "train_seconds": round(seconds, 2), "process": f"{socket.gethostname()}:{os.getpid()}",
            "mlflow_run_id": run_id}


@flow(log_prints=True)
def hyperparameter_search(grid: list[dict] | None = None, train_path: str = "2023-01", val_path: str = "2023-02",
                          source: str = "auto", num_boost_round: int | None = None) -> dict:
    """Train every configuration of ``grid`` (default: GRID) in parallel; return the best and all rows."""
    import mlflow

    grid = check_grid(GRID if grid is None else grid)  # a bad grid fails here, before anything is submitted
    num_boost_round = num_boost_round or SEARCH_ROUNDS
    df_train = read_data.submit(train_path, source=source)  # the two months load concurrently
    df_val = read_data.submit(val_path, source=source)
    features = make_features.submit(df_train, df_val)  # a future: each worker fetches the result once

    with parent_run(f"search-{len(grid)}-configs") as mlflow_parent:  # one MLflow run for the search
        futures = train_config.map(grid, unmapped(features), num_boost_round=num_boost_round,
                                   mlflow_parent=unmapped(mlflow_parent))  # a dict is iterable too
        rows = sorted(futures.result(), key=lambda row: row["rmse"])  # waits for all of them
        best = rows[0]
        chosen = {name: value for name, value in best.items() if name in SEARCHABLE}
        mlflow.log_params({f"best_{name}": value for name, value in chosen.items()})
        mlflow.log_metric("best_rmse", best["rmse"])
    create_table_artifact(table=rows, key=RESULTS_KEY,
                          description=f"{len(rows)} configurations of the fast model, best validation RMSE first")
    print(f"best of {len(rows)}: RMSE {best['rmse']:.5f} with "
          + ", ".join(f"{name}={value}" for name, value in chosen.items()))
    return {"best": best, "rows": rows, "mlflow_parent_run_id": mlflow_parent["run_id"]}


# -- MLflow: one parent run per search, one child run per configuration ----------------------
@contextlib.contextmanager
def parent_run(name: str):
    """An active MLflow run for a group of runs; yields {"run_id", "experiment_id"} for
    :func:`log_child_run`, which may run in another thread, process or machine."""
    import mlflow

    tracking.setup_mlflow()
    with mlflow.start_run(run_name=name) as run:
        yield {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id}


def log_child_run(parent: dict, name: str, metrics: dict, params: dict) -> str:
    """Log one finished MLflow run under ``parent``; returns its id. The client API (not
    ``mlflow.start_run``): a thread, a process or a Dask worker has no active run."""
    from mlflow.entities import Metric, Param

    client = _mlflow_client(tracking.tracking_uri())
    run = client.create_run(parent["experiment_id"], run_name=name, tags={"mlflow.parentRunId": parent["run_id"]})
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
                     params=[Param(key, str(value)) for key, value in params.items()])
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def child_runs(parent_run_id: str) -> list:
    """The MLflow runs logged under ``parent_run_id``."""
    client = _mlflow_client(tracking.tracking_uri())
    parent = client.get_run(parent_run_id)
    return client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                              max_results=1000)


@functools.lru_cache(maxsize=None)
def _mlflow_client(uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)
