"""Request and response bodies of the partner API (other enterprise systems
call it: keep field names stable)."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field
from pydantic_core import PydanticCustomError

from services.partner.domain.partner import Contact, Partner
from services.partner.domain.uscc import InvalidUSCC, validate_uscc

_PHONE = re.compile(r"^(\+86[- ]?)?(1[3-9]\d{9}|0\d{2,3}-?\d{7,8}(-\d{1,6})?)$|^\+[1-9]\d{7,14}$")


def _plain_text(value: str) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in value):
        raise PydanticCustomError(
            "control_characters", "must not contain control characters or lone surrogates"
        )
    if not value:
        raise PydanticCustomError("blank", "must not be blank")
    return value


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


PlainText = Annotated[str, AfterValidator(_plain_text)]
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


class PartnerView(BaseModel):
    id: UUID
    name: str
    unified_social_credit_code: str
    contact: Contact
    service_categories: list[str]
    status: str
    version: int
    registered_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, partner: Partner) -> PartnerView:
        return cls(
            id=partner.id,
            name=partner.name,
            unified_social_credit_code=partner.unified_social_credit_code,
            contact=partner.contact,
            service_categories=partner.service_categories,
            status=partner.status,
            version=partner.version,
            registered_at=partner.created_on,
            updated_at=partner.modified_on,
        )
