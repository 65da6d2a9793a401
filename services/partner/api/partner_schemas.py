"""Request and response bodies of the partner API (other enterprise systems
call it: keep field names stable)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal, get_args
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, field_validator
from pydantic_core import PydanticCustomError

from services.partner.domain.partner import (
    CRITERIA,
    Contact,
    Partner,
    Qualification,
    StatusAction,
)
from services.partner.domain.uscc import InvalidUSCC, validate_uscc
from shared.domain import RuleViolation
from shared.text import Label, LongText, PlainText, Reason

CRITERIA_LITERAL = Literal[
    "technical_capability",
    "qualifications",
    "financial_health",
    "information_security",
    "references",
]
assert set(get_args(CRITERIA_LITERAL)) == set(CRITERIA), "criteria of the domain and the API"
_PHONE = re.compile(r"^(\+86[- ]?)?(1[3-9]\d{9}|0\d{2,3}-?\d{7,8}(-\d{1,6})?)$|^\+[1-9]\d{7,14}$")


def _credit_code(value: str) -> str:
    try:
        return validate_uscc(value)
    except InvalidUSCC as exc:
        raise PydanticCustomError(
            f"uscc_{exc.rule}", "GB 32100-2015: {reason}", {"reason": str(exc)}
        ) from None


def _phone(value: str) -> str:
    compact = value.strip().replace(" ", "")
    if not _PHONE.match(compact):
        raise PydanticCustomError(
            "phone",
            "must be a mainland China mobile (13812345678) or landline (010-12345678) number,"
            " or an international number in E.164 form (+4930123456)",
        )
    return compact


CreditCode = Annotated[
    str,
    Field(
        min_length=18,
        max_length=40,
        description="统一社会信用代码: 18 characters, check character per GB 32100-2015",
        examples=["91350100M000100Y43"],
    ),
    AfterValidator(_credit_code),
]


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[PlainText, Field(max_length=100)]
    email: EmailStr
    phone: Annotated[str, Field(max_length=30), AfterValidator(_phone)]


class RegisterPartner(BaseModel):
    """Register a partner candidate (R2.1)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "福州云栈信息技术有限公司",
                    "unified_social_credit_code": "91350100M000100Y43",
                    "contact": {
                        "name": "林晓",
                        "email": "lin@yunzhan.example",
                        "phone": "13800138000",
                    },
                    "service_categories": ["运维外包", "软件开发"],
                }
            ]
        },
    )

    name: Annotated[PlainText, Field(max_length=200, description="Registered company name")]
    unified_social_credit_code: CreditCode
    contact: ContactIn
    service_categories: Annotated[
        list[Annotated[PlainText, Field(max_length=50)]],
        Field(min_length=1, max_length=20, description="What the partner offers"),
    ]

    def contact_value(self) -> Contact:
        return Contact(
            name=self.contact.name, email=str(self.contact.email), phone=self.contact.phone
        )


class QualificationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Label = Field(examples=["ISO/IEC 27001"])
    certificate_no: Label
    expires_on: date


class EvaluatePartner(BaseModel):
    """Due diligence by a specialist or project manager (R2.1): each criterion
    scored 1 (poor) to 5 (excellent), and the partner's qualifications."""

    model_config = ConfigDict(extra="forbid")

    scores: dict[CRITERIA_LITERAL, Annotated[int, Field(ge=1, le=5)]] = Field(
        description=f"Exactly these criteria: {', '.join(CRITERIA)}"
    )
    qualifications: list[QualificationIn] = Field(default_factory=list, max_length=50)
    summary: LongText

    @field_validator("scores")
    @classmethod
    def _every_criterion(cls, scores: dict[str, int]) -> dict[str, int]:
        missing = [c for c in CRITERIA if c not in scores]
        if missing:
            raise ValueError(f"missing criteria: {', '.join(missing)}")
        return scores

    def qualification_values(self) -> list[Qualification]:
        return [
            Qualification(name=q.name, certificate_no=q.certificate_no, expires_on=q.expires_on)
            for q in self.qualifications
        ]


class Decision(BaseModel):
    """The Director's decision, with its reason (R2.1)."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason


class ChangeStatus(BaseModel):
    """Probation, suspension, termination (optionally blacklisting) or
    reinstatement, by the Director with a reason (R2.1)."""

    model_config = ConfigDict(extra="forbid")

    action: StatusAction
    reason: Reason
    blacklist: bool = False


class EvaluationView(BaseModel):
    evaluation_id: UUID
    scores: dict[str, int]
    qualifications: list[Qualification]
    summary: str
    evaluated_at: datetime


class PartnerView(BaseModel):
    id: UUID
    name: str
    unified_social_credit_code: str
    contact: Contact
    service_categories: list[str]
    status: str
    blacklisted: bool
    valid_until: date | None = Field(description="Until when the qualification holds")
    requalification_required: bool
    selectable: bool = Field(description="May be chosen for a new project now (R2.1)")
    evaluations: list[EvaluationView]
    version: int
    registered_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, partner: Partner) -> PartnerView:
        try:
            partner.ensure_selectable()
            selectable = True
        except RuleViolation:
            selectable = False
        return cls(
            id=partner.id,
            name=partner.name,
            unified_social_credit_code=partner.unified_social_credit_code,
            contact=partner.contact,
            service_categories=partner.service_categories,
            status=partner.status,
            blacklisted=partner.blacklisted,
            valid_until=partner.valid_until,
            requalification_required=partner.requalification_required,
            selectable=selectable,
            evaluations=[
                EvaluationView(
                    evaluation_id=e["evaluation_id"],
                    scores=e["scores"],
                    qualifications=e["qualifications"],
                    summary=e["summary"],
                    evaluated_at=e["evaluated_at"],
                )
                for e in partner.evaluations
            ],
            version=partner.version,
            registered_at=partner.created_on,
            updated_at=partner.modified_on,
        )


class PartnerRow(BaseModel):
    id: UUID
    name: str
    unified_social_credit_code: str
    status: str
    blacklisted: bool
    requalification_required: bool
    valid_until: date | None
    service_categories: list[str]
    registered_at: datetime
    updated_at: datetime


class PartnerPage(BaseModel):
    items: list[PartnerRow]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end")
