"""A comparison's outputs: the text table, the HTML page and the files of ``aligniform compare --out DIR``.

``DIR`` receives :data:`COMPARE_FILES`: ``compare.json`` (everything
:func:`~aligniform.analysis.compare.compare_embeddings` returned),
``plane.png``/``plane.svg`` (the alignment-uniformity plane) and
``compare.html`` (the table and the plane in one self-contained page: the
figure is an inline PNG, the CSS inline, and a Content-Security-Policy forbids
scripts and network requests). Other files in ``DIR`` are left alone; files of
an earlier comparison are replaced only with ``overwrite`` (a comparison of
other inputs must not silently replace one the user may still need). Every
file is written atomically.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from .._io import write_atomic, write_json
from .._validation import check_output_path
from ..errors import OptionError
from ..metric_registry import metric_spec

__all__ = ["COMPARE_FILES", "check_compare_output", "compare_html", "format_comparison", "write_comparison"]

COMPARE_FILES = ("compare.json", "compare.html", "plane.png", "plane.svg")
"""The files a comparison writes into its folder."""


def check_compare_output(out: str | Path, overwrite: bool = False) -> Path:
    """Check, before any work, that the comparison can be written to the folder ``out``.

    Raises:
        OptionError: ``out`` cannot be written, or already holds a comparison's files and ``overwrite`` is false.

    Examples:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> check_compare_output(folder) == folder
        True
        >>> _ = (folder / "compare.json").write_text("{}")
        >>> check_compare_output(folder)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aligniform.errors.OptionError: `out` ... already holds compare.json; pass `overwrite` to replace ...
    """
    try:
        folder = check_output_path(out, "`out`", folder=True)
    except ValueError as error:
        raise OptionError(str(error)) from None
    existing = [name for name in COMPARE_FILES if (folder / name).exists()]
    if existing and not overwrite:
        raise OptionError(
            f"`out` {folder} already holds {', '.join(existing)}; pass `overwrite` to replace them "
            f"(other files there are kept) or choose another folder"
        )
    return folder


def _label(metric: str, result: dict[str, Any]) -> str:
    return metric_spec(metric).label.format(alpha=result["alpha"], t=result["t"])


def _number(value: float | None, metric: str) -> str:
    return "-" if value is None else f"{value:.{metric_spec(metric).digits}f}"


def _shown_columns(result: dict[str, Any]) -> list[str]:
    """The metric columns some input has a value for (tolerance only with labels, the gap only with pairs)."""
    return [metric for metric in result["columns"] if any(row["metrics"].get(metric) for row in result["inputs"])]


def format_comparison(result: dict[str, Any]) -> str:
    """The comparison as a text table: one input per two lines, estimates above their intervals.

    Examples:
        >>> import numpy as np
        >>> from aligniform.analysis import EmbeddingSet
        >>> from aligniform.analysis.compare import compare_embeddings
        >>> z = np.eye(4)
        >>> result = compare_embeddings({"eye": EmbeddingSet(z, z)}, resamples=20)
        >>> print(format_comparison(result))  # doctest: +ELLIPSIS
        input  pairs  rows  alignment (alpha=2)  uniformity (t=2)  ...
        eye        4     4  0.0000               -4.0000 ...
    """
    columns = _shown_columns(result)
    header = ["input", "pairs", "rows", *[_label(metric, result) for metric in columns]]
    lines: list[list[str]] = []
    for row in result["inputs"]:
        estimates = [str(row["name"]), str(row["n_pairs"]), str(row["n_points"])]
        intervals = ["", "", ""]
        for metric in columns:
            value = row["metrics"].get(metric)
            estimates.append(_number(value and value["estimate"], metric))
            has_interval = value is not None and value["low"] is not None
            interval = f"[{_number(value['low'], metric)}, {_number(value['high'], metric)}]" if has_interval else ""
            intervals.append(interval)
        lines += [estimates, intervals]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        parts = [
            cell.rjust(width) if 0 < i < 3 else cell.ljust(width) for i, (cell, width) in enumerate(zip(cells, widths))
        ]
        return "  ".join(parts).rstrip()

    level = f"{result['confidence']:.0%}"
    footer = (
        f"[low, high]: {level} bias-corrected percentile bootstrap intervals "
        f"({result['resamples']} resamples, seed {result['seed']}); "
        "alignment and uniformity: lower is better"
    )
    return "\n".join([render(header), *(render(cells) for cells in lines), footer])


_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'none'"
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; line-height: 1.45; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2rem; }
.meta, .note { color: #666; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { background: #e3f4e1; font-weight: bold; }
.interval { color: #666; font-size: 0.8rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85rem; }
"""


def _best(result: dict[str, Any], metric: str) -> float | None:
    spec = metric_spec(metric)
    values = [row["metrics"][metric]["estimate"] for row in result["inputs"] if row["metrics"].get(metric)]
    if not spec.ranked and metric != "recall_at_1_x_to_y" or len(values) < 2:
        return None  # no "best" for a trade-off or a diagnostic, nor for a single input
    return max(values) if spec.direction == "higher" else min(values)


def compare_html(result: dict[str, Any], plane_png: bytes | None = None, title: str = "aligniform compare") -> str:
    """One self-contained HTML page: the table (best estimate of each ranked column highlighted) and the plane.

    Examples:
        >>> import numpy as np
        >>> from aligniform.analysis import EmbeddingSet
        >>> from aligniform.analysis.compare import compare_embeddings
        >>> page = compare_html(compare_embeddings({"eye": EmbeddingSet(np.eye(3), np.eye(3))}, resamples=20))
        >>> page.startswith("<!DOCTYPE html>"), "<td>eye</td>" in page
        (True, True)
    """
    e = html.escape
    columns = _shown_columns(result)
    head = "".join(f"<th>{e(_label(metric, result))}</th>" for metric in columns)
    body = []
    for row in result["inputs"]:
        cells = [f"<td>{e(row['name'])}</td>", f'<td class="number">{row["n_pairs"]}</td>']
        cells.append(f'<td class="number">{row["n_points"]}</td>')
        for metric in columns:
            value = row["metrics"].get(metric)
            if value is None:
                cells.append('<td class="number">-</td>')
                continue
            best = _best(result, metric)
            css = "number best" if best is not None and value["estimate"] == best else "number"
            interval = ""
            if value["low"] is not None:
                ends = f"{_number(value['low'], metric)}, {_number(value['high'], metric)}"
                interval = f'<br><span class="interval">[{ends}]</span>'
            cells.append(f'<td class="{css}">{_number(value["estimate"], metric)}{interval}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    sources = "".join(f"<li><b>{e(row['name'])}</b>: {e(row['source'])}</li>" for row in result["inputs"])
    level = f"{result['confidence']:.0%}"
    figure = ""
    if plane_png is not None:
        data = base64.b64encode(plane_png).decode("ascii")
        figure = (
            f'<h2>Alignment-uniformity plane</h2><figure><img src="data:image/png;base64,{data}" '
            f'alt="alignment against uniformity, one point per input"><figcaption>Each input a point, its {level} '
            f"bootstrap intervals as bars; lower left is better (Wang &amp; Isola 2020).</figcaption></figure>"
        )
    page = (
        f"<h1>{e(title)}</h1>"
        f'<p class="meta">{len(result["inputs"])} inputs; alpha = {result["alpha"]:g}, t = {result["t"]:g}; '
        f"{level} bias-corrected percentile bootstrap intervals from {result['resamples']} resamples "
        f"(seed {result['seed']}); "
        "best estimate of each ranked column highlighted (where intervals overlap, the order may be noise).</p>"
        f"<h2>Metrics</h2><table><tr><th>input</th><th>pairs</th><th>rows</th>{head}</tr>{''.join(body)}</table>"
        f"{figure}<h2>Inputs</h2><ul>{sources}</ul>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{page}\n</body>\n</html>\n"
    )


def write_comparison(result: dict[str, Any], out: str | Path) -> list[Path]:
    """Write :data:`COMPARE_FILES` into ``out`` (checked first by :func:`check_compare_output`); return their paths.

    The plane is drawn only when some input has both alignment and uniformity; otherwise there is no
    ``plane.png``/``plane.svg`` and the page has no figure.
    """
    from ..plots._figure import SAVE_DPI, png_bytes
    from ..plots.compare import plane_points, plot_compare_plane

    folder = Path(out).expanduser()
    written = [write_json(folder / "compare.json", result)]
    plane_png = None
    if plane_points(result["inputs"]):
        figure = plot_compare_plane(
            result["inputs"], title=f"Alignment-uniformity plane ({result['confidence']:.0%} bootstrap intervals)"
        )
        plane_png = png_bytes(figure, dpi=SAVE_DPI)
        svg = io.BytesIO()
        figure.savefig(svg, format="svg", metadata={"Date": None})  # no date: reruns give identical files
        for name, data in (("plane.png", plane_png), ("plane.svg", svg.getvalue())):
            write_atomic(folder / name, lambda stream, data=data: stream.write(data))
            written.append(folder / name)
    page = compare_html(result, plane_png).encode("utf-8")
    write_atomic(folder / "compare.html", lambda stream: stream.write(page))
    written.append(folder / "compare.html")
    return written


def result_json(result: dict[str, Any]) -> str:
    """The comparison as indented JSON text (``aligniform compare --json``)."""
    return json.dumps(result, indent=2)
