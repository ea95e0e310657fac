"""What the export tests share: events of one case, an export built the way the worker builds it,
its bundle run through its own verifier in a bare interpreter, and bundles rewritten the way
someone tampering with them would. Their fixtures are in tests/audit/conftest.py."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from audit.checkpoints import key_id, public_key, signature_of
from audit.exports import audit_export_request, audit_export_run, exports_folder
from audit.models import AuditEvent, AuditExport
from audit.services import audit_record
from audit.verifier.bundle_format import CSV_COLUMNS, csv_row, event_line, manifest_statement

CASE = "SH-2026-000777"


def case_events(count: int, reference: str = CASE, start: int = 0) -> list[int]:
    """`count` events of the case, returning their sequence numbers."""
    for index in range(start, start + count):
        audit_record(
            actor=None,
            action="case.transitioned",
            target_type="objections.case",
            target_id=1,
            case_reference=reference,
            data={"n": index, "to": "decided"},
        )
    return list(
        AuditEvent.objects.filter(case_reference=reference)
        .order_by("-sequence")
        .values_list("sequence", flat=True)[:count]
    )[::-1]


def built(auditor, filters: dict[str, Any], django_capture_on_commit_callbacks) -> AuditExport:
    with django_capture_on_commit_callbacks() as callbacks:
        export = audit_export_request(actor=auditor, filters=filters)
    assert len(callbacks) == 1  # the run is queued after commit
    return audit_export_run(export_id=export.pk)


def bundle_path(export: AuditExport) -> Path:
    return exports_folder() / export.file_name


def run_verifier(
    bundle: Path, tmp_path: Path, *options: str, verifier_from: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The bundle's own verifier (or that of `verifier_from`), extracted alone, in a fresh
    isolated interpreter that sees no project code."""
    folder = tmp_path / "extracted"
    with zipfile.ZipFile(verifier_from or bundle) as archive:
        for name in archive.namelist():
            if name.startswith("verifier/"):
                archive.extract(name, folder)
    return subprocess.run(  # noqa: S603 - our own interpreter and file
        [sys.executable, "-I", "verify_bundle.py", str(bundle), *options],
        cwd=folder / "verifier",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={},
    )


def trusted_key() -> str:
    return key_id(public_key())


def verdict(bundle: Path, tmp_path: Path, verifier_from: Path | None = None) -> str:
    result = run_verifier(bundle, tmp_path, "--key-id", trusted_key(), verifier_from=verifier_from)
    assert result.returncode == (0 if result.stdout.startswith("OK") else 1), result
    return result.stdout.strip()


def rewritten(bundle: Path, tmp_path: Path, *, signed: bool = True, **changes: bytes) -> Path:
    """The bundle with members replaced (name with "/" as "__") and the manifest's digests
    recomputed for them. `signed`: the manifest signed again with the signing key, as only
    someone who holds it could; otherwise the old signature is kept."""
    changes = {name.replace("__", "/"): data for name, data in changes.items()}
    target = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(target, "w") as out:
        manifest = json.loads(source.read("manifest.json"))
        for name in source.namelist():
            if name in ("manifest.json", "manifest.sig"):
                continue
            data = changes.get(name, source.read(name))
            manifest["files"][name] = {
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            }
            out.writestr(name, data)
        text = changes.get("manifest.json", json.dumps(manifest).encode())
        out.writestr("manifest.json", text)
        signature = source.read("manifest.sig")
        if signed:
            signer, hex_signature = signature_of(manifest_statement(text))
            signature = json.dumps({"key_id": signer, "signature": hex_signature}).encode()
        out.writestr("manifest.sig", changes.get("manifest.sig", signature))
    return target


def events_of(bundle: Path) -> list[dict[str, Any]]:
    """The bundle's events, each with `canonical`: the exact hashed text its line embeds."""
    with zipfile.ZipFile(bundle) as archive:
        lines = archive.read("events.ndjson").splitlines()
    events = []
    for line in lines:
        event = json.loads(line)
        event["canonical"] = line[line.index(b'"event":') + len(b'"event":') : -1].decode()
        assert json.loads(event["canonical"]) == event.pop("event")
        events.append(event)
    return events


def ndjson(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        event_line(event["sequence"], event["previous_hash"], event["hash"], event["canonical"])
        for event in events
    )


def csv_of(events: list[dict[str, Any]]) -> bytes:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    for event in events:
        writer.writerow(
            csv_row(
                event["sequence"],
                event["previous_hash"],
                event["hash"],
                json.loads(event["canonical"]),
            )
        )
    return text.getvalue().encode()


def with_events(bundle: Path, tmp_path: Path, events: list[dict[str, Any]], **more: bytes) -> Path:
    return rewritten(
        bundle, tmp_path, **{"events.ndjson": ndjson(events), "events.csv": csv_of(events)}, **more
    )
