"""R6.1 (partner KPIs), R6.2 (monthly and quarterly cycles), R1.2 (a lower
project failure rate), R3.5 (compliance), R6.4 (data leaks): the partner
scorecard of `services.kpi.domain.scorecard`.

Proves that:

- formulas compile from a whitelist only (numbers, the names of VARIABLES,
  + - * /, unary -, parentheses, min and max with two or more arguments);
  anything else (an import, attribute access, `**`, a lambda, a
  comprehension, a comparison, another function, an unknown variable, a
  constant formula, too deep or too long) is refused at load with a
  ScorecardError naming the key; a division by zero or a non-finite result is
  NotScorable;
- a period score is the weighted mean of the criteria's values clamped to
  0..100; a criterion reading a variable without data or dividing by zero is
  skipped and the other weights are renormalised; a period without activity
  is None (skipped, not 0 and not 100); nothing scorable is None; only the
  final score is rounded; impossible inputs are refused;
- the shipped config/scorecard.toml loads, and the same period rescored under
  its two versions side by side gives the hand-computed scores and standings;
- the overall score is the decayed mean of the newest `periods` scores
  (newest 1, then factor, factor**2 ...); None without scores;
- standings cover 0..100 exactly once with the defaults 85/70/55/0;
- every validation rule of the file (weights > 0 summing to 100, unique
  keys, `active` names a version, standings unique and strictly decreasing
  down to 0, decay factor in (0, 1], periods >= 1, unknown keys) names its key;
  a missing, invalid or non-UTF-8 file names the file.

Hypothesis: scores stay within 0..100 for any inputs; the overall score lies
within the inputs and equals them when they are equal; standing_of picks the
one standing whose range holds the score for any valid standings; random
whitelist formulas evaluate to a finite number or NotScorable, and random
text never escapes as anything but ScorecardError.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.kpi.domain.scorecard import (
    COUNT_VARIABLES,
    DEFAULT_SCORECARD_FILE,
    DEFAULT_STANDINGS,
    MAX_FORMULA_DEPTH,
    MAX_FORMULA_LENGTH,
    RATIO_VARIABLES,
    VARIABLES,
    Decay,
    NotScorable,
    ScorecardConfig,
    ScorecardError,
    Standing,
    Version,
    compile_formula,
    load_scorecard,
    overall,
    parse_scorecard,
    score_period,
    standing_of,
)

SHIPPED = load_scorecard()
CRITERIA = ("versions", "2026.1", "criteria")


def _raw() -> dict[str, Any]:
    """A valid three-criterion scorecard: a 50, b 30, c 20."""
    return {
        "active": "2026.1",
        "versions": {
            "2026.1": {
                "criteria": [
                    {
                        "key": "a",
                        "title": "Delivery",
                        "title_zh": "按时交付率",
                        "weight": 50,
                        "formula": "100 * on_time_delivery",
                    },
                    {
                        "key": "b",
                        "title": "Satisfaction",
                        "title_zh": "客户满意度",
                        "weight": 30,
                        "formula": "(satisfaction - 1) * 25",
                    },
                    {
                        "key": "c",
                        "title": "Complaints",
                        "title_zh": "投诉率",
                        "weight": 20,
                        "formula": "100 - 200 * complaint_rate",
                    },
                ]
            }
        },
    }


def _version(*criteria: tuple[str, float, str]) -> Version:
    """A version of (key, weight, formula) criteria, validated like the file."""
    raw = _raw()
    raw["versions"]["2026.1"]["criteria"] = [
        {"key": k, "title": k, "title_zh": k, "weight": w, "formula": f} for k, w, f in criteria
    ]
    return parse_scorecard(raw).version()


ABC = parse_scorecard(_raw()).version()


def _refused(raw: dict[str, Any]) -> str:
    with pytest.raises(ScorecardError) as caught:
        parse_scorecard(raw)
    return str(caught.value)


# -- formulas (R6.1) -----------------------------------------------------------------------


def test_a_formula_of_the_whitelist_compiles_and_evaluates_with_precedence() -> None:
    formula = compile_formula(
        "  min(100, max(0, (1 + 2) * on_time_delivery * 10 - compliance / 4, -5))  "
    )
    assert formula.source.startswith("min(")
    assert formula.variables == {"on_time_delivery", "compliance"}
    # (1 + 2) * 0.5 * 10 - 2 / 4 = 15 - 0.5
    assert formula.evaluate({"on_time_delivery": 0.5, "compliance": 2}) == 14.5
    assert compile_formula("1 + 2 * compliance").evaluate({"compliance": 3}) == 7
    assert compile_formula("-compliance - -1").evaluate({"compliance": 3}) == -2
    assert (
        compile_formula("max(complaints, incidents, 0x10)").evaluate(
            {"complaints": 3, "incidents": 20}
        )
        == 20
    )


@pytest.mark.parametrize(
    ("formula", "reason"),
    [
        ("__import__('os')", "function '__import__' is not allowed"),
        ("__import__('os').system('true')", "is not allowed"),
        ("on_time_delivery.real", "'on_time_delivery.real' is not allowed"),
        ("2**999", "'2 ** 999' is not allowed"),
        ("compliance ** 2", "is not allowed"),
        ("lambda: 1", "is not allowed"),
        ("[compliance for compliance in (1, 2)]", "is not allowed"),
        ("{c: 1 for c in (1, 2)}", "is not allowed"),
        ("sum(x for x in (compliance,))", "function 'sum' is not allowed"),
        ("abs(compliance)", "function 'abs' is not allowed"),
        ("compliance > 0.5", "is not allowed"),
        ("compliance if failure_rate else 0", "is not allowed"),
        ("compliance and 1", "is not allowed"),
        ("not compliance", "is not allowed"),
        ("+compliance", "is not allowed"),
        ("compliance % 2", "is not allowed"),
        ("compliance // 2", "is not allowed"),
        ("compliance[0]", "is not allowed"),
        ("(compliance := 1)", "is not allowed"),
        ("'compliance'", "is not allowed"),
        ("True + compliance", "'True' is not allowed"),
        ("None", "'None' is not allowed"),
        ("1j * compliance", "is not allowed"),
        ("...", "is not allowed"),
        ("f'{compliance}'", "is not allowed"),
        ("compliance.__class__.__mro__", "is not allowed"),
        ("min.__self__", "is not allowed"),
        ("min", "unknown variable 'min'"),
        ("min + compliance", "unknown variable 'min'"),
        ("min(compliance)", "min() takes two or more plain arguments"),
        ("max(*[compliance, 1])", "max() takes two or more plain arguments"),
        ("min(compliance, 1, key=None)", "min() takes two or more plain arguments"),
        ("ontime", "unknown variable 'ontime'"),
        ("100 * ontime", "unknown variable 'ontime'"),
        ("__builtins__", "unknown variable '__builtins__'"),
        ("100", "reads no variable"),
        ("min(1, 2)", "reads no variable"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("compliance +", "is not an expression"),
        ("compliance; 1", "is not an expression"),
        ("import os", "is not an expression"),
        ("compliance\x00", "is not an expression"),
        ("1e999 * compliance", "a number is too large"),
        ("9" * 400 + " * compliance", "a number is too large"),
        ("-" * (MAX_FORMULA_DEPTH + 1) + "compliance", f"nests deeper than {MAX_FORMULA_DEPTH}"),
        ("compliance" + " + 1" * 200, f"longer than {MAX_FORMULA_LENGTH}"),
    ],
)
def test_a_formula_outside_the_whitelist_is_refused_naming_its_key(
    formula: str, reason: str
) -> None:
    raw = _raw()
    raw["versions"]["2026.1"]["criteria"][0]["formula"] = formula
    message = _refused(raw)
    assert message.startswith("versions.2026.1.criteria.a.formula: ")
    assert reason in message


def test_formula_nesting_up_to_the_bound_is_accepted() -> None:
    formula = compile_formula("-" * (MAX_FORMULA_DEPTH - 1) + "compliance")
    assert formula.evaluate({"compliance": 2}) == -2  # 31 minus signs


def test_a_division_by_zero_or_a_non_finite_result_is_not_scorable() -> None:
    ratio = compile_formula("100 * milestones_delivered / milestones_due")
    assert ratio.evaluate({"milestones_delivered": 3, "milestones_due": 4}) == 75
    with pytest.raises(NotScorable, match="division by zero"):
        ratio.evaluate({"milestones_delivered": 3, "milestones_due": 0})
    huge = compile_formula("compliance * 1e300 * 1e300")
    with pytest.raises(NotScorable, match="not a finite number"):
        huge.evaluate({"compliance": 1})
    # inf - inf is nan: not finite either.
    nan = compile_formula("compliance * 1e300 * 1e300 - compliance * 1e300 * 1e300")
    with pytest.raises(NotScorable, match="not a finite number"):
        nan.evaluate({"compliance": 1})


# -- period scores (R6.1) ------------------------------------------------------------------


def test_the_period_score_is_the_weighted_mean_of_the_criteria() -> None:
    scored = score_period(
        ABC, {"on_time_delivery": 0.9, "satisfaction": 4.2, "complaint_rate": 0.1}
    )
    assert scored is not None
    assert scored.version == "2026.1"
    # a 90 * 50 + b 80 * 30 + c 80 * 20 = 8500, over 100
    assert scored.score == 85.0
    assert [c.key for c in scored.criteria] == ["a", "b", "c"]
    assert [c.value for c in scored.criteria] == pytest.approx([90, 80, 80])
    assert [c.weight_used for c in scored.criteria] == [50, 30, 20]
    assert [c.skipped for c in scored.criteria] == [None, None, None]


def test_a_criterion_without_data_is_skipped_and_the_weights_renormalised() -> None:
    scored = score_period(
        ABC, {"on_time_delivery": 0.9, "satisfaction": None, "complaint_rate": 0.1}
    )
    assert scored is not None
    # (90 * 50 + 80 * 20) / 70 = 6100 / 70 = 87.142857...
    assert scored.score == 87.14
    a, b, c = scored.criteria
    assert (b.raw, b.value, b.weight, b.weight_used) == (None, None, 30, 0)
    assert b.skipped == "no data: satisfaction"
    assert a.weight_used == pytest.approx(50 / 70 * 100)
    assert c.weight_used == pytest.approx(20 / 70 * 100)
    assert a.weight_used + c.weight_used == pytest.approx(100)


def test_a_missing_ratio_counts_as_no_data() -> None:
    scored = score_period(ABC, {"on_time_delivery": 0.5, "milestones_due": 2})
    assert scored is not None
    assert scored.score == 50.0
    assert [c.skipped for c in scored.criteria] == [
        None,
        "no data: satisfaction",
        "no data: complaint_rate",
    ]


def test_a_criterion_dividing_by_zero_is_skipped_like_missing_data() -> None:
    version = _version(
        ("ratio", 60, "100 * milestones_delivered / milestones_due"),
        ("compliance", 40, "100 * compliance"),
    )
    scored = score_period(version, {"milestones_due": 0, "obligations": 4, "compliance": 0.75})
    assert scored is not None
    assert scored.score == 75.0
    assert scored.criteria[0].skipped == "division by zero"
    assert scored.criteria[0].weight_used == 0
    assert scored.criteria[1].weight_used == 100


def test_criterion_values_are_clamped_to_0_100() -> None:
    version = _version(
        ("over", 50, "100 * on_time_delivery + 50"),
        ("under", 50, "100 - 200 * complaint_rate"),
    )
    scored = score_period(version, {"on_time_delivery": 0.9, "complaint_rate": 0.8})
    assert scored is not None
    over, under = scored.criteria
    assert over.raw == pytest.approx(140)
    assert over.value == 100
    assert under.raw == pytest.approx(-60)
    assert under.value == 0
    assert scored.score == 50.0  # (100 * 50 + 0 * 50) / 100, not (140 - 60) / 2 = 40


def test_only_the_final_score_is_rounded() -> None:
    version = _version(("a", 100, "100 * on_time_delivery"))
    scored = score_period(version, {"on_time_delivery": 0.123456})
    assert scored is not None
    assert scored.score == 12.35
    assert scored.criteria[0].value == pytest.approx(12.3456)


def test_a_period_without_activity_is_skipped_not_scored() -> None:
    # The security criterion reads counts only: 0 leaks and 0 incidents would
    # be 100; with nothing at all happening the period is skipped instead.
    quiet: dict[str, float | None] = dict.fromkeys(COUNT_VARIABLES, 0)
    quiet.update(dict.fromkeys(RATIO_VARIABLES))
    assert score_period(SHIPPED.version(), quiet) is None
    assert score_period(SHIPPED.version(), {}) is None
    # One obligation falling due is activity: the counts' criterion scores.
    scored = score_period(SHIPPED.version(), {**quiet, "obligations": 1})
    assert scored is not None
    assert scored.score == 100.0
    assert [c.key for c in scored.criteria if c.skipped is None] == ["security"]


def test_an_active_period_with_nothing_scorable_is_none() -> None:
    assert score_period(ABC, {"milestones_due": 3, "complaints": 1}) is None
    assert score_period(ABC, {"compliance": 1.0}) is None


@pytest.mark.parametrize(
    ("variables", "reason"),
    [
        ({"ontime": 1.0}, "unknown scorecard variable 'ontime'"),
        ({"complaints": None}, "complaints is a count: 0 when nothing happened"),
        ({"complaints": 1.5}, "complaints is a count"),
        ({"complaints": -1}, "complaints must be a finite number >= 0"),
        ({"compliance": -0.1}, "compliance must be a finite number >= 0"),
        ({"compliance": math.nan}, "compliance must be a finite number >= 0"),
        ({"cost_control": math.inf}, "cost_control must be a finite number >= 0"),
    ],
)
def test_impossible_inputs_are_refused(variables: dict[str, float | None], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        score_period(ABC, variables)


# -- the shipped file: side by side rescoring (R6.1, R1.2, R3.5, R6.4) -----------------------

PERIOD: dict[str, float | None] = {
    "on_time_delivery": 0.8,  # delivery 80
    "satisfaction": 4.0,  # 75
    "complaint_rate": 0.1,  # 80
    "complaint_response_hours": 36,  # 50
    "cost_control": 1.05,  # 5% over budget: 90
    "compliance": 0.2,  # 20
    "failure_rate": 0.0,  # 100
    "data_leaks": 0,
    "incidents": 1,  # security 90
    "milestones_due": 5,
    "milestones_delivered": 4,
    "complaints": 1,
    "obligations": 5,
}


def test_the_shipped_file_loads_with_two_versions_and_the_defaults() -> None:
    assert DEFAULT_SCORECARD_FILE.name == "scorecard.toml"
    assert DEFAULT_SCORECARD_FILE.parent.name == "config"
    assert SHIPPED.active == "2026.1"
    assert set(SHIPPED.versions) == {"2026.1", "2026.2"}
    assert SHIPPED.decay == Decay(factor=0.8, periods=12)
    assert [(s.name, s.min) for s in SHIPPED.standings] == [
        ("Excellent", 85),
        ("Good", 70),
        ("Watch", 55),
        ("Probation", 0),
    ]
    for version in SHIPPED.versions.values():
        assert math.fsum(c.weight for c in version.criteria) == 100
        assert all(c.formula.variables <= VARIABLES.keys() for c in version.criteria)
    weight = {v: {c.key: c.weight for c in SHIPPED.version(v).criteria} for v in SHIPPED.versions}
    assert weight["2026.2"]["compliance"] > weight["2026.1"]["compliance"]
    with pytest.raises(KeyError, match=r"no scorecard version '2027\.1'"):
        SHIPPED.version("2027.1")


def test_a_period_rescored_under_both_versions_side_by_side() -> None:
    old = score_period(SHIPPED.version("2026.1"), PERIOD)
    new = score_period(SHIPPED.version("2026.2"), PERIOD)
    assert old is not None
    assert new is not None
    # 2026.1: 25*80 + 15*75 + 10*80 + 5*50 + 15*90 + 15*20 + 5*100 + 10*90 = 7225
    assert (old.version, old.score) == ("2026.1", 72.25)
    # 2026.2: 20*80 + 15*75 + 10*80 + 5*50 + 10*90 + 25*20 + 5*100 + 10*90 = 6575
    assert (new.version, new.score) == ("2026.2", 65.75)
    assert standing_of(SHIPPED, old.score).name == "Good"
    assert standing_of(SHIPPED, new.score).name == "Watch"


def test_a_data_leak_and_failed_projects_pull_the_score_down() -> None:
    leaky = score_period(SHIPPED.version(), {**PERIOD, "data_leaks": 1, "failure_rate": 0.5})
    assert leaky is not None
    # security 100 - 50 - 10 = 40 (from 90), failures 50 (from 100):
    # 7225 - 10*50 - 5*50 = 6475
    assert leaky.score == 64.75


# -- overall score (R6.2) ------------------------------------------------------------------

JAN, FEB, MAR = date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)


def test_the_overall_score_decays_older_periods() -> None:
    scores = [(FEB, 90.0), (JAN, 80.0), (MAR, 70.0)]  # any order
    # newest March 1, February 0.8, January 0.64: (70 + 72 + 51.2) / 2.44
    assert overall(scores, Decay(factor=0.8, periods=12)) == 79.18
    # Only the two newest count: (70 + 72) / 1.8
    assert overall(scores, Decay(factor=0.8, periods=2)) == 78.89
    assert overall(scores, Decay(factor=1.0, periods=12)) == 80.0
    assert overall(scores, Decay(factor=0.5, periods=1)) == 70.0


def test_a_skipped_period_is_absent_not_a_zero() -> None:
    # February had no activity: March weighs 1 and January 0.8: (70 + 64) / 1.8
    assert overall([(JAN, 80.0), (MAR, 70.0)], Decay()) == 74.44


def test_no_scores_have_no_overall_score() -> None:
    assert overall([], Decay()) is None


def test_overall_refuses_two_scores_of_one_period_and_scores_outside_0_100() -> None:
    with pytest.raises(ValueError, match="one score per period"):
        overall([(JAN, 80.0), (JAN, 70.0)], Decay())
    with pytest.raises(ValueError, match=r"not within 0\.\.100"):
        overall([(JAN, 100.5)], Decay())
    with pytest.raises(ValueError, match=r"not within 0\.\.100"):
        overall([(JAN, math.nan)], Decay())


# -- standings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "name", "label_zh"),
    [
        (100, "Excellent", "优秀"),
        (85, "Excellent", "优秀"),
        (84.99, "Good", "良好"),
        (70, "Good", "良好"),
        (69.99, "Watch", "观察"),
        (55, "Watch", "观察"),
        (54.99, "Probation", "试用察看"),
        (0, "Probation", "试用察看"),
    ],
)
def test_the_default_standings(score: float, name: str, label_zh: str) -> None:
    standing = standing_of(SHIPPED, score)
    assert (standing.name, standing.label_zh) == (name, label_zh)


@pytest.mark.parametrize("score", [-0.01, 100.01, math.nan])
def test_a_score_outside_0_100_has_no_standing(score: float) -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        standing_of(SHIPPED, score)


def test_decay_and_standings_default_when_the_file_omits_them() -> None:
    config = parse_scorecard(_raw())
    assert config.decay == Decay(factor=0.8, periods=12)
    assert config.standings == DEFAULT_STANDINGS
    assert [(s.name, s.min, s.label_zh) for s in DEFAULT_STANDINGS] == [
        ("Excellent", 85, "优秀"),
        ("Good", 70, "良好"),
        ("Watch", 55, "观察"),
        ("Probation", 0, "试用察看"),
    ]


# -- validation at load: every rule names its key --------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(*steps: Any) -> Mutation:
    """The key path's last key set to the last step."""
    *path, value = steps

    def mutate(raw: dict[str, Any]) -> None:
        target: Any = raw
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return mutate


def _drop(*path: str | int) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        target: Any = raw
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return mutate


STANDINGS = [
    {"name": "Top", "min": 80, "label_zh": "优"},
    {"name": "Mid", "min": 50, "label_zh": "中"},
    {"name": "Low", "min": 0, "label_zh": "差"},
]


def _standings(*changes: tuple[int, str, object]) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        raw["standings"] = copy.deepcopy(STANDINGS)
        for index, name, value in changes:
            raw["standings"][index][name] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set(*CRITERIA, 0, "weight", 49), "versions.2026.1.criteria: weights sum to 99, not 100"),
        (
            _set(*CRITERIA, 0, "weight", 50 + 1e-6),
            "versions.2026.1.criteria: weights sum to 100.000001, not 100",
        ),
        (_set(*CRITERIA, 0, "weight", 0), "versions.2026.1.criteria.a.weight: must be greater"),
        (_set(*CRITERIA, 0, "weight", -10), "versions.2026.1.criteria.a.weight: must be greater"),
        (_set(*CRITERIA, 0, "weight", True), "versions.2026.1.criteria.a.weight: must be a number"),
        (_set(*CRITERIA, 0, "weight", "50"), "versions.2026.1.criteria.a.weight: must be a number"),
        (
            _set(*CRITERIA, 0, "weight", math.nan),
            "versions.2026.1.criteria.a.weight: must be a fin",
        ),
        (_drop(*CRITERIA, 0, "weight"), "versions.2026.1.criteria.a.weight: must be a number"),
        (_set(*CRITERIA, 1, "key", "a"), "versions.2026.1.criteria.a: the key is used twice"),
        (_set(*CRITERIA, 1, "key", "Bad Key"), "versions.2026.1.criteria[1].key: must be 1-40"),
        (_drop(*CRITERIA, 1, "key"), "versions.2026.1.criteria[1].key: must be 1-40"),
        (
            _set(*CRITERIA, 0, "formula", "100 * ontime"),
            "versions.2026.1.criteria.a.formula: unknown variable 'ontime'",
        ),
        (_set(*CRITERIA, 0, "formula", 100), "versions.2026.1.criteria.a.formula: must be a str"),
        (_drop(*CRITERIA, 0, "title"), "versions.2026.1.criteria.a.title: must be a non-empty"),
        (_set(*CRITERIA, 0, "title_zh", " "), "versions.2026.1.criteria.a.title_zh: must be a"),
        (_set(*CRITERIA, 0, "wieght", 1), "versions.2026.1.criteria.a.wieght: unknown key"),
        (_set(*CRITERIA, 0, "a"), "versions.2026.1.criteria[0]: must be a table"),
        (_set(*CRITERIA, []), "versions.2026.1.criteria: must be a non-empty array"),
        (_drop(*CRITERIA), "versions.2026.1.criteria: must be a non-empty array"),
        (_set("versions", "2026.1", "description", 1), "versions.2026.1.description: must be a"),
        (_set("versions", "2026.1", "formula", "x"), "versions.2026.1.formula: unknown key"),
        (_set("versions", "2026.1", []), "versions.2026.1: must be a table"),
        (_set("versions", "bad name", {}), "versions.bad name: a version is 1-40"),
        (_set("versions", {}), "versions: holds no version"),
        (_drop("versions"), "versions: must be a table"),
        (_set("active", "2027.1"), "active: names no version: '2027.1' (versions: 2026.1)"),
        (_drop("active"), "active: must name a version"),
        (_set("scorecard", 1), "scorecard: unknown key"),
        (_set("decay", {"factor": 0}), "decay.factor: must be in (0, 1]"),
        (_set("decay", {"factor": 1.5}), "decay.factor: must be in (0, 1]"),
        (_set("decay", {"factor": "0.8"}), "decay.factor: must be a number"),
        (_set("decay", {"periods": 0}), "decay.periods: must be a whole number >= 1"),
        (_set("decay", {"periods": 1.5}), "decay.periods: must be a whole number >= 1"),
        (_set("decay", {"periods": True}), "decay.periods: must be a whole number >= 1"),
        (_set("decay", {"half_life": 3}), "decay.half_life: unknown key"),
        (_set("decay", 0.8), "decay: must be a table"),
        (_set("standings", []), "standings: must be a non-empty array"),
        (_set("standings", {}), "standings: must be a non-empty array"),
        (_standings((1, "name", "Top")), "standings[1].name: 'Top' is used twice"),
        (_standings((1, "min", 80)), "standings[1].min: must be lower than the standing"),
        (_standings((1, "min", 90)), "standings[1].min: must be lower than the standing"),
        (_standings((2, "min", 10)), "standings[2].min: the lowest standing starts at 0"),
        (_standings((0, "min", 100.5)), "standings[0].min: must be within 0..100"),
        (_standings((2, "min", -1)), "standings[2].min: must be within 0..100"),
        (_standings((1, "min", "50")), "standings[1].min: must be a number"),
        (_standings((1, "label_zh", "")), "standings[1].label_zh: must be a non-empty string"),
        (_standings((1, "color", "red")), "standings[1].color: unknown key"),
    ],
)
def test_a_wrong_value_is_refused_naming_its_key(mutate: Mutation, message: str) -> None:
    raw = _raw()
    mutate(raw)
    assert _refused(raw).startswith(message)


def test_weights_summing_to_100_in_floating_point_are_accepted() -> None:
    version = _version(
        ("a", 33.3, "100 * on_time_delivery"),
        ("b", 33.3, "100 * compliance"),
        ("c", 33.4, "100 * (1 - failure_rate)"),
    )
    assert [c.weight for c in version.criteria] == [33.3, 33.3, 33.4]


def test_configured_standings_replace_the_defaults() -> None:
    raw = _raw()
    _standings()(raw)
    raw["decay"] = {"factor": 1, "periods": 3}
    config = parse_scorecard(raw)
    assert config.decay == Decay(factor=1.0, periods=3)
    assert [standing_of(config, s).name for s in (80, 79.99, 50, 49.99, 0)] == [
        "Top",
        "Mid",
        "Mid",
        "Low",
        "Low",
    ]


# -- the file ------------------------------------------------------------------------------


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "scorecard.toml"
    path.write_bytes(data)
    return path


def test_a_wrong_value_in_the_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    text = DEFAULT_SCORECARD_FILE.read_text(encoding="utf-8")
    assert text.count('formula = "100 * on_time_delivery"') == 2
    path = _write(tmp_path, text.replace("100 * on_time_delivery", "100 * ontime", 1).encode())
    with pytest.raises(ScorecardError) as caught:
        load_scorecard(path)
    assert str(caught.value) == (
        f"scorecard file {path}: versions.2026.1.criteria.delivery.formula:"
        " unknown variable 'ontime'"
    )


def test_a_copy_of_the_shipped_file_loads_from_another_path(tmp_path: Path) -> None:
    path = _write(tmp_path, DEFAULT_SCORECARD_FILE.read_bytes())
    assert load_scorecard(path) == SHIPPED


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"active = ", "is not valid TOML"),
        (b'active = "\xff"', "is not UTF-8"),
    ],
)
def test_an_unreadable_file_is_refused_naming_the_file(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ScorecardError, match=reason) as caught:
        load_scorecard(path)
    assert str(path) in str(caught.value)


def test_a_missing_file_is_refused_naming_the_file_and_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ScorecardError, match="not found \\(set PL_SCORECARD_FILE\\)"):
        load_scorecard(tmp_path / "absent.toml")
    with pytest.raises(ScorecardError, match="cannot be read"):
        load_scorecard(tmp_path)  # a directory


# -- properties ----------------------------------------------------------------------------

_RATIO = st.one_of(
    st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
)
_COUNT = st.integers(min_value=0, max_value=10_000)
_VARIABLES = st.fixed_dictionaries(
    {
        **{name: _RATIO for name in sorted(RATIO_VARIABLES)},
        **{name: _COUNT for name in sorted(COUNT_VARIABLES)},
    }
)
_EXTREME = _version(
    ("ratio", 40, "100 * milestones_delivered / milestones_due"),
    ("wild", 35, "max(cost_control * 1e300 * 1e300, -satisfaction) / complaint_rate"),
    ("mixed", 25, "min(100 - complaints * incidents, compliance * 1e9 - failure_rate)"),
)


@settings(max_examples=300, deadline=None)
@given(variables=_VARIABLES, version=st.sampled_from([*SHIPPED.versions.values(), _EXTREME]))
def test_property_a_period_score_is_within_0_100(
    variables: dict[str, float | None], version: Version
) -> None:
    scored = score_period(version, variables)
    if scored is None:
        return
    assert 0 <= scored.score <= 100
    assert round(scored.score, 2) == scored.score
    used = [c for c in scored.criteria if c.skipped is None]
    assert used
    assert all(c.value is not None and 0 <= c.value <= 100 for c in used)
    assert math.fsum(c.weight_used for c in used) == pytest.approx(100)


_SCORE = st.integers(min_value=0, max_value=10_000).map(lambda n: n / 100)
_DECAY = st.builds(
    Decay,
    factor=st.floats(min_value=1e-3, max_value=1, exclude_min=False),
    periods=st.integers(min_value=1, max_value=24),
)
_SERIES = st.lists(
    st.tuples(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)), _SCORE),
    min_size=1,
    max_size=30,
    unique_by=lambda s: s[0],
)


@settings(max_examples=300, deadline=None)
@given(series=_SERIES, decay=_DECAY)
def test_property_overall_lies_within_the_counted_scores(
    series: list[tuple[date, float]], decay: Decay
) -> None:
    result = overall(series, decay)
    counted = [s for _, s in sorted(series, reverse=True)[: decay.periods]]
    assert result is not None
    assert min(counted) <= result <= max(counted)


@settings(max_examples=200, deadline=None)
@given(
    days=st.lists(st.dates(), min_size=1, max_size=30, unique=True),
    score=_SCORE,
    decay=_DECAY,
)
def test_property_equal_scores_give_that_score(
    days: list[date], score: float, decay: Decay
) -> None:
    assert overall([(d, score) for d in days], decay) == score


@st.composite
def _config_with_standings(draw: st.DrawFn) -> ScorecardConfig:
    mins = draw(
        st.lists(st.integers(min_value=1, max_value=10_000), max_size=6, unique=True).map(
            lambda ms: sorted((m / 100 for m in ms), reverse=True)
        )
    )
    raw = _raw()
    raw["standings"] = [
        {"name": f"S{i}", "min": m, "label_zh": f"级{i}"} for i, m in enumerate([*mins, 0])
    ]
    return parse_scorecard(raw)


@settings(max_examples=300, deadline=None)
@given(
    config=_config_with_standings(),
    score=st.floats(min_value=0, max_value=100, allow_nan=False),
)
def test_property_every_score_has_exactly_one_standing(
    config: ScorecardConfig, score: float
) -> None:
    uppers = [math.inf, *(s.min for s in config.standings[:-1])]
    holding = [
        s for s, upper in zip(config.standings, uppers, strict=True) if s.min <= score < upper
    ]
    assert len(holding) == 1
    assert standing_of(config, score) == holding[0]
    assert isinstance(holding[0], Standing)


_NAMES = st.sampled_from(sorted(VARIABLES))
_LEAF = st.one_of(
    _NAMES,
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda f: repr(abs(f))),
    st.integers(min_value=0, max_value=10**6).map(str),
)


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda e: f"-{e}"),
        st.tuples(st.sampled_from(["min", "max"]), st.lists(inner, min_size=2, max_size=4)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
    )


_FORMULA = st.recursive(_LEAF, _extend, max_leaves=12)
_VALUES = st.fixed_dictionaries(
    {name: st.floats(min_value=0, max_value=1e6, allow_nan=False) for name in sorted(VARIABLES)}
)


@settings(max_examples=300, deadline=None)
@given(source=_FORMULA, values=_VALUES)
def test_property_whitelist_formulas_give_a_finite_number_or_not_scorable(
    source: str, values: dict[str, float]
) -> None:
    try:
        formula = compile_formula(source)
    except ScorecardError as exc:
        # Random trees may be constant or nest too deep; nothing else is refused.
        assert "reads no variable" in str(exc) or "nests deeper" in str(exc)
        return
    try:
        result = formula.evaluate(values)
    except NotScorable:
        return
    assert math.isfinite(result)


@settings(max_examples=300, deadline=None)
@given(source=st.text(max_size=80) | st.from_regex(r"[a-z_().,+*/ 0-9'-]{1,60}"))
def test_property_any_text_is_a_formula_or_a_scorecard_error(source: str) -> None:
    try:
        compile_formula(source, "k")
    except ScorecardError as exc:
        assert str(exc).startswith("k: ")
