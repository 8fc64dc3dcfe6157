"""``evalkit demo``: the main job, from nothing to ``reports/demo/index.html``.

Generates the demo province, runs the county exit batch, the risk notebook and the province
roll-up, writes an index over the three and prints the county verdicts. The notebooks are package
data (``evalkit/notebooks``), so the demo also runs from an installed wheel.
"""
from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path

from evalkit import synth
from evalkit.assessment.result import ExitResult
from evalkit.config import load_policy
from evalkit.errors import InputError
from evalkit.report.common import pct
from evalkit.runner.index import verdict_word, write_demo_index
from evalkit.runner.results import read_json
from evalkit.runner.run import run_batch
from evalkit.text import check_lang, label, text
from evalkit.workflows.data import DEMO_SEED

__all__ = ["DEMO_SEED", "notebooks_dir", "run_demo", "summary_text", "exit_results"]


def notebooks_dir() -> Path:
    """The directory of the bundled notebooks (package data ``evalkit/notebooks``).

    Raises
    ------
    InputError
        The installation carries no notebooks.
    """
    d = Path(str(files("evalkit") / "notebooks"))
    if not (d / "county_exit_assessment.ipynb").is_file():
        raise InputError(f"the evalkit notebooks are not installed (looked in {d})")
    return d


def run_demo(out: str | Path = "reports/demo", data: str | Path = "data/demo", workers: int = 2,
             seed: int = DEMO_SEED, lang: str = "en") -> int:
    """Generate the demo province, run the county batch, the risk notebook and the roll-up.

    Parameters
    ----------
    out, data : path
        Where the reports and the demo province go.
    workers : int
        Worker processes of the county batch.
    seed : int
        Seed of the demo province.
    lang : str
        Language of the progress messages and the printed summary (the reports are in the
        notebooks' default language).

    Returns
    -------
    int
        0 when every run succeeded, else 1.
    """
    check_lang(lang)
    t0 = time.perf_counter()
    out, data = Path(out), Path(data)
    nbdir = notebooks_dir()
    print(text("runner_demo_generate", lang, data=data))
    synth.generate("demo", seed=seed, out=data, policy=load_policy())
    print(label("runner_demo_county_exit", lang))
    res = run_batch(nbdir / "county_exit_assessment.ipynb", data=data, counties="all", params={},
                    workers=workers, out=out / "county_exit", progress=True, progress_lang=lang)
    print(label("runner_demo_risk", lang))
    rres = run_batch(nbdir / "return_to_poverty_risk.ipynb", data=data, counties="all", params={},
                     workers=1, out=out / "risk", progress=False)
    print(label("runner_demo_rollup", lang))
    pres = run_batch(nbdir / "province_rollup.ipynb", data=data, counties="all",
                     params={"run_dir": str((out / "county_exit").resolve()),
                             "risk_dir": str((out / "risk").resolve())},
                     workers=1, out=out / "province", progress=False)
    write_demo_index(out, res, rres, pres)
    print(summary_text(out / "county_exit", lang))
    failed = False
    for key, r in (("runner_demo_name_county_exit", res), ("runner_demo_name_risk", rres),
                   ("runner_demo_name_rollup", pres)):
        if r.n_failed:
            failed = True
            print(text("runner_demo_failed", lang, n=r.n_failed, name=label(key, lang)))
    print()
    print(text("runner_demo_report", lang, path=(out / "index.html").resolve(),
               seconds=f"{time.perf_counter() - t0:.0f}"))
    return 1 if failed else 0


def exit_results(run_dir: str | Path) -> list[ExitResult]:
    """The county exit results of a batch run (finished counties only), by county code."""
    found = []
    for f in sorted(Path(run_dir).glob("*/results.json")):
        d = read_json(f)
        if isinstance(d, dict) and ExitResult.is_exit_result(d):
            found.append(ExitResult.from_dict(d))
    return sorted(found, key=lambda r: r.county_code)


def _wide(s: str) -> int:
    # CJK characters take two terminal columns
    return sum(1 for ch in s if ord(ch) > 0x2E80)


def _pad(s: str, width: int) -> str:
    return s + " " * max(1, width - len(s) - _wide(s))


def summary_text(run_dir: str | Path, lang: str = "en") -> str:
    """Plain summary table of a county exit run: county, verdicts, comprehensive incidence with CI.

    Raises
    ------
    InputError
        The run holds no county exit result.
    """
    rows = exit_results(run_dir)
    if not rows:
        raise InputError(text("runner_no_exit_results", lang, run_dir=run_dir))
    widths = (16, 12, 15)
    heads = [label(k, lang) for k in ("runner_col_county", "runner_col_verdict", "runner_col_official")]
    head = "".join(_pad(h, w) for h, w in zip(heads, widths)) + label("runner_col_incidence", lang)
    lines = [head, "-" * (len(head) + _wide(head))]
    for r in rows:
        c = r.criteria["comprehensive_poverty_rate"]
        ci = f"{pct(c.est)} [{pct(c.lci)}, {pct(c.uci)}]"
        cells = (f"{r.county_code} {r.county_name}", verdict_word(r.decision, lang), verdict_word(r.official, lang))
        lines.append("".join(_pad(s, w) for s, w in zip(cells, widths)) + ci)
    return "\n".join(lines)
