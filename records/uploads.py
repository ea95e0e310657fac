"""An upload handler that stops reading a file once it passes the import's size cap.

Django's own handlers write a large upload to a temporary file whatever its size; this one,
placed first for the import endpoint, counts the bytes as they arrive and stops the upload at the
cap, so an oversized body is refused without being stored.
"""

from __future__ import annotations

from typing import Any

from django.core.files.uploadhandler import FileUploadHandler, StopUpload


class CappedUploadHandler(FileUploadHandler):
    def __init__(self, request: Any = None, *, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.exceeded = True
            # The rest of the body is read and dropped (not stored), so the client gets an answer.
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler (Django's) builds the file
