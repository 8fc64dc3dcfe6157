"""``evalkit demo``: the main job, from nothing to ``reports/demo/index.html``.

Generates the demo province, runs the county exit batch, the village assessments, the risk notebook,
one quarterly monitoring report and one monthly check (department data matched, red flags, ledgers)
and the province roll-up, writes an index over them and prints the county verdicts. The notebooks are package
data (``evalkit/notebooks``), so the demo also runs from an installed wheel.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from evalkit import synth
from evalkit.assessment.result import ExitResult
from evalkit.config import load_policy
from evalkit.errors import InputError
from evalkit.report.common import pct
from evalkit.runner.index import verdict_both, write_demo_index
from evalkit.runner.results import BatchResult, read_json
from evalkit.runner.run import run_batch
from evalkit.text import check_lang, label, text
from evalkit.workflows.data import DEMO_PROFILE, DEMO_SEED

__all__ = ["DEMO_SEED", "DEMO_MONTH", "DEMO_QUARTER", "notebooks_dir", "run_demo", "summary_text", "exit_results"]

#: The month of the demo's monthly check and the quarter of its quarterly report (the synthetic
#: department data of these months are generated on first use).
DEMO_MONTH, DEMO_QUARTER = "2025-06", "2025-Q2"


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
    """Generate the demo province; run the county and village batches, the risk notebook, a quarterly
    report and a monthly check of the monitoring cycle, and the roll-up.

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
    synth.generate(DEMO_PROFILE, seed=seed, out=data, policy=load_policy())
    # resume: a run whose notebook, parameters, input files and evalkit version and source are
    # unchanged is reused, not recomputed (the input hash of evalkit.runner.plan)
    # exit and village assessments apply to the poverty counties; monitoring and the roll-up run once
    common = {"data": data, "counties": "all", "out_up": "../index.html"}
    poverty = {**common, "counties": "poverty"}
    print(label("runner_demo_county_exit", lang))
    res = _run(nbdir / "county_exit_assessment.ipynb", poverty, {}, workers, out / "county_exit", True, lang)
    print(label("runner_demo_village", lang))
    vres = _run(nbdir / "village_assessment.ipynb", poverty, {"method": "ebp"}, workers, out / "village", True,
                lang)
    # The risk run and the monitoring runs are single notebooks, each on one core: side by side
    monitoring = _Background(_monitoring_runs, nbdir, data, common, out, lang)
    print(label("runner_demo_risk", lang))
    rres = _run(nbdir / "return_to_poverty_risk.ipynb", common, {}, 1, out / "risk", False, lang)
    qres, mres = monitoring.result()
    print(label("runner_demo_rollup", lang))
    pres = _run(nbdir / "province_rollup.ipynb", common,
                {"run_dir": str((out / "county_exit").resolve()), "risk_dir": str((out / "risk").resolve())},
                1, out / "province", False, lang)
    write_demo_index(out, res, pres, vres, rres, mres, qres)
    print(summary_text(out / "county_exit", lang))
    failed = False
    for key, r in (("runner_demo_name_county_exit", res), ("runner_demo_name_village", vres),
                   ("runner_demo_name_risk", rres), ("runner_demo_name_quarterly", qres),
                   ("runner_demo_name_monthly", mres), ("runner_demo_name_rollup", pres)):
        if r.n_failed:
            failed = True
            print(text("runner_demo_failed", lang, n=r.n_failed, name=label(key, lang)))
    print()
    print(text("runner_demo_report", lang, path=(out / "index.html").resolve(),
               seconds=f"{time.perf_counter() - t0:.0f}"))
    return 1 if failed else 0


def _monitoring_runs(nbdir: Path, data: Path, common: dict, out: Path, lang: str) -> tuple[BatchResult, BatchResult]:
    """The quarterly report, then the monthly check (in this order: the store refuses a month older
    than the last one imported)."""
    # The case store lives beside the data, never under the reports (its key file sits next to it).
    store = str((data.parent / "monitoring" / f"{data.name}_cases.duckdb").resolve())
    print(label("runner_demo_quarterly", lang))
    qres = _run(nbdir / "quarterly_report.ipynb", common, {"quarter": DEMO_QUARTER, "db_file": store}, 1,
                out / "quarterly", False, lang)
    print(label("runner_demo_monthly", lang))
    mres = _run(nbdir / "monthly_check.ipynb", common, {"month": DEMO_MONTH, "db_file": store}, 1,
                out / "monthly", False, lang)
    return qres, mres


class _Background:
    """``fn(*args)`` in a daemon thread (an interrupted demo does not wait for it); ``result()``
    joins it and re-raises its exception."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._out: list[Any] = []
        self._err: list[BaseException] = []
        self._t = threading.Thread(target=self._call, args=(fn, args), daemon=True, name="evalkit-demo")
        self._t.start()

    def _call(self, fn: Callable[..., Any], args: tuple) -> None:
        try:
            self._out.append(fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to the caller by result()
            self._err.append(e)

    def result(self) -> Any:
        while self._t.is_alive():
            self._t.join(0.2)  # short joins: Ctrl-C still reaches the main thread
        if self._err:
            raise self._err[0]
        return self._out[0]


def _run(nb: Path, common: dict, params: dict, workers: int, out: Path, progress: bool, lang: str) -> BatchResult:
    """One batch of the demo with ``--resume``; says how many runs were reused."""
    r = run_batch(nb, data=common["data"], counties=common["counties"], params=params, workers=workers, out=out,
                  progress=progress, progress_lang=lang, resume=True, index_up=common["out_up"])
    if r.n_reused:
        print(text("runner_demo_reused", lang, n=r.n_reused, total=len(r.counties)))
    return r


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
    widths = (16, 26, 26)
    heads = [label(k, lang) for k in ("runner_col_county", "runner_col_verdict", "runner_col_official")]
    head = "".join(_pad(h, w) for h, w in zip(heads, widths)) + label("runner_col_incidence", lang)
    lines = [head, "-" * (len(head) + _wide(head))]
    for r in rows:
        c = r.criteria["comprehensive_poverty_rate"]
        ci = f"{pct(c.est)} [{pct(c.lci)}, {pct(c.uci)}]"
        cells = (f"{r.county_code} {r.county_name}", verdict_both(r.decision, lang), verdict_both(r.official, lang))
        lines.append("".join(_pad(s, w) for s, w in zip(cells, widths)) + ci)
    return "\n".join(lines)
