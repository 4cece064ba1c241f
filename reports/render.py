"""Assemble report.md and a self-contained report.html (plots inlined as base64 PNG)."""

from __future__ import annotations

import base64
import html
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mfsoftmax.reports import glance
from mfsoftmax.reports import plots as plotting
from mfsoftmax.reports import sections as measured
from mfsoftmax.reports import tables as tb
from mfsoftmax.reports.judge import THRESHOLDS
from mfsoftmax.reports.load import unfinished, validate
from mfsoftmax.reports.sections.run import config_blocks
from mfsoftmax.reports.style import CSS
from mfsoftmax.reports.verdicts import headline_table


@dataclass
class Plot:
    key: str
    title: str
    run: int
    file: str   # plots/<name>.png, relative to the report
    png: bytes
    svg: str


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    tables: list = field(default_factory=list)
    plots: list = field(default_factory=list)


def build_sections(runs: list, labels: list, plots: list) -> list:
    """The report's sections in order: the headline, then one per module of the registry
    (``reports/sections/``; modules sharing a ``KEY`` fill one section); a section with nothing
    measured is dropped."""
    by_key = {}
    for p in plots:
        by_key.setdefault(p.key, []).append(p)
    sections = [
        Section("headline", "Headline: MF vs softmax, claim by claim",
                "Each row is one claim of the textbook's comparison table (Google's recommendation "
                "systems course). Figures are each family's best model on that claim; the winner "
                "and the verdict follow from the figures and the thresholds below. A long verdict "
                "shows its gist; its full sentence is one click away (in report.md, numbered under "
                "the table).",
                [headline_table(runs, labels)], [p for p in plots if p.key.startswith("glance_")]),
    ]
    for m in measured.modules():  # one module per measurement (reports/sections/), in order
        shown = [p for key, _, _ in m.PLOTS for p in by_key.get(key, [])]
        same = next((s for s in sections if s.key == m.KEY), None)
        if same is None:
            sections.append(Section(m.KEY, m.TITLE, m.INTRO, m.tables(runs, labels), shown))
        else:
            same.tables += m.tables(runs, labels)
            same.plots += shown
    for s in sections:
        s.tables = [t for t in s.tables if t is not None]
    return [s for s in sections if s.tables or s.plots]


def failed_stages(runs, labels) -> list:
    """One line per run that did not finish (:func:`~.load.unfinished`), then one per stage that
    did not finish ok: failed, interrupted, not run, or skipped (with the reason the run
    recorded)."""
    def line(label, stage, st):
        status = st.get("status")
        verb = "failed" if status == "failed" else (status or "unknown")
        why = st.get("error") or st.get("reason")
        return f"{label}: stage '{stage}' {verb}" + (f" ({why})" if why else "")

    runs_left = [f"{label}: {why}" for r, label in zip(runs, labels, strict=True)
                 if (why := unfinished(r))]
    return runs_left + [line(label, stage, st) for r, label in zip(runs, labels, strict=True)
                        for stage, st in (r.get("stages") or {}).items() if st.get("status") != "ok"]


# ----------------------------------------------------------------------------- markdown
def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table_md(t: tb.Table) -> str:
    multi = any(label for label, _ in t.groups)
    head = list(t.key_headers)
    for label, cols in t.groups:
        head += [f"{label[0]} · {c}" if multi else c for c in cols]
    lines = [f"### {t.title}", ""]
    if t.note:
        lines += [f"_{t.note}_", ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    notes = []
    for keys, vals in t.rows:
        cells = [_md_escape(k) for k in keys]
        for v in vals:
            text = _md_escape(tb.cell_text(v))
            cls = v[1] if isinstance(v, tuple) else ""
            if cls in ("best", "failed") or cls.startswith("verdict-"):
                if cls.startswith("verdict-") and ": " in text:
                    word, rest = text.split(": ", 1)
                    text = f"**{word}**: {rest}"
                else:
                    text = f"**{text}**"
            if isinstance(v, tb.Folded) and v.full != v.text:
                run = t.groups[v.run][0] if v.run < len(t.groups) else ""
                notes.append(f"{len(notes) + 1}. {keys[0]}" + (f" ({run})" if run else "")
                             + f": {' '.join(v.full.split())}")
                text += f" [{len(notes)}]"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "In full:", "", *notes]
    return "\n".join(lines) + "\n"


def to_markdown(runs, labels, sections) -> str:
    out = ["# MF vs softmax DNN: benchmark report", ""]
    out += [f"- {label}" for label in labels] + [""]
    for warn in failed_stages(runs, labels):
        out.append(f"> **Warning:** {warn}")
    out.append("")
    for s in sections:
        out += [f"## {s.title}", ""]
        if s.intro:
            out += [s.intro, ""]
        if s.key == "headline":
            out += ["Thresholds:", ""]
            out += [f"- `{name} = {value:g}`: {desc}" for name, (value, desc) in THRESHOLDS.items()]
            out.append("")
        for t in s.tables:
            out += [table_md(t), ""]
        for p in s.plots if s.key != "headline" else ():  # the sparklines are the HTML's
            out += [f"![{p.title} ({labels[p.run]})]({p.file})", ""]
    for i, config in config_blocks(runs):
        out += [f"### Config, {labels[i]}", "", "```json", config, "```", ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- html
def _esc(x) -> str:
    return html.escape(str(x), quote=True)


def _verdict_html(v, figures) -> str:
    """A verdict cell: its badge and short text; a Folded cell's full text in a folded block
    under it and its sparkline (``figures[(plot key, run)]``) beside it."""
    text, cls = v[0], v[1]
    kind = cls[len("verdict-"):]
    word = kind.replace("-", " ")
    if kind == "not-measured":  # "not measured (why)": the badge says the first two words
        rest = text[len(word):].lstrip() if text.startswith(word) else text
    else:
        rest = text[len(word) + 2:] if text.startswith(word + ": ") else text
    says = f'<span class="badge {_esc(cls)}">{_esc(word)}</span> {_esc(rest)}'
    if not isinstance(v, tb.Folded):
        return f'<td class="verdict">{says}</td>'
    if v.full != v.text:
        says += (f'<details class="full"><summary>in full</summary>{_esc(" ".join(v.full.split()))}'
                 "</details>")
    p = figures.get((v.plot, v.run))
    if p is None:
        return f'<td class="verdict">{says}</td>'
    width = int.from_bytes(p.png[16:20], "big") // 2  # drawn at twice the report's dpi
    img = (f'<img class="spark" id="p-{_esc(p.key)}-{p.run}" width="{width}" alt="{_esc(p.title)}" '
           f'src="data:image/png;base64,{base64.b64encode(p.png).decode("ascii")}">')
    return f'<td class="verdict"><div class="glance">{img}<div>{says}</div></div></td>'


def _cell_html(v, figures=None) -> str:
    text, cls = (v[:2] if isinstance(v, tuple) else (v, ""))
    if cls.startswith("verdict-"):
        return _verdict_html(v, figures or {})
    if cls == "fig":
        main, _, model = text.partition(" [")
        small = f'<br><small>{_esc(model.rstrip("]"))}</small>' if model else ""
        return f'<td class="fig">{_esc(main)}{small}</td>'
    if cls in ("ok", "failed"):
        return f'<td><span class="badge st-{cls}">{_esc(text)}</span></td>'
    num = text[:1].isdigit() or text[:1] in "+-−—" or text.startswith("N^")
    classes = " ".join(c for c in (cls, "num" if num else "") if c)
    return f'<td class="{classes}">{_esc(text)}</td>' if classes else f"<td>{_esc(text)}</td>"


def _group_starts(t: tb.Table) -> set:
    starts, i = set(), 0
    for _, cols in t.groups:
        starts.add(i)
        i += len(cols)
    return starts


def table_html(t: tb.Table, figures=None) -> str:
    """``t`` as an HTML table; ``figures``: {(plot key, run): Plot} drawn beside the Folded
    cells that name them (the headline's sparklines)."""
    multi = any(label for label, _ in t.groups)
    parts = [f'<div class="table-wrap" id="t-{_esc(t.key)}"><table class="t-{_esc(t.key)}">',
             f"<caption>{_esc(t.title)}</caption><thead>"]
    if multi:
        parts.append("<tr>" + "".join(f'<th rowspan="2">{_esc(h)}</th>' for h in t.key_headers))
        parts += [f'<th colspan="{len(cols)}" class="group">{_esc(label)}</th>' for label, cols in t.groups]
        parts.append("</tr><tr>")
        parts += [f'<th{" data-g=1" if j == 0 else ""}>{_esc(c)}</th>'
                  for _, cols in t.groups for j, c in enumerate(cols)]
        parts.append("</tr>")
    else:
        heads = list(t.key_headers) + [c for _, cols in t.groups for c in cols]
        parts.append("<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in heads) + "</tr>")
    parts.append("</thead><tbody>")
    for keys, vals in t.rows:
        row = "".join(f'<th scope="row">{_esc(k)}</th>' if i == 0 else
                      f'<td class="key">{_esc(k).replace(chr(10), "<br>")}</td>'
                      for i, k in enumerate(keys))
        starts = _group_starts(t) if multi else set()
        cells = [_cell_html(v, figures) for v in vals]
        cells = [c.replace("<td", '<td data-g="1"', 1) if i in starts else c for i, c in enumerate(cells)]
        parts.append("<tr>" + row + "".join(cells) + "</tr>")
    parts.append("</tbody></table></div>")
    if t.note:
        parts.append(f'<p class="note">{_esc(t.note)}</p>')
    return "".join(parts)


def plot_html(p: Plot, label: str, multi: bool) -> str:
    data = base64.b64encode(p.png).decode("ascii")
    cap = f"{p.title} — {label}" if multi else p.title
    width = int.from_bytes(p.png[16:20], "big")  # PNG IHDR: never upscale past natural size
    wide = " wide" if width > 900 else ""
    return (f'<figure class="plot{wide}" id="p-{_esc(p.key)}-{p.run}" '
            f'style="max-width:{width + 22}px">'
            f'<img alt="{_esc(cap)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{_esc(cap)} · '
            f'<code>{_esc(p.file)}</code></figcaption></figure>')


def to_html(runs, labels, sections) -> str:
    multi = len(runs) > 1
    nav = "".join(f'<a href="#{_esc(s.key)}">{_esc(s.title.split(":")[0])}</a>' for s in sections)
    body = ['<header><h1>MF vs softmax DNN <span class="sub">benchmark report</span></h1>',
            '<ul class="runs">' + "".join(f"<li>{_esc(label)}</li>" for label in labels) + "</ul>",
            f"<nav>{nav}</nav></header><main>"]
    for warn in failed_stages(runs, labels):
        body.append(f'<div class="warning"><strong>Warning:</strong> {_esc(warn)}</div>')
    for s in sections:
        body.append(f'<section id="{_esc(s.key)}"><h2>{_esc(s.title)}</h2>')
        if s.intro:
            body.append(f'<p class="intro">{_esc(s.intro)}</p>')
        figures = {(p.key, p.run): p for p in s.plots} if s.key == "headline" else None
        body += [table_html(t, figures) for t in s.tables]
        if s.key == "headline":
            items = "".join(f"<li><code>{_esc(n)} = {v:g}</code> {_esc(d)}</li>"
                            for n, (v, d) in THRESHOLDS.items())
            body.append(f'<details class="thresholds" open><summary>Thresholds</summary><ul>{items}'
                        "</ul></details>")
        if s.plots and figures is None:
            body.append('<div class="plots">' + "".join(
                plot_html(p, labels[p.run], multi) for p in s.plots) + "</div>")
        if s.key == "run":
            for i, config in config_blocks(runs):
                body.append(f"<details><summary>Resolved config, {_esc(labels[i])}</summary>"
                            f"<pre>{_esc(config)}</pre></details>")
        body.append("</section>")
    body.append("</main>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>mfsoftmax report · {_esc(' / '.join(labels))}</title>"
            f"<style>{CSS}</style></head>" + ('<body class="multi">' if multi else "<body>")
            + "".join(body) + "</body></html>\n")


# ----------------------------------------------------------------------------- entry point
def render_report(results, out_dir, sources=None) -> dict:
    """Write report.md, report.html and plots/*.png|svg for one or several results dicts.

    Everything is rendered into a temporary folder inside ``out_dir`` first, then swapped in:
    a report stopped part-way (an error, Ctrl-C) leaves the folder as it was, and the plots
    folder is replaced whole, so plots of an earlier report there are never mixed in.

    Parameters
    ----------
    results : dict or list of dict
        Parsed results.json contents (schema_version 1); several are lined up side by side.
    out_dir : path
        Folder to write into (created if needed; an ``OSError`` before any plot is drawn when it
        cannot be).
    sources : list of str, optional
        Names used in error messages (e.g. the file paths).

    Returns
    -------
    dict
        ``{"md": Path, "html": Path, "plots/<file>": Path, ...}`` of every file written.
    """
    runs = [results] if isinstance(results, dict) else list(results)
    if not runs:
        raise ValueError("render_report: no results given")
    sources = sources or [f"<results {i}>" for i in range(len(runs))]
    runs = [validate(r, src) for r, src in zip(runs, sources, strict=True)]
    labels = [tb.run_label(r, i) for i, r in enumerate(runs)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=out_dir))
    try:
        names = _render_into(tmp, runs, labels)
        _swap_in(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"md": out_dir / "report.md", "html": out_dir / "report.html",
            **{name: out_dir / name for name in names}}


def _render_into(folder: Path, runs: list, labels: list) -> list:
    """Write the report and its plots into ``folder``; the plots' relative paths."""
    names, plots = [], []
    for i, r in enumerate(runs):
        suffix = f"_{chr(ord('A') + i)}" if len(runs) > 1 else ""
        for key, title, png, svg in [*plotting.render(r, labels[i] if len(runs) > 1 else ""),
                                     *glance.render(r)]:
            name = f"{key}{suffix}"
            plots.append(Plot(key, title, i, f"plots/{name}.png", png, svg))
            (folder / "plots").mkdir(exist_ok=True)
            for ext, data in (("png", png), ("svg", svg.encode("utf-8"))):
                (folder / "plots" / f"{name}.{ext}").write_bytes(data)
                names.append(f"plots/{name}.{ext}")
    sections = build_sections(runs, labels, plots)
    (folder / "report.md").write_text(to_markdown(runs, labels, sections), encoding="utf-8")
    (folder / "report.html").write_text(to_html(runs, labels, sections), encoding="utf-8")
    return names


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Move the report rendered in ``tmp`` into ``out_dir``: the old plots folder out of the
    way (into ``tmp``, deleted with it), the new one in (none when nothing was plotted), then
    report.md and report.html (each an atomic rename)."""
    old = out_dir / "plots"
    if old.is_dir() and not old.is_symlink():
        os.replace(old, tmp / "plots.old")
    if (tmp / "plots").is_dir():
        os.replace(tmp / "plots", old)
    os.replace(tmp / "report.md", out_dir / "report.md")
    os.replace(tmp / "report.html", out_dir / "report.html")
