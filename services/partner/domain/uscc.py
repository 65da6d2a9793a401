"""Unified Social Credit Code (统一社会信用代码) validation per GB 32100-2015.

A Unified Social Credit Code (USCC) has 18 characters::

    position  1      registration authority code (登记管理部门代码)
    position  2      organisation type code (机构类别代码)
    positions 3-8    administrative division code (登记管理机关行政区划码)
    positions 9-17   organisation code (主体标识码 / 组织机构代码)
    position  18     check character (校验码)

Every character is taken from a 31-character alphabet (digits and upper-case
Latin letters without I, O, S, V, Z); a character's *value* is its index in
:data:`USCC_ALPHABET`.  The check character is computed modulo 31 with weights
``3**(i-1) mod 31``.  Because 31 is prime and every weight is non-zero modulo
31, any single-character substitution in a code is detected.

This module is pure: no I/O, no global state.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "ADMIN_DIVISION_DIGITS",
    "REGISTRATION_AUTHORITY_CODES",
    "USCC_ALPHABET",
    "USCC_LENGTH",
    "USCC_WEIGHTS",
    "InvalidUSCC",
    "USCCRule",
    "check_character",
    "make_uscc",
    "validate_uscc",
]

USCC_ALPHABET: Final[str] = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""The 31 allowed characters, in order of their numeric values 0..30."""

USCC_LENGTH: Final[int] = 18
"""Total length of a USCC, including the check character."""

USCC_WEIGHTS: Final[tuple[int, ...]] = tuple(pow(3, i, 31) for i in range(17))
"""Weights for positions 1..17: ``3**(i-1) mod 31``.

That is ``(1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)``.
"""

REGISTRATION_AUTHORITY_CODES: Final[str] = "123456789ANY"
"""Accepted registration authority codes (position 1).

1 机构编制, 2 外交, 3 司法行政, 4 文化, 5 民政, 6 旅游, 7 宗教, 8 工会,
9 工商/市场监管, A 中央军委改革和编制办公室, N 农业, Y 其他.
"""

ADMIN_DIVISION_DIGITS: Final[str] = "0123456789"
"""Characters allowed in the administrative division code (positions 3-8)."""

_MODULUS: Final[int] = len(USCC_ALPHABET)
_VALUES: Final[dict[str, int]] = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
_ASCII_LOWER_TO_UPPER: Final[dict[int, int]] = {
    code: code - 32 for code in range(ord("a"), ord("z") + 1)
}
_ALPHABET_DESCRIPTION: Final[str] = "digits 0-9 and upper-case letters A-Y except I, O, S, V"

USCCRule = Literal[
    "length",
    "charset",
    "registration_authority",
    "organisation_type",
    "admin_division",
    "check_character",
]
"""Machine-readable identifiers of the rule a code violated."""


class InvalidUSCC(ValueError):
    """Raised when a string is not a valid Unified Social Credit Code.

    Attributes:
        rule: short machine-readable id of the violated rule, one of
            ``"length"``, ``"charset"``, ``"registration_authority"``,
            ``"organisation_type"``, ``"admin_division"``,
            ``"check_character"``.

    ``str(exc)`` is an English, human-readable message stating what is wrong
    and what was expected.
    """

    rule: USCCRule

    def __init__(self, rule: USCCRule, message: str) -> None:
        super().__init__(message)
        self.rule = rule

    def __repr__(self) -> str:
        return f"InvalidUSCC(rule={self.rule!r}, message={str(self)!r})"


def _check_alphabet(text: str) -> None:
    """Raise ``InvalidUSCC(rule="charset")`` for the first disallowed char."""
    for position, ch in enumerate(text, start=1):
        if ch not in _VALUES:
            raise InvalidUSCC(
                "charset",
                f"character {ch!r} at position {position} is not allowed; "
                f"GB 32100-2015 permits only {_ALPHABET_DESCRIPTION}",
            )


def _compute_check_character(first17: str) -> str:
    """Check character for an already length- and charset-checked prefix."""
    total = sum(_VALUES[ch] * w for ch, w in zip(first17, USCC_WEIGHTS, strict=True))
    # C18 = 31 - (total mod 31), where a result of 31 maps to 0.
    value = _MODULUS - total % _MODULUS
    if value == _MODULUS:
        value = 0
    return USCC_ALPHABET[value]


def check_character(first17: str) -> str:
    """Return the GB 32100-2015 check character (position 18) for a prefix.

    ``first17`` must be exactly 17 characters of :data:`USCC_ALPHABET`
    (upper case; no normalisation is applied here).  Only the checksum is
    computed: the structure of positions 1-8 is not validated.

    Raises:
        InvalidUSCC: with ``rule="length"`` or ``rule="charset"`` if the
            prefix is malformed.
    """
    if len(first17) != USCC_LENGTH - 1:
        raise InvalidUSCC(
            "length",
            f"prefix must be {USCC_LENGTH - 1} characters, got {len(first17)}",
        )
    _check_alphabet(first17)
    return _compute_check_character(first17)


def make_uscc(first17: str) -> str:
    """Return ``first17`` followed by its computed check character.

    Intended for tests and demo-data generators.  The prefix is not
    normalised and its structure (positions 1-8) is not validated; pass the
    result through :func:`validate_uscc` if that matters.

    Raises:
        InvalidUSCC: with ``rule="length"`` or ``rule="charset"`` if the
            prefix is malformed.
    """
    return first17 + check_character(first17)


def validate_uscc(code: str) -> str:
    """Validate a Unified Social Credit Code and return it normalised.

    Normalisation: surrounding whitespace is stripped and lower-case ASCII
    letters are accepted and converted to upper case (``"91350100m000100y43"``
    is accepted and returned as ``"91350100M000100Y43"``).  No other
    transformation is applied (e.g. inner spaces or full-width characters are
    rejected).

    Checks, in this order (the first failure is raised):

    1. ``length`` - exactly 18 characters;
    2. ``charset`` - every character is in :data:`USCC_ALPHABET`;
    3. ``registration_authority`` - position 1 is one of
       :data:`REGISTRATION_AUTHORITY_CODES` (``"123456789ANY"``);
    4. ``organisation_type`` - position 2 is any alphabet character except
       ``'0'`` (deliberately permissive so that real codes are not rejected);
    5. ``admin_division`` - positions 3-8 are six digits;
    6. ``check_character`` - position 18 equals
       :func:`check_character` of positions 1-17.

    Positions 9-17 (organisation code) may be any alphabet characters.

    Returns:
        The normalised 18-character code.

    Raises:
        InvalidUSCC: with ``rule`` naming the first violated check.
    """
    normalised = code.strip().translate(_ASCII_LOWER_TO_UPPER)

    if len(normalised) != USCC_LENGTH:
        raise InvalidUSCC(
            "length",
            f"must be {USCC_LENGTH} characters, got {len(normalised)}",
        )

    _check_alphabet(normalised)

    authority = normalised[0]
    if authority not in REGISTRATION_AUTHORITY_CODES:
        allowed = ", ".join(REGISTRATION_AUTHORITY_CODES)
        raise InvalidUSCC(
            "registration_authority",
            f"registration authority code (position 1) is {authority!r} "
            f"but GB 32100-2015 requires one of {allowed}",
        )

    organisation_type = normalised[1]
    if organisation_type == "0":
        raise InvalidUSCC(
            "organisation_type",
            f"organisation type code (position 2) is {organisation_type!r} "
            "but GB 32100-2015 requires 1-9 or a letter A-Y "
            "(except I, O, S, V)",
        )

    division = normalised[2:8]
    if not all(ch in ADMIN_DIVISION_DIGITS for ch in division):
        raise InvalidUSCC(
            "admin_division",
            f"administrative division code (positions 3-8) is {division!r} "
            "but GB 32100-2015 requires six digits (GB/T 2260 code)",
        )

    expected = _compute_check_character(normalised[:17])
    actual = normalised[17]
    if actual != expected:
        raise InvalidUSCC(
            "check_character",
            f"check character is {actual!r} but GB 32100-2015 requires {expected!r}",
        )

    return normalised
