"""Benchmark of ``evalkit batch``: counties per minute by worker count, and per-notebook overhead.

    python benchmarks/bench_batch.py [--notebook NB] [--data DIR] [--counties all] [--workers 1,2]

* Throughput: wall time of :func:`evalkit.runner.run_batch` over the counties for each worker
  count (after a warm-up batch, so the one-off start of the worker pool's fork server is not
  counted; it is printed separately), as counties per minute.
* Overhead: the same batch with an empty notebook (parameters cell + one cell writing an empty
  results.json) gives the cost that every county pays whatever it computes: kernel start, papermill,
  HTML export, publishing; broken down in-process into papermill (kernel start + execute) and
  nbconvert. The analysis time is the notebook's per-county duration minus that overhead.

Defaults: the test notebook ``tests/notebooks/county_stats.ipynb`` on a small synthetic dataset
(3 demo counties, scale 0.02) generated into a temporary directory.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from evalkit import runner, synth
from evalkit.config import load_policy
from evalkit.runner.execute import stderr_to

ROOT = Path(__file__).resolve().parents[1]


def empty_notebook(path: Path, county: bool) -> Path:
    """A notebook that does nothing but write ``{}`` to results.json (same parameter names)."""
    params = ('county_code = "000000"\n' if county else "") + 'data_dir = "."\noutput_dir = "."'
    nb = new_notebook(cells=[
        new_code_cell(params, metadata={"tags": ["parameters"]}),
        new_code_cell("import pathlib\npathlib.Path(output_dir, 'results.json').write_text('{}')"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    for i, c in enumerate(nb.cells):
        c["id"] = f"c{i}"
    nbformat.write(nb, path)
    return path


def timed_batch(nb: Path, data: Path, counties: str, workers: int, out: Path) -> tuple[float, runner.BatchResult]:
    t0 = time.perf_counter()
    res = runner.run_batch(nb, data, counties, workers=workers, out=out, progress=False)
    return time.perf_counter() - t0, res


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notebook", default=str(ROOT / "tests" / "notebooks" / "county_stats.ipynb"))
    ap.add_argument("--data", default=None, help="dataset directory (default: a small synthetic one)")
    ap.add_argument("--counties", default="all")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as t:
        tmp = Path(t)
        if a.data:
            data = Path(a.data)
        else:
            data = synth.generate("demo", seed=1, out=tmp / "data", scale=0.02,
                                  counties=["610627", "610631", "610632"], field_survey=False,
                                  policy=load_policy())
        nb = Path(a.notebook).resolve()
        county = "county_code" in runner.notebook_parameters(nb)
        empty = empty_notebook(tmp / "empty.ipynb", county)

        warm_s, warm = timed_batch(empty, data, a.counties, 1, tmp / "warm")  # starts the fork server
        n = len(warm.counties)
        print(f"notebook {nb.name} on {data} ({n} run(s)); first batch of the process "
              f"(fork server start + {n} empty runs): {warm_s:.1f} s")

        print("\nthroughput")
        print(f"{'workers':>7} {'wall s':>8} {'counties/min':>13} {'failed':>6}")
        per_county: list[float] = []
        for w in (int(x) for x in a.workers.split(",")):
            s, res = timed_batch(nb, data, a.counties, w, tmp / f"w{w}")
            per_county += [c.duration_s for c in res.counties if c.status == "ok"]
            print(f"{w:>7} {s:>8.2f} {60 * n / s:>13.1f} {res.n_failed:>6}")

        _, emp = timed_batch(empty, data, a.counties, 1, tmp / "empty")
        overhead = statistics.median(c.duration_s for c in emp.counties)
        analysis = statistics.median(per_county) if per_county else float("nan")
        code = warm.counties[0].county_code if county else None
        pm_s, html_s = in_process_breakdown(empty, data, code, tmp)
        print("\nper notebook (median seconds)")
        print(f"  empty notebook, whole per-county run:      {overhead:6.2f}")
        print(f"    of which papermill (kernel start+run):   {pm_s:6.2f}")
        print(f"    of which nbconvert HTML export:          {html_s:6.2f}")
        print(f"  analysis notebook, whole per-county run:   {analysis:6.2f}")
        print(f"  => analysis time (minus overhead):         {analysis - overhead:6.2f}"
              f"  ({100 * overhead / analysis:.0f}% of a county's run is overhead)")
        print(json.dumps({"counties": n, "overhead_s": round(overhead, 3), "analysis_run_s": round(analysis, 3),
                          "papermill_s": round(pm_s, 3), "nbconvert_s": round(html_s, 3)}))


if __name__ == "__main__":
    main()
