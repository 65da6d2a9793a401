"""The partner scorecard (R6.1, R1.2): criteria with weights and formulas over
the KPI variables of a partner in one period, versioned in configuration.

    config/scorecard.toml --load_scorecard--> ScorecardConfig (validated, formulas compiled)
    variables of a period --score_period--> PeriodScore (0..100) or None (no activity)
    period scores, newest first --overall--> decayed mean
    a score --standing_of--> Excellent / Good / Watch / Probation

Formulas are a whitelist of arithmetic over `VARIABLES` (numbers, + - * /,
unary minus, parentheses, min and max), compiled once from Python's `ast`
and evaluated by closures: nothing of the file ever reaches `eval`, so a
hostile or mistyped formula stops the service at load with a message naming
its key. A version never changes once scores were published with it; a new
formula is a new version, and history is rescored by replay side by side.

Pure: the only I/O is `load_scorecard` reading the file.
"""

from __future__ import annotations

import ast
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Final, NoReturn

DEFAULT_SCORECARD_FILE: Final = Path(__file__).resolve().parents[3] / "config" / "scorecard.toml"

#: What the kpi projections supply per partner and period. A ratio is None
#: when it has no denominator (or no data) in the period; a count is 0 then.
VARIABLES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "on_time_delivery": "milestones delivered by their due day over milestones due (0..1)",
        "complaint_rate": "complaints per delivered milestone (>= 0)",
        "satisfaction": "mean customer satisfaction survey score (1..5)",
        "compliance": "share of obligations met on time (0..1, R3.5)",
        "complaint_response_hours": "median hours from a complaint to its response (>= 0)",
        "failure_rate": "projects closed failed or terminated over projects closed (0..1, R1.2)",
        "cost_control": "actual cost over approved budget of the partner's projects to date (>= 0)",
        "milestones_due": "milestones due in the period (count)",
        "milestones_delivered": "milestones delivered in the period (count)",
        "complaints": "complaints received in the period (count)",
        "incidents": "incidents reported in the period (count)",
        "data_leaks": "data leaks reported in the period (count, R6.4)",
        "obligations": "obligations (deadlines) falling due in the period (count, R3.5)",
    }
)
COUNT_VARIABLES: Final = frozenset(
    {
        "milestones_due",
        "milestones_delivered",
        "complaints",
        "incidents",
        "data_leaks",
        "obligations",
    }
)
RATIO_VARIABLES: Final = frozenset(VARIABLES) - COUNT_VARIABLES

#: Beyond these a formula is not something a person reviews; the depth bound
#: also keeps the recursive compiler and evaluator far from Python's stack limit.
MAX_FORMULA_LENGTH: Final = 500
MAX_FORMULA_DEPTH: Final = 32
WEIGHT_TOTAL: Final = 100.0
WEIGHT_TOLERANCE: Final = 1e-9

_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
_CRITERION_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
_ALLOWED = "numbers, variables, + - * /, unary -, parentheses, min() and max()"


class ScorecardError(Exception):
    """The scorecard file is missing or a value is wrong; the message names the key."""


class NotScorable(ArithmeticError):
    """A formula has no value for these inputs (a division by zero, a result
    that is not a finite number); its criterion is skipped like missing data."""


def _fail(key: str, message: str) -> NoReturn:
    raise ScorecardError(f"{key}: {message}")


# -- formulas ------------------------------------------------------------------------------

_Eval = Callable[[Mapping[str, float]], float]


@dataclass(frozen=True)
class Formula:
    source: str
    variables: frozenset[str]
    _evaluate: _Eval = field(repr=False, compare=False)

    def evaluate(self, values: Mapping[str, float]) -> float:
        """The raw (unclamped) value; `values` holds every name in
        `variables`. Raises NotScorable when the arithmetic has no value."""
        try:
            result = self._evaluate(values)
        except OverflowError:
            raise NotScorable("the result overflows") from None
        if not math.isfinite(result):
            raise NotScorable("the result is not a finite number")
        return result


def compile_formula(source: str, key: str = "formula") -> Formula:
    """R6.1: a formula of the whitelist, or ScorecardError naming `key`."""
    text = source.strip()
    if not text:
        _fail(key, "is empty")
    if len(text) > MAX_FORMULA_LENGTH:
        _fail(key, f"is longer than {MAX_FORMULA_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        _fail(key, f"is not an expression ({type(exc).__name__}: {exc})")
    names: set[str] = set()
    evaluate = _compile(tree.body, key, names, 1)
    if not names:
        # A constant would hand every active partner the same points.
        _fail(key, "reads no variable; a criterion measures the partner")
    return Formula(source=text, variables=frozenset(names), _evaluate=evaluate)


def _compile(node: ast.expr, key: str, names: set[str], depth: int) -> _Eval:
    if depth > MAX_FORMULA_DEPTH:
        _fail(key, f"nests deeper than {MAX_FORMULA_DEPTH}")
    match node:
        case ast.Constant(value=bool() | None | str() | bytes() | complex()):
            _fail(key, f"{ast.unparse(node)!r} is not allowed; only {_ALLOWED}")
        case ast.Constant(value=int() | float() as literal):
            return _constant(literal, key)
        case ast.Name(id=name):
            if name not in VARIABLES:
                _fail(key, f"unknown variable {name!r}")
            names.add(name)
            return lambda values: values[name]
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            inner = _compile(operand, key, names, depth + 1)
            return lambda values: -inner(values)
        case ast.BinOp(
            left=left, op=ast.Add() | ast.Sub() | ast.Mult() | ast.Div() as op, right=right
        ):
            return _binary(
                op,
                _compile(left, key, names, depth + 1),
                _compile(right, key, names, depth + 1),
            )
        case ast.Call(func=ast.Name(id="min" | "max" as func), args=args, keywords=keywords):
            if keywords or any(isinstance(a, ast.Starred) for a in args) or len(args) < 2:
                _fail(key, f"{func}() takes two or more plain arguments")
            parts = [_compile(a, key, names, depth + 1) for a in args]
            pick = min if func == "min" else max
            return lambda values: pick(p(values) for p in parts)
        case ast.Call(func=ast.Name(id=func)):
            _fail(key, f"function {func!r} is not allowed; only min() and max()")
        case _:
            _fail(key, f"{ast.unparse(node)!r} is not allowed; only {_ALLOWED}")


def _constant(literal: int | float, key: str) -> _Eval:
    try:
        number = float(literal)
    except OverflowError:
        _fail(key, "a number is too large")
    if not math.isfinite(number):
        _fail(key, "a number is too large")
    return lambda _values: number


def _binary(op: ast.operator, left: _Eval, right: _Eval) -> _Eval:
    if isinstance(op, ast.Add):
        return lambda values: left(values) + right(values)
    if isinstance(op, ast.Sub):
        return lambda values: left(values) - right(values)
    if isinstance(op, ast.Mult):
        return lambda values: left(values) * right(values)

    def divide(values: Mapping[str, float]) -> float:
        divisor = right(values)
        if divisor == 0:
            raise NotScorable("division by zero")
        return left(values) / divisor

    return divide


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    key: str
    title: str
    title_zh: str
    weight: float
    formula: Formula


@dataclass(frozen=True)
class Version:
    name: str
    description: str
    criteria: tuple[Criterion, ...]


@dataclass(frozen=True)
class Decay:
    """R6.2 cycles: the newest period of a kind weighs 1, the one before
    `factor`, then factor**2 ...; only the newest `periods` scores count."""

    factor: float = 0.8
    periods: int = 12


@dataclass(frozen=True)
class Standing:
    """A standing holds the scores in [min, the next higher standing's min)."""

    name: str
    min: float
    label_zh: str


DEFAULT_STANDINGS: Final = (
    Standing("Excellent", 85.0, "优秀"),
    Standing("Good", 70.0, "良好"),
    Standing("Watch", 55.0, "观察"),
    Standing("Probation", 0.0, "试用察看"),
)


@dataclass(frozen=True)
class ScorecardConfig:
    active: str
    versions: Mapping[str, Version]
    decay: Decay
    #: Highest first; the last one's min is 0.
    standings: tuple[Standing, ...]

    def version(self, name: str | None = None) -> Version:
        """The named version, the active one by default."""
        wanted = self.active if name is None else name
        found = self.versions.get(wanted)
        if found is None:
            raise KeyError(f"no scorecard version {wanted!r}")
        return found


def parse_scorecard(raw: Mapping[str, object]) -> ScorecardConfig:
    """The configuration from its TOML document; ScorecardError naming the key."""
    _only(raw, {"active", "decay", "standings", "versions"}, "")
    versions_raw = _table(raw.get("versions"), "versions")
    if not versions_raw:
        _fail("versions", "holds no version")
    versions = {name: _version(name, body) for name, body in versions_raw.items()}
    active = raw.get("active")
    if not isinstance(active, str):
        _fail("active", "must name a version (a string)")
    if active not in versions:
        _fail("active", f"names no version: {active!r} (versions: {', '.join(sorted(versions))})")
    return ScorecardConfig(
        active=active,
        versions=MappingProxyType(versions),
        decay=_decay(raw.get("decay")),
        standings=_standings(raw.get("standings")),
    )


def _version(name: str, body: object) -> Version:
    key = f"versions.{name}"
    if not _VERSION_NAME.fullmatch(name):
        _fail(key, "a version is 1-40 of A-Za-z0-9_.- starting with a letter or digit")
    table = _table(body, key)
    _only(table, {"description", "criteria"}, key)
    description = table.get("description", "")
    if not isinstance(description, str):
        _fail(f"{key}.description", "must be a string")
    items = table.get("criteria")
    if not isinstance(items, list) or not items:
        _fail(f"{key}.criteria", "must be a non-empty array of tables ([[...criteria]])")
    criteria: list[Criterion] = []
    for index, item in enumerate(items):
        criterion = _criterion(f"{key}.criteria", index, item)
        if any(c.key == criterion.key for c in criteria):
            _fail(f"{key}.criteria.{criterion.key}", "the key is used twice")
        criteria.append(criterion)
    total = math.fsum(c.weight for c in criteria)
    if abs(total - WEIGHT_TOTAL) > WEIGHT_TOLERANCE:
        _fail(f"{key}.criteria", f"weights sum to {total:.10g}, not {WEIGHT_TOTAL:g}")
    return Version(name=name, description=description, criteria=tuple(criteria))


def _criterion(base: str, index: int, item: object) -> Criterion:
    table = _table(item, f"{base}[{index}]")
    ckey = table.get("key")
    if not isinstance(ckey, str) or not _CRITERION_KEY.fullmatch(ckey):
        _fail(f"{base}[{index}].key", "must be 1-40 of a-z0-9_ starting with a letter")
    # From here on the criterion's own key names it: the file's reader knows it.
    key = f"{base}.{ckey}"
    _only(table, {"key", "title", "title_zh", "weight", "formula"}, key)
    weight = _number(table, "weight", key)
    if weight <= 0:
        _fail(f"{key}.weight", "must be greater than 0")
    formula = table.get("formula")
    if not isinstance(formula, str):
        _fail(f"{key}.formula", "must be a string")
    return Criterion(
        key=ckey,
        title=_text(table, "title", key),
        title_zh=_text(table, "title_zh", key),
        weight=weight,
        formula=compile_formula(formula, f"{key}.formula"),
    )


def _decay(raw: object) -> Decay:
    if raw is None:
        return Decay()
    table = _table(raw, "decay")
    _only(table, {"factor", "periods"}, "decay")
    factor = _number(table, "factor", "decay", Decay.factor)
    if not 0 < factor <= 1:
        _fail("decay.factor", "must be in (0, 1]")
    periods = table.get("periods", Decay.periods)
    if not isinstance(periods, int) or isinstance(periods, bool) or periods < 1:
        _fail("decay.periods", "must be a whole number >= 1")
    return Decay(factor=factor, periods=periods)


def _standings(raw: object) -> tuple[Standing, ...]:
    if raw is None:
        return DEFAULT_STANDINGS
    if not isinstance(raw, list) or not raw:
        _fail("standings", "must be a non-empty array of tables ([[standings]])")
    standings: list[Standing] = []
    for index, item in enumerate(raw):
        key = f"standings[{index}]"
        table = _table(item, key)
        _only(table, {"name", "min", "label_zh"}, key)
        standing = Standing(
            name=_text(table, "name", key),
            min=_number(table, "min", key),
            label_zh=_text(table, "label_zh", key),
        )
        if any(s.name == standing.name for s in standings):
            _fail(f"{key}.name", f"{standing.name!r} is used twice")
        if not 0 <= standing.min <= WEIGHT_TOTAL:
            _fail(f"{key}.min", "must be within 0..100")
        if standings and standing.min >= standings[-1].min:
            # Listed highest first, so each range ends where the one above begins.
            _fail(f"{key}.min", "must be lower than the standing listed before it")
        standings.append(standing)
    if standings[-1].min != 0:
        _fail(f"standings[{len(standings) - 1}].min", "the lowest standing starts at 0")
    return tuple(standings)


def _table(value: object, key: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        _fail(key or "(file)", "must be a table")
    return value


def _only(table: Mapping[str, object], allowed: set[str], key: str) -> None:
    for name in table:
        if name not in allowed:
            _fail(f"{key}.{name}" if key else name, f"unknown key (allowed: {sorted(allowed)})")


def _text(table: Mapping[str, object], name: str, key: str) -> str:
    value = table.get(name)
    if not isinstance(value, str) or not value.strip():
        _fail(f"{key}.{name}", "must be a non-empty string")
    return value


def _number(
    table: Mapping[str, object], name: str, key: str, default: float | None = None
) -> float:
    value = table.get(name, default)
    # TOML booleans are Python ints; `weight = true` is a mistake, not a 1.
    if not isinstance(value, int | float) or isinstance(value, bool):
        _fail(f"{key}.{name}", "must be a number")
    if not math.isfinite(value):
        _fail(f"{key}.{name}", "must be a finite number")
    return float(value)


def load_scorecard(path: Path | None = None) -> ScorecardConfig:
    """The scorecard of `path` (default config/scorecard.toml; the caller
    passes PL_SCORECARD_FILE)."""
    path = path or DEFAULT_SCORECARD_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScorecardError(f"scorecard file {path} not found (set PL_SCORECARD_FILE)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScorecardError(f"scorecard file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ScorecardError(f"scorecard file {path} is not UTF-8: {exc}") from None
    except OSError as exc:
        raise ScorecardError(f"scorecard file {path} cannot be read: {exc}") from None
    try:
        return parse_scorecard(raw)
    except ScorecardError as exc:
        raise ScorecardError(f"scorecard file {path}: {exc}") from None


# -- scoring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionScore:
    key: str
    #: The formula's value, before clamping; None when skipped.
    raw: float | None
    #: Clamped to 0..100; None when skipped.
    value: float | None
    #: As configured.
    weight: float
    #: Share of the period score after renormalisation (the used ones sum to 100); 0 when skipped.
    weight_used: float
    #: Why the criterion was not scored, None when it was.
    skipped: str | None


@dataclass(frozen=True)
class PeriodScore:
    version: str
    #: 0..100, rounded to 2 decimals (only here: the parts keep full precision).
    score: float
    criteria: tuple[CriterionScore, ...]


def score_period(version: Version, variables: Mapping[str, float | None]) -> PeriodScore | None:
    """R6.1: the weighted score of one partner in one period under `version`.

    A criterion whose formula reads a variable without data, or has no value
    (division by zero), is skipped and the others' weights are renormalised,
    so a missing figure neither rewards nor punishes. A period without
    activity (every count 0, every ratio None) is None: skipped, not a 0.
    None as well when no criterion could be scored.
    """
    known = _checked(variables)
    if not any(known.get(n) for n in COUNT_VARIABLES) and all(
        known.get(n) is None for n in RATIO_VARIABLES
    ):
        return None
    values = {n: v for n, v in known.items() if v is not None}
    results: list[tuple[Criterion, float | None, str | None]] = []
    for criterion in version.criteria:
        missing = sorted(criterion.formula.variables - values.keys())
        if missing:
            results.append((criterion, None, f"no data: {', '.join(missing)}"))
            continue
        try:
            results.append((criterion, criterion.formula.evaluate(values), None))
        except NotScorable as exc:
            results.append((criterion, None, str(exc)))
    used = math.fsum(c.weight for c, raw, _ in results if raw is not None)
    if used == 0:
        return None
    parts = tuple(
        CriterionScore(
            key=c.key,
            raw=raw,
            value=None if raw is None else _clamp(raw),
            weight=c.weight,
            weight_used=0.0 if raw is None else c.weight * WEIGHT_TOTAL / used,
            skipped=reason,
        )
        for c, raw, reason in results
    )
    total = math.fsum(p.value * p.weight for p in parts if p.value is not None) / used
    return PeriodScore(version=version.name, score=round(_clamp(total), 2), criteria=parts)


def _clamp(value: float) -> float:
    return min(WEIGHT_TOTAL, max(0.0, value))


def _checked(variables: Mapping[str, float | None]) -> dict[str, float | None]:
    """The projections' figures, refused when they cannot be right: a caller's
    bug must not become a partner's score. A missing ratio is None, a missing
    count 0."""
    known: dict[str, float | None] = dict.fromkeys(RATIO_VARIABLES)
    known.update(dict.fromkeys(COUNT_VARIABLES, 0.0))
    for name, value in variables.items():
        if name not in VARIABLES:
            raise ValueError(f"unknown scorecard variable {name!r}")
        if value is None:
            if name in COUNT_VARIABLES:
                raise ValueError(f"{name} is a count: 0 when nothing happened, never None")
            continue
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        if name in COUNT_VARIABLES and value != int(value):
            raise ValueError(f"{name} is a count, not {value!r}")
        known[name] = float(value)
    return known


def overall(scores: Sequence[tuple[date, float]], decay: Decay) -> float | None:
    """The decayed mean of a partner's period scores of one kind (months or
    quarters): the newest weighs 1, the next older `factor`, then factor**2,
    over the newest `decay.periods` scores; rounded to 2 decimals like the
    period scores. Periods skipped for no activity are simply not in `scores`.
    None when there is no score."""
    days = [day for day, _ in scores]
    if len(set(days)) != len(days):
        raise ValueError("one score per period: a period's date appears twice")
    newest = sorted(scores, key=lambda s: s[0], reverse=True)[: decay.periods]
    if not newest:
        return None
    for day, score in newest:
        if not 0 <= score <= WEIGHT_TOTAL:
            raise ValueError(f"the score of {day} is not within 0..100: {score!r}")
    weights = [decay.factor**age for age in range(len(newest))]
    mean = math.fsum(w * s for w, (_, s) in zip(weights, newest, strict=True)) / math.fsum(weights)
    # The float sum may step past the inputs by an ulp; the mean lies between them.
    low, high = min(s for _, s in newest), max(s for _, s in newest)
    return round(min(high, max(low, mean)), 2)


def standing_of(config: ScorecardConfig, score: float) -> Standing:
    """The standing whose range [min, next higher min) holds `score`."""
    if not 0 <= score <= WEIGHT_TOTAL:
        raise ValueError(f"a score is within 0..100, not {score!r}")
    for standing in config.standings:
        if score >= standing.min:
            return standing
    # Unreachable for a loaded config: the lowest standing starts at 0.
    raise AssertionError("the standings do not cover 0")
