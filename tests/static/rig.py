"""A rehearsal rig for the provisioning and validation scripts, without root and without a VM.

The scripts take every path through $BAKEHOUSE_ROOT, so they run against a scratch directory seeded
like a fresh Amazon Linux 2023 (dnf) or Ubuntu 24.04 (apt) instance. PATH holds only a few real
coreutils plus stubs (tests/static/stubs/stub) for the package managers, systemctl, sysctl, curl and
the rest, which log every call and keep state between calls. The package manager is detected by the
scripts, so a dnf rig has no apt-get on PATH and vice versa.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "packer" / "scripts"
VALIDATION = REPO / "packer" / "validation"
STUB = Path(__file__).resolve().parent / "stubs" / "stub"

REAL_TOOLS = (
    "bash",
    "cat",
    "grep",
    "sed",
    "awk",
    "find",
    "mkdir",
    "chmod",
    "rm",
    "mv",
    "cp",
    "cmp",
    "stat",
    "date",
    "tee",
    "tr",
    "head",
    "tail",
    "id",
    "basename",
    "dirname",
    "mktemp",
    "sort",
    "wc",
    "touch",
    "ln",
    "cut",
    "env",
)
STUBBED = (
    "systemctl",
    "sysctl",
    "modprobe",
    "augenrules",
    "auditctl",
    "aide",
    "aideinit",
    "freshclam",
    "gpg",
    "ss",
    "chown",
    "curl",
)
DISTRO_TOOLS = {"dnf": ("dnf", "rpm"), "apt": ("apt-get", "dpkg-query", "dpkg", "snap")}

# What a fresh instance of each distribution has, and the units its packages bring.
PREINSTALLED = {
    "dnf": ("openssh-server", "amazon-ssm-agent", "audit", "chrony"),
    "apt": ("openssh-server",),
}
UNITS = {
    "dnf": {
        "sshd.service": "enabled",
        "amazon-ssm-agent.service": "enabled",
        "auditd.service": "enabled",
        "chronyd.service": "enabled",
    },
    "apt": {"ssh.socket": "enabled", "ssh.service": "disabled", "systemd-timesyncd.service": "enabled"},
}
PROVIDES = {
    "dnf": {"amazon-cloudwatch-agent": "amazon-cloudwatch-agent.service", "clamav-update": "clamav-freshclam.service"},
    "apt": {
        "auditd": "auditd.service",
        "chrony": "chrony.service",
        "amazon-cloudwatch-agent": "amazon-cloudwatch-agent.service",
        "clamav-freshclam": "clamav-freshclam.service",
    },
}

# Calls that change a system; a converged second run issues none of them.
CHANGING = {
    "dnf": {"install", "upgrade", "remove", "clean"},
    "apt-get": {"install", "dist-upgrade", "upgrade", "update", "remove", "purge", "clean"},
    "dpkg": {"-i"},
    "snap": {"install", "remove"},
    "systemctl": {"enable", "disable", "mask", "start", "stop", "restart", "daemon-reload"},
    "sysctl": {"-w"},
    "modprobe": {"-r"},
    "augenrules": {"--load"},
    "aide": {"--init"},
    "aideinit": None,  # any call
    "freshclam": None,
    "chown": None,
    "gpg": {"--import"},
    "curl": {"-o"},
}


def is_changing(call: str) -> bool:
    name, *args = call.split()
    if name not in CHANGING:
        return False
    verbs = CHANGING[name]
    if name == "apt-get" and "-s" in args:  # a simulation changes nothing
        return False
    return verbs is None or any(a in verbs for a in args)


@dataclass
class Rig:
    pkg: str
    root: Path
    state: Path
    bin: Path
    tmp: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": str(self.bin),
            "BAKEHOUSE_ROOT": str(self.root),
            "STUB_STATE": str(self.state),
            "TMPDIR": str(self.tmp),
            "LC_ALL": "C",
            "HOME": str(self.tmp),
        }
        env.update(extra)
        return env

    def run(self, script: Path, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(script)], env=self.env(**extra), capture_output=True, text=True, timeout=60)

    def provision(self, **extra: str) -> subprocess.CompletedProcess:
        return self.run(SCRIPTS / "provision.sh", **extra)

    def validate(self, context: str, **extra: str) -> subprocess.CompletedProcess:
        return self.run(VALIDATION / "validate.sh", BAKEHOUSE_CONTEXT=context, **extra)

    def calls(self) -> list[str]:
        log = self.state / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def reset_calls(self) -> None:
        (self.state / "calls.log").write_text("")

    def unit_state(self, unit: str) -> str:
        f = self.state / "unit-state" / unit
        return f.read_text().strip() if f.exists() else "disabled"

    def sysctl(self, key: str) -> str | None:
        f = self.state / "sysctl" / key
        return f.read_text().strip() if f.exists() else None

    def installed(self) -> set[str]:
        return set((self.state / "installed").read_text().split())

    def boot(self) -> None:
        """What the first boot of an instance from the image does, as far as the checks can see."""
        for f in (self.state / "unit-state").iterdir():
            if f.read_text().strip() == "enabled":
                (self.state / "active" / f.name).touch()
        (self.root / "etc" / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")

    def snapshot(self) -> dict[str, tuple]:
        """Every path under the root with its type, mode and content hash (our own log excluded)."""
        seen: dict[str, tuple] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                rel = str(p.relative_to(self.root))
                if rel.startswith("var/log/bakehouse/"):
                    continue
                st = p.lstat()
                digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else ""
                seen[rel] = (oct(st.st_mode), digest)
        for f in sorted((self.state).rglob("*")):
            if f.is_file() and f.name not in ("calls.log", "modules.tmp"):
                seen["@state/" + str(f.relative_to(self.state))] = ("", hashlib.sha256(f.read_bytes()).hexdigest())
        return seen


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def build_rig(base: Path, pkg: str, systemd: bool = True) -> Rig:
    root, state, bindir, tmp = base / "root", base / "state", base / "bin", base / "tmp"
    for d in (root, state, bindir, tmp):
        d.mkdir(parents=True)
    for tool in REAL_TOOLS:
        real = shutil.which(tool)
        assert real, f"the rig needs {tool} on this machine"
        (bindir / tool).symlink_to(real)
    for tool in STUBBED + DISTRO_TOOLS[pkg]:
        (bindir / tool).symlink_to(STUB)

    # State of a fresh instance.
    (state / "installed").write_text("".join(f"{p}\n" for p in PREINSTALLED[pkg]))
    (state / "units").write_text("".join(f"{u}\n" for u in UNITS[pkg]))
    (state / "unit-state").mkdir()
    (state / "active").mkdir()
    for unit, st in UNITS[pkg].items():
        (state / "unit-state" / unit).write_text(st + "\n")
        if st == "enabled":
            (state / "active" / unit).touch()
    (state / "provides").mkdir()
    for package, unit in PROVIDES[pkg].items():
        (state / "provides" / package).write_text(unit + "\n")
    (state / "pending").write_text("openssl\nkernel\n")
    (state / "sysctl").mkdir()
    for key, value in {
        "net.ipv4.conf.all.accept_redirects": "1",
        "net.ipv4.conf.all.send_redirects": "1",
        "kernel.randomize_va_space": "2",
        "net.ipv4.tcp_syncookies": "1",
    }.items():
        (state / "sysctl" / key).write_text(value + "\n")

    # A root filesystem with the usual sins of a fresh image.
    if systemd:
        (root / "run" / "systemd" / "system").mkdir(parents=True)
    if pkg == "dnf":
        _write(root / "etc" / "amazon-linux-release", "Amazon Linux release 2023.6.20241010 (Amazon Linux)\n")
    _write(root / "proc" / "modules", "cramfs 16384 0 - Live 0x0\next4 1003520 1 - Live 0x0\n")
    _write(
        root / "etc" / "login.defs",
        "MAIL_DIR\t/var/spool/mail\nPASS_MAX_DAYS\t99999\nPASS_MIN_DAYS\t0\nPASS_WARN_AGE\t7\nUMASK\t\t022\n",
    )
    _write(root / "etc" / "default" / "useradd", "GROUP=100\nINACTIVE=-1\n")
    _write(root / "etc" / "passwd", "root:x:0:0:root:/root:/bin/bash\n")
    _write(root / "etc" / "group", "root:x:0:\n")
    _write(root / "etc" / "shadow", "root:*:19000:0:99999:7:::\n", 0o644)
    _write(root / "etc" / "gshadow", "root:::\n", 0o644)
    _write(root / "etc" / "crontab", "SHELL=/bin/bash\n", 0o644)
    (root / "etc" / "cron.d").mkdir()
    (root / "etc" / "cron.d").chmod(0o755)
    _write(root / "etc" / "cron.deny", "")
    _write(root / "etc" / "ssh" / "ssh_host_ed25519_key", "PRIVATE", 0o600)
    _write(root / "etc" / "ssh" / "ssh_host_ed25519_key.pub", "PUBLIC")
    _write(root / "etc" / "machine-id", "4a1b2c3d4e5f60718293a4b5c6d7e8f9\n")
    _write(root / "etc" / "audit" / "auditd.conf", "log_file = /var/log/audit/audit.log\nmax_log_file = 8\n")
    chrony = root / "etc" / ("chrony.conf" if pkg == "dnf" else "chrony/chrony.conf")
    _write(chrony, "pool 2.pool.ntp.org iburst\n")
    _write(root / "var" / "log" / "messages", "Nov 23 boot noise\n")
    _write(root / "var" / "log" / "messages.1", "older noise\n")
    _write(root / "root" / ".bash_history", "curl http://example.invalid | sh\n")
    (root / "var" / "lib" / "cloud" / "instances" / "i-0abc").mkdir(parents=True)
    _write(root / "opt" / "app" / "notes.txt", "anyone may write\n", 0o666)
    (root / "opt" / "shared").mkdir(parents=True)
    (root / "opt" / "shared").chmod(0o777)
    return Rig(pkg=pkg, root=root, state=state, bin=bindir, tmp=tmp)


def clone(rig: Rig, base: Path) -> Rig:
    """A copy of a rig (root, state, tools) that a test may spoil without touching the original."""
    src = rig.root.parent
    shutil.copytree(src, base, symlinks=True)
    return Rig(pkg=rig.pkg, root=base / "root", state=base / "state", bin=base / "bin", tmp=base / "tmp")
