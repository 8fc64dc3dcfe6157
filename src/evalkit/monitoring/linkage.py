"""Linking department records to the rural population: exact on the ID number, else probabilistic.

1. **Normalize** each ID (strip, upper-case ``x``; a 15-digit ID becomes 18 digits with ``19``
   and its check character, :mod:`evalkit.ids`) and classify it: valid, bad check character,
   missing, malformed.
2. **Pseudonymize** valid IDs with a keyed hash (HMAC-SHA256, :func:`hmac_sql` computed by
   DuckDB on whole columns; the key lives in a local file created on first use, :func:`load_key`)
   before anything is matched, so the match tables never hold an ID number.
3. **Exact** join of records and persons on the pseudonym, in DuckDB: the persons are a query over
   the dataset's files (17 million rows stream through one scan, never a Python frame).
4. **Probabilistic** (Fellegi-Sunter with splink on DuckDB) for the records left — missing,
   invalid, or valid but unknown IDs — on name, birth date and village, against the persons who
   share a blocking key with one of them plus a fixed random sample of everybody (for the u
   probabilities). The m probabilities are estimated from the pairs the exact step confirmed
   (labels); the best candidate of each record is linked when its match probability reaches the
   policy's ``accept`` threshold and it beats the runner-up clearly, sent to clerical review
   between ``review`` and ``accept`` (or when two candidates tie), and left unlinked below.

See docs/methods.md §11 for the model and its measured precision and recall.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from evalkit.config import Policy
from evalkit.errors import ConfigError
from evalkit.ids import check_digit

__all__ = ["LinkagePolicy", "LinkResult", "load_key", "normalize_ids", "pseudonymize", "link_records",
           "PERSON_COLUMNS", "RECORD_COLUMNS", "hmac_sql", "connect", "U_SAMPLE"]

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


def hmac_sql(column: str, key: bytes) -> str:
    """A DuckDB expression: the pseudonym of the VARCHAR ``column`` (first 32 hex characters of
    HMAC-SHA256 under ``key``), computed by the database engine on whole columns."""
    block = 64
    k = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
    ipad, opad = bytes(b ^ 0x36 for b in k).hex(), bytes(b ^ 0x5C for b in k).hex()
    return f"left(sha256(unhex('{opad}') || unhex(sha256(unhex('{ipad}') || encode({column})))), 32)"


def connect(memory_limit: str = "4GB") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for linkage: bounded memory (spills to a temporary folder)."""
    tmp = Path(tempfile.gettempdir()) / f"evalkit_duckdb_{os.getpid()}"
    con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": str(tmp),
                                 "preserve_insertion_order": False})
    try:
        con.execute("SET enable_progress_bar = false")
    except duckdb.InvalidInputException:
        # Inside a Jupyter kernel DuckDB refuses to touch the setting without ipywidgets; there the
        # bar is already off by default.
        pass
    return con


def pseudonymize(ids: pd.Series, key: bytes) -> pd.Series:
    """HMAC-SHA256 (hex, first 32 characters) of each non-null ID under ``key``; nulls stay null.

    Returns an Arrow-backed string Series in the order of ``ids``.
    """
    con = connect("1GB")
    try:
        con.register("_ids", pa.table({"i": pa.array(np.arange(len(ids)), pa.int64()),
                                       "v": pa.array(ids.astype(object).to_numpy(), pa.string(), from_pandas=True)}))
        out = con.sql(f"SELECT {hmac_sql('v', key)} AS p FROM _ids ORDER BY i").to_arrow_table()["p"]
    finally:
        con.close()
    return pd.Series(pd.arrays.ArrowExtensionArray(out), index=ids.index)


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


def _splink_scores(left: pa.Table, per: pa.Table, labels: pd.DataFrame, lp: LinkagePolicy,
                   n_persons: int) -> pd.DataFrame:
    """Scored candidate pairs (record uid, person uid, weight, probability) from splink."""
    import logging

    from splink import DuckDBAPI, Linker

    logging.getLogger("splink").setLevel(logging.ERROR)
    db = DuckDBAPI()
    a = db.register(left, dataset_display_name="records")
    b = db.register(per, dataset_display_name="persons")
    linker = Linker([a, b], _settings(n_persons), log_level=logging.ERROR)
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


#: Persons drawn at random into the probabilistic step beside the candidates, for the u probabilities.
U_SAMPLE = 200_000


def _exact_sql(con: duckdb.DuckDBPyConnection, persons_sql: str, key: bytes) -> pd.DataFrame:
    """Records whose pseudonymized ID is exactly one person's: one scan of the persons, hashed by the
    engine. An ID held by two persons of the register (a register error) links nobody here: the
    record goes on to the probabilistic step, which weighs name, birth date and village."""
    return con.execute(f"""
        SELECT r.uid, r.record_key, p.person_id, p.household_id, p.name, p.birth_date, p.village_code
        FROM _rec r JOIN (SELECT {hmac_sql('id_number', key)} AS pid, person_id, household_id,
                                 replace(name, ' ', '') AS name, birth_date, village_code FROM ({persons_sql}))
             p ON r.pid = p.pid
        QUALIFY count(*) OVER (PARTITION BY r.uid) = 1 ORDER BY r.uid""").df()


def _candidates(con: duckdb.DuckDBPyConnection, persons_sql: str, n_persons: int, seed: int) -> pd.DataFrame:
    """Persons who share a blocking key with an unlinked record, and a fixed random sample of all
    persons (so that random pairs estimate u as in the whole population): one scan."""
    share = min(1.0, U_SAMPLE / max(n_persons, 1))
    return con.execute(f"""
        WITH p AS (SELECT person_id, household_id, replace(name, ' ', '') AS name, birth_date, village_code
                   FROM ({persons_sql}))
        SELECT * FROM p
        WHERE EXISTS (SELECT 1 FROM _rest r WHERE r.village_code = p.village_code AND r.birth_date = p.birth_date)
           OR EXISTS (SELECT 1 FROM _rest r WHERE r.name = p.name AND r.birth_date = p.birth_date)
           OR EXISTS (SELECT 1 FROM _rest r WHERE r.name = p.name AND r.village_code = p.village_code)
           OR hash(person_id, {int(seed)}) % 1000000 < {int(round(share * 1e6))}
        ORDER BY person_id""").df()


def _records_table(records: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Records with uid, normalized ID, comparison columns; and each ID's status."""
    norm, status = normalize_ids(records["id_number"])
    rec = pd.DataFrame({"uid": np.arange(len(records)), "record_key": records["record_key"].to_numpy(),
                        "name": records["name"].astype("string").str.replace(" ", "", regex=False).to_numpy(),
                        "birth_date": records["birth_date"].astype("string").to_numpy(),
                        "village_code": records["village_code"].astype("string").to_numpy(),
                        "norm_id": norm.to_numpy(dtype=object)})
    return rec, status


def _probabilistic(con: duckdb.DuckDBPyConnection, rest: pd.DataFrame, exact: pd.DataFrame, persons_sql: str,
                   n_persons: int, lp: LinkagePolicy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """splink on the unlinked records against their candidates; accepted links and review pairs."""
    con.register("_rest", rest[["name", "birth_date", "village_code"]])
    cand = _candidates(con, persons_sql, n_persons, lp.seed)
    rng = np.random.default_rng(lp.seed)
    lab = exact.iloc[np.sort(rng.permutation(len(exact))[:5000])]
    per = pd.concat([cand, lab[cand.columns]], ignore_index=True).drop_duplicates("person_id", ignore_index=True)
    pos = pd.Series(np.arange(len(per)), index=per["person_id"].to_numpy())
    left_src = pd.concat([rest, lab.assign(name=lab["rec_name"], birth_date=lab["rec_birth_date"],
                                           village_code=lab["rec_village_code"])], ignore_index=True)
    left = _frame(left_src, np.arange(len(left_src)))
    labels = pd.DataFrame({"uid_l": np.arange(len(rest), len(left_src)),
                           "uid_r": pos.reindex(lab["person_id"].to_numpy()).to_numpy()})
    scores = _splink_scores(left, _frame(per, np.arange(len(per))), labels, lp, n_persons)
    acc, rev = _decide(scores[scores["uid_rec"] < len(rest)], lp)
    rk = rest["record_key"].to_numpy()

    def named(d: pd.DataFrame) -> pd.DataFrame:
        u_r, u_p = d["uid_rec"].to_numpy(dtype=np.int64), d["uid_per"].to_numpy(dtype=np.int64)
        return pd.DataFrame({"record_key": rk[u_r], "person_id": per["person_id"].to_numpy(dtype=object)[u_p],
                             "household_id": per["household_id"].to_numpy(dtype=object)[u_p],
                             "match_weight": d["match_weight"].to_numpy(),
                             "match_probability": d["match_probability"].to_numpy()})

    return named(acc).assign(match_type="probabilistic")[_LINK_COLUMNS], named(rev)


def link_records(records: pd.DataFrame, persons: pd.DataFrame | str, key: bytes, lp: LinkagePolicy,
                 con: duckdb.DuckDBPyConnection | None = None) -> LinkResult:
    """Link department records to persons: exact on the pseudonymized ID, else probabilistic.

    The persons stay in the database engine: their IDs are pseudonymized and joined there in one
    scan; only the persons who share a blocking key with a record the exact step left (and a
    fixed random sample, for the u probabilities) go to splink.

    Parameters
    ----------
    records : DataFrame
        :data:`RECORD_COLUMNS` (``record_key`` unique; ID as received, any form).
    persons : DataFrame or str
        :data:`PERSON_COLUMNS` (valid 18-digit IDs; ``birth_date`` 'YYYY-MM-DD'), as a frame or as
        a DuckDB query over files (``con`` then runs it).
    key : bytes
        Pseudonymization key (:func:`load_key`).
    lp : LinkagePolicy
    con : duckdb connection, optional
        Where to run (default: a new :func:`connect`).

    Returns
    -------
    LinkResult
        ``links``: record_key, person_id, household_id, match_type (exact_id / probabilistic),
        match_weight, match_probability; ``review``: record_key, person_id, household_id,
        match_weight, match_probability (up to 3 candidates per record); ``counts`` by outcome.
    """
    own = con is None
    con = connect() if own else con
    try:
        if isinstance(persons, pd.DataFrame):
            con.register("_persons_frame", persons[list(PERSON_COLUMNS)])
            persons = "SELECT * FROM _persons_frame"
        rec, status = _records_table(records)
        con.register("_rec_in", rec)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _rec AS SELECT uid, record_key, "
                    f"{hmac_sql('norm_id', key)} AS pid FROM _rec_in")
        exact = _exact_sql(con, persons, key)
        exact = exact.merge(rec[["uid", "name", "birth_date", "village_code"]].rename(
            columns=lambda c: c if c == "uid" else f"rec_{c}"), on="uid")
        links = exact.assign(match_type="exact_id", match_weight=np.inf, match_probability=1.0)[_LINK_COLUMNS]
        review = pd.DataFrame(columns=_LINK_COLUMNS[:3] + _LINK_COLUMNS[4:])
        rest = rec[~rec["uid"].isin(exact["uid"])].reset_index(drop=True)
        if len(rest):
            n_persons = int(con.execute(f"SELECT count(*) FROM ({persons})").fetchall()[0][0])
            acc, review = _probabilistic(con, rest, exact, persons, n_persons, lp)
            links = pd.concat([links.astype({"person_id": object, "household_id": object}), acc], ignore_index=True)
    finally:
        if own:
            con.close()
    counts = {"records": len(records), "exact": len(exact), "probabilistic": len(links) - len(exact),
              "review": int(review["record_key"].nunique()), **{f"id_{k}": int(v) for k, v in
                                                                status.value_counts().items()}}
    counts["unlinked"] = counts["records"] - len(links) - counts["review"]
    return LinkResult(links.sort_values("record_key", kind="stable").reset_index(drop=True), review, counts)
