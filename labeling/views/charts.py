"""The geometry of the overview's SVG plots, worked out from the stats document.

Plain data in, plain data out: the template (labeling/overview.html) draws the shapes,
and every plot is followed by a table of the same numbers.
"""

from datetime import date, timedelta

CHART_WIDTH = 640
DAY_CHART_HEIGHT = 140
DAYS_SHOWN = 60
DAY_BAR_MAX = 24
LEADERBOARD_ROW = 26
LEADERBOARD_LABEL = 160
HEAT_CELL = 44
HEAT_LABEL = 120


def day_chart(per_day: list[dict]) -> dict | None:
    """Bars of judgments per day over the last DAYS_SHOWN days that have any, gaps as zero."""
    if not per_day:
        return None
    counts = {row["date"]: row["judgments"] for row in per_day}
    last = date.fromisoformat(per_day[-1]["date"])
    first = max(date.fromisoformat(per_day[0]["date"]), last - timedelta(days=DAYS_SHOWN - 1))
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    peak = max(counts.get(day.isoformat(), 0) for day in days) or 1
    # A bar is at most DAY_BAR_MAX wide: a project two days old shows two slim bars, not two slabs.
    slot = min(CHART_WIDTH / len(days), DAY_BAR_MAX)
    plot_height = DAY_CHART_HEIGHT - 20
    bars = []
    for index, day in enumerate(days):
        value = counts.get(day.isoformat(), 0)
        height = round(plot_height * value / peak, 1)
        bars.append(
            {
                "x": round(index * slot + slot * 0.1, 1),
                "y": round(plot_height - height, 1),
                "width": round(max(slot * 0.8, 1), 1),
                "height": height,
                "date": day.isoformat(),
                "judgments": value,
            }
        )
    width = max(round(slot * len(days)), 160)
    return {
        "width": width,
        "height": DAY_CHART_HEIGHT,
        "axis_y": plot_height,
        "label_y": DAY_CHART_HEIGHT - 4,
        "bars": bars,
        "peak": peak,
        "first": days[0].isoformat(),
        "last": days[-1].isoformat(),
    }


def leaderboard_chart(rows: list[dict]) -> dict | None:
    """Each model's score as a dot on its 95% interval, on a shared axis."""
    if not rows:
        return None
    values = [value for row in rows for value in (row["score"], row["ci_low"], row["ci_high"]) if value is not None]
    low, high = min(values), max(values)
    pad = max((high - low) * 0.08, 5.0)
    low, high = low - pad, high + pad
    span = CHART_WIDTH - LEADERBOARD_LABEL - 20

    def x(value):
        return round(LEADERBOARD_LABEL + span * (value - low) / (high - low), 1)

    marks = []
    for index, row in enumerate(rows):
        y = LEADERBOARD_ROW * index + LEADERBOARD_ROW / 2 + 4
        marks.append(
            {
                "model": row["model"],
                "y": y,
                "text_y": y + 4,
                "x": x(row["score"]),
                "x_low": x(row["ci_low"] if row["ci_low"] is not None else row["score"]),
                "x_high": x(row["ci_high"] if row["ci_high"] is not None else row["score"]),
                "score": row["score"],
            }
        )
    axis_y = LEADERBOARD_ROW * len(rows) + 8
    ticks = [{"x": x(value), "label": round(value)} for value in _ticks(low, high)]
    return {
        "width": CHART_WIDTH,
        "height": axis_y + 22,
        "axis_y": axis_y,
        "tick_label_y": axis_y + 16,
        "label_x": LEADERBOARD_LABEL - 8,
        "marks": marks,
        "ticks": ticks,
        "reference_x": x(1000) if low <= 1000 <= high else None,
    }


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    raw = (high - low) / count
    step = next(step for step in (5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 10**9) if step >= raw)
    first = (int(low // step) + 1) * step
    return [float(value) for value in range(int(first), int(high) + 1, step)]


def heatmap(win_rates: dict) -> dict | None:
    """The win-rate matrix as squares shaded in ten steps (CSS classes heat-0 .. heat-10)."""
    models = win_rates.get("models") or []
    if len(models) < 2:
        return None
    cells = []
    for row_index, row in enumerate(win_rates["win_rate"]):
        for column_index, value in enumerate(row):
            cells.append(
                {
                    "x": HEAT_LABEL + column_index * HEAT_CELL,
                    "y": 20 + row_index * HEAT_CELL,
                    "text_x": HEAT_LABEL + column_index * HEAT_CELL + HEAT_CELL / 2,
                    "text_y": 20 + row_index * HEAT_CELL + HEAT_CELL / 2 + 4,
                    "value": value,
                    "shade": _shade(value),
                    "games": win_rates["games"][row_index][column_index],
                    "row": models[row_index],
                    "column": models[column_index],
                }
            )
    size = HEAT_CELL * len(models)
    return {
        "width": HEAT_LABEL + size + 10,
        "height": 20 + size + 10,
        "cell": HEAT_CELL,
        "cells": cells,
        "row_labels": [
            {"model": model, "x": HEAT_LABEL - 6, "y": 20 + index * HEAT_CELL + HEAT_CELL / 2 + 4}
            for index, model in enumerate(models)
        ],
        "column_labels": [
            {"model": model, "index": index + 1, "x": HEAT_LABEL + index * HEAT_CELL + HEAT_CELL / 2, "y": 14}
            for index, model in enumerate(models)
        ],
        "rows": [
            {"model": model, "cells": [_table_cell(value) for value in win_rates["win_rate"][index]]}
            for index, model in enumerate(models)
        ],
    }


def _shade(value: float | None) -> str:
    return "none" if value is None else str(round(value * 10))


def _table_cell(value: float | None) -> dict:
    return {"value": value, "shade": _shade(value), "percent": None if value is None else round(100 * value)}
