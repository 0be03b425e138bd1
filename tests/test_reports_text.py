"""The pure parts of course_lib.pipeline.reports, without a Prefect server: the artifact key check
and the report's markdown. (test_reports.py publishes them to the session's real server.)"""

import time
from datetime import datetime, timezone

import pytest

from course_lib.pipeline import reports


def report_markdown_example() -> str:
    return reports.report_markdown(train="2023-01", val="2023-02", source="synthetic", mode="fast", rmse=4.123456,
                                   n_train=67274, n_val=68077, mlflow_run_id="abc123",
                                   mlflow_run_url="http://127.0.0.1:5001/#/experiments/1/runs/abc123",
                                   when=datetime(2026, 11, 28, 9, 30, tzinfo=timezone.utc))


@pytest.mark.parametrize("key", ["duration-model-report", "rmse-2023-01", "a", "0-9", "-x-"])
def test_keys_of_lowercase_letters_digits_and_dashes_pass_unchanged(key):
    assert reports.check_key(key) == key


@pytest.mark.parametrize(("key", "suggestion"), [
    ("Duration_Model_Report", "duration-model-report"), ("rmse report!", "rmse-report"),
    ("RMSE", "rmse"), ("a_b", "a-b"), ("", "duration-model-report"), ("__", "duration-model-report"),
    ("-Key-", "key"), ("ключ", "duration-model-report"),
])
def test_a_key_prefect_would_refuse_is_refused_with_a_suggestion(key, suggestion):
    with pytest.raises(ValueError) as caught:
        reports.check_key(key)
    assert str(caught.value) == (f"artifact key {key!r} is invalid: Prefect accepts only lowercase letters, digits and "
                                 f"dashes. Use e.g. {suggestion!r}.")
    assert reports.check_key(suggestion) == suggestion  # the suggestion itself passes


@pytest.mark.parametrize("key", [None, 42, b"report"])
def test_a_key_that_is_not_text_is_refused(key):
    with pytest.raises(ValueError, match="is invalid"):
        reports.check_key(key)


def test_the_report_is_this_markdown_table():
    assert report_markdown_example() == (
        "# Trip-duration model report\n"
        "\n"
        "| Item | Value |\n"
        "|:---|:---|\n"
        "| Date | 2026-11-28 09:30 UTC |\n"
        "| Training month | 2023-01 (67,274 trips) |\n"
        "| Validation month | 2023-02 (68,077 trips) |\n"
        "| Data source | synthetic |\n"
        "| Training mode | fast |\n"
        "| Validation RMSE (minutes) | 4.12346 |\n"
        "| MLflow run | [abc123](http://127.0.0.1:5001/#/experiments/1/runs/abc123) |\n"
    )


@pytest.fixture
def local_time_far_from_utc(monkeypatch):
    """This process's local time zone is UTC+05:30, so a local time cannot pass for UTC."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_report_is_dated_now_in_utc_by_default(local_time_far_from_utc):
    before = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    markdown = reports.report_markdown(train="a", val="b", source="file", mode="reference", rmse=5.0, n_train=1,
                                       n_val=2, mlflow_run_id="r", mlflow_run_url="u")
    after = datetime.now(timezone.utc)
    stamp = datetime.strptime(markdown.splitlines()[4], "| Date | %Y-%m-%d %H:%M UTC |").replace(tzinfo=timezone.utc)
    assert before <= stamp <= after
    assert not any(line.startswith(" ") for line in markdown.splitlines())  # no line renders as a code block
