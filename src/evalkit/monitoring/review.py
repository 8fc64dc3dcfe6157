"""Applying a returned review ledger (台账) to the case store, line by line.

Each ledger line names a case and may carry a visit (核实日期, 核实结果, 核实人, 整改情况) and a
decision (审核决定: the state the case moves to). Lines are taken in order; a line is rejected
with its reason when its case is unknown, its decision is not a state, the chain does not allow
the move from the case's current state, or its visit date is not a date. The accepted lines are
applied in one transaction with an audit row; a ledger already applied (same content) changes
nothing. Moving to ``elimination_proposed`` clears the case's red flags (the risk is reported
removed); ``closed`` is 销号.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evalkit import dictionary
from evalkit.monitoring import store
from evalkit.monitoring.cases import STATES, allowed
from evalkit.privacy import mask_name

__all__ = ["LEDGER_COLUMNS", "ReviewResult", "apply_review"]

#: Canonical columns of a returned ledger (decision and the fill-in columns may be blank).
LEDGER_COLUMNS = ("case_id", "decision", "verify_result", "verifier", "verify_date", "rectification", "remark")


@dataclass
class ReviewResult:
    """Applied transitions and visits, and the rejected lines (row, case_id, reason)."""

    already: bool
    applied: pd.DataFrame
    visits: int
    rejected: pd.DataFrame


def _state_code(v: object) -> str | None:
    if v is None or (isinstance(v, float) and pd.isna(v)) or str(v).strip() == "":
        return None
    look = dictionary.code_lookup("case_state")
    return look.get(dictionary.normalize_header(str(v)).lower(), "?" + str(v))


def _walk(ledger: pd.DataFrame, states: dict[str, str]) -> tuple[list[dict], list[dict], list[dict]]:
    """Go through the lines in order: (transitions, visits, rejections)."""
    moves, visits, rejects = [], [], []
    cur = dict(states)
    for i, r in enumerate(ledger.itertuples(index=False)):  # a few hundred lines; order matters
        row = i + 2
        cid = str(r.case_id).strip() if pd.notna(r.case_id) else ""
        if cid not in cur:
            rejects.append({"row": row, "case_id": cid, "reason": "unknown_case"})
            continue
        when = pd.to_datetime(r.verify_date, errors="coerce") if pd.notna(r.verify_date) else None
        if pd.notna(r.verify_date) and pd.isna(when):
            rejects.append({"row": row, "case_id": cid, "reason": "bad_date"})
            continue
        to = _state_code(r.decision)
        if to is not None and (to.startswith("?") or to not in STATES):
            rejects.append({"row": row, "case_id": cid, "reason": "unknown_decision"})
            continue
        if to is not None and not allowed(cur[cid], to):
            rejects.append({"row": row, "case_id": cid, "reason": "illegal_transition",
                            "from_state": cur[cid], "to_state": to})
            continue
        if when is not None:
            visits.append({"case_id": cid, "visit_date": when.date(), "result": r.verify_result,
                           "visitor": mask_name(str(r.verifier)) if pd.notna(r.verifier) else None,
                           "rectification": r.rectification})
        if to is not None:
            moves.append({"case_id": cid, "from_state": cur[cid], "to_state": to,
                          "note": str(r.remark) if pd.notna(r.remark) else None})
            cur[cid] = to
    return moves, visits, rejects


def apply_review(db: str | Path, ledger: pd.DataFrame, source: str, sha256: str, month: str) -> ReviewResult:
    """Apply a returned ledger (:data:`LEDGER_COLUMNS`) to the store; ``month`` dates the transitions.

    Returns
    -------
    ReviewResult
        ``rejected``: row (as in the file, header = row 1), case_id, reason (``unknown_case``,
        ``unknown_decision``, ``illegal_transition``, ``bad_date``), from_state, to_state.
    """
    led = ledger.reindex(columns=list(LEDGER_COLUMNS))
    with store.connect_read(db) as con:
        if (store.imported(con, "ledger")["content_sha256"] == sha256).any():
            return ReviewResult(True, pd.DataFrame(), 0, pd.DataFrame(columns=["row", "case_id", "reason"]))
    with store.writing(db) as con:
        states = dict(con.execute("SELECT case_id, state FROM cases").fetchall())
        moves, visits, rejects = _walk(led, states)
        src = f"ledger:{sha256[:12]}"
        mv = pd.DataFrame(moves, columns=["case_id", "from_state", "to_state", "note"])
        if len(mv):
            base = con.execute("SELECT case_id, max(seq) AS seq0 FROM case_history GROUP BY case_id").df()
            mv = mv.merge(base, on="case_id", how="left")
            mv["seq"] = mv["seq0"].fillna(0).astype(int) + mv.groupby("case_id").cumcount() + 1
            store.insert_frame(con, "case_history", mv.assign(month=month, source=src))
            last = mv.drop_duplicates("case_id", keep="last")
            con.register("_last", last[["case_id", "to_state"]])
            con.execute("UPDATE cases SET state = _last.to_state FROM _last WHERE cases.case_id = _last.case_id")
            cleared = mv[mv["to_state"].isin(["elimination_proposed", "closed"])][["case_id"]].drop_duplicates()
            con.register("_cleared", cleared)
            con.execute("UPDATE flags SET cleared_month = ? WHERE cleared_month IS NULL AND case_id IN "
                        "(SELECT case_id FROM _cleared)", [month])
        vis = pd.DataFrame(visits, columns=["case_id", "visit_date", "result", "visitor", "rectification"])
        store.insert_frame(con, "visits", vis.assign(source=src))
        changes = {"transitions": len(mv), "visits": len(vis), "rejected": len(rejects)}
        store.record_import(con, "ledger", month, source, {source: sha256}, sha256, changes)
    rej = pd.DataFrame(rejects, columns=["row", "case_id", "reason", "from_state", "to_state"])
    return ReviewResult(False, mv, len(vis), rej)
