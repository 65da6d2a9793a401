"""The Document aggregate (R4.4, R4.5, R4.1): one named document, its
versions, its reviews and every read.

    filed (version 1) --new upload under the same name--> version n+1
    version --reviewed--> accepted | needs_correction (feeds document accuracy, R6.1)
    contract (合同) --read by the Director--> ContractDocumentRead
                    --anyone else tries--> ContractAccessDenied (R4.1)

The content itself is not in the events (they travel to Kafka): each version
names its content row, its SHA-256 and size; a contract's content is stored
encrypted (services.docs.archive).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Final, Literal, TypedDict

from shared.domain import LedgerAggregate, RuleViolation

CONTRACT: Final = "合同"
DOCUMENT_NAMESPACE: Final = uuid.UUID("0d5e3c1c-5f0e-5a51-8a8e-3f4f2b7f6a10")

ReviewOutcome = Literal["accepted", "needs_correction"]


def document_id(
    project_id: uuid.UUID | None,
    name: str,
    period: str,
    meeting_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """A name identifies one document per project (department documents: per
    department) and period, so a new upload under it is its next version
    (R4.5). The period is part of it because the policy's own example names a
    weekly report by its month (`XX项目-2026年11月-周报`, R4.4): each week's
    report under that name is a document of its own; two meetings' minutes of
    one day likewise, by their meeting."""
    key = f"{project_id or 'department'}/{name}/{period}"
    if meeting_id is not None:
        key += f"/{meeting_id}"
    return uuid.uuid5(DOCUMENT_NAMESPACE, key)


class VersionRecord(TypedDict):
    version: int
    content_id: uuid.UUID
    sha256: str
    size: int
    media_type: str
    file_name: str
    filed_by: str
    filed_role: str
    filed_at: datetime
    note: str
    review: ReviewOutcome | None
    reviewed_by: str | None
    reasons: list[str]


class Document(LedgerAggregate):
    AGGREGATE_TYPE = "Document"

    class Created(LedgerAggregate.Created):
        """A document was filed under its R4.4 name; this is its version 1."""

        EVENT_TYPE = "DocumentFiled"
        project_id: uuid.UUID | None
        name: str
        doc_type: str
        period: str
        period_start: date
        period_end: date
        meeting_id: uuid.UUID | None
        encrypted: bool
        contract_number: str | None
        content_id: uuid.UUID
        sha256: str
        size: int
        media_type: str
        file_name: str
        filed_by: str
        filed_at: datetime
        note: str

    class Revised(LedgerAggregate.Event):
        """A new version was filed under the same name; earlier ones stay readable (R4.5)."""

        EVENT_TYPE = "DocumentRevised"
        project_id: uuid.UUID | None
        doc_type: str
        version: int
        content_id: uuid.UUID
        sha256: str
        size: int
        media_type: str
        file_name: str
        filed_by: str
        filed_at: datetime
        note: str

        def apply(self, aggregate: Any) -> None:
            aggregate.versions.append(
                VersionRecord(
                    version=self.version,
                    content_id=self.content_id,
                    sha256=self.sha256,
                    size=self.size,
                    media_type=self.media_type,
                    file_name=self.file_name,
                    filed_by=self.filed_by,
                    filed_role=self.actor_role,
                    filed_at=self.filed_at,
                    note=self.note,
                    review=None,
                    reviewed_by=None,
                    reasons=[],
                )
            )

    class Reviewed(LedgerAggregate.Event):
        """A version was accepted or sent back for correction (R6.1 document accuracy)."""

        EVENT_TYPE = "DocumentReviewed"
        project_id: uuid.UUID | None
        doc_type: str
        version: int
        outcome: ReviewOutcome
        reasons: list[str]
        reviewer: str
        filed_by: str
        reviewed_at: datetime

        def apply(self, aggregate: Any) -> None:
            record = aggregate.versions[self.version - 1]
            record["review"] = self.outcome
            record["reviewed_by"] = self.reviewer
            record["reasons"] = list(self.reasons)

    class Read(LedgerAggregate.Event):
        """Someone read a version's content (R4.5: every read is on record)."""

        EVENT_TYPE = "DocumentRead"
        project_id: uuid.UUID | None
        version: int
        reader: str
        reader_role: str
        read_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.reads += 1

    class ContractRead(LedgerAggregate.Event):
        """The Director read a contract's content (R4.1, R4.5)."""

        EVENT_TYPE = "ContractDocumentRead"
        project_id: uuid.UUID | None
        contract_number: str | None
        version: int
        reader: str
        read_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.reads += 1

    class ContractDenied(LedgerAggregate.Event):
        """A refused attempt to read a contract's content: only the Director may (R4.1)."""

        EVENT_TYPE = "ContractAccessDenied"
        project_id: uuid.UUID | None
        contract_number: str | None
        version: int | None
        user_id: str
        role: str
        reason: str
        attempted_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.denials += 1

    def __init__(
        self,
        *,
        project_id: uuid.UUID | None,
        name: str,
        doc_type: str,
        period: str,
        period_start: date,
        period_end: date,
        meeting_id: uuid.UUID | None,
        encrypted: bool,
        contract_number: str | None,
        content_id: uuid.UUID,
        sha256: str,
        size: int,
        media_type: str,
        file_name: str,
        filed_by: str,
        filed_at: datetime,
        note: str,
        actor_role: str,
    ) -> None:
        self.project_id = project_id
        self.name = name
        self.doc_type = doc_type
        self.period = period
        self.period_start = period_start
        self.period_end = period_end
        self.meeting_id = meeting_id
        self.encrypted = encrypted
        self.contract_number = contract_number
        self.filed_at = filed_at
        self.reads = 0
        self.denials = 0
        self.versions: list[VersionRecord] = [
            VersionRecord(
                version=1,
                content_id=content_id,
                sha256=sha256,
                size=size,
                media_type=media_type,
                file_name=file_name,
                filed_by=filed_by,
                filed_role=actor_role,
                filed_at=filed_at,
                note=note,
                review=None,
                reviewed_by=None,
                reasons=[],
            )
        ]

    @property
    def is_contract(self) -> bool:
        return self.doc_type == CONTRACT

    @property
    def latest(self) -> VersionRecord:
        return self.versions[-1]

    def version_record(self, version: int | None) -> VersionRecord:
        if version is None:
            return self.latest
        if not 1 <= version <= len(self.versions):
            raise RuleViolation(
                "R4.5", f"the document has versions 1 to {len(self.versions)}, not {version}"
            )
        return self.versions[version - 1]

    # -- commands ----------------------------------------------------------------------------

    @classmethod
    def file(
        cls,
        *,
        project_id: uuid.UUID | None,
        name: str,
        doc_type: str,
        period: str,
        period_start: date,
        period_end: date,
        meeting_id: uuid.UUID | None,
        contract_number: str | None,
        content_id: uuid.UUID,
        sha256: str,
        size: int,
        media_type: str,
        file_name: str,
        filed_by: str,
        now: datetime,
        note: str = "",
    ) -> Document:
        return cls._create_in_context(
            cls.Created,
            id=document_id(project_id, name, period, meeting_id),
            project_id=project_id,
            name=name,
            doc_type=doc_type,
            period=period,
            period_start=period_start,
            period_end=period_end,
            meeting_id=meeting_id,
            encrypted=doc_type == CONTRACT,
            contract_number=contract_number,
            content_id=content_id,
            sha256=sha256,
            size=size,
            media_type=media_type,
            file_name=file_name,
            filed_by=filed_by,
            filed_at=now,
            note=note,
        )

    def revise(
        self,
        *,
        doc_type: str,
        period: str,
        content_id: uuid.UUID,
        sha256: str,
        size: int,
        media_type: str,
        file_name: str,
        filed_by: str,
        now: datetime,
        note: str = "",
    ) -> None:
        """The name fixes the document, so a new version must be the same kind
        of document for the same period (R4.4)."""
        if doc_type != self.doc_type:
            raise RuleViolation(
                "R4.4", f"{self.name} is a {self.doc_type}; a new version cannot be a {doc_type}"
            )
        if period != self.period:
            raise RuleViolation(
                "R4.4",
                f"{self.name} covers {self.period}; a new version cannot cover {period}",
            )
        if sha256 == self.latest["sha256"]:
            raise RuleViolation(
                "R4.5",
                f"version {self.latest['version']} has this content already (same SHA-256)",
            )
        self.trigger_event(
            self.Revised,
            project_id=self.project_id,
            doc_type=self.doc_type,
            version=len(self.versions) + 1,
            content_id=content_id,
            sha256=sha256,
            size=size,
            media_type=media_type,
            file_name=file_name,
            filed_by=filed_by,
            filed_at=now,
            note=note,
        )

    def review(
        self,
        *,
        version: int | None,
        outcome: ReviewOutcome,
        reasons: list[str],
        reviewer: str,
        now: datetime,
    ) -> int:
        """Returns the version reviewed. Nobody reviews their own filing: the
        accuracy figure is about the filer (R6.1)."""
        record = self.version_record(version)
        if record["filed_by"] == reviewer:
            raise RuleViolation(
                "R6.1", "a document is reviewed by someone other than its filer", forbidden=True
            )
        if record["review"] is not None:
            raise RuleViolation(
                "R6.1",
                f"version {record['version']} was reviewed already ({record['review']});"
                " file a new version for a new review",
            )
        if outcome == "needs_correction" and not [r for r in reasons if r.strip()]:
            raise RuleViolation("R6.1", "a document sent back for correction says why")
        self.trigger_event(
            self.Reviewed,
            project_id=self.project_id,
            doc_type=self.doc_type,
            version=record["version"],
            outcome=outcome,
            reasons=reasons,
            reviewer=reviewer,
            filed_by=record["filed_by"],
            reviewed_at=now,
        )
        return record["version"]

    def record_read(
        self, *, version: int | None, reader: str, role: str, may_read_contract: bool, now: datetime
    ) -> VersionRecord:
        """Records the read before the content is handed out, so no read goes
        unrecorded (R4.5); a refused contract read is recorded too (R4.1)."""
        if self.is_contract and not may_read_contract:
            # Refused before the version is even looked at: every attempt,
            # valid or not, stays on record (R4.1).
            known = version is None or 1 <= version <= len(self.versions)
            self.trigger_event(
                self.ContractDenied,
                project_id=self.project_id,
                contract_number=self.contract_number,
                version=(version or len(self.versions)) if known else None,
                user_id=reader,
                role=role,
                reason="only the Director may read a contract (R4.1)",
                attempted_at=now,
            )
            return self.latest
        record = self.version_record(version)
        if self.is_contract:
            self.trigger_event(
                self.ContractRead,
                project_id=self.project_id,
                contract_number=self.contract_number,
                version=record["version"],
                reader=reader,
                read_at=now,
            )
            return record
        self.trigger_event(
            self.Read,
            project_id=self.project_id,
            version=record["version"],
            reader=reader,
            reader_role=role,
            read_at=now,
        )
        return record
