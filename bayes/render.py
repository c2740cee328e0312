"""A tiny document model and its two renderings: self-contained HTML and Markdown.

The report (:mod:`bayes.report`) is built once as a list of
:class:`Section` objects holding paragraphs, tables (pandas DataFrames with a
caption) and figures (PNG bytes with a caption).  :func:`to_html` writes one
file that opens offline (CSS inline, figures as ``data:`` URIs, no scripts,
no network); :func:`to_markdown` writes the twin, with figures referenced as
files in ``figures/``.  Text is escaped here, so callers pass plain text.
No statistics here.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Table:
    frame: pd.DataFrame
    caption: str
    name: str                       # file stem for the CSV copy (tables/<name>.csv)
    digits: int = 3


@dataclass
class Figure:
    png: bytes
    caption: str
    name: str                       # file stem (figures/<name>.png)
    alt: str = ""


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list = field(default_factory=list)   # str (paragraph), Table, Figure, or ("list", [str])

    def add(self, *blocks) -> "Section":
        self.blocks.extend(b for b in blocks if b is not None)
        return self


def format_cell(value, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 10 ** -digits):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}f}"
    return str(value)


def _rows(table: Table) -> tuple[list[str], list[list[str]]]:
    frame = table.frame
    index = frame.index.names if not isinstance(frame.index, pd.RangeIndex) else []
    if index:
        frame = frame.reset_index()
    header = [str(c) for c in frame.columns]
    rows = [[format_cell(v, table.digits) for v in row] for row in frame.itertuples(index=False)]
    return header, rows


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1b1b1b;line-height:1.5}
h1{font-size:1.7em;border-bottom:2px solid #333}h2{margin-top:2em;border-bottom:1px solid #bbb}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right;white-space:nowrap}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;color:#444}.warn{background:#fff3cd;border-left:4px solid #e0a800;padding:.5em 1em}
nav ol{columns:2}code{background:#f4f4f4;padding:0 .2em}
"""


def to_html(title: str, sections: list[Section], *, subtitle: str = "") -> str:
    """One self-contained HTML page (no scripts, no external resources)."""
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
           f"<h1>{esc(title)}</h1>"]
    if subtitle:
        out.append(f"<p>{esc(subtitle)}</p>")
    out.append("<nav><ol>" + "".join(f'<li><a href="#{s.anchor}">{esc(s.title)}</a></li>' for s in sections)
               + "</ol></nav>")
    for section in sections:
        out.append(f'<section id="{section.anchor}"><h2>{esc(section.title)}</h2>')
        for block in section.blocks:
            if isinstance(block, str):
                cls = ' class="warn"' if block.startswith("WARNING") else ""
                out.append(f"<p{cls}>{esc(block)}</p>")
            elif isinstance(block, tuple) and block[0] == "list":
                out.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block[1]) + "</ul>")
            elif isinstance(block, Table):
                header, rows = _rows(block)
                out.append(f'<table data-name="{esc(block.name)}"><caption>{esc(block.caption)}</caption>'
                           "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>"
                           + "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in rows)
                           + "</tbody></table>")
            elif isinstance(block, Figure):
                data = base64.b64encode(block.png).decode()
                out.append(f'<figure data-name="{esc(block.name)}"><img alt="{esc(block.alt or block.caption)}" '
                           f'src="data:image/png;base64,{data}"><figcaption>{esc(block.caption)}</figcaption></figure>')
            else:
                raise TypeError(f"unknown block {type(block).__name__}")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, sections: list[Section], *, subtitle: str = "", figure_dir: str = "figures") -> str:
    """The Markdown twin; figures are referenced as ``<figure_dir>/<name>.png``."""
    out = [f"# {title}", ""]
    if subtitle:
        out += [subtitle, ""]
    out += [f"{i}. [{s.title}](#{s.anchor})" for i, s in enumerate(sections, 1)] + [""]
    for section in sections:
        out += [f'<a id="{section.anchor}"></a>', "", f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, str):
                out += [f"> **{block}**" if block.startswith("WARNING") else block, ""]
            elif isinstance(block, tuple) and block[0] == "list":
                out += [f"- {item}" for item in block[1]] + [""]
            elif isinstance(block, Table):
                header, rows = _rows(block)
                out += [f"**{block.caption}**", "", "| " + " | ".join(map(_md_escape, header)) + " |",
                        "|" + "|".join("---" for _ in header) + "|"]
                out += ["| " + " | ".join(_md_escape(v) for v in row) + " |" for row in rows]
                out.append("")
            elif isinstance(block, Figure):
                out += [f"![{_md_escape(block.alt or block.caption)}]({figure_dir}/{block.name}.png)", "",
                        f"*{block.caption}*", ""]
            else:
                raise TypeError(f"unknown block {type(block).__name__}")
    return "\n".join(out) + "\n"


def tables(sections: list[Section]) -> list[Table]:
    return [b for s in sections for b in s.blocks if isinstance(b, Table)]


def figures(sections: list[Section]) -> list[Figure]:
    return [b for s in sections for b in s.blocks if isinstance(b, Figure)]
