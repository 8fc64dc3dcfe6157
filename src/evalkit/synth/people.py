"""Synthetic people: household members, their names and 18-digit resident ID numbers.

ID numbers follow GB 11643 (county code + birth date + sequence, odd for men, + the ISO 7064
check character of :func:`evalkit.ids.check_digits`); names are drawn from common surnames and
given-name characters. Every draw comes from the county's random stream, in a fixed order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalkit.ids import check_digits

__all__ = ["draw_names", "draw_id_numbers", "draw_members", "HouseholdFeatures", "household_features"]

_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")  # noqa: E501 (a name pool)
_GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华平刚桂兰玉霞建国文辉力永红梅志林海燕春金凤云鹏宇浩东亮琴斌兵晶飞荣新利清波宁俊峰健凯德成亚")  # noqa: E501


def draw_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` synthetic Chinese names (Zipf-distributed surnames, one or two given characters)."""
    sur = np.array(_SURNAMES)[np.minimum(rng.zipf(1.25, n) - 1, len(_SURNAMES) - 1)]
    g = np.array(_GIVEN)
    one = g[rng.integers(0, len(g), n)]
    two = g[rng.integers(0, len(g), n)]
    single = rng.random(n) < 0.3
    return np.where(single, np.char.add(sur, one), np.char.add(np.char.add(sur, one), two)).astype(object)


def draw_id_numbers(county_code: str, birth_year: np.ndarray, male: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """18-digit ID numbers, unique within the county: county + birth date + sequence + check.

    Parameters
    ----------
    county_code : str
        6-digit county code (the address part of the number).
    birth_year : array of int
    male : array of bool
        Odd sequence numbers for men, even for women (GB 11643).
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray of str (object)
    """
    n_p = len(birth_year)
    month = rng.integers(1, 13, n_p)
    day = rng.integers(1, 29, n_p)
    bdate = birth_year * 10000 + month * 100 + day
    # Rank within (birth date, sex) keeps the sequence numbers of people born the same day apart.
    grp = pd.Series(bdate * 2 + male.astype(int))
    rank = grp.groupby(grp).cumcount().to_numpy()
    seqn = (rng.integers(0, 40, n_p) * 2 + rank * 2 * 40) % 1000
    seqn = seqn - (seqn % 2) + male.astype(int)
    # The spread above wraps at 1000 once a county has more than 12 people of one sex born the same
    # day (large counties); only groups that collide get plain consecutive numbers instead, so IDs
    # that were already unique do not change.
    key = pd.Series(bdate * 2000 + seqn)
    clash = grp.isin(grp[key.duplicated(keep=False).to_numpy()]).to_numpy()
    if clash.any():
        if rank[clash].max() >= 500:
            raise ValueError(f"county {county_code}: more than 500 people of one sex share a birth date")
        seqn[clash] = rank[clash] * 2 + male[clash].astype(int)
    first17 = np.char.add(np.char.add(county_code, bdate.astype(str)), np.char.zfill(seqn.astype(str), 3))
    return np.char.add(first17, check_digits(first17)).astype(object)


def _ages_and_relations(sizes: np.ndarray, forced_lab: np.ndarray, pos: np.ndarray, p_hh: np.ndarray,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ages (2014) and relation to the head; forced register blocks fix the head's age."""
    n_hh, n_p = len(sizes), len(p_hh)
    head_age = np.clip(np.where(sizes == 1, rng.normal(66, 12, n_hh), rng.normal(52, 12, n_hh)), 22, 92)
    # 'with labour' blocks need a working-age head, 'without labour' blocks an elderly one.
    head_age = np.where(forced_lab == 1, np.clip(head_age, 25, 58), head_age)
    head_age = np.where(forced_lab == -1, np.clip(head_age + 18, 66, 92), head_age)
    ha = head_age[p_hh]
    old_head = ha >= 62
    age = np.where(pos == 0, ha,
          np.where(pos == 1, ha + rng.normal(-2, 3, n_p),
          np.where(old_head & (pos >= 3), ha - 55 + rng.normal(0, 4, n_p) - 2 * (pos - 3),
                   ha - 27 + rng.normal(0, 4, n_p) - 2 * (pos - 2))))
    age = np.clip(np.round(age), 0, 99).astype(int)
    rel = np.where(pos == 0, "head", np.where(pos == 1, "spouse",
                   np.where(old_head & (pos >= 3), "grandchild", "child"))).astype(object)
    return age, rel


def draw_members(county_code: str, sizes: np.ndarray, forced_lab: np.ndarray, hh_ids: np.ndarray,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Members of every household: age, sex, health, labour capacity, schooling, insurance, ID.

    Parameters
    ----------
    county_code : str
    sizes : array of int
        Household sizes; members of household ``h`` are rows ``sum(sizes[:h])`` onwards, head first.
    forced_lab : array of int8
        1 = the household must have labour (able head), -1 = must not (no able member), 0 = free.
    hh_ids : array of str
    rng : numpy.random.Generator

    Returns
    -------
    DataFrame
        The ``members`` table of the canonical model, in household order.
    """
    n_hh = len(sizes)
    n_p = int(sizes.sum())
    p_hh = np.repeat(np.arange(n_hh), sizes)
    pos = np.arange(n_p) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    age, rel = _ages_and_relations(sizes, forced_lab, pos, p_hh, rng)
    head_male = rng.random(n_hh) < 0.85
    male = np.where(pos == 0, head_male[p_hh], np.where(pos == 1, ~head_male[p_hh], rng.random(n_p) < 0.52))
    disabled = rng.random(n_p) < (0.025 + 0.0025 * np.maximum(age - 45, 0))
    chronic = rng.random(n_p) < (0.04 + 0.006 * np.maximum(age - 40, 0))
    u = rng.random(n_p)
    working_age = (age >= 16) & (age < 65)
    lab = np.where(working_age & ~disabled & ~(chronic & (u < 0.3)), "able",
          np.where(working_age, np.where(u < 0.6, "weak", "none"),
          np.where((age >= 65) & (age < 75), np.where(u < 0.55, "weak", "none"), "none"))).astype(object)
    fl = forced_lab[p_hh]
    lab = np.where((fl == 1) & (pos == 0), "able", lab)
    lab = np.where((fl == -1) & (lab == "able"), "weak", lab)
    in_school = np.where((age >= 6) & (age <= 15), rng.random(n_p) < 0.975,
                np.where((age >= 16) & (age <= 18), rng.random(n_p) < 0.75,
                np.where((age >= 19) & (age <= 22), rng.random(n_p) < 0.3, False)))
    dropout = (age >= 6) & (age <= 15) & ~in_school
    insured = rng.random(n_p) < 0.985
    birth_year = 2014 - age
    id_numbers = draw_id_numbers(county_code, birth_year, male, rng)
    person_ids = np.char.add(hh_ids[p_hh].astype(str), np.char.zfill((pos + 1).astype(str), 2)).astype(object)
    return pd.DataFrame({
        "person_id": person_ids, "household_id": hh_ids[p_hh], "name": draw_names(rng, n_p),
        "id_number": id_numbers, "sex": np.where(male, "male", "female").astype(object),
        "birth_year": birth_year.astype(np.int64), "relation_to_head": rel, "labour_capacity": lab,
        "disability": disabled, "chronic_illness": chronic, "in_school": in_school.astype(bool),
        "compulsory_school_dropout": dropout, "medical_insurance": insured,
    })


@dataclass(frozen=True)
class HouseholdFeatures:
    """Household features derived from the members as of 2014 (one array entry per household)."""

    n_able: np.ndarray
    able_share: np.ndarray
    has_disability: np.ndarray
    has_chronic: np.ndarray
    dependent_share: np.ndarray
    no_labour: np.ndarray
    n_school: np.ndarray
    has_dropout: np.ndarray
    all_insured: np.ndarray
    n_aged_60: np.ndarray
    is_elderly: np.ndarray


def household_features(members: pd.DataFrame, sizes: np.ndarray) -> HouseholdFeatures:
    """Aggregate :func:`draw_members`' table (in household order) to household features."""
    n_hh = len(sizes)
    p_hh = np.repeat(np.arange(n_hh), sizes)
    age = 2014 - members["birth_year"].to_numpy()
    lab = members["labour_capacity"].to_numpy()

    def hsum(x: np.ndarray) -> np.ndarray:
        return np.bincount(p_hh, weights=x.astype(float), minlength=n_hh)

    n_able = hsum(lab == "able")
    n_aged_60 = hsum(age >= 60)
    return HouseholdFeatures(
        n_able=n_able, able_share=n_able / sizes,
        has_disability=hsum(members["disability"].to_numpy()) > 0,
        has_chronic=hsum(members["chronic_illness"].to_numpy()) > 0,
        dependent_share=hsum((age < 16) | (age >= 65)) / sizes,
        no_labour=n_able == 0,
        n_school=hsum(members["in_school"].to_numpy()),
        has_dropout=hsum(members["compulsory_school_dropout"].to_numpy()) > 0,
        all_insured=hsum(~members["medical_insurance"].to_numpy()) == 0,
        n_aged_60=n_aged_60,
        is_elderly=n_aged_60 == sizes,
    )
