"""A case's charts as inline SVG (no JavaScript): the hourly averages at reference O2 against
the limit, and the raw readings around the first event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from html import escape

from .evidence import EvidenceSource, Point
from .queries import CaseDetail

WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 720, 220, 56, 12, 14, 30


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str
    points: int


def svg_chart(points: list[Point], *, limit: float | None, unit: str, marker: Point | None = None) -> str:
    """A line chart of ``points`` with a dashed limit line; an empty frame says "no data"."""
    if not points:
        return (
            f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="no data">'
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
            "no data in InfluxDB for this window</text></svg>"
        )
    t0, t1 = points[0].at, points[-1].at
    span = max((t1 - t0).total_seconds(), 1.0)
    values = [p.value for p in points] + ([limit] if limit is not None else [])
    top = max(values) * 1.1 or 1.0
    bottom = min(0.0, *values)

    def x(p: Point) -> float:
        return PAD_L + (p.at - t0).total_seconds() / span * (WIDTH - PAD_L - PAD_R)

    def y(v: float) -> float:
        return PAD_T + (top - v) / (top - bottom) * (HEIGHT - PAD_T - PAD_B)

    path = " ".join(f"{x(p):.1f},{y(p.value):.1f}" for p in points)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{len(points)} values">',
        f'<line x1="{PAD_L}" y1="{HEIGHT - PAD_B}" x2="{WIDTH - PAD_R}" y2="{HEIGHT - PAD_B}" class="axis"/>',
        f'<text x="4" y="{PAD_T + 8}" class="tick">{top:.0f} {escape(unit)}</text>',
        f'<text x="4" y="{HEIGHT - PAD_B}" class="tick">{bottom:.0f}</text>',
        f'<text x="{PAD_L}" y="{HEIGHT - 8}" class="tick">{t0:%m-%d %H:%M} UTC</text>',
        f'<text x="{WIDTH - PAD_R}" y="{HEIGHT - 8}" text-anchor="end" class="tick">{t1:%m-%d %H:%M} UTC</text>',
        f'<polyline points="{path}" class="series"/>',
    ]
    if limit is not None:
        parts.append(f'<line x1="{PAD_L}" y1="{y(limit):.1f}" x2="{WIDTH - PAD_R}" y2="{y(limit):.1f}" class="limit"/>')
        parts.append(
            f'<text x="{WIDTH - PAD_R}" y="{y(limit) - 4:.1f}" text-anchor="end" class="tick">limit {limit:g}</text>'
        )
    if marker is not None and t0 <= marker.at <= t1:
        parts.append(
            f'<line x1="{x(marker):.1f}" y1="{PAD_T}" x2="{x(marker):.1f}" y2="{HEIGHT - PAD_B}" class="marker"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


async def case_charts(source: EvidenceSource, detail: CaseDetail) -> list[Chart]:
    first = next((a for a in detail.alerts if a.parameter), None)
    if first is None or first.parameter is None:
        return []
    parameter = first.parameter
    last = detail.case.last_occurrence_at
    start = first.start - timedelta(hours=24)
    stop = min(max(last, first.start) + timedelta(hours=24), start + timedelta(days=7))
    hourly = await source.hourly(detail.case.stack, parameter, start, stop)
    raw = await source.readings(
        detail.case.stack, parameter, first.start - timedelta(hours=2), first.start + timedelta(hours=2)
    )
    mark = Point(first.start, 0.0)
    return [
        Chart(
            f"{parameter}: hourly averages at reference O2 against the limit",
            svg_chart(hourly.converted, limit=hourly.limit, unit="mg/m³", marker=mark),
            len(hourly.converted),
        ),
        Chart(
            f"{parameter}: readings two hours either side of {first.start:%Y-%m-%d %H:%M} UTC",
            svg_chart(raw, limit=hourly.limit, unit="mg/m³", marker=mark),
            len(raw),
        ),
    ]
