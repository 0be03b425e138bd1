"""course_lib.services against real processes: a Prefect server, a worker, moto_server.

One module-scoped server (no UI) is shared by most tests; the auth test starts a
second one and the failure test a third that dies at once. The last test stops the
shared server and checks that nothing is left behind.
"""

from __future__ import annotations

import base64
import http.server
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from course_lib import services
from course_lib.services.base import _refresh_prefect_settings
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
from course_lib.services.base import group_gone

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))




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
    _refresh_prefect_settings()
    yield work
    mp.undo()
    _refresh_prefect_settings()


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
    _refresh_prefect_settings()


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
    assert _pid_gone(pid) and group_gone(pid, wait=5.0)
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
    assert group_gone(broken.process.pid, wait=5.0)
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
    assert group_gone(pgid, wait=5.0)
    assert port_is_free(port)
    assert "PREFECT_API_URL" not in os.environ
    assert "PREFECT_API_AUTH_STRING" not in os.environ
    log_text = auth_server.log_path.read_text(errors="replace")
    assert log_text and secret not in log_text
    assert secret.split(":")[1] not in log_text
    # the shared server was not touched
    assert server.healthy()


# ----------------------------------------------------------------- start_server() and the learner port
# start_server() prefers the learner port (4200); the tests move it (COURSE_LEARNER_PORT) so they never
# touch a real server on 4200.


def _fresh_kernel(env):
    """As in a new notebook kernel: no server started in this process, PREFECT_API_URL unset."""
    env.setattr(services.server, "_SERVER", None)
    for key in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "COURSE_PREFECT_PORT"):
        env.delenv(key, raising=False)
    _refresh_prefect_settings()


def _prefect_cli(args, child_env):
    """A child process, as a `!prefect ...` cell or a service runs it."""
    return subprocess.run([services.executable("prefect"), *args], env=child_env, capture_output=True, text=True,
                          timeout=120)


class _NotPrefect(http.server.BaseHTTPRequestHandler):
    """Something else on the learner port: answers 404 to everything."""

    def do_GET(self):  # noqa: N802
        self.send_error(404)

    def log_message(self, *args):
        pass


def test_start_server_reuses_a_course_server_on_the_learner_port(env, server, capsys):
    env.setenv("COURSE_LEARNER_PORT", str(server.port))
    _fresh_kernel(env)
    found = start_server()
    assert found.reused and not found.running  # no process of its own
    assert found.api_url == server.api_url == os.environ["PREFECT_API_URL"]
    assert f"Reusing the Prefect server at {server.api_url}" in capsys.readouterr().out
    assert start_server() is found
    stop_server()
    assert server.healthy()  # a reused server is left running


def test_start_server_falls_back_to_a_free_port_and_a_reused_auth_server_passes_its_auth(env, server):
    holder = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotPrefect)
    threading.Thread(target=holder.serve_forever, daemon=True).start()
    held = holder.server_address[1]
    env.setenv("COURSE_LEARNER_PORT", str(held))
    _fresh_kernel(env)
    secret = f"course:{uuid.uuid4().hex}"
    try:
        owner = start_server(auth_string=secret)
    finally:
        holder.shutdown()
        holder.server_close()
    try:
        # something else holds the learner port: a new server on a free port, not a reuse
        assert not owner.reused and owner.running and owner.port not in (held, server.port)
        assert os.environ["PREFECT_API_URL"] == owner.api_url == f"http://127.0.0.1:{owner.port}/api"

        # a second kernel finds this password-protected course server on the learner port
        env.setenv("COURSE_LEARNER_PORT", str(owner.port))
        _fresh_kernel(env)
        no_auth = dict(os.environ)
        refused = _prefect_cli(["work-pool", "ls"], {**no_auth, "PREFECT_API_URL": owner.api_url})
        assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr  # the API needs the auth

        # (a) the auth comes from the environment (PREFECT_API_AUTH_STRING, as a key should)
        env.setenv("PREFECT_API_AUTH_STRING", secret)
        reused = start_server()
        assert reused.reused and reused.api_url == owner.api_url
        assert reused.env()["PREFECT_API_AUTH_STRING"] == secret  # what Worker / S3 helpers pass on
        for child_env in (dict(os.environ), {**no_auth, **reused.env()}):  # a `!prefect` cell; a service
            listed = _prefect_cli(["work-pool", "ls"], child_env)
            assert listed.returncode == 0, listed.stdout + listed.stderr
        stop_server()
        assert owner.healthy()

        # (b) the auth is passed to start_server(): children inherit it all the same
        _fresh_kernel(env)
        reused = start_server(auth_string=secret)
        assert reused.reused and reused.env()["PREFECT_API_AUTH_STRING"] == secret
        assert os.environ.get("PREFECT_API_AUTH_STRING") == secret
        listed = _prefect_cli(["work-pool", "ls"], dict(os.environ))
        assert listed.returncode == 0, listed.stdout + listed.stderr
        stop_server()
        assert "PREFECT_API_AUTH_STRING" not in os.environ  # restored by stop
        assert owner.healthy()
    finally:
        owner.stop()
    assert not owner.running


# ----------------------------------------------------------------- leaks at session end (conftest.py)


@pytest.mark.parametrize("stops_it, workers", [(False, 0), (True, 0), (False, 2)],
                         ids=["leaks", "stops", "leaks-under-xdist"])
def test_session_end_fails_on_a_leaked_course_service(tmp_path, stops_it, workers):
    """A nested pytest session whose test starts a process that looks like moto_server; with
    ``workers`` (as `make test` runs), the leak is in an xdist worker and its controller finds it."""
    (tmp_path / "test_leak.py").write_text(textwrap.dedent(f"""
        import subprocess, sys
        def test_starts_a_service():
            service = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "moto_server"],
                                       start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print("service pid", service.pid)
            if {stops_it}:
                service.kill()
                service.wait()
    """))
    # -p conftest: the repository's conftest.py (importable from cwd) is this session's plugin
    # A worker's own output is lost: with xdist, -rP prints the captured output in the report.
    output = ["-n", str(workers), "-rP"] if workers else ["-s"]
    result = subprocess.run([sys.executable, "-m", "pytest", *output, "-q", "-p", "no:cacheprovider", "-p", "conftest",
                             "--rootdir", str(tmp_path), str(tmp_path / "test_leak.py")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    pid = int(re.search(r"service pid (\d+)", result.stdout)[1])
    if not stops_it and not _pid_gone(pid):  # make sure it goes, whatever the check did
        os.kill(pid, 9)
    if stops_it:
        assert result.returncode == 0 and "LEAKED" not in result.stdout, result.stdout[-2000:]
        return
    assert result.returncode == 1, result.stdout[-2000:]
    assert "LEAKED SERVICES" in result.stdout
    assert re.search(rf"pid {pid}: S3 endpoint \(moto_server\): .*moto_server", result.stdout)
    assert "1 passed" in result.stdout  # the test itself passed: the session end failed it
    deadline = time.monotonic() + 10
    while not _pid_gone(pid) and time.monotonic() < deadline:  # stopped by the check, then reaped
        time.sleep(0.1)
    assert _pid_gone(pid)


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
    assert not s3.running and group_gone(pid, wait=5.0)
    assert port_is_free(port)
    with pytest.raises(ServiceError, match=url):
        check_s3_endpoint(url)
    s3.stop()  # idempotent


# ----------------------------------------------------------------- shared server stop (last)


def test_stopping_the_shared_server_leaves_nothing(server):
    pgid, port = server.pid, server.port
    server.stop()
    assert not server.running
    assert group_gone(pgid, wait=5.0)
    assert port_is_free(port)
    assert "PREFECT_API_URL" not in os.environ  # restored to its value before start (unset)
    server.stop()  # idempotent
