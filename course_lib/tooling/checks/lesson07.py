"""Checks of lesson 07 (profiles): they read the real profiles.toml that `prefect profile ...` writes."""

from __future__ import annotations

from course_lib.services import remote
from course_lib.tooling.checks import NotYet, exercise

STAGING = "staging"
LOCAL = "local"


@exercise("07.1", "A profile of your own, made active")
def staging_profile(local_api_url: str) -> str:
    active, profiles = remote.profiles()
    if STAGING not in profiles:
        raise NotYet(f"profiles.toml has no profile {STAGING!r} (it has {sorted(profiles)}): run "
                     f"`!prefect profile create {STAGING}`.")
    url = profiles[STAGING].get("PREFECT_API_URL")
    if url != local_api_url:
        raise NotYet(f"Profile {STAGING!r} has PREFECT_API_URL={url!r}, not the local server's {local_api_url!r}: "
                     f"run `!prefect --profile {STAGING} config set PREFECT_API_URL={{local.api_url}}`.")
    if active != STAGING:
        raise NotYet(f"The active profile is {active!r}, not {STAGING!r}: run `!prefect profile use {STAGING}`.")
    return f"Profile {STAGING!r} points at {url} and is active."


@exercise("07.2", "Back to the local profile")
def back_to_local(local_api_url: str) -> str:
    active, profiles = remote.profiles()
    if STAGING not in profiles:
        raise NotYet(f"There is no profile {STAGING!r} to switch back from: do exercise 07.1 first "
                     "(and keep the profile; the lesson's last cell deletes it).")
    if active != LOCAL:
        raise NotYet(f"The active profile is still {active!r}: run `!prefect profile use {LOCAL}`.")
    url = profiles.get(LOCAL, {}).get("PREFECT_API_URL")
    if url != local_api_url:
        raise NotYet(f"Profile {LOCAL!r} points at {url!r}, not the local server's {local_api_url!r}: run the "
                     "lesson's `local` profile cell again (it sets the URL), then this exercise.")
    return f"Active profile: {LOCAL!r} ({url}); {STAGING!r} is kept for later."
