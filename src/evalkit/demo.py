"""``evalkit demo``: the main job, from nothing to ``reports/demo/index.html``."""
from __future__ import annotations

import time
from pathlib import Path

__all__ = ["ensure_demo_data", "design_overrides", "run_demo", "DEMO_SEED"]

DEMO_SEED = 20201


def ensure_demo_data(data_dir: str | Path, seed: int = DEMO_SEED) -> Path:
    """Return ``data_dir``; generate the demo province there first if it is a missing ``demo`` dir.

    Lets every notebook run top to bottom in JupyterLab with its default parameters.
    """
    p = Path(data_dir)
    if (p / "manifest.json").exists() or (p.exists() and any(p.iterdir())):
        return p
    if p.name != "demo":
        raise FileNotFoundError(f"dataset directory {p} does not exist")
    from . import synth

    return synth.generate("demo", seed=seed, out=p)


def design_overrides(villages_poverty=None, villages_non_poverty=None, households_exited=None,
                     households_poor=None, households_non_registered=None, village_selection=None) -> dict:
    """Sample-design keyword overrides from notebook parameters (None = policy default)."""
    from .config import load_policy

    sec = load_policy().section("survey")
    kw: dict = {}
    vps = dict(sec["villages_per_stratum"])
    if villages_poverty is not None:
        vps["poverty_village"] = int(villages_poverty)
    if villages_non_poverty is not None:
        vps["non_poverty_village"] = int(villages_non_poverty)
    hpv = dict(sec["households_per_village"])
    for k, v in (("exited", households_exited), ("poor", households_poor), ("non_registered", households_non_registered)):
        if v is not None:
            hpv[k] = int(v)
    if vps != sec["villages_per_stratum"]:
        kw["villages_per_stratum"] = vps
    if hpv != sec["households_per_village"]:
        kw["households_per_village"] = hpv
    if village_selection is not None:
        kw["village_selection"] = village_selection
    return kw


def run_demo(out: str | Path = "reports/demo", data: str | Path = "data/demo", workers: int = 2,
             seed: int = DEMO_SEED) -> int:
    """Generate the demo province, run the county batch, the risk notebook and the roll-up."""
    from . import synth

    t0 = time.perf_counter()
    out, data = Path(out), Path(data)
    print(f"[1/4] generating the demo province (13 counties of Yan'an) -> {data}")
    synth.generate("demo", seed=seed, out=data)
    try:
        from . import batch
    except ImportError:
        batch = None
    if batch is None:
        from . import io

        ds = io.load_dataset(data, validate=True)
        print(ds.report.to_text())
        return ds.report.exit_code()
    nbdir = Path(__file__).resolve().parents[2] / "notebooks"
    print("[2/4] county exit assessments (papermill, one notebook per county)")
    res = batch.run_batch(nbdir / "county_exit_assessment.ipynb", data=data, counties="all",
                          params={}, workers=workers, out=out / "county_exit", progress=True)
    print("[3/4] return-to-poverty risk")
    rres = batch.run_batch(nbdir / "return_to_poverty_risk.ipynb", data=data, counties="all", params={},
                           workers=1, out=out / "risk", progress=False)
    print("[4/4] province roll-up")
    pres = batch.run_batch(nbdir / "province_rollup.ipynb", data=data, counties="all",
                           params={"run_dir": str((out / "county_exit").resolve()),
                                   "risk_dir": str((out / "risk").resolve())},
                           workers=1, out=out / "province", progress=False)
    batch.write_demo_index(out, res, rres, pres)
    print(summary_text(out / "county_exit"))
    failed = {name: r.n_failed for name, r in (("county exit", res), ("risk", rres), ("roll-up", pres)) if r.n_failed}
    for name, n in failed.items():
        print(f"FAILED: {n} {name} run(s); see the run's summary.csv and index.html")
    print(f"\nreport: {(out / 'index.html').resolve()}   ({time.perf_counter() - t0:.0f} s)")
    return 1 if failed else 0


def summary_text(run_dir: str | Path, lang: str = "en") -> str:
    """Plain summary table of a county exit run: county, verdicts, comprehensive incidence with CI."""
    from .report import pct
    from .rollup import collect_exit_results

    r = collect_exit_results(run_dir)
    head = f"{'county':<16}{'verdict':<12}{'official rule':<15}comprehensive incidence [95% CI]"
    lines = [head, "-" * len(head)]
    for _, x in r.iterrows():
        ci = (f"{pct(x['comprehensive_poverty_rate_est'])} [{pct(x['comprehensive_poverty_rate_lci'])}, "
              f"{pct(x['comprehensive_poverty_rate_uci'])}]")
        lines.append(f"{x['county_code'] + ' ' + x['county_name']:<{16 - _wide(x['county_name'])}}"
                     f"{x['decision']:<12}{x['official']:<15}{ci}")
    return "\n".join(lines)


def _wide(s: str) -> int:
    # CJK characters take two terminal columns: shorten the padding by one per character
    return sum(1 for ch in s if ord(ch) > 0x2E80)
