"""The report cache: a result is reused only when its key and every checksum agree; every file
is written atomically; anything else is recomputed, saying why, never a traceback."""

import json
import os
import re
import shutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from adabias.experiments import base  # noqa: E402
from adabias.report import cache, files, run_experiments, runner, write_report  # noqa: E402

RUNS = {"count": 0}  # how many times the toy experiment measured (each run draws other numbers)


def toy(id_="test.cache", *, width=1.0, drift=False):
    """A fast experiment with one figure, one CSV and one JSON data file."""

    def measure(settings, context):
        RUNS["count"] += 1
        shift = RUNS["count"] if drift else 0
        return np.linspace(0.0, settings["width"], 5) + shift

    def decide(settings, xs):
        return base.Decision([base.Verdict(f"{id_}.a", bool(xs[-1] > 0), {"last": xs[-1]},
                                           "" if xs[-1] > 0 else "the last point is not positive")])

    def plot(settings, xs):
        figure, ax = plt.subplots(figsize=(2, 1.5))
        ax.plot(xs, xs ** 2)
        return {"curve": figure}

    def tables(settings, xs):
        return {"curve": {"x": xs, "y": xs ** 2}, "meta": {"n": len(xs), "nested": [[1, 2]]}}

    settings = {"width": width}
    return base.Experiment(id=id_, paper="CKS", title="toy", tiers=base.Tiers(settings, settings, settings),
                           claims={f"{id_}.a": base.ClaimSpec("the last point is positive", "theory", "last point > 0")}, measure=measure,
                           decide=decide, plot=plot, tables=tables)


def run(out, experiment=None, *, force=False, version="0.1.0", capsys=None):
    records = run_experiments([experiment or toy()], out, force=force, progress=capsys is not None,
                              version=version)
    printed = capsys.readouterr().out if capsys is not None else ""
    return records[0], printed


def test_second_run_is_cached_and_says_when_it_was_computed(tmp_path, capsys):
    first, _ = run(tmp_path)
    assert first.status == "ran" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", first.computed)
    second, printed = run(tmp_path, capsys=capsys)
    assert second.status == "cached" and second.claims == first.claims
    assert second.computed == first.computed and second.seconds == pytest.approx(first.seconds)
    assert re.search(r"cached \(computed \d{4}-\d\d-\d\d \d\d:\d\d, \d+\.\d s\), 1/1 claims held", printed)
    saved = json.loads((tmp_path / "results/test.cache.json").read_text())
    assert set(saved["files"]) == {"figures/test.cache.curve.png", "figures/test.cache.curve.svg",
                                   "data/test.cache.curve.csv", "data/test.cache.meta.json"}
    for relative, digest in saved["files"].items():
        assert files.sha256_file(tmp_path / relative) == digest
    assert set(saved["key"]) == {"experiment", "settings", "source", "versions"}
    assert set(saved["key"]["versions"]) == {"adabias", "jax", "jaxlib", "optax", "diffrax", "numpy"}
    assert len(saved["sha256"]) == 64 and len(saved["key"]["source"]) == 64


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path):
    path.write_bytes(b"")


def _append(path):
    with path.open("ab") as f:
        f.write(b"\n")


@pytest.mark.parametrize("relative,damage,reason", [
    ("figures/test.cache.curve.png", _empty, "figure test.cache.curve.png changed since it was written"),
    ("figures/test.cache.curve.png", _truncate, "figure test.cache.curve.png changed"),
    ("figures/test.cache.curve.svg", os.unlink, "figure test.cache.curve.svg is missing"),
    ("data/test.cache.curve.csv", _truncate, "data file test.cache.curve.csv changed"),
    ("data/test.cache.curve.csv", _append, "data file test.cache.curve.csv changed"),
    ("data/test.cache.meta.json", os.unlink, "data file test.cache.meta.json is missing"),
])
def test_a_damaged_figure_or_data_file_is_recomputed(tmp_path, capsys, relative, damage, reason):
    run(tmp_path)
    damage(tmp_path / relative)
    record, printed = run(tmp_path, capsys=capsys)
    assert record.status == "ran" and reason in record.why
    assert f"recomputing test.cache: {reason}" in printed
    assert (tmp_path / "logs/test.cache.log").read_text().startswith(f"recomputed: {reason}")
    assert run(tmp_path)[0].status == "cached"


def _edit_json(change):
    def edit(path):
        saved = json.loads(path.read_text())
        change(saved)
        path.write_text(json.dumps(saved))
    return edit


def _resign(change):
    """Change the record and write a matching content checksum (only the shape check is left)."""
    def edit(saved):
        change(saved)
        saved["sha256"] = cache._canonical_sha256({k: v for k, v in saved.items() if k != "sha256"})
    return _edit_json(edit)


def _write(text):
    return lambda path: path.write_bytes(text if isinstance(text, bytes) else text.encode())


@pytest.mark.parametrize("damage,reason", [
    (_edit_json(lambda s: s["claims"][0].update(held=False)), "changed since it was written"),
    (_edit_json(lambda s: s["claims"][0]["numbers"].update(last=2.0)), "changed since it was written"),
    (_edit_json(lambda s: s.update(seconds=0.0)), "changed since it was written"),
    (_edit_json(lambda s: s["files"].update({"data/test.cache.curve.csv": "0" * 64})),
     "changed since it was written"),
    (_edit_json(lambda s: s.pop("sha256")), "no checksum of its content"),
    (_truncate, "is not valid JSON"),
    (_empty, "is not valid JSON"),
    (_write(b"\xff\xfe\x00garbage"), "is not valid JSON"),
    (_write("[1, 2, 3]"), "no checksums"),
    (_write("null"), "no checksums"),
    (_write('{"key": "0123456789abcdef", "claims": [], "figures": [], "data": []}'), "no checksums"),
    (_resign(lambda s: s.pop("claims")), "malformed (field 'claims')"),
    (_resign(lambda s: s["claims"][0].pop("held")), "malformed (a claim lacks a field)"),
    (_resign(lambda s: s["claims"][0].update(held="yes")), "malformed (a claim lacks a field)"),
    (_resign(lambda s: s["claims"].clear()), "malformed (its claims are not the experiment's)"),
    (_resign(lambda s: s["files"].pop("figures/test.cache.curve.svg")), "malformed (its file list)"),
    (_resign(lambda s: s["figures"].append(3)), "malformed"),
    (_resign(lambda s: s.update(key="0123")), "its key is malformed"),
    (_resign(lambda s: s["key"]["settings"].update(width=2.0)), "the settings changed (width)"),
    (_resign(lambda s: s["key"].update(source="0" * 64)), "the adabias source changed"),
    (_resign(lambda s: s["key"]["versions"].update(jax="0.0.1")), "jax changed (0.0.1 -> "),
])
def test_a_damaged_or_edited_results_record_is_recomputed_never_trusted(tmp_path, damage, reason):
    first, _ = run(tmp_path)
    damage(tmp_path / "results/test.cache.json")
    record, _ = run(tmp_path)
    assert record.status == "ran" and reason in record.why, record.why
    assert record.claims == first.claims
    assert run(tmp_path)[0].status == "cached"


def test_a_results_record_that_cannot_be_read_is_recomputed(tmp_path):
    run(tmp_path)
    path = tmp_path / "results/test.cache.json"
    path.unlink()
    path.mkdir()  # a directory where the record should be: reported, no traceback
    record, _ = run(tmp_path)
    assert record.status == "failed" and "cannot read" in record.why
    assert "results/test.cache.json" in record.error


def test_a_record_of_another_experiment_is_not_taken(tmp_path):
    run(tmp_path, toy("test.other"))
    shutil.copy(tmp_path / "results/test.other.json", tmp_path / "results/test.cache.json")
    record, _ = run(tmp_path)
    assert record.status == "ran" and "computed for experiment 'test.other'" in record.why


def test_the_key_holds_settings_versions_and_the_whole_package_source(tmp_path, monkeypatch):
    run(tmp_path)
    assert run(tmp_path, toy(width=2.0))[0].why == "the settings changed (width)"
    assert run(tmp_path, toy(width=2.0), version="0.2.0")[0].why == "adabias changed (0.1.0 -> 0.2.0)"
    real_version = cache.importlib.metadata.version
    monkeypatch.setattr(cache.importlib.metadata, "version",
                        lambda name: "99.0" if name == "optax" else real_version(name))
    assert "optax changed (" in run(tmp_path, toy(width=2.0), version="0.2.0")[0].why
    # editing any shared module (not the experiment's own) invalidates every result
    copy = tmp_path / "package"
    shutil.copytree(cache.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "PACKAGE_ROOT", copy)
    run(tmp_path, toy(width=2.0), version="0.2.0")
    assert run(tmp_path, toy(width=2.0), version="0.2.0")[0].status == "cached"
    with (copy / "engine" / "loop.py").open("a") as f:
        f.write("\n# edited\n")
    record, _ = run(tmp_path, toy(width=2.0), version="0.2.0")
    assert record.status == "ran" and record.why == "the adabias source changed since it was computed"


def test_a_forced_run_stopped_mid_write_is_recomputed_not_trusted(tmp_path, monkeypatch, capsys):
    run(tmp_path, toy(drift=True))
    real_write = runner.write_atomic

    def stop_at_the_data(path, data):
        if path.parent.name == "data":
            raise KeyboardInterrupt  # the new figures are written, the data and record are not
        return real_write(path, data)

    monkeypatch.setattr(runner, "write_atomic", stop_at_the_data)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, toy(drift=True), force=True)
    monkeypatch.setattr(runner, "write_atomic", real_write)
    record, printed = run(tmp_path, toy(drift=True), capsys=capsys)
    assert "recomputing test.cache: figure test.cache.curve.png changed since it was written" in printed
    assert record.status == "ran" and not list(tmp_path.rglob("*.partial"))


def test_write_atomic_leaves_the_old_file_or_the_new_one(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    digest = files.write_atomic(target, "old")
    assert target.read_text() == "old" and digest == files.sha256_bytes(b"old")
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~files._umask())

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(target, "new" * 1000)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError):
        files.write_atomic(tmp_path / "no such folder" / "b.txt", "x")


def test_leftover_partial_files_are_removed_and_never_read(tmp_path):
    run(tmp_path)
    leftovers = [tmp_path / "figures/.test.cache.curve.png.abc123.partial",
                 tmp_path / ".claims.json.x.partial"]
    for path in leftovers:
        path.write_bytes(b"")
    keep = tmp_path / "figures/.hidden"
    keep.write_bytes(b"")
    assert run(tmp_path)[0].status == "cached"
    files.remove_partial_files(tmp_path)
    assert not any(p.exists() for p in leftovers) and keep.exists()


def test_report_files_are_written_atomically(tmp_path, monkeypatch):
    records = run_experiments([toy()], tmp_path, progress=False, version="0.1.0")
    write_report(tmp_path, records, scale="quick", version="0.1.0")
    before = {name: (tmp_path / name).read_bytes() for name in ["claims.json", "report.md", "report.html"]}
    from adabias.report import writer

    real_write = writer.write_atomic

    def stop_at_html(path, data):
        if path.name == "report.html":
            raise KeyboardInterrupt
        return real_write(path, data)

    monkeypatch.setattr(writer, "write_atomic", stop_at_html)
    with pytest.raises(KeyboardInterrupt):
        write_report(tmp_path, records, scale="quick", version="0.1.0")
    assert (tmp_path / "report.html").read_bytes() == before["report.html"]
    assert json.loads((tmp_path / "claims.json").read_text()) == records[0].claims
    assert not list(tmp_path.rglob("*.partial"))
