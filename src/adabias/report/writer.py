"""Write ``report.md``, a self-contained ``report.html`` and ``claims.json`` (DESIGN §4.2).

The report reads top to bottom: the overall count, one summary line per paper and claim kind,
then per paper (CKS, LWL, beyond the papers) its claims table by kind — statement, verdict,
headline numbers, the reason of every claim that did not hold, the full record one click away —
and its experiments (settings, notes, figures); the time per experiment last.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import json
import math
import platform
import re
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from adabias.report.files import write_atomic
from adabias.report.runner import Record

#: The paper groups of the report, in order, with their headings; any other paper follows.
PAPERS = {
    "CKS": "CKS — Cattaneo, Klusowski & Shigida, “On the Implicit Bias of Adam” (ICML 2024)",
    "LWL": "LWL — Li, Wen & Lyu, “Adam Reduces a Unique Form of Sharpness: Theoretical "
           "Insights Near the Minimizer Manifold” (NeurIPS 2025)",
    "beyond": "Beyond the papers",
}

#: The claim kinds in report order (experiments/base.py CLAIM_KINDS) and their names.
KINDS = {"paper": "paper claims", "theory": "theory claims"}

#: How many scalar numbers of a claim are its headline.
HEADLINE_SIZE = 3

#: The longest list of scalars that completes a headline short of scalars.
HEADLINE_LIST = 5


# --- numbers as a person writes them ---------------------------------------------------------


def _float_text(x: float, digits: Optional[int]) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    # digits=None: exact up to float noise (9.999999999999999e-06 → 1e-05)
    places = 12 if digits is None else digits
    if abs(x) >= 1e6:  # 1e+08, not 100000000
        mantissa, exponent = f"{x:.{places - 1}e}".split("e")
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{exponent}"
    text = f"{x:.{places}g}"
    if "e+" in text:  # 1.23e+04 → 12300
        exponent = math.floor(math.log10(abs(x)))
        text = f"{round(x, places - 1 - exponent):.0f}"
    return text


def format_number(x: Any, digits: Optional[int] = 3, *, max_items: Optional[int] = None) -> str:
    """A number, or a structure of numbers, as a person writes it.

    Floats to ``digits`` significant digits (``None``: every digit that is not float noise, so
    ``9.999999999999999e-06`` reads ``1e-05``); ints, bools and strings as they are; sequences
    compact (``[0.9, 0.95]``, tuples ``(0.9, 0.95)``), cut to their first and last items
    beyond ``max_items``; mappings ``{key: value}``; dataclasses ``Name(field=value)``.
    """
    def inner(value: Any) -> str:
        return format_number(value, digits, max_items=max_items)

    if isinstance(x, (bool, np.bool_)) or x is None:
        return str(bool(x)) if x is not None else "None"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return _float_text(float(x), digits)
    if isinstance(x, str):
        return x
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        fields = ", ".join(f"{f.name}={inner(getattr(x, f.name))}" for f in dataclasses.fields(x))
        return f"{type(x).__name__}({fields})"
    if isinstance(x, Mapping):
        return "{" + ", ".join(f"{k}: {inner(v)}" for k, v in x.items()) + "}"
    if isinstance(x, np.ndarray):
        x = x.tolist() if x.ndim else x.item()
        return inner(x)
    if isinstance(x, (list, tuple)):
        items = [inner(v) for v in x]
        if max_items is not None and len(items) > max_items:
            head = max(1, max_items - 2)
            items = items[:head] + ["…"] + items[-1:] + [f"({len(x)} values)"]
            shown = ", ".join(items[:-1]) + " " + items[-1]
        else:
            shown = ", ".join(items)
            if isinstance(x, tuple) and len(x) == 1:
                shown += ","
        return f"({shown})" if isinstance(x, tuple) else f"[{shown}]"
    return str(x)


def format_numbers(numbers: Mapping[str, Any], digits: Optional[int] = 3, *,
                   max_items: Optional[int] = None, separator: str = "; ") -> str:
    """``name = value`` for every entry (:func:`format_number`)."""
    return separator.join(f"{k} = {format_number(v, digits, max_items=max_items)}"
                          for k, v in numbers.items())


def _is_scalar(value: Any) -> bool:
    """A number, a boolean, or None (a NaN in claims.json)."""
    return value is None or isinstance(value, (bool, int, float))


def _scalar_leaves(value: Mapping[str, Any], prefix: str):
    for key, item in value.items():
        name = f"{prefix}.{key}"
        if isinstance(item, Mapping):
            yield from _scalar_leaves(item, name)
        elif _is_scalar(item):
            yield name, item


def headline(numbers: Mapping[str, Any], count: int = HEADLINE_SIZE) -> list[tuple[str, Any]]:
    """A claim's headline: the first ``count`` scalar entries of its numbers, in their order.

    When fewer top-level entries are scalars, the scalar entries of its mappings complete it
    (named ``outer.inner``, in order), then its short lists of scalars (at most
    :data:`HEADLINE_LIST` items), in order."""
    chosen = [(k, v) for k, v in numbers.items() if _is_scalar(v)][:count]
    for key, value in numbers.items():
        if isinstance(value, Mapping):
            chosen += list(_scalar_leaves(value, key))[:max(0, count - len(chosen))]
    for key, value in numbers.items():
        if (len(chosen) < count and isinstance(value, list) and 0 < len(value) <= HEADLINE_LIST
                and all(_is_scalar(v) for v in value)):
            chosen.append((key, value))
    return chosen


# --- verdicts and groups ----------------------------------------------------------------------


def verdict(claim: Mapping[str, Any]) -> str:
    """``"held"``, ``"undecided"`` (not held, its note starts with "undecided") or
    ``"not held"``."""
    if claim["held"]:
        return "held"
    return "undecided" if claim.get("note", "").lstrip().lower().startswith("undecided") \
        else "not held"


def count_line(claims: Sequence[Mapping[str, Any]]) -> str:
    """``5 of 9 held; 2 undecided`` (the undecided part only when there are some)."""
    held = sum(verdict(c) == "held" for c in claims)
    undecided = sum(verdict(c) == "undecided" for c in claims)
    return f"{held} of {len(claims)} held" + (f"; {undecided} undecided" if undecided else "")


class PaperGroup(NamedTuple):
    """One paper's part of the report: its records and its claims by kind (kinds in
    :data:`KINDS` order, only those with claims)."""

    paper: str
    heading: str
    records: list
    claims_by_kind: dict

    def summary_lines(self) -> list[str]:
        """``CKS — paper claims: 5 of 9 held; 2 undecided``, one per kind."""
        return [f"{self.paper} — {KINDS.get(kind, kind + ' claims')}: {count_line(claims)}"
                for kind, claims in self.claims_by_kind.items()]


def paper_groups(records: Sequence[Record]) -> list[PaperGroup]:
    """The records grouped by paper (:data:`PAPERS` order, then others as they come), each
    group's claims split by kind."""
    order = list(PAPERS) + [r.experiment.paper for r in records]
    papers = sorted({r.experiment.paper for r in records}, key=order.index)
    groups = []
    for paper in papers:
        chosen = [r for r in records if r.experiment.paper == paper]
        claims = [c for r in chosen for c in r.claims]
        kinds = list(KINDS) + [c.get("kind", "paper") for c in claims]
        by_kind = {}
        for kind in sorted({c.get("kind", "paper") for c in claims}, key=kinds.index):
            by_kind[kind] = [c for c in claims if c.get("kind", "paper") == kind]
        groups.append(PaperGroup(paper, PAPERS.get(paper, paper), chosen, by_kind))
    return groups


# --- header and summary -----------------------------------------------------------------------


def _environment() -> str:
    import jax

    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return f"Python {platform.python_version()}, JAX {jax.__version__} on {devices}"


def _header(records: Sequence[Record], scale: str, version: str) -> dict:
    return {
        "mode": scale,
        "version": version,
        "written": datetime.datetime.now().isoformat(timespec="seconds"),
        "environment": _environment(),
        "seconds": sum(r.seconds for r in records if r.status == "ran"),
    }


def summary(records: Sequence[Record]) -> str:
    """``9 of 10 claims held.`` (with ``; 1 undecided`` when some are), naming the
    experiments that failed, if any."""
    claims = [c for r in records for c in r.claims]
    undecided = sum(verdict(c) == "undecided" for c in claims)
    held = f"{sum(c['held'] for c in claims)} of {len(claims)} claims held"
    held += f"; {undecided} undecided" if undecided else ""
    failed = [r.experiment.id for r in records if r.status == "failed"]
    if not failed:
        return held + "."
    lost = (f"{len(failed)} of {len(records)} experiment{'s' if len(records) > 1 else ''} "
            f"failed: {', '.join(failed)}")
    return f"No claim decided: {lost}." if len(failed) == len(records) else f"{held}; {lost}."


def _status(record: Record) -> str:
    if record.status == "cached":
        return f"cached (computed {record.computed.replace('T', ' ')[:16]})"
    return record.status + (f": {record.error}" if record.error else "")


def _failed_line(group: PaperGroup) -> str:
    failed = [r.experiment.id for r in group.records if r.status == "failed"]
    return f"Failed, no claim decided: {', '.join(failed)}." if failed else ""


def _headline_text(claim: Mapping[str, Any]) -> str:
    return format_numbers(dict(headline(claim["numbers"])))


def write_claims_json(out: Path, records: Sequence[Record]) -> None:
    claims = [c for r in records for c in r.claims]
    write_atomic(out / "claims.json", json.dumps(claims, indent=1))


# --- Markdown ---------------------------------------------------------------------------------


def _md(text: str) -> str:
    """Plain text safe in a Markdown list line: one line, and no ``<`` that could open an HTML
    tag (``a < b`` stays as it is)."""
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text.replace("\n", " "))


def write_markdown(out: Path, records: Sequence[Record], *, scale: str, version: str) -> None:
    info = _header(records, scale, version)
    groups = paper_groups(records)
    lines = [
        "# adabias reproduction report", "",
        f"Mode: **{info['mode']}** · adabias {info['version']} · {info['environment']} · "
        f"written {info['written']}", "",
        f"**{summary(records)}**", "",
    ]
    lines += [f"- {line}" for g in groups for line in g.summary_lines()] + [""]
    lines += ["Each claim: its verdict, its statement, the numbers it was decided on (first "
              "three; all of them, the test and the settings under its experiment below and "
              "in `claims.json`) and, when it did not hold, why.", ""]
    for group in groups:
        lines += [f"## {group.heading}", ""]
        if _failed_line(group):
            lines += [f"**{_failed_line(group)}**", ""]
        for kind, claims in group.claims_by_kind.items():
            lines += [f"### {group.paper} — {KINDS.get(kind, kind + ' claims')}: "
                      f"{count_line(claims)}", ""]
            for c in claims:
                lines.append(f"- **{verdict(c)}** `{c['id']}` — {_md(c['statement'])}  ")
                lines.append(f"  {_md(_headline_text(c)) or '(no scalar numbers)'}"
                             + ("  " if not c["held"] else ""))
                if not c["held"]:
                    lines.append(f"  Why: {_md(c['note'])}")
            lines.append("")
        for record in group.records:
            lines += _markdown_experiment(record)
    lines += ["## Time per experiment", "", "| experiment | status | seconds |",
              "| --- | --- | --- |"]
    for record in records:
        status = _status(record).replace("|", "\\|")
        lines.append(f"| `{record.experiment.id}` | {status} | {record.seconds:.1f} |")
    lines.append(f"| total (run now) | | {info['seconds']:.1f} |")
    write_atomic(out / "report.md", "\n".join(lines) + "\n")


def _markdown_experiment(record: Record) -> list[str]:
    e = record.experiment
    lines = [f"### `{e.id}` — {e.title}", ""]
    if record.status == "failed":
        return lines + [f"**Failed:** {record.error} (traceback in `logs/{e.id}.log`)", ""]
    lines += ["Settings: " + format_numbers(record.settings, None, max_items=8), ""]
    lines += [f"- {_md(note)}" for note in record.notes] + ([""] if record.notes else [])
    lines += [line for stem in record.figures for line in (f"![{stem}](figures/{stem}.png)", "")]
    lines += ["Claims (test, all numbers, note):", ""]
    for c in record.claims:
        lines.append(f"- **{verdict(c)}** `{c['id']}` — test: {_md(c.get('test', ''))}  ")
        lines.append(f"  {_md(format_numbers(c['numbers'], 6))}"
                     + (f"  \n  Note: {_md(c['note'])}" if c["note"] else ""))
    if record.data:
        lines += ["", "Data: " + ", ".join(f"[`{d}`](data/{d})" for d in record.data)]
    return lines + [""]


# --- HTML -------------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;
 line-height:1.4}
h2{border-bottom:2px solid #ddd;padding-bottom:0.2em;margin-top:2em}
h3{margin-top:1.5em}
table{border-collapse:collapse;margin:0.5em 0 1em;font-size:0.9em}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f4f4f4}
table.claims{width:100%;table-layout:fixed}
table.claims td.numbers{font-size:0.9em}
.held{color:#176317;font-weight:bold}.not{color:#a11;font-weight:bold}
.undecided{color:#9a5b00;font-weight:bold}
tr.row-not{background:#fff3f1}tr.row-undecided{background:#fff8e6}
.why{margin-top:0.3em}.why b{color:#a11}
details{margin-top:0.3em;font-size:0.9em}summary{cursor:pointer;color:#245}
details table{font-size:0.95em;margin:0.3em 0}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}
code{background:#f4f4f4;padding:0 3px}.settings{font-size:0.85em;color:#555}
ul.summary{font-size:1.05em}
.experiment{margin-left:0.5em}
"""


def _verdict_span(claim: Mapping[str, Any]) -> str:
    v = verdict(claim)
    css = {"held": "held", "undecided": "undecided"}.get(v, "not")
    return f'<span class="{css}">{v}</span>'


def _breakable(identifier: str) -> str:
    """An escaped identifier (claim id, number name) that a narrow column breaks after its dots
    and underscores."""
    escaped = html.escape(identifier)
    return escaped.replace(".", ".<wbr>").replace("_", "_<wbr>")


def _anchor(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)


def _details_html(claim: Mapping[str, Any]) -> str:
    esc = html.escape
    rows = "".join(f"<tr><td><code>{esc(str(k))}</code></td><td>{esc(format_number(v, 6))}</td></tr>"
                   for k, v in claim["numbers"].items())
    settings = esc(format_numbers(claim.get("settings", {}), None))
    note = f"<p><b>Note:</b> {esc(claim['note'])}</p>" if claim["note"] else ""
    return (f"<details><summary>test, all numbers, settings</summary>"
            f"<p><b>Test:</b> {esc(claim.get('test', ''))}</p>"
            f"<table><tr><th>number</th><th>value</th></tr>{rows}</table>{note}"
            f"<p class='settings'><b>Settings:</b> {settings}</p></details>")


def _claims_table_html(claims: Sequence[Mapping[str, Any]], experiment_of: Mapping[str, str]) -> str:
    esc = html.escape
    rows = ["<table class='claims'><colgroup><col style='width:6.5em'><col style='width:13em'>"
            "<col><col style='width:19em'></colgroup><tr><th>verdict</th><th>claim</th>"
            "<th>statement</th><th>headline numbers</th></tr>"]
    for c in claims:
        row = "row-" + {"held": "held", "undecided": "undecided"}.get(verdict(c), "not")
        why = (f"<div class='why'><b>Why:</b> {esc(c['note'])}</div>" if not c["held"] else "")
        numbers = "<br>".join(f"{_breakable(k)} = {esc(format_number(value))}"
                              for k, value in headline(c["numbers"])) or "—"
        target = _anchor(experiment_of.get(c["id"], c.get("experiment", c["id"])))
        rows.append(
            f"<tr class='{row}' id='claim-{_anchor(c['id'])}'><td>{_verdict_span(c)}</td>"
            f"<td class='id'><a href='#{target}'><code>{_breakable(c['id'])}</code></a></td>"
            f"<td>{esc(c['statement'])}{why}{_details_html(c)}</td>"
            f"<td class='numbers'>{numbers}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _experiment_html(record: Record, out: Path) -> list[str]:
    esc = html.escape
    e = record.experiment
    parts = [f"<div class='experiment'><h3 id='{_anchor(e.id)}'><code>{esc(e.id)}</code> — "
             f"{esc(e.title)}</h3>"]
    if record.status == "failed":
        parts.append(f"<p class='not'>Failed: {esc(record.error)} (traceback in "
                     f"logs/{esc(e.id)}.log)</p></div>")
        return parts
    parts.append("<p>Claims: " + ", ".join(
        f"{_verdict_span(c)} <a href='#claim-{_anchor(c['id'])}'><code>{esc(c['id'])}</code></a>"
        for c in record.claims) + "</p>")
    parts.append(f"<p class='settings'>Settings: "
                 f"{esc(format_numbers(record.settings, None, max_items=8))}</p>")
    if record.notes:
        parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in record.notes) + "</ul>")
    for stem in record.figures:
        encoded = base64.b64encode((out / "figures" / f"{stem}.png").read_bytes()).decode()
        parts.append(f"<img alt='{esc(stem)}' src='data:image/png;base64,{encoded}'>")
    if record.data:
        parts.append("<p>Data: " + ", ".join(f"<a href='data/{esc(d)}'>{esc(d)}</a>"
                                              for d in record.data) + "</p>")
    parts.append("</div>")
    return parts


def write_html(out: Path, records: Sequence[Record], *, scale: str, version: str) -> None:
    info = _header(records, scale, version)
    esc = html.escape
    groups = paper_groups(records)
    experiment_of = {c["id"]: r.experiment.id for r in records for c in r.claims}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>adabias report</title>"
             f"<style>{_STYLE}</style></head><body>",
             "<h1>adabias reproduction report</h1>",
             f"<p>Mode: <b>{esc(info['mode'])}</b> · adabias {esc(info['version'])} · "
             f"{esc(info['environment'])} · written {esc(info['written'])}</p>",
             f"<p><b>{esc(summary(records))}</b></p><ul class='summary'>"]
    for group in groups:
        for kind, line in zip(group.claims_by_kind, group.summary_lines()):
            parts.append(f"<li><a href='#{_anchor(group.paper)}-{kind}'>{esc(line)}</a></li>")
        if _failed_line(group):
            parts.append(f"<li class='not'>{esc(group.paper)}: {esc(_failed_line(group))}</li>")
    parts.append("</ul><p>Each claim: its verdict, the sentence it tests, the first numbers its "
                 "decision rests on and, when it did not hold, why; the test, every number and "
                 "the settings one click away (and in claims.json). Figures and notes follow "
                 "each paper's claims, experiment by experiment.</p>")
    for group in groups:
        parts.append(f"<h2 id='{_anchor(group.paper)}'>{esc(group.heading)}</h2>")
        if _failed_line(group):
            parts.append(f"<p class='not'>{esc(_failed_line(group))}</p>")
        for kind, claims in group.claims_by_kind.items():
            parts.append(f"<h3 id='{_anchor(group.paper)}-{kind}'>{esc(group.paper)} — "
                         f"{esc(KINDS.get(kind, kind + ' claims'))}: {esc(count_line(claims))}</h3>")
            parts.append(_claims_table_html(claims, experiment_of))
        for record in group.records:
            parts += _experiment_html(record, out)
    parts.append("<h2>Time per experiment</h2><table><tr><th>experiment</th>"
                 "<th>status</th><th>seconds</th></tr>")
    for record in records:
        parts.append(f"<tr><td><a href='#{_anchor(record.experiment.id)}'><code>"
                     f"{esc(record.experiment.id)}</code></a></td><td>{esc(_status(record))}</td>"
                     f"<td>{record.seconds:.1f}</td></tr>")
    parts.append(f"<tr><td>total (run now)</td><td></td><td>{info['seconds']:.1f}</td></tr>"
                 "</table></body></html>")
    write_atomic(out / "report.html", "\n".join(parts))


def write_report(out: Path, records: Sequence[Record], *, scale: str, version: str) -> None:
    """All three report files, from the records of one ``reproduce`` call."""
    write_claims_json(out, records)
    write_markdown(out, records, scale=scale, version=version)
    write_html(out, records, scale=scale, version=version)
