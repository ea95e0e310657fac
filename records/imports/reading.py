"""Reading an import file: bytes hashed as read, decoded line by line, CSV or NDJSON rows."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

from records.imports.validation import (
    FIELDS,
    PROHIBITED_FIELDS,
    REQUIRED_FIELDS,
    ImportFileInvalid,
    _Row,
)


class _HashingReader(io.RawIOBase):
    """Reads a binary stream while computing its sha256 and counting bytes."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.digest.update(data)
        self.bytes_read += size
        return size


# What a reader yields per row: its line, its values in the order of FIELDS (None when the row
# could not be read as one) and the (field, reason) problems found while reading it.


def _decoded_lines(binary: IO[bytes], block_size: int = 1 << 20) -> Iterator[str]:
    """The file's lines as text, line endings kept (as csv needs them), a UTF-8 BOM dropped.

    Decodes blocks cut after their last newline (no UTF-8 character contains one), so that a
    file that is not UTF-8 is refused with the exact line at fault.
    """
    lines_before = 0
    pending = b""
    first = True
    while True:
        block = binary.read(block_size)
        data = pending + block
        if not data:
            return
        cut = data.rfind(b"\n") + 1 if block else len(data)
        if cut == 0:  # no newline yet: read on
            pending = data
            continue
        part, pending = data[:cut], data[cut:]
        try:
            text = part.decode()
        except UnicodeDecodeError as error:
            line = lines_before + part.count(b"\n", 0, error.start) + 1
            raise ImportFileInvalid("The file is not UTF-8 text.", line=line) from error
        if first:
            text, first = text.removeprefix("\ufeff"), False
        lines_before += part.count(b"\n")
        yield from io.StringIO(text, newline="")
        if not block:
            return


def _csv_rows(text: Iterable[str]) -> Iterator[_Row]:
    reader = csv.reader(text)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return
    problems = []
    for name in header:
        if name.lower() in PROHIBITED_FIELDS:
            problems.append(f"column '{name}' holds prohibited personal data")
        elif name not in FIELDS:
            problems.append(f"unknown column '{name}'")
    missing = [name for name in REQUIRED_FIELDS if name not in header]
    if missing:
        problems.append("missing columns: " + ", ".join(missing))
    if len(set(header)) != len(header):
        problems.append("a column appears twice in the header")
    if problems:
        raise ImportFileInvalid("The header is not valid: " + "; ".join(problems) + ".", line=1)
    width = len(header)
    # Rows come in the file's column order; reorder them unless it is already FIELDS' order.
    positions = None if tuple(header) == FIELDS else [_position(header, name) for name in FIELDS]
    wrong_width = [("", "has a different number of columns than the header")]
    for row in reader:
        if not row:
            continue
        if len(row) != width:
            yield reader.line_num, None, wrong_width
        elif positions is None:
            yield reader.line_num, row, []
        else:
            yield reader.line_num, [row[i] if i >= 0 else "" for i in positions], []


def _position(header: list[str], name: str) -> int:
    return header.index(name) if name in header else -1


def _ndjson_rows(text: Iterable[str]) -> Iterator[_Row]:
    for line_number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            yield line_number, None, [("", "not valid JSON")]
            continue
        if not isinstance(value, dict):
            yield line_number, None, [("", "not a JSON object")]
            continue
        row = {str(key): "" if item is None else str(item) for key, item in value.items()}
        problems = [
            (
                # A key may spell a lone surrogate, which the stored report could not hold.
                name.encode("utf-8", "backslashreplace").decode(),
                "prohibited personal data may not be recorded"
                if name.lower() in PROHIBITED_FIELDS
                else "unknown field",
            )
            for name in row.keys() - FIELDS
        ]
        yield line_number, [row.get(name, "") for name in FIELDS], problems


def detect_format(file_name: str, declared: str = "") -> str:
    name = (declared or file_name).lower()
    if name in {"csv", "ndjson"}:
        return name
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    raise ImportFileInvalid("The file must be CSV (.csv) or NDJSON (.ndjson, .jsonl).")


def count_lines(path: str) -> int:
    """Number of newline characters in a file, for a progress bar's total."""
    total = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            total += chunk.count(b"\n")
    return total
