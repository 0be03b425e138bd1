"""Checks of lesson 08 (futures, .map, concurrency limits): each one inspects what the learner
really built, on the Prefect server."""

from __future__ import annotations

from uuid import UUID

from course_lib.tooling.checks import NotYet, exercise

LIMIT_TAG = "xgboost"


def task_runs_of(flow_run_id) -> list:
    """The task runs of one flow run, read from the server, in start order."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(str(flow_run_id))])))
    return sorted(runs, key=lambda run: (run.start_time is None, run.start_time))


def _run(flow, **parameters):
    """Call the learner's flow; return (its result, its flow run id)."""
    from prefect import Flow

    if not isinstance(flow, Flow):
        raise NotYet(f"Pass the flow itself (a function decorated with @flow); got {type(flow).__name__}.")
    state = flow(**parameters, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    if not state.is_completed():
        raise NotYet(f"Your flow run ended {state.name}: {state.message}. Run the exercise cell again and read the error.")
    return state.result(_sync=True), flow_run_id


@exercise("08.1", "Read both months at the same time")
def reads_concurrently(read_both, source: str = "synthetic"):
    import pandas as pd

    result, flow_run_id = _run(read_both, source=source)
    if not (isinstance(result, (tuple, list)) and len(result) == 2
            and all(isinstance(frame, pd.DataFrame) for frame in result)):
        raise NotYet(f"read_both should return the two DataFrames (train, val); it returned {type(result).__name__}. "
                     "Return future_train.result(), future_val.result().")
    reads = [run for run in task_runs_of(flow_run_id) if run.task_key.startswith("read_data")]  # run names are templated; the key is the function
    if len(reads) != 2:
        raise NotYet(f"The server has {len(reads)} read_data task runs for your flow run, not 2: call read_data once per month.")
    first, second = reads
    if not (second.start_time < first.end_time):
        raise NotYet(f"The two read_data task runs ran one after the other on the server (the second started "
                     f"{(second.start_time - first.end_time).total_seconds():.2f} s after the first ended). "
                     "Call read_data.submit(...) for both months first, and only then .result() on the futures.")
    overlap = (min(first.end_time, second.end_time) - second.start_time).total_seconds()
    return f"The server shows both reads running at once (they overlapped for {overlap:.2f} s)."


@exercise("08.2", "Map the training over a grid")
def mapped_over_grid(depth_search, depths=(3, 5, 7), source: str = "synthetic"):
    rows, flow_run_id = _run(depth_search, depths=list(depths), source=source)
    trainings = [run for run in task_runs_of(flow_run_id) if run.name.startswith("train_config")]
    if len(trainings) != len(depths):
        raise NotYet(f"For {len(depths)} depths the server shows {len(trainings)} train_config task run(s). "
                     "Call search.train_config.map(configs, unmapped(features), num_boost_round=..., "
                     "mlflow_parent=unmapped(mlflow_parent)): one task run per configuration.")
    if not isinstance(rows, list) or sorted(row.get("max_depth") for row in rows) != sorted(depths):
        raise NotYet("The task runs are there, but the flow should return the rows of every configuration: "
                     "return futures.result() (a list of dicts).")
    return f"{len(trainings)} train_config task runs on the server, one per depth; best RMSE {min(r['rmse'] for r in rows):.5f}."


@exercise("08.3", "At most two trainings at a time")
def limit_of_two(tag: str = LIMIT_TAG):
    from prefect.exceptions import ObjectNotFound

    from course_lib.tooling.runs import api_client

    with api_client() as client:
        try:
            limit = client.read_concurrency_limit_by_tag(tag)
        except ObjectNotFound:
            raise NotYet(f"The server has no concurrency limit on the tag {tag!r}. "
                         f"Create it: `!prefect concurrency-limit create {tag} 2`.") from None
    if limit.concurrency_limit != 2:
        raise NotYet(f"The limit on tag {tag!r} is {limit.concurrency_limit}, not 2. "
                     f"`prefect concurrency-limit create {tag} 2` sets it (creating it again updates it).")
    return f"The server limits tag {tag!r} to 2 task runs at a time."
