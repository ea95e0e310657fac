"""Charts drawn on the server as SVG: they need no script, work under a strict
Content-Security-Policy, and each is shown with the table it is drawn from."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 640
BAR_GAP = 4


@dataclass(frozen=True)
class Bar:
    """A rectangle (or, for a label, a text position), its geometry already written out as the
    SVG attributes take it, so the template does no arithmetic or formatting."""

    x: str
    y: str
    width: str
    height: str
    label: str
    value: str
    css: str = ""


def _bar(
    x: float, y: float, width: float, height: float, label: str, value: str, css: str = ""
) -> Bar:
    return Bar(f"{x:.1f}", f"{y:.1f}", f"{width:.1f}", f"{height:.1f}", label, value, css)


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    labels: list[Bar]  # axis labels, positioned like bars (x, y) with their text in `label`
    title: str


def columns(
    points: list[tuple[str, float | str | None]],
    *,
    title: str,
    height: int = 200,
    unit: str = "",
) -> Chart:
    """One column per point (a month), scaled to the largest; a withheld value (None) draws a
    grey stub that says so in its tooltip, and text (such as "no decisions") no column at all,
    with the text as its tooltip."""
    top = max((value for _, value in points if isinstance(value, int | float)), default=0) or 1
    plot = height - 30
    step = WIDTH / max(len(points), 1)
    bars, labels = [], []
    for index, (label, value) in enumerate(points):
        x = index * step + BAR_GAP / 2
        if isinstance(value, str):
            bars.append(_bar(x, plot, step - BAR_GAP, 0, label, value, "empty"))
        elif value is not None:
            size = plot * value / top
            bars.append(
                _bar(x, plot - size, step - BAR_GAP, size, label, f"{value:g}{unit}", "value")
            )
        else:
            bars.append(_bar(x, plot - 2, step - BAR_GAP, 2, label, "—", "withheld"))
        if index % max(len(points) // 6, 1) == 0:
            labels.append(_bar(x, height - 10, step, 0, label, ""))
    return Chart(WIDTH, height, bars, labels, title)


def stacked(
    rows: list[tuple[str, list[tuple[str, str, float | None]]]],
    *,
    title: str,
    row_height: int = 22,
) -> Chart:
    """One horizontal bar per row (an agency), split into its shares (0 to 1) in order; a row
    with a withheld share is drawn as far as it is known."""
    left = 200
    bars, labels = [], []
    for index, (label, shares) in enumerate(rows):
        y = index * row_height
        labels.append(_bar(0, y + row_height * 0.7, left, 0, label, ""))
        x = float(left)
        for code, name, share in shares:
            if share is None or share <= 0:
                continue
            width = (WIDTH - left) * share
            bars.append(
                _bar(x, y + 2, width, row_height - 4, label, f"{name} {share:.0%}", f"part-{code}")
            )
            x += width
    return Chart(WIDTH, max(len(rows), 1) * row_height, bars, labels, title)
