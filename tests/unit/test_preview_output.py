"""`make preview` shows each stack's tree with its type tokens as written, and fails on bad config."""

from __future__ import annotations

from tools import preview


def test_preview_prints_the_component_tree_counts_exports_and_verdict(capsys):
    assert preview.main(["build"]) == 0
    out = capsys.readouterr().out
    assert "bakehouse:stack:Build build" in out
    assert "bakehouse:factory:ImageFactory" in out  # literally, not rendered as an emoji
    assert "resources by type" in out and "exports" in out
    assert "policy verdict for build: pass" in out
    assert "1 of 1 stacks passed" in out


def test_preview_exits_non_zero_when_a_stack_is_rejected(capsys, monkeypatch):
    from estate.config import ConfigError

    def rejected(stack):
        raise ConfigError(stack, [f"stack {stack}: bakehouse:role is 'warehouse'; allowed: org, security, build, workload"])

    monkeypatch.setattr(preview, "run_stack", rejected)
    assert preview.main(["dev"]) == 1
    out = capsys.readouterr().out
    assert "bakehouse:role is 'warehouse'" in out and "failed: dev" in out
