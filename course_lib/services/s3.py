"""Data in S3 through Prefect blocks (lesson 05): ``AwsCredentials`` + ``S3Bucket`` from prefect-aws.

Where the bucket lives:

* **by default, a local S3 endpoint**: :class:`course_lib.services.S3Endpoint` runs
  ``moto_server`` on a free loopback port. boto3 and prefect-aws speak HTTP to it exactly as
  they would to AWS; only the ``endpoint_url`` differs. Any access key works there, so the
  course saves dummy keys.
* **real AWS** when you ask for it: an ``aws_profile``, or ``AWS_PROFILE``, or
  ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY`` in the environment. The region and the
  bucket come from the lesson's parameters (``AWS_DEFAULT_REGION`` / ``AWS_REGION`` too).
  The course never creates a bucket in your account: create it first
  (``aws s3 mb s3://NAME --region REGION``).

:func:`choose_target` decides and says which one is in use; no function here prints or
returns a secret (keys are shown as ``AKIA…1234`` at most).

Blocks: lesson 05 builds ``AwsCredentials(...)`` and ``S3Bucket(...)`` in its own cells and
the learner's flow (``orchestrate_s3.py``, reference in ``course_lib/pipeline/project/``) calls
``S3Bucket.load`` and ``download_folder_to_path`` itself. What is here serves the tests and the picture scripts:
:func:`save_blocks` saves both blocks from a target (``overwrite=True``), :func:`load_bucket`
loads one by name and lists the existing names when it does not exist
(:func:`missing_block_message`).

The prefix pitfall: ``S3Bucket.download_folder_to_path("data")`` lists every key starting
with ``data`` (also ``data2/...``) and then fails on them with ``ValueError ... is not in the
subpath``; ``"data/"`` (with the slash) lists only keys under it. :func:`download_folder`
does the same with the block's boto3 client, callable from a notebook cell without ``await``.

Functions here call prefect-aws with ``_sync=True``: they behave the same in a script, in a
flow and in a notebook cell (where the bare methods return coroutines).

Every failure raises an :class:`S3Error` subclass whose message names the problem and the fix.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

from course_lib.ml import data as course_data

__all__ = [
    "S3Error",
    "BlockNotFoundError",
    "BucketMissingError",
    "S3EndpointDownError",
    "S3CredentialsError",
    "missing_block_message",
    "S3Target",
    "choose_target",
    "ensure_bucket",
    "make_credentials",
    "save_blocks",
    "load_bucket",
    "bucket_block_names",
    "upload_months",
    "download_folder",
    "list_keys",
    "translate_s3_error",
    "endpoint_of",
    "mask",
    "month_key",
    "BUCKET_BLOCK",
    "CREDENTIALS_BLOCK",
    "DATA_FOLDER",
    "DEFAULT_BUCKET",
    "DEFAULT_REGION",
]

DEFAULT_BUCKET = "taxi-course-data"
DEFAULT_REGION = "us-east-1"
CREDENTIALS_BLOCK = "taxi-aws-creds"
BUCKET_BLOCK = "taxi-s3-bucket"
DATA_FOLDER = "data"
MONTHS = ("2023-01", "2023-02")

# moto accepts any key; these only have to look like keys. Never real secrets.
LOCAL_ACCESS_KEY_ID = "course-local-access-key"
LOCAL_SECRET_ACCESS_KEY = "course-local-secret-key"

# On the loopback endpoint a refused connection will not heal in seconds: two attempts, not
# botocore's default five with back-off (~10 s before a stopped endpoint is reported).
LOCAL_CLIENT_CONFIG = {"retries": {"max_attempts": 2, "mode": "standard"}, "connect_timeout": 5}

_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken",
                     "InvalidToken", "InvalidClientTokenId", "UnrecognizedClientException", "403", "Forbidden",
                     "AllAccessDisabled", "AuthorizationHeaderMalformed"}
_MISSING_BUCKET_CODES = {"NoSuchBucket", "404", "NotFound"}


class S3Error(RuntimeError):
    """An S3 step of the lesson failed; the message names the problem and the fix."""


class BlockNotFoundError(S3Error, ValueError):
    """No block of that name (the message lists the existing ones)."""


class BucketMissingError(S3Error):
    """The bucket does not exist at the endpoint in use."""


class S3EndpointDownError(S3Error):
    """Nothing answers at the S3 endpoint URL."""


class S3CredentialsError(S3Error):
    """The endpoint refused the credentials (or there are none)."""


def mask(value: str | None) -> str:
    """``AKIA…WXYZ``-style: enough to recognise a key, never the whole of it."""
    if not value:
        return "(none)"
    return f"{value[:4]}…{value[-4:]}" if len(value) > 12 else "****"


# --------------------------------------------------------------------------- where the bucket is


@dataclass
class S3Target:
    """Where the course's bucket lives: a local endpoint or AWS (no secret in ``repr``)."""

    kind: str  # "local" or "aws"
    bucket_name: str
    region: str
    endpoint_url: str | None = None  # None = AWS's own endpoints
    profile: str | None = None
    access_key_id: str | None = field(default=None, repr=False)  # an identifier of the account: never shown whole
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    endpoint: object | None = field(default=None, repr=False)  # the S3Endpoint we started

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    def __repr__(self) -> str:
        return f"S3Target({self.describe()})"

    def describe(self) -> str:
        """One line saying where the data goes and with which identity (secrets masked)."""
        if self.is_local:
            return (f"local S3 endpoint {self.endpoint_url} (moto_server, dummy keys), "
                    f"bucket {self.bucket_name!r}, region {self.region}")
        if self.profile:
            who = f"AWS profile {self.profile!r}"
        elif self.access_key_id:
            who = f"access key {mask(self.access_key_id)} from the environment"
        else:
            who = "boto3's default credential chain"
        where = f" via endpoint {self.endpoint_url}" if self.endpoint_url else ""
        return f"real AWS S3{where} with {who}, bucket {self.bucket_name!r}, region {self.region}"

    def client(self):
        """A boto3 S3 client for this target (outside Prefect blocks)."""
        return make_credentials(self).get_s3_client()

    def stop(self) -> None:
        """Stop the local endpoint this target started (no-op for AWS)."""
        if self.endpoint is not None:
            self.endpoint.stop()


def choose_target(aws_profile: str | None = None, bucket_name: str = DEFAULT_BUCKET,
                  aws_region: str | None = DEFAULT_REGION, endpoint=None, environ=None) -> S3Target:
    """Decide between real AWS and the local endpoint; start the local endpoint if needed.

    Real AWS when ``aws_profile`` is given, or the environment has ``AWS_PROFILE`` or both
    ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``. Otherwise ``endpoint`` (an
    ``S3Endpoint`` or a URL) or a new ``S3Endpoint`` is used. Prints which one is in use.
    """
    environ = os.environ if environ is None else environ
    if not bucket_name:
        raise S3Error("bucket_name is empty. Fix: pass a bucket name, e.g. bucket_name='taxi-course-data'.")
    region = aws_region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    profile = aws_profile or environ.get("AWS_PROFILE") or None
    key_id, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if endpoint is None and (profile or (key_id and secret)):
        target = S3Target("aws", bucket_name, region, endpoint_url=environ.get("AWS_ENDPOINT_URL_S3") or None,
                          profile=profile,
                          access_key_id=None if profile else key_id,
                          secret_access_key=None if profile else secret,
                          session_token=None if profile else environ.get("AWS_SESSION_TOKEN"))
    else:
        from course_lib.services import S3Endpoint

        started = None
        if endpoint is None:
            endpoint = started = S3Endpoint().start()
        url = endpoint if isinstance(endpoint, str) else endpoint.endpoint_url
        target = S3Target("local", bucket_name, region, endpoint_url=url.rstrip("/"),
                          access_key_id=LOCAL_ACCESS_KEY_ID, secret_access_key=LOCAL_SECRET_ACCESS_KEY,
                          endpoint=started)
    print("S3 in use:", target.describe())
    return target


# --------------------------------------------------------------------------- errors


def translate_s3_error(exc: BaseException, bucket: str | None = None, endpoint_url: str | None = None,
                       action: str = "talk to S3") -> S3Error:
    """Turn a botocore/boto3 exception into an :class:`S3Error` subclass with the fix.

    Never includes a secret: AWS error messages carry key ids at most, and keys are masked.
    """
    from botocore import exceptions as be

    where = f"the S3 endpoint {endpoint_url}" if endpoint_url else "AWS S3"
    if isinstance(exc, S3Error):
        return exc
    if isinstance(exc, (be.EndpointConnectionError, be.ConnectTimeoutError, be.ConnectionClosedError)):
        fix = ("start it (`S3Endpoint().start()`, or run the lesson's setup cell again) or correct the endpoint URL "
               "in the AwsCredentials block (aws_client_parameters.endpoint_url)") if endpoint_url else \
              "check your network connection and the region"
        return S3EndpointDownError(f"Could not {action}: nothing answers at {where} ({type(exc).__name__}). Fix: {fix}.")
    if isinstance(exc, (be.NoCredentialsError, be.PartialCredentialsError)):
        return S3CredentialsError(
            f"Could not {action}: no complete AWS credentials were found. Fix: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or pass aws_profile=...), or unset them all to use the local endpoint.")
    if isinstance(exc, be.ProfileNotFound):
        return S3CredentialsError(
            f"Could not {action}: {exc}. Fix: pass a profile listed by `aws configure list-profiles`, "
            "or aws_profile=None to use the local endpoint.")
    if isinstance(exc, be.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in _MISSING_BUCKET_CODES or (status == "404" and code in ("", "404")):
            return BucketMissingError(
                f"Could not {action}: the bucket {bucket!r} does not exist at {where}. Fix: create it "
                f"(course_lib.services.s3.ensure_bucket(target, create=True) locally, or `aws s3 mb s3://{bucket}` on AWS), "
                "or pass the name of an existing bucket (bucket_name=...) and save the blocks again.")
        if code in _CREDENTIAL_CODES or status == "403":
            return S3CredentialsError(
                f"Could not {action}: {where} refused the credentials ({code or 'HTTP ' + status}"
                + (f" on bucket {bucket!r}" if bucket else "") + "). Fix: check the access key id and secret key "
                "(or the profile) in the AwsCredentials block and that they may use this bucket; save the block "
                "again with overwrite=True.")
        return S3Error(f"Could not {action}: {where} answered {code or status}: {error.get('Message', '')}. "
                       "Fix: read the message; check the bucket name, region and credentials.")
    if isinstance(exc, be.BotoCoreError):
        return S3Error(f"Could not {action} at {where}: {exc}. Fix: check the endpoint URL, region and credentials.")
    return S3Error(f"Could not {action}: {type(exc).__name__}: {exc}")


def endpoint_of(credentials) -> str | None:
    params = getattr(credentials, "aws_client_parameters", None)
    return getattr(params, "endpoint_url", None) if params is not None else None


def _call(action: str, bucket: str | None, endpoint_url: str | None, fn, *args, **kwargs):
    """Run an S3 call; botocore failures become S3Error subclasses."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(*args, **kwargs)
    except (BotoCoreError, ClientError) as exc:
        raise translate_s3_error(exc, bucket=bucket, endpoint_url=endpoint_url, action=action) from exc


# --------------------------------------------------------------------------- blocks


def make_credentials(target: S3Target):
    """An ``AwsCredentials`` block for the target (not saved)."""
    from prefect_aws import AwsCredentials
    from prefect_aws.client_parameters import AwsClientParameters

    kwargs: dict = {"region_name": target.region}
    if target.endpoint_url:
        config = LOCAL_CLIENT_CONFIG if target.is_local else None
        kwargs["aws_client_parameters"] = AwsClientParameters(endpoint_url=target.endpoint_url, config=config)
    if target.profile:
        kwargs["profile_name"] = target.profile
    elif target.access_key_id:
        kwargs.update(aws_access_key_id=target.access_key_id, aws_secret_access_key=target.secret_access_key)
        if target.session_token:
            kwargs["aws_session_token"] = target.session_token
    return AwsCredentials(**kwargs)


def ensure_bucket(target: S3Target, create: bool | None = None) -> str:
    """Check the bucket exists; create it when ``create`` (default: only on the local endpoint)."""
    create = target.is_local if create is None else create
    client = target.client()
    from botocore.exceptions import ClientError

    try:
        _call("check the bucket", target.bucket_name, target.endpoint_url, client.head_bucket, Bucket=target.bucket_name)
        return target.bucket_name
    except BucketMissingError:
        if not create:
            raise
    except S3Error:
        raise
    kwargs = {"Bucket": target.bucket_name}
    if target.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": target.region}
    try:
        _call("create the bucket", target.bucket_name, target.endpoint_url, client.create_bucket, **kwargs)
    except S3Error as exc:
        cause = exc.__cause__
        if not (isinstance(cause, ClientError)
                and cause.response.get("Error", {}).get("Code") == "BucketAlreadyOwnedByYou"):
            raise
    print(f"Created bucket {target.bucket_name!r} at {target.endpoint_url or 'AWS'}")
    return target.bucket_name


def save_blocks(target: S3Target, credentials_block: str = CREDENTIALS_BLOCK, bucket_block: str = BUCKET_BLOCK):
    """Save ``AwsCredentials`` and ``S3Bucket`` blocks (``overwrite=True``); return the bucket block."""
    from prefect_aws import S3Bucket

    credentials = make_credentials(target)
    credentials.save(credentials_block, overwrite=True, _sync=True)
    bucket = S3Bucket(bucket_name=target.bucket_name, credentials=credentials)
    bucket.save(bucket_block, overwrite=True, _sync=True)
    print(f"Saved blocks aws-credentials/{credentials_block} and s3-bucket/{bucket_block} "
          f"(bucket {target.bucket_name!r})")
    return bucket


def bucket_block_names() -> list[str]:
    """Names of the saved ``S3Bucket`` blocks on the server."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        documents = client.read_block_documents_by_type("s3-bucket", include_secrets=False)
    return sorted(doc.name for doc in documents if doc.name and not doc.is_anonymous)


def missing_block_message(name: str) -> str:
    """What to say when no S3Bucket block is called ``name``: the names that exist, and the fix."""
    try:
        existing = bucket_block_names()
    except Exception:  # the listing is a hint only
        existing = []
    listed = ", ".join(repr(n) for n in existing) if existing else "none yet"
    return (f"There is no S3Bucket block named {name!r} on the Prefect server (existing S3Bucket blocks: {listed}). "
            "Fix: pass one of those names, or save one first: S3Bucket(bucket_name=..., credentials=...).save(name) "
            "(in the UI: Blocks > + > S3 Bucket).")


def load_bucket(name: str = BUCKET_BLOCK):
    """Load the ``S3Bucket`` block ``name`` (also inside a notebook cell); a missing name lists the existing ones."""
    from prefect_aws import S3Bucket

    try:
        return S3Bucket.load(name, _sync=True)
    except ValueError as exc:
        if "Unable to find block document" not in str(exc) and "not found" not in str(exc).lower():
            raise
        raise BlockNotFoundError(missing_block_message(name)) from None


def _bucket_and_endpoint(bucket) -> tuple[str, str | None]:
    return bucket.bucket_name, endpoint_of(bucket.credentials)


def list_keys(bucket, prefix: str = "") -> list[str]:
    """Every key in the bucket starting with ``prefix`` (sorted)."""
    name, endpoint_url = _bucket_and_endpoint(bucket)
    client = bucket.credentials.get_s3_client()
    paginator = client.get_paginator("list_objects_v2")

    def collect():
        return sorted(item["Key"] for page in paginator.paginate(Bucket=name, Prefix=prefix)
                      for item in page.get("Contents", []))

    return _call(f"list s3://{name}/{prefix}", name, endpoint_url, collect)


def month_key(month: str, folder: str = DATA_FOLDER) -> str:
    """The key a month is stored under, e.g. ``data/green_tripdata_2023-01.parquet``."""
    year, number = (int(part) for part in month.split("-"))
    return f"{folder.strip('/')}/{course_data.month_filename(year, number)}"


def upload_months(bucket, months: Iterable[str] = MONTHS, source: str = "auto",
                  folder: str = DATA_FOLDER) -> list[str]:
    """Load each month (``course_lib.ml.data.load_month``), write it as parquet, upload it under ``folder/``."""
    name, endpoint_url = _bucket_and_endpoint(bucket)
    keys = []
    with tempfile.TemporaryDirectory(prefix="taxi-upload-") as tmp:
        for month in months:
            frame = course_data.load_month(month, source=source)
            key = month_key(month, folder)
            local = Path(tmp) / PurePosixPath(key).name
            frame.to_parquet(local, index=False)
            _call(f"upload {key} to s3://{name}", name, endpoint_url,
                  bucket.upload_from_path, str(local), key, _sync=True)
            print(f"uploaded {month} ({len(frame):,} rows, {local.stat().st_size / 1e6:.1f} MB) "
                  f"to s3://{name}/{key}")
            keys.append(key)
    return keys


def download_folder(bucket, folder: str = DATA_FOLDER, to: str | os.PathLike | None = None) -> list[Path]:
    """Download every object under ``folder/`` (and only those) to ``to``; return the local files.

    Lists the prefix ``folder/`` with the trailing slash: prefect-aws's
    ``download_folder_to_path("data")`` also lists a sibling ``data2/...`` and then fails.
    Downloads with the block's own boto3 client, so it works in flows, scripts and notebook cells.
    """
    name, endpoint_url = _bucket_and_endpoint(bucket)
    prefix = folder.strip("/") + "/"
    if prefix == "/":
        raise S3Error("folder is empty. Fix: pass the folder inside the bucket, e.g. folder='data'.")
    if getattr(bucket, "bucket_folder", ""):
        raise S3Error(f"The S3Bucket block has bucket_folder={bucket.bucket_folder!r}; this lesson expects "
                      "keys relative to the bucket's root. Fix: save the block without bucket_folder.")
    keys = list_keys(bucket, prefix)
    files = [key for key in keys if not key.endswith("/")]
    if not files:
        raise S3Error(f"No objects under s3://{name}/{prefix}. Fix: upload the data first "
                      "(course_lib.services.s3.upload_months(bucket)).")
    destination = Path(to) if to is not None else Path(tempfile.mkdtemp(prefix="taxi-s3-"))
    destination.mkdir(parents=True, exist_ok=True)
    # The block's own client and keys, one download_file per key. Not
    # bucket.download_folder_to_path(..., _sync=True): its sync path calls list_objects()
    # without _sync, which returns a coroutine inside a notebook cell ("list of objects expected").
    client = bucket.credentials.get_s3_client()
    local = []
    for key in files:
        path = destination / key[len(prefix):]
        path.parent.mkdir(parents=True, exist_ok=True)
        _call(f"download s3://{name}/{key}", name, endpoint_url, client.download_file,
              Bucket=name, Key=key, Filename=str(path))
        local.append(path)
    return local
