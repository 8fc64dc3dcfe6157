"""Command line: ``evalkit generate | validate | dictionary | demo | batch | verify``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _cmd_generate(a: argparse.Namespace) -> int:
    from . import synth

    counties = a.counties.split(",") if a.counties else None
    out = synth.generate(a.profile, seed=a.seed, out=a.out, scale=a.scale, counties=counties,
                         workers=a.workers, field_survey=not a.no_field_survey,
                         policy_files=tuple(a.policy or ()), progress=not a.quiet)
    print(out)
    return 0


def _cmd_validate(a: argparse.Namespace) -> int:
    from . import io

    try:
        ds = io.load_dataset(a.path, validate=True)
    except io.EvalkitInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(a.out) if a.out else io.default_quarantine_dir(a.path)
    if ds.report.n_quarantined_total or ds.report.exit_code() == 2:
        io.write_quarantine(ds, out)
    if sys.stdout.isatty():
        ds.report.render()
    else:  # logs and CI: plain text keeps every column readable at any width
        print(ds.report.to_text())
    code = ds.report.exit_code()
    if code == 1:
        print(f"quarantined rows written to {out}")
    return code


def _cmd_dictionary(a: argparse.Namespace) -> int:
    from .dictionary import render_markdown

    md = render_markdown()
    if a.write:
        Path(a.write).write_text(md, encoding="utf-8")
        print(a.write)
    else:
        print(md)
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    from . import demo

    return demo.run_demo(out=a.out, data=a.data, workers=a.workers, seed=a.seed)


def _cmd_batch(a: argparse.Namespace) -> int:
    from . import batch

    return batch.cli_batch(a)


def _cmd_verify(a: argparse.Namespace) -> int:
    from . import batch

    return batch.cli_verify(a)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evalkit", description="Poverty-exit assessment and return-to-poverty risk.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="cmd")

    g = sub.add_parser("generate", help="write a synthetic province in the canonical model (Parquet)")
    g.add_argument("--profile", default="demo", choices=["demo", "shaanxi", "seeds"])
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default=None, help="output directory (default data/<profile>)")
    g.add_argument("--scale", type=float, default=None, help="population scale factor")
    g.add_argument("--counties", default=None, help="comma-separated county codes of the profile")
    g.add_argument("--workers", type=int, default=1)
    g.add_argument("--policy", action="append", help="policy override TOML (repeatable)")
    g.add_argument("--no-field-survey", action="store_true", help="skip drawing the evaluators' samples")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=_cmd_generate)

    v = sub.add_parser("validate", help="validate a dataset directory or file; quarantine invalid rows")
    v.add_argument("path")
    v.add_argument("--out", default=None, help="where to write the quarantine (default beside the input)")
    v.set_defaults(func=_cmd_validate)

    d = sub.add_parser("dictionary", help="print the bilingual data dictionary (Markdown)")
    d.add_argument("--write", default=None, help="write it to this file (data/README.md)")
    d.set_defaults(func=_cmd_dictionary)

    m = sub.add_parser("demo", help="the main job: generate the demo province, run every report")
    m.add_argument("--out", default="reports/demo")
    m.add_argument("--data", default="data/demo")
    m.add_argument("--workers", type=int, default=2)
    m.add_argument("--seed", type=int, default=20201)
    m.set_defaults(func=_cmd_demo)

    b = sub.add_parser("batch", help="run a parameterized notebook once per county (papermill)")
    b.add_argument("notebook")
    b.add_argument("--data", required=True)
    b.add_argument("--counties", default="all",
                   help="'all', 'poverty' (poverty counties with a planned exit year) or CODE,CODE")
    b.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--out", required=True)
    b.add_argument("--resume", action="store_true")
    b.add_argument("--scheduler", default=None, help="Dask distributed scheduler address")
    b.add_argument("--timeout", type=int, default=1800, help="seconds per notebook cell")
    b.set_defaults(func=_cmd_batch)

    f = sub.add_parser("verify", help="re-execute a run from its manifest and compare every result")
    f.add_argument("run_dir")
    f.add_argument("--workers", type=int, default=2)
    f.set_defaults(func=_cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``evalkit`` console script."""
    p = build_parser()
    a = p.parse_args(argv)
    if a.version:
        from . import __version__

        print(__version__)
        return 0
    if not getattr(a, "func", None):
        p.print_help()
        return 0
    return int(a.func(a) or 0)


if __name__ == "__main__":
    sys.exit(main())
