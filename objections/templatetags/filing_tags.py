"""What a citizen may file about a record today, for the portal's record page (which belongs to
the registry and may not import the case rules)."""

from __future__ import annotations

from typing import Any

from django import template

from objections.portal.selectors import FilingOption, filing_options

register = template.Library()


@register.simple_tag(takes_context=True)
def record_filing_options(context: dict[str, Any], record: Any) -> dict[str, FilingOption]:
    """Each kind of case (objection, repair) with whether it may be filed now, and if not why
    and from which day."""
    return {option.kind: option for option in filing_options(user=context["user"], record=record)}
