"""Command line: ``evalkit generate | validate | dictionary | demo | batch | verify | plan``.

Every :class:`~evalkit.errors.EvalkitError` (bad input, parameters, policy or county selection)
and every operating-system error (a directory that cannot be written, a path below a file, a
full disk, permission denied) ends the command with one line on stderr naming the path and the
cause, and exit code 2 (1 stays "a county failed" / "rows quarantined"); a bug keeps its
traceback. A closed pipe (``evalkit validate ... | head -1``) ends quietly with code 141. Every
message printed passes the personal-data masker. ``--lang`` (zh or en, default en) is the
language of what the command prints.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from evalkit import __version__
from evalkit.config import load_policy
from evalkit.dictionary import render_markdown
from evalkit.errors import EvalkitError
from evalkit.text import LANGS, check_lang, label, text

# The commands' own modules (synth, data, runner) are imported inside each command: together they
# pull in scipy, pandera, matplotlib and papermill (seconds), which `--version`, `--help` and
# `dictionary` must not pay for.

__all__ = ["main", "build_parser"]

#: Exit code of a command that could not start (bad input or parameters: nothing ran).
EXIT_USAGE = 2
#: Exit code after Ctrl-C or SIGTERM.
EXIT_INTERRUPTED = 130
#: Exit code when standard output was closed by the reader (128 + SIGPIPE, as a shell reports it).
EXIT_BROKEN_PIPE = 141


def _cmd_generate(a: argparse.Namespace) -> int:
    from evalkit import synth  # heavy: see the note on imports above

    out = synth.generate(a.profile, seed=a.seed, out=a.out, scale=a.scale, counties=a.counties,
                         workers=a.workers, field_survey=not a.no_field_survey, progress=not a.quiet,
                         policy=load_policy(*(a.policy or ())))
    print(out)
    return 0


def _cmd_validate(a: argparse.Namespace) -> int:
    from evalkit.data import default_quarantine_dir, load_dataset, rotate_quarantine  # heavy: see above
    from evalkit.data.discovery import QUARANTINE_SUFFIX, REPORT_FILE
    from evalkit.outputs import write_csv
    from evalkit.privacy import Masker, known_names

    ds = load_dataset(a.path, validate=True, year=a.year)
    out = Path(a.out) if a.out else default_quarantine_dir(a.path)
    rotate_quarantine(out)  # a re-validation replaces the earlier findings (kept in a dated folder)
    # One masker for everything this command shows or writes: ID numbers by content, in any
    # column and in free text, and the names of the members table (valid and quarantined rows).
    names = [t["name"] for t in (ds.tables.get("members"), ds.quarantine.get("members"))
             if t is not None and "name" in t.columns]
    masker = Masker(known_names(*names))
    ds.report.problems = masker.frame(ds.report.problems)
    if ds.report.n_quarantined_total or ds.report.exit_code() == 2:
        out.mkdir(parents=True, exist_ok=True)
        for t, q in ds.quarantine.items():  # each file atomic: a full disk leaves no truncated file
            if len(q):
                write_csv(masker.frame(q), out / f"{t}{QUARANTINE_SUFFIX}")
        write_csv(ds.report.problems, out / REPORT_FILE)
    if sys.stdout.isatty():
        ds.report.render(lang=a.lang)
    else:  # logs and CI: plain text keeps every column readable at any width
        print(masker.text(ds.report.to_text(lang=a.lang)))
    code = ds.report.exit_code()
    if code == 1:
        print(f"quarantined rows written to {out}")
    return code


def _cmd_dictionary(a: argparse.Namespace) -> int:
    md = render_markdown()
    if a.write:
        from evalkit.outputs import atomic_path

        with atomic_path(a.write) as tmp:
            tmp.write_text(md, encoding="utf-8")
        print(a.write)
    else:
        print(md)
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    from evalkit.runner.demo import run_demo  # heavy: see the note on imports above

    seed = {} if a.seed is None else {"seed": a.seed}  # None: the demo's own seed
    code = run_demo(out=a.out, data=a.data, workers=a.workers, lang=a.lang, **seed)
    if a.pdf:
        _print_pdfs(a.out, a.lang)
    return code


def _print_pdfs(out: str, lang: str) -> None:
    from evalkit.runner.pdf import export_pdfs  # heavy: see the note on imports above

    for line in export_pdfs(out, lang):
        print(line)


def _sigterm_as_interrupt() -> None:
    # SIGTERM (a scheduler, `kill`) takes the same clean-up path as Ctrl-C.
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not in the main thread
        signal.signal(signal.SIGTERM, handler)


def _cmd_batch(a: argparse.Namespace) -> int:
    """0 every county (run) succeeded; 1 at least one failed (the printed summary says how many, the
    other counties' outputs are kept); 2 the batch could not start (unknown parameter or county, bad
    value, no dataset, OUT locked: nothing ran); 130 interrupted (Ctrl-C or SIGTERM)."""
    from evalkit.runner import parse_param_args, print_summary, run_batch  # heavy: see above

    _sigterm_as_interrupt()
    params = parse_param_args(a.param)
    if params.get("policy_file"):  # a bad policy file stops the batch before any kernel starts
        load_policy(params["policy_file"])
    try:
        res = run_batch(a.notebook, a.data, counties=a.counties, params=params, workers=a.workers, out=a.out,
                        resume=a.resume, scheduler=a.scheduler, timeout=a.timeout, progress=True,
                        progress_lang=a.lang)
    except KeyboardInterrupt:
        print(label("runner_interrupted", a.lang), file=sys.stderr)
        return EXIT_INTERRUPTED
    print_summary(res, a.lang)
    if a.pdf:
        _print_pdfs(a.out, a.lang)
    return res.exit_code


def _cmd_ledger(a: argparse.Namespace) -> int:
    """0 imported without problems; 1 imported, some rows have problems (listed); 2 not readable."""
    from evalkit.runner.returns import import_ledger, problem_lines, progress_line  # heavy: see above

    led, dest = import_ledger(a.file, a.run, a.lang)
    print(progress_line(led, a.lang))
    for line in problem_lines(led, a.lang):
        print(line)
    print(text("ledger_written", a.lang, path=dest))
    return 1 if len(led.problems) else 0


def _notebook_parameters_help() -> str:
    """The parameters of the bundled notebooks, read from their ``parameters`` cells (JSON only:
    ``--help`` must not import the notebook machinery)."""
    import json
    from importlib.resources import files

    parts = []
    try:
        nbs = sorted(p for p in files("evalkit").joinpath("notebooks").iterdir() if p.name.endswith(".ipynb"))
    except OSError:
        return ""
    for nb in nbs:
        cells = json.loads(nb.read_text(encoding="utf-8")).get("cells", [])
        src = next(("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), "")
        lines = [ln for ln in src.splitlines() if ln and not ln.startswith("#") and "=" in ln.split("#")[0]]
        parts.append(f"notebooks/{nb.name}:\n" + "\n".join(f"  {ln}" for ln in lines))
    return "parameters of the bundled notebooks (--param KEY=VALUE; county_code, data_dir and output_dir are " \
           "set per county by the batch):\n\n" + "\n\n".join(parts)


def _cmd_verify(a: argparse.Namespace) -> int:
    """0 only when every result is identical."""
    from evalkit.runner import verify  # heavy: see the note on imports above

    _sigterm_as_interrupt()
    try:
        res = verify(a.run_dir, workers=a.workers, progress_lang=a.lang)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    for line in res.lines(a.lang):
        print(line)
    return res.exit_code


def _cmd_monitor(a: argparse.Namespace) -> int:
    """0 done; 1 a review ledger had rejected lines (listed); 2 bad input (nothing written)."""
    from evalkit.dictionary import code_label
    from evalkit.errors import ParameterError
    from evalkit.privacy import Masker
    from evalkit.workflows import monthly  # heavy: see the note on imports above

    need = {"import": ("month", "data"), "check": ("month", "out"), "review": ("ledger",)}[a.action]
    missing = [f"--{n}" for n in need if getattr(a, n) is None]
    if missing:
        raise ParameterError(f"evalkit monitor {a.action} needs {', '.join(missing)}")
    policy = load_policy(*(a.policy or ()))
    if a.action == "import":
        run = monthly.run_monthly(a.data, a.month, a.db, policy, key_path=a.key, generate_missing=False)
        key = "mon_already" if run.imported.already else "mon_imported"
        ch = {k.removeprefix("link_"): v for k, v in run.imported.changes.items()}
        print(text(key, a.lang, month=a.month, **ch))
        return 0
    if a.action == "check":
        chk = monthly.check_only(a.db, a.month, policy)
        monthly.write_monthly_outputs(chk, a.out, a.lang, key_path=a.key or monthly.default_key_path(a.db))
        print(text("mon_checked", a.lang, month=a.month, out=a.out))
        return 0
    res = monthly.review_ledger(a.ledger, a.db, a.month)
    if res.already:
        print(label("mon_ledger_already", a.lang))
        return 0
    print(text("mon_reviewed", a.lang, transitions=len(res.applied), visits=res.visits, rejected=len(res.rejected)))
    m = Masker()
    for r in res.rejected.itertuples():
        reason = code_label("review_reject", r.reason, a.lang)
        print(m.text(text("mon_rejected_line", a.lang, row=r.row, case_id=r.case_id, reason=reason)))
    return 1 if len(res.rejected) else 0


def _cmd_plan(a: argparse.Namespace) -> int:
    """Design plan before fieldwork (--data, --county) or the second phase of an assessed county (--second-phase)."""
    from evalkit.errors import ParameterError
    from evalkit.report.plan import plan_lines, second_phase_lines  # heavy: see the note on imports above
    from evalkit.workflows.planning import plan_county, second_phase_for_folder

    policy = load_policy(*(a.policy or ()))
    if a.second_phase:
        folder = Path(a.second_phase)
        _, _, sp = second_phase_for_folder(folder, policy=policy, reps=a.reps, seed=a.seed,
                                           cost_village=a.cost_village, cost_household=a.cost_household)
        lines = second_phase_lines(folder.name, sp, a.lang)
    else:
        if not a.data or not a.county:
            raise ParameterError("evalkit plan needs --data DIR and --county CODE (or --second-phase RUN_DIR/COUNTY)")
        cp = plan_county(a.data, a.county, a.year, policy=policy, cost_village=a.cost_village,
                         cost_household=a.cost_household, reps=a.reps, seed=a.seed)
        lines = plan_lines(cp.county, cp.year, cp.result, a.lang)
    for line in lines:
        print(line)
    return 0


def _add_batch_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """``evalkit batch``: its options described, the bundled notebooks' parameters listed."""
    b = sub.add_parser("batch", parents=[common], help="run a parameterized notebook once per county (papermill)",
                       description=label("cli_batch_description", "en"), epilog=_notebook_parameters_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("notebook", help="the notebook to run (e.g. notebooks/county_exit_assessment.ipynb)")
    b.add_argument("--data", required=True, help="the dataset directory (or file) every run reads")
    b.add_argument("--counties", default="all",
                   help="'all', 'poverty' (poverty counties with a planned exit year), or codes or names "
                        "separated by commas")
    b.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a notebook parameter (repeatable; listed below); typed like the notebook's default")
    b.add_argument("--workers", type=int, default=2, help="counties run at the same time (default 2)")
    b.add_argument("--out", required=True, help="output directory: OUT/<county>/, summary.csv, index.html")
    b.add_argument("--resume", action="store_true",
                   help="reuse counties whose notebook, parameters, inputs and evalkit code are unchanged")
    b.add_argument("--scheduler", default=None, help="Dask distributed scheduler address (tcp://host:8786)")
    b.add_argument("--timeout", type=int, default=1800, help="seconds per notebook cell (default 1800)")
    b.add_argument("--pdf", action="store_true", help="also print every report to PDF (OUT/pdf/; needs Chromium)")
    b.set_defaults(func=_cmd_batch)


def _add_ledger_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """``evalkit ledger import FILE --run RUN_DIR``."""
    led = sub.add_parser("ledger", parents=[common], help="import a ledger (taizhang) returned by a township")
    led.add_argument("action", choices=["import"], help="import: read the filled-in ledger, report progress")
    led.add_argument("file", help="the returned .xlsx ledger (followup.xlsx, watchlist.xlsx ...)")
    led.add_argument("--run", required=True, help="the run it belongs to (written to RUN/returns/)")
    led.set_defaults(func=_cmd_ledger)


def build_parser() -> argparse.ArgumentParser:
    """The ``evalkit`` argument parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lang", default="en", help=f"language of the printed output ({', '.join(LANGS)})")
    p = argparse.ArgumentParser(prog="evalkit", description="Poverty-exit assessment and return-to-poverty risk.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="cmd")

    g = sub.add_parser("generate", parents=[common], help="write a synthetic province in the canonical model (Parquet)")
    g.add_argument("--profile", default="demo", choices=["demo", "demo_real", "shaanxi", "seeds"])
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default=None, help="output directory (default data/<profile>)")
    g.add_argument("--scale", type=float, default=None, help="population scale factor")
    g.add_argument("--counties", default=None, help="county codes or names of the profile, comma-separated")
    g.add_argument("--workers", type=int, default=1)
    g.add_argument("--policy", action="append", help="policy override TOML (repeatable)")
    g.add_argument("--no-field-survey", action="store_true", help="skip drawing the evaluators' samples")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=_cmd_generate)

    v = sub.add_parser("validate", parents=[common],
                       help="validate a dataset directory or file; quarantine invalid rows")
    v.add_argument("path")
    v.add_argument("--out", default=None, help="where to write the quarantine (default beside the input)")
    v.add_argument("--year", type=int, default=None,
                   help="year of the income columns of a household or person list that has no year column "
                        "and no year in its file name")
    v.set_defaults(func=_cmd_validate)

    d = sub.add_parser("dictionary", parents=[common], help="print the bilingual data dictionary (Markdown)")
    d.add_argument("--write", default=None, help="write it to this file (data/README.md)")
    d.set_defaults(func=_cmd_dictionary)

    m = sub.add_parser("demo", parents=[common], help="the main job: generate the demo province, run every report")
    m.add_argument("--out", default="reports/demo")
    m.add_argument("--data", default="data/demo")
    m.add_argument("--workers", type=int, default=2)
    m.add_argument("--seed", type=int, default=None, help="seed of the demo province (default 20201)")
    m.add_argument("--pdf", action="store_true", help="also print every report to PDF (OUT/pdf/; needs Chromium)")
    m.set_defaults(func=_cmd_demo)

    _add_batch_parser(sub, common)

    _add_ledger_parser(sub, common)

    pl = sub.add_parser("plan", parents=[common],
                        help="cheapest design meeting the stated operating characteristic, or a second phase")
    pl.add_argument("--data", default=None, help="dataset directory (the register: households, villages)")
    pl.add_argument("--county", default=None, help="6-digit county code")
    pl.add_argument("--year", type=int, default=None, help="assessment year (default: planned exit year)")
    pl.add_argument("--cost-village", type=float, default=None, help="yuan per sampled village (policy default)")
    pl.add_argument("--cost-household", type=float, default=None, help="yuan per household (policy default)")
    pl.add_argument("--reps", type=int, default=100, help="simulated samples per design")
    pl.add_argument("--seed", type=int, default=0)
    pl.add_argument("--second-phase", default=None, metavar="RUN_DIR/COUNTY",
                    help="plan the second phase of the county whose outputs are in this folder")
    pl.add_argument("--policy", action="append", help="policy override TOML (repeatable)")
    pl.set_defaults(func=_cmd_plan)

    f = sub.add_parser("verify", parents=[common], help="re-execute a run from its manifest and compare every result")
    f.add_argument("run_dir")
    f.add_argument("--workers", type=int, default=2)
    f.set_defaults(func=_cmd_verify)

    mon = sub.add_parser("monitor", parents=[common], help="the monthly monitoring cycle: import, check, review")
    mon.add_argument("action", choices=["import", "check", "review"])
    mon.add_argument("--month", default=None, help="YYYY-MM (import, check; review: date of the transitions)")
    mon.add_argument("--data", default=None, help="dataset directory with departments/YYYY-MM/ (import)")
    mon.add_argument("--db", required=True, help="the case store (DuckDB file)")
    mon.add_argument("--out", default=None, help="output directory of the check's ledgers (check)")
    mon.add_argument("--ledger", default=None, help="returned review ledger .xlsx (review)")
    mon.add_argument("--key", default=None, help="pseudonymization key file (default <db>.key; outside --out)")
    mon.add_argument("--policy", action="append", help="policy override TOML (repeatable)")
    mon.set_defaults(func=_cmd_monitor)
    return p


def _error_line(e: EvalkitError, lang: str) -> str:
    from evalkit.privacy import Masker  # pandas: not for --version (see the note on imports above)

    message = " ".join(str(e).splitlines()).strip()  # one line, whatever the message holds
    message = Masker().text(message) or ""  # an input error may quote a cell: ID numbers by content
    return text("runner_error_line", lang if lang in LANGS else "en", message=message)


def _os_error_line(e: OSError, lang: str) -> str:
    from evalkit.privacy import Masker  # pandas: not for --version (see the note on imports above)

    path = e.filename if e.filename is not None else "-"
    if e.filename2 is not None:
        path = f"{path} -> {e.filename2}"
    cause = e.strerror or type(e).__name__
    line = text("cli_os_error", lang if lang in LANGS else "en", path=path, cause=cause)
    return Masker().text(" ".join(line.splitlines())) or ""


def _quiet_stdout() -> None:
    # the reader is gone: point stdout at /dev/null so the interpreter's final flush cannot fail
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``evalkit`` console script; returns the exit code."""
    p = build_parser()
    a = p.parse_args(argv)
    if a.version:
        print(__version__)
        return 0
    if not getattr(a, "func", None):
        p.print_help()
        return 0
    try:
        check_lang(a.lang)
        code = int(a.func(a) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except EvalkitError as e:
        print(_error_line(e, a.lang), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as e:  # unwritable, not a directory, disk full, permission denied: not a bug
        print(_os_error_line(e, a.lang), file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
