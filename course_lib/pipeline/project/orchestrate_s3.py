"""The same pipeline with its data in S3: the months come from a bucket, through a Prefect block.

The flow names a block, never a key or an endpoint: `S3Bucket.load` brings the bucket's name
and its credentials from the Prefect server.
"""

import tempfile

from prefect import flow
from prefect_aws import S3Bucket

from orchestrate import add_features, read_data, train_best_model


@flow(persist_result=True, log_prints=True)
def main_flow_s3(train_month: str = "2023-01", val_month: str = "2023-02", bucket_block: str = "taxi-s3-bucket",
                 mode: str = "fast", num_boost_round: int | None = None) -> float:
    """Download data/ from the bucket of block `bucket_block`, then train as main_flow does."""
    bucket = S3Bucket.load(bucket_block)
    with tempfile.TemporaryDirectory() as folder:
        # "data/" with the slash: "data" would also match a sibling prefix such as data2/.
        bucket.download_folder_to_path(from_folder="data/", to_folder=folder)
        df_train = read_data(train_month, source="file", data_dir=folder)
        df_val = read_data(val_month, source="file", data_dir=folder)
    X_train, X_val, y_train, y_val = add_features(df_train, df_val, mode=mode)
    return train_best_model(X_train, X_val, y_train, y_val, mode=mode, num_boost_round=num_boost_round)


if __name__ == "__main__":
    main_flow_s3()
