"""Kill ``adabias reproduce`` at random moments, rerun it, and check that nothing it trusts is wrong.

One uninterrupted run is the reference. Then, ``--kills`` times: start ``reproduce`` into a
work folder -- alternately an empty one (the rerun resumes from what the killed run finished)
and the finished one with ``--force`` (the killed run overwrites files a later run may trust) --
send SIGKILL or SIGINT (two of each in turn) at a random moment (uniform between half the time
of a fully cached run, i.e. mostly after the imports, and the reference's time), rerun the same
command without ``--force`` to completion, and check the work folder against the reference:

- ``claims.json`` and every data file are byte for byte those of the reference run;
- every figure is a valid image: PNG signature and ``matplotlib.image.imread`` (PNG), XML (SVG);
- a SIGINT ends with exit code 130, "interrupted — rerun the same command to resume" and no
  traceback; no temporary file is left after the rerun.

Usage (from the repository root)::

    python tools/kill_and_resume.py                       # 10 kills, cks.fig1 cks.table1
    python tools/kill_and_resume.py --kills 3 --only cks.fig1 --seed 1

Prints one line per kill and a summary; exits 1 when a check failed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple
from xml.etree import ElementTree

SOURCE = Path(__file__).resolve().parents[1] / "src"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Run(NamedTuple):
    code: int
    seconds: float
    out: str
    err: str


def _command(out: Path, only: list, scale: str, *, force: bool) -> list:
    return ([sys.executable, "-m", "adabias.cli", "reproduce", "--only", *only, "--out", str(out),
             "--scale", scale] + (["--force"] if force else []))


def _environment() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE), env.get("PYTHONPATH")]))
    return env


def run(command: list, *, kill_at: float = float("inf"), signal_: int = signal.SIGKILL,
        grace: float = 120.0) -> Run:
    """Run ``command``; at ``kill_at`` seconds, if it still runs, send ``signal_``."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=_environment())
        try:
            process.wait(timeout=None if kill_at == float("inf") else kill_at)
        except subprocess.TimeoutExpired:
            process.send_signal(signal_)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:  # did not stop on SIGINT: counted as a failure
                process.kill()
                process.wait()
        out.seek(0), err.seek(0)
        return Run(process.returncode, time.perf_counter() - start, out.read(), err.read())


def figure_problems(folder: Path) -> list:
    """The figures of ``folder`` that are not valid images, with why."""
    from matplotlib.image import imread

    problems = []
    for path in sorted((folder / "figures").glob("*.png")):
        if path.read_bytes()[:8] != PNG_SIGNATURE:
            problems.append(f"{path.name}: no PNG signature")
            continue
        try:
            if imread(path).size == 0:
                problems.append(f"{path.name}: empty image")
        except Exception as error:  # any decoding error is the finding
            problems.append(f"{path.name}: {type(error).__name__}: {error}")
    for path in sorted((folder / "figures").glob("*.svg")):
        try:
            ElementTree.parse(path)
        except ElementTree.ParseError as error:
            problems.append(f"{path.name}: {error}")
    return problems


def differences(reference: Path, work: Path) -> list:
    """claims.json and the data files of ``work`` that differ from those of ``reference``."""
    pairs = [(reference / "claims.json", work / "claims.json")]
    names = {p.name for p in (reference / "data").iterdir()} | {p.name for p in (work / "data").iterdir()}
    pairs += [(reference / "data" / name, work / "data" / name) for name in sorted(names)]
    return [b.name for a, b in pairs
            if not a.exists() or not b.exists() or a.read_bytes() != b.read_bytes()]


def _interrupt_problems(attempt: Run, signal_: int) -> list:
    if signal_ != signal.SIGINT or attempt.code == 0:
        return []
    problems = [] if attempt.code == 130 else [f"exit code {attempt.code}, not 130"]
    if "interrupted — rerun the same command to resume" not in attempt.err:
        problems.append("no 'interrupted' message")
    if "Traceback" in attempt.err:
        problems.append("a traceback: " + attempt.err.strip().splitlines()[-1])
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=["cks.fig1", "cks.table1"], metavar="ID")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--work", type=Path, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="adabias-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    reference, resumed = work / "reference", work / "resumed"
    shutil.rmtree(resumed, ignore_errors=True)

    first = run(_command(reference, args.only, args.scale, force=True))
    if first.code != 0:
        print(f"the uninterrupted run failed (exit {first.code}):\n{first.err}")
        return 1
    startup = run(_command(reference, args.only, args.scale, force=False)).seconds  # all cached
    print(f"reference: {' '.join(args.only)} in {first.seconds:.1f} s ({startup:.1f} s cached), "
          f"{len(list((reference / 'data').iterdir()))} data files, "
          f"{len(list((reference / 'figures').glob('*.png')))} figures")
    failures, tally = 0, {"SIGKILL": 0, "SIGINT": 0, "finished first": 0, "recomputed": 0}
    for index in range(1, args.kills + 1):
        signal_ = signal.SIGKILL if index % 4 in (1, 2) else signal.SIGINT
        name = signal.Signals(signal_).name
        moment = rng.uniform(startup / 2, first.seconds)  # mostly after the imports
        force = index % 2 == 0
        if not force:
            shutil.rmtree(resumed, ignore_errors=True)
        attempt = run(_command(resumed, args.only, args.scale, force=force), kill_at=moment,
                      signal_=signal_)
        tally[name] += 1
        if attempt.code == 0:
            tally["finished first"] += 1
        rerun = run(_command(resumed, args.only, args.scale, force=False))
        reasons = [line.strip() for line in rerun.out.splitlines() if "recomputing" in line]
        tally["recomputed"] += len(reasons)
        cached = sum("cached (computed" in line for line in rerun.out.splitlines())
        ran = sum(line.startswith("    ran,") for line in rerun.out.splitlines())
        problems = _interrupt_problems(attempt, signal_)
        problems += [] if rerun.code == 0 else [f"rerun exit {rerun.code}: {rerun.err.strip()}"]
        if rerun.code == 0:
            problems += [f"{n} differs" for n in differences(reference, resumed)]
        problems += figure_problems(resumed)
        problems += [f"left behind: {p.name}" for p in resumed.rglob("*.partial")]
        failures += bool(problems)
        ended = "finished before the signal" if attempt.code == 0 else f"exit {attempt.code}"
        print(f"kill {index:2d}: {name:7s} at {moment:5.2f} s of a {'--force' if force else 'fresh'} "
              f"run ({ended}); rerun: {cached} cached, {ran} ran"
              + "".join(f"\n    {reason}" for reason in reasons)
              + (f"\n    PROBLEM: {'; '.join(problems)}" if problems else
                 "; claims.json and data identical, figures valid"))
    print(f"summary: {args.kills} kills ({tally['SIGKILL']} SIGKILL, {tally['SIGINT']} SIGINT, "
          f"{tally['finished first']} runs finished before the signal); "
          f"{args.kills - failures}/{args.kills} reruns identical to the uninterrupted run with "
          f"valid figures; {tally['recomputed']} cached results rejected and recomputed")
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
