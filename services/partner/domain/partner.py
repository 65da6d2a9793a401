"""The Partner aggregate (R2.1): an outsourcing vendor, from candidate on.

    candidate --evaluate--> (evaluated) --qualify (Director)--> qualified
    candidate --reject (Director)--> rejected --evaluate, qualify--> qualified
    qualified --first contract signed--> active
    qualified/active --probation--> probation
    qualified/active/probation --suspend--> suspended
    any but terminated --terminate [blacklist]--> terminated
    probation/suspended --reinstate--> active (had a contract) or qualified
    terminated, not blacklisted --evaluate, qualify (Director)--> qualified

A partner is identified by its unified social credit code: the aggregate id is
derived from it, so the event store itself refuses a second registration of
the same legal entity, even when two requests race.

Every qualification has a validity (the earliest certificate expiry, or the
policy's default period); when it passes, the partner needs re-evaluation
(`RequalificationOverdue`) and cannot be chosen for a new project until the
Director qualifies it again.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Final, Literal

from typing_extensions import TypedDict

from services.partner.domain.uscc import validate_uscc
from shared.domain import LedgerAggregate, RuleViolation

#: Namespace for deriving partner ids from credit codes (never change it).
PARTNER_ID_NAMESPACE: Final = uuid.UUID("6f1c9a52-3c1e-5f0e-9a8e-2b7d7d1f3a10")

PartnerStatus = Literal[
    "candidate", "qualified", "rejected", "active", "probation", "suspended", "terminated"
]
CANDIDATE: Final = "candidate"
QUALIFIED: Final = "qualified"
REJECTED: Final = "rejected"
ACTIVE: Final = "active"
PROBATION: Final = "probation"
SUSPENDED: Final = "suspended"
TERMINATED: Final = "terminated"

#: Due-diligence criteria (R2.1), each scored 1 (poor) to 5 (excellent).
CRITERIA: Final = (
    "technical_capability",
    "qualifications",
    "financial_health",
    "information_security",
    "references",
)
#: Statuses from which a partner may be chosen for a new project.
SELECTABLE: Final = frozenset({QUALIFIED, ACTIVE, PROBATION})

StatusAction = Literal["probation", "suspend", "terminate", "reinstate"]


class Contact(TypedDict):
    name: str
    email: str
    phone: str


class Qualification(TypedDict):
    """A certificate or licence, e.g. ISO/IEC 27001, with its expiry date."""

    name: str
    certificate_no: str
    expires_on: date


class Evaluation(TypedDict):
    evaluation_id: uuid.UUID
    scores: dict[str, int]
    qualifications: list[Qualification]
    summary: str
    evaluated_at: datetime
    version: int  # the partner's version when it was evaluated


def partner_id_for(unified_social_credit_code: str) -> uuid.UUID:
    return uuid.uuid5(PARTNER_ID_NAMESPACE, validate_uscc(unified_social_credit_code))


class Partner(LedgerAggregate):
    AGGREGATE_TYPE = "Partner"

    class Registered(LedgerAggregate.Created):
        """A partner candidate was registered for due diligence (R2.1)."""

        EVENT_TYPE = "PartnerRegistered"
        name: str
        unified_social_credit_code: str
        contact: Contact
        service_categories: list[str]

    class Evaluated(LedgerAggregate.Event):
        """Due diligence scored the partner and listed its qualifications (R2.1)."""

        EVENT_TYPE = "PartnerEvaluated"
        evaluation_id: uuid.UUID
        scores: dict[str, int]
        qualifications: list[Qualification]
        summary: str

        def apply(self, aggregate: Any) -> None:
            aggregate.evaluations.append(
                Evaluation(
                    evaluation_id=self.evaluation_id,
                    scores=self.scores,
                    qualifications=self.qualifications,
                    summary=self.summary,
                    evaluated_at=self.timestamp,
                    version=self.originator_version,
                )
            )

    class Qualified(LedgerAggregate.Event):
        """The Director qualified the partner on an evaluation (R2.1)."""

        EVENT_TYPE = "PartnerQualified"
        evaluation_id: uuid.UUID
        reason: str
        valid_until: date
        status: PartnerStatus  # qualified, or unchanged when an active partner requalifies

        def apply(self, aggregate: Any) -> None:
            aggregate.status = self.status
            aggregate.valid_until = self.valid_until
            aggregate.qualified_version = self.originator_version
            aggregate.requalification_required = False
            aggregate.decided_version = self.originator_version

    class Rejected(LedgerAggregate.Event):
        """The Director rejected the candidate, with the reason (R2.1)."""

        EVENT_TYPE = "PartnerRejected"
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = REJECTED
            aggregate.decided_version = self.originator_version

    class Activated(LedgerAggregate.Event):
        """The partner's first contract was signed: a qualified partner becomes
        active; one on probation stays so, now with a contract (R2.1)."""

        EVENT_TYPE = "PartnerActivated"
        project_id: uuid.UUID
        contract_number: str
        status: PartnerStatus

        def apply(self, aggregate: Any) -> None:
            aggregate.status = self.status
            aggregate.has_contract = True

    class StatusChanged(LedgerAggregate.Event):
        """The Director put the partner on probation, suspended, terminated
        (optionally blacklisted) or reinstated it, with the reason (R2.1)."""

        EVENT_TYPE = "PartnerStatusChanged"
        action: StatusAction
        from_status: PartnerStatus
        to_status: PartnerStatus
        reason: str
        blacklisted: bool

        def apply(self, aggregate: Any) -> None:
            aggregate.status = self.to_status
            aggregate.blacklisted = self.blacklisted
            if self.to_status == TERMINATED:
                aggregate.has_contract = False  # a qualification anew starts afresh
            aggregate.decided_version = self.originator_version

    class RequalificationOverdue(LedgerAggregate.Event):
        """The partner's qualification ran out without a new one (R2.1, R3.5)."""

        EVENT_TYPE = "RequalificationOverdue"
        valid_until: date
        deadline_id: uuid.UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.requalification_required = True
            aggregate.overdue_deadlines[self.deadline_id] = self.event_id

    def __init__(
        self,
        name: str,
        unified_social_credit_code: str,
        contact: Contact,
        service_categories: list[str],
    ) -> None:
        self.name = name
        self.unified_social_credit_code = unified_social_credit_code
        self.contact = contact
        self.service_categories = list(service_categories)
        self.status: PartnerStatus = CANDIDATE
        self.evaluations: list[Evaluation] = []
        self.valid_until: date | None = None
        self.qualified_version = 0  # version of the qualification in force
        self.requalification_required = False
        self.blacklisted = False
        self.has_contract = False
        self.decided_version = 0  # version of the Director's last decision
        #: deadline id -> id of the Overdue event recorded for it (once each)
        self.overdue_deadlines: dict[uuid.UUID, uuid.UUID] = {}

    # -- commands ------------------------------------------------------------------

    @classmethod
    def register(
        cls,
        *,
        name: str,
        unified_social_credit_code: str,
        contact: Contact,
        service_categories: list[str],
    ) -> Partner:
        code = validate_uscc(unified_social_credit_code)
        assert name.strip(), "the API refuses an empty name"
        assert service_categories, "the API refuses an empty category list"
        return cls._create_in_context(
            cls.Registered,
            id=partner_id_for(code),
            name=name.strip(),
            unified_social_credit_code=code,
            contact=contact,
            service_categories=list(dict.fromkeys(service_categories)),
        )

    def evaluate(
        self,
        *,
        evaluation_id: uuid.UUID,
        scores: dict[str, int],
        qualifications: list[Qualification],
        summary: str,
    ) -> None:
        if self.status == TERMINATED and self.blacklisted:
            raise RuleViolation("R2.1", "a blacklisted partner is not evaluated again")
        missing = [c for c in CRITERIA if c not in scores]
        if missing or set(scores) - set(CRITERIA):
            raise RuleViolation(
                "R2.1", f"due diligence scores exactly these criteria: {', '.join(CRITERIA)}"
            )
        self.trigger_event(
            self.Evaluated,
            evaluation_id=evaluation_id,
            scores=dict(scores),
            qualifications=list(qualifications),
            summary=summary,
        )

    def _evaluation_since_last_decision(self) -> Evaluation:
        latest = self.evaluations[-1] if self.evaluations else None
        if latest is None or latest["version"] < self.decided_version:
            raise RuleViolation(
                "R2.1",
                "the Director decides on a due-diligence evaluation made since the last decision",
            )
        return latest

    def qualify(
        self, *, reason: str, today: date, default_valid_until: date, renew_within_days: int
    ) -> None:
        """Qualifies a candidate, a rejected or a terminated partner on a new
        evaluation, or renews the qualification of a partner whose validity
        ends within `renew_within_days` or has ended."""
        if self.blacklisted:
            raise RuleViolation("R2.1", "a blacklisted partner cannot be qualified")
        renewal = self.requalification_required or (
            self.valid_until is not None and (self.valid_until - today).days <= renew_within_days
        )
        if self.status not in (CANDIDATE, REJECTED, TERMINATED) and not renewal:
            raise RuleViolation(
                "R2.1",
                f"a {self.status} partner is qualified until {self.valid_until}; renewal opens"
                f" {renew_within_days} days before",
            )
        evaluation = self._evaluation_since_last_decision()
        expired = [q for q in evaluation["qualifications"] if q["expires_on"] < today]
        if expired:
            names = ", ".join(f"{q['name']} (expired {q['expires_on']})" for q in expired)
            raise RuleViolation("R2.1", f"expired qualifications cannot qualify: {names}")
        expiries = [q["expires_on"] for q in evaluation["qualifications"]]
        valid_until = min([*expiries, default_valid_until])
        self.trigger_event(
            self.Qualified,
            evaluation_id=evaluation["evaluation_id"],
            reason=reason,
            valid_until=valid_until,
            status=QUALIFIED if self.status in (CANDIDATE, REJECTED, TERMINATED) else self.status,
        )

    def reject(self, *, reason: str) -> None:
        if self.status != CANDIDATE:
            raise RuleViolation(
                "R2.1", f"only a candidate is rejected; this partner is {self.status}"
            )
        self.trigger_event(self.Rejected, reason=reason)

    def first_contract_signed(self, *, project_id: uuid.UUID, contract_number: str) -> None:
        """Called when a project with this partner signs its contract."""
        self.ensure_selectable()
        if not self.has_contract:
            self.trigger_event(
                self.Activated,
                project_id=project_id,
                contract_number=contract_number,
                status=ACTIVE if self.status == QUALIFIED else self.status,
            )

    def change_status(self, *, action: StatusAction, reason: str, blacklist: bool = False) -> None:
        target = self._target_of(action)
        if blacklist and action != "terminate":
            raise RuleViolation("R2.1", "only a termination can blacklist a partner")
        self.trigger_event(
            self.StatusChanged,
            action=action,
            from_status=self.status,
            to_status=target,
            reason=reason,
            blacklisted=blacklist if action == "terminate" else False,
        )

    def _target_of(self, action: StatusAction) -> PartnerStatus:
        allowed: dict[StatusAction, frozenset[str]] = {
            "probation": frozenset({QUALIFIED, ACTIVE}),
            "suspend": frozenset({QUALIFIED, ACTIVE, PROBATION}),
            "terminate": frozenset({CANDIDATE, QUALIFIED, REJECTED, ACTIVE, PROBATION, SUSPENDED}),
            "reinstate": frozenset({PROBATION, SUSPENDED}),
        }
        if self.status not in allowed[action]:
            raise RuleViolation("R2.1", f"a {self.status} partner cannot be given '{action}'")
        if action == "probation":
            return PROBATION
        if action == "suspend":
            return SUSPENDED
        if action == "terminate":
            return TERMINATED
        return ACTIVE if self.has_contract else QUALIFIED

    def mark_requalification_overdue(
        self, *, deadline_id: uuid.UUID, valid_until: date, qualified_version: int
    ) -> uuid.UUID | None:
        """Records the overdue requalification once; returns its event id."""
        if deadline_id in self.overdue_deadlines:
            return self.overdue_deadlines[deadline_id]
        stale = self.qualified_version != qualified_version or self.valid_until != valid_until
        if stale or self.status == TERMINATED:
            return None  # requalified (or gone) meanwhile
        self.trigger_event(
            self.RequalificationOverdue, valid_until=valid_until, deadline_id=deadline_id
        )
        return self.overdue_deadlines[deadline_id]

    # -- rules other aggregates ask ------------------------------------------------------

    def ensure_selectable(self) -> None:
        """R2.1: only a qualified, unsuspended partner is chosen for new work."""
        if self.blacklisted:
            raise RuleViolation("R2.1", "the partner is blacklisted")
        if self.status not in SELECTABLE:
            raise RuleViolation("R2.1", f"the partner is {self.status}, not qualified")
        if self.requalification_required:
            raise RuleViolation(
                "R2.1", f"the partner's qualification ran out on {self.valid_until}: re-evaluate it"
            )
