"""A small document model that the report's tables are written in, rendered as Markdown
(``*.md``, for reading in a terminal or on a forge) and as a standalone HTML page (``*.html``,
what ``snakemake --report`` shows inline: its viewer displays text/html results in a frame
but offers text/markdown only as a download).

Both renderings come from the same blocks, so they hold the same rows.  Text may use two
inline marks, ``**strong**`` and ```code```; in HTML everything else is escaped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

_STRONG = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")
_NUMBER = re.compile(r"^[-+]?\d")

CSS = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1em; color: #222; }
table { border-collapse: collapse; margin: 0 0 2em 0; }
caption { text-align: left; font-weight: bold; font-size: 1.1em; padding-bottom: .4em; }
caption p { font-weight: normal; font-size: .9em; max-width: 60em; margin: .3em 0 0 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.published td { color: #666; background: #fafafa; }
"""


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 1


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Items:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table under a caption: ``title`` (Markdown: a level-2 heading) and ``note`` (a
    paragraph); Markdown writes ``_no runs_`` in place of a table without rows."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    title: str = ""
    note: str = ""


Block = Heading | Para | Items | Table


def _md_table(header: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            out += [b.text, ""]
        elif isinstance(b, Items):
            out += [*(f"- {i}" for i in b.items), ""]
        else:
            if b.title:
                out += [f"## {b.title}", ""]
            if b.note:
                out += [b.note, ""]
            out += [_md_table(b.header, b.rows) if b.rows else "_no runs_", ""]
    return "\n".join(out)


def inline_html(text: str) -> str:
    """Escaped ``text`` with ``**strong**`` and ```code``` as HTML elements."""
    escaped = html.escape(text, quote=True)
    return _CODE.sub(r"<code>\1</code>", _STRONG.sub(r"<strong>\1</strong>", escaped))


def _html_table(t: Table) -> list[str]:
    out = ["<table>"]
    if t.title or t.note:
        note = f"<p>{inline_html(t.note)}</p>" if t.note else ""
        out.append(f"<caption>{inline_html(t.title)}{note}</caption>")
    out.append(
        "<thead><tr>" + "".join(f"<th>{inline_html(h)}</th>" for h in t.header) + "</tr></thead>"
    )
    out.append("<tbody>")
    for row in t.rows:
        published = any("**published**" in c for c in row)
        cells = "".join(
            f'<td class="num">{inline_html(c)}</td>'
            if _NUMBER.match(c)
            else f"<td>{inline_html(c)}</td>"
            for c in row
        )
        out.append(f'<tr class="published">{cells}</tr>' if published else f"<tr>{cells}</tr>")
    if not t.rows:
        out.append(f'<tr><td colspan="{len(t.header)}"><em>no runs</em></td></tr>')
    out += ["</tbody>", "</table>"]
    return out


def to_html(blocks: list[Block], title: str) -> str:
    """A standalone UTF-8 HTML page (no scripts, no external resources)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
    ]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{inline_html(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{inline_html(b.text)}</p>")
        elif isinstance(b, Items):
            out += ["<ul>", *(f"<li>{inline_html(i)}</li>" for i in b.items), "</ul>"]
        else:
            out += _html_table(b)
    out += ["</body>", "</html>", ""]
    return "\n".join(out)
