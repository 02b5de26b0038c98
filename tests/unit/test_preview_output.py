"""`make preview` opens with one summary row a stack (failures on top), details on request, JSON for CI."""

from __future__ import annotations

import json

import pytest

from tools import preview


def test_preview_opens_with_the_summary_and_keeps_details_behind_a_flag(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    assert preview.main(["build"]) == 0
    out = capsys.readouterr().out
    first_lines = out.splitlines()[:8]
    assert any(
        cells[:4] == ["build", "build", "333333333333", "eu-west-1"] and cells[5:7] == ["pass", "0/0"]
        for cells in (line.split() for line in first_lines)
    ), out
    assert "1 of 1 stacks passed" in out
    assert "bakehouse:build:Stack build" not in out  # the tree is a detail
    assert "add --details" in out


def test_preview_details_print_type_tokens_literally(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    assert preview.main(["build", "--details"]) == 0
    out = capsys.readouterr().out
    assert "bakehouse:build:Stack build" in out
    assert "bakehouse:build:ImageFactory" in out  # literally, not rendered as an emoji
    assert "resources by type" in out and "exports" in out


def test_preview_json_carries_each_stacks_verdict(capsys):
    assert preview.main(["dev", "--json"]) in (0, 1)
    result = json.loads(capsys.readouterr().out)
    (dev,) = result["stacks"]
    assert dev["stack"] == "dev" and dev["role"] == "workload" and dev["account"] == "444444444444"
    assert dev["resources"] > 0 and dev["monthlyCostUsd"] > 0
    assert result["ok"] is (dev["status"] == "pass")


def test_preview_exits_non_zero_and_puts_a_rejected_stack_on_top(capsys, monkeypatch):
    from estate.config import ConfigError

    real = preview.run_stack

    def rejecting_dev(stack):
        if stack == "dev":
            raise ConfigError(
                stack,
                [f"stack {stack}: Pulumi.{stack}.yaml: bakehouse:role is 'warehouse'; allowed: org, security, build, workload"],
            )
        return real(stack)

    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.setattr(preview, "run_stack", rejecting_dev)
    assert preview.main(["org", "dev"]) == 1
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["org"], ["dev"])]
    dev_row = next(i for i, row in enumerate(rows) if "REJECTED" in row)
    assert rows[dev_row][0] == "dev"
    assert all("pass" not in row for row in rows[:dev_row])  # failures first
    assert "bakehouse:role is 'warehouse'" in out
    assert "dev" in next(line for line in out.splitlines() if "stacks passed; failed:" in line)


def test_preview_refuses_a_stack_without_a_stack_file(capsys):
    with pytest.raises(SystemExit) as exit_:
        preview.main(["staging-typo"])
    assert exit_.value.code == 2
    assert "no stack file Pulumi.<stack>.yaml for staging-typo" in capsys.readouterr().err
