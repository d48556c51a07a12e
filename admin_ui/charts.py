"""Charts as SVG, rendered on the server by pygal: no script, nothing from outside the node.

The console serves each chart as `image/svg+xml` from its own origin and
shows it with `<img>` (the CSP's `img-src 'self'`): an SVG image runs no
script and loads nothing, and its styles are pygal's own, inside the SVG.
pygal writes a `<script>` with its configuration even with `js=[]` (no
script files); an XML filter (`add_xml_filter`) drops it from the tree before the SVG
is serialised, so the served bytes hold no script at all.

Values are plotted as given except that negative counts are drawn as zero
(`clamp`): a noisy federation total may be negative, and is shown as such in
the tables and exports, never on a chart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pygal
from pygal.style import Style

#: A chart's size in SVG units; the page scales it to its column (legible at 78rem).
WIDTH, HEIGHT = 760, 400
#: The console's colours (console.css), then more for further series.
COLOURS = ("#1f3a5f", "#c0392b", "#2e7d32", "#b8860b", "#6a1b9a", "#00838f", "#5d4037")
STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1b1f24",
    foreground_strong="#1b1f24",
    foreground_subtle="#5b6470",
    colors=COLOURS,
    font_family="'DejaVu Sans', 'Liberation Sans', Arial, sans-serif",
    label_font_size=13,
    major_label_font_size=13,
    value_font_size=12,
    legend_font_size=13,
    title_font_size=16,
    tooltip_font_size=12,
    no_data_font_size=20,
)
Number = int | float


def clamp(values: Sequence[Number | None]) -> list[Number | None]:
    """Values as a chart draws them: a negative count as zero (tables keep the value)."""
    return [None if v is None else max(v, 0) for v in values]


def _drop_scripts(root: Any) -> Any:
    """An XML filter for pygal: remove every `<script>` element from the SVG tree."""
    for parent in list(root.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root


def _config(title: str, x_title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": title,
        "x_title": x_title,
        "y_title": y_title,
        "width": WIDTH,
        "height": HEIGHT,
        "explicit_size": True,
        "style": STYLE,
        "js": [],
        "disable_xml_declaration": True,
        "legend_at_bottom": True,
        "truncate_legend": 40,
        "truncate_label": 24,
        "print_values": False,
        "no_data_text": "No data for this period",
        "show_minor_y_labels": True,
        "min_scale": 2,
        "max_scale": 8,
        **extra,
    }


def integer_ticks(top: Number) -> list[int]:
    """Axis labels for counts: whole numbers from 0 past `top`, at most ~8, in steps of 1, 2
    or 5 times a power of ten (a count axis never reads 0.4)."""
    step = 1
    while top / step > 8:
        for factor in (2, 5 / 2, 2):
            step = int(step * factor)
            if top / step <= 8:
                break
    return list(range(0, int(top) + step, step))


def _render(chart: Any, series: Mapping[str, Sequence[Number | None]]) -> bytes:
    chart.add_xml_filter(_drop_scripts)
    drawn = {name: clamp(values) for name, values in series.items()}
    numbers = [v for values in drawn.values() for v in values if v is not None]
    if numbers and all(isinstance(v, int) for v in numbers) and not isinstance(chart, pygal.Dot):
        chart.y_labels = integer_ticks(max(numbers))
    for name, values in drawn.items():
        chart.add(name, values)
    svg: str = chart.render(is_unicode=True)
    return svg.encode()


def line_chart(
    title: str,
    x_title: str,
    y_title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[Number | None]],
) -> bytes:
    """A trend over time: one line per series, `labels` along the x axis (months)."""
    every = max(1, len(labels) // 12)  # at most ~12 month labels: legible at any period
    chart = pygal.Line(
        **_config(
            title,
            x_title,
            y_title,
            x_label_rotation=35,
            x_labels_major_every=every,
            show_minor_x_labels=every == 1,
            dots_size=3,
            fill=False,
        )
    )
    chart.x_labels = list(labels)
    return _render(chart, series)


def bar_chart(
    title: str,
    x_title: str,
    y_title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[Number | None]],
    *,
    horizontal: bool = False,
) -> bytes:
    """Bars per label, one bar per series (top-N lists: `horizontal`, the first at the top)."""
    kind = pygal.HorizontalBar if horizontal else pygal.Bar
    if horizontal:  # pygal draws the first label at the bottom, the values along x
        x_title, y_title = y_title, x_title
        labels = list(reversed(labels))
        series = {name: list(reversed(values)) for name, values in series.items()}
    chart = kind(**_config(title, x_title, y_title, x_label_rotation=0 if horizontal else 20))
    chart.x_labels = list(labels)
    return _render(chart, series)


def matrix_chart(
    title: str, x_title: str, y_title: str, cells: Sequence[tuple[str, str, Number]]
) -> bytes:
    """A matrix of (row, column, value) as dots sized by value: rows along the y axis
    (one series each), columns along the x axis (a routes matrix: from × to)."""
    rows = sorted({r for r, _c, _v in cells})
    columns = sorted({c for _r, c, _v in cells})
    values = {(r, c): v for r, c, v in cells}
    chart = pygal.Dot(**_config(title, x_title, y_title, x_label_rotation=0, show_legend=False))
    chart.x_labels = columns
    return _render(chart, {r: [values.get((r, c), 0) for c in columns] for r in rows})
