"""Lesson 09's checks, the parts that judge without running anything: the retrain trigger of the learner's
prefect.yaml and the alert automation on their deployment (the lesson runs each exercise three ways against
a real server, worker and receivers)."""

from types import SimpleNamespace
from uuid import uuid4

import pytest
import yaml

from course_lib.tooling import project
from course_lib.tooling.checks import lesson09

DEPLOYMENT = SimpleNamespace(id=uuid4(), flow_id=uuid4(), name="taxi_local_data", work_pool_name="local-pool")


def reference_trigger() -> dict:
    [s3] = [entry for entry in yaml.safe_load(project.reference("prefect.yaml", 9))["deployments"]
            if entry["name"] == lesson09.S3_DEPLOYMENT]
    return s3["triggers"][0]


def test_the_reference_trigger_passes_and_lesson_08_has_none():
    assert lesson09._trigger_problem(reference_trigger()) is None
    before = yaml.safe_load(project.reference("prefect.yaml", 8))["deployments"]
    assert not any(entry.get("triggers") for entry in before)


@pytest.mark.parametrize("change, hint", [
    ({"expect": ["taxi.data.arived"]}, "taxi.data.arrived"),
    ({"match": {"prefect.resource.id": "taxi.month"}}, "wildcard"),
    ({"match": {}}, "no `match`"),
    ({"parameters": {"train_month": "{{ event.resource.month }}", "val_month": "{{ event.resource.month }}"}},
     "the one before"),
    ({"parameters": {"train_month": "{{ event.payload.previous_month }}", "val_month": "{event.resource.month}"}},
     "two braces"),
    ({"parameters": {"train_month": "{{ event.payload.previous_month }}", "val_month": "{{ event.month }}"}},
     "renders as ''"),
    ({"parameters": {"val_month": "{{ event.resource.month }}"}}, "no train_month"),
])
def test_a_wrong_trigger_gets_the_hint_about_its_mistake(change, hint):
    assert hint in lesson09._trigger_problem({**reference_trigger(), **change})


def _automation(**trigger_changes):
    from prefect.automations import Automation, EventTrigger, Posture, SendNotification

    trigger = dict(expect={"prefect.flow-run.Failed"}, posture=Posture.Reactive, threshold=1,
                   match_related={"prefect.resource.role": "deployment", "prefect.resource.name": "taxi_local_data"})
    trigger.update(trigger_changes)
    return Automation(name="a", trigger=EventTrigger(**trigger),
                      actions=[SendNotification(block_document_id=uuid4(), subject="s", body="b")])


def test_the_alert_of_the_solution_passes_the_static_part():
    assert lesson09._alert_problems(_automation(), DEPLOYMENT, "main-flow") is None
    by_id = _automation(match_related={"prefect.resource.id": f"prefect.deployment.{DEPLOYMENT.id}"})
    assert lesson09._alert_problems(by_id, DEPLOYMENT, "main-flow") is None  # the deployment by its id works too


@pytest.mark.parametrize("changes, hint", [
    ({"posture": "Proactive", "within": 60}, "Proactive"),
    ({"threshold": 5}, "threshold is 5"),
    ({"expect": {"prefect.flow-run.*"}}, "wildcard"),
    ({"expect": {"prefect.flow-run.Crashed"}}, "prefect.flow-run.Failed"),
    ({"match_related": {"prefect.resource.role": "flow", "prefect.resource.name": "main-flow"}}, "any run of the flow"),
    ({"match_related": {}}, "any run of the flow"),
    ({"match_related": {"prefect.resource.role": "deployment", "prefect.resource.name": "taxi-local-data"}},
     "does not select the runs of your deployment"),
])
def test_a_wrong_alert_gets_the_hint_about_its_mistake(changes, hint):
    assert hint in lesson09._alert_problems(_automation(**changes), DEPLOYMENT, "main-flow")


def test_an_alert_without_a_notification_or_paused_is_refused():
    from prefect.automations import PauseDeployment

    automation = _automation()
    paused = automation.model_copy(update={"enabled": False})
    assert "paused" in lesson09._alert_problems(paused, DEPLOYMENT, "main-flow")
    pausing = automation.model_copy(update={"actions": [PauseDeployment(source="inferred")]})
    assert "SendNotification" in lesson09._alert_problems(pausing, DEPLOYMENT, "main-flow")


def test_the_wrong_answers_apply_to_the_generated_solutions():
    """09.1's and 09.3's wrong answers are built from the reference: each differs from it and still parses."""
    import ast

    from course_lib.tooling.checks import WRONG_ANSWERS

    for number, name in (("09.1", "notify.py"), ("09.3", "prefect.yaml")):
        solution = project.solution_for(name, 9)
        for wrong in WRONG_ANSWERS[number]:
            code = wrong.apply(solution)
            assert code != solution
            body = code.split("\n", 1)[1]
            ast.parse(body) if name.endswith(".py") else yaml.safe_load(body)
