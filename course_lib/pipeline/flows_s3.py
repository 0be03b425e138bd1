"""``main_flow_s3``: the 2023 course's training flow with its data in an S3 bucket (lesson 05).

It loads the ``S3Bucket`` block by name (so the flow holds no endpoint, key or secret: the
block does), downloads the bucket's ``data/`` folder to a temporary folder, and trains with
the course's own tasks (``course_lib.pipeline.flows.read_data``, ``add_features``,
``train_best_model``). The deployment ``taxi_s3_data`` runs it through the small entrypoint
that lesson 05 keeps in git (``course_lib.services.gitsource``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from course_lib.services import s3
from course_lib.pipeline.flows import add_features, flow_run_tags, read_data, retry_unless, train_best_model


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless(s3.S3Error), cache_policy=NO_CACHE,
      log_prints=True)
def download_data(bucket_block: str, data_folder: str, to: str) -> list[str]:
    """Load the bucket block by name and download ``data_folder/`` (only it) to ``to``."""
    bucket = s3.load_bucket(bucket_block)
    files = s3.download_folder(bucket, data_folder, to)
    endpoint = s3.endpoint_of(bucket.credentials) or "AWS"
    print(f"downloaded {len(files)} file(s) from s3://{bucket.bucket_name}/{data_folder.strip('/')}/ "
          f"({endpoint}) with block {bucket_block!r}")
    return [str(path) for path in files]


@flow(name="main-flow-s3", persist_result=True, log_prints=True)
def main_flow_s3(bucket_block: str = s3.BUCKET_BLOCK, train_month: str = "2023-01", val_month: str = "2023-02",
                 data_folder: str = s3.DATA_FOLDER, mode: str = "fast", num_boost_round: int | None = None) -> float:
    """Train on two months read from the S3 bucket of block ``bucket_block``; return the validation RMSE."""
    with tempfile.TemporaryDirectory(prefix="taxi-s3-") as tmp:
        download_data(bucket_block, data_folder, tmp)
        folder = Path(tmp)
        train_path = folder / Path(s3.month_key(train_month, data_folder)).name
        val_path = folder / Path(s3.month_key(val_month, data_folder)).name
        for month, path in ((train_month, train_path), (val_month, val_path)):
            if not path.is_file():
                raise s3.S3Error(f"Month {month} is not in the bucket (expected key "
                                 f"{s3.month_key(month, data_folder)}). Fix: upload it "
                                 f"(course_lib.services.s3.upload_months(bucket, months=[{month!r}])).")
        df_train = read_data(str(train_path))
        df_val = read_data(str(val_path))
        X_train, X_val, y_train, y_val, preprocessor = add_features(df_train, df_val, mode=mode)
        rmse, _mlflow_run_id = train_best_model(X_train, X_val, y_train, y_val, preprocessor, mode=mode,
                                                num_boost_round=num_boost_round,
                                                tags={**flow_run_tags(), "data": "s3"})
    return rmse
