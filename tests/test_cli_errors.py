"""The command line on bad input and faults: a bad --out, Ctrl-C, failing experiments, a second
run into the same folder, a claims.json that is not one. One line naming what is wrong, an exit
code, never a traceback."""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from adabias import cli  # noqa: E402
from adabias.experiments import base  # noqa: E402
from adabias.report import files, runner  # noqa: E402


def _fine(settings, context):
    return 1.0


def toy(id_, measure=_fine, *, plot=None, decide=None):
    """A fast experiment deciding one claim; ``measure``/``plot``/``decide`` may be replaced."""
    def default_plot(settings, x):
        figure, ax = plt.subplots(figsize=(2, 1.5))
        ax.plot([0, x])
        return {"line": figure}

    return base.Experiment(
        id=id_, paper="CKS", title=id_, tiers=base.Tiers((), (), ()),
        claims={f"{id_}.a": base.ClaimSpec("holds", "theory", "always true")}, measure=measure,
        decide=decide or (lambda settings, x: base.Decision([base.Verdict(f"{id_}.a", True, {"x": x})])),
        plot=plot or default_plot, tables=lambda settings, x: {"values": {"x": [x]}})


@pytest.fixture
def registry(monkeypatch):
    """Register toy experiments for the CLI to find (removed after the test)."""
    def add(*experiments):
        for experiment in experiments:
            monkeypatch.setitem(base.REGISTRY, experiment.id, experiment)
    return add


def reproduce(out, *ids):
    return cli.main(["reproduce", "--only", *ids, "--out", str(out), "--no-progress"])


def _never_run(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("experiments ran although --out is unusable")
    monkeypatch.setattr(runner, "run_one", fail)


def _one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_out_that_is_a_regular_file(tmp_path, capsys, monkeypatch):
    _never_run(monkeypatch)
    out = tmp_path / "report"
    out.write_text("not a folder")
    assert reproduce(out, "cks.fig1") == 2
    assert f"--out {out}: {out} is a file, not a directory" in _one_line_error(capsys)
    assert out.read_text() == "not a folder"


def test_out_under_a_regular_file(tmp_path, capsys, monkeypatch):
    _never_run(monkeypatch)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert reproduce(blocker / "sub" / "report", "cks.fig1") == 2
    assert f"{blocker} is a file, not a directory" in _one_line_error(capsys)


@pytest.mark.parametrize("out", ["/proc/adabias-report", "/proc/self/status/report"])
def test_out_that_cannot_be_created(capsys, monkeypatch, out):
    _never_run(monkeypatch)
    assert reproduce(out, "cks.fig1") == 2
    assert f"--out {out}" in _one_line_error(capsys)


def test_a_folder_of_out_that_is_a_regular_file(tmp_path, capsys, monkeypatch):
    _never_run(monkeypatch)
    (tmp_path / "figures").write_text("")
    assert reproduce(tmp_path, "cks.fig1") == 2
    assert f"{tmp_path / 'figures'} is a file, not a directory" in _one_line_error(capsys)


def test_out_that_is_not_writable(tmp_path, capsys, monkeypatch):
    _never_run(monkeypatch)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)  # as root, chmod would not refuse
    assert reproduce(tmp_path / "report", "cks.fig1") == 2
    assert "cannot create or write to it: Permission denied" in _one_line_error(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to a read-only folder")
def test_out_in_a_read_only_folder(tmp_path, capsys, monkeypatch):
    _never_run(monkeypatch)
    tmp_path.chmod(0o500)
    try:
        assert reproduce(tmp_path / "report", "cks.fig1") == 2
    finally:
        tmp_path.chmod(0o700)
    assert "Permission denied" in _one_line_error(capsys)


def test_a_second_run_into_the_same_out_is_refused(tmp_path, capsys, monkeypatch, registry):
    registry(toy("test.one"))
    files.prepare_output(tmp_path)
    with files.output_lock(tmp_path):
        assert reproduce(tmp_path, "test.one") == 2
    assert "is in use by another adabias reproduce" in _one_line_error(capsys)
    assert reproduce(tmp_path, "test.one") == 0  # the lock went with the first run


def test_ctrl_c_exits_130_and_a_rerun_resumes(tmp_path, capsys, registry):
    calls = []

    def interrupted(settings, context):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return 2.0

    registry(toy("test.first"), toy("test.second", interrupted))
    assert reproduce(tmp_path, "test.first", "test.second") == 130
    err = capsys.readouterr().err
    assert "interrupted — rerun the same command to resume" in err and "Traceback" not in err
    assert (tmp_path / "results/test.first.json").exists()
    assert not (tmp_path / "results/test.second.json").exists()
    assert not list(tmp_path.rglob("*.partial"))
    records = runner.run_experiments([base.REGISTRY["test.first"], base.REGISTRY["test.second"]],
                                     tmp_path, progress=False, version=_version())
    assert [r.status for r in records] == ["cached", "ran"]


def _version():
    from adabias import __version__
    return __version__


def test_ctrl_c_while_the_report_is_written_keeps_the_old_report(tmp_path, capsys, monkeypatch,
                                                                  registry):
    registry(toy("test.one"))
    assert reproduce(tmp_path, "test.one") == 0
    old = (tmp_path / "report.html").read_bytes()
    from adabias.report import writer

    def interrupted(path, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "write_atomic", interrupted)
    assert reproduce(tmp_path, "test.one") == 130
    assert (tmp_path / "report.html").read_bytes() == old
    assert not list(tmp_path.rglob("*.partial"))


def test_ctrl_c_in_list_and_compare_exits_130(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli._COMMANDS, "list", interrupted)
    assert cli.main(["list"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "resume" not in err


def _raise(error):
    def fail(*args):
        raise error
    return fail


@pytest.mark.parametrize("broken,message", [
    (toy("test.broken", _raise(FloatingPointError("loss became NaN at step 17"))),
     "FloatingPointError: loss became NaN at step 17"),
    (toy("test.broken", _raise(AssertionError())), "AssertionError (raised at "),
    (toy("test.broken", plot=_raise(ValueError("bad axis"))), "ValueError: bad axis"),
    (toy("test.broken", decide=lambda s, x: base.Decision([])), "RuntimeError: test.broken: claims not decided ['test.broken.a']"),
    (toy("test.broken", plot=lambda s, x: {"line": "not a figure"}), "AttributeError"),
])
def test_a_failing_experiment_is_named_with_its_reason_and_the_rest_still_run(
        tmp_path, capsys, registry, broken, message):
    registry(broken, toy("test.fine"))
    assert reproduce(tmp_path, "test.broken", "test.fine") == 1
    captured = capsys.readouterr()
    assert "1 of 1 claims held; 1 of 2 experiments failed: test.broken." in captured.out
    assert f"experiment test.broken failed: {message}" in captured.err
    assert "Traceback" not in captured.err
    assert "Traceback" in (tmp_path / "logs/test.broken.log").read_text()
    assert [c["id"] for c in json.loads((tmp_path / "claims.json").read_text())] == ["test.fine.a"]
    report = (tmp_path / "report.md").read_text()
    assert message in report and "1 of 2 experiments failed: test.broken" in report


def test_when_every_experiment_fails_no_claim_is_decided(tmp_path, capsys, registry):
    registry(toy("test.broken", _raise(RuntimeError("diverged"))))
    assert reproduce(tmp_path, "test.broken") == 1
    out = capsys.readouterr().out
    assert "No claim decided: 1 of 1 experiment failed: test.broken." in out and "0/0" not in out


def test_a_report_that_cannot_be_written_is_one_line(tmp_path, capsys, registry):
    registry(toy("test.one"))
    (tmp_path / "report.md").mkdir()
    assert reproduce(tmp_path, "test.one") == 1
    assert f"cannot write the report into {tmp_path}" in _one_line_error(capsys)


@pytest.mark.parametrize("content,message", [
    (None, "cannot read"),
    (b"", "is not JSON"),
    (b"[{\"id\": ", "is not JSON"),
    (b"\xff\xfe\x00", "is not JSON"),
    (b"{\"id\": \"a\"}", "is not a claims.json file"),
    (b"[{\"held\": true}]", "is not a claims.json file"),
    (b"[1, 2]", "is not a claims.json file"),
])
def test_compare_with_a_file_that_is_not_a_claims_json(tmp_path, capsys, content, message):
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"id": "a", "held": True, "numbers": {}}]))
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_bytes(content)
    for old, new in [(good, bad), (bad, good)]:
        assert cli.main(["compare", str(old), str(new)]) == 2
        err = _one_line_error(capsys)
        assert str(bad) in err and message in err
    assert cli.main(["compare", str(good), str(tmp_path)]) == 2
    assert "cannot read" in _one_line_error(capsys)


@pytest.mark.parametrize("out,message", [("", "an empty path is not a folder"),
                                         ("  ", "an empty path is not a folder"),
                                         ("/dev/null", "/dev/null is not a directory")])
def test_out_that_is_empty_or_a_device(capsys, monkeypatch, out, message):
    _never_run(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        code = reproduce(out, "cks.fig1")
        raise SystemExit(code)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_kill_and_resume_script():
    """tools/kill_and_resume.py with a few kills (a minute or two): reruns match a clean run."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "tools" / "kill_and_resume.py"
    done = subprocess.run([sys.executable, str(script), "--kills", "4", "--only", "cks.fig1"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4/4 reruns identical to the uninterrupted run" in done.stdout
