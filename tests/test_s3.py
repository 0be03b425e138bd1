"""Lesson 05 (S3 blocks, code from git) against real processes.

A real local S3 endpoint (moto_server, module fixture) and the session's Prefect server
(`prefect_server` from conftest.py); the deployment test starts a real worker. Every block,
bucket, pool and secret here has a per-module unique name, and every process a test starts
is stopped in a `finally`/fixture teardown.

Bad credentials: moto accepts any key, so refused credentials cannot be provoked against the
local endpoint. They are tested by feeding botocore's real exception types (ClientError with
AWS's codes) to the translation function that every S3 call goes through.
"""

from __future__ import annotations

import json
import uuid

import pytest

from course_lib.ml import data
from course_lib.tooling import deployments
from course_lib.services import s3
from course_lib.tooling import project
from course_lib import services
from course_lib.services import S3Endpoint

SUFFIX = uuid.uuid4().hex[:8]
CREDS_BLOCK = f"test-creds-{SUFFIX}"
BUCKET_BLOCK = f"test-bucket-{SUFFIX}"
SECRET = f"test-secret-{uuid.uuid4().hex}"  # moto accepts any secret: a unique one we can search for
TOKEN = f"tok-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def endpoint():
    ep = S3Endpoint().start()
    try:
        yield ep
    finally:
        ep.stop()


@pytest.fixture(scope="module")
def target(endpoint):
    t = s3.choose_target(endpoint=endpoint, bucket_name=f"taxi-test-{SUFFIX}")
    t.secret_access_key = SECRET
    s3.ensure_bucket(t)
    return t


@pytest.fixture(scope="module")
def bucket(prefect_server, target):
    """Blocks saved, the two synthetic months uploaded, plus a `data2/` decoy key."""
    s3.save_blocks(target, credentials_block=CREDS_BLOCK, bucket_block=BUCKET_BLOCK)
    loaded = s3.load_bucket(BUCKET_BLOCK)
    s3.upload_months(loaded, source="synthetic")
    loaded.credentials.get_s3_client().put_object(Bucket=target.bucket_name, Key="data2/decoy.txt", Body=b"decoy")
    return loaded


# --------------------------------------------------------------------------- blocks


def test_blocks_roundtrip_with_masked_secret(bucket, target):
    from prefect_aws import S3Bucket

    loaded = s3.load_bucket(BUCKET_BLOCK)
    assert loaded.bucket_name == target.bucket_name
    creds = loaded.credentials
    assert creds.aws_client_parameters.endpoint_url == target.endpoint_url
    assert creds.aws_secret_access_key.get_secret_value() == SECRET
    assert SECRET not in repr(loaded) and SECRET not in repr(creds) and SECRET not in str(creds)
    assert SECRET not in target.describe() and SECRET not in repr(target)

    import asyncio

    async_loaded = asyncio.run(S3Bucket.aload(BUCKET_BLOCK))  # what a notebook cell awaits
    assert async_loaded.bucket_name == target.bucket_name

    listed = deployments.prefect_cli("block", "ls", show=False)
    assert BUCKET_BLOCK in listed.stdout and CREDS_BLOCK in listed.stdout
    inspected = deployments.prefect_cli("block", "inspect", f"aws-credentials/{CREDS_BLOCK}", show=False)
    assert SECRET not in listed.stdout + listed.stderr + inspected.stdout + inspected.stderr
    assert "****" in inspected.stdout
    assert BUCKET_BLOCK in s3.bucket_block_names()


def test_upload_and_guarded_download_ignore_sibling_prefix(bucket, tmp_path):
    keys = s3.list_keys(bucket)
    assert keys == ["data/green_tripdata_2023-01.parquet", "data/green_tripdata_2023-02.parquet", "data2/decoy.txt"]

    # The pitfall the guard exists for (prefect-aws 0.7.12): "data" also lists data2/...
    with pytest.raises(ValueError, match="subpath"):
        bucket.download_folder_to_path("data", str(tmp_path / "raw"), _sync=True)

    files = s3.download_folder(bucket, "data", tmp_path / "guarded")
    assert sorted(p.name for p in files) == ["green_tripdata_2023-01.parquet", "green_tripdata_2023-02.parquet"]
    assert sorted(p.name for p in (tmp_path / "guarded").iterdir()) == sorted(p.name for p in files)
    frame = data.load_parquet(files[0])
    assert len(frame) == len(data.load_month("2023-01", source="synthetic"))


def test_library_calls_work_inside_a_running_event_loop(bucket, tmp_path):
    """A notebook cell runs inside an event loop, where prefect-aws methods turn into coroutines."""
    import asyncio

    async def in_a_cell():
        loaded = s3.load_bucket(BUCKET_BLOCK)
        return s3.list_keys(loaded, "data/"), s3.download_folder(loaded, "data", tmp_path)

    keys, files = asyncio.run(in_a_cell())
    assert len(keys) == 2 and all(path.is_file() for path in files)


def test_main_flow_s3_equals_main_flow_on_the_uploaded_months(bucket):
    """S3 changes where the months come from, not what the model learns: the same RMSE, exactly.

    The learner's two flows as the course leaves them (the reference project).
    """
    rmse_s3 = project.reference_module("orchestrate_s3").main_flow_s3(bucket_block=BUCKET_BLOCK, num_boost_round=3)
    rmse_local = project.reference_module("orchestrate").main_flow(source="synthetic", num_boost_round=3)
    assert isinstance(rmse_s3, float) and rmse_s3 == rmse_local


# --------------------------------------------------------------------------- bad input


def test_unknown_block_lists_existing_names(bucket):
    with pytest.raises(s3.BlockNotFoundError) as caught:
        s3.load_bucket(f"no-such-block-{SUFFIX}")
    message = str(caught.value)
    assert f"no-such-block-{SUFFIX}" in message and BUCKET_BLOCK in message and "Fix:" in message


def test_missing_bucket(bucket, endpoint, prefect_server):
    from prefect_aws import S3Bucket

    missing = s3.choose_target(endpoint=endpoint, bucket_name=f"missing-{SUFFIX}")
    with pytest.raises(s3.BucketMissingError, match=f"missing-{SUFFIX}.*Fix:"):
        s3.ensure_bucket(missing, create=False)
    block = S3Bucket(bucket_name=missing.bucket_name, credentials=s3.make_credentials(missing))
    with pytest.raises(s3.BucketMissingError, match="does not exist"):
        s3.download_folder(block, "data")


def test_endpoint_down_names_the_url(prefect_server):
    from prefect_aws import S3Bucket

    with S3Endpoint() as doomed:
        url = doomed.endpoint_url
    down = s3.choose_target(endpoint=url, bucket_name="any-bucket")
    with pytest.raises(s3.S3EndpointDownError) as caught:
        s3.ensure_bucket(down)
    assert url in str(caught.value) and "Fix:" in str(caught.value)
    block = S3Bucket(bucket_name="any-bucket", credentials=s3.make_credentials(down))
    with pytest.raises(s3.S3EndpointDownError, match=url):
        s3.download_folder(block, "data")


@pytest.mark.parametrize("code,status", [("InvalidAccessKeyId", 403), ("SignatureDoesNotMatch", 403),
                                         ("AccessDenied", 403), ("ExpiredToken", 400), ("403", 403)])
def test_refused_credentials_are_translated(code, status):
    from botocore.exceptions import ClientError

    error = ClientError({"Error": {"Code": code, "Message": "The request was refused"},
                         "ResponseMetadata": {"HTTPStatusCode": status}}, "ListObjectsV2")
    translated = s3.translate_s3_error(error, bucket="b", endpoint_url=None, action="list s3://b/data/")
    assert isinstance(translated, s3.S3CredentialsError)
    assert "refused the credentials" in str(translated) and "Fix:" in str(translated)


def test_other_botocore_errors_are_translated():
    from botocore import exceptions as be

    assert isinstance(s3.translate_s3_error(be.NoCredentialsError()), s3.S3CredentialsError)
    assert isinstance(s3.translate_s3_error(be.ProfileNotFound(profile="nope")), s3.S3CredentialsError)
    down = s3.translate_s3_error(be.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
                                 endpoint_url="http://127.0.0.1:1")
    assert isinstance(down, s3.S3EndpointDownError) and "http://127.0.0.1:1" in str(down)
    missing = be.ClientError({"Error": {"Code": "NoSuchBucket", "Message": "nope"}}, "ListObjectsV2")
    assert isinstance(s3.translate_s3_error(missing, bucket="b"), s3.BucketMissingError)


def test_choose_target_uses_aws_only_when_asked():
    env = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY123456", "AWS_SECRET_ACCESS_KEY": SECRET}
    aws = s3.choose_target(bucket_name="b", aws_region="eu-west-1", environ=env)
    assert aws.kind == "aws" and aws.endpoint_url is None and aws.region == "eu-west-1"
    assert SECRET not in aws.describe() + repr(aws) and "AKIAEXAMPLEKEY123456" not in aws.describe()
    assert make_secret(s3.make_credentials(aws)) == SECRET
    profile = s3.choose_target(aws_profile="course", bucket_name="b", environ={})
    assert profile.kind == "aws" and s3.make_credentials(profile).profile_name == "course"
    local = s3.choose_target(endpoint="http://127.0.0.1:9/", bucket_name="b", environ=env)
    assert local.kind == "local" and local.endpoint_url == "http://127.0.0.1:9" and local.endpoint is None
    with pytest.raises(s3.S3Error, match="bucket_name"):
        s3.choose_target(bucket_name="", environ={}, endpoint="http://127.0.0.1:9")


def make_secret(credentials) -> str:
    return credentials.aws_secret_access_key.get_secret_value()


def test_no_worker_polling_the_pool_is_reported(prefect_server):
    from prefect import get_client

    pool = f"test-s3-idle-{SUFFIX}"
    services.ensure_work_pool(pool)
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(f"lesson05-idle-{SUFFIX}")
        deployment_id = client.create_deployment(flow_id=flow_id, name="nobody-polls", work_pool_name=pool,
                                                 entrypoint="nowhere.py:flow")
        run = client.create_flow_run_from_deployment(deployment_id)
    with pytest.raises(deployments.DeploymentError) as caught:
        deployments.wait_for_flow_run(run.id, late_after=2, poll_seconds=0.5)
    assert pool in str(caught.value) and "prefect worker start" in str(caught.value)


# --------------------------------------------------------------------------- git


TOKEN_BLOCK = f"test-git-token-{SUFFIX}"
MESSAGE_LINE = 'MESSAGE = "committed version 1"  # printed by each run: which code did it execute?\n'


def project_as_lesson_05_leaves_it(folder, pool: str):
    """The reference project of lesson 05 in ``folder``: a git repository pushed to a bare remote
    beside it, its git_clone step reading a private repository's token from a Secret block (as
    lesson 05 shows), its deployments on ``pool``. Returns the remote's file:// URL."""
    folder.mkdir()
    for name in project.reference_files(5):
        (folder / name).write_text(project.reference(name, 5))
    flow_file = folder / "orchestrate_s3.py"
    text = flow_file.read_text()
    text = text.replace("\n\n@flow", f"\n{MESSAGE_LINE}\n\n@flow", 1)
    text = text.replace("    bucket = S3Bucket.load(bucket_block)", "    print(MESSAGE)\n    bucket = S3Bucket.load(bucket_block)")
    flow_file.write_text(text)
    yaml_file = folder / "prefect.yaml"
    yaml_text = yaml_file.read_text().replace("name: local-pool", f"name: {pool}")
    yaml_text = yaml_text.replace("    branch: main\n",
                                  "    branch: main\n    access_token: '{{ prefect.blocks.secret.%s }}'\n" % TOKEN_BLOCK)
    yaml_file.write_text(yaml_text)
    remote = folder.parent / "remote.git"
    project.run_git("init", "--bare", "--quiet", "--initial-branch=main", str(remote), cwd=folder.parent)
    for args in (("init", "--quiet", "--initial-branch=main"), ("add", "-A"), ("commit", "--quiet", "-m", "v1"),
                 ("remote", "add", "origin", remote.as_uri()), ("push", "--quiet", "origin", "HEAD:main")):
        project.run_git(*args, cwd=folder)
    return remote.as_uri()


def test_deployment_runs_pushed_code_and_hides_the_token(bucket, prefect_server, tmp_path):
    """The learner's lesson-05 path: prefect deploy in the project, a real worker, git_clone of a file:// remote."""
    from prefect.blocks.system import Secret
    from prefect.variables import Variable

    pool = f"test-s3-pool-{SUFFIX}"
    services.ensure_work_pool(pool)
    folder = tmp_path / "my-project"
    remote = project_as_lesson_05_leaves_it(folder, pool)
    Variable.set(project.REPOSITORY_VARIABLE, remote, overwrite=True)
    Secret(value=TOKEN).save(TOKEN_BLOCK, overwrite=True)  # ignored by a file:// clone, never shown
    deployments.prefect_cli("deploy", "--name", "taxi_s3_data", cwd=folder, show=False)
    flow_file = folder / "orchestrate_s3.py"
    flow_file.write_text(flow_file.read_text().replace("committed version 1", "edited but not pushed"))

    def run():
        result = deployments.prefect_cli("deployment", "run", "main-flow-s3/taxi_s3_data", "--params",
                                         json.dumps({"bucket_block": BUCKET_BLOCK, "num_boost_round": 3}), show=False)
        return deployments.follow(result.stdout, timeout=300)

    worker = services.Worker(pool, query_seconds=1)
    try:
        worker.start()
        first = run()
        assert first.state == "Completed", first.logs
        # The run executed the pushed code, not the working copy.
        assert first.printed("committed version 1") and not first.printed("edited but not pushed")
        project.run_git("commit", "--quiet", "-am", "v2", cwd=folder)
        project.run_git("push", "--quiet", "origin", "HEAD:main", cwd=folder)
        second = run()
        assert second.state == "Completed", second.logs
        assert second.printed("edited but not pushed") and not second.printed("committed version 1")
    finally:
        worker.stop()
    # The deployment's persisted result is the flow's RMSE on the same months and rounds.
    expected = project.reference_module("orchestrate_s3").main_flow_s3(bucket_block=BUCKET_BLOCK, num_boost_round=3)
    assert first.result() == second.result() == expected
    everything = "\n".join(first.logs + second.logs) + worker.log_path.read_text()
    everything += deployments.prefect_cli("deployment", "inspect", "main-flow-s3/taxi_s3_data", show=False).stdout
    assert TOKEN not in everything and SECRET not in everything
    assert f"prefect.blocks.secret.{TOKEN_BLOCK}" in everything  # the deployment keeps the reference only
