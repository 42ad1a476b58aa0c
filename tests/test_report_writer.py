"""The report writer: grouping by paper and kind, summary counts, headline numbers, escaping,
the full record behind every claim, and numbers written as a person writes them."""

import dataclasses
import html
import json
import re

import numpy as np
import pytest

from adabias import cli
from adabias.experiments import base
from adabias.report import writer
from adabias.report.cache import Record


def _experiment(id_: str, paper: str) -> base.Experiment:
    return base.Experiment(
        id=id_, paper=paper, title=f"title of {id_}", tiers=base.Tiers(quick=(), medium=(), full=()),
        claims={f"{id_}.c": base.ClaimSpec("s", "paper", "t")},
        measure=None, decide=None, plot=None, tables=None)


def _claim(id_: str, paper: str, kind: str, held: bool, note: str = "", numbers=None,
           statement: str = "a statement", test: str = "a test") -> dict:
    return {"id": id_, "statement": statement, "held": held, "note": note, "kind": kind,
            "test": test, "numbers": numbers or {"x": 1.0}, "settings": {"h": 0.01},
            "experiment": id_.rsplit(".", 1)[0], "paper": paper}


def _record(id_: str, paper: str, claims: list, *, status: str = "ran", figures=()) -> Record:
    return Record(_experiment(id_, paper), status, 1.5, claims, ["a note"], list(figures), [],
                  {"h": 0.01, "eps": 9.999999999999999e-06}, error="Boom: it failed" if status == "failed" else "")


def _random_records(seed: int) -> list[Record]:
    """Experiments of three papers (given out of order) with claims of both kinds, held,
    undecided or not held at random."""
    rng = np.random.default_rng(seed)
    records = []
    for index, paper in enumerate(["beyond", "LWL", "CKS", "LWL", "CKS"]):
        id_ = f"{paper.lower()}.e{index}"
        claims = []
        for j in range(int(rng.integers(1, 6))):
            kind = ["paper", "theory"][int(rng.integers(2))]
            outcome = int(rng.integers(3))
            note = ["", "undecided: spread 3 > effect 1", "contradicted: 7 of 8 the other way"][outcome]
            claims.append(_claim(f"{id_}.c{j}", paper, kind, outcome == 0, note))
        records.append(_record(id_, paper, claims))
    return records


def test_groups_follow_the_papers_then_the_kinds():
    records = _random_records(0)
    groups = writer.paper_groups(records)
    assert [g.paper for g in groups] == ["CKS", "LWL", "beyond"]
    for group in groups:
        assert all(r.experiment.paper == group.paper for r in group.records)
        assert list(group.claims_by_kind) == [k for k in ("paper", "theory")
                                              if k in group.claims_by_kind]
        for kind, claims in group.claims_by_kind.items():
            assert claims and all(c["kind"] == kind and c["paper"] == group.paper for c in claims)
    every = [c["id"] for g in groups for claims in g.claims_by_kind.values() for c in claims]
    assert sorted(every) == sorted(c["id"] for r in records for c in r.claims)


@pytest.mark.parametrize("seed", range(5))
def test_summary_lines_count_like_an_independent_tally(seed):
    records = _random_records(seed)
    tally = {}
    for record in records:
        for c in record.claims:
            entry = tally.setdefault((record.experiment.paper, c["kind"]), [0, 0, 0])
            entry[0] += 1
            entry[1] += c["note"] == ""
            entry[2] += c["note"].startswith("undecided")
    lines = [line for g in writer.paper_groups(records) for line in g.summary_lines()]
    assert len(lines) == len(tally)
    for line in lines:
        match = re.fullmatch(r"(\w+) — (\w+) claims: (\d+) of (\d+) held(?:; (\d+) undecided)?", line)
        assert match, line
        paper, kind, held, total, undecided = match.groups()
        assert [int(total), int(held), int(undecided or 0)] == tally[(paper, kind)]
        assert (undecided is None) == (tally[(paper, kind)][2] == 0)


def test_verdicts():
    assert writer.verdict({"held": True, "note": "undecided: but held"}) == "held"
    assert writer.verdict({"held": False, "note": "undecided: spread too large"}) == "undecided"
    assert writer.verdict({"held": False, "note": "contradicted: 8 of 8"}) == "not held"
    assert writer.count_line([]) == "0 of 0 held"


def test_headline_takes_the_first_three_scalars_then_mapping_entries():
    numbers = {"curve": [1.0, 2.0], "fitted_order": 1.98, "ok": True, "per": {"a": 5.0},
               "nan": None, "later": 3.0}
    assert writer.headline(numbers) == [("fitted_order", 1.98), ("ok", True), ("nan", None)]
    nested = {"eps": 1e-12, "relative_error": {"b0.95": 2e-13, "b0.9": {"deep": 4.0, "x": 1}},
              "list": [1.0]}
    assert writer.headline(nested) == [("eps", 1e-12), ("relative_error.b0.95", 2e-13),
                                       ("relative_error.b0.9.deep", 4.0)]
    # lists only complete a headline short of scalars, short ones, in order
    assert writer.headline({"only": [1, 2], "text": "held", "long": list(range(9)),
                            "mixed": [1, "a"], "x": 0.5, "last": [3.0]}) == [
        ("x", 0.5), ("only", [1, 2]), ("last", [3.0])]
    assert writer.headline({"text": "held", "empty": []}) == []


@pytest.mark.parametrize("value,text", [
    (9.999999999999999e-06, "1e-05"), (0.1 + 0.2, "0.3"), (1.8762, "1.88"), (1e-8, "1e-08"),
    (1000.0, "1000"), (12345.6, "12300"), (1e8, "1e+08"), (2.0, "2"), (float("nan"), "nan"),
    (-float("inf"), "-inf"), (7, "7"), (True, "True"), (None, "None"), ((0.9, 0.95), "(0.9, 0.95)"),
    ((0.5,), "(0.5,)"), ([1e-5, 2.5], "[1e-05, 2.5]"), ({"a": 0.30000000000000004}, "{a: 0.3}"),
    (np.float32(0.1), "0.1"), (np.arange(3), "[0, 1, 2]"),
])
def test_numbers_read_as_a_person_writes_them(value, text):
    assert writer.format_number(value) == text


def test_exact_numbers_and_long_sequences_and_nested_settings():
    assert writer.format_number(1.8762, None) == "1.8762"
    assert writer.format_number(123456789.0, None) == "1.23456789e+08"
    long = tuple(float(x) for x in np.logspace(-12, 8, 21))
    assert writer.format_number(long, None, max_items=5) == "(1e-12, 1e-11, 1e-10, …, 1e+08 (21 values))"

    @dataclasses.dataclass(frozen=True)
    class Inner:
        lr: float = 9.999999999999999e-06
        sizes: tuple = (8, 16)

    @dataclasses.dataclass(frozen=True)
    class Outer:
        model: Inner = Inner()
        beta: float = 0.9

    assert writer.format_number(Outer(), None) == "Outer(model=Inner(lr=1e-05, sizes=(8, 16)), beta=0.9)"
    lines = cli.settings_lines({"beta": 0.9, "eps": 9.999999999999999e-06, "model": Inner()})
    assert lines == ["    settings: beta=0.9, eps=1e-05", "    model: Inner(lr=1e-05, sizes=(8, 16))"]


def _write(tmp_path, records):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "cks.e2.plot.png").write_bytes(b"\x89PNG fake")
    writer.write_report(tmp_path, records, scale="quick", version="0.0")
    return (tmp_path / "report.html").read_text(), (tmp_path / "report.md").read_text()


def test_html_escapes_text_and_puts_the_full_record_behind_each_claim(tmp_path):
    hostile = "<script>alert('x')</script> & ‖∇E‖₁"
    claims_a = [_claim("cks.e2.a", "CKS", "paper", False, note="contradicted: <b>7</b> of 8",
                       numbers={"p_value": 0.004, "curve": [1.0, 2.0], "effect": 9.999999999999999e-06,
                                "seeds": 8, "extra": 4.0},
                       statement=hostile, test="sign test <over> 8 seeds"),
                _claim("cks.e2.b", "CKS", "theory", True)]
    records = [_record("cks.e2", "CKS", claims_a, figures=["cks.e2.plot"]),
               _record("lwl.e3", "LWL", [_claim("lwl.e3.a", "LWL", "paper", False,
                                                note="undecided: spread 3 > effect 1 < 9")])]
    page, markdown = _write(tmp_path, records)
    assert "<script>" not in page and html.escape(hostile) in page
    assert "<b>7</b>" not in page and html.escape("contradicted: <b>7</b> of 8") in page
    # one <details> per claim, with its test and every number
    details = re.findall(r"<details>.*?</details>", page, flags=re.S)
    assert len(details) == 3
    first = next(d for d in details if "sign test" in d)
    assert html.escape("sign test <over> 8 seeds") in first
    for key in ("p_value", "curve", "effect", "seeds", "extra"):
        assert f"<code>{key}</code>" in first
    # headline: the first three scalars, as a person writes them
    cell = re.search(r"id='claim-cks.e2.a'.*?<td class='numbers'>(.*?)</td>", page, re.S)
    assert cell.group(1).replace("<wbr>", "") == "p_value = 0.004<br>effect = 1e-05<br>seeds = 8"
    # every claim that did not hold shows why, outside the details
    assert page.count("<b>Why:</b>") == 2 and "undecided: spread 3 &gt; effect 1" in page
    assert "data:image/png;base64," in page
    # order: CKS before LWL, paper claims before theory claims, the time table last
    positions = [page.index(s) for s in ("CKS — paper claims: 0 of 1 held",
                                         "CKS — theory claims: 1 of 1 held",
                                         "LWL — paper claims: 0 of 1 held; 1 undecided",
                                         "Time per experiment")]
    assert positions == sorted(positions)
    # claims.json keeps every field
    saved = json.loads((tmp_path / "claims.json").read_text())
    assert saved[0]["test"] == "sign test <over> 8 seeds" and saved[0]["numbers"]["curve"] == [1.0, 2.0]
    # the Markdown: grouped the same way, the reasons shown, readable as plain text
    assert "### CKS — paper claims: 0 of 1 held" in markdown
    assert "Why: contradicted: &lt;b>7&lt;/b> of 8" in markdown
    assert "Why: undecided: spread 3 > effect 1 < 9" in markdown
    assert "&lt;script>" in markdown and "<script>" not in markdown
    assert "<over>" not in markdown and "&lt;over> 8 seeds" in markdown
    assert "9.999999999999999e-06" not in markdown and "eps = 1e-05" in markdown
    assert max(len(line) for line in markdown.splitlines() if not line.startswith(("- ", "  "))) < 400


def test_a_failed_experiment_is_named_in_its_paper_group(tmp_path):
    records = [_record("cks.e2", "CKS", [], status="failed"),
               _record("lwl.e3", "LWL", [_claim("lwl.e3.a", "LWL", "theory", True)])]
    page, markdown = _write(tmp_path, records)
    assert "Failed, no claim decided: cks.e2." in page and "Boom: it failed" in page
    assert "**Failed, no claim decided: cks.e2.**" in markdown
    assert writer.summary(records) == "1 of 1 claims held; 1 of 2 experiments failed: cks.e2."
