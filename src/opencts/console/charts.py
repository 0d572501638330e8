"""Charts drawn on the server as SVG: no chart library to vendor, no script to run, and text a screen
reader can read (each chart has a title and a description listing its values).

Numbers are laid out here; the markup is escaped by Jinja like every other value.
"""

from __future__ import annotations

from dataclasses import dataclass

#: colours of the ratings, with contrast against white of 4.5:1 or more
RATING_COLOURS = {"normal": "#2b6cb0", "warning": "#b7791f", "incident": "#c53030"}
BAR_COLOUR = "#2b6cb0"


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str


@dataclass(frozen=True, slots=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    description: str
    width: int
    height: int
    rects: list[Rect]
    texts: list[Text]


def _nice_max(value: int) -> int:
    """The axis top: the smallest 1, 2 or 5 times a power of ten at or above ``value``."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def stacked_columns(
    title: str,
    columns: list[tuple[str, dict[str, int]]],
    colours: dict[str, str],
    *,
    width: int = 720,
    unit: str = "traces",
) -> Chart:
    """Columns (e.g. one an hour), each stacked by series (e.g. ratings) in ``colours``' order."""
    height, left, bottom, top = 220, 48, 28, 12
    plot_w, plot_h = width - left - 8, height - top - bottom
    peak = _nice_max(max([sum(v.values()) for _, v in columns] + [1]))
    slot = plot_w / max(len(columns), 1)
    rects: list[Rect] = []
    texts = [Text(left - 6, top + 4, f"{peak:,}", "end"), Text(left - 6, top + plot_h, "0", "end")]
    for i, (label, values) in enumerate(columns):
        x, base = left + i * slot + 1, float(top + plot_h)
        for series, colour in colours.items():
            n = values.get(series, 0)
            if n:
                h = plot_h * n / peak
                base -= h
                rects.append(Rect(x, base, max(slot - 2, 1), h, colour, f"{label}: {n:,} {series}"))
        if i % max(len(columns) // 8, 1) == 0:
            texts.append(Text(x + slot / 2, height - 8, label))
    total = sum(sum(v.values()) for _, v in columns)
    description = f"{total:,} {unit} in {len(columns)} columns; highest column {peak:,} or less"
    return Chart(title, description, width, height, rects, texts)


def bars(title: str, items: list[tuple[str, int]], colours: dict[str, str] | None = None) -> Chart:
    """Horizontal bars, one per item, longest first as given."""
    width, row, left = 360, 26, 120
    height = max(len(items), 1) * row + 8
    peak = max([n for _, n in items] + [1])
    rects: list[Rect] = []
    texts: list[Text] = []
    for i, (label, n) in enumerate(items):
        y = 4 + i * row
        w = (width - left - 70) * n / peak
        colour = (colours or {}).get(label, BAR_COLOUR)
        rects.append(Rect(left, y + 3, max(w, 1), row - 8, colour, f"{label}: {n:,}"))
        texts.append(Text(left - 6, y + row / 2 + 3, label[:18], "end"))
        texts.append(Text(left + w + 6, y + row / 2 + 3, f"{n:,}", "start"))
    description = "; ".join(f"{label} {n:,}" for label, n in items) or "no traces"
    return Chart(title, description, width, height, rects, texts)
