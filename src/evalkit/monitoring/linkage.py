"""Linking department records to the rural population: exact on the ID number, else probabilistic.

1. **Normalize** each ID (strip, upper-case ``x``; a 15-digit ID becomes 18 digits with ``19``
   and its check character, :mod:`evalkit.ids`) and classify it: valid, bad check character,
   missing, malformed.
2. **Pseudonymize** valid IDs with a keyed hash (HMAC-SHA256, :func:`pseudonymize`; the key lives
   in a local file created on first use, :func:`load_key`) before anything is matched, so the
   match tables never hold an ID number.
3. **Exact** join of records and persons on the pseudonym.
4. **Probabilistic** (Fellegi-Sunter with splink on DuckDB) for the records left — missing,
   invalid, or valid but unknown IDs — on name, birth date and village. The m probabilities are
   estimated from the pairs the exact step confirmed (labels), the u probabilities by random
   sampling; the best candidate of each record is linked when its match probability reaches the
   policy's ``accept`` threshold and it beats the runner-up clearly, sent to clerical review
   between ``review`` and ``accept`` (or when two candidates tie), and left unlinked below.

See ``docs/methods`` (h13_methods) for the model and its measured precision and recall.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from evalkit.config import Policy
from evalkit.errors import ConfigError
from evalkit.ids import check_digit

__all__ = ["LinkagePolicy", "LinkResult", "load_key", "normalize_ids", "pseudonymize", "link_records",
           "PERSON_COLUMNS", "RECORD_COLUMNS"]

#: Columns :func:`link_records` needs of the persons (the rural population).
PERSON_COLUMNS = ("person_id", "household_id", "id_number", "name", "birth_date", "village_code")
#: Columns it needs of the department records (``record_key`` unique).
RECORD_COLUMNS = ("record_key", "id_number", "name", "birth_date", "village_code")
_LINK_COLUMNS = ["record_key", "person_id", "household_id", "match_type", "match_weight", "match_probability"]


@dataclass(frozen=True)
class LinkagePolicy:
    """Thresholds of the probabilistic step (``[monitoring.linkage]`` of the policy)."""

    accept: float
    review: float
    margin: float
    u_max_pairs: int
    seed: int

    @classmethod
    def from_policy(cls, policy: Policy) -> "LinkagePolicy":
        """Read ``[monitoring.linkage]``; a missing key is a :class:`ConfigError`."""
        try:
            s = policy.section("monitoring")["linkage"]
            return cls(float(s["accept_match_probability"]), float(s["review_match_probability"]),
                       float(s["min_weight_margin"]), int(s["u_max_pairs"]), int(s["seed"]))
        except KeyError as e:
            raise ConfigError(f"policy has no [monitoring.linkage] {e.args[0]}") from None


@dataclass
class LinkResult:
    """Links (one row per linked record), the clerical-review list (candidate pairs) and counts."""

    links: pd.DataFrame
    review: pd.DataFrame
    counts: dict[str, int]


def load_key(path: str | Path) -> bytes:
    """The pseudonymization key stored at ``path``; created (32 random bytes, mode 0600) on first use.

    Keep it outside every output directory: whoever holds it can test a guessed ID number.
    """
    p = Path(path)
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    key = p.read_bytes()
    if len(key) < 16:
        raise ConfigError(f"pseudonymization key {p} is too short ({len(key)} bytes)")
    return key


def normalize_ids(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Normalized 18-character IDs (null unless valid) and each value's status.

    Returns
    -------
    (Series, Series)
        The ID where ``status == 'valid'`` (15-digit IDs converted), else null; status one of
        ``valid``, ``bad_check`` (right shape, wrong check character), ``missing``, ``malformed``.
    """
    t = s.astype("str").str.strip().str.upper()
    t = t.where(t.notna() & (t != "") & (t.str.upper() != "NAN"))
    is15 = t.str.fullmatch(r"[0-9]{15}").fillna(False).astype(bool)
    first17 = (t.str.slice(0, 6) + "19" + t.str.slice(6, 15)).where(is15)
    t = t.where(~is15, first17 + check_digit(first17))
    shape = t.str.fullmatch(r"[0-9]{17}[0-9X]").fillna(False).astype(bool)
    ok = shape & (check_digit(t.str.slice(0, 17).where(shape)) == t.str.slice(17, 18)).fillna(False).astype(bool)
    status = np.select([ok.to_numpy(), shape.to_numpy(), t.isna().to_numpy()],
                       ["valid", "bad_check", "missing"], "malformed")
    return t.where(ok), pd.Series(status, index=s.index)


def pseudonymize(ids: pd.Series, key: bytes) -> pd.Series:
    """HMAC-SHA256 (hex, first 32 characters) of each non-null ID under ``key``; nulls stay null.

    Returns an Arrow-backed string Series (compact for millions of persons).
    """
    block = 64
    k = hashlib.sha256(key).digest() if len(key) > block else key
    k = k.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in k))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in k))

    def one(v: str) -> str:
        # hashlib has no vectorized form; copying the keyed states is HMAC without re-keying
        i = inner.copy()
        i.update(v.encode("ascii"))
        o = outer.copy()
        o.update(i.digest())
        return o.hexdigest()[:32]

    chunks = []
    step = 1_000_000  # Python strings live one chunk at a time
    for a in range(0, len(ids), step):
        part = ids.iloc[a:a + step]
        vals = part.to_numpy(dtype=object, na_value=None)
        chunks.append(pa.array([None if v is None else one(v) for v in vals], type=pa.string()))
    arr = pa.chunked_array(chunks, type=pa.string())
    return pd.Series(pd.arrays.ArrowExtensionArray(arr), index=ids.index)


def _exact(rec: pd.DataFrame, per: pd.DataFrame) -> pd.DataFrame:
    m = rec[["record_key", "pid"]].dropna().merge(per[["pid", "person_id", "household_id", "row"]], on="pid")
    return m.drop(columns="pid").assign(match_type="exact_id", match_weight=np.inf, match_probability=1.0)


def _settings(n_persons: int) -> Any:
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="link_only", unique_id_column_name="uid",
        probability_two_random_records_match=1.0 / max(n_persons, 2),
        comparisons=[cl.LevenshteinAtThresholds("name", [1]), cl.LevenshteinAtThresholds("birth_date", [1]),
                     cl.ExactMatch("village_code"), cl.ExactMatch("township_code")],
        blocking_rules_to_generate_predictions=[block_on("village_code", "birth_date"),
                                                block_on("name", "birth_date"), block_on("name", "village_code")],
        retain_matching_columns=False, retain_intermediate_calculation_columns=False)


def _frame(df: pd.DataFrame, uid: np.ndarray) -> pa.Table:
    """The comparison columns as an Arrow table (no Python objects per row)."""
    def col(c: str) -> pa.ChunkedArray | pa.Array:
        return pc.cast(pa.array(df[c], from_pandas=True) if not isinstance(df[c].dtype, pd.ArrowDtype)
                       else df[c].array._pa_array, pa.string())

    village = col("village_code")
    return pa.table({"uid": pa.array(uid, type=pa.int64()), "name": pc.replace_substring(col("name"), " ", ""),
                     "birth_date": col("birth_date"), "village_code": village,
                     "township_code": pc.utf8_slice_codeunits(village, 0, 9)})


def _splink_scores(left: pa.Table, per: pa.Table, labels: pd.DataFrame, lp: LinkagePolicy) -> pd.DataFrame:
    """Scored candidate pairs (record uid, person uid, weight, probability) from splink."""
    import logging

    from splink import DuckDBAPI, Linker

    logging.getLogger("splink").setLevel(logging.ERROR)
    db = DuckDBAPI()
    a = db.register(left, dataset_display_name="records")
    b = db.register(per, dataset_display_name="persons")
    linker = Linker([a, b], _settings(per.num_rows), log_level=logging.ERROR)
    linker.training.estimate_u_using_random_sampling(max_pairs=lp.u_max_pairs, seed=lp.seed, num_chunks=1)
    if len(labels):
        lab = pd.DataFrame({"source_dataset_l": "records", "uid_l": labels["uid_l"].to_numpy(),
                            "source_dataset_r": "persons", "uid_r": labels["uid_r"].to_numpy()})
        linker.training.estimate_m_from_pairwise_labels(db.register(lab, table_name="id_labels"))
    pred = linker.inference.predict(threshold_match_probability=lp.review / 10).as_pandas_dataframe()
    if not len(pred):
        return pd.DataFrame(columns=["uid_rec", "uid_per", "match_weight", "match_probability"])
    rec_left = pred["source_dataset_l"] == "records"
    return pd.DataFrame({"uid_rec": np.where(rec_left, pred["uid_l"], pred["uid_r"]),
                         "uid_per": np.where(rec_left, pred["uid_r"], pred["uid_l"]),
                         "match_weight": pred["match_weight"].to_numpy(),
                         "match_probability": pred["match_probability"].to_numpy()})


def _decide(scores: pd.DataFrame, lp: LinkagePolicy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accepted best candidates and the clerical-review pairs from scored candidates."""
    s = scores.sort_values(["uid_rec", "match_weight", "uid_per"], ascending=[True, False, True], kind="stable")
    rank = s.groupby("uid_rec").cumcount()
    second = s[rank == 1].set_index("uid_rec")["match_weight"]
    best = s[rank == 0].set_index("uid_rec")
    gap = (best["match_weight"] - second.reindex(best.index)).fillna(np.inf)
    clear = gap >= lp.margin
    accept = (best["match_probability"] >= lp.accept) & clear
    review_rec = best.index[~accept & (best["match_probability"] >= lp.review)]
    links = best[accept].reset_index()
    review = s[s["uid_rec"].isin(review_rec) & (s["match_probability"] >= lp.review / 10) & (rank < 3)]
    return links, review.reset_index(drop=True)


def link_records(records: pd.DataFrame, persons: pd.DataFrame, key: bytes, lp: LinkagePolicy) -> LinkResult:
    """Link department records to persons: exact on the pseudonymized ID, else probabilistic.

    Parameters
    ----------
    records : DataFrame
        :data:`RECORD_COLUMNS` (``record_key`` unique; ID as received, any form).
    persons : DataFrame
        :data:`PERSON_COLUMNS` (valid 18-digit IDs; ``birth_date`` 'YYYY-MM-DD').
    key : bytes
        Pseudonymization key (:func:`load_key`).
    lp : LinkagePolicy

    Returns
    -------
    LinkResult
        ``links``: record_key, person_id, household_id, match_type (exact_id / probabilistic),
        match_weight, match_probability; ``review``: record_key, person_id, household_id,
        match_weight, match_probability (up to 3 candidates per record); ``counts`` by outcome.
    """
    norm, status = normalize_ids(records["id_number"])
    rec = records[["record_key", "name", "birth_date", "village_code"]].assign(
        pid=pseudonymize(norm, key), id_status=status.to_numpy())
    per = persons[["person_id", "household_id", "name", "birth_date", "village_code"]].assign(
        pid=pseudonymize(persons["id_number"], key), row=np.arange(len(persons)))
    exact = _exact(rec, per)
    rest = rec[~rec["record_key"].isin(exact["record_key"])].reset_index(drop=True)
    exact = exact.astype({"person_id": object, "household_id": object})
    links, review = exact[_LINK_COLUMNS], pd.DataFrame(columns=_LINK_COLUMNS[:3] + _LINK_COLUMNS[4:])
    if len(rest):
        rng = np.random.default_rng(lp.seed)
        lab = exact.iloc[np.sort(rng.permutation(len(exact))[:5000])]
        left_src = pd.concat([rest, rec.set_index("record_key").loc[lab["record_key"]].reset_index()],
                             ignore_index=True)
        left = _frame(left_src, np.arange(len(left_src)))
        right = _frame(per, np.arange(len(per)))
        labels = pd.DataFrame({"uid_l": np.arange(len(rest), len(left_src)), "uid_r": lab["row"].to_numpy()})
        scores = _splink_scores(left, right, labels, lp)
        scores = scores[scores["uid_rec"] < len(rest)]
        acc, rev = _decide(scores, lp)
        rk = rest["record_key"].to_numpy()

        def named(d: pd.DataFrame) -> pd.DataFrame:
            u_r, u_p = d["uid_rec"].to_numpy(dtype=np.int64), d["uid_per"].to_numpy(dtype=np.int64)
            return pd.DataFrame({"record_key": rk[u_r], "person_id": per["person_id"].iloc[u_p].to_numpy(dtype=object),
                                 "household_id": per["household_id"].iloc[u_p].to_numpy(dtype=object),
                                 "match_weight": d["match_weight"].to_numpy(),
                                 "match_probability": d["match_probability"].to_numpy()})

        links = pd.concat([links, named(acc).assign(match_type="probabilistic")[_LINK_COLUMNS]], ignore_index=True)
        review = named(rev)
    counts = {"records": len(records), "exact": len(exact), "probabilistic": len(links) - len(exact),
              "review": int(review["record_key"].nunique()), **{f"id_{k}": int(v) for k, v in
                                                                status.value_counts().items()}}
    counts["unlinked"] = counts["records"] - len(links) - counts["review"]
    return LinkResult(links.sort_values("record_key", kind="stable").reset_index(drop=True), review, counts)
