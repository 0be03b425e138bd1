"""Lesson 07: a remote workspace — Prefect Cloud when a key is given, else a password-protected
self-hosted Prefect server standing in for it (offline learners, CI).

Both are driven the same way: a profile holds the API URL and the credentials, a worker on this
machine polls a pool of the remote workspace, and a deployment's runs are executed here while
the remote API records them. Secrets (the API key, the server password) are never printed:
every command that carries one is shown with ``********``.
"""

from __future__ import annotations

import secrets

import pandas as pd

from course_lib.tooling import deployments
from course_lib import paths, services

REMOTE_POOL = "remote-pool"
REMOTE_DEPLOYMENT = "taxi_remote"


def new_auth_string(user: str = "course") -> str:
    """A fresh ``user:password`` for the self-hosted server's basic auth."""
    return f"{user}:{secrets.token_urlsafe(18)}"


def _status(url: str, method: str, auth_string: str | None = None) -> int | None:
    import base64

    headers = {"Content-Type": "application/json"}
    if auth_string:
        headers["Authorization"] = "Basic " + base64.b64encode(auth_string.encode()).decode()
    return services.http_status(url, timeout=10, headers=headers, method=method,
                                body=b"{}" if method == "POST" else None)


def auth_check(api_url: str, auth_string: str) -> pd.DataFrame:
    """HTTP status of the same API calls without and with the credentials (health stays open)."""
    calls = [("GET", "/health"), ("POST", "/flows/filter"), ("POST", "/work_pools/filter")]
    rows = [{"request": f"{method} {path}", "without credentials": _status(api_url + path, method),
             "with credentials": _status(api_url + path, method, auth_string)} for method, path in calls]
    return pd.DataFrame(rows)


def profile_env(profile: str) -> dict:
    """Environment that makes a `prefect` command use a profile's settings, not this kernel's."""
    return {"PREFECT_PROFILE": profile, "PREFECT_API_URL": None, "PREFECT_API_AUTH_STRING": None,
            "PREFECT_API_KEY": None}


def save_profile(profile: str, settings: dict[str, str], secret_values: tuple[str, ...] = ()) -> None:
    """Create (or update) a profile with ``prefect profile create`` and ``prefect config set``.

    Note: ``prefect config set`` stores values, the auth string included, in plain text in
    ``$PREFECT_HOME/profiles.toml`` (here inside the git-ignored working folder).
    """
    existing = deployments.prefect_cli("profile", "ls", show=False).stdout
    if profile not in existing.split():
        deployments.prefect_cli("profile", "create", profile)
    pairs = [f"{key}={value}" for key, value in settings.items()]
    deployments.prefect_cli("--profile", profile, "config", "set", *pairs, redact=secret_values)


def delete_profile(profile: str, fallback: str = "ephemeral") -> None:
    """Switch away from ``profile`` (if active) and delete it, so no credentials stay behind."""
    deployments.prefect_cli("profile", "use", fallback, show=False, check=False)
    deployments.prefect_cli("profile", "delete", profile, check=False, env={"PREFECT_CLI_PROMPT": "false"})


def cloud_login(api_key: str, workspace: str, profile: str = "cloud") -> dict:
    """``prefect cloud login -k KEY -w ACCOUNT/WORKSPACE`` into a profile; returns its API settings."""
    from prefect.settings.profiles import load_profiles

    save_profile(profile, {"PREFECT_CLI_PROMPT": "false"})
    deployments.prefect_cli("--profile", profile, "cloud", "login", "-k", api_key, "-w", workspace,
                            redact=(api_key,), env=profile_env(profile))
    settings = load_profiles()[profile].settings
    values = {setting.name: value for setting, value in settings.items()}
    return {"PREFECT_API_URL": values["PREFECT_API_URL"], "PREFECT_API_KEY": api_key,
            "PREFECT_API_AUTH_STRING": None}


def deploy_and_run(remote_env: dict, parameters: dict, pool: str = REMOTE_POOL,
                   secret_values: tuple[str, ...] = ()) -> tuple[str, str]:
    """Deploy the training flow to the remote workspace, run it with a local worker, wait.

    Returns (flow run id, final state name). The worker and the client calls use ``remote_env``
    only inside this call; the kernel's own PREFECT_API_URL is restored afterwards.
    """
    project = paths.subdir("lesson07-project")
    deployments.init_project(project, show=False)
    with services.use_api(remote_env):
        services.ensure_work_pool(pool)
        with services.Worker(pool):
            deployments.prefect_cli("deploy", "orchestrate.py:main_flow", "-n", REMOTE_DEPLOYMENT, "-p", pool,
                                    cwd=project, redact=secret_values)
            params = [arg for name, value in parameters.items() for arg in ("--param", f"{name}={value}")]
            result = deployments.prefect_cli("deployment", "run", f"main-flow/{REMOTE_DEPLOYMENT}", *params,
                                              redact=secret_values)
            flow_run_id = deployments.flow_run_id_from_output(result.stdout)
            final_state = deployments.wait_for_flow_run(flow_run_id)
    return str(flow_run_id), final_state
