"""Benchmark of ``evalkit batch``: seconds per county for 1 and 2 workers beside the floor.

    python benchmarks/bench_batch.py [--notebook NB] [--data DIR] [--counties C1,C2,...]
                                     [--workers 1,2] [--repeat 3] [--json PATH]

Measured in one run, each batch ``--repeat`` times (medians are printed), after a warm-up batch
that starts the worker pool's fork server (printed separately):

* **floor** — the same batch with an empty notebook (the same parameters cell, one cell writing
  ``{}`` to results.json), same kernel: what every county pays whatever it computes (kernel start,
  papermill, HTML export, masking, publishing);
* **imports** — a notebook that only runs the analysis notebook's import lines (every line of
  its code cells that starts with ``import``/``from``), to show the import cost inside the kernel;
* **analysis** — the notebook itself, for each worker count: wall seconds per county
  (batch wall time / counties), the run's own duration (``run.json``), and the notebook's
  computation: the sum of papermill's cell durations recorded in the executed notebook's metadata.

Overhead per county = run duration - cell time (the runner's cost above the notebook's own
computation: kernel start, papermill, HTML, masking, publishing) and, stricter, run duration -
(cell time - import time) (kernel imports counted as overhead too). The issue's target is
<= 1.5 s. The machine may be shared: the 1-minute load average is printed before and after.

Defaults: ``notebooks/county_exit_assessment.ipynb`` on a copy of ``data/demo`` (copied into a
temporary directory so nothing is written into the shared data), four counties.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from evalkit import runner
from evalkit.runner.execute import stderr_to

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_COUNTIES = "610602,610603,610621,610622"


def _notebook(path: Path, params: str, code: str) -> Path:
    nb = new_notebook(cells=[new_code_cell(params, metadata={"tags": ["parameters"]}), new_code_cell(code)],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    for i, c in enumerate(nb.cells):
        c["id"] = f"c{i}"
    nbformat.write(nb, path)
    return path


def _parameters_source(nb: Path) -> str:
    src = nbformat.read(nb, as_version=4)
    return next(c.source for c in src.cells if "parameters" in c.metadata.get("tags", []))


def empty_notebook(path: Path, analysis: Path) -> Path:
    """The floor: the analysis notebook's parameters cell and one cell writing ``{}`` to results.json."""
    return _notebook(path, _parameters_source(analysis),
                     "import pathlib\npathlib.Path(output_dir, 'results.json').write_text('{}')")


def imports_notebook(path: Path, analysis: Path) -> Path:
    """The floor plus the import lines of the analysis notebook's code cells."""
    src = nbformat.read(analysis, as_version=4)
    lines = [ln for c in src.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])
             for ln in c.source.splitlines() if ln.startswith(("import ", "from ", "%matplotlib"))]
    return _notebook(path, _parameters_source(analysis),
                     "\n".join(lines) + "\nimport pathlib\npathlib.Path(output_dir, 'results.json').write_text('{}')")


def cell_seconds(executed: Path) -> float:
    """Sum of papermill's per-cell durations in an executed notebook (the notebook's own computation)."""
    nb = nbformat.read(executed, as_version=4)
    return sum(float(c.metadata.get("papermill", {}).get("duration") or 0.0) for c in nb.cells)


def timed_batch(nb: Path, data: Path, counties: str, workers: int, out: Path) -> dict[str, Any]:
    """One batch: wall s, per-county wall s, median run duration and median cell time per county."""
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    res = runner.run_batch(nb, data, counties, workers=workers, out=out, progress=False)
    wall = time.perf_counter() - t0
    ok = [c for c in res.counties if c.status == "ok"]
    cells = [cell_seconds(out / c.county_code / f"{nb.stem}.ipynb") for c in ok]
    n = len(res.counties)
    return {"wall_s": wall, "n": n, "failed": res.n_failed, "per_county_s": wall / n,
            "run_s": statistics.median(c.duration_s for c in ok) if ok else float("nan"),
            "cells_s": statistics.median(cells) if cells else float("nan")}


def in_process_breakdown(nb: Path, data: Path, code: str | None, tmp: Path, reps: int = 3) -> tuple[float, float]:
    """Median seconds of papermill (kernel start + execute) and of the HTML export, empty notebook."""
    import papermill
    from nbconvert import HTMLExporter

    pm_t, html_t = [], []
    for i in range(reps):
        out = tmp / f"probe{i}"
        out.mkdir()
        params = {"data_dir": str(data), "output_dir": str(out)}
        if code:
            params["county_code"] = code
        t0 = time.perf_counter()
        with stderr_to(Path(os.devnull)):  # the kernel's start-up warnings
            done = papermill.execute_notebook(str(nb), str(out / "e.ipynb"), parameters=params,
                                              progress_bar=False, kernel_name="python3", cwd=str(nb.parent))
        t1 = time.perf_counter()
        HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                     embed_images=True).from_notebook_node(done)
        t2 = time.perf_counter()
        pm_t.append(t1 - t0)
        html_t.append(t2 - t1)
    return statistics.median(pm_t), statistics.median(html_t)


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("wall_s", "per_county_s", "run_s", "cells_s")
    out = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    out["all_per_county_s"] = [round(r["per_county_s"], 3) for r in runs]
    out["failed"] = max(r["failed"] for r in runs)
    return out


def _data(arg: str | None, tmp: Path) -> Path:
    if arg:
        return Path(arg).resolve()
    demo = ROOT / "data" / "demo"
    if demo.is_dir():  # a private copy: a batch must never write into the shared demo data
        return Path(shutil.copytree(demo, tmp / "data"))
    from evalkit.config import load_policy
    from evalkit.workflows.data import ensure_demo_data

    return ensure_demo_data(tmp / "demo", policy=load_policy())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notebook", default=str(ROOT / "notebooks" / "county_exit_assessment.ipynb"))
    ap.add_argument("--data", default=None, help="dataset directory (default: a private copy of data/demo)")
    ap.add_argument("--counties", default=DEFAULT_COUNTIES)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--repeat", type=int, default=3, help="repeat every batch this many times (medians)")
    ap.add_argument("--json", default=None, help="write the numbers to this JSON file")
    a = ap.parse_args()
    load0 = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as t:
        tmp = Path(t)
        data = _data(a.data, tmp)
        nb = Path(a.notebook).resolve()
        county = "county_code" in runner.notebook_parameters(nb)
        empty = empty_notebook(tmp / "empty.ipynb", nb)
        imports = imports_notebook(tmp / "imports.ipynb", nb)

        t0 = time.perf_counter()
        warm = runner.run_batch(empty, data, a.counties, workers=1, out=tmp / "warm", progress=False)
        warm_s = time.perf_counter() - t0
        n = len(warm.counties)
        print(f"notebook {nb.name} on {data} ({n} counties), {a.repeat} repeat(s); load average "
              f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; first batch of the process (fork server start + "
              f"{n} empty runs): {warm_s:.1f} s")

        workers = [int(x) for x in a.workers.split(",")]
        runs: dict[str, list[dict[str, Any]]] = {"floor": [], "imports": [], **{f"w{w}": [] for w in workers}}
        for r in range(a.repeat):  # interleaved, so a change of load hits every configuration alike
            runs["floor"].append(timed_batch(empty, data, a.counties, 1, tmp / "floor"))
            runs["imports"].append(timed_batch(imports, data, a.counties, 1, tmp / "imports"))
            for w in workers:
                runs[f"w{w}"].append(timed_batch(nb, data, a.counties, w, tmp / f"w{w}"))
        med = {k: _median_of(v) for k, v in runs.items()}
        code = warm.counties[0].county_code if county else None
        pm_s, html_s = in_process_breakdown(empty, data, code, tmp)
    load1 = os.getloadavg()

    floor, imp = med["floor"], med["imports"]
    import_s = imp["cells_s"] - floor["cells_s"]
    print(f"\n{'batch (1 worker unless said)':<30} {'s/county':>9} {'run s':>7} {'cells s':>8} {'overhead s':>11}")
    for k, label in [("floor", "floor (empty notebook)"), ("imports", "imports only")] + \
            [(f"w{w}", f"{nb.stem[:20]}, {w} worker(s)") for w in workers]:
        m = med[k]
        print(f"{label:<30} {m['per_county_s']:>9.2f} {m['run_s']:>7.2f} {m['cells_s']:>8.2f} "
              f"{m['run_s'] - m['cells_s']:>11.2f}")
    w1 = med[f"w{workers[0]}"]
    over = w1["run_s"] - w1["cells_s"]
    over_imp = over + import_s
    print(f"\nfloor, in process: papermill (kernel start + run) {pm_s:.2f} s, nbconvert HTML {html_s:.2f} s")
    print(f"import cost inside the kernel: {import_s:.2f} s")
    print(f"computation in the notebook (cells, {workers[0]} worker): {w1['cells_s']:.2f} s, of which imports "
          f"{import_s:.2f} s")
    print(f"overhead per county above the notebook's computation: {over:.2f} s (target <= 1.5 s: "
          f"{'OK' if over <= 1.5 else 'OVER'}); counting the imports as overhead: {over_imp:.2f} s")
    print(f"load average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    out = {"notebook": nb.name, "counties": n, "repeat": a.repeat, "warmup_s": round(warm_s, 3),
           "load_avg_before": [round(x, 2) for x in load0], "load_avg_after": [round(x, 2) for x in load1],
           "floor": floor, "imports": imp, "import_s": round(import_s, 3),
           "workers": {str(w): med[f"w{w}"] for w in workers},
           "overhead_s": round(over, 3), "overhead_with_imports_s": round(over_imp, 3),
           "papermill_empty_s": round(pm_s, 3), "nbconvert_s": round(html_s, 3)}
    print(json.dumps(out))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
