"""Charts as Vega-Lite specs with inline data, rendered offline to SVG by ``vl-convert-python``.

The HTML report inlines each chart's SVG: no JavaScript, no network, nothing to load. The specs are plain
dicts (the Vega-Lite JSON), so anyone can re-plot them with any Vega-Lite renderer.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import vl_convert as vlc

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"
WIDTH = 640
COLORS = {"up": "#2e7d32", "down": "#c62828", "total": "#1f4e79", "start": "#607d8b"}
MONEY_FMT = "$,.0f"

_counter = itertools.count(1)


def _base(spec: dict[str, Any], title: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "$schema": SCHEMA,
        "background": "white",
        "config": {
            "font": FONT,
            "view": {"stroke": None},
            "axis": {"labelFontSize": 11, "titleFontSize": 12, "grid": True, "gridColor": "#eee"},
        },
        **spec,
    }
    if title:
        out["title"] = {"text": title, "anchor": "start", "fontSize": 14}
    return out


def to_svg(spec: Mapping[str, Any]) -> str:
    """Render a Vega-Lite spec to SVG; element ids are made unique so several charts can share a page."""
    svg: str = vlc.vegalite_to_svg(dict(spec))
    prefix = f"olc{next(_counter)}-"
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    for i in ids:
        svg = svg.replace(f'id="{i}"', f'id="{prefix}{i}"')
        svg = svg.replace(f"url(#{i})", f"url(#{prefix}{i})").replace(f'href="#{i}"', f'href="#{prefix}{i}"')
    svg = re.sub(r"^<\?xml[^>]*>\s*", "", svg)
    return svg


# -- waterfall ---------------------------------------------------------------------------------------------


def waterfall_spec(rows: Sequence[Mapping[str, Any]], title: str | None = None) -> dict[str, Any]:
    """Bars from the running total before each component to the one after; start/total bars from zero."""
    data = []
    running = 0.0
    for i, r in enumerate(rows):
        v = float(r["value"])
        kind = str(r.get("kind") or "delta")
        if kind in ("start", "total"):
            lo, hi, running = 0.0, v, v
            colour = kind
        else:
            lo, hi = running, running + v
            running = hi
            colour = "up" if v >= 0 else "down"
        data.append(
            {
                "order": i,
                "component": str(r["component"]),
                "y0": lo,
                "y1": hi,
                "value": v,
                "label": f"{v:+,.2f}" if kind == "delta" else f"{v:,.2f}",
                "colour": colour,
            }
        )
    x = {
        "field": "component",
        "type": "nominal",
        "sort": None,
        "axis": {"labelAngle": -30, "title": None, "labelLimit": 180},
    }
    y_scale: dict[str, Any] = {"zero": True}
    return _base(
        {
            "width": WIDTH,
            "height": 300,
            "data": {"values": data},
            "layer": [
                {
                    "mark": {"type": "bar", "clip": True},
                    "encoding": {
                        "x": x,
                        "y": {"field": "y0", "type": "quantitative", "scale": y_scale, "title": None},
                        "y2": {"field": "y1"},
                        "color": {
                            "field": "colour",
                            "type": "nominal",
                            "scale": {"domain": list(COLORS), "range": list(COLORS.values())},
                            "legend": None,
                        },
                    },
                },
                {
                    "mark": {"type": "text", "dy": -6, "fontSize": 10},
                    "encoding": {
                        "x": x,
                        "y": {"field": "y1", "type": "quantitative"},
                        "text": {"field": "label"},
                    },
                },
            ],
        },
        title,
    )


# -- fan chart ---------------------------------------------------------------------------------------------


def fan_spec(
    rows: Sequence[Mapping[str, Any]],
    title: str | None = None,
    y_domain: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Ten-year net for one option: p5-p95 band, p25-p75 band, median line, mean dashed."""
    data = [
        {
            k: (float(r[k]) if k != "year" else int(r[k]))
            for k in ("year", "mean", "p5", "p25", "p50", "p75", "p95")
        }
        for r in sorted(rows, key=lambda r: int(r["year"]))
    ]
    x = {"field": "year", "type": "ordinal", "title": "Performance year", "axis": {"labelAngle": 0}}
    yscale: dict[str, Any] = {"zero": False}
    if y_domain is not None:
        yscale["domain"] = list(y_domain)
    yax = {"format": MONEY_FMT, "title": "Net to ACO ($)"}
    return _base(
        {
            "width": WIDTH,
            "height": 260,
            "data": {"values": data},
            "layer": [
                {
                    "mark": {"type": "area", "opacity": 0.25, "color": "#1f77b4"},
                    "encoding": {
                        "x": x,
                        "y": {"field": "p5", "type": "quantitative", "scale": yscale, "axis": yax},
                        "y2": {"field": "p95"},
                    },
                },
                {
                    "mark": {"type": "area", "opacity": 0.45, "color": "#1f77b4"},
                    "encoding": {
                        "x": x,
                        "y": {"field": "p25", "type": "quantitative"},
                        "y2": {"field": "p75"},
                    },
                },
                {
                    "mark": {"type": "line", "color": "#0b3d91", "strokeWidth": 2, "point": True},
                    "encoding": {"x": x, "y": {"field": "p50", "type": "quantitative"}},
                },
                {
                    "mark": {"type": "line", "color": "#d62728", "strokeDash": [5, 3]},
                    "encoding": {"x": x, "y": {"field": "mean", "type": "quantitative"}},
                },
                {
                    "mark": {"type": "rule", "color": "#555"},
                    "encoding": {"y": {"datum": 0, "type": "quantitative"}},
                },
            ],
        },
        title,
    )


# -- tornado -----------------------------------------------------------------------------------------------


def tornado_spec(rows: Sequence[Mapping[str, Any]], title: str | None = None) -> dict[str, Any]:
    """Horizontal bars per assumption from the base outcome to the low and high outcomes, widest first.

    Without a ``base`` the bar spans low to high around their midpoint.
    """
    ordered = sorted(rows, key=lambda r: -abs(float(r["delta"])))
    data = []
    for r in ordered:
        low, high = float(r["low"]), float(r["high"])
        base = float(r["base"]) if r.get("base") is not None else (low + high) / 2
        name = str(r["assumption"])
        for side, v in (("low", low), ("high", high)):
            data.append({"assumption": name, "side": side, "x0": base, "x1": v})
    y = {
        "field": "assumption",
        "type": "nominal",
        "sort": [str(r["assumption"]) for r in ordered],
        "title": None,
        "axis": {"labelLimit": 220},
    }
    return _base(
        {
            "width": WIDTH - 140,
            "height": {"step": 26},
            "data": {"values": data},
            "layer": [
                {
                    "mark": {"type": "bar", "height": 16},
                    "encoding": {
                        "y": y,
                        "x": {
                            "field": "x0",
                            "type": "quantitative",
                            "scale": {"zero": False},
                            "axis": {"format": MONEY_FMT, "title": "Expected 10-yr net ($)"},
                        },
                        "x2": {"field": "x1"},
                        "color": {
                            "field": "side",
                            "type": "nominal",
                            "scale": {"domain": ["low", "high"], "range": ["#c62828", "#2e7d32"]},
                            "legend": {"title": "Assumption at", "orient": "bottom"},
                        },
                    },
                },
            ],
        },
        title,
    )
