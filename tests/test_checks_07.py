"""Lesson 07's first cell: which remote workspace, with a clear error for a malformed setting and no key shown."""

import pytest

from course_lib.tooling.checks import lesson07


@pytest.mark.parametrize("workspace", ["my-workspace", "https://app.prefect.cloud/account/x/workspace/y",
                                       "account/ws/extra", "account/ my ws", "/ws", "account/"])
def test_a_malformed_workspace_is_a_clear_error(monkeypatch, workspace):
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_canary_key_value")
    with pytest.raises(ValueError, match="account-handle/workspace-handle") as raised:
        lesson07.remote_workspace(workspace)
    assert "pnu_canary_key_value" not in str(raised.value)


def test_a_workspace_without_a_key_says_where_the_key_goes(monkeypatch):
    monkeypatch.delenv("PREFECT_API_KEY", raising=False)
    with pytest.raises(ValueError, match="PREFECT_API_KEY is not"):
        lesson07.remote_workspace("my-account/my-workspace")


def test_cloud_needs_both_and_a_lone_key_is_dropped(monkeypatch, capsys):
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_canary_key_value")
    assert lesson07.remote_workspace(" my-account/my.workspace_2 ") is True
    assert lesson07.remote_workspace(None) is False  # a key without a workspace: the stand-in
    import os

    assert "PREFECT_API_KEY" not in os.environ  # it would override the stand-in's password
    shown = capsys.readouterr().out
    assert "using the stand-in" in shown and "pnu_canary_key_value" not in shown
    assert lesson07.remote_workspace("") is False


def test_a_workspace_of_the_wrong_type_is_named(monkeypatch):
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_canary_key_value")
    with pytest.raises(ValueError, match="must be a string"):
        lesson07.remote_workspace(42)
