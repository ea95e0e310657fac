"""Bulk import of credit records pushed by an agency (CSV or NDJSON).

A package along its seams: `reading` (bytes, lines, rows), `validation` (each row against the
catalogue and the rules; the report), `writers` (COPY text and the writes), `pipeline` (chunks,
the reader thread, the one transaction).

Every row is validated in Python and the file is written in chunks of CHUNK_ROWS rows. On
PostgreSQL a reader thread reads, validates and formats the next chunks as COPY text while the
writer copies the current one in, so Python and PostgreSQL work at the same time:

- a chunk of new records is copied straight into the records table, in a savepoint;
- a chunk that meets stored rows is copied into a staging table instead and applied with
  set-based SQL: changed records keep their previous content as a `CreditRecordVersion`, rows
  whose content is unchanged are left alone, so re-running a file changes nothing;
- subjects new to the file are encrypted and formatted by the reader; the writer reserves their
  ids from the sequence on the import's one connection, stores them at the end of the batch,
  skips those stored already and points the records at the stored ones (see `_Writer`). The
  reader thread never touches the database: an import holds exactly one connection, which a
  transaction-mode pooler can give it.

SQLite (development and the default test run) takes the staged path for every chunk, in one
thread. The whole batch is one transaction with one audit event.
"""

from records.content import MAX_LENGTHS, PROHIBITED_TERMS
from records.imports.pipeline import CHUNK_ROWS, import_batch_run
from records.imports.reading import count_lines, detect_format
from records.imports.validation import (
    FIELDS,
    MAX_ERRORS_STORED,
    OPTIONAL_FIELDS,
    PROHIBITED_FIELDS,
    REQUIRED_FIELDS,
    ImportFileInvalid,
    ImportReport,
    RowError,
)
from records.imports.writers import IMPORT_LOCK_KEY

__all__ = [
    "CHUNK_ROWS",
    "FIELDS",
    "IMPORT_LOCK_KEY",
    "MAX_ERRORS_STORED",
    "MAX_LENGTHS",
    "OPTIONAL_FIELDS",
    "PROHIBITED_FIELDS",
    "PROHIBITED_TERMS",
    "REQUIRED_FIELDS",
    "ImportFileInvalid",
    "ImportReport",
    "RowError",
    "count_lines",
    "detect_format",
    "import_batch_run",
]
