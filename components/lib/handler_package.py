"""Deterministic zips of handler code, for SSM document attachments and Lambda functions.

SSM checks an attachment against the sha256 the document declares under `files:`, so the zip is
built here (not by the engine from an AssetArchive, whose bytes we could not hash beforehand):
fixed timestamps and order make the same sources always give the same bytes, hence the same key.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the zip format's epoch; any constant works


@dataclass(frozen=True)
class Package:
    path: Path
    sha256: str  # hex, as SSM `files:` checksums want it
    members: tuple[str, ...]

    @property
    def sha256_b64(self) -> str:
        """Base64 digest, as Lambda's source_code_hash wants it."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()


def zip_bytes(root: Path, members: Iterable[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for member in sorted(members):
            info = zipfile.ZipInfo(member, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, (root / member).read_bytes())
    return buffer.getvalue()


def package(root: Path, members: Iterable[str], label: str, out_dir: Path | None = None) -> Package:
    """Zip `members` (paths relative to `root`) into `<out_dir>/<label>-<sha>.zip`; returns it with its hash."""
    members = tuple(sorted(members))
    missing = [m for m in members if not (root / m).is_file()]
    if missing:
        raise FileNotFoundError(f"handler package {label}: missing {', '.join(missing)} under {root}")
    data = zip_bytes(root, members)
    digest = hashlib.sha256(data).hexdigest()
    out_dir = out_dir or Path(tempfile.gettempdir()) / "bakehouse-assets"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{label}-{digest[:16]}.zip"
    if not path.exists():
        path.write_bytes(data)
    return Package(path, digest, members)


def handler_sources(root: Path) -> tuple[str, ...]:
    """Every handler module (the whole package ships, so a step may use any handler and common)."""
    return tuple(sorted(str(p.relative_to(root)) for p in (root / "handlers").glob("*.py")))
