"""Lesson 07's remote workspace: a password-protected self-hosted server; secrets never shown."""

import pytest

from course_lib.tooling import deployments, runs
from course_lib.services import remote
from course_lib import services


@pytest.fixture(scope="module")
def workspace(prefect_server):
    password = remote.new_auth_string()
    server = services.PrefectServer(name="test-remote", auth_string=password, export=False).start()
    yield server, password
    server.stop()
    assert services.port_is_free(server.port)


def test_second_server_does_not_replace_the_session_server(workspace, prefect_server):
    import os

    server, _ = workspace
    assert server.api_url != prefect_server.api_url
    assert os.environ["PREFECT_API_URL"] == prefect_server.api_url


def test_api_refuses_requests_without_the_password(workspace):
    server, password = workspace
    checks = remote.auth_check(server.api_url, password).set_index("request")
    assert checks.loc["GET /health"].tolist() == [200, 200]
    assert checks.loc["POST /flows/filter"].tolist() == [401, 200]
    assert remote.auth_check(server.api_url, "course:wrong").loc[1, "with credentials"] == 401


def test_profile_keeps_the_password_out_of_every_output(workspace, capsys):
    server, password = workspace
    remote.save_profile("test-remote", {"PREFECT_API_URL": server.api_url, "PREFECT_API_AUTH_STRING": password},
                        (password,))
    view = deployments.prefect_cli("config", "view", env=remote.profile_env("test-remote"), redact=(password,))
    assert server.api_url in view.stdout
    remote.delete_profile("test-remote")
    listed = deployments.prefect_cli("profile", "ls").stdout
    assert "test-remote" not in listed
    shown = capsys.readouterr().out
    assert "PREFECT_API_AUTH_STRING=********" in shown and password not in shown
    assert password.split(":", 1)[1] not in server.log_tail(500)


def test_deploy_and_run_through_a_worker_on_the_remote(workspace, prefect_server, capsys):
    server, password = workspace
    flow_run_id, final_state = remote.deploy_and_run(server.env(), {"source": "synthetic", "num_boost_round": 5},
                                                     pool="test-remote-pool", secret_values=(password,))
    assert final_state == "Completed"
    with services.use_api(server.env()):
        assert runs.flow_run_summary(flow_run_id)["state"] == "Completed"
    with pytest.raises(Exception):  # the session server has never heard of that run
        runs.flow_run_summary(flow_run_id)
    assert password.split(":", 1)[1] not in capsys.readouterr().out
