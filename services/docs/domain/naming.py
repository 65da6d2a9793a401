"""Document names: `项目名称-日期-类型` (R4.4), e.g. `XX项目-2026年11月-周报`.

`parse_name` checks the syntax of a name as a person or another system typed
it, and refuses anything that is unsafe as a file name (path separators,
control and bidi characters, reserved characters, over-long names).
`check_name` then checks the name against the document it is filed for: the
same project, the same type, a date overlapping the document's period (R4.3).

Names are compared after Unicode NFKC normalisation, so a name typed with a
Chinese input method's full-width digits, letters and hyphen (`２０２６`,
`ＸＸ`, `－`) is the same name as its half-width form.

Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Final, Literal

from services.docs.domain.periods import MAX_YEAR, MIN_YEAR, Period, PeriodKind, ReportKind

__all__ = [
    "ALIASES",
    "DOC_TYPES",
    "PERIOD_OF_TYPE",
    "REPORT_TYPES",
    "DocType",
    "DocumentName",
    "NameDate",
    "NamePart",
    "NameProblem",
    "canonical_type",
    "check_name",
    "normalise",
    "parse_name",
    "project_key",
    "split_filename",
]

DocType = Literal[
    "周报", "月报", "季报", "合同", "会议纪要", "启动会纪要", "中期评审报告", "验收报告"
]
DOC_TYPES: Final[tuple[DocType, ...]] = (
    "周报",
    "月报",
    "季报",
    "合同",
    "会议纪要",
    "启动会纪要",
    "中期评审报告",
    "验收报告",
)

_ENGLISH: Final[dict[str, DocType]] = {
    "weekly_report": "周报",
    "monthly_report": "月报",
    "quarterly_report": "季报",
    "contract": "合同",
    "minutes": "会议纪要",
    "kickoff_minutes": "启动会纪要",
    "midterm_review_report": "中期评审报告",
    "acceptance_report": "验收报告",
}
#: API aliases (English) and the canonical Chinese names, each to its DocType.
ALIASES: Final[Mapping[str, DocType]] = MappingProxyType(
    {**_ENGLISH, **{doc_type: doc_type for doc_type in DOC_TYPES}}
)

#: R4.3: the report kind of each report type.
REPORT_TYPES: Final[Mapping[DocType, ReportKind]] = MappingProxyType(
    {"周报": "weekly", "月报": "monthly", "季报": "quarterly"}
)

#: The period a document of each type belongs to: reports cover their week,
#: month or quarter; the others the day they were signed, held or accepted.
PERIOD_OF_TYPE: Final[Mapping[DocType, PeriodKind]] = MappingProxyType(
    {
        "周报": "week",
        "月报": "month",
        "季报": "quarter",
        "合同": "day",
        "会议纪要": "day",
        "启动会纪要": "day",
        "中期评审报告": "day",
        "验收报告": "day",
    }
)

NamePart = Literal["name", "project", "date", "type", "period"]

_SHAPE: Final[str] = "项目名称-日期-类型 (project-date-type), e.g. XX项目-2026年11月-周报"
_DATE_FORMS: Final[str] = (
    "a date written 2026-11-27, 2026-11, 2026-Q4, 2026年11月27日, 2026年11月, "
    f"2026年第4季度 or 2026年第四季度, with a year from {MIN_YEAR} to {MAX_YEAR}"
)
_TYPE_LIST: Final[str] = "one of " + ", ".join(DOC_TYPES)
_API_TYPE_LIST: Final[str] = f"{_TYPE_LIST}, or one of {', '.join(_ENGLISH)}"

#: Characters Windows refuses in file names; documents are downloaded there.
_RESERVED: Final[frozenset[str]] = frozenset('<>:"|?*')
#: Invisible or unrenderable characters: control (Cc), format (Cf, including
#: zero-width and bidi overrides that make a name display differently from
#: what it is), surrogates, private use, unassigned, line and paragraph breaks.
_REFUSED_CATEGORIES: Final[frozenset[str]] = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
#: NFKC turns one character into at most 18, and composes at most 3 into one,
#: so a raw text this many times the limit can be refused before normalising it.
_RAW_LENGTH_FACTOR: Final[int] = 4

# [0-9], not \d: \d also matches other scripts' digits, which int() would accept.
# The six forms are disjoint at the end of a text (what each form ends with
# and how many digits precede its last '-' differ), so at most one matches.
_FORMS: Final[tuple[tuple[PeriodKind, bool, str], ...]] = (
    ("day", True, r"(?P<y>[0-9]{4})-(?P<m>[0-9]{1,2})-(?P<d>[0-9]{1,2})"),
    ("month", True, r"(?P<y>[0-9]{4})-(?P<m>[0-9]{1,2})"),
    ("quarter", True, r"(?P<y>[0-9]{4})-Q(?P<q>[0-9]{1,2})"),
    ("day", False, r"(?P<y>[0-9]{4})年(?P<m>[0-9]{1,2})月(?P<d>[0-9]{1,2})日"),
    ("month", False, r"(?P<y>[0-9]{4})年(?P<m>[0-9]{1,2})月"),
    ("quarter", False, r"(?P<y>[0-9]{4})年第(?P<q>[0-9]{1,2}|[一二三四五六七八九十]{1,3})季度"),
)
_DATE_ONLY: Final[tuple[tuple[PeriodKind, bool, re.Pattern[str]], ...]] = tuple(
    (kind, iso, re.compile(form)) for kind, iso, form in _FORMS
)
_PROJECT_AND_DATE: Final[tuple[tuple[PeriodKind, bool, re.Pattern[str]], ...]] = tuple(
    (kind, iso, re.compile(rf"(?P<project>.*)-(?P<date>{form})", re.DOTALL))
    for kind, iso, form in _FORMS
)
_DATE_AT_END: Final[re.Pattern[str]] = re.compile(
    "(?:" + "|".join(re.sub(r"\(\?P<\w+>", "(?:", form) for _, _, form in _FORMS) + r")\Z"
)
_QUARTERS: Final[Mapping[str, int]] = MappingProxyType(
    {"1": 1, "2": 2, "3": 3, "4": 4, "一": 1, "二": 2, "三": 3, "四": 4}
)
_CHINESE_QUARTER: Final[Mapping[int, str]] = MappingProxyType({1: "一", 2: "二", 3: "三", 4: "四"})


class NameProblem(ValueError):
    """Why a document name is refused (R4.4): which `part`, what is wrong, what was expected."""

    def __init__(self, part: NamePart, detail: str, expected: str) -> None:
        self.part: NamePart = part
        self.detail = detail
        self.expected = expected
        super().__init__(f"{detail}; expected {expected}.")

    def __reduce__(self) -> tuple[type[NameProblem], tuple[NamePart, str, str]]:
        # The default pickles `args` (the message) only, which __init__ cannot take.
        return (NameProblem, (self.part, self.detail, self.expected))


def normalise(text: str) -> str:
    """Unicode NFKC: full-width digits, letters and hyphen (U+FF0D) become ASCII."""
    return unicodedata.normalize("NFKC", text)


def project_key(name: str) -> str:
    """How project names compare (R4.4): NFKC, whitespace runs collapsed, casefolded."""
    return " ".join(normalise(name).split()).casefold()


def canonical_type(text: str) -> DocType:
    """The document type of an API value: an English alias or the Chinese name (R4.4)."""
    cleaned = normalise(text).strip()
    doc_type = ALIASES.get(cleaned) or ALIASES.get(cleaned.lower())
    if doc_type is None:
        raise NameProblem("type", f"{text!r} is not a document type", _API_TYPE_LIST)
    return doc_type


def _date_period(kind: PeriodKind, iso: bool, match: re.Match[str]) -> Period:
    """The period a matched name date denotes; NameProblem if it is not a real one."""
    text = match["date"] if "date" in match.re.groupindex else match[0]
    year = int(match["y"])
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise NameProblem(
            "date",
            f"The date {text!r} has the year {year}, outside {MIN_YEAR}-{MAX_YEAR}",
            _DATE_FORMS,
        )
    if kind == "quarter":
        quarter = _QUARTERS.get(match["q"])
        if quarter is None:
            raise NameProblem(
                "date", f"The date {text!r} names no quarter (quarters are 1 to 4)", _DATE_FORMS
            )
        return Period.of("quarter", date(year, 3 * quarter - 2, 1))
    month = match["m"]
    day = match["d"] if kind == "day" else "01"
    if iso and (len(month) != 2 or len(day) != 2):
        # 2026-11-7 is not ISO 8601; accepting it would give one date two spellings.
        raise NameProblem(
            "date",
            f"The date {text!r} is not zero-padded (ISO dates have two-digit months and days)",
            f"{year}-{int(month):02d}" + (f"-{int(day):02d}" if kind == "day" else ""),
        )
    try:
        first = date(year, int(month), int(day))
    except ValueError:
        raise NameProblem(
            "date", f"The date {text!r} is not a real calendar {kind}", _DATE_FORMS
        ) from None
    return Period.of(kind, first)


@dataclass(frozen=True)
class NameDate:
    """The date part of a name as written (after NFKC), and the day, month or
    quarter it denotes (R4.4)."""

    text: str
    period: Period

    def __post_init__(self) -> None:
        # A hand-built NameDate must say what it means: its text is what the name shows.
        for kind, iso, pattern in _DATE_ONLY:
            match = pattern.fullmatch(self.text)
            if match is not None:
                if _date_period(kind, iso, match) != self.period:
                    raise ValueError(f"{self.text!r} does not denote {self.period}")
                return
        raise NameProblem("date", f"{self.text!r} is not a date", _DATE_FORMS)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class DocumentName:
    """A parsed name `项目名称-日期-类型` (R4.4)."""

    project: str
    date: NameDate
    doc_type: DocType

    def __str__(self) -> str:
        return f"{self.project}-{self.date}-{self.doc_type}"


def _check_safe(text: str, max_length: int) -> None:
    """Refuse what is unsafe or misleading as a file name, whatever its parts."""
    if not text:
        raise NameProblem("name", "The name is empty", _SHAPE)
    if len(text) > max_length:
        raise NameProblem(
            "name", f"The name is {len(text)} characters long", f"at most {max_length} characters"
        )
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            label = unicodedata.name(char, "an invisible or control character")
            raise NameProblem(
                "name",
                f"The name contains U+{ord(char):04X} ({label})",
                "visible characters only (no control, format or bidi characters)",
            )
    if "/" in text or "\\" in text:
        raise NameProblem("name", "The name contains a path separator ('/' or '\\')", _SHAPE)
    reserved = sorted(set(text) & _RESERVED)
    if reserved:
        raise NameProblem(
            "name",
            f"The name contains the reserved character(s) {' '.join(reserved)}",
            f"a name without any of {' '.join(sorted(_RESERVED))}",
        )
    if text != text.strip():
        raise NameProblem("name", "The name begins or ends with whitespace", _SHAPE)
    if text.startswith("."):
        raise NameProblem("name", "The name begins with '.' (a hidden or relative file)", _SHAPE)
    if any(part in {".", ".."} for part in text.split("-")):
        raise NameProblem("name", "The name has a part '.' or '..'", _SHAPE)


def _name_type(type_text: str, text: str) -> DocType:
    doc_type = ALIASES.get(type_text)
    if doc_type is not None and doc_type == type_text:
        return doc_type
    if not type_text:
        raise NameProblem("type", "The name ends with '-' and has no type", _TYPE_LIST)
    if type_text.strip() in DOC_TYPES:
        raise NameProblem("type", f"The type {type_text!r} has spaces around it", type_text.strip())
    alias = ALIASES.get(type_text.lower())
    if alias is not None:
        # Aliases are for the API; a name is read by people, in Chinese.
        raise NameProblem(
            "type",
            f"The type {type_text!r} is an English API alias; names use the Chinese type",
            alias,
        )
    if _DATE_AT_END.search(text):
        raise NameProblem("type", "The name has no type after its date", _TYPE_LIST)
    raise NameProblem("type", f"{type_text!r} is not a document type", _TYPE_LIST)


def _find_date(
    head: str, patterns: tuple[tuple[PeriodKind, bool, re.Pattern[str]], ...]
) -> tuple[PeriodKind, bool, re.Match[str]] | None:
    for kind, iso, pattern in patterns:
        match = pattern.fullmatch(head)
        if match is not None:
            return kind, iso, match
    return None


def _split_date(head: str) -> tuple[str, NameDate]:
    """Project and date of the text before the type; the date is at the end."""
    found = _find_date(head, _PROJECT_AND_DATE)
    if found is None:
        alone = _find_date(head, _DATE_ONLY)
        if alone is None:
            raise _no_date(head)
        _date_period(*alone)
        raise NameProblem("project", "The name has no project before its date", _SHAPE)
    kind, iso, match = found
    period = _date_period(kind, iso, match)
    project = match["project"]
    if not project.strip():
        raise NameProblem("project", "The name has no project before its date", _SHAPE)
    if project != project.strip() or project.startswith("-") or project.endswith("-"):
        raise NameProblem(
            "project",
            f"The project {project!r} begins or ends with a space or '-'",
            "a project name without spaces or '-' at its ends",
        )
    return project, NameDate(match["date"], period)


def _no_date(head: str) -> NameProblem:
    end = _DATE_AT_END.search(head)
    if end is not None:
        return NameProblem(
            "date", f"The date {end[0]!r} is not separated from the project by '-'", _DATE_FORMS
        )
    if "-" not in head:
        return NameProblem(
            "date", "The name has no date between its project and its type", _DATE_FORMS
        )
    shown = head.rpartition("-")[2]
    return NameProblem("date", f"{shown!r} before the type is not a date", _DATE_FORMS)


def parse_name(raw: str, *, max_length: int = 120) -> DocumentName:
    """The parts of a document name `项目名称-日期-类型` (R4.4), after NFKC.

    Raises NameProblem naming the part at fault and what was expected. The
    type is the text after the last '-'; the date ends right before it; the
    project (which may itself contain '-') is everything before the date.
    """
    if len(raw) > _RAW_LENGTH_FACTOR * max_length:
        raise NameProblem(
            "name", f"The name is {len(raw)} characters long", f"at most {max_length} characters"
        )
    text = normalise(raw)
    _check_safe(text, max_length)
    head, separator, type_text = text.rpartition("-")
    if not separator:
        raise NameProblem("name", f"The name {text!r} has no '-' between its parts", _SHAPE)
    doc_type = _name_type(type_text, text)
    project, name_date = _split_date(head)
    return DocumentName(project, name_date, doc_type)


def _suggested_date(period: Period) -> str:
    start = period.start
    if period.kind == "day":
        return f"{start.year}年{start.month}月{start.day}日"
    if period.kind == "quarter":
        quarter = (start.month - 1) // 3 + 1
        return f"{start.year}年第{_CHINESE_QUARTER[quarter]}季度"
    return f"{start.year}年{start.month}月"


def _parse_registered(raw: str, project_name: str, max_length: int) -> DocumentName:
    """parse_name, except that a name beginning with the project's registered
    name as written is not refused for that part: the partner service may
    register a title with `：`, `/` or over the name length (`ERP系统升级：二期`),
    and its documents must still be fileable. The rest of the name is held
    to every rule; the name is a label here, never a path."""
    try:
        return parse_name(raw, max_length=max_length)
    except NameProblem:
        text = normalise(raw)
        registered = normalise(project_name)
        prefix, rest = text[: len(registered)], text[len(registered) :]
        if not (
            registered
            and rest.startswith("-")
            and project_key(prefix) == project_key(registered)
            and len(raw) <= _RAW_LENGTH_FACTOR * (max_length + len(registered))
        ):
            raise
        placeholder = parse_name(f"P{rest}", max_length=max_length)
        return DocumentName(prefix, placeholder.date, placeholder.doc_type)


def check_name(
    raw: str, *, project_name: str, doc_type: DocType, period: Period, max_length: int = 120
) -> DocumentName:
    """R4.4: `raw` is a well-formed name for this document: its project, its
    type, and a date lying within its period (R4.3), or for a weekly report
    the month it falls in, as in the policy's example; the period's kind fits
    the type."""
    name = _parse_registered(raw, project_name, max_length)
    if doc_type not in PERIOD_OF_TYPE:
        raise ValueError(f"unknown document type {doc_type!r}; use {_TYPE_LIST}")
    wanted = PERIOD_OF_TYPE[doc_type]
    if period.kind != wanted:
        raise NameProblem(
            "period",
            f"A {doc_type} belongs to a {wanted}, but its period {period} is a {period.kind}",
            f"a {wanted} period",
        )
    if project_key(name.project) != project_key(project_name):
        raise NameProblem(
            "project", f"The name is for the project {name.project!r}, not this one", project_name
        )
    if name.doc_type != doc_type:
        raise NameProblem(
            "type", f"The name says {name.doc_type}, but the document is a {doc_type}", doc_type
        )
    named = name.date.period
    inside = period.start <= named.start and named.end <= period.end
    # The policy's own example names a weekly report by its month
    # (`XX项目-2026年11月-周报`): a month touching the week is accepted too.
    month_of_week = period.kind == "week" and named.kind == "month" and named.overlaps(period)
    if not (inside or month_of_week):
        raise NameProblem(
            "date",
            f"The date {name.date} ({named.start} to {named.end}) does not lie within the "
            f"document's period {period} ({period.start} to {period.end})",
            f"a date within {period}, e.g. {_suggested_date(period)}",
        )
    return name


def split_filename(filename: str) -> tuple[str, str]:
    """`XX项目-2026年11月-周报.pdf` -> (`XX项目-2026年11月-周报`, `pdf`), after NFKC.

    The extension (1-10 ASCII letters or digits, lower-cased) is optional: ""
    when there is none. The stem is what `parse_name` checks (R4.4).
    """
    text = normalise(filename)
    stem, dot, extension = text.rpartition(".")
    if dot and stem and 1 <= len(extension) <= 10 and extension.isascii() and extension.isalnum():
        return stem, extension.lower()
    return text, ""
