"""The province end to end: generate Shaanxi, 56 exit assessments, the province risk run, the roll-up.

    python benchmarks/bench_province.py [--json PATH] [--data DIR] [--workers N] [--out DIR]
                                        [--counties SEL] [--stages generate,exit,risk,rollup]
                                        [--risk-dir DIR]

Every run on the Shaanxi profile goes under the shared lock on this machine:
``flock /work/notes/big.lock python benchmarks/bench_province.py ...``. ``--risk-dir`` lets the
roll-up read a risk run made separately on the same data (with ``--stages generate,exit,rollup``);
the target is then not judged.

Stages, each in its own child process (so one stage's memory does not carry into the next):

1. ``generate``: the ``shaanxi`` profile (107 counties, ~17 M persons, with the field survey),
   seed 1, into ``OUT/data`` (skipped with ``--data DIR``: the stage then reads DIR);
2. ``exit``: ``evalkit batch`` machinery (:func:`evalkit.runner.run_batch`) on the county notebook
   for ``counties="poverty"`` (the 56 poverty counties), ``--workers`` processes;
3. ``risk``: :func:`evalkit.workflows.monitoring.run_province_risk` on the whole province;
4. ``rollup``: the roll-up notebook through the batch machinery, over the exit run and the risk run.

For each stage it prints the wall time, the CPU time of the stage's processes, the peak memory
of the whole process tree (the benchmark, the stage process, the batch workers and their
notebook kernels; sum of RSS sampled every 0.2 s from ``/proc``, and the sum of PSS, which counts
pages shared after a fork once) and the load average before and after (the machine may be
shared). JSON keys: ``generate_s``, ``exit_batch_s``, ``risk_s``, ``rollup_s``, ``total_s``,
``peak_rss_gib`` (the largest sum of RSS over the run) and ``stages`` with the details.
Target (issue 15): total <= 15 min within 16 GiB on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
STAGES = ("generate", "exit", "risk", "rollup")
_KEYS = {"generate": "generate_s", "exit": "exit_batch_s", "risk": "risk_s", "rollup": "rollup_s"}
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [pid], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _cpu_ticks(pid: int) -> tuple[str, int] | None:
    """(start time, user + system clock ticks) of ``pid``: the start time tells a reused pid apart."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return f[19], int(f[11]) + int(f[12])
    except (OSError, ValueError, IndexError):
        return None


def _rss_pss(pid: int) -> tuple[int, int]:
    try:
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0, 0
    pss = rss
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    return rss, pss


class TreeMemory:
    """Samples the memory of this process and every descendant in a thread; peaks since ``reset``.

    Also the CPU time of the descendants (user + system, the last value seen of every process:
    a notebook kernel is killed, not waited for, so ``os.times`` would miss it).
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.rss, self.pss, self.procs = interval, 0, 0, 0
        self._cpu: dict[tuple[int, str], int] = {}
        self._base: dict[tuple[int, str], int] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.interval):
            pids = _tree(me)
            got = [_rss_pss(p) for p in pids]
            rss, pss = sum(g[0] for g in got), sum(g[1] for g in got)
            for p in pids[1:]:  # not this process: its sampling thread is the measurement's own cost
                c = _cpu_ticks(p)
                if c is not None:
                    self._cpu[(p, c[0])] = c[1]
            self.rss, self.pss, self.procs = max(self.rss, rss), max(self.pss, pss), max(self.procs, len(pids))

    def start(self) -> TreeMemory:
        self._t.start()
        return self

    def reset(self) -> None:
        self.rss = self.pss = self.procs = 0
        self._base = dict(self._cpu)

    @property
    def cpu_s(self) -> float:
        """CPU seconds of the descendants since ``reset``."""
        return sum(v - self._base.get(k, 0) for k, v in self._cpu.items()) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self._stop.set()
        self._t.join()


def _gib(b: float) -> float:
    return round(b / 2**30, 3)


# ---- the stages, each run as `bench_province.py --stage NAME` in a child process -------------------------

def stage_generate(a: argparse.Namespace) -> dict[str, Any]:
    from evalkit.config import load_policy
    from evalkit.synth import generate

    out = Path(a.data_dir)
    if out.exists():
        shutil.rmtree(out)
    generate("shaanxi", seed=a.seed, out=out, workers=a.workers, policy=load_policy())
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return {"rows": m.get("row_counts"),
            "disk_mib": round(sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20)}


def _batch(nb: str, counties: str, params: dict[str, Any], workers: int, out: Path, data: str) -> dict[str, Any]:
    from evalkit import runner

    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    res = runner.run_batch(NOTEBOOKS / nb, data, counties, params=params, workers=workers, out=out,
                           progress=False)
    wall = time.perf_counter() - t0
    runs = [c.duration_s for c in res.counties if c.duration_s is not None]
    return {"counties": len(res.counties), "failed": res.n_failed,
            "errors": {c.county_code: c.error for c in res.counties if c.status != "ok"},
            "batch_wall_s": round(wall, 2), "sum_run_s": round(sum(runs), 2),
            "max_run_s": round(max(runs), 2) if runs else None}


def stage_exit(a: argparse.Namespace) -> dict[str, Any]:
    return _batch("county_exit_assessment.ipynb", a.counties, {}, a.workers, Path(a.out) / "county_exit",
                  a.data_dir)


def stage_risk(a: argparse.Namespace) -> dict[str, Any]:
    from evalkit.config import load_policy
    from evalkit.workflows.monitoring import run_province_risk

    out = Path(a.out) / "risk"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    res = run_province_risk(a.data_dir, out, policy=load_policy(), seed=0, lang="zh")
    info: dict[str, Any] = {"files": sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())}
    if isinstance(res, dict):  # timings of its own steps, model metrics, row counts
        info.update({k: res[k] for k in ("timings", "metrics", "best_model", "n_rows") if k in res})
    return info


def stage_rollup(a: argparse.Namespace) -> dict[str, Any]:
    out = Path(a.out)
    risk = Path(a.risk_dir) if a.risk_dir else out / "risk"
    params = {"run_dir": str((out / "county_exit").resolve()), "risk_dir": str(risk.resolve())}
    return _batch("province_rollup.ipynb", "all", params, 1, out / "province", a.data_dir)


_STAGE_FN = {"generate": stage_generate, "exit": stage_exit, "risk": stage_risk, "rollup": stage_rollup}


def _child(a: argparse.Namespace) -> None:
    info = _STAGE_FN[a.stage](a)
    Path(a.result).write_text(json.dumps(info, ensure_ascii=False, default=str), encoding="utf-8")


# ---- the driver ---------------------------------------------------------------------------------------------

def _cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def run_stage(name: str, a: argparse.Namespace, mem: TreeMemory) -> dict[str, Any]:
    """Run one stage in a child process; its wall and CPU time, peak tree memory and load averages."""
    result = Path(a.out) / f".stage-{name}.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", name, "--result", str(result),
           "--out", a.out, "--data-dir", a.data_dir, "--workers", str(a.workers), "--counties", a.counties,
           "--seed", str(a.seed)] + (["--risk-dir", a.risk_dir] if a.risk_dir else [])
    load0, cpu0 = os.getloadavg(), _cpu()
    mem.reset()
    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - t0
    rec = {"wall_s": round(wall, 2), "cpu_s": round(mem.cpu_s, 1), "cpu_waited_s": round(_cpu() - cpu0, 1),
           "peak_rss_gib": _gib(mem.rss), "peak_pss_gib": _gib(mem.pss), "max_processes": mem.procs, "exit_code": rc,
           "load_before": [round(x, 2) for x in load0], "load_after": [round(x, 2) for x in os.getloadavg()]}
    if result.exists():
        rec["info"] = json.loads(result.read_text(encoding="utf-8"))
        result.unlink()
    print(f"{name:<9} wall {rec['wall_s']:>7.1f} s  cpu {rec['cpu_s']:>7.1f} s  "
          f"peak RSS {rec['peak_rss_gib']:>6.2f} GiB (PSS {rec['peak_pss_gib']:.2f})  "
          f"load {load0[0]:.2f} -> {rec['load_after'][0]:.2f}  exit {rc}",
          flush=True)
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None, help="write the numbers to this JSON file")
    ap.add_argument("--data", default=None, help="use this dataset and skip the generate stage")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="/tmp/bench-province", help="scratch directory (data, runs)")
    ap.add_argument("--counties", default="poverty", help="counties of the exit batch")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--seed", type=int, default=1, help="seed of the generated profile")
    ap.add_argument("--risk-dir", default=None,
                    help="the roll-up reads this risk run (e.g. one made on the same data without the risk stage)")
    ap.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.risk_dir:
        a.risk_dir = str(Path(a.risk_dir).resolve())
    if a.stage:
        _child(a)
        return
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    a.out = str(out)
    stages = [s for s in a.stages.split(",") if s]
    if a.data:
        stages = [s for s in stages if s != "generate"]
        a.data_dir = str(Path(a.data).resolve())
    else:
        a.data_dir = str(out / "data")
    print(f"province benchmark: data {a.data_dir}, {a.workers} worker(s), stages {','.join(stages)}; "
          f"{os.cpu_count()} cores; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    mem = TreeMemory().start()
    recs: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for s in stages:
        recs[s] = run_stage(s, a, mem)
    total = time.perf_counter() - t0
    mem.stop()
    res = {_KEYS[s]: recs[s]["wall_s"] if s in recs else None for s in STAGES}
    res.update({"total_s": round(total, 2), "peak_rss_gib": max((r["peak_rss_gib"] for r in recs.values()), default=0),
                "peak_pss_gib": max((r["peak_pss_gib"] for r in recs.values()), default=0),
                "cpu_s": round(sum(r["cpu_s"] for r in recs.values()), 1), "workers": a.workers,
                "data": a.data_dir, "generated": "generate" in stages, "risk_dir": a.risk_dir, "stages": recs})
    ok = total <= 900 and res["peak_rss_gib"] <= 16
    skipped = [s for s in STAGES if s not in stages]
    verdict = ("OK" if ok else "NOT MET") if not skipped else \
        f"{'NOT MET' if not ok else 'not judged'}: stage(s) {', '.join(skipped)} not run"
    print(f"total {total:.1f} s, peak RSS {res['peak_rss_gib']:.2f} GiB (target <= 900 s and <= 16 GiB: {verdict})")
    print(json.dumps({k: v for k, v in res.items() if k != "stages"}))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
