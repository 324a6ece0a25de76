"""A line chart as one self-contained SVG file, written with plain Python (no plotting library,
no fonts or scripts fetched): how the benchmarks draw their figures for the README, e.g.
`python -m bench.e2e` -> docs/img/e2e-throughput.svg."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
LINE_COLOUR = "#1f6fb4"
REFERENCE_COLOUR = "#c0392b"
GRID_COLOUR = "#e3e3e3"
TEXT_COLOUR = "#222"
MUTED_COLOUR = "#666"


@dataclass
class LineChart:
    points: Sequence[tuple[float, float]]
    title: str
    x_label: str
    y_label: str
    subtitle: str = ""
    # Horizontal lines across the plot, each with its label (a mean, a target).
    references: Sequence[tuple[float, str]] = field(default_factory=list)
    width: int = 720
    height: int = 380


def ticks(top: float, most: int = 8) -> list[float]:
    """0, then round steps (1, 2 or 5 times a power of ten) to the first at or above `top`."""
    if top <= 0:
        return [0.0, 1.0]
    rough = top / (most - 1)
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == round(value) else f"{value:,.1f}"


def _attributes(attributes: dict[str, str]) -> str:
    """Keyword arguments as SVG attributes: text_anchor="end" -> text-anchor="end"."""
    return "".join(f" {name.replace('_', '-')}={quoteattr(value)}" for name, value in attributes.items())


def _text(x: float, y: float, content: str, size: int = 11, /, **attributes: str) -> str:
    extra = _attributes(attributes)
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}"{extra}>{escape(content)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str, **attributes: str) -> str:
    extra = _attributes(attributes)
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}"{extra}/>'


def render(chart: LineChart) -> str:
    """The chart as SVG text: axes from 0, gridlines at round values, the line, its references."""
    left, right, top, bottom = 64, 20, 62 if chart.subtitle else 44, 52
    plot_w, plot_h = chart.width - left - right, chart.height - top - bottom
    xs = ticks(max((x for x, _ in chart.points), default=1.0))
    ys = ticks(max([y for _, y in chart.points] + [y for y, _ in chart.references] + [0.0]) * 1.05)
    x_top, y_top = xs[-1], ys[-1]

    def px(x: float) -> float:
        return left + plot_w * x / x_top

    def py(y: float) -> float:
        return top + plot_h * (1 - y / y_top)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{chart.width}" height="{chart.height}" '
        f'viewBox="0 0 {chart.width} {chart.height}" font-family={quoteattr(FONT)} fill="{TEXT_COLOUR}">',
        f"<title>{escape(chart.title)}</title>",
        f'<rect width="{chart.width}" height="{chart.height}" fill="#fff"/>',
        _text(left, 24, chart.title, 15, font_weight="bold"),
    ]
    if chart.subtitle:
        out.append(_text(left, 44, chart.subtitle, 11, fill=MUTED_COLOUR))
    for y in ys:
        out.append(_line(left, py(y), left + plot_w, py(y), GRID_COLOUR))
        out.append(_text(left - 6, py(y) + 4, _number(y), text_anchor="end", fill=MUTED_COLOUR))
    for x in xs:
        out.append(_line(px(x), top + plot_h, px(x), top + plot_h + 4, MUTED_COLOUR))
        out.append(_text(px(x), top + plot_h + 17, _number(x), text_anchor="middle", fill=MUTED_COLOUR))
    out.append(
        f'<path d="M{left},{top}V{top + plot_h}H{left + plot_w}" fill="none" stroke="{MUTED_COLOUR}"/>'
    )
    out.append(_text(left + plot_w / 2, chart.height - 10, chart.x_label, text_anchor="middle"))
    middle = top + plot_h / 2
    out.append(
        _text(16, middle, chart.y_label, text_anchor="middle", transform=f"rotate(-90 16 {middle:.1f})")
    )
    if chart.points:
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in chart.points)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{LINE_COLOUR}" stroke-width="1.6" '
            'stroke-linejoin="round"/>'
        )
    for value, label in chart.references:
        out.append(_line(left, py(value), left + plot_w, py(value), REFERENCE_COLOUR, stroke_dasharray="6 4"))
        # A white halo, so the label stays legible where the line runs through it.
        halo = {"stroke": "#fff", "stroke_width": "3", "paint_order": "stroke"}
        at_x, at_y = left + plot_w - 4, py(value) - 5
        out.append(_text(at_x, at_y, label, text_anchor="end", fill=REFERENCE_COLOUR, **halo))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(chart: LineChart, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(chart), encoding="utf-8")
    return path
