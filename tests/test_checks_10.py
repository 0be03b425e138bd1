"""Lesson 10's checks, the parts that judge without a server: the retries and the cron expression (the same
verdict as in every lesson), and the RMSE read from the learner's report (lesson 06's contract)."""

from unittest import mock

import pytest

from course_lib.tooling.checks import lesson10, normalise_cron


@pytest.mark.parametrize("options", [dict(retries=3, retry_delay_seconds=2), dict(retries=3, retry_delay_seconds=[2, 2, 2]),
                                     dict(retries=3, retry_delay_seconds=[2])])
def test_three_retries_two_seconds_apart_are_accepted_however_written(options):
    from prefect import task

    @task(name="Read taxi data", **options)
    def read_taxi_month(month: str) -> int:
        return 0

    assert lesson10.named_task_with_retries(read_taxi_month).passed


@pytest.mark.parametrize("options, hint", [(dict(retries=3, retry_delay_seconds=[2, 5, 10]), "2 seconds"),
                                           (dict(retries=2, retry_delay_seconds=2), "retries=3"),
                                           (dict(retry_delay_seconds=2), "retries=3")])
def test_other_retries_are_refused_with_their_hint(options, hint):
    from prefect import task

    @task(name="Read taxi data", **options)
    def read_taxi_month(month: str) -> int:
        return 0

    result = lesson10.named_task_with_retries(read_taxi_month)
    assert not result.passed and hint in result.message


@pytest.mark.parametrize("cron, hint", [("0 9 3 * *", None), ("00 09 03 * *", None), ("0 3 9 * *", "hour 9"),
                                        ("0 9 * * 3", "Wednesday"), ("0 9 3 1 *", "the last two fields"),
                                        ("0 9 3 *", "five fields"), ("30 9 3 * *", "minute 0")])
def test_the_cron_expression_is_judged_after_normalising_it(cron, hint):
    problem = lesson10._cron_problem(normalise_cron(cron))
    assert problem is None if hint is None else hint in problem


def _published_report(rmse: float) -> str:
    """The markdown the reference flow's publish_report writes (lesson 06), captured without a server."""
    import importlib.util

    from course_lib.tooling import project

    source = project.reference("orchestrate.py", 6)
    spec = importlib.util.spec_from_loader("reference_orchestrate", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, "orchestrate.py", "exec"), module.__dict__)  # noqa: S102 - the course's own reference file
    with mock.patch.object(module, "create_markdown_artifact") as markdown, \
            mock.patch.object(module, "create_table_artifact"):
        module.publish_report.fn("2023-02", "2023-03", 10, 10, rmse)
    return markdown.call_args.kwargs["markdown"]


def test_the_rmse_is_read_from_the_report_as_lesson_06_writes_it():
    report = _published_report(5.371234567)
    assert lesson10.RMSE_COLUMN in report
    assert lesson10.report_rmse(report) == 5.37123  # the table's number: 5 decimals, not the run's full float


@pytest.mark.parametrize("markdown", [None, "", "# RMSE report\n\nno table", "| Date | RMSE |\n|:---|---:|\n| x | 5.1 |",
                                      "| Date | Validation RMSE (minutes) |\n|:---|---:|\n| 2026-01-01 | n/a |"])
def test_a_report_without_the_rmse_row_gives_none(markdown):
    assert lesson10.report_rmse(markdown) is None
