"""``main_flow_s3``: the 2023 course's training flow with its data in an S3 bucket (lesson 05).

The flow names a block, never a key or an endpoint: ``S3Bucket.load(bucket_block)`` brings the
bucket name and the credentials (a saved ``AwsCredentials`` block) from the Prefect server.
``download_folder_to_path("data/", ...)`` copies the bucket's ``data/`` folder to a temporary
folder, and the course's own tasks train on it (``read_data``, ``add_features``,
``train_best_model`` from ``course_lib.pipeline.flows``). The deployment ``taxi_s3_data`` runs
it through the small entrypoint that lesson 05 keeps in git.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect_aws import S3Bucket

from course_lib.pipeline.flows import add_features, flow_run_tags, read_data, retry_unless, train_best_model
from course_lib.services import s3


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless(ValueError), cache_policy=NO_CACHE,
      log_prints=True)
def download_data(bucket_block: str, data_folder: str, to: str) -> list[str]:
    """Load the S3Bucket block by name and download ``data_folder/`` to ``to``.

    A missing block is not retried: it will not appear by waiting.
    """
    try:
        bucket = S3Bucket.load(bucket_block)
    except ValueError as missing:  # "Unable to find block document named ..."
        raise s3.BlockNotFoundError(s3.missing_block_message(bucket_block)) from missing
    # "data/" with the slash: "data" would also match a sibling folder such as data2/.
    bucket.download_folder_to_path(from_folder=f"{data_folder.strip('/')}/", to_folder=to)
    files = sorted(str(path) for path in Path(to).rglob("*") if path.is_file())
    print(f"downloaded {len(files)} file(s) from s3://{bucket.bucket_name}/{data_folder.strip('/')}/ "
          f"with block {bucket_block!r}")
    return files


@flow(name="main-flow-s3", persist_result=True, log_prints=True)
def main_flow_s3(bucket_block: str = "taxi-s3-bucket", train_month: str = "2023-01", val_month: str = "2023-02",
                 data_folder: str = "data", mode: str = "fast", num_boost_round: int | None = None) -> float:
    """Train on two months read from the S3 bucket of block ``bucket_block``; return the validation RMSE."""
    with tempfile.TemporaryDirectory(prefix="taxi-s3-") as tmp:
        download_data(bucket_block, data_folder, tmp)
        paths = {month: Path(tmp) / Path(s3.month_key(month, data_folder)).name for month in (train_month, val_month)}
        for month, path in paths.items():
            if not path.is_file():
                raise s3.MonthMissingError(
                    f"Month {month} is not in the bucket (expected key {s3.month_key(month, data_folder)}). "
                    f"Fix: upload it (course_lib.services.s3.upload_months(bucket, months=[{month!r}])).")
        df_train = read_data(str(paths[train_month]))
        df_val = read_data(str(paths[val_month]))
        X_train, X_val, y_train, y_val, preprocessor = add_features(df_train, df_val, mode=mode)
        rmse, _mlflow_run_id = train_best_model(X_train, X_val, y_train, y_val, preprocessor, mode=mode,
                                                num_boost_round=num_boost_round,
                                                tags={**flow_run_tags(), "data": "s3"})
    return rmse
