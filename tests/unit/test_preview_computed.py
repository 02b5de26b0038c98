"""The preview shows what a real `pulumi preview` would know: ids and arns the mocks made up read
<computed>, values the program derives from config read as they are; and it fits the terminal."""

from __future__ import annotations

from tools import preview
from tools.mockrun import cached_run


def test_exports_the_mocks_made_up_read_computed_and_config_derived_ones_read_as_they_are(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    assert preview.main(["dev", "--details"]) == 0
    out = capsys.readouterr().out
    exports = out[out.index("exports") :]
    assert '"vpcId": "<computed>"' in exports
    assert '"kmsKeyArn": "<computed>"' in exports
    assert "dev-network-vpc-id" not in exports  # the mock's id is never shown as if AWS had returned it
    assert '"parameterPrefix": "/bakehouse/dev"' in exports


def test_a_made_up_value_inside_a_longer_string_is_marked_where_it_stands():
    run = cached_run("dev")
    made_up = sorted(run.computed)[0]
    assert preview.mark_computed({"url": f"https://{made_up}/path", "plain": "bakehouse"}, run.computed) == {
        "url": "https://<computed>/path",
        "plain": "bakehouse",
    }


def test_the_summary_fits_a_narrow_terminal(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "72")
    assert preview.main(["dev"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and max(len(line) for line in lines) <= 72, max(lines, key=len)


def test_at_80_columns_no_cell_of_the_summary_is_cut(capsys, monkeypatch):
    # CI logs and pipes get 80 columns: account ids, regions and verdicts must still read whole.
    monkeypatch.setenv("COLUMNS", "80")
    assert preview.main(["security", "dev"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out, out
    assert "222222222222" in out and "444444444444" in out and "eu-west-1" in out
