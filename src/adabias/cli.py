"""``adabias`` command line: ``adabias list`` and ``adabias reproduce`` (DESIGN §4.2)."""

from __future__ import annotations

import argparse
import sys
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
    listing.add_argument("--full", action="store_true", help="show the --full settings")
    reproduce = commands.add_parser(
        "reproduce", help="run the experiments and write the report",
        description="Run the experiments (all, or --only) and write report.md, report.html, "
                    "claims.json, figures/ and data/ into --out. Finished experiments are "
                    "cached, so an interrupted run resumes.")
    reproduce.add_argument("--full", action="store_true",
                           help="the larger settings of the papers (meant for a GPU; slow on CPU)")
    reproduce.add_argument("--only", nargs="+", metavar="ID",
                           help="experiment ids or prefixes (e.g. cks.fig1, lwl)")
    reproduce.add_argument("--out", type=Path, default=Path("adabias-report"),
                           help="output directory (default: ./adabias-report)")
    reproduce.add_argument("--force", action="store_true", help="ignore cached results")
    reproduce.add_argument("--no-progress", action="store_true", help="no progress output")
    return parser


def _load_registry():
    import jax

    jax.config.update("jax_enable_x64", True)
    from adabias.experiments import base

    return base


def _list(args) -> int:
    base = _load_registry()
    for exp in base.REGISTRY.values():
        print(f"{exp.id}  ({exp.paper}) {exp.title}")
        settings = exp.settings(args.full)
        print("    settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
        for claim_id, statement in exp.claims.items():
            print(f"    - {claim_id}: {statement}")
    return 0


def _reproduce(args) -> int:
    base = _load_registry()
    from adabias import __version__
    from adabias.report import run_experiments, write_report

    try:
        experiments = base.select(args.only)
    except KeyError as error:
        print(f"adabias: {error.args[0]}", file=sys.stderr)
        return 2
    progress = not args.no_progress
    records = run_experiments(experiments, args.out, full=args.full, force=args.force,
                              progress=progress, version=__version__)
    write_report(args.out, records, full=args.full, version=__version__)
    held = sum(c["held"] for r in records for c in r.claims)
    total = sum(len(r.claims) for r in records)
    failed = [r for r in records if r.status == "failed"]
    print(f"{held}/{total} claims held; report: {args.out / 'report.html'}")
    for record in failed:
        print(f"adabias: experiment {record.experiment.id} failed: {record.error} "
              f"(see {args.out / 'logs' / (record.experiment.id + '.log')})", file=sys.stderr)
    return 1 if failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _list(args)
    return _reproduce(args)


if __name__ == "__main__":
    sys.exit(main())
