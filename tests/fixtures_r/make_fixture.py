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

# ---- two-stage fixture with population sizes (finite-population corrections) ----------------
# County 610103: 15 poverty villages of which 14 are drawn (a near-census stratum) and 10
# non-poverty villages of which 4 are drawn, both by SRS without replacement; households by SRS
# without replacement within village x household stratum. register_fpc.csv / villages_fpc.csv are
# the register (the frame with the village strata); fixture_fpc.csv is the field survey, with the
# register's population sizes as extra columns for R only (N_villages per village stratum,
# N_households per village x household stratum).
rng2 = np.random.default_rng(20261129)
C2 = "610103"
n_v = {"poverty_village": (15, 14), "non_poverty_village": (10, 4)}
vrows, hrows = [], []
for s_name, (N_v, _) in n_v.items():
    for i in range(N_v):
        vrows.append({"village_code": f"{C2}{len(vrows) + 1:06d}", "county_code": C2,
                      "is_poverty_village": s_name == "poverty_village"})
villages2 = pd.DataFrame(vrows)
vstr = np.where(villages2["is_poverty_village"], "poverty_village", "non_poverty_village")
sizes2 = rng2.integers(15, 60, len(villages2))
v2 = np.repeat(villages2["village_code"].to_numpy(), sizes2)
pov2 = np.repeat(villages2["is_poverty_village"].to_numpy(), sizes2)
n2 = v2.size
reg2_registered = rng2.random(n2) < np.where(pov2, 0.45, 0.25)
reg2_exited = reg2_registered & (rng2.random(n2) < 0.8)
register2 = pd.DataFrame({
    "household_id": [f"{C2}{i:010d}" for i in range(n2)], "village_code": v2, "county_code": C2,
    "household_size": rng2.integers(1, 8, n2), "registered": reg2_registered,
    "registration_year": pd.Series(np.where(reg2_registered, 2014, np.nan)).astype("Int64"),
    "exit_year": pd.Series(np.where(reg2_exited, rng2.integers(2015, YEAR + 1, n2), np.nan)).astype("Int64"),
})
hs2 = np.where(reg2_exited, "exited", np.where(reg2_registered, "poor", "non_registered"))
# stage 1: SRSWOR of villages in each stratum
chosen = []
for s_name, (N_v, n_s) in n_v.items():
    codes = villages2["village_code"].to_numpy()[vstr == s_name]
    chosen += sorted(rng2.choice(codes, n_s, replace=False).tolist())
r2 = register2.assign(_hs=hs2, _stratum=np.repeat(vstr, sizes2))
r2["_Nv"] = r2["_stratum"].map({k: v[0] for k, v in n_v.items()})
r2["_nv"] = r2["_stratum"].map({k: v[1] for k, v in n_v.items()})
r2["_M"] = r2.groupby(["village_code", "_hs"])["household_id"].transform("size")
r2["_rank"] = pd.Series(rng2.random(n2)).groupby([v2, hs2]).rank().to_numpy()
take2 = r2["village_code"].isin(chosen).to_numpy() & (r2["_rank"].to_numpy() <= r2["_hs"].map(want).to_numpy())
s2 = r2.loc[take2].copy()
m2 = s2.groupby(["village_code", "_hs"])["household_id"].transform("size")
s2["prob_village"] = s2["_nv"] / s2["_Nv"]
s2["prob_household"] = m2 / s2["_M"]
s2["weight"] = 1.0 / (s2["prob_village"] * s2["prob_household"])
k2 = len(s2)
fixture2 = pd.DataFrame({
    "county_code": C2, "survey_year": YEAR, "household_id": s2["household_id"],
    "village_code": s2["village_code"], "stratum": s2["_stratum"], "hh_stratum": s2["_hs"],
    "prob_village": s2["prob_village"], "prob_household": s2["prob_household"], "weight": s2["weight"],
    "household_size": s2["household_size"],
    "surveyed_income_per_capita": np.round(LINE * rng2.lognormal(0.6, 0.45, k2), 2),
    **{g: rng2.random(k2) > 0.04 for g in ["food_clothing_ok", "education_ok", "medical_ok", "housing_ok", "water_ok"]},
    "approves": rng2.random(k2) < 0.9,
    "N_villages": s2["_Nv"], "N_households": s2["_M"],
})
fixture2.to_csv(HERE / "fixture_fpc.csv", index=False)
register2.to_csv(HERE / "register_fpc.csv", index=False)
villages2.to_csv(HERE / "villages_fpc.csv", index=False)
print(len(fixture2), "sampled households (fpc fixture);", len(register2), "register households")
