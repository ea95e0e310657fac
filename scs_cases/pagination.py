"""Keyset ("cursor") pagination for the API's lists: stable under inserts, never truncated.

A page is a slice of a queryset in a total order of a few keys (the last one unique); the cursor
is the keys of the page's last row, opaque to the client. The next page holds the rows after it
in that order, so a row filed meanwhile neither repeats nor hides another.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q, QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


@dataclass(frozen=True)
class Key:
    """One ordering key: a field (or annotation) name, and whether it runs downwards."""

    name: str
    descending: bool = False

    @property
    def order_by(self) -> str:
        return f"-{self.name}" if self.descending else self.name


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    next_cursor: str | None


def _encode(values: Sequence[object]) -> str:
    plain = [{"date": value.isoformat()} if isinstance(value, date) else value for value in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def _decode(cursor: str, length: int) -> list[object]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(plain, list) or len(plain) != length:
            raise ValueError("wrong shape")
        return [
            date.fromisoformat(value["date"]) if isinstance(value, dict) else value
            for value in plain
        ]
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError) as error:
        raise ValidationError({"cursor": "Not a cursor this list gave out."}) from error


def _after(keys: Sequence[Key], values: Sequence[object]) -> Q:
    """Rows strictly after `values` in the order of `keys`.

    The first key's bound (`>=`, or `<=` running downwards) is stated on its own in front of
    the OR that the later keys need: the same rows, but an index on the keys can start its scan
    there instead of reading every row before the page."""
    condition = Q()
    for position in range(len(keys) - 1, -1, -1):
        key, value = keys[position], values[position]
        beyond = Q(**{f"{key.name}__{'lt' if key.descending else 'gt'}": value})
        condition = (
            beyond if position == len(keys) - 1 else beyond | (Q(**{key.name: value}) & condition)
        )
    first, value = keys[0], values[0]
    if len(keys) > 1 and value is not None:
        condition = (
            Q(**{f"{first.name}__{'lte' if first.descending else 'gte'}": value}) & condition
        )
    return condition


def limit_from(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError as error:
        raise ValidationError({"limit": f"A number from 1 to {MAX_LIMIT}."}) from error
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError({"limit": f"A number from 1 to {MAX_LIMIT}."})
    return limit


def keyset_page(
    queryset: QuerySet[Any], *, keys: Sequence[Key], cursor: str | None, limit: int
) -> Page:
    """The rows after `cursor` (from the start without one), at most `limit` of them."""
    ordered = queryset.order_by(*(key.order_by for key in keys))
    if cursor:
        try:
            ordered = ordered.filter(_after(keys, _decode(cursor, len(keys))))
        except (DjangoValidationError, ValueError, TypeError) as error:
            # Decoded, but with values of the wrong kind for the list's keys: not one of ours.
            raise ValidationError({"cursor": "Not a cursor this list gave out."}) from error
    rows = list(ordered[: limit + 1])
    more, rows = len(rows) > limit, rows[:limit]
    if not more:
        return Page(rows=rows, next_cursor=None)
    last = rows[-1]
    return Page(rows=rows, next_cursor=_encode([getattr(last, key.name) for key in keys]))


def paged(
    request: Request,
    queryset: QuerySet[Any],
    *,
    keys: Sequence[Key],
    output: Callable[[list[Any]], Any],
) -> dict[str, Any]:
    """The page the request asks for (`cursor`, `limit`): its rows through `output`, and the URL
    of the next page (`next`, null on the last one)."""
    page = keyset_page(
        queryset, keys=keys, cursor=request.query_params.get("cursor"), limit=limit_from(request)
    )
    next_url = None
    if page.next_cursor is not None:
        query = request.query_params.copy()
        query["cursor"] = page.next_cursor
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    return {"results": list(output(page.rows)), "next": next_url}


def page_parameters(noun: str) -> list[OpenApiParameter]:
    """The query parameters of a paged list, for its schema."""
    return [
        OpenApiParameter("cursor", str, description="The `next` link's cursor."),
        OpenApiParameter("limit", int, description=f"{noun} per page, 1 to {MAX_LIMIT}."),
    ]
