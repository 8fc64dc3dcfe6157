"""Data the notebooks start from: the demo province on first use, and the sample design.

Every notebook runs top to bottom in JupyterLab with its default parameters: the default
``data_dir`` is the demo province, generated here if it is missing. The county notebook's design
parameters override the sample sizes of the user's policy (``policy.survey``), never of the base
policy, so a ``policy_file``'s other sizes are kept.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit import synth
from evalkit.config import Policy
from evalkit.errors import InputError, ParameterError

__all__ = ["DEMO_SEED", "DEMO_PROFILE", "ensure_demo_data", "design_overrides"]

#: Profile of the demo province: 17 real county-level units of Yan'an and Tongchuan with their real
#: poverty status and exit years (2017, 2018 and 2019: all three of Shaanxi's exit batches).
DEMO_PROFILE = "demo_real"
#: Seed of the demo province (``evalkit demo`` and the notebooks' default data).
DEMO_SEED = 20201


def ensure_demo_data(data_dir: str | Path, policy: Policy, seed: int = DEMO_SEED) -> Path:
    """Return ``data_dir``; generate the demo province there first if it is a missing ``demo`` dir.

    Parameters
    ----------
    data_dir : path
        The notebook's dataset directory.
    policy : Policy
        The policy the demo province is generated under if it is missing (the notebook's).
    seed : int
        Seed of the demo province.

    Raises
    ------
    InputError
        ``data_dir`` does not exist and is not a ``demo`` directory.
    """
    p = Path(data_dir)
    if (p / "manifest.json").exists() or (p.exists() and any(p.iterdir())):
        return p
    if p.name != "demo":
        raise InputError(f"dataset directory {p} does not exist")
    return synth.generate(DEMO_PROFILE, seed=seed, out=p, policy=policy)


def _size(name: str, value: Any) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a whole number, got {value!r}") from None
    if n != value and not isinstance(value, str) or n < 0:
        raise ParameterError(f"{name} must be a non-negative whole number, got {value!r}")
    return n


def design_overrides(policy: Policy, villages_poverty: Any = None, villages_non_poverty: Any = None,
                     households_exited: Any = None, households_poor: Any = None,
                     households_non_registered: Any = None, village_selection: str | None = None) -> dict[str, Any]:
    """Sample-design keywords from ``policy.survey`` with the notebook's overrides applied.

    Parameters
    ----------
    policy : Policy
        The run's policy (with the user's ``policy_file`` applied); its survey sizes are the base.
    villages_poverty, villages_non_poverty : int, optional
        Villages per county in each village stratum (None: the policy's).
    households_exited, households_poor, households_non_registered : int, optional
        Households per selected village in each household stratum (None: the policy's).
    village_selection : {'pps', 'pps_frame', 'srs'}, optional
        Village selection (None: the policy's).

    Returns
    -------
    dict
        ``villages_per_stratum``, ``households_per_village``, ``village_selection``,
        ``confidence_level`` and ``singleton_method``: the keywords of ``SampleDesign``.
    """
    sv = policy.survey
    vps = dict(sv.villages_per_stratum)
    for key, v in (("poverty_village", villages_poverty), ("non_poverty_village", villages_non_poverty)):
        if v is not None:
            vps[key] = _size(f"villages_{key.removesuffix('_village')}", v)
    hpv = dict(sv.households_per_village)
    for key, v in (("exited", households_exited), ("poor", households_poor),
                   ("non_registered", households_non_registered)):
        if v is not None:
            hpv[key] = _size(f"households_{key}", v)
    return {"villages_per_stratum": vps, "households_per_village": hpv,
            "village_selection": sv.village_selection if village_selection is None else village_selection,
            "confidence_level": float(sv.confidence_level), "singleton_method": str(sv.singleton_method)}
