"""The docs service's application: its command handlers, the only place that
saves (R4.1-R4.5, R5.4, R5.5). Due times come from the policy file and are
handed to the aggregates as values; file contents are saved in the same
transaction as the events that name them (shared.eventstore.Blob)."""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal, TypeVar

from services.docs.archive import KeyRing, plain, seal
from services.docs.domain.document import CONTRACT, Document, ReviewOutcome, document_id
from services.docs.domain.meeting import (
    DEPARTMENT_KINDS,
    Meeting,
    MeetingKind,
    meeting_id_for,
    resolution_ref,
)
from services.docs.domain.naming import REPORT_TYPES, DocType, check_name, normalise
from services.docs.domain.periods import (
    REPORT_KINDS,
    Period,
    ReportKind,
    first_report_period,
    report_due_at,
)
from services.docs.domain.schedule import PeriodStatus, ReportSchedule, period_ref, schedule_id
from services.docs.projections import MINUTES, REPORT, RESOLUTION, RESOLUTION_OWNER
from shared.deadlines import Deadline, deadline_id
from shared.domain import CommandContext, LedgerAggregate, RuleViolation, command_context
from shared.eventstore import Blob, IntegrityError, LedgerApplication

A = TypeVar("A", bound=LedgerAggregate)

#: Simultaneous readers of one document each retry their recorded read until
#: it is stored (reads commute); enough for a crowd of a few dozen at once.
READ_ATTEMPTS = 30


@dataclass(frozen=True)
class ProjectInfo:
    """What the docs service knows of a project (from `partner.events`)."""

    project_id: uuid.UUID
    name: str
    project_manager: str
    specialists: tuple[str, ...] = ()
    partner_id: uuid.UUID | None = None
    contract_number: str | None = None
    status: str = "planned"


@dataclass(frozen=True)
class Upload:
    """A file as received: the bytes and what the uploader said of them."""

    content: bytes
    media_type: str
    file_name: str
    note: str = ""


@dataclass(frozen=True)
class Filing:
    """What filing a document did: the document, its new version, and what it
    counted for (a report period, a meeting's minutes)."""

    document: Document
    version: int
    created: bool
    report: PeriodStatus | None = None
    minutes_of: uuid.UUID | None = None
    notes: list[str] = field(default_factory=list)


class DocsApplication(LedgerApplication):
    SERVICE = "docs"
    AGGREGATES = (Document, ReportSchedule, Meeting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read at start: a production service without contract keys refuses
        # to run, rather than failing at its first contract (R4.1).
        self.keyring = KeyRing.from_settings(self.settings)

    # -- helpers ---------------------------------------------------------------------------

    def get_document(self, doc_id: uuid.UUID) -> Document:
        return self.get_as(Document, doc_id)

    def get_meeting(self, meeting_id: uuid.UUID) -> Meeting:
        return self.get_as(Meeting, meeting_id)

    def get_schedule(self, project_id: uuid.UUID) -> ReportSchedule | None:
        return self.find_as(ReportSchedule, schedule_id(project_id))

    def report_due(self, kind: ReportKind, period: Period) -> datetime:
        return report_due_at(self.policy, kind, period)

    def first_period(self, kind: ReportKind, first_day: date) -> Period:
        return first_report_period(self.policy, kind, first_day)

    def _report_clock(self, project_id: uuid.UUID) -> Callable[[ReportKind, str], uuid.UUID]:
        sid = schedule_id(project_id)
        return lambda kind, period: deadline_id(REPORT, sid, period_ref(kind, period))

    def today(self) -> date:
        return self.policy.clock.local_date(self.clock.now())

    def _change(
        self,
        ctx: CommandContext,
        kind: type[A],
        aggregate_id: uuid.UUID,
        act: Callable[[A], object],
    ) -> A:
        # Reads are recorded on the same aggregates (R4.5): a command racing a
        # read is decided again on the newer state rather than refused.
        for _ in range(3):
            aggregate = self.get_as(kind, aggregate_id)
            with command_context(ctx):
                act(aggregate)
            try:
                self.save_in(ctx, aggregate)
                return aggregate
            except IntegrityError:
                continue
        raise IntegrityError(f"{kind.__name__} {aggregate_id} keeps changing; try again")

    # -- report schedules (R4.3) -----------------------------------------------------------

    def open_schedule(
        self,
        ctx: CommandContext,
        *,
        project_id: uuid.UUID,
        project_name: str,
        project_manager: str,
        first_day: date,
    ) -> tuple[ReportSchedule, bool]:
        """Opens the project's schedule; (schedule, False) when it is open
        already (a redelivered ContractSigned, or a renewal)."""
        existing = self.get_schedule(project_id)
        if existing is not None:
            return existing, False
        with command_context(ctx):
            schedule = ReportSchedule.start(
                project_id=project_id,
                project_name=project_name,
                project_manager=project_manager,
                first_day=first_day,
                first_period=self.first_period,
                due=self.report_due,
            )
        try:
            self.save_in(ctx, schedule)
        except IntegrityError:
            racing = self.get_schedule(project_id)
            if racing is not None:
                return racing, False
            raise
        return schedule, True

    def close_schedule(self, ctx: CommandContext, project_id: uuid.UUID, *, reason: str) -> bool:
        """Closes the project's schedule; retried when the deadline engine
        changed it at the same moment (a closure must not be parked)."""
        for _ in range(5):
            schedule = self.get_schedule(project_id)
            if schedule is None:
                return False
            with command_context(ctx):
                closed = schedule.close(
                    reason=reason,
                    now=self.clock.now(),
                    clock_of=self._report_clock(project_id),
                )
            if not closed:
                return False
            try:
                self.save_in(ctx, schedule)
                return True
            except IntegrityError:
                continue
        raise IntegrityError(f"the schedule of project {project_id} keeps changing")

    def report_overdue(self, deadline: Deadline) -> uuid.UUID | None:
        kind, _, key = deadline.ref.partition(":")
        report_kind = next(k for k in REPORT_KINDS if k == kind)
        period = Period.parse(key)
        return self.record_once(
            deadline.aggregate_id,
            ReportSchedule,
            deadline.started_by,
            lambda s: s.mark_overdue(
                kind=report_kind, period=period, deadline_id=deadline.id, due=self.report_due
            ),
        )

    # -- documents (R4.4, R4.5, R4.1) --------------------------------------------------------

    def file_document(
        self,
        ctx: CommandContext,
        *,
        project: ProjectInfo | None,
        doc_type: DocType,
        period: Period,
        name: str,
        upload: Upload,
        meeting_id: uuid.UUID | None = None,
    ) -> Filing:
        """Files a document under its R4.4 name (a new version if the name is
        taken), counts it for its report period or meeting, and stores the
        content (encrypted for a contract, R4.1) in the same transaction."""
        now = self.clock.now()
        project_name = project.name if project else self.policy.documents.department_name
        parsed = check_name(
            name,
            project_name=project_name,
            doc_type=doc_type,
            period=period,
            max_length=self.policy.documents.max_name_length,
        )
        # Under the project's registered name: spellings of it that compare
        # equal (case, spacing, full-width, R4.4) name one document (R4.5).
        canonical = f"{' '.join(normalise(project_name).split())}-{parsed.date}-{parsed.doc_type}"
        self._check_period(doc_type, period, now)
        if doc_type == CONTRACT and project is None:
            raise RuleViolation("R4.1", "a contract belongs to a project")
        if meeting_id is not None:
            self._check_minutes(self.get_meeting(meeting_id), project, doc_type, period)
        content_id = self.new_id()
        blob: Blob = (
            seal(self.keyring, upload.content, content_id=content_id)
            if doc_type == CONTRACT
            else plain(upload.content, content_id=content_id)
        )
        sha = hashlib.sha256(upload.content).hexdigest()
        project_id = project.project_id if project else None
        doc_id = document_id(project_id, canonical, period.key, meeting_id)
        for _ in range(3):
            # Loaded afresh on every try: a retry after a conflict must not
            # see the previous try's unsaved minutes as filed.
            meeting = self.get_meeting(meeting_id) if meeting_id is not None else None
            document = self.find_as(Document, doc_id)
            created = document is None
            with command_context(ctx):
                if document is None:
                    document = Document.file(
                        project_id=project_id,
                        name=canonical,
                        doc_type=doc_type,
                        period=period.key,
                        period_start=period.start,
                        period_end=period.end,
                        meeting_id=meeting_id,
                        contract_number=project.contract_number if project else None,
                        content_id=content_id,
                        sha256=sha,
                        size=len(upload.content),
                        media_type=upload.media_type,
                        file_name=upload.file_name,
                        filed_by=ctx.actor.user_id,
                        now=now,
                        note=upload.note,
                    )
                else:
                    document.revise(
                        doc_type=doc_type,
                        period=period.key,
                        content_id=content_id,
                        sha256=sha,
                        size=len(upload.content),
                        media_type=upload.media_type,
                        file_name=upload.file_name,
                        filed_by=ctx.actor.user_id,
                        now=now,
                        note=upload.note,
                    )
                filing, others = self._count_filing(ctx, document, created, project, meeting, now)
            try:
                self.save_in(ctx, document, *others, blobs=[blob])
                return filing
            except IntegrityError:
                continue  # a racing filing under the same name: load it again
        raise IntegrityError("the document keeps changing; try again")

    def _check_period(self, doc_type: DocType, period: Period, now: datetime) -> None:
        today = self.policy.clock.local_date(now)
        if doc_type in REPORT_TYPES and period.start > today:
            raise RuleViolation(
                "R4.3", f"a report covers a period that has begun; {period.key} starts later"
            )
        if doc_type not in REPORT_TYPES and period.start > today:
            raise RuleViolation(
                "R4.4", f"a {doc_type} is dated on or before the day it is filed, not {period.key}"
            )

    def _check_minutes(
        self, meeting: Meeting, project: ProjectInfo | None, doc_type: DocType, period: Period
    ) -> None:
        if meeting.project_id != (project.project_id if project else None):
            where = "the department" if meeting.project_id is None else "its project"
            raise RuleViolation("R4.2", f"the minutes of this meeting are filed under {where}")
        if doc_type not in meeting.minutes_types:
            raise RuleViolation(
                "R4.2",
                f"the minutes of a {meeting.kind} meeting are a"
                f" {' or '.join(meeting.minutes_types)}, not a {doc_type}",
            )
        held_on = self.policy.clock.local_date(meeting.held_at)
        if not period.contains(held_on):
            raise RuleViolation(
                "R4.4", f"minutes are dated with the meeting's day, {held_on.isoformat()}"
            )

    def _count_filing(
        self,
        ctx: CommandContext,
        document: Document,
        created: bool,
        project: ProjectInfo | None,
        meeting: Meeting | None,
        now: datetime,
    ) -> tuple[Filing, list[LedgerAggregate]]:
        """A report's first filing counts for its schedule period; minutes
        filed with their meeting stop its clock. Later versions change neither."""
        others: list[LedgerAggregate] = []
        report: PeriodStatus | None = None
        notes: list[str] = []
        doc_type = document.doc_type
        if project is not None and doc_type in REPORT_TYPES:
            # Any version counts while its period is not yet filed: a report
            # filed before the schedule opened counts once it is re-uploaded.
            kind = REPORT_TYPES[doc_type]  # type: ignore[index]
            schedule = self.get_schedule(project.project_id)
            if schedule is None:
                notes.append(
                    "the project has no report schedule yet (no contract signed, or not yet"
                    " received from the partner service): this filing counts for no period"
                )
            else:
                report = schedule.file(
                    kind=kind,
                    period=Period.parse(document.period),
                    document_id=document.id,
                    filed_by=ctx.actor.user_id,
                    now=now,
                    due=self.report_due,
                    clock_of=self._report_clock(project.project_id),
                )
                if report is None and created:
                    notes.append(f"no {kind} report of {document.period} is owed by the schedule")
                else:
                    others.append(schedule)
        minutes_of = None
        if meeting is not None and meeting.minutes_document is not None:
            if meeting.minutes_document != document.id:
                notes.append(
                    f"meeting {meeting.id} has its minutes already (document"
                    f" {meeting.minutes_document}); this document does not replace them"
                )
        elif meeting is not None:
            meeting.file_minutes(
                document_id=document.id,
                document_name=document.name,
                doc_type=doc_type,
                filed_by=ctx.actor.user_id,
                now=now,
                deadline_id=deadline_id(MINUTES, meeting.id),
            )
            others.append(meeting)
            minutes_of = meeting.id
        return (
            Filing(
                document=document,
                version=len(document.versions),
                created=created,
                report=report,
                minutes_of=minutes_of,
                notes=notes,
            ),
            others,
        )

    def review_document(
        self,
        ctx: CommandContext,
        doc_id: uuid.UUID,
        *,
        version: int | None,
        outcome: ReviewOutcome,
        reasons: list[str],
    ) -> Document:
        now = self.clock.now()
        return self._change(
            ctx,
            Document,
            doc_id,
            lambda d: d.review(
                version=version,
                outcome=outcome,
                reasons=reasons,
                reviewer=ctx.actor.user_id,
                now=now,
            ),
        )

    def record_read(
        self,
        ctx: CommandContext,
        doc_id: uuid.UUID,
        *,
        version: int | None,
        may_read_contract: bool,
    ) -> tuple[Document, int, uuid.UUID]:
        """Puts the read on record before any content leaves (R4.5). A refused
        contract read is saved, then refused (R4.1). Reads commute, so a read
        racing another read (or a new version) is simply recorded again on the
        newer state: two people downloading at once both get the content, and
        no refused attempt goes unrecorded."""
        for attempt in range(READ_ATTEMPTS):
            if attempt:
                # Spread the retries of many simultaneous readers apart.
                time.sleep(random.uniform(0, 0.002 * attempt))  # noqa: S311  # nosec B311
            document = self.get_document(doc_id)
            with command_context(ctx):
                record = document.record_read(
                    version=version,
                    reader=ctx.actor.user_id,
                    role=ctx.actor.role,
                    may_read_contract=may_read_contract,
                    now=self.clock.now(),
                )
            try:
                self.save_in(ctx, document)
                break
            except IntegrityError:
                continue
        else:
            raise IntegrityError("the document keeps changing; try again")
        if document.is_contract and not may_read_contract:
            raise RuleViolation(
                "R4.1",
                "only the Director may read a contract; this attempt is on record",
                forbidden=True,
            )
        return document, record["version"], record["content_id"]

    # -- meetings (R4.2, R5.4, R5.5) -------------------------------------------------------

    def _meeting_clocks(self, held_at: datetime) -> tuple[datetime, datetime]:
        return (
            held_at + timedelta(hours=self.policy.minutes.hours_after_meeting),
            held_at + timedelta(hours=self.policy.resolutions.owner_within_hours),
        )

    def hold_meeting(
        self,
        ctx: CommandContext,
        *,
        kind: MeetingKind,
        title: str,
        held_at: datetime,
        attendees: list[str],
        resolutions: Sequence[str] = (),
        meeting_id: uuid.UUID | None = None,
        project_id: uuid.UUID | None = None,
        source: Literal["api", "partner.events"] = "api",
        chaired_by: str | None = None,
    ) -> tuple[Meeting, bool]:
        """Records a meeting held; (meeting, False) when it was recorded
        already (a redelivered partner event)."""
        if kind == "quarterly_strategy" and source == "api" and ctx.actor.role != "director":
            raise RuleViolation(
                "R5.4", "the quarterly strategy meeting is called by the Director", forbidden=True
            )
        mid = meeting_id or ctx.new_id()
        if mid in self.repository:
            return self.get_meeting(mid), False
        minutes_due, owners_due = self._meeting_clocks(held_at)
        with command_context(ctx):
            meeting = Meeting.hold(
                meeting_id=mid,
                kind=kind,
                title=title,
                project_id=project_id,
                held_at=held_at,
                chaired_by=chaired_by or ctx.actor.user_id,
                attendees=attendees,
                source=source,
                now=self.clock.now(),
                minutes_due_at=minutes_due,
                owners_due_at=owners_due,
                resolutions=[(f"R{i}", text) for i, text in enumerate(resolutions, start=1)],
            )
        try:
            self.save_in(ctx, meeting)
        except IntegrityError:
            if mid in self.repository:
                return self.get_meeting(mid), False
            raise
        return meeting, True

    def record_project_meeting(
        self,
        ctx: CommandContext,
        *,
        source_event_id: uuid.UUID,
        kind: MeetingKind,
        project_id: uuid.UUID,
        held_on: date,
        title: str,
        chaired_by: str,
        reported_at: datetime,
    ) -> tuple[Meeting, bool]:
        """A kickoff, review or acceptance recorded by the partner service: a
        meeting known by its day is taken to end with that day, or when the
        partner service recorded it if that was earlier (R4.2). The time the
        event is processed here plays no part: a consumer catching up late
        must not move the minutes clock."""
        assert kind not in DEPARTMENT_KINDS
        held_at = min(self.policy.clock.end_of_day(held_on), reported_at, self.clock.now())
        return self.hold_meeting(
            ctx,
            kind=kind,
            title=title,
            held_at=held_at,
            attendees=[],
            meeting_id=meeting_id_for(source_event_id),
            project_id=project_id,
            source="partner.events",
            chaired_by=chaired_by,
        )

    def file_minutes(
        self, ctx: CommandContext, meeting_id: uuid.UUID, *, doc_id: uuid.UUID
    ) -> Meeting:
        """Names a filed document as the meeting's minutes (R4.2)."""
        document = self.get_document(doc_id)
        meeting = self.get_meeting(meeting_id)
        if document.meeting_id is not None and document.meeting_id != meeting_id:
            raise RuleViolation(
                "R4.2", f"this document was filed as the minutes of meeting {document.meeting_id}"
            )
        if document.project_id != meeting.project_id:
            raise RuleViolation("R4.2", "the minutes belong to the meeting's project")
        held_on = self.policy.clock.local_date(meeting.held_at)
        if not document.period_start <= held_on <= document.period_end:
            raise RuleViolation(
                "R4.4", f"minutes are dated with the meeting's day, {held_on.isoformat()}"
            )
        with command_context(ctx):
            meeting.file_minutes(
                document_id=document.id,
                document_name=document.name,
                doc_type=document.doc_type,
                filed_by=ctx.actor.user_id,
                now=self.clock.now(),
                deadline_id=deadline_id(MINUTES, meeting.id),
            )
        self.save_in(ctx, meeting)
        return meeting

    def add_resolution(self, ctx: CommandContext, meeting_id: uuid.UUID, *, text: str) -> Meeting:
        """The meeting as this command left it (a later read could already
        hold a racing command's resolution, and answer with its version)."""
        meeting = self.get_meeting(meeting_id)
        resolution_id = f"R{len(meeting.resolutions) + 1}"
        with command_context(ctx):
            meeting.record_resolution(resolution_id=resolution_id, text=text)
        self.save_in(ctx, meeting)
        return meeting

    def assign_resolution(
        self,
        ctx: CommandContext,
        meeting_id: uuid.UUID,
        resolution_id: str,
        *,
        owner: str,
        deadline: datetime,
    ) -> Meeting:
        now = self.clock.now()

        def assign(m: Meeting) -> None:
            current = m.resolution(resolution_id)["assignments"]
            m.assign_resolution(
                resolution_id=resolution_id,
                owner=owner,
                deadline=deadline,
                now=now,
                owner_clock=deadline_id(RESOLUTION_OWNER, meeting_id, resolution_id),
                deadline_clock=deadline_id(
                    RESOLUTION, meeting_id, resolution_ref(resolution_id, current)
                ),
            )

        return self._change(ctx, Meeting, meeting_id, assign)

    def complete_resolution(
        self,
        ctx: CommandContext,
        meeting_id: uuid.UUID,
        resolution_id: str,
        *,
        note: str,
        may_close_for_owner: bool,
    ) -> Meeting:
        now = self.clock.now()

        def complete(m: Meeting) -> None:
            assignment = m.resolution(resolution_id)["assignments"]
            m.complete_resolution(
                resolution_id=resolution_id,
                user_id=ctx.actor.user_id,
                may_close_for_owner=may_close_for_owner,
                note=note,
                now=now,
                clock=deadline_id(
                    RESOLUTION, meeting_id, resolution_ref(resolution_id, assignment)
                ),
            )

        return self._change(ctx, Meeting, meeting_id, complete)

    # -- deadlines (R3.5) ----------------------------------------------------------------------

    def minutes_overdue(self, deadline: Deadline) -> uuid.UUID | None:
        return self.record_once(
            deadline.aggregate_id,
            Meeting,
            deadline.started_by,
            lambda m: m.mark_minutes_overdue(deadline_id=deadline.id),
        )

    def resolution_owner_overdue(self, deadline: Deadline) -> uuid.UUID | None:
        return self.record_once(
            deadline.aggregate_id,
            Meeting,
            deadline.started_by,
            lambda m: m.mark_owner_overdue(resolution_id=deadline.ref, deadline_id=deadline.id),
        )

    def resolution_overdue(self, deadline: Deadline) -> uuid.UUID | None:
        resolution_id, _, assignment = deadline.ref.partition("#")
        return self.record_once(
            deadline.aggregate_id,
            Meeting,
            deadline.started_by,
            lambda m: m.mark_resolution_overdue(
                resolution_id=resolution_id,
                assignment=int(assignment),
                deadline_id=deadline.id,
            ),
        )
