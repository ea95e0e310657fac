"""Domain errors raised by services; the API and the pages turn them into clear answers."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    http_status = 400
    code = "invalid"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class NotPermitted(DomainError):
    http_status = 403
    code = "not_permitted"


class Conflict(DomainError):
    http_status = 409
    code = "conflict"
