"""Reading evidence files from a multipart request, with the caps enforced as the body streams.

A DRF view that takes evidence inherits `EvidenceUploads`. Before anything reads the body (in
`initialize_request`, before authentication, whose CSRF check may read it) it puts
`EvidenceUploadHandler` first among the request's upload handlers, so that a file past the
per-file cap, or a file past the per-request count, stops the upload there: the rest of the body
is read and dropped, never stored, and the partial file Django began is deleted. Whoever parses
the body (DRF's multipart parser, or Django's own when something reads `request.POST` first), it
is parsed by `EvidenceMultiPartParser`, which sees each file's name as it was sent: Django would
quietly cut a path off (`../../x.pdf` -> `x.pdf`); a name with a path is refused instead.
"""

from __future__ import annotations

import contextlib
import html
import json
from typing import Any, cast

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.utils.datastructures import ImmutableList
from django.utils.translation import gettext as _
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.views import APIView

from objections.evidence.checks import (
    EvidenceRefused,
    EvidenceTooLarge,
    EvidenceTooMany,
    display_name,
    name_check,
)

FIELD = "evidence"


def too_large(name: str, limit: int) -> EvidenceTooLarge:
    return EvidenceTooLarge(
        _("“%(name)s” was not accepted: a file may be at most %(size)s MB.")
        % {"name": name, "size": f"{limit / (1024 * 1024):g}"},
        file=name,
        limit=limit,
    )


def too_many(limit: int) -> EvidenceTooMany:
    return EvidenceTooMany(
        _("A case holds at most %(count)d evidence files.") % {"count": limit}, limit=limit
    )


class EvidenceUploadHandler(FileUploadHandler):
    """Counts each file's bytes and the files as they arrive; stops the upload at a cap."""

    def __init__(self, request: Any = None, *, max_bytes: int, max_files: int) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.files = 0
        self.received = 0
        self.refusal: EvidenceRefused | None = None

    def _stop(self, refusal: EvidenceRefused) -> None:
        self.refusal = refusal
        # The rest of the body is read and dropped (not stored), so the client gets an answer.
        raise StopUpload(connection_reset=False)

    def name_sent(self, name: str) -> None:
        try:
            name_check(name)
        except EvidenceRefused as refusal:
            self._stop(refusal)

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.files += 1
        self.received = 0
        if self.files > self.max_files:
            self._stop(too_many(self.max_files))

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            self._stop(too_large(display_name(self.file_name or ""), self.max_bytes))
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler (Django's) builds the file


class EvidenceMultiPartParser(MultiPartParser):
    def sanitize_file_name(self, file_name: str) -> str | None:
        for handler in self._upload_handlers:  # type: ignore[attr-defined]
            if isinstance(handler, EvidenceUploadHandler):
                handler.name_sent(html.unescape(file_name))
        return cast("str | None", super().sanitize_file_name(file_name))


def evidence_upload_prepare(request: HttpRequest) -> EvidenceUploadHandler:
    """Install the caps and the parser on `request`, before its body is read."""
    handler = EvidenceUploadHandler(
        request,
        max_bytes=settings.SCS_EVIDENCE_MAX_BYTES,
        max_files=settings.SCS_EVIDENCE_MAX_FILES,
    )
    request.upload_handlers = [handler, *request.upload_handlers]

    def parse_file_upload(meta: Any, post_data: Any) -> Any:
        request.upload_handlers = ImmutableList(
            request.upload_handlers,
            warning="You cannot alter upload handlers after the upload has been processed.",
        )
        return EvidenceMultiPartParser(
            meta, post_data, request.upload_handlers, request.encoding
        ).parse()

    request.parse_file_upload = parse_file_upload  # type: ignore[method-assign,assignment]
    return handler


class EvidenceRestMultiPartParser(parsers.MultiPartParser):
    """DRF's multipart parser, parsing with `EvidenceMultiPartParser`."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Any = None
    ) -> parsers.DataAndFiles:
        context = parser_context or {}
        request = context["request"]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        try:
            data, files = EvidenceMultiPartParser(
                meta,
                stream,
                request.upload_handlers,
                context.get("encoding", settings.DEFAULT_CHARSET),
            ).parse()
        except MultiPartParserError as error:
            raise ParseError(f"Multipart form parse error - {error}") from error
        return parsers.DataAndFiles(data, files)


class EvidenceUploads(APIView):
    """A view that takes evidence files: the caps and the name check on every multipart POST."""

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        if request.method == "POST":
            evidence_upload_prepare(request)
        return super().initialize_request(request, *args, **kwargs)

    def get_parsers(self) -> list[parsers.BaseParser]:
        return [
            EvidenceRestMultiPartParser() if isinstance(parser, parsers.MultiPartParser) else parser
            for parser in super().get_parsers()
        ]


def _handler(request: HttpRequest) -> EvidenceUploadHandler | None:
    return next((h for h in request.upload_handlers if isinstance(h, EvidenceUploadHandler)), None)


def is_multipart(request: Request) -> bool:
    return (request.content_type or "").startswith("multipart/form-data")


def evidence_uploaded(request: Request) -> list[UploadedFile]:
    """The files sent as `evidence`, or the refusal the upload stopped on (the body is parsed
    here if nothing has parsed it yet)."""
    files = list(request.FILES.getlist(FIELD)) if is_multipart(request) else []
    http = request._request
    handler = _handler(http)
    if handler is not None and handler.refusal is not None:
        for upload in files:
            upload.close()
        raise handler.refusal
    return files


def form_values(
    request: Request, *, lists: tuple[str, ...] = (), objects: tuple[str, ...] = ()
) -> Any:
    """A multipart request's fields as the JSON body would carry them: `lists` from repeated
    fields, `objects` from JSON text (left as sent when it is not JSON, for the serializer to
    refuse); the files left out. Any other request's data as it is."""
    if not is_multipart(request):
        return request.data
    form = request.POST
    values: dict[str, Any] = {key: form.get(key) for key in form if key not in lists}
    for key in lists:
        if key in form:
            values[key] = form.getlist(key)
    for key in objects:
        if isinstance(values.get(key), str):
            with contextlib.suppress(ValueError):
                values[key] = json.loads(values[key])
    return values
