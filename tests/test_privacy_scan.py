"""Privacy scan: names and ID numbers in the wrong columns and in free text never leave unmasked.

A CSV dataset is seeded with ID numbers (with and without separators, a wrong check digit, the old
15-digit form) and members' names in wrong columns (a shifted row) and in a 备注 free-text column.
Then ``evalkit validate`` and an ``evalkit batch`` of a notebook that prints, writes and raises the
members table are run, and every output (console text, HTML, JSON, CSV, logs, executed notebooks
and the XML inside every .xlsx) is scanned for any full ID number or name of the input.
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from evalkit.cli import main
from evalkit.privacy import Masker, mask_frame

NB = Path(__file__).resolve().parent / "notebooks" / "leaky_members.ipynb"
TABLES = ("counties", "villages", "households", "members", "field_survey", "truth")


def _seeded_dataset(src: Path, dst: Path) -> tuple[Path, set[str], set[str]]:
    """CSV dataset with personal data seeded in wrong places; (dir, ID numbers, names) of the input."""
    dst.mkdir(parents=True)
    frames = {}
    for t in TABLES:
        single = src / f"{t}.parquet"
        parts = [single] if single.is_file() else sorted((src / t).glob("*.parquet"))
        frames[t] = pd.concat([pd.read_parquet(f) for f in parts], ignore_index=True).astype(object)
    m, hh = frames["members"], frames["households"]
    ids, names = m["id_number"].astype(str), m["name"].astype(str)
    # a shifted row: the name lands in sex, the ID number in relation_to_head, birth year in name
    m.loc[3, ["name", "sex", "id_number", "relation_to_head"]] = ["1985", names[4], "", ids[4]]
    # ID numbers with separators / wrong check digit / the 15-digit form inside free text
    bad_check = ids[5][:17] + ("0" if ids[5][17] != "0" else "1")
    old15 = ids[6][:6] + ids[6][8:17]
    hh["备注"] = ""
    hh.loc[0, "备注"] = f"户主{names[7]}，身份证 {ids[7][:6]} {ids[7][6:14]} {ids[7][14:]}，电话联系"
    hh.loc[1, "备注"] = f"{names[8]}之子 {ids[8][:6]}-{ids[8][6:14]}-{ids[8][14:]}"
    hh.loc[2, "备注"] = f"核对 {bad_check} / 老证 {old15}"
    hh.loc[3, "household_size"] = f"{names[9]} {ids[9]}"  # free text in a number column: quarantined
    for t, f in frames.items():
        f.to_csv(dst / f"{t}.csv", index=False)
    secret_ids = set(ids[ids.str.len() == 18]) | {bad_check, old15}
    secret_names = {n for n in names if len(n) >= 2}
    return dst, secret_ids, secret_names


def _texts(root: Path) -> list[tuple[str, str]]:
    """(where, text) of every file under ``root``: text files as text (JSON also decoded), and
    every XML part of every Excel workbook."""
    out = []
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix()
        if f.suffix in (".xlsx", ".xlsm"):
            with zipfile.ZipFile(f) as z:
                out += [(f"{rel}!{n}", z.read(n).decode("utf-8", "replace")) for n in z.namelist()]
            continue
        txt = f.read_bytes().decode("utf-8", "replace")
        out.append((rel, txt))
        if f.suffix in (".json", ".ipynb"):
            try:
                out.append((f"{rel} (decoded)", json.dumps(json.loads(txt), ensure_ascii=False)))
            except ValueError:
                pass
    return out


def _hits(texts: list[tuple[str, str]], ids: set[str], names: set[str]) -> list[str]:
    found = []
    name_re = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))
    for where, txt in texts:
        joined = re.sub(r"(?<=\d)[ \-](?=\d)", "", txt)  # 110101 19900101 1234 is still the ID
        found += [f"{where}: ID {i}" for i in ids if i in joined]
        found += [f"{where}: name {m.group(0)}" for m in name_re.finditer(txt)]
    return found


@pytest.fixture(scope="module")
def seeded(small_province, tmp_path_factory):
    return _seeded_dataset(small_province, tmp_path_factory.mktemp("seeded") / "data")


def test_the_scan_itself_finds_unmasked_data(seeded, tmp_path):
    # guard against a scan that cannot fail: the raw input is full of hits
    data, ids, names = seeded
    hits = _hits(_texts(data), ids, names)
    assert any("ID" in h for h in hits) and any("name" in h for h in hits)
    assert any("households.csv: ID" in h for h in hits)


def test_masker_finds_ids_by_content_and_names_anywhere():
    m = Masker(["张三丰", "李四"])
    assert m.text("户主张三丰 110105-19491231-002X 与李四") == "户主张*丰 110105************2X 与李*"
    assert m.text("15位 110105491231002，18位错校验 110105194912310021") == \
        "15位 110105*******02，18位错校验 110105**********21"
    assert m.text("0.123456789012345 和 2020 年") == "0.123456789012345 和 2020 年"  # a float is no ID
    df = pd.DataFrame({"备注": ["见 110105194912310021"], "sex": ["王小明"], "姓名": ["王小明"], "n": [-3]})
    got = mask_frame(df)
    assert got.loc[0, "备注"] == "见 110105**********21" and got.loc[0, "sex"] == "王*明"
    assert got.loc[0, "n"] == -3


def test_validate_shows_and_writes_no_personal_data(seeded, tmp_path, capsys):
    data, ids, names = seeded
    q = tmp_path / "q"
    code = main(["validate", str(data), "--out", str(q)])
    out = capsys.readouterr()
    assert code in (1, 2)
    assert (q / "validation_report.csv").is_file()
    texts = _texts(q) + [("stdout", out.out), ("stderr", out.err)]
    assert _hits(texts, ids, names) == []
    # the report still says where: the masked ID of the shifted row is there
    assert "**********" in (q / "validation_report.csv").read_text(encoding="utf-8-sig")


@pytest.mark.slow
def test_batch_outputs_console_and_errors_hold_no_personal_data(seeded, tmp_path, capsys):
    data, ids, names = seeded
    out = tmp_path / "out"
    code = main(["batch", str(NB), "--data", str(data), "--out", str(out), "--workers", "2",
                 "--counties", "610627,610631", "--param", "fail_on=610631"])
    printed = capsys.readouterr()
    assert code == 1  # 610631 fails on purpose, its error quoting the members table
    run = json.loads((out / "610631" / "run.json").read_text(encoding="utf-8"))
    assert run["status"] == "failed" and "unreadable rows" in run["error"]
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for must in ("610627/leaky_members.html", "610627/leaky_members.ipynb", "610627/members_dump.xlsx",
                 "610627/members_dump.csv", "610627/kernel.log", "610627/results.json", "610631/run.json",
                 "summary.csv", "index.html", "manifest.json"):
        assert must in files
    texts = _texts(out) + [("stdout", printed.out), ("stderr", printed.err)]
    assert _hits(texts, ids, names) == []
    # masked, not dropped: the ledger still has one masked ID per member row
    dump = pd.read_csv(out / "610627" / "members_dump.csv", dtype=str)
    assert dump["id_number"].dropna().str.fullmatch(r"\d{6}\*{10}[\dX]{2}").all()
