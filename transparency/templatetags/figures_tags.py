"""Template filters of the transparency pages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template

register = template.Library()


@register.filter
def dictget(mapping: Mapping[str, Any] | None, key: str) -> Any:
    """`mapping[key]`, or None: for keys that are not valid template variable names."""
    return None if mapping is None else mapping.get(key)


@register.filter
def percent(share: float | None) -> str:
    return "—" if share is None else f"{share:.0%}"
