"""No secret, nor an access key id, in what the course shows."""

from course_lib.services.s3 import S3Target
from course_lib.tooling import hygiene


def test_an_s3_target_shows_a_masked_key_id_and_never_the_secret():
    target = S3Target("aws", "bucket", "us-east-1", access_key_id="AKIACANARY0000001234", secret_access_key="canary-secret")
    for shown in (repr(target), str(target), target.describe()):
        assert "AKIACANARY0000001234" not in shown and "canary-secret" not in shown
        assert "AKIA…1234" in shown  # enough to recognise the key, not the key


def test_the_secret_scan_finds_a_value_in_any_output_of_any_cell():
    notebook = {"cells": [
        {"cell_type": "code", "source": "x", "outputs": [{"output_type": "stream", "name": "stdout", "text": "ok\n"}]},
        {"cell_type": "code", "id": "leaky", "source": "x",
         "outputs": [{"output_type": "display_data", "data": {"text/html": "<b>AKIACANARY</b>"}}]},
    ]}
    assert hygiene.secrets_found(notebook, {"the AWS key id": "AKIACANARY"}, "05") == ["05 cell 1 (leaky) shows the AWS key id"]
    assert hygiene.secrets_found(notebook, {"a token": "nowhere"}) == []
