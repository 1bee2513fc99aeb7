"""Tiny dependency-free SVG line charts (training curves) for MLflow artifacts and reports."""

from __future__ import annotations

from html import escape

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def line_chart_svg(
    series: dict[str, list[tuple[float, float]]], title: str, x_label: str, width: int = 480, height: int = 300
) -> str:
    """series: name -> [(x, y), ...]; returns a standalone SVG document."""
    points = [p for values in series.values() for p in values]
    if not points:
        raise ValueError("nothing to plot")
    left, right, top, bottom = 56, 16, 32, 40
    x_min, x_max = min(x for x, _ in points), max(x for x, _ in points)
    y_min, y_max = min(y for _, y in points), max(y for _, y in points)
    x_span, y_span = (x_max - x_min) or 1.0, (y_max - y_min) or 1.0

    def sx(x: float) -> float:
        return left + (x - x_min) / x_span * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y_min) / y_span * (height - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#444"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 8}" text-anchor="middle">{escape(x_label)}</text>',
        f'<text x="{left - 6}" y="{sy(y_max) + 4}" text-anchor="end">{y_max:.3g}</text>',
        f'<text x="{left - 6}" y="{sy(y_min) + 4}" text-anchor="end">{y_min:.3g}</text>',
        f'<text x="{sx(x_min)}" y="{height - bottom + 14}" text-anchor="middle">{x_min:g}</text>',
        f'<text x="{sx(x_max)}" y="{height - bottom + 14}" text-anchor="middle">{x_max:g}</text>',
    ]
    for index, (name, values) in enumerate(series.items()):
        color = COLORS[index % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        label = f'x="{width - right - 4}" y="{top + 14 * (index + 1)}" text-anchor="end" fill="{color}"'
        parts.append(f"<text {label}>{escape(name)}</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def training_curve_svg(history: list[dict], k: int = 20) -> str:
    """Validation Recall@k and MRR@k per epoch."""
    return line_chart_svg(
        {
            f"validation Recall@{k}": [(h["epoch"], h[f"validation_recall@{k}"]) for h in history],
            f"validation MRR@{k}": [(h["epoch"], h[f"validation_mrr@{k}"]) for h in history],
        },
        title="validation per epoch",
        x_label="epoch",
    )
