"""The transparency pages: public figures (no login), their open data, and the oversight report
for supervisors and auditors. Every page reads the latest publication; none scans the cases."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from records.content import export_cell
from transparency import charts, figures
from transparency.selectors import (
    BY,
    oversight_visible_to,
    publication_latest,
    series,
    table,
)


def outcome_names() -> dict[str, str]:
    return {
        "corrected": _("corrected"),
        "deleted": _("deleted"),
        "publication_ended": _("publication ended"),
        "repaired": _("repaired"),
        "refused": _("refused"),
        "other": _("other"),
    }


def _on_time_percent(cell: dict[str, Any], *, none: str) -> float | str | None:
    """The share decided on time, in per cent; `none` when nothing was decided; None (withheld)
    when either count is."""
    decided, on_time = cell.get("decided"), cell.get("on_time")
    if decided == 0:
        return none
    if decided is None or on_time is None:
        return None
    return round(100 * on_time / decided)


def index(request: HttpRequest) -> HttpResponse:
    publication = publication_latest()
    by = request.GET.get("by", "jurisdiction")
    if by not in BY:
        by = "jurisdiction"
    month = request.GET.get("month", figures.ALL)
    context: dict[str, Any] = {"publication": publication, "by": by, "month": month, "BY": BY}
    if publication is not None:
        months = publication.figures["months"]
        if month not in months:
            month = context["month"] = figures.ALL
        rows = table(publication, by=by, month=month, language=get_language() or "zh-hans")
        names = outcome_names()
        over_time = series(publication)
        context.update(
            months=months,
            rows=rows,
            outcomes=list(names.items()),
            over_time=over_time,
            backlog_chart=charts.columns(
                [(m, cell.get("backlog")) for m, cell in over_time],
                title=_("Cases open at the end of each month"),
            ),
            timeliness_chart=charts.columns(
                [(m, _on_time_percent(cell, none=_("no decisions"))) for m, cell in over_time],
                title=_("Share decided within the statutory deadline, by month"),
                unit="%",
            ),
            outcomes_chart=charts.stacked(
                [
                    (row.label, [(o, names[o], row.shares[o]) for o in figures.OUTCOMES])
                    for row in rows
                ],
                title=_("Outcomes of the decided cases"),
            ),
        )
    return render(request, "public/transparency.html", context)


def figures_json(request: HttpRequest) -> JsonResponse:
    publication = publication_latest()
    if publication is None:
        raise Http404("The figures have not been computed yet.")
    return JsonResponse(publication.figures, json_dumps_params={"ensure_ascii": False})


def figures_csv(request: HttpRequest) -> HttpResponse:
    """One line per month, dimension, value: every count (empty where withheld) and the medians."""
    publication = publication_latest()
    if publication is None:
        raise Http404("The figures have not been computed yet.")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="scs-cases-figures.csv"'
    measures = [*figures.COUNTS, "median_working_days", "median_paused_days"]
    writer = csv.writer(response)
    writer.writerow(["computed_at", "month", "dimension", "value", *measures])
    computed_at = publication.figures.get("computed_at", "")
    for dimension, values in sorted(publication.figures["tables"].items()):
        for value, months in sorted(values.items()):
            for month, cell in months.items():
                writer.writerow(
                    [
                        computed_at,
                        month,
                        dimension,
                        export_cell(value),
                        *("" if cell.get(m) is None else cell[m] for m in measures),
                    ]
                )
    return response


@login_required
def oversight(request: HttpRequest) -> HttpResponse:
    if not oversight_visible_to(request.user):  # type: ignore[arg-type]
        raise Http404("No such page.")
    publication = publication_latest(oversight=True)
    return render(request, "public/oversight.html", {"publication": publication})
