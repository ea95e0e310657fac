"""What an evidence file is, decided by its content; what is refused and why.

A file is a PDF, a JPEG or a PNG by its first bytes, never by its name or the type the client
declared. Everything else is refused: programs, web pages, SVG, archives. So is a file that is
two things at once (a polyglot: an archive, a web page or a script inside a PDF or an image, or
data after an image's end), a PDF that carries JavaScript, actions that run on opening, embedded
files or forms that submit, and an encrypted PDF (which cannot be checked). Images are decoded
and encoded again, which drops their metadata (EXIF: the place and device they were taken with)
and anything else hidden in them.
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from PIL import Image, ImageOps, UnidentifiedImageError

from scs_cases.errors import DomainError

PDF: Final = "application/pdf"
JPEG: Final = "image/jpeg"
PNG: Final = "image/png"

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
PNG_END: Final = b"\x00\x00\x00\x00IEND\xaeB`\x82"
JPEG_START: Final = b"\xff\xd8\xff"
JPEG_END: Final = b"\xff\xd9"

NAME_LIMIT: Final = 200
# An image of more pixels is refused before it is decoded (a decompression bomb): 50 megapixels
# is more than a phone photograph or a page scanned at 600 dpi.
MAX_PIXELS: Final = 50_000_000
# What a PDF's compressed streams may expand to, all together, while they are checked.
MAX_EXPANDED_BYTES: Final = 256 * 1024 * 1024
JPEG_QUALITY: Final = 90

# PDF names that run something, open something or hide a file: refused wherever they appear.
ACTIVE_PDF_NAMES: Final = frozenset(
    {
        "JavaScript",
        "JS",
        "OpenAction",
        "AA",
        "Launch",
        "EmbeddedFile",
        "EmbeddedFiles",
        "RichMedia",
        "XFA",
        "SubmitForm",
        "ImportData",
    }
)
# Signs of a second format inside the file: an archive, a web page, a script, an SVG image.
FOREIGN_SIGNATURES: Final = (
    (re.compile(rb"PK\x03\x04"), gettext_lazy("a ZIP archive")),
    (re.compile(rb"<\s*html", re.IGNORECASE), gettext_lazy("a web page")),
    (re.compile(rb"<!doctype\s+html", re.IGNORECASE), gettext_lazy("a web page")),
    (re.compile(rb"<\s*svg[\s>/]", re.IGNORECASE), gettext_lazy("an SVG image")),
    (re.compile(rb"<\s*iframe", re.IGNORECASE), gettext_lazy("a web page")),
    (re.compile(rb"<\s*script", re.IGNORECASE), gettext_lazy("a script")),
)
# A PDF name: a slash and the regular characters after it (PDF 32000-1, 7.3.5), which may be
# written as #xx escapes (/J#61vaScript is /JavaScript).
_PDF_NAME = re.compile(rb"/([^\x00\t\n\x0c\r /\[\]()<>{}%]+)")
_PDF_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_PDF_STREAM = re.compile(rb"(?<!end)stream\r?\n")
_DRIVE = re.compile(r"^[A-Za-z]:")
# Formatting characters that can make a name read as something else (U+202E turns
# "invoice_fdp.exe" round); refused with the control characters.
_BIDI_CONTROLS: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


class EvidenceRefused(DomainError):
    """A file that is not accepted as evidence; the message names it and says why."""

    code = "evidence_refused"


class EvidenceTooLarge(EvidenceRefused):
    http_status = 413
    code = "evidence_too_large"


class EvidenceTooMany(EvidenceRefused):
    code = "evidence_too_many"


@dataclass(frozen=True)
class Checked:
    """A file that passed: what it is, and the bytes to keep (an image's re-encoded copy)."""

    name: str
    content_type: str
    content: bytes


def refused(name: str, reason: str) -> EvidenceRefused:
    return EvidenceRefused(
        _("“%(name)s” was not accepted: %(reason)s") % {"name": name, "reason": reason},
        file=name,
    )


def display_name(name: str) -> str:
    """The name shown for a file: at most 200 characters, without control characters."""
    name = unicodedata.normalize("NFC", name)
    kept = "".join(
        char
        for char in name
        if unicodedata.category(char) not in ("Cc", "Cs") and char not in _BIDI_CONTROLS
    )
    return kept.strip()[:NAME_LIMIT] or "file"


def name_check(name: str) -> str:
    """The file's display name, or a refusal: a name is a name, never a path, and carries no
    control characters."""
    shown = display_name(name)
    if "/" in name or "\\" in name or _DRIVE.match(name) or name.strip() in ("", ".", ".."):
        raise refused(
            shown, _("its name contains a folder path. Send the file under its own name.")
        )
    if any(unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS for char in name):
        raise refused(shown, _("its name contains control characters. Rename the file."))
    return shown


def _looks_like(content: bytes) -> str:
    """What a refused file seems to be, to say so in the message."""
    head = content[:512].lstrip().lower()
    if (
        content.startswith(b"MZ")
        or content.startswith(b"\x7fELF")
        or content[:4]
        in (
            b"\xcf\xfa\xed\xfe",
            b"\xfe\xed\xfa\xcf",
            b"\xca\xfe\xba\xbe",
        )
    ):
        return _("it is a program, not a document.")
    if content.startswith(b"#!"):
        return _("it is a script, not a document.")
    if content.startswith((b"PK\x03\x04", b"Rar!", b"7z\xbc\xaf", b"\x1f\x8b")):
        return _("it is an archive. Send the documents in it one by one.")
    if b"<svg" in head:
        return _("SVG images are not accepted. Send a PNG or a PDF.")
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        return _("it is a web page or other markup, not a document.")
    return _("only PDF documents and JPEG or PNG images are accepted.")


def sniff(content: bytes) -> str | None:
    """The type the content is, by its first bytes: PDF, JPEG, PNG, or None."""
    if content.startswith(b"%PDF-"):
        return PDF
    if content.startswith(JPEG_START):
        return JPEG
    if content.startswith(PNG_SIGNATURE):
        return PNG
    return None


def _pdf_names(content: bytes) -> Iterator[str]:
    for match in _PDF_NAME.finditer(content):
        raw = _PDF_ESCAPE.sub(lambda escape: bytes([int(escape.group(1), 16)]), match.group(1))
        yield raw.decode("latin-1")


def _pdf_streams(content: bytes, name: str) -> Iterator[bytes]:
    """The expanded content of each zlib-compressed stream (object streams hide dictionaries
    from a scan of the raw bytes), piece by piece, up to MAX_EXPANDED_BYTES in all."""
    expanded = 0
    for match in _PDF_STREAM.finditer(content):
        start = match.end()
        end = content.find(b"endstream", start)
        if end < 0:
            end = len(content)
        inflater = zlib.decompressobj()
        data = content[start:end]
        tail = b""
        try:
            while data:
                piece = inflater.decompress(data, 1024 * 1024)
                data = inflater.unconsumed_tail
                expanded += len(piece)
                if expanded > MAX_EXPANDED_BYTES:
                    raise refused(name, _("its compressed content expands too far to be checked."))
                # A name may straddle two pieces: each piece is scanned with the end of the last.
                yield tail + piece
                tail = piece[-128:]
                if inflater.eof or not piece:
                    break
        except zlib.error:
            continue  # not a zlib stream (an image's own compression): the raw scan covers it


def _pdf_check(content: bytes, name: str) -> None:
    if b"%%EOF" not in content:
        raise refused(name, _("it is not a complete PDF document."))
    names = set(_pdf_names(content))
    found = names & ACTIVE_PDF_NAMES
    if "Encrypt" in names:
        raise refused(
            name,
            _("it is encrypted or password-protected and cannot be checked. Send it unprotected."),
        )
    if not found:
        for piece in _pdf_streams(content, name):
            found = set(_pdf_names(piece)) & ACTIVE_PDF_NAMES
            if found:
                break
    if found:
        raise refused(
            name,
            _(
                "it contains scripts, actions that run when it is opened, or embedded files "
                "(%(names)s). Print it to a new PDF and send that."
            )
            % {"names": ", ".join(f"/{found_name}" for found_name in sorted(found))},
        )


def _polyglot_check(content: bytes, name: str) -> None:
    for pattern, what in FOREIGN_SIGNATURES:
        if pattern.search(content):
            raise refused(
                name,
                _("it also contains %(what)s, hidden inside the document.") % {"what": what},
            )


def _image_reencode(content: bytes, content_type: str, name: str) -> bytes:
    """Decode the image and encode it again, without its metadata."""
    expected = "JPEG" if content_type == JPEG else "PNG"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content), formats=[expected]) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise refused(name, _("the image has too many pixels."))
                image.load()
                transparency = image.info.get("transparency")
                if content_type == JPEG:
                    # Turned as the camera meant it before the orientation tag goes.
                    upright = ImageOps.exif_transpose(image)
                    if upright.mode not in ("L", "RGB", "CMYK"):
                        upright = upright.convert("RGB")
                    output = io.BytesIO()
                    upright.save(output, format="JPEG", quality=JPEG_QUALITY, optimize=True)
                else:
                    output = io.BytesIO()
                    options = {} if transparency is None else {"transparency": transparency}
                    image.save(output, format="PNG", optimize=True, **options)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise refused(name, _("the image has too many pixels.")) from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise refused(name, _("the image is damaged and cannot be read.")) from error
    return output.getvalue()


def content_check(content: bytes, *, name: str) -> Checked:
    """Accept `content` as evidence, or refuse it with a message naming the file (already
    `name_check`ed) and the reason. An image comes back re-encoded."""
    content_type = sniff(content)
    if content_type is None:
        raise refused(name, _looks_like(content))
    _polyglot_check(content, name)
    if content_type == PDF:
        _pdf_check(content, name)
        return Checked(name=name, content_type=PDF, content=content)
    if content_type == JPEG and not content.rstrip(b"\x00").endswith(JPEG_END):
        raise refused(name, _("it has data after the end of the image."))
    if content_type == PNG and not content.endswith(PNG_END):
        raise refused(name, _("it has data after the end of the image."))
    return Checked(
        name=name,
        content_type=content_type,
        content=_image_reencode(content, content_type, name),
    )
