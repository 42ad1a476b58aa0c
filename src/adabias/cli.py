"""``adabias`` command line: ``adabias list`` and ``adabias reproduce`` (DESIGN §4.2)."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import Optional, Sequence


def _parser() -> argparse.ArgumentParser:
    from adabias import __version__

    parser = argparse.ArgumentParser(
        prog="adabias",
        description="Implicit bias of adaptive optimizers: reproduce the CKS and LWL papers.")
    parser.add_argument("--version", action="version", version=f"adabias {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="print the experiments and their claims")
    _add_scale(listing, "show the settings of this scale tier")
    reproduce = commands.add_parser(
        "reproduce", help="run the experiments and write the report",
        description="Run the experiments (all, or --only) and write report.md, report.html, "
                    "claims.json, figures/ and data/ into --out. Finished experiments are "
                    "cached, so an interrupted run resumes.")
    _add_scale(reproduce, "quick (default: offline, minutes on a laptop CPU), medium (hours at "
                          "most on a CPU, real data) or full (the papers' scale, meant for a GPU)")
    reproduce.add_argument("--only", nargs="+", metavar="ID",
                           help="experiment ids or prefixes (e.g. cks.fig1, lwl)")
    reproduce.add_argument("--out", type=_folder, default=Path("adabias-report"),
                           help="output directory (default: ./adabias-report)")
    reproduce.add_argument("--force", action="store_true", help="ignore cached results")
    reproduce.add_argument("--no-progress", action="store_true", help="no progress output")
    reproduce.add_argument(
        "--jobs", type=_job_count, default="auto", metavar="N|auto",
        help="worker processes running experiments side by side (default auto: one per core; "
             "1 runs them in this process, in order)")
    reproduce.add_argument(
        "--devices", type=_device_count, default=1, metavar="N|auto",
        help="host devices to spread sweep members over (default 1; auto: every core). "
             "Several devices give the same claims except in the last bits of the MLP "
             "classifier sweeps (CKS Figures 4-6), and no faster quick tier (compilation "
             "dominates it); ignored when XLA_FLAGS is set")
    compare = commands.add_parser(
        "compare", help="compare two claims.json files: verdicts and numbers",
        description="Say which claims differ between two runs: a changed verdict, or a number "
                    "that moved by more than the relative tolerance.")
    compare.add_argument("old", type=Path, help="claims.json of the reference run")
    compare.add_argument("new", type=Path, help="claims.json of the run to check")
    compare.add_argument("--rtol", type=float, default=1e-9,
                         help="relative tolerance on numbers (default 1e-9)")
    compare.add_argument("--loose", nargs=2, action="append", default=[],
                         metavar=("PREFIX", "RTOL"),
                         help="a looser tolerance for claims whose id starts with PREFIX "
                              "(e.g. float32 experiments: --loose cks.fig4 1e-5); repeatable")
    return parser


def _count_of(flag: str):
    """An argparse type for ``flag``: a positive number, or ``auto`` (one per core)."""

    def parse(text: str) -> int:
        if text == "auto":
            return _cores()
        try:
            count = int(text)
        except ValueError:
            count = 0
        if count < 1:
            raise argparse.ArgumentTypeError(f"{flag} takes a positive number or auto, got {text!r}")
        return count

    return parse


_device_count, _job_count = _count_of("--devices"), _count_of("--jobs")


def _cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _expose_host_devices(argv: Sequence[str]) -> None:
    """``reproduce --devices N``: N host devices for JAX (XLA_FLAGS), set before JAX starts.

    Left alone when the user set XLA_FLAGS or when JAX is already imported (then the flag
    could no longer take effect); an invalid value is reported by the full parser.
    """
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--devices", default="1")
    try:
        count = _device_count(early.parse_known_args(list(argv))[0].devices)
    except (argparse.ArgumentTypeError, SystemExit):
        return
    if count > 1 and "XLA_FLAGS" not in os.environ and "jax" not in sys.modules:
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={count}"


def _folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path is not a folder (give one, or leave "
                                         "--out out for ./adabias-report)")
    return Path(text)


def _compare(args) -> int:
    from adabias.report.compare import ClaimsFileError, compare_claims

    loose = {prefix: float(rtol) for prefix, rtol in args.loose}
    try:
        report = compare_claims(args.old, args.new, rtol=args.rtol, rtol_by_prefix=loose)
    except ClaimsFileError as error:
        print(f"adabias: {error}", file=sys.stderr)
        return 2
    for claim_id, lines in report.items():
        print(claim_id)
        for line in lines:
            print(f"    {line}")
    print(f"{len(report)} claim(s) differ" if report else "no claim differs")
    return 1 if report else 0


def _add_scale(parser: argparse.ArgumentParser, help_text: str) -> None:
    from adabias.experiments.base import SCALES

    tier = parser.add_mutually_exclusive_group()
    tier.add_argument("--scale", choices=SCALES, default="quick", help=help_text)
    tier.add_argument("--full", dest="scale", action="store_const", const="full",
                      help="alias of --scale full")


def _load_registry():
    import jax

    jax.config.update("jax_enable_x64", True)
    from adabias.experiments import base

    return base


def settings_lines(settings: dict, *, width: int = 100) -> list[str]:
    """Settings as a person writes them (``report.writer.format_number``: 1e-05, compact
    tuples), wrapped at ``width``: the plain ones on a ``settings:`` line, each nested settings
    dataclass on its own ``name: Type(field=value, …)`` line."""
    import dataclasses

    from adabias.report.writer import format_number

    def wrap(text: str) -> list[str]:
        return textwrap.wrap(text, width=width, initial_indent="    ",
                             subsequent_indent="        ", break_long_words=False,
                             break_on_hyphens=False)

    def nested(value) -> bool:
        return dataclasses.is_dataclass(value) and not isinstance(value, type)

    plain = [f"{k}={format_number(v, None, max_items=8)}" for k, v in settings.items()
             if not nested(v)]
    lines = wrap("settings: " + ", ".join(plain)) if plain else []
    for key, value in settings.items():
        if nested(value):
            lines += wrap(f"{key}: {format_number(value, None, max_items=8)}")
    return lines


def _list(args) -> int:
    base = _load_registry()
    for exp in base.REGISTRY.values():
        print(f"{exp.id}  ({exp.paper}) {exp.title}")
        for line in settings_lines(base.settings_dict(exp.settings_at(args.scale))):
            print(line)
        for claim_id, spec in exp.claims.items():
            print(textwrap.fill(f"- {claim_id} [{spec.kind}]: {spec.statement}", width=100,
                                initial_indent="    ", subsequent_indent="      "))
            print(textwrap.fill(f"test: {spec.test}", width=100, initial_indent="      ",
                                subsequent_indent="        "))
    return 0


def _reproduce(args) -> int:
    from adabias.report.files import OutputError, output_lock, prepare_output, remove_partial_files

    try:
        prepare_output(args.out)  # before any work: a bad --out fails at once
    except OutputError as error:
        print(f"adabias: {error}", file=sys.stderr)
        return 2
    base = _load_registry()
    from adabias import __version__
    from adabias.report import run_experiments, write_report
    from adabias.report.writer import summary

    try:
        experiments = base.select(args.only)
    except KeyError as error:
        print(f"adabias: {error.args[0]}", file=sys.stderr)
        return 2
    try:
        with output_lock(args.out):
            remove_partial_files(args.out)
            records = run_experiments(experiments, args.out, scale=args.scale, force=args.force,
                                      progress=not args.no_progress, version=__version__,
                                      jobs=args.jobs)
            write_report(args.out, records, scale=args.scale, version=__version__)
    except OutputError as error:
        print(f"adabias: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"adabias: cannot write the report into {args.out}: {error}", file=sys.stderr)
        return 1
    print(f"{summary(records)} Report: {args.out / 'report.html'}")
    failed = [r for r in records if r.status == "failed"]
    for record in failed:
        print(f"adabias: experiment {record.experiment.id} failed: {record.error} "
              f"(see {args.out / 'logs' / (record.experiment.id + '.log')})", file=sys.stderr)
    return 1 if failed else 0


_COMMANDS = {"list": _list, "compare": _compare, "reproduce": _reproduce}


def main(argv: Optional[Sequence[str]] = None) -> int:
    _expose_host_devices(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        resume = " — rerun the same command to resume" if args.command == "reproduce" else ""
        print(f"\nadabias: interrupted{resume}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
