"""The import pipeline: rows cut into chunks, read ahead in a thread on PostgreSQL, written in one
transaction with one audit event."""

from __future__ import annotations

import csv
import gc
import io
import itertools
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from django.db import connection, connections
from django.utils import timezone

from audit.services import audit_record, audited
from records import identifiers
from records.crypto import identifier_encrypt
from records.models import Agency, ImportBatch, Subject
from records.services import record_import_merge

if TYPE_CHECKING:
    from accounts.models import User

from records.imports.reading import (
    _csv_rows,
    _decoded_lines,
    _HashingReader,
    _ndjson_rows,
    detect_format,
)
from records.imports.validation import (
    MAX_ERRORS_STORED,
    HeldRow,
    ImportFileInvalid,
    ImportReport,
    _RowValidator,
    _validated,
)
from records.imports.writers import (
    _Chunk,
    _copy_escape,
    _Writer,
)

# Rows per chunk: the unit the reader thread hands to the database (about 15 MB of COPY text).
CHUNK_ROWS = 50_000


def _chunks(
    staged_rows: Iterator[tuple[Any, str]],
    validator: _RowValidator,
    *,
    now: datetime,
    postgresql: bool = False,
) -> Generator[_Chunk, None, None]:
    """Cut the validated rows into chunks, each with the new subjects its rows refer to.

    Encrypting and formatting the new subjects is the reader's work; only their ids, which come
    from the database, are left to the writer.
    """
    encrypt = identifier_encrypt
    mask = identifiers.mask_identifier
    escape = _copy_escape
    subject_suffix = f"\tf\t{now.isoformat()}\t{now.isoformat()}\n"
    while True:
        rows = list(itertools.islice(staged_rows, CHUNK_ROWS))
        if not rows:
            return
        new_subjects = validator.take_new_subjects()
        chunk = _Chunk(
            rows=len(rows),
            lines=[line for line, _ in rows],
            subject_hashes=[subject_hash for _, subject_hash in rows],
        )
        if postgresql:
            chunk.subject_tails = [
                (
                    subject_hash,
                    f"\t{subject_hash}\t{subject.kind}\t{escape(subject.name)}\t"
                    f"\\\\x{encrypt(subject.identifier).hex()}\t"
                    f"{mask(subject.identifier)}\t{validator.public_id()}{subject_suffix}",
                )
                for subject_hash, subject in new_subjects
            ]
        else:
            chunk.subjects = [
                (
                    subject_hash,
                    subject.kind,
                    subject.name,
                    encrypt(subject.identifier),
                    mask(subject.identifier),
                    validator.public_id(),
                )
                for subject_hash, subject in new_subjects
            ]
        yield chunk


class _ReaderFailed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def _read_ahead(chunks: Iterator[_Chunk], depth: int = 2) -> Generator[_Chunk, None, None]:
    """Produce `chunks` in a thread, up to `depth` ahead of the consumer.

    Reading, validating and formatting a chunk is Python work; writing one is PostgreSQL's. With
    the reader in its own thread the two overlap: psycopg2 releases the GIL while it waits for
    the server. An error in the reader (a malformed file) is raised here, in the consumer.
    """
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.2)
            except queue.Full:
                continue
            return True
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not offer(chunk):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            offer(_ReaderFailed(error))
        else:
            offer(_END)
        finally:
            connections.close_all()  # this thread's own connections

    reader = threading.Thread(target=produce, name="import-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, _ReaderFailed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch is read.

    A million-row file keeps a few million small objects alive (duplicate checks, subjects,
    chunks in flight), and each full collection walks all of them: about a tenth of the import's
    Python time. Nothing the import allocates forms cycles, so there is nothing to collect.
    The pause is process-wide: other threads of the process (a threaded web worker) collect
    no cycles until the import ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _merge_held(
    writer: _Writer,
    validator: _RowValidator,
    report: ImportReport,
    *,
    batch_id: int,
    actor: User | None,
) -> tuple[int, int]:
    """Merge the rows the writer held back (records with decided fields), once every subject
    of the batch is stored. Returns (updated, unchanged); held rows go to the report."""
    updated = unchanged = 0
    hash_of = {subject_id: subject_hash for subject_hash, subject_id in writer.subject_ids.items()}
    for row in writer.held:
        line = validator.seen_numbers.get(row["record_number"], 0)
        if row["conflict"] is not None:
            # This very content is held already (a file sent again): reported, nothing to merge.
            conflict_id, reference, fields = row["conflict"]
            report.rows_held += 1
            report.held.append(
                HeldRow(line, row["record_number"], reference, tuple(fields), conflict_id)
            )
            continue
        # The row may name a subject new to this batch by its reserved id: find it by its hash.
        subject_hash = hash_of.get(row["subject_id"])
        if subject_hash is not None:
            row["subject_id"] = Subject.objects.values_list("id", flat=True).get(
                identifier_hash=subject_hash
            )
        changed, conflicts = record_import_merge(
            record_id=row["record_id"], staged=row, batch_id=batch_id, line=line, actor=actor
        )
        report.rows_held += bool(conflicts)
        for conflict in conflicts:
            report.held.append(
                HeldRow(
                    line=line,
                    record_number=row["record_number"],
                    case_reference=conflict.case_reference,
                    fields=tuple(conflict.fields),
                    conflict=conflict.pk,
                )
            )
        if conflicts:
            continue
        if changed:
            updated += 1
        else:
            unchanged += 1
    return updated, unchanged


def import_batch_run(
    *,
    agency: Agency,
    stream: IO[bytes],
    file_name: str,
    file_format: str = "",
    actor: User | None,
    source: str,
    progress: Callable[[int], object] | None = None,
) -> ImportReport:
    """Validate and apply one file of records for `agency` in a single transaction."""
    file_format = detect_format(file_name, file_format)
    report = ImportReport()
    reader = _HashingReader(stream)
    text = _decoded_lines(io.BufferedReader(reader, buffer_size=1 << 20))
    postgresql = connection.vendor == "postgresql"
    with _collector_paused(), audited():
        # of=("self",): lock the agency only, not its jurisdiction (which would serialise the
        # imports of every agency there).
        agency = (
            Agency.objects.select_for_update(of=("self",))
            .select_related("jurisdiction")
            .get(pk=agency.pk)
        )
        now = timezone.now()
        validator = _RowValidator(
            agency=agency,
            today=timezone.localdate(),
            copy_suffix=_Writer.constants(agency_id=agency.pk, now=now),
            as_values=not postgresql,
        )
        rows = _csv_rows(text) if file_format == "csv" else _ndjson_rows(text)
        staged_rows = _validated(rows, validator, report, progress)
        batch = ImportBatch.objects.create(
            agency=agency,
            created_by=actor,
            source=source,
            file_name=file_name[:255],
            file_format=file_format,
            sha256="",
        )
        chunks = _chunks(staged_rows, validator, now=now, postgresql=postgresql)
        try:
            with connection.cursor() as cursor:
                writer = _Writer(
                    cursor, postgresql=postgresql, agency_id=agency.pk, batch_id=batch.pk, now=now
                )
                # On PostgreSQL a reader thread prepares the next chunks while one is written;
                # closing the producer stops it, also when writing fails.
                produced = _read_ahead(chunks) if postgresql else chunks
                with closing(produced):
                    for chunk in produced:
                        writer.write(chunk)
                writer.finish()
        except csv.Error as error:
            raise ImportFileInvalid(f"The CSV file is malformed: {error}.") from error
        merged_updated, merged_unchanged = _merge_held(
            writer, validator, report, batch_id=batch.pk, actor=actor
        )
        report.batch_id = batch.pk
        report.sha256 = reader.digest.hexdigest()
        inserted, updated = writer.inserted, writer.updated + merged_updated
        report.rows_inserted = inserted
        report.rows_updated = updated
        report.rows_unchanged = writer.staged - writer.inserted - writer.updated + merged_unchanged
        batch.sha256 = report.sha256
        batch.rows_total = report.rows_total
        batch.rows_inserted = inserted
        batch.rows_updated = updated
        batch.rows_unchanged = report.rows_unchanged
        batch.rows_rejected = report.rows_rejected
        batch.rows_held = report.rows_held
        batch.errors = [error.as_dict() for error in report.errors[:MAX_ERRORS_STORED]]
        batch.held = [row.as_dict() for row in report.held[:MAX_ERRORS_STORED]]
        batch.refusals = dict(report.refusals)
        batch.save(
            update_fields=[
                "sha256",
                "rows_total",
                "rows_inserted",
                "rows_updated",
                "rows_unchanged",
                "rows_rejected",
                "rows_held",
                "errors",
                "held",
                "refusals",
                "updated_at",
            ]
        )
        audit_record(
            actor=actor,
            action="record.imported",
            target=batch,
            data={
                "agency": agency.code,
                "file_name": batch.file_name,
                "format": file_format,
                "sha256": report.sha256,
                "rows_total": report.rows_total,
                "inserted": inserted,
                "updated": updated,
                "unchanged": report.rows_unchanged,
                "rejected": report.rows_rejected,
                "held": report.rows_held,
            },
        )
    return report
