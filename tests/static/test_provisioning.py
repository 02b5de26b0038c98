"""The provisioning and validation scripts rehearsed against a scratch root with stubbed system tools.

Each test runs the real scripts; the stubs only stand in for the package managers, systemd, the
kernel and instance metadata (see tests/static/rig.py and tests/static/stubs/stub).
"""

from __future__ import annotations

import json
import stat

import pytest

from tests.static.rig import SCRIPTS, is_changing


def _ok(result):
    assert result.returncode == 0, (
        f"exit {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    return result


def _names(calls):
    return {c.split()[0] for c in calls}


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_dnf_system_is_provisioned_with_dnf_and_never_apt(provisioned):
    rig = provisioned("dnf")
    calls = rig.calls()
    assert "dnf upgrade -y -q --refresh --releasever=latest" in calls
    assert "dnf install -y -q amazon-cloudwatch-agent" in calls
    assert "dnf install -y -q clamav clamav-update aide" in calls
    assert not _names(calls) & {"apt-get", "dpkg", "dpkg-query", "snap"}
    assert {"amazon-cloudwatch-agent", "clamav", "aide"} <= rig.installed()


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_apt_system_is_provisioned_with_apt_a_signed_deb_and_the_ssm_snap(provisioned):
    rig = provisioned("apt")
    calls = rig.calls()
    assert any(c.startswith("apt-get dist-upgrade -y") for c in calls)
    assert "apt-get install -y -q --no-install-recommends auditd audispd-plugins" in calls
    # The CloudWatch agent has no apt repository: a downloaded .deb, installed only once its signature verified.
    verify = next(i for i, c in enumerate(calls) if c.startswith("gpg --batch --verify"))
    install = next(i for i, c in enumerate(calls) if c.startswith("dpkg -i"))
    assert verify < install
    assert "snap install amazon-ssm-agent --classic" in calls
    assert not _names(calls) & {"dnf", "rpm"}
    assert rig.unit_state("ssh.socket") == "masked"


@pytest.mark.slow  # a fresh provision.sh run (about a second of CPU); runs in make test-slow and CI
@pytest.mark.parametrize("pkg", ["dnf", "apt"])
def test_second_run_issues_no_changing_command_and_changes_no_file(provisioned, pkg):
    rig = provisioned(pkg)
    first_calls = rig.calls()
    assert any(is_changing(c) for c in first_calls), "the first run must have had work to do"
    after_first = rig.snapshot()
    rig.reset_calls()

    _ok(rig.provision())

    assert [c for c in rig.calls() if is_changing(c)] == []
    after_second = rig.snapshot()
    changed = sorted(k for k in after_first.keys() | after_second.keys() if after_first.get(k) != after_second.get(k))
    assert changed == []


def test_os_update_upgrades_only_when_updates_are_pending(rig_for):
    rig = rig_for("dnf")
    (rig.state / "pending").write_text("")
    _ok(rig.run(SCRIPTS / "00-os-update.sh"))
    assert rig.calls() == ["dnf check-update -q --releasever=latest"]
    (rig.state / "pending").write_text("openssl\n")
    _ok(rig.run(SCRIPTS / "00-os-update.sh"))
    assert rig.calls()[-1] == "dnf upgrade -y -q --refresh --releasever=latest"


@pytest.mark.slow  # a provisioning rehearsal: make test-slow and CI
@pytest.mark.parametrize("pkg", ["dnf", "apt"])
def test_hardening_converges_files_sysctls_and_ssh(provisioned, pkg):
    rig = provisioned(pkg)
    root = rig.root
    login_defs = (root / "etc/login.defs").read_text().splitlines()
    assert "PASS_MAX_DAYS 365" in login_defs and "PASS_MIN_DAYS 1" in login_defs and "UMASK 027" in login_defs
    assert not any(line.startswith("PASS_MAX_DAYS\t") for line in login_defs), "the old value must be replaced, not shadowed"
    assert "minlen = 14" in (root / "etc/security/pwquality.conf.d/60-bakehouse-cis.conf").read_text().splitlines()
    assert ("libpam-pwquality" in rig.installed()) is (rig.pkg == "apt")
    assert "INACTIVE=30" in (root / "etc/default/useradd").read_text().splitlines()
    assert stat.S_IMODE((root / "etc/shadow").stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "etc/crontab").stat().st_mode) == 0o600
    assert not (root / "etc/cron.deny").exists() and (root / "etc/cron.allow").exists()
    assert not (root / "opt/app/notes.txt").stat().st_mode & stat.S_IWOTH
    assert (root / "opt/shared").stat().st_mode & stat.S_ISVTX
    assert rig.sysctl("net.ipv4.conf.all.accept_redirects") == "0"
    assert rig.sysctl("net.ipv4.conf.all.log_martians") == "1"
    assert "modprobe -r cramfs" in rig.calls()
    assert "install cramfs /bin/false" in (root / "etc/modprobe.d/60-bakehouse-cis.conf").read_text()
    sshd = (root / "etc/ssh/sshd_config.d/00-bakehouse-cis.conf").read_text().splitlines()
    assert "PermitRootLogin no" in sshd and "PasswordAuthentication no" in sshd
    ssh_unit = "sshd.service" if rig.pkg == "dnf" else "ssh.socket"
    assert rig.unit_state(ssh_unit) == "masked"
    assert "-k identity" in (rig.state / "audit-loaded").read_text()
    chrony = root / ("etc/chrony.conf" if rig.pkg == "dnf" else "etc/chrony/chrony.conf")
    assert "server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4" in chrony.read_text().splitlines()


@pytest.mark.parametrize("pkg", ["dnf", "apt"])
def test_cleanup_leaves_nothing_instance_specific(provisioned, pkg):
    rig = provisioned(pkg)
    root = rig.root
    assert list((root / "etc/ssh").glob("ssh_host_*")) == []
    assert (root / "etc/machine-id").read_text() == ""
    assert not (root / "root/.bash_history").exists()
    assert not (root / "var/lib/cloud/instances").exists()
    assert (root / "var/log/messages").read_text() == "" and not (root / "var/log/messages.1").exists()
    log = (root / "var/log/bakehouse/provision.log").read_text()
    assert "=== 90-cleanup.sh: done" in log, "the provisioning log survives the cleanup"


@pytest.mark.slow  # a fresh provision.sh run (about a second of CPU); runs in make test-slow and CI
@pytest.mark.parametrize(
    "stub_env, message",
    [
        ({"STUB_GPG_FPR": "0000000000000000000000000000000000000000"}, "CloudWatch agent signing key has fingerprint"),
        ({"STUB_GPG_VERIFY_RC": "1"}, "CloudWatch agent package signature does not verify"),
    ],
    ids=["foreign-key", "bad-signature"],
)
def test_cloudwatch_agent_is_refused_unless_signed_by_the_aws_key(rig_for, stub_env, message):
    rig = rig_for("apt")
    result = rig.provision(**stub_env)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not any(c.startswith("dpkg -i") for c in rig.calls())
    assert "amazon-cloudwatch-agent" not in rig.installed()


@pytest.mark.slow  # a fresh provision.sh run (about a second of CPU); runs in make test-slow and CI
def test_provisioning_stops_at_the_first_failing_step(rig_for):
    rig = rig_for("dnf")
    (rig.state / "no-instance-profile").touch()
    result = rig.provision()
    assert result.returncode != 0
    assert "=== 40-inspector-readiness.sh: FAILED" in result.stdout
    assert "no instance profile attached" in result.stdout
    assert "=== 50-security-tools.sh: start" not in result.stdout
    assert "aide" not in rig.installed()


def test_provisioning_refuses_a_system_without_dnf_or_apt(rig_for):
    rig = rig_for("dnf")
    (rig.bin / "dnf").unlink()
    result = rig.provision()
    assert result.returncode != 0
    assert "no supported package manager" in result.stdout


@pytest.mark.slow  # a fresh provision.sh run (about a second of CPU); runs in make test-slow and CI
@pytest.mark.parametrize("pkg, audit_package", [("apt", "auditd"), ("dnf", "audit")])
def test_container_build_installs_packages_but_leaves_services_to_boot(rig_for, pkg, audit_package):
    rig = rig_for(pkg, systemd=False)
    if pkg == "apt":
        (rig.bin / "snap").unlink()  # containers have no snapd
    _ok(rig.provision())
    calls = rig.calls()
    assert {"clamav", "aide", "chrony", audit_package, "amazon-cloudwatch-agent"} <= rig.installed()
    assert not [c for c in calls if c.split()[0] in {"systemctl", "sysctl", "augenrules"}]
    result = _ok(rig.validate("container"))
    assert "SKIP services" in result.stdout and "SKIP imdsv2-required" in result.stdout


# --- validation ------------------------------------------------------------------------------------


def _world_writable(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    path.chmod(0o666)


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
@pytest.mark.parametrize("pkg", ["dnf", "apt"])
def test_validation_passes_on_the_build_instance_after_provisioning(provisioned, pkg):
    rig = provisioned(pkg)
    result = _ok(rig.validate("build"))
    assert "FAIL" not in result.stdout
    assert "PASS ssh-masked" in result.stdout and "PASS no-baked-host-keys" in result.stdout
    assert "SKIP no-remote-shell-listening" in result.stdout


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
@pytest.mark.parametrize("pkg", ["dnf", "apt"])
def test_validation_passes_on_a_booted_image(provisioned, pkg):
    rig = provisioned(pkg)
    rig.boot()
    result = _ok(rig.validate("image"))
    assert "PASS no-remote-shell-listening" in result.stdout
    assert "PASS imdsv2-required" in result.stdout
    assert "PASS service-active:amazon-cloudwatch-agent.service" in result.stdout


@pytest.mark.parametrize(
    "sabotage, failure",
    [
        (lambda r: (r.state / "listening").write_text("LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n"), "FAIL no-remote-shell-listening"),
        (lambda r: (r.state / "imds-v1-code").write_text("200"), "FAIL imdsv2-required"),
        (lambda r: (r.state / "sysctl" / "net.ipv4.ip_forward").write_text("1\n"), "FAIL sysctl:net.ipv4.ip_forward"),
        (lambda r: (r.root / "etc/shadow").chmod(0o644), "FAIL mode:/etc/shadow"),
        (lambda r: (r.root / "var/lib/aide/aide.db").unlink(), "FAIL aide-baseline"),
        (lambda r: (r.state / "active" / "auditd.service").unlink(), "FAIL service-active:auditd.service"),
        (
            lambda r: (r.root / "etc/ssh/sshd_config.d/00-bakehouse-cis.conf").write_text("PermitRootLogin yes\n"),
            "FAIL sshd:PermitRootLogin",
        ),
        (lambda r: _world_writable(r.root / "srv" / "drop.txt"), "FAIL no-world-writable-files"),
    ],
    ids=[
        "ssh-listening",
        "imdsv1-answers",
        "ip-forward-on",
        "shadow-readable",
        "no-aide-db",
        "auditd-stopped",
        "root-login",
        "world-writable",
    ],
)
@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_validation_fails_and_names_the_broken_setting(provisioned, sabotage, failure):
    rig = provisioned("apt")
    rig.boot()
    sabotage(rig)
    result = rig.validate("image")
    assert result.returncode == 1
    assert failure in result.stdout


def test_validation_rejects_an_unknown_context(rig_for):
    rig = rig_for("dnf")
    result = rig.validate("laptop")
    assert result.returncode != 0
    assert "BAKEHOUSE_CONTEXT is 'laptop'" in result.stdout + result.stderr


@pytest.mark.parametrize("pkg, auth_log", [("dnf", "/var/log/secure"), ("apt", "/var/log/auth.log")])
def test_cloudwatch_agent_config_is_valid_json_shipping_audit_and_auth_logs(provisioned, pkg, auth_log):
    rig = provisioned(pkg)
    path = rig.root / "opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/bakehouse.json"
    config = json.loads(path.read_text())
    files = {f["file_path"] for f in config["logs"]["logs_collected"]["files"]["collect_list"]}
    assert {"/var/log/audit/audit.log", auth_log} <= files
    assert config["metrics"]["append_dimensions"]["InstanceId"] == "${aws:InstanceId}"
    assert rig.unit_state("amazon-cloudwatch-agent.service") == "enabled"


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_running_freshclam_service_is_stopped_so_signatures_are_fetched_before_validation(rig_for):
    rig = rig_for("apt")
    (rig.state / "provides" / "clamav-freshclam").write_text("clamav-freshclam.service\n")
    (rig.state / "units").write_text((rig.state / "units").read_text() + "clamav-freshclam.service\n")
    (rig.state / "active" / "clamav-freshclam.service").touch()
    _ok(rig.run(SCRIPTS / "50-security-tools.sh"))
    calls = rig.calls()
    assert calls.index("systemctl stop clamav-freshclam.service") < calls.index("freshclam --quiet")
    assert (rig.root / "var/lib/clamav/main.cvd").exists()


@pytest.mark.slow  # a fresh provision.sh run (about a second of CPU); runs in make test-slow and CI
def test_units_without_an_install_section_are_not_enabled_again_and_again(rig_for):
    rig = rig_for("dnf")
    # Some distributions ship auditd as a static unit (pulled in by another); enabling it is a no-op.
    (rig.state / "unit-state" / "auditd.service").write_text("static\n")
    _ok(rig.provision())
    assert "systemctl enable -- auditd.service" not in rig.calls()
