"""The Partner aggregate (R2.1): an outsourcing vendor, from candidate on.

A partner is identified by its unified social credit code: the aggregate id
is derived from it, so the event store itself refuses a second registration
of the same legal entity, even when two requests race.
"""

from __future__ import annotations

import uuid
from typing import Final

from typing_extensions import TypedDict

from services.partner.domain.uscc import validate_uscc
from shared.domain import LedgerAggregate

#: Namespace for deriving partner ids from credit codes (never change it).
PARTNER_ID_NAMESPACE: Final = uuid.UUID("6f1c9a52-3c1e-5f0e-9a8e-2b7d7d1f3a10")

CANDIDATE: Final = "candidate"


class Contact(TypedDict):
    name: str
    email: str
    phone: str


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
        self.status = CANDIDATE

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
