"""``OUT/manifest.json``: everything needed to re-execute a batch and to know what produced it."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evalkit import provenance
from evalkit.outputs import write_json
from evalkit.runner.execute import RUN_FILE, THREAD_ENV, output_hashes
from evalkit.runner.params import RESERVED
from evalkit.runner.plan import Plan
from evalkit.runner.results import CountyResult

__all__ = ["MANIFEST_KIND", "write_manifest", "seeds", "recorded_outputs", "RUN_LEVEL_FILES"]

#: Run-level files whose sha256 the manifest records (the manifest itself cannot).
RUN_LEVEL_FILES: tuple[str, ...] = ("summary.csv", "index.html")


def recorded_outputs(out: Path, codes: Sequence[str]) -> dict[str, str]:
    """``{"<code>/<file>": sha256}`` of every file of the given counties' directories (run.json
    included) and of the run-level files, as found in ``out`` now."""
    rec: dict[str, str] = {}
    for code in codes:
        d = out / code
        if not d.is_dir():
            continue
        hashes = output_hashes(d)
        if (d / RUN_FILE).is_file():
            hashes[RUN_FILE] = provenance.sha256_file(d / RUN_FILE)
        rec.update({f"{code}/{k}": v for k, v in hashes.items()})
    for name in RUN_LEVEL_FILES:
        if (out / name).is_file():
            rec[name] = provenance.sha256_file(out / name)
    return dict(sorted(rec.items()))

#: ``kind`` of a batch manifest (:func:`evalkit.runner.verify.verify` refuses anything else).
MANIFEST_KIND = "evalkit-batch"


def seeds(params: Mapping[str, Any]) -> dict[str, Any]:
    """The random seeds among ``params`` (``seed`` and ``*_seed``)."""
    return {k: v for k, v in params.items() if k == "seed" or k.endswith("_seed")}


def write_manifest(plan: Plan, counties: Sequence[CountyResult], started: str, finished: str,
                   scheduler: str | None, workers: int, interrupted: bool = False) -> Path:
    """Write ``manifest.json`` of a batch into ``plan.out``; return its path.

    ``outputs`` holds the sha256 of every output file (``evalkit verify`` reports any changed,
    missing or extra one); ``runs[code].current`` is False for a county whose outputs come from a
    run with other inputs or parameters; ``interrupted`` is True for a batch stopped early.
    """
    effective = {n: p.default for n, p in plan.declared.items() if n not in RESERVED}
    effective.update(plan.given)
    commit, dirty = provenance.git_state()
    man = {
        "kind": MANIFEST_KIND,
        "notebook": {"path": str(plan.notebook), "sha256": plan.nb_sha},
        "data_dir": str(plan.data),
        "inputs": plan.inputs,
        "county_param": plan.county_param,
        "counties": [c.county_code for c in counties],
        "parameters": {
            "given": plan.given,
            "declared": {n: p.source for n, p in plan.declared.items()},
            "per_county": {j["code"]: j["params"] for j in plan.jobs},
        },
        "seeds": seeds(effective),
        "kernel_name": plan.kernel_name,
        "timeout_s": plan.timeout,
        "lang": plan.lang,
        "runs": {c.county_code: {"status": c.status, "input_hash": c.input_hash, "reused": c.reused,
                                 "current": c.current} for c in counties},
        "outputs": recorded_outputs(plan.out, [c.county_code for c in counties]),
        "interrupted": interrupted,
        "evalkit_version": plan.code["version"],
        "evalkit_source_sha256": plan.code["source_sha256"],
        "packages": provenance.package_versions(),
        "git_commit": commit,
        "git_dirty": dirty,
        "thread_env": {k: os.environ.get(k, "1") for k in THREAD_ENV},
        "executor": {"scheduler": scheduler, "workers": workers},
        "started_at": started,
        "finished_at": finished,
    }
    return write_json(man, plan.out / "manifest.json")
