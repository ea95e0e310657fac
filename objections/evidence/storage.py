"""Where evidence files live: SCS_DATA_DIR/evidence/<2 hex>/<random name>, outside the web root,
never under the name they were sent with.

A file is first written whole beside its final place (`.part-*`, the same folder, so the move is
atomic), then moved into place with `os.replace` in the transaction that records it; whatever
fails on the way is deleted (`discard`).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from objections.evidence.checks import Checked

_STORED_NAME = re.compile(r"[0-9a-f]{32}")


def evidence_root() -> Path:
    return Path(settings.DATA_DIR) / "evidence"


def stored_path(stored_name: str) -> Path:
    if not _STORED_NAME.fullmatch(stored_name):
        raise ValueError("not a stored evidence name")
    return evidence_root() / stored_name[:2] / stored_name


@dataclass(frozen=True)
class Staged:
    """A checked file written beside its final place, waiting for its row."""

    name: str
    content_type: str
    size: int
    sha256: str
    stored_name: str
    temporary: Path

    @property
    def final(self) -> Path:
        return stored_path(self.stored_name)


def stage(checked: Checked) -> Staged:
    stored_name = secrets.token_hex(16)
    folder = evidence_root() / stored_name[:2]
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".part-")  # mode 0600
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(checked.content)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Staged(
        name=checked.name,
        content_type=checked.content_type,
        size=len(checked.content),
        sha256=hashlib.sha256(checked.content).hexdigest(),
        stored_name=stored_name,
        temporary=Path(temporary),
    )


def place(staged: Staged) -> None:
    os.replace(staged.temporary, staged.final)


def discard(staged: Iterable[Staged]) -> None:
    """Delete staged files wherever they are (waiting or already in place)."""
    for item in staged:
        item.temporary.unlink(missing_ok=True)
        item.final.unlink(missing_ok=True)


def stored_open(stored_name: str) -> BinaryIO:
    return stored_path(stored_name).open("rb")
