"""Write the deterministic fixture of the R cross-check (run once; the CSVs are committed).

    python tests/fixtures_r/make_fixture.py
    Rscript tests/fixtures_r/crosscheck.R > tests/fixtures_r/crosscheck_R_output.txt

register.csv : household register (the frame) of one county, 10 villages in 3 village strata.
fixture.csv  : a field survey of that register for 2018 with unequal weights (villages drawn
               with arbitrary probabilities, households by SRS within village x household
               stratum), incomes around the 2018 line and some failed guarantees, so that both
               error rates are far from 0 and the design is clearly non-trivial.
Only numpy is used (no evalkit), so the fixture does not move when the sampler changes.
"""
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
COUNTY, YEAR, LINE = "610102", 2018, 2995.0  # LINE = policy poverty line of 2018
rng = np.random.default_rng(20240611)

strata = np.repeat(["poverty_village", "non_poverty_village", "deep_poverty_village"], [4, 3, 3])
vcodes = np.array([f"{COUNTY}{i:06d}" for i in range(1, 11)])
n_hh = rng.integers(30, 80, 10)
v = np.repeat(vcodes, n_hh)
n = v.size
pov = np.repeat(strata != "non_poverty_village", n_hh)
registered = rng.random(n) < np.where(pov, 0.45, 0.2)
exited = registered & (rng.random(n) < 0.75)
register = pd.DataFrame({
    "household_id": [f"{COUNTY}{i:010d}" for i in range(n)],
    "village_code": v, "county_code": COUNTY,
    "household_size": rng.integers(1, 8, n),
    "registered": registered,
    "registration_year": pd.Series(np.where(registered, 2014, np.nan)).astype("Int64"),
    "exit_year": pd.Series(np.where(exited, rng.integers(2015, YEAR + 2, n), np.nan)).astype("Int64"),
})  # some households exit after 2018: still 'poor' in 2018
ey = register["exit_year"].to_numpy(dtype=float, na_value=np.nan)
hs = np.where(registered & (ey <= YEAR), "exited", np.where(registered, "poor", "non_registered"))
register["_hs"] = hs
register["_stratum"] = np.repeat(strata, n_hh)

prob_village = dict(zip(vcodes, np.round(rng.uniform(0.15, 0.9, 10), 4)))
want = {"exited": 6, "poor": 2, "non_registered": 5}
key = rng.random(n)
register["_rank"] = pd.Series(key).groupby([v, hs]).rank().to_numpy()
register["_M"] = register.groupby(["village_code", "_hs"])["household_id"].transform("size")
take = register["_rank"].to_numpy() <= register["_hs"].map(want).to_numpy()
s = register.loc[take].copy()
m = s.groupby(["village_code", "_hs"])["household_id"].transform("size")
s["prob_village"] = s["village_code"].map(prob_village)
s["prob_household"] = m / s["_M"]
s["weight"] = 1.0 / (s["prob_village"] * s["prob_household"])
k = len(s)
fixture = pd.DataFrame({
    "county_code": COUNTY, "survey_year": YEAR, "household_id": s["household_id"],
    "village_code": s["village_code"], "stratum": s["_stratum"], "hh_stratum": s["_hs"],
    "prob_village": s["prob_village"], "prob_household": s["prob_household"], "weight": s["weight"],
    "household_size": s["household_size"],
    "surveyed_income_per_capita": np.round(LINE * rng.lognormal(0.45, 0.45, k), 2),
    **{g: rng.random(k) > 0.05 for g in ["food_clothing_ok", "education_ok", "medical_ok", "housing_ok", "water_ok"]},
    "approves": rng.random(k) < 0.9,
})
# one household exactly at the line: at the line is NOT above it (fails the income test)
fixture.iloc[0, fixture.columns.get_loc("surveyed_income_per_capita")] = LINE
fixture.to_csv(HERE / "fixture.csv", index=False)
register.drop(columns=[c for c in register.columns if c.startswith("_")]).to_csv(HERE / "register.csv", index=False)
print(len(fixture), "sampled households;", len(register), "register households")
