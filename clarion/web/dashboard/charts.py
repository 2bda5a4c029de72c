"""Small line charts as inline SVG, drawn on the server: this period's line and the
previous period's (dashed) beside it; no chart library, no script."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

W, H, PAD = 320, 90, 4


def _path(values: Sequence[float | None], top: float) -> str:
    n = len(values)
    parts: list[str] = []
    pen_up = True
    for i, v in enumerate(values):
        if v is None:
            pen_up = True
            continue
        x = PAD + (W - 2 * PAD) * (i / max(n - 1, 1))
        y = H - PAD - (H - 2 * PAD) * (v / top if top else 0.0)
        parts.append(f"{'M' if pen_up else 'L'}{x:.1f},{y:.1f}")
        pen_up = False
    return " ".join(parts)


def line_chart(
    title: str, current: Sequence[float | None], previous: Sequence[float | None], unit: str = ""
) -> Markup:
    """An accessible chart: the SVG has a title and the latest figures as text."""
    known = [v for v in (*current, *previous) if v is not None]
    top = max(known) if known else 0.0
    last = next((v for v in reversed(current) if v is not None), None)
    summary = "no data" if last is None else f"latest {last:g}{unit}, peak {top:g}{unit}"
    label = escape(f"{title}: {summary}")
    svg = (
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{label}">'
        f"<title>{label}</title>"
        f'<line class="axis" x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}"/>'
        f'<path class="prev" d="{_path(previous, top)}"/>'
        f'<path class="cur" d="{_path(current, top)}"/></svg>'
    )
    return Markup(
        f"<figure><figcaption>{escape(title)} <small>{escape(summary)}</small>"
        f"</figcaption>{svg}</figure>"
    )
