"""Text and time input types for every API: validated, normalised, never a 500.

Strings are NFC-normalised and trimmed; control and format characters and lone
surrogates are refused (a lone surrogate cannot even be stored as UTF-8);
multi-line text keeps its line breaks and tabs only.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field
from pydantic_core import PydanticCustomError

_REFUSED = ("Cc", "Cf", "Cs", "Zl", "Zp")


def _clean(value: str, *, multiline: bool) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    allowed = "\n\t" if multiline else ""
    if any(unicodedata.category(ch) in _REFUSED and ch not in allowed for ch in value):
        raise PydanticCustomError(
            "control_characters", "must not contain control characters or lone surrogates"
        )
    if not value:
        raise PydanticCustomError("blank", "must not be blank")
    return value


def plain_text(value: str) -> str:
    return _clean(value, multiline=False)


def multiline_text(value: str) -> str:
    return _clean(value, multiline=True)


PlainText = Annotated[str, AfterValidator(plain_text)]
Name = Annotated[PlainText, Field(max_length=200)]
Label = Annotated[PlainText, Field(max_length=100)]
UserId = Annotated[PlainText, Field(max_length=200, description="A user id (token subject)")]
LongText = Annotated[str, Field(max_length=10_000), AfterValidator(multiline_text)]
Reason = Annotated[str, Field(max_length=2_000), AfterValidator(multiline_text)]


def _moment(value: datetime) -> datetime:
    # A far year with an offset passes pydantic but overflows in UTC, in the
    # database or in deadline arithmetic: refuse it here, as a 422.
    if not 2000 <= value.year <= 2100:
        raise PydanticCustomError("moment_range", "must lie between the years 2000 and 2100")
    return value.astimezone(UTC)


#: A moment with its time zone, between 2000 and 2100, normalised to UTC.
Moment = Annotated[AwareDatetime, AfterValidator(_moment)]
