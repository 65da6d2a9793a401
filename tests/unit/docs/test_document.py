"""R4.4, R4.5, R4.1, R6.1: the Document aggregate, `services.docs.domain.document`.

Proves that:

- a document is filed under its R4.4 name at an id fixed by project and name
  (version 1); a contract is marked encrypted (R4.1);
- a new version must be the same type for the same period (R4.4) and new
  content (a different SHA-256, R4.5); versions are numbered 1..n and every
  earlier one stays on record;
- a review is by someone other than the version's filer (403, R6.1), sends a
  version back only with a reason, happens once per version, and a later
  version gets its own review;
- every read is on record (R4.5): DocumentRead for an ordinary document,
  ContractDocumentRead for the Director's read of a contract, and
  ContractAccessDenied (recorded, then returned to the caller, who refuses)
  for anyone else (R4.1); a version out of range is refused (R4.5);
- refusals name their rule, change nothing and record nothing; replaying the
  events rebuilds the state.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any
from uuid import NAMESPACE_URL, uuid4, uuid5

import pytest

from services.docs.domain.document import CONTRACT, Document, ReviewOutcome, document_id
from shared.clock import ManualClock, SequentialIds
from shared.domain import Actor, CommandContext, LedgerAggregate, RuleViolation, command_context

START = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # Friday 10:00 in Shanghai
PROJECT = uuid5(NAMESPACE_URL, "project-1")
PM = Actor("pm1", "project_manager")
SPECIALIST = Actor("s1", "specialist")
DIRECTOR = Actor("dir", "director")
WEEKLY_NAME = "XX项目-2026年第48周-周报"
CONTRACT_NAME = "XX项目-2026年11月27日-合同"


class Ctx:
    """A manual clock, sequential ids and a command context per actor."""

    def __init__(self, start: datetime = START) -> None:
        self.clock = ManualClock(start)
        self.ids = SequentialIds()

    @contextmanager
    def as_(self, actor: Actor) -> Iterator[None]:
        ctx = CommandContext(actor=actor, correlation_id=uuid4(), clock=self.clock, new_id=self.ids)
        with command_context(ctx):
            yield

    def now(self) -> datetime:
        return self.clock.now()


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _file(
    ctx: Ctx,
    *,
    name: str = WEEKLY_NAME,
    doc_type: str = "周报",
    period: str = "2026-W48",
    start: date = date(2026, 11, 23),
    end: date = date(2026, 11, 29),
    by: Actor = PM,
    content: bytes = b"week 48",
    contract_number: str | None = None,
) -> Document:
    with ctx.as_(by):
        return Document.file(
            project_id=PROJECT,
            name=name,
            doc_type=doc_type,
            period=period,
            period_start=start,
            period_end=end,
            meeting_id=None,
            contract_number=contract_number,
            content_id=uuid5(NAMESPACE_URL, f"content/{content!r}"),
            sha256=_sha(content),
            size=len(content),
            media_type="application/pdf",
            file_name="report.pdf",
            filed_by=by.user_id,
            now=ctx.now(),
            note="first",
        )


def _contract(ctx: Ctx) -> Document:
    return _file(
        ctx,
        name=CONTRACT_NAME,
        doc_type=CONTRACT,
        period="2026-11-27",
        start=date(2026, 11, 27),
        end=date(2026, 11, 27),
        content=b"the contract",
        contract_number="HT-2026-001",
    )


def _revise(
    ctx: Ctx,
    document: Document,
    content: bytes,
    *,
    by: Actor = PM,
    doc_type: str | None = None,
    period: str | None = None,
) -> None:
    with ctx.as_(by):
        document.revise(
            doc_type=doc_type or document.doc_type,
            period=period or document.period,
            content_id=uuid5(NAMESPACE_URL, f"content/{content!r}"),
            sha256=_sha(content),
            size=len(content),
            media_type="application/pdf",
            file_name="report-v2.pdf",
            filed_by=by.user_id,
            now=ctx.now(),
            note="corrected",
        )


def _review(
    ctx: Ctx,
    document: Document,
    by: Actor,
    outcome: ReviewOutcome = "accepted",
    reasons: list[str] | None = None,
    version: int | None = None,
) -> int:
    with ctx.as_(by):
        return document.review(
            version=version,
            outcome=outcome,
            reasons=reasons or [],
            reviewer=by.user_id,
            now=ctx.now(),
        )


def _read(ctx: Ctx, document: Document, by: Actor, *, version: int | None = None) -> dict[str, Any]:
    with ctx.as_(by):
        return dict(
            document.record_read(
                version=version,
                reader=by.user_id,
                role=by.role,
                may_read_contract=by.role == "director",
                now=ctx.now(),
            )
        )


def _events(aggregate: LedgerAggregate) -> list[Any]:
    """The aggregate's new events (typed loosely: each test checks the class)."""
    return list(aggregate.collect_events())


def _state(aggregate: Document) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in vars(aggregate).items() if k != "_pending_events"})


def _replay(events: list[Any]) -> Document:
    created, *rest = events
    aggregate = created.mutate(None)
    for e in rest:
        aggregate = e.mutate(aggregate)
    assert isinstance(aggregate, Document)
    return aggregate


def _refused(
    aggregate: Document, call: Callable[[], object], rule: str, *, forbidden: bool = False
) -> RuleViolation:
    """`call` raises RuleViolation naming `rule`, changes nothing, records nothing."""
    before = _state(aggregate)
    with pytest.raises(RuleViolation) as refused:
        call()
    assert (refused.value.rule, refused.value.forbidden) == (rule, forbidden)
    assert _state(aggregate) == before
    assert _events(aggregate) == []
    return refused.value


# -- filing and versions (R4.4, R4.5) --------------------------------------------------


def test_r4_4_a_document_is_filed_under_its_name_as_version_1() -> None:
    """R4.4, R4.5: one id per project, name and period; the filing is version 1 with
    its content's SHA-256, size and filer; only a contract is encrypted (R4.1)."""
    ctx = Ctx()
    document = _file(ctx)
    (filed,) = _events(document)
    assert isinstance(filed, Document.Created)
    assert document.id == document_id(PROJECT, WEEKLY_NAME, "2026-W48")
    assert document.id != document_id(None, WEEKLY_NAME, "2026-W48")
    # The policy's month-named weekly report: each week's is a document of its own.
    assert document.id != document_id(PROJECT, WEEKLY_NAME, "2026-W49")
    assert (filed.name, filed.doc_type, filed.period, filed.encrypted) == (
        WEEKLY_NAME,
        "周报",
        "2026-W48",
        False,
    )
    assert (filed.sha256, filed.size, filed.filed_by, filed.filed_at) == (
        _sha(b"week 48"),
        7,
        "pm1",
        START,
    )
    assert [(v["version"], v["filed_by"], v["filed_role"]) for v in document.versions] == [
        (1, "pm1", "project_manager")
    ]
    contract = _contract(ctx)
    assert (contract.encrypted, contract.is_contract, contract.contract_number) == (
        True,
        True,
        "HT-2026-001",
    )


def test_r4_5_versions_are_numbered_and_all_kept() -> None:
    """R4.5: each new upload under the name is the next version (2, 3, ...),
    by whoever filed it; earlier versions stay on record."""
    ctx = Ctx()
    document = _file(ctx)
    _events(document)
    ctx.clock.advance(timedelta(hours=1))
    _revise(ctx, document, b"week 48, corrected")
    _revise(ctx, document, b"week 48, final", by=SPECIALIST)
    revised = _events(document)
    assert [(type(e), e.version, e.filed_by, e.doc_type) for e in revised] == [
        (Document.Revised, 2, "pm1", "周报"),
        (Document.Revised, 3, "s1", "周报"),
    ]
    assert revised[0].sha256 == _sha(b"week 48, corrected")
    assert [v["version"] for v in document.versions] == [1, 2, 3]
    assert [v["sha256"] for v in document.versions] == [
        _sha(b"week 48"),
        _sha(b"week 48, corrected"),
        _sha(b"week 48, final"),
    ]
    assert document.versions[2]["filed_role"] == "specialist"
    assert document.latest["version"] == 3
    # Back to the content of version 1 is a new version: only a repeat of the latest is refused.
    _revise(ctx, document, b"week 48")
    assert [e.version for e in _events(document)] == [4]


def test_r4_4_r4_5_a_new_version_is_the_same_document_with_new_content() -> None:
    """R4.4: a new version of another type or for another period is refused;
    R4.5: the latest version's content again (same SHA-256) is refused."""
    ctx = Ctx()
    document = _file(ctx)
    _events(document)
    _refused(document, lambda: _revise(ctx, document, b"other", doc_type="月报"), "R4.4")
    _refused(document, lambda: _revise(ctx, document, b"other", period="2026-W49"), "R4.4")
    _refused(document, lambda: _revise(ctx, document, b"week 48"), "R4.5")
    _revise(ctx, document, b"week 48, v2")
    _events(document)
    _refused(document, lambda: _revise(ctx, document, b"week 48, v2"), "R4.5")


# -- reviews (R6.1) --------------------------------------------------------------------


def test_r6_1_nobody_reviews_their_own_filing() -> None:
    """R6.1: document accuracy is about the filer, so the filer's review is
    forbidden (403); someone else's is recorded with the filer named."""
    ctx = Ctx()
    document = _file(ctx)
    _events(document)
    _refused(document, lambda: _review(ctx, document, PM), "R6.1", forbidden=True)
    assert _review(ctx, document, SPECIALIST) == 1
    (reviewed,) = _events(document)
    assert isinstance(reviewed, Document.Reviewed)
    assert (reviewed.version, reviewed.outcome, reviewed.reviewer, reviewed.filed_by) == (
        1,
        "accepted",
        "s1",
        "pm1",
    )
    assert (document.versions[0]["review"], document.versions[0]["reviewed_by"]) == (
        "accepted",
        "s1",
    )


def test_r6_1_a_correction_says_why_and_each_version_is_reviewed_once() -> None:
    """R6.1: needs_correction without a (non-blank) reason is refused; a
    version is reviewed once; the next version gets its own review, and an
    earlier version's filer may review a later version filed by someone else."""
    ctx = Ctx()
    document = _file(ctx)
    _events(document)
    _refused(document, lambda: _review(ctx, document, SPECIALIST, "needs_correction"), "R6.1")
    _refused(
        document,
        lambda: _review(ctx, document, SPECIALIST, "needs_correction", ["  "]),
        "R6.1",
    )
    _review(ctx, document, SPECIALIST, "needs_correction", ["the costs are missing"])
    (sent_back,) = _events(document)
    assert (sent_back.outcome, sent_back.reasons) == (
        "needs_correction",
        ["the costs are missing"],
    )
    assert document.versions[0]["reasons"] == ["the costs are missing"]
    _refused(document, lambda: _review(ctx, document, DIRECTOR), "R6.1")
    _refused(document, lambda: _review(ctx, document, DIRECTOR, version=1), "R6.1")

    _revise(ctx, document, b"week 48 with costs", by=SPECIALIST)
    _events(document)
    _refused(document, lambda: _review(ctx, document, SPECIALIST), "R6.1", forbidden=True)
    assert _review(ctx, document, PM) == 2
    (accepted,) = _events(document)
    assert (accepted.version, accepted.outcome, accepted.filed_by) == (2, "accepted", "s1")
    assert [v["review"] for v in document.versions] == ["needs_correction", "accepted"]


def test_r4_5_a_version_out_of_range_is_refused() -> None:
    """R4.5: versions are 1..n; 0 and n+1 are refused for reviews and reads."""
    ctx = Ctx()
    document = _file(ctx)
    _revise(ctx, document, b"v2")
    _events(document)
    for version in (0, 3, -1):
        _refused(document, partial(_review, ctx, document, DIRECTOR, version=version), "R4.5")
        _refused(document, partial(_read, ctx, document, SPECIALIST, version=version), "R4.5")
    assert _review(ctx, document, DIRECTOR, version=1) == 1


# -- reads (R4.5, R4.1) ----------------------------------------------------------------


def test_r4_5_every_read_of_a_document_is_on_record() -> None:
    """R4.5: DocumentRead names the version, the reader and their role; no
    version means the latest."""
    ctx = Ctx()
    document = _file(ctx)
    _revise(ctx, document, b"v2")
    _events(document)
    assert _read(ctx, document, SPECIALIST)["version"] == 2
    record = _read(ctx, document, PM, version=1)
    assert (record["version"], record["sha256"]) == (1, _sha(b"week 48"))
    reads = _events(document)
    assert [(type(e), e.version, e.reader, e.reader_role, e.read_at) for e in reads] == [
        (Document.Read, 2, "s1", "specialist", START),
        (Document.Read, 1, "pm1", "project_manager", START),
    ]
    assert document.reads == 2


def test_r4_1_only_the_director_reads_a_contract_and_refusals_are_recorded() -> None:
    """R4.1, R4.5: anyone else asking for a contract's content gets
    ContractAccessDenied recorded (the version is returned, the caller refuses
    the content); the Director's read records ContractDocumentRead."""
    ctx = Ctx()
    contract = _contract(ctx)
    _events(contract)
    record = _read(ctx, contract, PM)
    (denied,) = _events(contract)
    assert isinstance(denied, Document.ContractDenied)
    assert denied.EVENT_TYPE == "ContractAccessDenied"
    assert (denied.user_id, denied.role, denied.version, denied.contract_number) == (
        "pm1",
        "project_manager",
        1,
        "HT-2026-001",
    )
    assert "R4.1" in denied.reason
    assert record["version"] == 1
    assert (contract.denials, contract.reads) == (1, 0)

    _read(ctx, contract, DIRECTOR)
    (read,) = _events(contract)
    assert isinstance(read, Document.ContractRead)
    assert read.EVENT_TYPE == "ContractDocumentRead"
    assert (read.reader, read.version, read.contract_number) == ("dir", 1, "HT-2026-001")
    assert (contract.denials, contract.reads) == (1, 1)

    # Permission is what the caller says, not the role: a director refused is still refused.
    with ctx.as_(DIRECTOR):
        contract.record_read(
            version=None, reader="dir", role="director", may_read_contract=False, now=ctx.now()
        )
    assert [type(e) for e in _events(contract)] == [Document.ContractDenied]
    # An ordinary document ignores the contract permission.
    document = _file(ctx)
    _events(document)
    with ctx.as_(SPECIALIST):
        document.record_read(
            version=None, reader="s1", role="specialist", may_read_contract=False, now=ctx.now()
        )
    assert [type(e) for e in _events(document)] == [Document.Read]


def test_r4_5_replaying_the_events_rebuilds_the_document() -> None:
    """R4.5: versions, reviews, reads and refused reads all come back from the events."""
    ctx = Ctx()
    contract = _contract(ctx)
    _read(ctx, contract, SPECIALIST)
    _read(ctx, contract, DIRECTOR)
    _review(ctx, contract, DIRECTOR, "needs_correction", ["unsigned page"])
    ctx.clock.advance(timedelta(days=1))
    _revise(ctx, contract, b"the signed contract", by=SPECIALIST)
    _review(ctx, contract, DIRECTOR)
    _read(ctx, contract, DIRECTOR, version=1)
    events = _events(contract)
    replayed = _replay(events)
    assert _state(replayed) == _state(contract)
    assert [v["review"] for v in replayed.versions] == ["needs_correction", "accepted"]
    assert (replayed.reads, replayed.denials) == (2, 1)
