"""The reports a reader gets, rendered once per test session (the ``rendered_reports`` fixture).

The three notebooks run through the batch runner for one county of the small province, in one
language, with the demo's dashboard over them. Run as a script it renders one language, so the
fixture renders Chinese and English at the same time on two cores:
``python tests/rendered.py DATA OUT LANG``.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"
COUNTY = "610631"


def render(data: Path, out: Path, lang: str) -> Path:
    """Run the county (one county), risk and roll-up notebooks into ``out`` and write its index."""
    from evalkit import runner
    from evalkit.runner.index import write_demo_index

    up = "../index.html"
    r1 = runner.run_batch(NB / "county_exit_assessment.ipynb", data=data, counties=COUNTY,
                          params={"lang": lang, "oc_reps": 3}, workers=1, out=out / "county_exit", progress=False,
                          index_up=up)
    r2 = runner.run_batch(NB / "return_to_poverty_risk.ipynb", data=data, counties="all",
                          params={"lang": lang, "capacity_k": 3}, workers=1, out=out / "risk", progress=False,
                          index_up=up)
    r3 = runner.run_batch(NB / "province_rollup.ipynb", data=data, counties="all",
                          params={"lang": lang, "run_dir": str(out / "county_exit"), "risk_dir": str(out / "risk")},
                          workers=1, out=out / "province", progress=False, index_up=up)
    failed = [c.error for r in (r1, r2, r3) for c in r.failed]
    if failed:
        raise RuntimeError(f"rendering the {lang} reports failed: {failed}")
    write_demo_index(out, r1, r2, r3)
    return out


def render_both(data: Path, out: Path) -> dict[str, Path]:
    """Chinese in this process and English in a subprocess, at the same time."""
    proc = subprocess.Popen([sys.executable, __file__, str(data), str(out / "en"), "en"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        render(data, out / "zh", "zh")
    finally:
        log, _ = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"rendering the English reports failed:\n{log[-3000:]}")
    return {"zh": out / "zh", "en": out / "en"}


if __name__ == "__main__":
    render(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
