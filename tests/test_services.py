"""course_lib.services against real processes: a Prefect server, a worker, moto_server.

One module-scoped server (no UI) is shared by most tests; the auth test starts a
second one and the failure test a third that dies at once. The last test stops the
shared server and checks that nothing is left behind.
"""

from __future__ import annotations

import base64
import os
import socket
import time
import urllib.error
import urllib.request
import uuid

import pytest

from course_lib import services
from course_lib.services import (
    PrefectServer,
    S3Endpoint,
    ServiceError,
    Worker,
    check_s3_endpoint,
    ensure_work_pool,
    free_port,
    port_is_free,
    start_server,
    stop_server,
)

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _group_gone(pgid: int, wait: float = 5.0) -> bool:
    deadline = time.monotonic() + wait
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _post(url: str, body: bytes = b"{}", headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def course_env(tmp_path_factory):
    """A private working folder and Prefect client home; no inherited server settings."""
    work = tmp_path_factory.mktemp("course-work")
    mp = pytest.MonkeyPatch()
    mp.setenv("COURSE_WORKDIR", str(work))
    mp.setenv("COURSE_PREFECT_UI", "0")
    mp.setenv("PREFECT_HOME", str(work / "client-home"))
    for key in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "PREFECT_API_KEY", "COURSE_PREFECT_PORT"):
        mp.delenv(key, raising=False)
    services.base._refresh_prefect_settings()
    yield work
    mp.undo()
    services.base._refresh_prefect_settings()


@pytest.fixture(scope="module")
def server(course_env):
    srv = PrefectServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def env(monkeypatch):
    """Function-scoped env changes; Prefect's settings are refreshed after they are undone."""
    yield monkeypatch
    monkeypatch.undo()
    services.base._refresh_prefect_settings()


# ----------------------------------------------------------------- shared server


def test_server_is_healthy_and_exported(server, course_env):
    assert server.running and not server.reused
    assert server.api_url == f"http://127.0.0.1:{server.port}/api"
    assert server.ui_url == f"http://127.0.0.1:{server.port}"
    assert services.http_status(server.health_url) == 200
    assert os.environ["PREFECT_API_URL"] == server.api_url
    assert server.env()["PREFECT_API_URL"] == server.api_url
    assert server.env()["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    # its state (SQLite database, log) lives in the course working folder
    assert server.home == course_env / "prefect" / "local"
    assert (server.home / "prefect.db").exists()
    assert server.log_path == server.home / "server.log"
    assert "prefect config set PREFECT_API_URL" in server.log_tail(50)


def test_flow_run_is_recorded_by_the_server(server):
    from prefect import flow
    from prefect.client.orchestration import get_client

    @flow(name="services-smoke")
    def smoke(x: int) -> int:
        return 2 * x

    state = smoke(21, return_state=True)
    assert state.is_completed()
    assert state.result() == 42
    run_id = state.state_details.flow_run_id

    with get_client(sync_client=True) as client:
        assert str(client.api_url).rstrip("/") == server.api_url
        run = client.read_flow_run(run_id)
    assert run.state.is_completed()
    assert run.name
    assert server.url_for_flow_run(run_id) == f"{server.ui_url}/runs/flow-run/{run_id}"


def test_second_server_reuses_the_running_one(server, capsys):
    second = PrefectServer()
    assert second.start() is second
    assert second.reused
    assert second.api_url == server.api_url
    assert "Reusing" in capsys.readouterr().out
    second.stop()
    second.stop()  # idempotent
    assert server.running and server.healthy()
    assert os.environ["PREFECT_API_URL"] == server.api_url

    # the notebook helpers are idempotent and never stop a reused server
    first = start_server()
    assert start_server() is first and first.reused
    stop_server()
    stop_server()
    assert server.healthy()


def test_worker_comes_online_and_stops(server):
    pool = f"svc-pool-{uuid.uuid4().hex[:6]}"
    created = ensure_work_pool(pool)
    again = ensure_work_pool(pool, server=server)
    assert again.id == created.id and again.type == "process"

    worker = Worker(pool, server=server)
    with worker:
        assert worker.running
        assert worker.status() == "ONLINE"
        pid = worker.pid
        assert worker.startup_seconds is not None
        assert "started" in worker.log_tail()
    assert not worker.running
    assert _pid_gone(pid) and _group_gone(pid)
    worker.stop()  # idempotent


def test_worker_without_server_fails_clearly(env):
    env.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(ServiceError, match="PREFECT_API_URL is not set"):
        Worker("nopool").start()


# ----------------------------------------------------------------- bad inputs


def test_requested_port_taken(env, server):
    env.delenv("PREFECT_API_URL", raising=False)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        blocked = PrefectServer(port=port)
        with pytest.raises(ServiceError, match=rf"Port {port}\b.*in use") as info:
            blocked.start()
        assert "Fix:" in str(info.value)
        assert blocked.process is None  # refused before spawning

        env.setenv("COURSE_PREFECT_PORT", str(port))
        with pytest.raises(ServiceError, match=rf"COURSE_PREFECT_PORT={port}"):
            PrefectServer().start()
    assert "PREFECT_API_URL" not in os.environ


def test_unreachable_api_url(env):
    dead = f"http://127.0.0.1:{free_port()}/api"
    env.setenv("PREFECT_API_URL", dead)
    with pytest.raises(ServiceError) as info:
        PrefectServer().start()
    message = str(info.value)
    assert dead in message and "unset PREFECT_API_URL" in message


def test_server_that_cannot_start_reports_its_log(env):
    env.delenv("PREFECT_API_URL", raising=False)
    env.setenv("PREFECT_SERVER_API_KEEPALIVE_TIMEOUT", "not-a-number")  # a bogus setting
    broken = PrefectServer(name="broken")
    with pytest.raises(ServiceError) as info:
        broken.start()
    message = str(info.value)
    assert "exited with code" in message
    assert "keepalive_timeout" in message  # text from the server's own log
    assert broken.process is not None and broken.process.poll() is not None
    assert _group_gone(broken.process.pid)
    assert "PREFECT_API_URL" not in os.environ
    broken.stop()  # idempotent after a failed start


def test_auth_server_and_failure_inside_with_block(env, server):
    from prefect.client.orchestration import get_client

    env.delenv("PREFECT_API_URL", raising=False)
    secret = f"course:{uuid.uuid4().hex}"
    auth_server = PrefectServer(auth_string=secret, name="auth")
    with pytest.raises(RuntimeError, match="boom inside with"):
        with auth_server:
            url = auth_server.api_url
            port = auth_server.port
            pgid = auth_server.pid
            # health stays open; the API needs basic auth
            assert services.http_status(auth_server.health_url) == 200
            assert _post(f"{url}/flows/filter") == 401
            token = base64.b64encode(secret.encode()).decode()
            assert _post(f"{url}/flows/filter", headers={"Authorization": f"Basic {token}"}) == 200
            # clients get PREFECT_API_AUTH_STRING from the environment
            assert os.environ["PREFECT_API_AUTH_STRING"] == secret
            assert auth_server.env()["PREFECT_API_AUTH_STRING"] == secret
            with get_client(sync_client=True) as client:
                assert str(client.api_url).rstrip("/") == url
                assert client.read_flows() == []
            raise RuntimeError("boom inside with")

    # the failure did not leak the server
    assert not auth_server.running
    assert _group_gone(pgid)
    assert port_is_free(port)
    assert "PREFECT_API_URL" not in os.environ
    assert "PREFECT_API_AUTH_STRING" not in os.environ
    log_text = auth_server.log_path.read_text(errors="replace")
    assert log_text and secret not in log_text
    assert secret.split(":")[1] not in log_text
    # the shared server was not touched
    assert server.healthy()


# ----------------------------------------------------------------- S3


def test_s3_endpoint_roundtrip(course_env):
    import boto3

    with S3Endpoint() as s3:
        url = s3.endpoint_url
        port = s3.port
        pid = s3.pid
        s3.check()
        client = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="course-bucket")
        client.put_object(Bucket="course-bucket", Key="data/hello.txt", Body=b"hello prefect")
        body = client.get_object(Bucket="course-bucket", Key="data/hello.txt")["Body"].read()
        assert body == b"hello prefect"
        assert "testing" not in s3.log_tail(200)
    assert not s3.running and _group_gone(pid)
    assert port_is_free(port)
    with pytest.raises(ServiceError, match=url):
        check_s3_endpoint(url)
    s3.stop()  # idempotent


# ----------------------------------------------------------------- shared server stop (last)


def test_stopping_the_shared_server_leaves_nothing(server):
    pgid, port = server.pid, server.port
    server.stop()
    assert not server.running
    assert _group_gone(pgid)
    assert port_is_free(port)
    assert "PREFECT_API_URL" not in os.environ  # restored to its value before start (unset)
    server.stop()  # idempotent
