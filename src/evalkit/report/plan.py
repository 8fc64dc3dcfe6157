"""Display of the design planner and of the second phase: bilingual tables and printed lines."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from evalkit.assessment import CRITERIA
from evalkit.register import HH_STRATA, VILLAGE_STRATA
from evalkit.survey import SampleDesign
from evalkit.text import check_lang, label, text

if TYPE_CHECKING:  # annotations only: the planners pull in scipy.stats, not needed to display a plan
    from evalkit.assessment.planner import DesignOC, PlanResult, SurveyCosts
    from evalkit.assessment.second_phase import SecondPhasePlan

__all__ = ["design_table", "oc_table", "plan_lines", "plan_summary", "plan_tables", "second_phase_table",
           "second_phase_lines", "final_lines", "two_phase_markdown"]


def _stratum(key: str, lang: str) -> str:
    return label(f"plan_st_{key}", lang)


def design_table(design: SampleDesign, cost: dict | None, costs: SurveyCosts, lang: str = "zh") -> pd.DataFrame:
    """Villages per stratum, households per village, expected size and cost of a design."""
    check_lang(lang)
    rows = [(text("plan_villages_of", lang, stratum=_stratum(h, lang)), design.villages_per_stratum[h])
            for h in VILLAGE_STRATA]
    rows += [(text("plan_households_of", lang, stratum=_stratum(k, lang)), design.households_per_village[k])
             for k in HH_STRATA]
    if cost is not None:
        rows += [(label("plan_expected_villages", lang), int(round(cost["villages"]))),
                 (label("plan_expected_households", lang), int(round(cost["households"]))),
                 (label("plan_cost", lang), int(round(cost["cost"])))]
    rows += [(label("plan_cost_village", lang), costs.per_village), (label("plan_cost_household", lang),
                                                                       costs.per_household)]
    return pd.DataFrame(rows, columns=[label("plan_item", lang), label("plan_value", lang)], dtype=object)


def _scenario_name(name: str, lang: str) -> str:
    if name == "target":
        return label("plan_scenario_target", lang)
    return text("plan_scenario_threshold", lang, criterion=label(name.split(":", 1)[1], lang))


def oc_table(oc: DesignOC, true: pd.DataFrame, max_at_threshold: float, min_at_target: float,
             lang: str = "zh") -> pd.DataFrame:
    """Per scenario: planted true rates, the checked pass probability and its requirement."""
    check_lang(lang)
    rows = []
    for name in oc.p_pass.index:
        checks = "overall" if name == "target" else name.split(":", 1)[1]
        req = (text("plan_req_at_least", lang, p=min_at_target) if name == "target"
               else text("plan_req_at_most", lang, p=max_at_threshold))
        rows.append({label("plan_scenario", lang): _scenario_name(name, lang),
                     **{label(c, lang): f"{true.at[name, c]:.2%}" for c in CRITERIA},
                     label("plan_p_pass_checked", lang): round(float(oc.p_pass.at[name, checks]), 3),
                     label("plan_requirement", lang): req})
    return pd.DataFrame(rows)


def plan_summary(county: str, year: int, result: PlanResult, lang: str = "zh") -> str:
    """One sentence: the cheapest feasible design was found (with reps, seed, seconds), or none was."""
    check_lang(lang)
    if result.design is not None:
        return text("plan_found", lang, county=county, year=year, reps=result.n_reps, seed=result.seed,
                    seconds=result.seconds)
    return text("plan_not_found", lang, county=county, year=year)


def plan_tables(result: PlanResult, lang: str = "zh") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(design table, OC table) of the planned design, or of the best one when none is feasible."""
    oc = result.oc if result.design is not None else result.best
    t = result.targets
    return (design_table(oc.design, result.cost if result.design is not None else None, result.costs, lang),
            oc_table(oc, result.true, t.max_p_pass_at_threshold, t.min_p_pass_at_target, lang))


def plan_lines(county: str, year: int, result: PlanResult, lang: str = "zh") -> list[str]:
    """The planner's answer as printed lines (the CLI's output)."""
    check_lang(lang)
    t = result.targets
    oc = result.oc if result.design is not None else result.best
    head = (text("plan_found", lang, county=county, year=year, reps=result.n_reps, seed=result.seed,
                 seconds=result.seconds) if result.design is not None
            else text("plan_not_found", lang, county=county, year=year))
    lines = [head]
    if oc is not None:
        cost = result.cost if result.design is not None else None
        lines += design_table(oc.design, cost, result.costs, lang).to_string(index=False).splitlines()
        lines += ["", label("plan_oc_heading", lang)]
        lines += oc_table(oc, result.true, t.max_p_pass_at_threshold, t.min_p_pass_at_target,
                          lang).to_string(index=False).splitlines()
        lines.append(text("plan_mc_note", lang, se=float(np.sqrt(0.25 / oc.n_reps))))
    lines.append(text("plan_evaluated", lang, n=len(result.evaluated)))
    return lines


def second_phase_table(plan: SecondPhasePlan, lang: str = "zh") -> pd.DataFrame:
    """Increments, cost and the conditional operating characteristic of a second phase."""
    check_lang(lang)
    if plan.add_villages is None:
        return pd.DataFrame([(label("plan_first_verdict", lang).split("{")[0].rstrip("：: "),
                              label(f"verdict_{plan.first_verdict}", lang))],
                            columns=[label("plan_item", lang), label("plan_value", lang)], dtype=object)
    rows = [(text("plan_add_villages_of", lang, stratum=_stratum(h, lang)), plan.add_villages[h])
            for h in VILLAGE_STRATA]
    rows += [(text("plan_add_households_of", lang, stratum=_stratum(k, lang)), plan.add_households[k])
             for k in HH_STRATA]
    rows += [(label("plan_scale", lang), plan.scale),
             (label("plan_new_households", lang), int(round(plan.cost["households"]))),
             (label("plan_cost", lang), int(round(plan.cost["cost"]))),
             (label("plan_p_decide", lang), round(plan.p_decide, 3)),
             (label("plan_p_pass_second", lang), round(plan.p_pass, 3)),
             (label("plan_t1", lang), round(plan.t1, 3)),
             (label("plan_bounds", lang), ", ".join(f"{z:.3f}" for z in plan.bounds)),
             (label("plan_level_two", lang), f"{1 - plan.alpha_two:.1%}"),
             (label("plan_alpha_total", lang), f"{plan.alpha_total:.1%}")]
    return pd.DataFrame(rows, columns=[label("plan_item", lang), label("plan_value", lang)], dtype=object)


def second_phase_lines(county: str, plan: SecondPhasePlan, lang: str = "zh") -> list[str]:
    """The second-phase plan as printed lines."""
    check_lang(lang)
    lines = [f"{county}: " + text("plan_first_verdict", lang, verdict=label(f"verdict_{plan.first_verdict}", lang))]
    if plan.add_villages is None:
        return [*lines, label("plan_decided", lang)]
    lines.append(text("plan_second_found", lang, reps=plan.n_reps, seed=plan.seed) if plan.reachable
                 else text("plan_second_unreachable", lang, scale=plan.scale, power=plan.power))
    return [*lines, *second_phase_table(plan, lang).to_string(index=False).splitlines()]


def final_lines(first_verdict: str, final_verdict: str, union_households: int | None, lang: str = "zh") -> list[str]:
    """First and final verdicts of a two-phase assessment."""
    check_lang(lang)
    lines = [text("plan_first_verdict", lang, verdict=label(f"verdict_{first_verdict}", lang)),
             text("plan_final_verdict", lang, verdict=label(f"verdict_{final_verdict}", lang))]
    if union_households is not None:
        lines.append(f"{label('plan_union_households', lang)}: {union_households}")
    return lines


def two_phase_markdown(first_verdict: str, final_verdict: str, union_households: int | None,
                       lang: str = "zh") -> str:
    """:func:`final_lines` as Markdown paragraphs (county notebook)."""
    return "\n\n".join(final_lines(first_verdict, final_verdict, union_households, lang))
