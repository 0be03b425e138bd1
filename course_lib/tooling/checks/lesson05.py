"""Checks of lesson 05's exercises: they read the blocks and variables from the server and run the learner's flow."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import PurePosixPath

from course_lib.tooling.checks import NotYet, exercise

LESSON_BLOCK = "taxi-s3-bucket"
EXERCISE_BLOCK = "taxi-s3-exercise"
MONTHS_VARIABLE = "taxi_months"
MONTHS_VALUE = {"train": "2023-01", "validation": "2023-02"}
# A variable set before this kernel's first import of the checks is from an earlier session.
SESSION_START = datetime.now(timezone.utc)


def _load(name: str):
    from prefect_aws import S3Bucket

    try:
        return S3Bucket.load(name, _sync=True)
    except ValueError:
        return None


@exercise("05.1", "Save a block, load it by name inside a flow")
def block_loaded_in_flow(flow_function, block_name: str = EXERCISE_BLOCK) -> str:
    from prefect import Flow

    lesson = _load(LESSON_BLOCK)
    if lesson is None:
        raise NotYet(f"The lesson's block {LESSON_BLOCK!r} is missing: run the cells of section 2 first.")
    block = _load(block_name)
    if block is None:
        raise NotYet(f"There is no S3Bucket block named {block_name!r} on the server yet. Save one: "
                     f"`await S3Bucket(bucket_name=..., credentials=...).save({block_name!r}, overwrite=True)` "
                     "(in a notebook cell, `await` it).")
    if block.bucket_name != lesson.bucket_name:
        raise NotYet(f"The block {block_name!r} names the bucket {block.bucket_name!r}; the data is in "
                     f"{lesson.bucket_name!r}. Save it again with bucket_name={lesson.bucket_name!r}, overwrite=True.")
    if block.bucket_folder:
        raise NotYet(f"The block {block_name!r} has bucket_folder={block.bucket_folder!r}: keys are then relative to "
                     "that folder. Save it without bucket_folder, so list_objects('data/') finds the months.")
    if not isinstance(flow_function, Flow):
        raise NotYet(f"{getattr(flow_function, '__name__', flow_function)!r} is not a Prefect flow: decorate it "
                     "with @flow.")
    client = block.credentials.get_s3_client()
    listed = client.list_objects_v2(Bucket=block.bucket_name, Prefix="data/").get("Contents", [])
    expected = sorted(PurePosixPath(item["Key"]).name for item in listed)
    state = flow_function(block_name, return_state=True)
    if not state.is_completed():
        raise NotYet(f"Your flow ended {state.name}: {state.message}. Read the error above, fix the flow, run both cells again.")
    returned = state.result(_sync=True)
    if not isinstance(returned, (list, tuple)) or not returned:
        raise NotYet(f"Your flow returned {returned!r}. It should load the block by name "
                     "(`S3Bucket.load(block_name)`) and return the names of the files under data/ "
                     f"(`list_objects('data/')`), e.g. {expected[:1]}.")
    names = sorted(PurePosixPath(str(key)).name for key in returned)
    if names != expected:
        raise NotYet(f"Your flow returned {sorted(map(str, returned))}; the files under data/ are {expected}. "
                     "List with the folder 'data/' (with the slash: 'data' also matches data2/).")
    return (f"The block {block_name!r} (bucket {block.bucket_name!r}) is on the server, and your flow loaded it by "
            f"name in flow run {state.state_details.flow_run_id} and found {expected}.")


@exercise("05.2", "A Prefect Variable: the months to train on")
def months_variable(name: str = MONTHS_VARIABLE) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        variable = client.read_variable_by_name(name)
    if variable is None:
        raise NotYet(f"There is no Variable {name!r} on the server. Set it: "
                     f"`await Variable.aset({name!r}, {MONTHS_VALUE!r}, overwrite=True)`.")
    if variable.value != MONTHS_VALUE:
        raise NotYet(f"The Variable {name!r} holds {variable.value!r}; it should hold the JSON object "
                     f"{MONTHS_VALUE!r}. Set it again with overwrite=True.")
    if variable.updated and variable.updated < SESSION_START:
        raise NotYet(f"The Variable {name!r} was last set at {variable.updated:%Y-%m-%d %H:%M} UTC, before this "
                     "session: run your cell that sets it.")
    return f"Variable {name!r} = {variable.value!r}: any flow or deployment can read it with Variable.get({name!r})."
