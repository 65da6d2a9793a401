"""A partner's standing on the scorecard (R6.1, R1.2): one stream per partner.

The scores themselves are derived from the KPI facts and recomputed at will
(services/kpi/scoring.py); what is *published* is a change of standing, so
other systems (and auditors) see when a partner entered Probation and on which
score, and a project created for a partner in Probation is warned about.

    (none) --first scored--> Excellent | Good | Watch | Probation
           --overall moves across a threshold--> another standing
    Probation + ProjectCreated for the partner --> ProbationProjectWarned (once per project)
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

from shared.domain import LedgerAggregate

#: Names the partner's standing stream from its partner id.
_NAMESPACE: Final = uuid.UUID("3f0c7a52-2b8e-5e0e-9a61-6d3f4c1b2a90")


def standing_id(partner_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, str(partner_id))


class PartnerStanding(LedgerAggregate):
    AGGREGATE_TYPE = "PartnerStanding"

    class Created(LedgerAggregate.Created):
        """The partner was scored for the first time (R6.1)."""

        EVENT_TYPE = "PartnerStandingOpened"
        partner_id: uuid.UUID

    class Changed(LedgerAggregate.Event):
        """The partner's overall score crossed a standing threshold (R6.1,
        R1.2): the standing, the score and the formula version that put it
        there, and the newest period scored."""

        EVENT_TYPE = "PartnerStandingChanged"
        partner_id: uuid.UUID
        from_standing: str | None
        to_standing: str
        to_standing_zh: str
        overall: float
        formula_version: str
        period_kind: str
        latest_period: str

        def apply(self, aggregate: Any) -> None:
            aggregate.standing = self.to_standing
            aggregate.overall = self.overall
            aggregate.since = self.occurred_at

    class ProbationProjectWarned(LedgerAggregate.Event):
        """A project was created for a partner in Probation (R1.2, R6.1): the
        Director is warned; the project itself is the partner service's."""

        EVENT_TYPE = "ProbationProjectWarned"
        partner_id: uuid.UUID
        project_id: uuid.UUID
        project_title: str
        project_manager: str
        overall: float

        def apply(self, aggregate: Any) -> None:
            aggregate.warned.add(self.project_id)

    standing: str | None
    overall: float | None
    #: When the current standing began: only later projects are warned about.
    since: datetime | None
    warned: set[uuid.UUID]

    def __init__(self, *, partner_id: uuid.UUID) -> None:
        self.partner_id = partner_id
        self.standing = None
        self.overall = None
        self.since = None
        self.warned = set()

    @classmethod
    def open(cls, partner_id: uuid.UUID) -> PartnerStanding:
        return cls._create_in_context(
            cls.Created, id=standing_id(partner_id), partner_id=partner_id
        )

    def assess(
        self,
        *,
        standing: str,
        standing_zh: str,
        overall: float,
        formula_version: str,
        period_kind: str,
        latest_period: str,
    ) -> bool:
        """Records a change of standing; nothing when it stays (the score
        alone moving inside a standing is no news). True if it changed."""
        if standing == self.standing:
            return False
        self.trigger_event(
            self.Changed,
            partner_id=self.partner_id,
            from_standing=self.standing,
            to_standing=standing,
            to_standing_zh=standing_zh,
            overall=overall,
            formula_version=formula_version,
            period_kind=period_kind,
            latest_period=latest_period,
        )
        return True

    def warn_project(
        self, *, project_id: uuid.UUID, title: str, project_manager: str, probation: str
    ) -> bool:
        """Warns once about a project created while the partner is in the
        lowest standing (`probation`); True if it warned."""
        if self.standing != probation or project_id in self.warned or self.overall is None:
            return False
        self.trigger_event(
            self.ProbationProjectWarned,
            partner_id=self.partner_id,
            project_id=project_id,
            project_title=title,
            project_manager=project_manager,
            overall=self.overall,
        )
        return True
