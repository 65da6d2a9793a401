"""R4.4: document names `项目名称-日期-类型`, `services.docs.domain.naming`.

Proves that well-formed names parse into project, date and type (every date
form; full-width input normalised; projects containing '-', digits and
spaces), that malformed and hostile names are refused naming the part at fault
(separators, types, impossible dates, path tricks, control and bidi
characters, length), that `check_name` ties a name to its document (project,
type, a date overlapping the period of R4.3), and the API type aliases and
file-name split. Properties: every generated well-formed name round-trips, and
arbitrary text either parses or raises NameProblem, nothing else.
"""

from __future__ import annotations

import pickle
import string
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.docs.domain.naming import (
    ALIASES,
    DOC_TYPES,
    PERIOD_OF_TYPE,
    REPORT_TYPES,
    DocType,
    NameDate,
    NameProblem,
    canonical_type,
    check_name,
    normalise,
    parse_name,
    project_key,
    split_filename,
)
from services.docs.domain.periods import REPORT_PERIOD, Period

GOOD_NAMES = [
    # name, project, date as written, type, period key of the date
    ("XX项目-2026年11月-周报", "XX项目", "2026年11月", "周报", "2026-11"),
    (
        "核心系统运维项目-2026年11月27日-会议纪要",
        "核心系统运维项目",
        "2026年11月27日",
        "会议纪要",
        "2026-11-27",
    ),
    ("核心系统运维项目-2026-Q4-季报", "核心系统运维项目", "2026-Q4", "季报", "2026-Q4"),
    ("核心系统运维项目-2026年第4季度-季报", "核心系统运维项目", "2026年第4季度", "季报", "2026-Q4"),
    (
        "核心系统运维项目-2026年第四季度-季报",
        "核心系统运维项目",
        "2026年第四季度",
        "季报",
        "2026-Q4",
    ),
    ("ＸＸ项目－２０２６年１１月－周报", "XX项目", "2026年11月", "周报", "2026-11"),
    ("A-2026-2026-11-27-合同", "A-2026", "2026-11-27", "合同", "2026-11-27"),
    ("ERP-云 迁移 2-2026-11-月报", "ERP-云 迁移 2", "2026-11", "月报", "2026-11"),
    ("X-2028-02-29-验收报告", "X", "2028-02-29", "验收报告", "2028-02-29"),
    ("X-2026年1月5日-启动会纪要", "X", "2026年1月5日", "启动会纪要", "2026-01-05"),
    ("X-2026年01月-月报", "X", "2026年01月", "月报", "2026-01"),
    ("X-2026年6月30日-中期评审报告", "X", "2026年6月30日", "中期评审报告", "2026-06-30"),
    ("X-2000-01-01-合同", "X", "2000-01-01", "合同", "2000-01-01"),
    ("X-2100年第一季度-季报", "X", "2100年第一季度", "季报", "2100-Q1"),
]


@pytest.mark.parametrize(("raw", "project", "written", "doc_type", "key"), GOOD_NAMES)
def test_r4_4_good_names_parse_into_their_parts(
    raw: str, project: str, written: str, doc_type: str, key: str
) -> None:
    name = parse_name(raw)
    assert (name.project, name.date.text, name.doc_type) == (project, written, doc_type)
    assert name.date.period == Period.parse(key)
    assert str(name) == normalise(raw) == f"{project}-{written}-{doc_type}"
    assert str(name.date) == written


def test_r4_4_full_width_input_is_the_half_width_name() -> None:
    assert normalise("ＸＸ项目－２０２６年１１月－周报") == "XX项目-2026年11月-周报"
    assert parse_name("ＸＸ项目－２０２６年１１月－周报") == parse_name("XX项目-2026年11月-周报")


BAD_NAMES = [
    # name, part at fault
    ("XX项目_2026年11月_周报", "name"),  # wrong separator
    ("XX项目—2026年11月—周报", "name"),  # an em dash is not '-'
    ("XX项目-2026年11月", "type"),  # no type
    ("XX项目-2026年11月-", "type"),
    ("XX项目-2026年11月-weekly_report", "type"),  # API alias inside a name
    ("XX项目-2026年11月-日报", "type"),  # no such type
    ("XX项目-2026年11月- 周报", "type"),
    ("XX项目-2026-02-30-合同", "date"),
    ("XX项目-2026-02-29-合同", "date"),  # 2026 is not a leap year
    ("XX项目-2026-13-月报", "date"),
    ("XX项目-2026-00-月报", "date"),
    ("XX项目-2026-Q5-季报", "date"),
    ("XX项目-2026-Q0-季报", "date"),
    ("XX项目-2026-q4-季报", "date"),
    ("XX项目-2026年13月-月报", "date"),
    ("XX项目-2026年第五季度-季报", "date"),
    ("XX项目-2026年第04季度-季报", "date"),
    ("XX项目-2026-11-7-合同", "date"),  # ISO dates are zero-padded
    ("XX项目-2026-1-月报", "date"),
    ("XX项目-1999年11月-周报", "date"),
    ("XX项目-2101-01-月报", "date"),
    ("XX项目-20261-01-月报", "date"),
    ("XX项目-周报", "date"),  # no date
    ("XX项目2026年11月-周报", "date"),  # date not separated from the project
    ("XX项目-2026年11月份-周报", "date"),
    ("XX项目-٢٠٢٦-11-月报", "date"),  # Arabic-Indic digits
    ("2026年11月-周报", "project"),  # no project
    ("-2026年11月-周报", "project"),
    ("XX项目 -2026年11月-周报", "project"),
    ("-XX项目-2026年11月-周报", "project"),  # would read as a command-line option
    ("XX/项目-2026年11月-周报", "name"),
    ("XX／项目-2026年11月-周报", "name"),  # full-width solidus becomes '/'
    ("XX\\项目-2026年11月-周报", "name"),
    ("XX项目\x00-2026年11月-周报", "name"),
    ("XX项目-2026年11月-周报\n", "name"),
    ("XX项目\t-2026年11月-周报", "name"),
    ("XX\u200b项目-2026年11月-周报", "name"),  # zero-width space
    ("XX\u202e项目-2026年11月-周报", "name"),  # right-to-left override
    ("\ufeffXX项目-2026年11月-周报", "name"),  # byte order mark
    ("XX\u2028项目-2026年11月-周报", "name"),  # line separator
    ("..", "name"),
    ("..-2026年11月-周报", "name"),
    ("A-..-2026年11月-周报", "name"),
    (".XX项目-2026年11月-周报", "name"),
    ("XX项目:1-2026年11月-周报", "name"),
    ("XX项目：1-2026年11月-周报", "name"),  # full-width colon becomes ':'
    ("XX项目?-2026年11月-周报", "name"),
    ("X" * 120 + "-2026年11月-周报", "name"),
    ("X" + "\ufdfa" * 7 + "-2026年11月-周报", "name"),  # short, but NFKC makes it long
    ("X" * 1_000_000, "name"),
    (" XX项目-2026年11月-周报", "name"),
    ("XX项目-2026年11月-周报 ", "name"),
    ("\u3000XX项目-2026年11月-周报", "name"),  # ideographic space
    ("", "name"),
]


@pytest.mark.parametrize(("raw", "part"), BAD_NAMES)
def test_r4_4_bad_names_are_refused_naming_the_part(raw: str, part: str) -> None:
    with pytest.raises(NameProblem) as caught:
        parse_name(raw)
    problem = caught.value
    assert problem.part == part
    assert problem.expected and problem.detail
    assert str(problem) == f"{problem.detail}; expected {problem.expected}."
    assert "\x00" not in str(problem) and "\u202e" not in str(problem)


def test_r4_4_the_problem_says_what_was_expected() -> None:
    with pytest.raises(NameProblem, match="English API alias") as alias:
        parse_name("XX项目-2026年11月-monthly_report")
    assert alias.value.expected == "月报"
    with pytest.raises(NameProblem, match="zero-padded") as unpadded:
        parse_name("XX项目-2026-11-7-合同")
    assert unpadded.value.expected == "2026-11-07"
    with pytest.raises(NameProblem) as bad_date:
        parse_name("XX项目-2026-02-30-合同")
    assert "2026年11月" in bad_date.value.expected and "2026-Q4" in bad_date.value.expected
    with pytest.raises(NameProblem, match="U\\+202E") as bidi:
        parse_name("XX\u202e项目-2026年11月-周报")
    assert bidi.value.part == "name"
    with pytest.raises(NameProblem) as long:
        parse_name("X" * 30 + "-2026年11月-周报", max_length=20)
    assert long.value.expected == "at most 20 characters"


def test_r4_4_a_name_of_exactly_the_limit_is_accepted() -> None:
    suffix = "-2026年11月-周报"
    raw = "X" * (120 - len(suffix)) + suffix
    assert len(raw) == 120
    assert str(parse_name(raw)) == raw


def test_name_problems_pickle() -> None:
    problem = NameProblem("date", "The date '2026-13' is not a real calendar month", "2026-12")
    copy = pickle.loads(pickle.dumps(problem))
    assert (copy.part, copy.detail, copy.expected, str(copy)) == (
        "date",
        problem.detail,
        "2026-12",
        str(problem),
    )


def test_a_hand_built_name_date_must_say_what_it_means() -> None:
    assert NameDate("2026年11月", Period.parse("2026-11")).period.key == "2026-11"
    with pytest.raises(ValueError, match="does not denote"):
        NameDate("2026年11月", Period.parse("2026-12"))
    with pytest.raises(NameProblem):
        NameDate("November", Period.parse("2026-11"))


# -- check_name: the name fits the document ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "project", "doc_type", "period"),
    [
        ("XX项目-2026年11月-周报", "XX项目", "周报", "2026-W48"),
        ("XX项目-2026年11月-周报", "XX项目", "周报", "2026-W49"),  # Nov 30 - Dec 6
        ("XX项目-2026年12月-周报", "XX项目", "周报", "2026-W49"),
        ("ＸＸ项目－２０２６年１１月－周报", "xx项目", "周报", "2026-W48"),
        ("Core  Ops-2026-11-月报", "core ops", "月报", "2026-11"),
        ("X-2026年第四季度-季报", "X", "季报", "2026-Q4"),
        ("X-2026年11月27日-合同", "X", "合同", "2026-11-27"),
        ("X-2026-11-27-会议纪要", "X", "会议纪要", "2026-11-27"),
        ("X-2026年11月-季报", "X", "季报", "2026-Q4"),  # a month within the quarter
    ],
)
def test_r4_4_check_name_accepts_the_documents_own_name(
    raw: str, project: str, doc_type: DocType, period: str
) -> None:
    name = check_name(raw, project_name=project, doc_type=doc_type, period=Period.parse(period))
    assert name == parse_name(raw)


@pytest.mark.parametrize(
    ("raw", "project", "doc_type", "period", "part", "expected"),
    [
        ("YY项目-2026年11月-周报", "XX项目", "周报", "2026-W48", "project", "XX项目"),
        ("XX项目-2026年11月-月报", "XX项目", "周报", "2026-W48", "type", "周报"),
        ("XX项目-2026年10月-周报", "XX项目", "周报", "2026-W48", "date", "2026年11月"),
        ("X-2026年第三季度-季报", "X", "季报", "2026-Q4", "date", "2026年第四季度"),
        ("X-2026年11月28日-合同", "X", "合同", "2026-11-27", "date", "2026年11月27日"),
        ("XX项目-2026年11月-周报", "XX项目", "周报", "2026-11", "period", "a week period"),
        ("X-2026-11-27-合同", "X", "合同", "2026-W48", "period", "a day period"),
    ],
)
def test_r4_4_check_name_refuses_a_name_of_another_document(
    raw: str, project: str, doc_type: DocType, period: str, part: str, expected: str
) -> None:
    with pytest.raises(NameProblem) as caught:
        check_name(raw, project_name=project, doc_type=doc_type, period=Period.parse(period))
    assert caught.value.part == part
    assert expected in caught.value.expected


def test_r4_4_check_name_parses_first() -> None:
    with pytest.raises(NameProblem) as caught:
        check_name(
            "XX项目_2026年11月_周报",
            project_name="XX项目",
            doc_type="周报",
            period=Period.parse("2026-W48"),
        )
    assert caught.value.part == "name"


def test_r4_4_project_names_compare_by_key() -> None:
    assert project_key(" ＸＸ　 Project ") == project_key("xx project") == "xx project"
    assert project_key("XX项目") != project_key("YY项目")


# -- types, aliases, file names -------------------------------------------------------


def test_r4_4_types_aliases_and_their_periods() -> None:
    assert set(ALIASES.values()) == set(DOC_TYPES) == set(PERIOD_OF_TYPE)
    assert all(ALIASES[doc_type] == doc_type for doc_type in DOC_TYPES)
    for doc_type, report in REPORT_TYPES.items():
        assert PERIOD_OF_TYPE[doc_type] == REPORT_PERIOD[report]
    assert {t for t, kind in PERIOD_OF_TYPE.items() if kind == "day"} == {
        "合同",
        "会议纪要",
        "启动会纪要",
        "中期评审报告",
        "验收报告",
    }


@pytest.mark.parametrize(
    ("text", "doc_type"),
    [
        ("weekly_report", "周报"),
        ("monthly_report", "月报"),
        ("quarterly_report", "季报"),
        ("contract", "合同"),
        ("minutes", "会议纪要"),
        ("kickoff_minutes", "启动会纪要"),
        ("midterm_review_report", "中期评审报告"),
        ("acceptance_report", "验收报告"),
        (" Weekly_Report ", "周报"),
        ("ｃｏｎｔｒａｃｔ", "合同"),
        ("季报", "季报"),
        ("会议纪要", "会议纪要"),
    ],
)
def test_r4_4_canonical_type_of_aliases_and_chinese_names(text: str, doc_type: str) -> None:
    assert canonical_type(text) == doc_type


@pytest.mark.parametrize("text", ["daily_report", "日报", "", "weekly report", "周 报"])
def test_r4_4_canonical_type_refuses_unknown_types(text: str) -> None:
    with pytest.raises(NameProblem) as caught:
        canonical_type(text)
    assert caught.value.part == "type"
    assert "周报" in caught.value.expected and "weekly_report" in caught.value.expected


@pytest.mark.parametrize(
    ("filename", "stem", "extension"),
    [
        ("XX项目-2026年11月-周报.pdf", "XX项目-2026年11月-周报", "pdf"),
        ("XX项目-2026年11月-周报.PDF", "XX项目-2026年11月-周报", "pdf"),
        ("XX项目-2026年11月-周报．ｄｏｃｘ", "XX项目-2026年11月-周报", "docx"),
        ("XX项目-2026年11月-周报", "XX项目-2026年11月-周报", ""),
        ("archive.tar.gz", "archive.tar", "gz"),
        ("report.abcdefghijk", "report.abcdefghijk", ""),  # 11 characters: not an extension
        ("report.p-f", "report.p-f", ""),
        ("report.", "report.", ""),
        (".pdf", ".pdf", ""),  # a hidden file, not an extension alone
    ],
)
def test_r4_4_split_filename(filename: str, stem: str, extension: str) -> None:
    assert split_filename(filename) == (stem, extension)


def test_r4_4_the_stem_of_a_file_is_the_name() -> None:
    stem, extension = split_filename("ＸＸ项目－２０２６年１１月－周报.pdf")
    assert extension == "pdf"
    assert str(parse_name(stem)) == "XX项目-2026年11月-周报"


# -- properties ------------------------------------------------------------------------

_CJK = "核心系统运维项目数据中心云平台迁移年月日第季度报"
_EDGE = _CJK + string.ascii_letters + string.digits
_INNER = _EDGE + "- "
_FULL_WIDTH = {ord(c): ord(c) + 0xFEE0 for c in string.ascii_letters + string.digits + "-"}


@st.composite
def projects(draw: st.DrawFn) -> str:
    """Safe project names: CJK, Latin, digits; '-' and spaces only inside."""
    first = draw(st.sampled_from(_EDGE))
    inner = draw(st.text(alphabet=_INNER, max_size=20))
    return first + inner + draw(st.sampled_from(_EDGE)) if inner else first


@st.composite
def name_dates(draw: st.DrawFn) -> str:
    """A date in every accepted form, Chinese month and day with or without padding."""
    day = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
    quarter = (day.month - 1) // 3 + 1
    month = draw(st.sampled_from([str(day.month), f"{day.month:02d}"]))
    day_of_month = draw(st.sampled_from([str(day.day), f"{day.day:02d}"]))
    return draw(
        st.sampled_from(
            [
                day.isoformat(),
                f"{day.year}-{day.month:02d}",
                f"{day.year}-Q{quarter}",
                f"{day.year}年{month}月{day_of_month}日",
                f"{day.year}年{month}月",
                f"{day.year}年第{quarter}季度",
                f"{day.year}年第{'一二三四'[quarter - 1]}季度",
            ]
        )
    )


@given(projects(), name_dates(), st.sampled_from(DOC_TYPES), st.booleans())
def test_r4_4_every_well_formed_name_round_trips(
    project: str, written: str, doc_type: DocType, full_width: bool
) -> None:
    raw = f"{project}-{written}-{doc_type}"
    if full_width:
        raw = raw.translate(_FULL_WIDTH)
    name = parse_name(raw)
    assert (name.project, name.date.text, name.doc_type) == (project, written, doc_type)
    assert str(name) == normalise(raw)
    assert parse_name(str(name)) == name
    period = Period.of(PERIOD_OF_TYPE[doc_type], name.date.period.start)
    named = name.date.period
    fits = (period.start <= named.start and named.end <= period.end) or (
        period.kind == "week" and named.kind == "month"
    )
    if fits:
        assert check_name(raw, project_name=project, doc_type=doc_type, period=period) == name
    else:  # a date coarser than the period does not lie within it (R4.4)
        with pytest.raises(NameProblem) as refused:
            check_name(raw, project_name=project, doc_type=doc_type, period=period)
        assert refused.value.part == "date"


def test_r4_4_a_date_must_lie_within_the_period_except_a_weekly_reports_month() -> None:
    """R4.4: a coarser date than the document's period does not lie within it
    (a quarter for a month, a month for a day); the policy's own example, a
    weekly report named by its month, is the one exception."""
    for raw, doc_type, period in (
        ("X-2026年第四季度-月报", "月报", "2026-11"),
        ("X-2026年11月-合同", "合同", "2026-11-27"),
        ("X-2026-11-会议纪要", "会议纪要", "2026-11-27"),
    ):
        with pytest.raises(NameProblem) as refused:
            check_name(raw, project_name="X", doc_type=doc_type, period=Period.parse(period))
        assert refused.value.part == "date" and "within" in str(refused.value)
    assert check_name(
        "X-2026年11月-周报", project_name="X", doc_type="周报", period=Period.parse("2026-W49")
    )


_NEAR_NAMES = st.text(
    alphabet="-年月日第季度一二三四五Q0123456789周报合同X项目 ./\\:\u200b", max_size=30
)


@given(st.one_of(st.text(max_size=200), _NEAR_NAMES), st.integers(min_value=1, max_value=150))
def test_r4_4_any_text_parses_or_raises_name_problem(raw: str, max_length: int) -> None:
    try:
        name = parse_name(raw, max_length=max_length)
    except NameProblem as problem:
        assert problem.part in {"name", "project", "date", "type"}
        return
    assert str(name) == normalise(raw)
    assert parse_name(str(name), max_length=max_length) == name


@given(st.text(max_size=60))
def test_r4_4_split_filename_keeps_the_stem_and_a_short_extension(filename: str) -> None:
    stem, extension = split_filename(filename)
    text = normalise(filename)
    if extension:
        assert 1 <= len(extension) <= 10
        assert extension.isascii() and extension.isalnum() and extension == extension.lower()
        assert text.startswith(f"{stem}.") and text[len(stem) + 1 :].lower() == extension
    else:
        assert stem == text


def test_r4_4_a_registered_project_name_with_reserved_characters_can_be_filed() -> None:
    """R4.4: the partner service may register `ERP系统升级：二期` or `A/B测试平台项目`;
    a name starting with the registered name is accepted for that part, while
    the rest is held to every rule and another project's name is still refused."""
    week = Period.parse("2026-W48")
    name = check_name(
        "ERP系统升级：二期-2026年11月-周报",
        project_name="ERP系统升级：二期",
        doc_type="周报",
        period=week,
    )
    assert (name.project, name.doc_type) == ("ERP系统升级:二期", "周报")
    day = Period.parse("2026-11-27")
    assert check_name(
        "A/B测试平台项目-2026-11-27-会议纪要",
        project_name="A/B测试平台项目",
        doc_type="会议纪要",
        period=day,
    )
    for raw in ("A/C测试平台项目-2026-11-27-会议纪要", "A/B测试平台项目-2026-11-27-会议/纪要"):
        with pytest.raises(NameProblem):
            check_name(raw, project_name="A/B测试平台项目", doc_type="会议纪要", period=day)
