"""Documents over HTTP (real PostgreSQL, in process, a manual clock starting
Monday 2026-11-23 09:00 Shanghai):

- R4.4: names `项目名称-日期-类型` through the API, as a table of good and bad
  names: full-width input, odd dates, English types in the name, the wrong
  project, type or period, hostile names; a bad one is a 422 naming the part
  and what was expected, and stores nothing;
- R4.5: a new upload under a name is its next version, earlier versions stay
  readable byte for byte with their SHA-256; identical content and a different
  period are refused; the policy's size limit; every filing, version and read
  is on record; Idempotency-Key on the multipart POST;
- R6.1: reviews (accepted / needs correction with reasons, never by the filer);
- R4.1: contracts encrypted at rest (no window of the plaintext in any table,
  events included), read by the Director only, every refused attempt on record,
  readable after a key rotation;
- the access rules of services/docs/api/access.py, role by role (R2.2, R4.1).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from services.docs.archive import KeyRing, rotate
from services.docs.service import SPEC as DOCS
from shared.clock import ManualClock
from shared.db import quote_ident
from shared.settings import Settings
from tests.support.apps import running
from tests.support.docs_api import (
    AUDITOR,
    CEO,
    DEPT_HEAD,
    DIRECTOR,
    FINANCE,
    OTHER_PM,
    OTHER_SPECIALIST,
    PARTNER_USER,
    PM,
    PROJECT_NAME,
    SPECIALIST,
    DocsApi,
    local,
)

pytestmark = pytest.mark.integration

POLICY_EXAMPLE = "XX项目"
WEEKLY = f"{PROJECT_NAME}-2026年11月-周报"  # week 2026-W48 (Mon 11-23 .. Sun 11-29)
DEPARTMENT = "信息技术部"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(local(2026, 11, 23, 9))  # Monday 09:00 Shanghai


@pytest.fixture
async def api(settings: Settings, clock: ManualClock) -> AsyncIterator[DocsApi]:
    async with running(
        DOCS, settings, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        yield DocsApi(svc, settings, clock)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def contract_text(clauses: int = 80) -> bytes:
    """A distinctive multi-KB contract: numbered clauses, mostly ASCII (so it
    would show even in JSON that escapes non-ASCII), every 16-byte window its own."""
    return "".join(
        f"Clause {i:04d} outsourcing contract HT-2026-001: 乙方对甲方资料负有保密义务"
        f" secret-{i * 7919:08d}\n"
        for i in range(clauses)
    ).encode()


# -- R4.4: names through the API ---------------------------------------------------------------

GOOD_NAMES = [
    # id, type (as the API gets it), period, name as typed, name as stored
    ("policy-example", "周报", "2026-W48", "XX项目-2026年11月-周报", "XX项目-2026年11月-周报"),
    ("full-width", "weekly_report", "2026-W48", "ＸＸ项目－２０２６年１１月－周报",
     "XX项目-2026年11月-周报"),
    ("week-across-months-1", "weekly_report", "2026-W44", "XX项目-2026年10月-周报",
     "XX项目-2026年10月-周报"),
    ("week-across-months-2", "weekly_report", "2026-W44", "XX项目-2026年11月-周报",
     "XX项目-2026年11月-周报"),
    ("iso-month", "Monthly_Report", "2026-11", "XX项目-2026-11-月报", "XX项目-2026-11-月报"),
    ("chinese-quarter", "quarterly_report", "2026-Q4", "XX项目-2026年第四季度-季报",
     "XX项目-2026年第四季度-季报"),
    ("iso-quarter", "季报", "2026-q4", "XX项目-2026-Q4-季报", "XX项目-2026-Q4-季报"),
    ("chinese-day", "minutes", "2026-11-23", "XX项目-2026年11月23日-会议纪要",
     "XX项目-2026年11月23日-会议纪要"),
    ("contract", "contract", "2026-11-16", "XX项目-2026-11-16-合同", "XX项目-2026-11-16-合同"),
    ("full-width-digits", "acceptance_report", "2026-11-20", "XX项目-２０２６-１１-２０-验收报告",
     "XX项目-2026-11-20-验收报告"),
    ("kickoff-minutes", "kickoff_minutes", "2026-11-20", "XX项目-2026年11月20日-启动会纪要",
     "XX项目-2026年11月20日-启动会纪要"),
    ("midterm", "midterm_review_report", "2026-11-20", "XX项目-2026-11-20-中期评审报告",
     "XX项目-2026-11-20-中期评审报告"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("doc_type", "period", "typed", "stored"),
    [pytest.param(*case[1:], id=case[0]) for case in GOOD_NAMES],
)
async def test_good_names_are_filed_under_their_normal_form_R4_4(
    api: DocsApi, doc_type: str, period: str, typed: str, stored: str
) -> None:
    """R4.4: the policy's own example `XX项目-2026年11月-周报` (week 2026-W48) and its
    full-width spelling are valid for the project registered as `XX项目`; every date
    form fits its period; English API aliases are accepted in `type` and the
    Chinese type is stored."""
    project = await api.project(POLICY_EXAMPLE, signed_on=date(2026, 11, 16))
    body = await api.filed(api.pm, name=typed, doc_type=doc_type, period=period, project_id=project)
    assert body["name"] == stored
    assert body["doc_type"] == stored.rsplit("-", 1)[1]
    assert body["period"] == period.upper()
    assert body["project_id"] == str(project)
    assert body["versions"][0]["version"] == 1
    assert body["filing"]["created"] is True


BAD_NAMES = [
    # id, type, period, name, errors[0].field, what the message says was expected
    ("no-date", "周报", "2026-W48", "XX项目-周报", "name.date", "expected a date written"),
    ("feb-30", "合同", "2026-02-28", "XX项目-2026-02-30-合同", "name.date", "real calendar day"),
    ("month-13", "月报", "2026-11", "XX项目-2026-13-月报", "name.date", "expected a date written"),
    ("quarter-5", "季报", "2026-Q4", "XX项目-2026-Q5-季报", "name.date", "quarters are 1 to 4"),
    ("cn-quarter-5", "季报", "2026-Q4", "XX项目-2026年第五季度-季报", "name.date", "1 to 4"),
    ("unpadded-day", "会议纪要", "2026-11-07", "XX项目-2026-11-7-会议纪要", "name.date",
     "expected 2026-11-07"),
    ("year-1999", "周报", "2026-W48", "XX项目-1999年11月-周报", "name.date", "2000-2100"),
    ("english-type", "周报", "2026-W48", "XX项目-2026年11月-weekly_report", "name.type",
     "expected 周报"),
    ("unknown-type", "周报", "2026-W48", "XX项目-2026年11月-日报", "name.type",
     "expected one of 周报"),
    ("api-type", "daily_report", "2026-W48", "XX项目-2026年11月-周报", "type",
     "weekly_report"),
    ("wrong-project", "周报", "2026-W48", "YY项目-2026年11月-周报", "name.project",
     "expected XX项目"),
    ("no-project", "周报", "2026-W48", "2026年11月-周报", "name.project", "expected 项目名称"),
    ("type-vs-metadata", "周报", "2026-W48", "XX项目-2026年11月-月报", "name.type",
     "expected 周报"),
    ("date-outside", "周报", "2026-W48", "XX项目-2026年10月-周报", "name.date",
     "within 2026-W48, e.g. 2026年11月"),
    ("day-outside", "合同", "2026-11-16", "XX项目-2026-11-17-合同", "name.date",
     "within 2026-11-16"),
    ("period-kind", "周报", "2026-11", "XX项目-2026年11月-周报", "period",
     "expected a week period"),
    ("period-kind-contract", "合同", "2026-11", "XX项目-2026年11月-合同", "period",
     "expected a day period"),
    ("slash", "周报", "2026-W48", "XX项目/../2026年11月-周报", "name.name", "项目名称-日期-类型"),
    ("backslash", "周报", "2026-W48", "XX项目\\2026年11月-周报", "name.name",
     "项目名称-日期-类型"),
    ("nul", "周报", "2026-W48", "XX项目\x00-2026年11月-周报", "name.name", "visible characters"),
    ("newline", "周报", "2026-W48", "XX项目\n-2026年11月-周报", "name.name",
     "visible characters"),
    ("zero-width-space", "周报", "2026-W48", "XX\u200b项目-2026年11月-周报", "name.name",
     "visible characters"),
    ("rlo", "周报", "2026-W48", "XX项目-2026年11月-\u202e报周", "name.name", "visible characters"),
    ("reserved", "周报", "2026-W48", "XX项目:*-2026年11月-周报", "name.name", "without any of"),
    ("dot-dot", "周报", "2026-W48", "..-2026年11月-周报", "name.name", "项目名称-日期-类型"),
    ("over-long", "周报", "2026-W48", "X" * 150 + "项目-2026年11月-周报", "name.name",
     "at most 120 characters"),
    ("no-dash", "周报", "2026-W48", "XX项目2026年11月周报", "name.name", "项目名称-日期-类型"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("doc_type", "period", "name", "field", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_NAMES],
)
async def test_bad_names_are_422_naming_the_part_and_what_was_expected_R4_4(
    api: DocsApi, doc_type: str, period: str, name: str, field: str, expected: str
) -> None:
    """R4.4: a wrong name is refused with 422; `errors[0].field` names the part at
    fault (name.project, name.date, name.type, name.name; or the
    form field `type` or `period` that does not fit), the detail
    and the message say what was expected; nothing is stored (no event, no content)."""
    project = await api.project(POLICY_EXAMPLE, signed_on=date(2026, 11, 16))
    problem = await api.upload_refused(
        422, api.pm, name=name, doc_type=doc_type, period=period, project_id=project
    )
    assert problem["rule"] == "R4.4"
    assert problem["errors"][0]["field"] == field, problem
    assert "expected" in problem["detail"]
    assert expected in problem["errors"][0]["message"], problem["errors"][0]["message"]
    await api.settle()
    listed = await api.ok("GET", "/v1/documents", api.director)
    assert listed["items"] == []


async def test_an_unknown_period_is_422_on_the_period_field_R4_4(api: DocsApi) -> None:
    """R4.4, R4.3: the period must be a real one (2026 has 53 ISO weeks, not 54)."""
    project = await api.project(POLICY_EXAMPLE, signed_on=date(2026, 11, 16))
    problem = await api.upload_refused(
        422,
        api.pm,
        name="XX项目-2026年12月-周报",
        doc_type="周报",
        period="2026-W54",
        project_id=project,
    )
    assert problem["errors"][0]["field"] == "period"
    assert "53 ISO weeks" in problem["errors"][0]["message"]


async def test_the_name_defaults_to_the_file_names_stem_R4_4(api: DocsApi) -> None:
    """R4.4: without a `name` field the file name's stem is the name, checked like
    any other; a path in the file name (a browser's C:\\...) is cut to its last
    segment, which is what is stored and checked."""
    project = await api.project(POLICY_EXAMPLE, signed_on=date(2026, 11, 16))
    fields = {"type": "周报", "period": "2026-W48", "project_id": str(project)}

    async def post(file_name: str, content: bytes = b"week 48") -> Any:
        files = {"file": (file_name, content, "application/pdf")}
        return await api.client.post("/v1/documents", headers=api.pm, data=fields, files=files)

    head = api.app.log_head()
    bad = await post("C:\\Users\\wang\\XX项目-2026年11月-日报.pdf")
    assert bad.status_code == 422, bad.text
    assert bad.json()["errors"][0]["field"] == "name.type"
    assert api.app.log_head() == head
    pathed = await post("../../etc/XX项目-2026年11月-周报.pdf", b"week 48 draft")
    assert pathed.status_code == 201, pathed.text
    assert pathed.json()["versions"][0]["file_name"] == "XX项目-2026年11月-周报.pdf"
    good = await post("ＸＸ项目-2026年11月-周报.PDF")
    assert good.status_code == 201, good.text
    assert good.json()["name"] == "XX项目-2026年11月-周报"
    assert good.json()["versions"][-1]["file_name"] == "ＸＸ项目-2026年11月-周报.PDF"
    assert [v["version"] for v in good.json()["versions"]] == [1, 2]


async def test_a_project_name_differently_cased_or_spaced_is_the_same_document_R4_4_R4_5(
    api: DocsApi,
) -> None:
    """R4.4, R4.5: project names compare NFKC-normalised, whitespace-collapsed and
    case-insensitively; a name that compares equal is the same name, so the
    upload is the document's next version under its registered name, not a
    second document."""
    project = await api.project("ERP 云迁移 Alpha", signed_on=date(2026, 11, 16))
    first = await api.filed(
        api.pm,
        name="ERP 云迁移 Alpha-2026年11月-周报",
        doc_type="周报",
        period="2026-W48",
        project_id=project,
    )
    again = await api.filed(
        api.pm,
        name="erp  云迁移 ALPHA-2026年11月-周报",
        doc_type="周报",
        period="2026-W48",
        project_id=project,
        content=b"second",
    )
    assert again["id"] == first["id"]
    assert again["name"] == "ERP 云迁移 Alpha-2026年11月-周报"
    assert [v["version"] for v in again["versions"]] == [1, 2]


# -- R4.5: versions, size, department documents ----------------------------------------------


async def test_versions_stay_readable_byte_for_byte_R4_5(api: DocsApi) -> None:
    """R4.5: a new upload under the same name is version n+1 (full-width spelling
    included); every earlier version stays readable with its SHA-256
    (`X-Content-SHA256`); identical content is refused 409 and nothing is stored;
    the same name for another week is another document (the policy's own
    month-named weekly report)."""
    project = await api.project(signed_on=date(2026, 11, 16))
    contents = [b"%PDF-1.7 week 48 v1", b"%PDF-1.7 week 48 v2", "第三版".encode()]
    first = await api.filed(
        api.specialist, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project,
        content=contents[0],
    )  # fmt: skip
    doc = first["id"]
    api.clock.advance(timedelta(hours=2))
    second = await api.filed(
        api.pm, name=WEEKLY, doc_type="weekly_report", period="2026-W48", project_id=project,
        content=contents[1], media_type="application/vnd.ms-excel", extra={"note": "修正了数字"},
    )  # fmt: skip
    assert second["id"] == doc and second["filing"] == {
        "version": 2,
        "created": False,
        "report": None,
        "minutes_of": None,
        "notes": [],
    }
    full_width = f"{PROJECT_NAME}－２０２６年１１月－周报"
    third = await api.filed(
        api.specialist, name=full_width, doc_type="周报", period="2026-W48", project_id=project,
        content=contents[2],
    )  # fmt: skip
    assert third["id"] == doc
    versions = third["versions"]
    assert [(v["version"], v["sha256"], v["size"], v["filed_by"]) for v in versions] == [
        (1, sha(contents[0]), len(contents[0]), SPECIALIST),
        (2, sha(contents[1]), len(contents[1]), PM),
        (3, sha(contents[2]), len(contents[2]), SPECIALIST),
    ]
    assert versions[1]["media_type"] == "application/vnd.ms-excel"
    assert versions[1]["note"] == "修正了数字"

    for number, data in enumerate(contents, start=1):
        response = await api.client.get(
            f"/v1/documents/{doc}/versions/{number}/content", headers=api.pm
        )
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["X-Content-SHA256"] == sha(data)
        assert response.headers["X-Document-Version"] == str(number)
    latest = await api.client.get(f"/v1/documents/{doc}/content", headers=api.specialist)
    assert latest.content == contents[2] and latest.headers["X-Document-Version"] == "3"
    missing = await api.client.get(f"/v1/documents/{doc}/versions/4/content", headers=api.pm)
    assert missing.status_code == 404

    same = await api.upload_refused(
        409, api.specialist, name=WEEKLY, doc_type="周报", period="2026-W48",
        project_id=project, content=contents[2],
    )  # fmt: skip
    assert same["rule"] == "R4.5" and "same SHA-256" in same["detail"]
    # The policy names a weekly report by its month (R4.4): the same name for
    # another week is that week's own document, not a version of this one.
    other_week = await api.filed(
        api.specialist, name=WEEKLY, doc_type="周报", period="2026-W47",
        project_id=project, content=b"week 47",
    )  # fmt: skip
    assert other_week["id"] != doc and other_week["name"] == first["name"]
    assert [v["version"] for v in other_week["versions"]] == [1]

    await api.settle()
    rows = await api.ok("GET", f"/v1/documents?project_id={project}&period=2026-w48", api.pm)
    assert [(r["id"], r["versions"], r["latest_sha256"]) for r in rows["items"]] == [
        (doc, 3, sha(contents[2]))
    ]


async def test_a_report_for_a_period_not_yet_begun_is_refused_R4_3(api: DocsApi) -> None:
    """R4.3: a report covers a period that has begun (week 2026-W49 starts Monday 11-30)."""
    project = await api.project(signed_on=date(2026, 11, 16))
    problem = await api.upload_refused(
        409,
        api.specialist,
        name=f"{PROJECT_NAME}-2026年12月-周报",
        doc_type="周报",
        period="2026-W49",
        project_id=project,
    )
    assert problem["rule"] == "R4.3"


async def test_upload_size_limit_from_the_policy_and_empty_files_R4_5(
    api: DocsApi, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    """R4.5: the policy's `documents.max_upload_mb` limits an upload (413, by the
    handler and, far over it, before the body is read); an empty file is 422;
    neither stores anything. The limit is a policy parameter: a policy file with
    0.01 MB refuses what the default 25 MB accepts."""
    project = await api.project(signed_on=date(2026, 11, 16))
    big = b"x" * 20_000
    accepted = await api.filed(
        api.pm, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project, content=big
    )
    assert accepted["versions"][0]["size"] == 20_000
    empty = await api.upload_refused(
        422, api.pm, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project,
        content=b"",
    )  # fmt: skip
    assert empty["errors"][0]["field"] == "file" and "empty" in empty["detail"]

    text = (Path(__file__).parents[2] / "config" / "policy.toml").read_text(encoding="utf-8")
    assert "max_upload_mb = 25" in text
    small = tmp_path / "policy.toml"
    small.write_text(text.replace("max_upload_mb = 25", "max_upload_mb = 0.01"), "utf-8")
    limited_settings = settings.model_copy(update={"policy_file": small})
    async with running(
        DOCS, limited_settings, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        limited = DocsApi(svc, limited_settings, clock)
        over = await limited.upload_refused(
            413, limited.pm, name=WEEKLY, doc_type="周报", period="2026-W48",
            project_id=project, content=b"y" * 20_000,
        )  # fmt: skip
        assert over["status"] == 413 and "0.01 MiB" in over["detail"]
        far_over = await limited.upload_refused(
            413, limited.pm, name=WEEKLY, doc_type="周报", period="2026-W48",
            project_id=project, content=b"z" * 200_000,
        )  # fmt: skip
        assert far_over["status"] == 413
        fits = await limited.filed(
            limited.pm, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project,
            content=b"y" * 10_000,
        )  # fmt: skip
        assert [v["size"] for v in fits["versions"]] == [20_000, 10_000]


async def test_department_documents_use_the_department_name_R4_4_R5_4(api: DocsApi) -> None:
    """R4.4, R5.4: a document without a project is the department's; its name's
    project part is the policy's `documents.department_name` (信息技术部)."""
    body = await api.filed(
        api.other_specialist,
        name=f"{DEPARTMENT}-2026年11月23日-会议纪要",
        doc_type="minutes",
        period="2026-11-23",
        project_id=None,
    )
    assert body["project_id"] is None and body["doc_type"] == "会议纪要"
    problem = await api.upload_refused(
        422,
        api.specialist,
        name=f"{PROJECT_NAME}-2026年11月23日-会议纪要",
        doc_type="minutes",
        period="2026-11-23",
        project_id=None,
    )
    assert problem["errors"][0]["field"] == "name.project"
    assert f"expected {DEPARTMENT}" in problem["errors"][0]["message"]
    contract = await api.upload_refused(
        409,
        api.director,
        name=f"{DEPARTMENT}-2026-11-23-合同",
        doc_type="contract",
        period="2026-11-23",
        project_id=None,
    )
    assert contract["rule"] == "R4.1"
    await api.settle()
    listed = await api.ok("GET", "/v1/documents?department=true", api.auditor)
    assert [r["id"] for r in listed["items"]] == [body["id"]]


async def test_unknown_project_is_404(api: DocsApi) -> None:
    """R4.4: the project part is checked against a registered project; an
    unknown project id is 404 and stores nothing."""
    problem = await api.upload_refused(
        404,
        api.director,
        name=WEEKLY,
        doc_type="周报",
        period="2026-W48",
        project_id=UUID(int=7),
    )
    assert "not known" in problem["detail"]


# -- R6.1: reviews -----------------------------------------------------------------------------


async def test_the_pm_reviews_a_specialists_filing_R6_1(api: DocsApi) -> None:
    """R6.1: the project's PM accepts a version or sends it back with reasons;
    DocumentReviewed names the filer (document accuracy is the filer's); the
    filer cannot review their own filing (403); needs_correction without a reason
    is refused (409); a version is reviewed once; another PM may not review (403)."""
    project = await api.project(signed_on=date(2026, 11, 16))
    doc = (
        await api.filed(
            api.specialist, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project
        )
    )["id"]
    url = f"/v1/documents/{doc}/reviews"

    empty = await api.refused(
        "POST", url, api.pm, {"outcome": "needs_correction", "reasons": []}, 409
    )
    assert empty["rule"] == "R6.1"
    blank = await api.refused(
        "POST", url, api.pm, {"outcome": "needs_correction", "reasons": ["  "]}, 422
    )
    assert blank["errors"][0]["field"] == "body.reasons.0"
    other = await api.refused("POST", url, api.other_pm, {"outcome": "accepted"}, 403)
    assert other["rule"] == "R6.1"
    await api.refused("POST", url, api.specialist, {"outcome": "accepted"}, 403)
    bad = await api.refused("POST", url, api.pm, {"outcome": "maybe"}, 422)
    assert bad["errors"][0]["field"] == "body.outcome"

    sent_back = await api.ok(
        "POST", url, api.pm, {"outcome": "needs_correction", "reasons": ["第3节数据缺失"]}
    )
    assert sent_back["versions"][0]["review"] == "needs_correction"
    assert sent_back["versions"][0]["reasons"] == ["第3节数据缺失"]
    assert sent_back["versions"][0]["reviewed_by"] == PM
    again = await api.refused("POST", url, api.director, {"outcome": "accepted"}, 409)
    assert "reviewed already" in again["detail"]

    api.clock.advance(timedelta(hours=3))
    await api.filed(
        api.specialist, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project,
        content=b"corrected",
    )  # fmt: skip
    accepted = await api.ok("POST", url, api.pm, {"outcome": "accepted"})
    assert [v["review"] for v in accepted["versions"]] == ["needs_correction", "accepted"]

    # The PM's own filing: reviewed by someone else (here the Director), never by the PM.
    await api.filed(
        api.pm, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project,
        content=b"pm's own edit",
    )  # fmt: skip
    own = await api.refused("POST", url, api.pm, {"outcome": "accepted"}, 403)
    assert own["rule"] == "R6.1" and "other than its filer" in own["detail"]
    await api.ok("POST", url, api.director, {"outcome": "accepted", "version": 3})

    reviewed = api.payloads(doc, "DocumentReviewed")
    assert [(p["version"], p["outcome"], p["reviewer"], p["filed_by"]) for p in reviewed] == [
        (1, "needs_correction", PM, SPECIALIST),
        (2, "accepted", PM, SPECIALIST),
        (3, "accepted", DIRECTOR, PM),
    ]
    assert reviewed[0]["reasons"] == ["第3节数据缺失"]
    await api.settle()
    listed = await api.ok("GET", f"/v1/documents?project_id={project}&review=accepted", api.pm)
    assert [r["id"] for r in listed["items"]] == [doc]


# -- R4.5: every filing, version and read on record --------------------------------------------


async def test_every_filing_version_and_read_is_on_record_R4_5(api: DocsApi) -> None:
    """R4.5: `/reads` lists every read (who, role, version, when) and `/events`
    shows DocumentFiled, DocumentRevised, DocumentRead, DocumentReviewed in order."""
    project = await api.project(signed_on=date(2026, 11, 16))
    doc = (
        await api.filed(
            api.specialist, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project
        )
    )["id"]
    api.clock.advance(timedelta(minutes=10))
    assert (await api.client.get(f"/v1/documents/{doc}/content", headers=api.pm)).status_code == 200
    api.clock.advance(timedelta(minutes=10))
    await api.filed(
        api.specialist, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project,
        content=b"v2",
    )  # fmt: skip
    api.clock.advance(timedelta(minutes=10))
    for headers in (api.auditor, api.partner):
        api.clock.advance(timedelta(minutes=1))
        response = await api.client.get(f"/v1/documents/{doc}/versions/1/content", headers=headers)
        assert response.status_code == 200
    await api.ok("POST", f"/v1/documents/{doc}/reviews", api.pm, {"outcome": "accepted"})
    await api.settle()

    reads = await api.ok("GET", f"/v1/documents/{doc}/reads", api.pm)
    assert [(r["user_id"], r["role"], r["version"], r["outcome"]) for r in reads] == [
        (PM, "project_manager", 1, "read"),
        (AUDITOR, "auditor", 1, "read"),
        (PARTNER_USER, "partner", 1, "read"),
    ]
    assert [datetime.fromisoformat(r["at"]) for r in reads] == [
        local(2026, 11, 23, 9, 10),
        local(2026, 11, 23, 9, 31),
        local(2026, 11, 23, 9, 32),
    ]
    events = await api.ok("GET", f"/v1/documents/{doc}/events", api.auditor)
    assert [e["event_type"] for e in events] == [
        "DocumentFiled",
        "DocumentRead",
        "DocumentRevised",
        "DocumentRead",
        "DocumentRead",
        "DocumentReviewed",
    ]
    filed, read, revised = events[0], events[1], events[2]
    assert filed["actor"] == {"user_id": SPECIALIST, "role": "specialist"}
    assert filed["payload"]["sha256"] == sha(b"report body")
    assert filed["payload"]["name"] == WEEKLY
    assert read["payload"]["reader"] == PM and read["payload"]["version"] == 1
    assert revised["payload"]["version"] == 2 and revised["payload"]["sha256"] == sha(b"v2")
    view = await api.ok("GET", f"/v1/documents/{doc}", api.specialist)
    assert view["reads"] == 3 and view["denied_reads"] == 0
    listed = await api.ok("GET", f"/v1/documents?project_id={project}", api.pm)
    assert listed["items"][0]["reads"] == 3


# -- Idempotency-Key on the multipart POST ----------------------------------------------------


async def test_a_retried_upload_with_its_idempotency_key_stores_nothing_new_R4_5(
    api: DocsApi,
) -> None:
    """DESIGN.md section 6, R4.5: a multipart upload retried with its Idempotency-Key
    (re-encoded by the client, so with a new multipart boundary) answers the same
    document and version, marked `Idempotent-Replayed: true`, and stores nothing;
    the key with a different file is 422."""
    project = await api.project(signed_on=date(2026, 11, 16))
    headers = {**api.specialist, "Idempotency-Key": "upload-w48-1"}
    kw: dict[str, Any] = {
        "name": WEEKLY,
        "doc_type": "周报",
        "period": "2026-W48",
        "project_id": project,
    }
    first = await api.upload(headers, **kw)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    head, stored = api.app.log_head(), await api.contents()

    retry = await api.upload(headers, **kw)
    assert retry.status_code == 201, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]
    assert retry.json()["versions"] == first.json()["versions"]
    assert api.app.log_head() == head and await api.contents() == stored

    # The same key once more, sent byte for byte as before (a transport-level retry).
    boundary = "fixed-boundary-0123456789"
    body, content_type = _multipart(boundary, kw, project, b"report body")
    raw = await api.client.post(
        "/v1/documents", headers={**headers, "Content-Type": content_type}, content=body
    )
    assert raw.status_code == 201 and raw.headers["Idempotent-Replayed"] == "true"
    assert api.app.log_head() == head

    changed = await api.upload(headers, **kw, content=b"another body")
    assert changed.status_code == 422, changed.text
    assert api.app.log_head() == head and await api.contents() == stored

    second = await api.upload(
        {**api.specialist, "Idempotency-Key": "upload-w48-2"}, **kw, content=b"v2"
    )
    assert second.status_code == 201 and [v["version"] for v in second.json()["versions"]] == [
        1,
        2,
    ]


def _multipart(
    boundary: str, kw: dict[str, Any], project: UUID, content: bytes
) -> tuple[bytes, str]:
    fields = {"type": kw["doc_type"], "period": kw["period"], "name": kw["name"]}
    fields["project_id"] = str(project)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file";'
        f' filename="{kw["name"]}.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# -- R4.1: the contract archive ----------------------------------------------------------------


async def _tables(api: DocsApi) -> list[str]:
    rows = await api.svc.runtime.pool.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1"
        " AND table_type = 'BASE TABLE' ORDER BY table_name",
        api.app.schema,
    )
    return [r["table_name"] for r in rows]


def _strings(value: Any) -> list[bytes]:
    """The texts a stored value holds: raw bytes, and if the bytes are JSON
    (an event's state), every string in it decoded (JSON may escape non-ASCII)."""
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        found = [raw]
        try:
            decoded = json.loads(raw)
        except ValueError:
            return found
        stack = [decoded]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                found.append(item.encode())
            elif isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        return found
    return [str(value).encode()]


async def _leaks(api: DocsApi, secret: bytes, width: int = 16) -> dict[str, int]:
    """Per table: how many stored values hold a `width`-byte window of `secret`."""
    windows = {secret[i : i + width] for i in range(len(secret) - width + 1)}
    found: dict[str, int] = {}
    schema = quote_ident(api.app.schema)
    for table in await _tables(api):
        rows = await api.svc.runtime.pool.fetch(f"SELECT * FROM {schema}.{quote_ident(table)}")
        for row in rows:
            for value in row.values():
                for text in _strings(value):
                    if any(text[i : i + width] in windows for i in range(len(text) - width + 1)):
                        found[table] = found.get(table, 0) + 1
    return found


async def test_the_database_never_holds_a_contracts_plaintext_R4_1(api: DocsApi) -> None:
    """R4.1: after a contract is filed, revised and read, no table of the service's
    schema (its `contents` and its events table included) holds any 16-byte window
    of the plaintext; the same scan does find a report filed with that text (the
    scan is able to see a leak). The Director reads the exact bytes back."""
    project = await api.project(signed_on=date(2026, 11, 16))
    secret, revised = contract_text(), contract_text(90)
    name = f"{PROJECT_NAME}-2026-11-16-合同"
    doc = (
        await api.filed(
            api.pm, name=name, doc_type="contract", period="2026-11-16", project_id=project,
            content=secret, file_name="contract.pdf",
        )
    )["id"]  # fmt: skip
    await api.filed(
        api.director, name=name, doc_type="合同", period="2026-11-16", project_id=project,
        content=revised,
    )  # fmt: skip
    for number, data in ((1, secret), (2, revised)):
        read = await api.client.get(
            f"/v1/documents/{doc}/versions/{number}/content", headers=api.director
        )
        assert read.status_code == 200 and read.content == data
        assert read.headers["X-Content-SHA256"] == sha(data)
        assert read.headers["Cache-Control"] == "no-store"
    denied = await api.client.get(f"/v1/documents/{doc}/content", headers=api.pm)
    assert denied.status_code == 403
    await api.settle()

    tables = await _tables(api)
    assert "contents" in tables and "docs_events" in tables, tables
    events = await api.svc.runtime.pool.fetch(
        f"SELECT state FROM {quote_ident(api.app.schema)}.docs_events"
    )
    assert len(events) >= 5
    assert await _leaks(api, secret) == {}
    assert await _leaks(api, revised) == {}
    rows = await api.svc.runtime.pool.fetch(
        "SELECT sha256, size, key_id, nonce, data FROM contents ORDER BY stored_at"
    )
    assert [(r["sha256"], r["size"]) for r in rows] == [
        (sha(secret), len(secret)),
        (sha(revised), len(revised)),
    ]
    assert all(r["key_id"] and len(r["nonce"]) == 12 for r in rows)
    assert all(sha(bytes(r["data"])) != r["sha256"] for r in rows)

    # The control: the same text filed as a report is stored as it is, and found.
    await api.filed(
        api.pm, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project,
        content=secret,
    )  # fmt: skip
    assert await _leaks(api, secret) == {"contents": 1}


CONTRACT_READERS = {
    # who: (headers attribute, user, role)
    "project_manager (own)": ("pm", PM, "project_manager"),
    "project_manager (other)": ("other_pm", OTHER_PM, "project_manager"),
    "specialist (on project)": ("specialist", SPECIALIST, "specialist"),
    "specialist (off project)": ("other_specialist", OTHER_SPECIALIST, "specialist"),
    "dept_head": ("dept_head", DEPT_HEAD, "dept_head"),
    "finance": ("finance", FINANCE, "finance"),
    "ceo": ("ceo", CEO, "ceo"),
    "auditor": ("auditor", AUDITOR, "auditor"),
    "partner (own)": ("partner", PARTNER_USER, "partner"),
}


async def test_only_the_director_reads_a_contract_every_other_attempt_on_record_R4_1(
    api: DocsApi,
) -> None:
    """R4.1: the Director downloads the contract (200, the exact bytes); every other
    role is refused 403 and a ContractAccessDenied names who and when; a partner of
    another partner gets 404 (it cannot learn the contract exists). The metadata
    (contract number, dates) is visible to the Director, the project's PM and
    auditors; a specialist gets 403 and does not see the contract listed."""
    project = await api.project(signed_on=date(2026, 11, 16))
    secret = contract_text(10)
    doc = (
        await api.filed(
            api.pm, name=f"{PROJECT_NAME}-2026-11-16-合同", doc_type="contract",
            period="2026-11-16", project_id=project, content=secret,
        )
    )["id"]  # fmt: skip
    report = (
        await api.filed(
            api.specialist, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project
        )
    )["id"]
    url = f"/v1/documents/{doc}/content"

    content: dict[str, int] = {}
    for who, (attr, _, _) in CONTRACT_READERS.items():
        api.clock.advance(timedelta(minutes=1))
        response = await api.client.get(url, headers=getattr(api, attr))
        content[who] = response.status_code
        assert response.content != secret
        if response.status_code == 403:
            assert response.json()["rule"] == "R4.1"
    assert content == dict.fromkeys(CONTRACT_READERS, 403)
    before = api.app.log_head()
    stranger = await api.client.get(url, headers=api.other_partner)
    assert stranger.status_code == 404 and api.app.log_head() == before
    api.clock.advance(timedelta(minutes=1))
    director = await api.client.get(url, headers=api.director)
    assert director.status_code == 200 and director.content == secret

    history = api.app.history(UUID(doc))
    denied = [e for e in history if e.event_type == "ContractAccessDenied"]
    assert [(e.payload["user_id"], e.payload["role"]) for e in denied] == [
        (user, role) for _, user, role in CONTRACT_READERS.values()
    ]
    assert [e.actor.user_id for e in denied] == [user for _, user, _ in CONTRACT_READERS.values()]
    assert [e.occurred_at for e in denied] == [
        local(2026, 11, 23, 9, minute) for minute in range(1, len(CONTRACT_READERS) + 1)
    ]
    assert all(e.payload["contract_number"] == "HT-2026-001" for e in denied)
    read = [e for e in history if e.event_type == "ContractDocumentRead"]
    assert [(e.payload["reader"], e.payload["version"]) for e in read] == [(DIRECTOR, 1)]
    await api.settle()
    reads = await api.ok("GET", f"/v1/documents/{doc}/reads", api.director)
    assert [(r["user_id"], r["outcome"]) for r in reads] == [
        *((user, "denied") for _, user, _ in CONTRACT_READERS.values()),
        (DIRECTOR, "read"),
    ]

    # The metadata: the Director, the project's PM and auditors.
    metadata: dict[str, int] = {}
    for who, (attr, _, _) in {
        "director": ("director", DIRECTOR, "director"),
        **CONTRACT_READERS,
        "partner (other)": ("other_partner", "", "partner"),
    }.items():
        response = await api.client.get(f"/v1/documents/{doc}", headers=getattr(api, attr))
        metadata[who] = response.status_code
        if response.status_code == 200:
            body = response.json()
            assert body["contract_number"] == "HT-2026-001" and body["encrypted"] is True
            assert (body["period_start"], body["period_end"]) == ("2026-11-16", "2026-11-16")
    assert metadata == {
        "director": 200,
        "project_manager (own)": 200,
        "project_manager (other)": 403,
        "specialist (on project)": 403,
        "specialist (off project)": 403,
        "dept_head": 403,
        "finance": 403,
        "ceo": 403,
        "auditor": 200,
        "partner (own)": 403,
        "partner (other)": 404,
    }
    for headers, expected in (
        (api.specialist, {report}),
        (api.dept_head, {report}),
        (api.partner, {report}),
        (api.pm, {report, doc}),
        (api.auditor, {report, doc}),
        (api.director, {report, doc}),
    ):
        listed = await api.ok("GET", "/v1/documents", headers)
        assert {r["id"] for r in listed["items"]} == expected
    contracts = await api.ok("GET", "/v1/documents?type=contract", api.specialist)
    assert contracts["items"] == []


K1 = bytes(range(32))
K2 = bytes(range(100, 132))


def _keys(**keys: bytes) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in keys.items()}


async def test_the_director_reads_a_contract_after_key_rotation_R4_1(
    settings: Settings, clock: ManualClock
) -> None:
    """R4.1: a contract sealed under key k1 is re-sealed under k2 by the rotation;
    a service configured with k2 alone still serves the Director the exact bytes,
    and the row names k2."""
    secret = contract_text(30)
    old = settings.model_copy(update={"contract_keys": _keys(k1=K1), "contract_key_id": "k1"})
    async with running(
        DOCS, old, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        api = DocsApi(svc, old, clock)
        project = await api.project(signed_on=date(2026, 11, 16))
        doc = (
            await api.filed(
                api.pm, name=f"{PROJECT_NAME}-2026-11-16-合同", doc_type="contract",
                period="2026-11-16", project_id=project, content=secret,
            )
        )["id"]  # fmt: skip
        row = await svc.runtime.pool.fetchrow("SELECT key_id, nonce FROM contents")
        assert row is not None and row["key_id"] == "k1"
        ring = KeyRing({"k1": K1, "k2": K2}, "k2")
        assert await rotate(svc.runtime.pool, api.app.schema, ring) == 1
        assert await rotate(svc.runtime.pool, api.app.schema, ring) == 0
        rotated = await svc.runtime.pool.fetchrow("SELECT key_id, nonce FROM contents")
        assert rotated is not None and rotated["key_id"] == "k2"
        assert rotated["nonce"] != row["nonce"]
        assert await _leaks(api, secret) == {}

    new = settings.model_copy(update={"contract_keys": _keys(k2=K2), "contract_key_id": "k2"})
    async with running(
        DOCS, new, relay=False, consumers=False, projectors=False, clock=clock
    ) as svc:
        api = DocsApi(svc, new, clock)
        read = await api.client.get(f"/v1/documents/{doc}/content", headers=api.director)
        assert read.status_code == 200 and read.content == secret
        assert read.headers["X-Content-SHA256"] == sha(secret)
        denied = await api.client.get(f"/v1/documents/{doc}/content", headers=api.pm)
        assert denied.status_code == 403
        assert api.types(doc)[-2:] == ["ContractDocumentRead", "ContractAccessDenied"]


# -- the access rules, role by role -----------------------------------------------------------

ROLES = [
    # who, headers attribute
    ("director", "director"),
    ("project_manager (own)", "pm"),
    ("project_manager (other)", "other_pm"),
    ("specialist (on project)", "specialist"),
    ("specialist (off project)", "other_specialist"),
    ("dept_head", "dept_head"),
    ("finance", "finance"),
    ("ceo", "ceo"),
    ("auditor", "auditor"),
    ("partner (own)", "partner"),
    ("partner (other)", "other_partner"),
]
ACTIONS = ("file", "list", "get", "content", "review", "reads", "events")
SEES = {"file": 403, "list": "listed", "get": 200, "content": 200, "review": 403, "reads": 200,
        "events": 200}  # fmt: skip
NOT_ON_PROJECT = {"file": 403, "list": "hidden", "get": 403, "content": 403, "review": 403,
                  "reads": 403, "events": 403}  # fmt: skip
STAFF = {**SEES, "file": 201}
MANAGER = {**STAFF, "review": 200}
#: services/docs/api/access.py: the Director everything; a PM their own projects;
#: a specialist the projects they work on; dept_head, finance, CEO, auditors read
#: every (non-contract) document; a partner reads its own projects' documents and
#: gets 404 for anything else; reviews by the Director or the project's manager.
REPORT_MATRIX = {
    "director": MANAGER,
    "project_manager (own)": MANAGER,
    "project_manager (other)": NOT_ON_PROJECT,
    "specialist (on project)": STAFF,
    "specialist (off project)": NOT_ON_PROJECT,
    "dept_head": SEES,
    "finance": SEES,
    "ceo": SEES,
    "auditor": SEES,
    # Who read what is the department's record: vendors are refused it (403).
    "partner (own)": {**SEES, "reads": 403, "events": 403},
    "partner (other)": {
        **NOT_ON_PROJECT,
        "list": 404,
        "get": 404,
        "content": 404,
        "reads": 403,
        "events": 403,
    },
}


async def test_access_matrix_of_a_project_report_for_every_role_R2_2_R4_5(api: DocsApi) -> None:
    """R2.2, R4.5 (services/docs/api/access.py): every role x (file, list, get,
    content, review, reads, events) on a project's weekly report is allowed, 403 or
    404 exactly as the access rules say; every refusal stores no event and is
    recorded in access_denials."""
    project = await api.project(signed_on=date(2026, 11, 16))
    doc = (
        await api.filed(
            api.specialist, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project
        )
    )["id"]
    await api.settle()
    actual: dict[str, dict[str, int | str]] = {}
    for n, (who, attr) in enumerate(ROLES):
        headers = getattr(api, attr)
        row: dict[str, int | str] = {}
        head = api.app.log_head()
        response = await api.upload(
            headers, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project,
            content=f"version by {who}".encode(),
        )  # fmt: skip
        row["file"] = response.status_code
        if response.status_code != 201:
            assert api.app.log_head() == head, who
        await api.settle()
        listed = await api.client.get(f"/v1/documents?project_id={project}", headers=headers)
        if listed.status_code == 404:  # another partner's project: not even its list
            row["list"] = 404
        else:
            assert listed.status_code == 200, who
            row["list"] = "listed" if doc in {r["id"] for r in listed.json()["items"]} else "hidden"
        row["get"] = (await api.client.get(f"/v1/documents/{doc}", headers=headers)).status_code
        read = await api.client.get(f"/v1/documents/{doc}/content", headers=headers)
        row["content"] = read.status_code
        if read.status_code != 200:
            assert read.headers["content-type"] == "application/problem+json"
        # The latest version is always someone else's: a specialist files one first.
        api.clock.advance(timedelta(minutes=1))
        await api.filed(
            api.specialist, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project,
            content=f"for review {n}".encode(),
        )  # fmt: skip
        head = api.app.log_head()
        review = await api.client.post(
            f"/v1/documents/{doc}/reviews", headers=headers, json={"outcome": "accepted"}
        )
        row["review"] = review.status_code
        if review.status_code != 200:
            assert api.app.log_head() == head, who
        await api.settle()
        row["reads"] = (
            await api.client.get(f"/v1/documents/{doc}/reads", headers=headers)
        ).status_code
        row["events"] = (
            await api.client.get(f"/v1/documents/{doc}/events", headers=headers)
        ).status_code
        actual[who] = row
    assert actual == REPORT_MATRIX

    denials = await api.svc.runtime.pool.fetch("SELECT user_id, status FROM access_denials")
    expected_denials = sum(
        1 for row in REPORT_MATRIX.values() for v in row.values() if v in (403, 404)
    )
    assert len(denials) == expected_denials


DEPARTMENT_MATRIX = {
    "director": (201, 200),
    "project_manager (own)": (201, 200),
    "project_manager (other)": (201, 200),
    "specialist (on project)": (201, 200),
    "specialist (off project)": (201, 200),
    "dept_head": (403, 200),
    "finance": (403, 200),
    "ceo": (403, 200),
    "auditor": (403, 200),
    "partner (own)": (403, 404),
    "partner (other)": (403, 404),
}


async def test_access_matrix_of_a_department_document_R2_2_R5_4(api: DocsApi) -> None:
    """R2.2, R5.4 (access.py): department documents are filed by any department
    staff (Director, PMs, specialists) and read by every internal role; a partner
    gets 404."""
    name = f"{DEPARTMENT}-2026-11-23-会议纪要"
    doc = (
        await api.filed(
            api.director, name=name, doc_type="会议纪要", period="2026-11-23", project_id=None
        )
    )["id"]
    actual: dict[str, tuple[int, int]] = {}
    for who, attr in ROLES:
        headers = getattr(api, attr)
        filed = await api.upload(
            headers, name=name, doc_type="会议纪要", period="2026-11-23", project_id=None,
            content=f"minutes by {who}".encode(),
        )  # fmt: skip
        read = await api.client.get(f"/v1/documents/{doc}/content", headers=headers)
        actual[who] = (filed.status_code, read.status_code)
    assert actual == DEPARTMENT_MATRIX


async def test_every_documents_route_needs_a_token(api: DocsApi) -> None:
    """DESIGN.md section 5: without a bearer token every route is 401 (problem+json)."""
    project = await api.project(signed_on=date(2026, 11, 16))
    doc = (
        await api.filed(
            api.specialist, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project
        )
    )["id"]
    head = api.app.log_head()
    upload = await api.upload(
        {}, name=WEEKLY, doc_type="周报", period="2026-W48", project_id=project, content=b"anon"
    )
    statuses = [upload.status_code]
    for method, url, body in (
        ("GET", "/v1/documents", None),
        ("GET", f"/v1/documents/{doc}", None),
        ("GET", f"/v1/documents/{doc}/content", None),
        ("GET", f"/v1/documents/{doc}/versions/1/content", None),
        ("POST", f"/v1/documents/{doc}/reviews", {"outcome": "accepted"}),
        ("GET", f"/v1/documents/{doc}/reads", None),
        ("GET", f"/v1/documents/{doc}/events", None),
    ):
        response = await api.client.request(method, url, json=body)
        statuses.append(response.status_code)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert statuses == [401] * 8
    assert api.app.log_head() == head
    forged = {"Authorization": "Bearer not-a-jwt"}
    assert (await api.client.get("/v1/documents", headers=forged)).status_code == 401
