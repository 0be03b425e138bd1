"""The parts of lessons 05-06's checks that read the learner's text (no server needed), and show_file's
selectors: each mistake gets the hint that names it, and the reference passes. (The notebooks run every
exercise three ways against a real server, S3 endpoint and worker.)"""

import pytest
import yaml

from course_lib.tooling import project
from course_lib.tooling.checks import NotYet, lesson05, lesson06
from course_lib.tooling.show import show_file

S3_FLOW = project.reference("orchestrate_s3.py", 5)
PREFECT_YAML = project.reference("prefect.yaml", 5)
REPORTING = project.reference("orchestrate.py", 6)


def test_the_reference_s3_flow_passes_the_static_part():
    lesson05._static_s3_flow(S3_FLOW)


@pytest.mark.parametrize("old, new, hint", [
    ("    bucket = S3Bucket.load(bucket_block)\n", "", "never loads the bucket block"),
    ("S3Bucket.load(bucket_block)", 'S3Bucket.load("taxi-s3-bucket")', "ignores bucket_block"),
    ("def main_flow_s3(", "def main_flow(", "no function `main_flow_s3`"),
    (' bucket_block: str = "taxi-s3-bucket",', "", "no parameter bucket_block"),
    ("with tempfile", "with tempfile(", "not valid Python"),
])
def test_s3_flow_mistakes_read_from_the_text(old, new, hint):
    assert old in S3_FLOW
    with pytest.raises(NotYet, match=hint):
        lesson05._static_s3_flow(S3_FLOW.replace(old, new, 1))


def test_a_block_loaded_on_import_is_outside_the_flow():
    text = S3_FLOW.replace("\n\n@flow", '\nbucket = S3Bucket.load("taxi-s3-bucket")\n\n\n@flow', 1)
    with pytest.raises(NotYet, match="outside the flow"):
        lesson05._static_s3_flow(text)


def test_the_reference_prefect_yaml_passes_the_file_part():
    lesson05._yaml_problems(yaml.safe_load(PREFECT_YAML))


@pytest.mark.parametrize("old, new, hint", [
    ("prefect.deployments.steps.git_clone", "prefect.projects.steps.git_clone_project", "Prefect 2.10's name"),
    ("pull:\n", "pull:\n- prefect.deployments.steps.set_working_directory:\n    directory: x\n", "set_working_directory"),
    ("name: taxi_s3_data", "name: taxi_s3", "no deployment 'taxi_s3_data'"),
    ("bucket_block: taxi-s3-bucket", "bucket_block: taxi-bucket", "bucket_block: taxi-s3-bucket"),
    ("    name: local-pool\n- name: taxi_s3_data", "    name: local_pool\n- name: taxi_s3_data", "work pool 'local_pool'"),
])
def test_prefect_yaml_mistakes(old, new, hint):
    assert old in PREFECT_YAML
    with pytest.raises(NotYet, match=hint):
        lesson05._yaml_problems(yaml.safe_load(PREFECT_YAML.replace(old, new, 1)))


def test_the_reference_report_passes_the_static_part():
    lesson06._static_report(REPORTING)


@pytest.mark.parametrize("old, new, hint", [
    ('key="duration-model-report"', 'key="Duration_Model_Report"', "lowercase letters, digits and dashes"),
    ("    publish_report(train_month, val_month, len(df_train), len(df_val), rmse)\n", "", "never calls publish_report"),
    ("    create_table_artifact(\n", "    dict(\n", "publishes no table"),
    ("    create_markdown_artifact(\n", "    dict(\n", "never calls create_markdown_artifact"),
])
def test_report_mistakes_read_from_the_text(old, new, hint):
    assert old in REPORTING
    with pytest.raises(NotYet, match=hint):
        lesson06._static_report(REPORTING.replace(old, new, 1))


def _report(row: str, header: str = "| Date | Validation RMSE (minutes) |") -> str:
    return f"# RMSE report\n\n{header}\n|:---|---:|\n{row}\n"


def test_the_report_carries_the_runs_rmse_with_5_decimals():
    from datetime import datetime, timezone

    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert lesson06._check_report(_report(f"| {today} | 4.63876 |"), 4.638758438) == "4.63876"
    with pytest.raises(NotYet, match="5 decimals"):
        lesson06._check_report(_report(f"| {today} | 4.64 |"), 4.638758438)
    with pytest.raises(NotYet, match="your run returned"):
        lesson06._check_report(_report(f"| {today} | 5.19931 |"), 4.638758438)
    with pytest.raises(NotYet, match="indented by four spaces"):
        lesson06._check_report("    " + _report(f"| {today} | 4.63876 |").replace("\n", "\n    "), 4.638758438)
    with pytest.raises(NotYet, match="Validation RMSE"):
        lesson06._check_report(_report(f"| {today} | 4.63876 |", header="| Date | RMSE |"), 4.638758438)
    with pytest.raises(NotYet, match="dated 2023-05-01"):
        lesson06._check_report(_report("| 2023-05-01 | 4.63876 |"), 4.638758438)


def test_show_file_shows_one_function_or_a_range(capsys):
    path = project.REFERENCE / "orchestrate.py"
    code = show_file(path, function="publish_report")
    assert code.data.startswith("@task(name=\"Publish the report\"") and "def main_flow" not in code.data
    assert "`publish_report`, lines" in capsys.readouterr().out
    assert show_file(path, lines="1-3").data.count("\n") == 3
    with pytest.raises(ValueError, match="no top-level function or class 'nope'"):
        show_file(path, function="nope")
    with pytest.raises(ValueError, match="outside the file"):
        show_file(path, lines="70-900")
