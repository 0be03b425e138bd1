"""Lesson 07's remote workspace: a password-protected self-hosted server; secrets never shown."""

import os
import subprocess

import pytest

from course_lib import services
from course_lib.services import remote
from course_lib.tooling import deployments


@pytest.fixture(scope="module")
def workspace(prefect_server):
    password = remote.new_auth_string()
    server = services.PrefectServer(name="test-remote", auth_string=password, port=services.free_port(),
                                    export=False).start()
    yield server, password
    server.stop()
    assert services.port_is_free(server.port)


@pytest.mark.parametrize(("given", "handle"), [(None, None), ("", None), ("  ", None), ("acme/prod", "acme/prod"),
                                               (" acme-inc/ml_dev.2 ", "acme-inc/ml_dev.2")])
def test_a_workspace_handle_is_accepted_or_empty(given, handle):
    assert remote.check_workspace(given) == handle


@pytest.mark.parametrize(("given", "problem"), [("acme", "has no '/'"), ("acme/", "has an empty part"),
                                                ("/prod", "has an empty part"), ("acme/prod/x", "has more than one '/'"),
                                                ("acme/my workspace", "has characters a handle cannot have")])
def test_a_malformed_workspace_says_the_form_it_wants(given, problem):
    with pytest.raises(ValueError) as caught:
        remote.check_workspace(given)
    message = str(caught.value)
    assert message.startswith(f"prefect_workspace={given.strip()!r} is not a workspace handle: it {problem}.")
    assert "'account-handle/workspace-handle'" in message and "prefect cloud workspace ls" in message


def raw_log(process) -> str:
    """A service's whole log file as written (log_tail() redacts secrets, so it cannot tell)."""
    return process.log_path.read_text(encoding="utf-8", errors="replace")


def test_second_server_does_not_replace_the_session_server(workspace, prefect_server):
    server, _ = workspace
    assert server.api_url != prefect_server.api_url
    assert os.environ["PREFECT_API_URL"] == prefect_server.api_url


def test_api_refuses_requests_without_the_password(workspace):
    server, password = workspace
    checks = remote.auth_check(server.api_url, password).set_index("request")
    assert checks.loc["GET /health"].tolist() == [200, 200]
    assert checks.loc["POST /flows/filter"].tolist() == [401, 200]
    assert remote.auth_check(server.api_url, "course:wrong").loc[1, "with credentials"] == 401


def bash(script: str, **env) -> subprocess.CompletedProcess:
    """A lesson's %%bash cell: the kernel's environment plus ``env``; fails like the cell would."""
    full_env = {**os.environ, **services.HEADLESS_ENV, **env}
    full_env["PATH"] = os.path.dirname(services.executable("prefect")) + os.pathsep + full_env["PATH"]
    result = subprocess.run(["bash", "-c", script], env=full_env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


# The lesson's commands for the stand-in's profile (notebooks/07_prefect_cloud.ipynb).
SAVE_PROFILE = """set -eo pipefail
prefect profile create test-remote > /dev/null 2>&1 || echo "(profile exists already)"
prefect --profile test-remote config set PREFECT_API_URL="$COURSE_REMOTE_API" PREFECT_API_AUTH_STRING="$COURSE_REMOTE_AUTH" \\
    | grep -v PREFECT_API_AUTH_STRING
"""


def test_the_lessons_profile_commands_keep_the_password_out_of_every_output(workspace):
    server, password = workspace
    secret = password.split(":", 1)[1]
    saved = bash(SAVE_PROFILE, COURSE_REMOTE_API=server.api_url, COURSE_REMOTE_AUTH=password)
    assert "Updated profile 'test-remote'" in saved.stdout
    assert secret not in saved.stdout + saved.stderr
    # config set does echo the password: the grep in the lesson is what keeps it out.
    echoed = bash('prefect --profile test-remote config set PREFECT_API_AUTH_STRING="$COURSE_REMOTE_AUTH"',
                  COURSE_REMOTE_AUTH=password)
    assert secret in echoed.stdout
    try:
        active, profiles = remote.profiles()
        assert profiles["test-remote"] == {"PREFECT_API_URL": server.api_url, "PREFECT_API_AUTH_STRING": password}
        assert remote.profile_api_env("test-remote") == {
            "PREFECT_API_URL": server.api_url, "PREFECT_API_KEY": None, "PREFECT_API_AUTH_STRING": password}
        view = bash("unset PREFECT_API_URL PREFECT_API_AUTH_STRING; prefect --profile test-remote config view")
        assert f"PREFECT_API_URL='{server.api_url}' (from profile)" in view.stdout
        assert "PREFECT_API_AUTH_STRING='********' (from profile)" in view.stdout and secret not in view.stdout
    finally:
        deployments.prefect_cli("profile", "delete", "test-remote", show=False)
    assert "test-remote" not in remote.profiles()[1]
    assert secret not in raw_log(server)


def test_profile_api_env_names_a_missing_profile():
    with pytest.raises(ValueError, match="prefect profile create no-such-profile"):
        remote.profile_api_env("no-such-profile")


def test_a_worker_on_this_machine_runs_a_deployment_of_the_remote(workspace, prefect_server, tmp_path):
    from prefect import flow
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from course_lib.ml import training
    from course_lib.tooling.runs import api_client

    server, password = workspace
    from course_lib.tooling import project

    folder = project.reference_folder()  # the learner's project as the course leaves it
    with services.use_api(server.env()):
        services.ensure_work_pool("test-remote-pool")
        flow.from_source(source=str(folder), entrypoint="orchestrate.py:main_flow").deploy(
            name="taxi_remote_test", work_pool_name="test-remote-pool", print_next_steps=False)
        with services.Worker("test-remote-pool") as worker:
            flow_run = run_deployment("main-flow/taxi_remote_test", timeout=240,
                                      parameters={"source": "synthetic", "num_boost_round": 5})
            assert flow_run.state.is_completed(), flow_run.state
            rmse = flow_run.state.result()
    # the worker ran the same pipeline as a plain call on the same data and rounds
    assert rmse == training.train_months("2023-01", "2023-02", source="synthetic", num_boost_round=5).rmse
    with api_client() as client:  # the session server has never heard of that run
        with pytest.raises(ObjectNotFound):
            client.read_flow_run(flow_run.id)
    secret = password.split(":", 1)[1]
    assert secret not in raw_log(worker) and secret not in raw_log(server)
