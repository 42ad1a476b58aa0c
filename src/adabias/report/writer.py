"""Write ``report.md``, a self-contained ``report.html`` and ``claims.json`` (DESIGN §4.2)."""

from __future__ import annotations

import base64
import datetime
import html
import json
import platform
from pathlib import Path
from typing import Any, Sequence

from adabias.report.files import write_atomic
from adabias.report.runner import Record


def format_number(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, list):
        shown = ", ".join(format_number(v) for v in x[:8])
        return f"[{shown}{', …' if len(x) > 8 else ''}]"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k}: {format_number(v)}" for k, v in x.items()) + "}"
    return str(x)


def format_numbers(numbers: dict) -> str:
    return "; ".join(f"{k} = {format_number(v)}" for k, v in numbers.items())


def _verdict(held: bool) -> str:
    return "held" if held else "NOT held"


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
    """``9 of 10 claims held.``, naming the experiments that failed, if any."""
    claims = [c for r in records for c in r.claims]
    held = f"{sum(c['held'] for c in claims)} of {len(claims)} claims held"
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


def write_claims_json(out: Path, records: Sequence[Record]) -> None:
    claims = [c for r in records for c in r.claims]
    write_atomic(out / "claims.json", json.dumps(claims, indent=1))


def write_markdown(out: Path, records: Sequence[Record], *, scale: str, version: str) -> None:
    info = _header(records, scale, version)
    lines = [
        "# adabias reproduction report", "",
        f"Mode: **{info['mode']}** · adabias {info['version']} · {info['environment']} · "
        f"written {info['written']}", "",
        f"**{summary(records)}**", "",
        "## Claims", "",
        "| claim | held | numbers |", "| --- | --- | --- |",
    ]
    for record in records:
        for c in record.claims:
            numbers = format_numbers(c["numbers"]).replace("|", "\\|")
            lines.append(f"| `{c['id']}` | {_verdict(c['held'])} | {numbers} |")
    lines += ["", "## Time per experiment", "", "| experiment | status | seconds |",
              "| --- | --- | --- |"]
    for record in records:
        status = _status(record)
        lines.append(f"| `{record.experiment.id}` | {status} | {record.seconds:.1f} |")
    lines.append(f"| total (run now) | | {info['seconds']:.1f} |")
    for record in records:
        e = record.experiment
        lines += ["", f"## `{e.id}` — {e.title} ({e.paper})", ""]
        if record.status == "failed":
            lines += [f"**Failed:** {record.error} (traceback in `logs/{e.id}.log`)", ""]
            continue
        lines += ["Settings: " + format_numbers(record.settings), ""]
        for note in record.notes:
            lines.append(f"- {note}")
        if record.notes:
            lines.append("")
        for stem in record.figures:
            lines += [f"![{stem}](figures/{stem}.png)", ""]
        for c in record.claims:
            lines.append(f"- **{_verdict(c['held'])}** `{c['id']}`: {c['statement']}  ")
            lines.append(f"  {format_numbers(c['numbers'])}" + (f" — {c['note']}" if c["note"] else ""))
        if record.data:
            lines += ["", "Data: " + ", ".join(f"[`{d}`](data/{d})" for d in record.data)]
    write_atomic(out / "report.md", "\n".join(lines) + "\n")


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
.held{color:#176317;font-weight:bold}.not{color:#a11;font-weight:bold}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}
code{background:#f4f4f4;padding:0 3px}.settings{font-size:0.85em;color:#555}
"""


def write_html(out: Path, records: Sequence[Record], *, scale: str, version: str) -> None:
    info = _header(records, scale, version)
    esc = html.escape

    def verdict(held: bool) -> str:
        return f'<span class="{"held" if held else "not"}">{_verdict(held)}</span>'

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>adabias report</title>"
             f"<style>{_STYLE}</style></head><body>",
             "<h1>adabias reproduction report</h1>",
             f"<p>Mode: <b>{info['mode']}</b> · adabias {esc(info['version'])} · "
             f"{esc(info['environment'])} · written {info['written']}</p>",
             f"<p><b>{esc(summary(records))}</b></p>", "<h2>Claims</h2><table><tr><th>claim</th><th>held</th><th>numbers</th></tr>"]
    for record in records:
        for c in record.claims:
            parts.append(f"<tr><td><a href='#{esc(record.experiment.id)}'><code>{esc(c['id'])}</code>"
                         f"</a></td><td>{verdict(c['held'])}</td>"
                         f"<td>{esc(format_numbers(c['numbers']))}</td></tr>")
    parts.append("</table><h2>Time per experiment</h2><table><tr><th>experiment</th>"
                 "<th>status</th><th>seconds</th></tr>")
    for record in records:
        status = _status(record)
        parts.append(f"<tr><td><code>{esc(record.experiment.id)}</code></td><td>{esc(status)}</td>"
                     f"<td>{record.seconds:.1f}</td></tr>")
    parts.append(f"<tr><td>total (run now)</td><td></td><td>{info['seconds']:.1f}</td></tr></table>")
    for record in records:
        e = record.experiment
        parts.append(f"<h2 id='{esc(e.id)}'><code>{esc(e.id)}</code> — {esc(e.title)} ({esc(e.paper)})</h2>")
        if record.status == "failed":
            parts.append(f"<p class='not'>Failed: {esc(record.error)} (traceback in logs/{esc(e.id)}.log)</p>")
            continue
        parts.append(f"<p class='settings'>Settings: {esc(format_numbers(record.settings))}</p>")
        if record.notes:
            parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in record.notes) + "</ul>")
        for stem in record.figures:
            encoded = base64.b64encode((out / "figures" / f"{stem}.png").read_bytes()).decode()
            parts.append(f"<img alt='{esc(stem)}' src='data:image/png;base64,{encoded}'>")
        parts.append("<ul>")
        for c in record.claims:
            note = f" — {esc(c['note'])}" if c["note"] else ""
            parts.append(f"<li>{verdict(c['held'])} <code>{esc(c['id'])}</code>: {esc(c['statement'])}"
                         f"<br><small>{esc(format_numbers(c['numbers']))}{note}</small></li>")
        parts.append("</ul>")
        if record.data:
            parts.append("<p>Data: " + ", ".join(f"<a href='data/{esc(d)}'>{esc(d)}</a>"
                                                  for d in record.data) + "</p>")
    parts.append("</body></html>")
    write_atomic(out / "report.html", "\n".join(parts))


def write_report(out: Path, records: Sequence[Record], *, scale: str, version: str) -> None:
    """All three report files, from the records of one ``reproduce`` call."""
    write_claims_json(out, records)
    write_markdown(out, records, scale=scale, version=version)
    write_html(out, records, scale=scale, version=version)
