"""The fault campaign (tools/fault_campaign.py): a fixed subset on every test run, all of it among the slow tests.

Each case must keep the contract: exit 2 with one line on stderr (or 0 when the input is valid after all), no
traceback, no file of the workspace changed and nothing left behind by a refused command; an API call returns
or raises a one-line ValueError / TypeError.
"""

import json

import pytest
from tools import fault_campaign
from tools.fault_api_cases import api_cases
from tools.fault_cases import cli_cases

from aligniform.studies import STUDY_NAMES


def _broken(report):
    records = json.loads(report.read_text())["records"]
    return [(record["command"], record["label"], record["problems"]) for record in records if record["problems"]]


def test_the_campaign_covers_every_command_and_integration():
    commands = {case.command.split()[0] for case in cli_cases()}
    assert {"train", "eval", "analyze", "report", "compare", "sweep", "study", "demo", "configs"} <= commands
    studies = {case.command for case in cli_cases() if case.command.startswith("study ")}
    assert len(studies) == len(STUDY_NAMES)
    integrations = {name for name, _, _ in api_cases()}
    assert integrations >= {"torchmetrics", "lightning", "transformers", "sentence-transformers"}
    assert len(cli_cases()) + len(api_cases()) >= 300


def test_a_subset_of_the_campaign_keeps_the_contract(tmp_path, capsys):
    report = tmp_path / "campaign.json"
    code = fault_campaign.main(["--sample", "20", "--fake-run", "--report", str(report)])
    assert _broken(report) == []
    assert code == 0
    assert json.loads(report.read_text())["cases"] == 40


@pytest.mark.slow
def test_the_whole_campaign_keeps_the_contract(tmp_path, capsys):
    report = tmp_path / "campaign.json"
    fault_campaign.main(["--report", str(report)])
    assert _broken(report) == []
