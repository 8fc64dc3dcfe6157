"""``evalkit verify``: check every output file against the manifest's sha256, then re-execute the
batch from its manifest and compare every result."""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import BatchError
from evalkit.runner.manifest import MANIFEST_KIND, RUN_LEVEL_FILES, recorded_outputs
from evalkit.runner.results import BatchResult, read_json
from evalkit.runner.run import run_batch
from evalkit.text import label, text

__all__ = ["Difference", "VerifyResult", "compare_json", "verify", "MISSING", "changed_outputs"]

#: Stands for a key or run that one side does not have.
MISSING = "<missing>"


@dataclass(frozen=True)
class Difference:
    """One differing value: ``county/key.path: old vs new``."""

    county: str
    key: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.county}/{self.key}: {self.old!r} vs {self.new!r}"


def _compare_numbers(old: float, new: float, rtol: float) -> bool:
    if isinstance(old, float) or isinstance(new, float):
        return old == new or (rtol > 0 and math.isclose(old, new, rel_tol=rtol, abs_tol=0.0))
    return old == new


def compare_json(old: Any, new: Any, rtol: float = 0.0, path: str = "") -> list[tuple[str, Any, Any]]:
    """Recursive comparison of two JSON values.

    Numbers: ints exactly, floats exactly when ``rtol == 0`` (the default: the same code on the
    same inputs must give the same bits) else within ``rtol`` relative; bools and strings exactly;
    a missing key or a different type is a difference.

    Returns
    -------
    list of (key path, old, new)
    """
    diffs: list[tuple[str, Any, Any]] = []
    key = path or "."
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            p = f"{path}.{k}" if path else str(k)
            if k not in old:
                diffs.append((p, MISSING, new[k]))
            elif k not in new:
                diffs.append((p, old[k], MISSING))
            else:
                diffs += compare_json(old[k], new[k], rtol, p)
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            diffs.append((f"{key}[len]", len(old), len(new)))
        for i, (a, b) in enumerate(zip(old, new)):
            diffs += compare_json(a, b, rtol, f"{path}[{i}]")
    elif isinstance(old, bool) or isinstance(new, bool):
        if type(old) is not type(new) or old != new:
            diffs.append((key, old, new))
    elif isinstance(old, (int, float)) and isinstance(new, (int, float)):
        if not _compare_numbers(old, new, rtol):
            diffs.append((key, old, new))
    elif type(old) is not type(new) or old != new:
        diffs.append((key, old, new))
    return diffs


@dataclass
class VerifyResult:
    """Outcome of :func:`verify`."""

    run_dir: Path
    status: str  # 'identical' | 'differs' | 'inputs changed' | 'outputs changed'
    differences: list[Difference] = field(default_factory=list)
    inputs_changed: list[str] = field(default_factory=list)
    n_counties: int = 0
    rtol: float = 0.0
    outputs_changed: list[tuple[str, str]] = field(default_factory=list)  # (file, 'changed'|'missing'|'extra')

    @property
    def identical(self) -> bool:
        """True when every result is the same."""
        return self.status == "identical"

    @property
    def exit_code(self) -> int:
        """0 only when identical."""
        return 0 if self.identical else 1

    def lines(self, lang: str = "en") -> list[str]:
        """The outcome as printed by ``evalkit verify``."""
        cmp = (label("runner_verify_exact", lang) if self.rtol == 0
               else text("runner_verify_rtol", lang, rtol=f"{self.rtol:g}"))
        status = label(f"runner_verify_{self.status.replace(' ', '_')}", lang)
        out = [text("runner_verify_head", lang, status=status, n=self.n_counties, compared=cmp)]
        out += [text("runner_verify_input_changed", lang, input=p) for p in self.inputs_changed]
        out += [text("runner_verify_output_changed", lang, output=p, how=label(f"runner_verify_how_{how}", lang))
                for p, how in self.outputs_changed]
        if self.inputs_changed and self.differences:
            out.append(text("runner_verify_n_differ", lang, n=len(self.differences)))
        out += [str(d) for d in self.differences]
        return out


def _changed_inputs(man: dict[str, Any], new_man: dict[str, Any], nb: Path) -> list[str]:
    changed = []
    if new_man["notebook"]["sha256"] != man["notebook"]["sha256"]:
        changed.append(f"{nb} (notebook)")
    if man.get("evalkit_version") != new_man.get("evalkit_version"):
        changed.append(f"evalkit version ({man.get('evalkit_version')} -> {new_man.get('evalkit_version')})")
    elif man.get("evalkit_source_sha256") != new_man.get("evalkit_source_sha256"):
        changed.append("evalkit source (sha256 differs)")
    old_in, new_in = man.get("inputs", {}), new_man.get("inputs", {})
    for rel in sorted(set(old_in) | set(new_in)):
        if rel not in new_in:
            changed.append(f"{rel} (gone)")
        elif rel not in old_in:
            changed.append(f"{rel} (new)")
        elif old_in[rel] != new_in[rel]:
            changed.append(f"{rel} (sha256 differs)")
    return changed


def changed_outputs(run: Path, man: dict[str, Any]) -> list[tuple[str, str]]:
    """Output files that differ from the manifest's record: ``(path, 'changed' | 'missing' | 'extra')``.

    Covers every file of every county directory the manifest lists (HTML, Excel, notebooks, JSON,
    logs, run.json) and summary.csv / index.html. A manifest without ``outputs`` (older evalkit)
    has nothing to compare.
    """
    want = man.get("outputs")
    if not isinstance(want, dict):
        return []
    have = recorded_outputs(run, [str(c) for c in man.get("counties", [])])
    out = []
    for k in sorted(set(want) | set(have)):
        if k not in have:
            out.append((k, "missing"))
        elif k not in want:
            out.append((k, "extra"))
        elif want[k] != have[k]:
            out.append((k, "changed"))
    return [o for o in out if o[0] not in RUN_LEVEL_FILES or o[1] != "extra"]


def _differences(run: Path, man: dict[str, Any], new: BatchResult, rtol: float) -> list[Difference]:
    diffs: list[Difference] = []
    for code in sorted(set(man.get("runs", {})) | {c.county_code for c in new.counties}):
        old_status = (read_json(run / code / "run.json") or {}).get("status", MISSING)
        try:
            new_status = new[code].status
        except KeyError:
            new_status = MISSING
        if old_status != new_status:
            diffs.append(Difference(code, "status", old_status, new_status))
        elif old_status == "ok":
            a = read_json(run / code / "results.json")
            b = read_json(new.out / code / "results.json")
            diffs += [Difference(code, k, o, n) for k, o, n in compare_json(a, b, rtol)]
    return diffs


def verify(run_dir: str | Path, workers: int = 2, rtol: float = 0.0, progress: bool = True,
           scheduler: str | None = None, progress_lang: str = "en") -> VerifyResult:
    """Re-execute a batch run from its manifest in a temporary directory and compare every result.

    Parameters
    ----------
    run_dir : path
        The ``out`` of a :func:`~evalkit.runner.run_batch` (holds ``manifest.json``).
    workers : int
        Local worker processes for the re-execution.
    rtol : float
        Relative tolerance for floats; 0 (default) requires exact equality.
    progress : bool
        Show a progress bar.
    scheduler : str, optional
        Dask scheduler address for the re-execution.
    progress_lang : str
        Language of the progress bar.

    Returns
    -------
    VerifyResult
        ``status`` is 'outputs changed' when a file of the run (a report, ledger, notebook,
        results.json, run.json, summary.csv or index.html) was edited, removed or added since the
        manifest recorded it; else 'inputs changed' when the notebook, an input file or the evalkit source no
        longer has the manifest's sha256 (or the evalkit version differs); the re-execution still
        runs, so the differences are listed too. Else 'identical' or 'differs'.
    """
    run = Path(run_dir).resolve()
    man = read_json(run / "manifest.json")
    if not isinstance(man, dict) or man.get("kind") != MANIFEST_KIND:
        raise BatchError(f"{run} holds no batch manifest.json")
    nb = Path(man["notebook"]["path"])
    if not nb.is_file():
        raise BatchError(f"the run's notebook is gone: {nb}")
    touched = changed_outputs(run, man)
    counties = man["counties"] if man.get("county_param") else "all"
    with tempfile.TemporaryDirectory(prefix="evalkit-verify-") as tmp:
        new = run_batch(nb, man["data_dir"], counties=counties, params=man["parameters"]["given"],
                        workers=workers, out=tmp, timeout=man.get("timeout_s", 1800), progress=progress,
                        kernel_name=man.get("kernel_name"), scheduler=scheduler, progress_lang=progress_lang)
        changed = _changed_inputs(man, read_json(new.manifest), nb)
        diffs = _differences(run, man, new, rtol)
    status = ("outputs changed" if touched else "inputs changed" if changed
              else "differs" if diffs else "identical")
    return VerifyResult(run, status, diffs, changed, len(new.counties), rtol, touched)
