"""A real local S3 HTTP endpoint: ``moto_server`` as a course service."""

from __future__ import annotations

import os
import time

from course_lib import paths
from course_lib.services.base import (
    DEFAULT_S3_START_TIMEOUT,
    HOST,
    ServiceError,
    _ManagedProcess,
    executable,
    free_port,
    http_status,
    port_is_free,
)


class S3Endpoint(_ManagedProcess):
    """A real ``moto_server`` on 127.0.0.1: a local S3-compatible endpoint.

    Use it with any dummy credentials, e.g.
    ``boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id="test",
    aws_secret_access_key="test", region_name="us-east-1")``.
    """

    kind = "S3 endpoint (moto_server)"
    stop_grace = 5.0

    def __init__(self, port: int | None = None, timeout: float = DEFAULT_S3_START_TIMEOUT) -> None:
        super().__init__()
        self._requested_port = port
        self.port: int | None = None
        self.timeout = timeout
        self.startup_seconds: float | None = None

    def __repr__(self) -> str:
        url = f"http://{HOST}:{self.port}" if self.port else None
        return f"S3Endpoint(endpoint_url={url!r}, {'running' if self.running else 'stopped'})"

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise ServiceError("The S3 endpoint is not started. Fix: call .start() (or use `with S3Endpoint() as s3:`).")
        return f"http://{HOST}:{self.port}"

    def start(self) -> "S3Endpoint":
        if self.running:
            return self
        port = self._requested_port
        if port is not None:
            if not port_is_free(port):
                raise ServiceError(
                    f"Port {port} on {HOST} is already in use, so the S3 endpoint cannot listen on it. "
                    f"Fix: stop the program that holds port {port}, or pass another port (or none for a free one)."
                )
        else:
            port = free_port()
        self.port = port
        state = paths.subdir("moto")
        env = dict(os.environ)
        # moto_server needs no credentials; keep none in its environment (and so in its log).
        for key in list(env):
            if key.startswith("AWS_"):
                env.pop(key)
        env["PYTHONUNBUFFERED"] = "1"
        argv = [executable("moto_server"), "-H", HOST, "-p", str(port)]
        t0 = time.monotonic()
        self._spawn(argv, env, log_path=state / f"moto-{port}.log", cwd=state)
        self._wait_until(
            lambda: http_status(self.endpoint_url + "/", timeout=2) is not None, self.timeout,
            poll_seconds=0.2,
            died=f"The S3 endpoint {self.endpoint_url} (moto_server) exited with code {{code}} during start.",
            died_fix="read the log lines below; check that moto, flask and flask-cors are installed (`make setup`).",
            slow=f"The S3 endpoint {self.endpoint_url} did not answer within {self.timeout:.0f} s.",
            slow_fix="pass a larger timeout= on a slow machine.",
        )
        self.startup_seconds = time.monotonic() - t0
        return self

    def check(self) -> None:
        """Raise ServiceError unless the endpoint answers HTTP."""
        check_s3_endpoint(self.endpoint_url)

    def stop(self) -> None:
        """Stop moto_server (idempotent)."""
        self._terminate()


def check_s3_endpoint(endpoint_url: str) -> None:
    """Raise :class:`ServiceError` naming ``endpoint_url`` unless something answers HTTP there."""
    if http_status(endpoint_url.rstrip("/") + "/", timeout=3) is None:
        raise ServiceError(
            f"The S3 endpoint {endpoint_url} does not answer. "
            "Fix: start it (`s3 = S3Endpoint().start()`), or correct the endpoint URL you configured."
        )

