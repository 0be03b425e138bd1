"""Lesson 07: a remote workspace — Prefect Cloud when a key is given, else a password-protected
self-hosted Prefect server standing in for it (offline learners, CI).

The lesson itself runs the commands it teaches (`prefect profile create/use`, `prefect config
set`, `prefect cloud login`, `prefect work-pool create`, `prefect deploy`, `run_deployment`).
This module keeps the plumbing: a fresh password for the stand-in server, the HTTP check that
shows it refuses requests without it, and the API settings of a profile for this process and
the worker it starts. Secrets (the API key, the server password) are never printed.
"""

from __future__ import annotations

import base64
import re
import secrets

import pandas as pd

from course_lib import services

#: The settings of a profile that say which API to reach and how to authenticate.
API_SETTINGS = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING")


# A Prefect Cloud workspace's full handle: ``<account handle>/<workspace handle>`` (what
# `prefect cloud workspace ls` lists and `prefect cloud login -w` expects).
_HANDLE = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?"
_WORKSPACE = re.compile(rf"{_HANDLE}/{_HANDLE}")


def check_workspace(name: str | None) -> str | None:
    """Lesson 07's ``prefect_workspace`` parameter, checked: ``"account-handle/workspace-handle"``
    (surrounding spaces dropped), or None when it is empty (no Prefect Cloud: the stand-in server).

    Anything else raises ``ValueError`` with the expected form and where to find it, before a
    ``prefect cloud login`` would fail with "Workspace ... not found" after its network round trip.
    """
    if name is None or not str(name).strip():
        return None
    handle = str(name).strip()
    if not _WORKSPACE.fullmatch(handle):
        problem = ("has no '/'" if "/" not in handle else
                   "has more than one '/'" if handle.count("/") > 1 else
                   "has an empty part" if "" in handle.split("/") else "has characters a handle cannot have")
        raise ValueError(
            f"prefect_workspace={handle!r} is not a workspace handle: it {problem}. Write it as "
            "'account-handle/workspace-handle' (`prefect cloud workspace ls` lists the handles your key "
            "can use), or leave it empty to use the stand-in server.")
    return handle


def new_auth_string(user: str = "course") -> str:
    """A fresh ``user:password`` for the self-hosted server's basic auth."""
    return f"{user}:{secrets.token_urlsafe(18)}"


def _status(url: str, method: str, auth_string: str | None = None) -> int | None:
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


def profiles() -> tuple[str | None, dict[str, dict[str, str]]]:
    """(active profile, {profile: {setting: value}}) as written in ``$PREFECT_HOME/profiles.toml``
    (Prefect's built-in defaults left out)."""
    from prefect.settings.profiles import load_profiles

    found = load_profiles(include_defaults=False)
    return found.active_name, {name: {setting.name: str(value) for setting, value in profile.settings.items()}
                               for name, profile in found.items()}


def profile_api_env(profile: str) -> dict[str, str | None]:
    """The API settings of ``profile`` as environment variables (None unsets one), for
    ``services.use_api(...)``: this process and the worker it starts then reach that profile's API."""
    _, found = profiles()
    if profile not in found:
        raise ValueError(f"there is no profile {profile!r} in profiles.toml (profiles: {sorted(found)}): "
                         f"create it first with `prefect profile create {profile}`.")
    settings = found[profile]
    if "PREFECT_API_URL" not in settings:
        raise ValueError(f"profile {profile!r} has no PREFECT_API_URL: set it with "
                         f"`prefect --profile {profile} config set PREFECT_API_URL=...` (or `prefect cloud login`).")
    return {name: settings.get(name) for name in API_SETTINGS}
