"""cdk-nag's AwsSolutions pack runs on every synth: no finding is left unacknowledged, and every
acknowledgement says why that finding is acceptable on that construct."""

from __future__ import annotations

import re

import pytest

# Reasons that explain nothing about the construct they excuse.
GENERIC_REASONS = {
    "n/a",
    "na",
    "none",
    "ok",
    "todo",
    "fixme",
    "ignore",
    "ignored",
    "suppressed",
    "acknowledged",
    "not needed",
    "not required",
    "not applicable",
    "false positive",
    "by design",
    "intended",
    "accepted",
    "accepted risk",
    "known issue",
    "this is fine",
    "cdk managed",
    "managed by cdk",
    "required",
    "needed",
    "necessary",
}
MIN_REASON_WORDS = 12


def reason_problem(reason: str) -> str | None:
    """Why a reason is not specific enough, or None when it is."""
    text = " ".join(reason.split())
    normalized = re.sub(r"[^a-z/ ]", "", text.lower()).strip()
    if not text:
        return "empty"
    if normalized in GENERIC_REASONS:
        return "generic"
    if len(text.split()) < MIN_REASON_WORDS:
        return f"fewer than {MIN_REASON_WORDS} words"
    return None


@pytest.mark.parametrize(
    "reason",
    ["", "   ", "N/A", "Not needed.", "false positive", "Suppressed", "Accepted risk", "OK for now, will fix later"],
)
def test_generic_and_empty_reasons_are_refused(reason):
    assert reason_problem(reason) is not None


def test_a_specific_reason_passes():
    assert (
        reason_problem(
            "ecr:GetAuthorizationToken, which ECS needs to pull the listener image, has no resource-level permissions."
        )
        is None
    )


def _violations(report: dict) -> list[str]:
    return [
        f"{plugin['pluginName']}: {violation['ruleName']} at {construct['constructPath']}"
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    ]


def test_no_unacknowledged_finding(any_synth):
    report = any_synth.report
    plugins = {plugin["pluginName"]: plugin for plugin in report["pluginReports"]}
    assert "AwsSolutions" in plugins, "cdk-nag did not run"
    # Warnings included: every plugin (cdk-nag, construct annotations, CloudFormation checks).
    assert _violations(report) == []
    assert all(plugin["conclusion"] == "success" for plugin in plugins.values())


def _ours(synth) -> list[tuple[str, str, str]]:
    """The acknowledgements of cdk-nag findings (the CDK records a few of its own)."""
    return [ack for ack in synth.acknowledgements if ack[1].startswith("AwsSolutions::")]


def test_every_acknowledgement_has_a_specific_reason(any_synth):
    acknowledgements = _ours(any_synth)
    assert acknowledgements, "expected acknowledged findings (e.g. the public routes' APIG4)"
    problems = [
        f"{path} {rule}: {problem}"
        for path, rule, reason in acknowledgements
        if (problem := reason_problem(reason)) is not None
    ]
    assert problems == []


def test_acknowledgements_name_one_finding_each(any_synth):
    """A bare rule id on a stack would silence the rule for everything in it."""
    stack_paths = {
        f"/{any_synth.stack_name(part)}" for part in ("Network", "Database", "Logs", "Fleet", "Listener", "Api")
    }
    for path, rule, _reason in _ours(any_synth):
        assert path not in stack_paths, f"{rule} acknowledged for a whole stack"
        assert rule.startswith("AwsSolutions::AwsSolutions-"), rule
        if "IAM5" in rule or "IAM4" in rule:
            assert "[" in rule, f"{rule}: name the permission or policy, not every IAM finding"
