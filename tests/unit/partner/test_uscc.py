"""Requirement R2.1 (partner registration): unified social credit code
validated per GB 32100-2015.

These tests prove that ``services.partner.domain.uscc`` accepts exactly the
structurally valid Unified Social Credit Codes (统一社会信用代码) whose check
character is correct, rejects everything else with the matching ``rule``, and
reports precise, English error messages.

Every code used below is cross-checked against an independent
re-computation of the GB 32100-2015 checksum (``_reference_check_char``) that
shares no code with the implementation.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.partner.domain.uscc import (
    USCC_ALPHABET,
    USCC_WEIGHTS,
    InvalidUSCC,
    check_character,
    make_uscc,
    validate_uscc,
)

# ---------------------------------------------------------------------------
# Independent reference implementation (written straight from the standard).
# ---------------------------------------------------------------------------

_REF_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_REF_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_REF_AUTHORITIES = "123456789ANY"


def _reference_check_char(first17: str) -> str:
    total = 0
    for i in range(17):
        total += _REF_ALPHABET.find(first17[i]) * _REF_WEIGHTS[i]
    c18 = 31 - total % 31
    if c18 == 31:
        c18 = 0
    return _REF_ALPHABET[c18]


# Checksum-valid codes; each one is verified against the reference below.
GOOD_CODES = [
    "91350100M000100Y43",  # well-known real code (given in the brief)
    "91110000600037341L",
    "91110000802100433B",
    "91440300708461136T",
    "91110108MA0000000A",
    "92440300L00000001H",
    "121000004000000010",  # authority 1, check character '0'
    "51110000500000001E",  # authority 5 (民政)
    "N2110000000000000X",  # authority N (农业)
    "A1110000000000000D",  # authority A (中央军委改革和编制办公室)
    "Y1110000000000000Q",  # authority Y (其他)
    "91110000MA00000240",  # check value 31 -> mapped to 0
    "91110000MA0000014Y",  # check value 30 -> 'Y'
]

BAD_CODES: list[tuple[str, str]] = [
    # length
    ("", "length"),
    ("   ", "length"),
    ("91350100M000100Y4", "length"),  # 17 characters
    ("91350100M000100Y433", "length"),  # 19 characters
    ("91350100M000100Y4I3", "length"),  # length wins over charset
    ("9135 0100M000100Y43", "length"),  # inner space counts toward length
    # charset
    ("91350100M000100Y4I", "charset"),  # I not allowed
    ("91350100M000100Y4O", "charset"),  # O not allowed
    ("91350100M000100Y4Z", "charset"),  # Z not allowed
    ("91350100M000100Y4S", "charset"),  # S not allowed
    ("91350100M000100Y4V", "charset"),  # V not allowed
    ("91350100M000-00Y43", "charset"),
    ("9135 100M000100Y43", "charset"),  # inner space
    ("９1350100M000100Y43", "charset"),  # full-width digit
    ("O1350100M000100Y43", "charset"),  # charset before authority
    # registration authority (position 1)
    ("01350100M000100Y43", "registration_authority"),
    ("B1350100M000100Y43", "registration_authority"),
    ("X1350100M000100Y43", "registration_authority"),
    ("B0AAAAAAM000100Y40", "registration_authority"),  # authority first
    # organisation type (position 2)
    ("90350100M000100Y43", "organisation_type"),
    ("90AAAAAAM000100Y40", "organisation_type"),  # type before division
    # administrative division (positions 3-8)
    ("9135010AM000100Y43", "admin_division"),
    ("91A50100M000100Y43", "admin_division"),
    ("9135Y100M000100Y40", "admin_division"),  # division before check
    # check character (position 18)
    ("91350100M000100Y44", "check_character"),
    ("91350100M000100Y4X", "check_character"),
    ("91110000600037341K", "check_character"),
    ("91350100M000100Y34", "check_character"),  # adjacent transposition
]


def test_r2_1_reference_agrees_with_good_table() -> None:
    """R2.1: the fixtures themselves are valid per the independent reference."""
    for code in GOOD_CODES:
        assert len(code) == 18
        assert code[0] in _REF_AUTHORITIES
        assert code[1] != "0"
        assert code[2:8].isdigit()
        assert _reference_check_char(code[:17]) == code[17], code


def test_r2_1_alphabet_and_weights_match_gb_32100() -> None:
    assert USCC_ALPHABET == _REF_ALPHABET
    assert len(USCC_ALPHABET) == 31
    assert not set("IOZSV") & set(USCC_ALPHABET)
    assert USCC_WEIGHTS == _REF_WEIGHTS
    assert tuple(3 ** (i - 1) % 31 for i in range(1, 18)) == USCC_WEIGHTS


def test_r2_1_single_substitution_detection_is_mathematically_sound() -> None:
    """R2.1: justify the substitution property asserted further below.

    Replacing value a by b != a at position i changes the weighted sum by
    (b - a) * W_i.  With 0 < |b - a| < 31, W_i != 0 (mod 31) and 31 prime,
    that product is non-zero mod 31, so the required check value changes.
    Changing the check character itself obviously breaks equality.
    """
    assert all(d in (1, 31) for d in range(1, 32) if 31 % d == 0)  # prime
    assert all(w % 31 != 0 for w in _REF_WEIGHTS)
    for w in _REF_WEIGHTS:
        assert all((delta * w) % 31 != 0 for delta in range(1, 31))


@pytest.mark.parametrize("code", GOOD_CODES)
def test_r2_1_valid_codes_accepted(code: str) -> None:
    assert validate_uscc(code) == code


@pytest.mark.parametrize(("code", "rule"), BAD_CODES)
def test_r2_1_invalid_codes_rejected_with_rule(code: str, rule: str) -> None:
    with pytest.raises(InvalidUSCC) as excinfo:
        validate_uscc(code)
    assert excinfo.value.rule == rule
    assert isinstance(excinfo.value, ValueError)
    assert str(excinfo.value)


def test_r2_1_real_code_91350100M000100Y43_accepted() -> None:
    assert validate_uscc("91350100M000100Y43") == "91350100M000100Y43"
    assert check_character("91350100M000100Y4") == "3"


def test_r2_1_lowercase_accepted_and_normalised() -> None:
    assert validate_uscc("91350100m000100y43") == "91350100M000100Y43"
    assert validate_uscc("91110000600037341l") == "91110000600037341L"
    assert validate_uscc("91110108ma0000000a") == "91110108MA0000000A"


def test_r2_1_lowercase_of_forbidden_letter_still_rejected() -> None:
    with pytest.raises(InvalidUSCC) as excinfo:
        validate_uscc("91350100M000100Y4i")
    assert excinfo.value.rule == "charset"


def test_r2_1_surrounding_whitespace_stripped() -> None:
    assert validate_uscc("  91350100M000100Y43\n") == "91350100M000100Y43"
    assert validate_uscc("\t91350100m000100y43 ") == "91350100M000100Y43"
    # Ideographic (full-width) space, common in Chinese input methods.
    assert validate_uscc("\u300091350100M000100Y43\u3000") == "91350100M000100Y43"


# ---------------------------------------------------------------------------
# Error messages mention what is wrong and what was expected.
# ---------------------------------------------------------------------------


def _message(code: str) -> str:
    with pytest.raises(InvalidUSCC) as excinfo:
        validate_uscc(code)
    return str(excinfo.value)


def test_r2_1_message_length() -> None:
    assert _message("91350100M000100Y4") == "must be 18 characters, got 17"
    assert _message("") == "must be 18 characters, got 0"


def test_r2_1_message_charset() -> None:
    msg = _message("91350100M000100Y4I")
    assert "'I'" in msg
    assert "position 18" in msg
    assert "except I, O, S, V" in msg


def test_r2_1_message_registration_authority() -> None:
    msg = _message("B1350100M000100Y43")
    assert "'B'" in msg
    assert "position 1" in msg
    assert "1, 2, 3, 4, 5, 6, 7, 8, 9, A, N, Y" in msg


def test_r2_1_message_organisation_type() -> None:
    msg = _message("90350100M000100Y43")
    assert "'0'" in msg
    assert "position 2" in msg
    assert "1-9" in msg


def test_r2_1_message_admin_division() -> None:
    msg = _message("9135010AM000100Y43")
    assert "'35010A'" in msg
    assert "positions 3-8" in msg
    assert "six digits" in msg


def test_r2_1_message_check_character() -> None:
    assert _message("91350100M000100Y4X") == "check character is 'X' but GB 32100-2015 requires '3'"


def test_r2_1_invalid_uscc_repr_names_rule() -> None:
    exc = InvalidUSCC("length", "must be 18 characters, got 3")
    assert exc.rule == "length"
    assert "length" in repr(exc)


# ---------------------------------------------------------------------------
# check_character / make_uscc
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", GOOD_CODES)
def test_r2_1_check_character_and_make_uscc(code: str) -> None:
    assert check_character(code[:17]) == code[17]
    assert make_uscc(code[:17]) == code


def test_r2_1_check_value_31_maps_to_zero() -> None:
    # The weighted sum of an all-zero prefix is 0, so C18 = 31 -> '0'.
    assert check_character("0" * 17) == "0"


@pytest.mark.parametrize(
    ("prefix", "rule"),
    [
        ("9135010", "length"),
        ("91350100M000100Y43", "length"),
        ("91350100M000100YI", "charset"),
        ("91350100m000100y4", "charset"),  # no normalisation in helpers
    ],
)
def test_r2_1_check_character_rejects_malformed_prefix(prefix: str, rule: str) -> None:
    with pytest.raises(InvalidUSCC) as excinfo:
        check_character(prefix)
    assert excinfo.value.rule == rule
    with pytest.raises(InvalidUSCC):
        make_uscc(prefix)


# ---------------------------------------------------------------------------
# Property-based tests.
# ---------------------------------------------------------------------------

_alphabet_char = st.sampled_from(USCC_ALPHABET)

valid_prefixes = st.builds(
    lambda authority, org_type, division, org_code: authority + org_type + division + org_code,
    st.sampled_from(_REF_AUTHORITIES),
    st.sampled_from(USCC_ALPHABET[1:]),
    st.text(alphabet="0123456789", min_size=6, max_size=6),
    st.text(alphabet=USCC_ALPHABET, min_size=9, max_size=9),
)


@given(valid_prefixes)
@settings(max_examples=500)
def test_r2_1_property_structured_prefix_plus_check_char_validates(
    prefix: str,
) -> None:
    assert len(prefix) == 17
    code = make_uscc(prefix)
    assert code[17] == _reference_check_char(prefix)
    assert validate_uscc(code) == code
    assert validate_uscc(f"  {code.lower()}\t") == code


@given(
    valid_prefixes,
    st.integers(min_value=0, max_value=17),
    st.integers(min_value=1, max_value=30),
)
@settings(max_examples=1000)
def test_r2_1_property_any_single_substitution_is_rejected(
    prefix: str, position: int, shift: int
) -> None:
    code = make_uscc(prefix)
    original = code[position]
    replacement = USCC_ALPHABET[(USCC_ALPHABET.index(original) + shift) % 31]
    assert replacement != original
    mutated = code[:position] + replacement + code[position + 1 :]
    with pytest.raises(InvalidUSCC):
        validate_uscc(mutated)


@given(valid_prefixes, st.integers(min_value=0, max_value=17))
@settings(max_examples=300)
def test_r2_1_property_non_alphabet_character_is_rejected(prefix: str, position: int) -> None:
    code = make_uscc(prefix)
    for bad in "IOSVZ-#":
        mutated = code[:position] + bad + code[position + 1 :]
        with pytest.raises(InvalidUSCC) as excinfo:
            validate_uscc(mutated)
        assert excinfo.value.rule == "charset"


@pytest.mark.parametrize("code", GOOD_CODES)
def test_r2_1_every_single_substitution_of_good_codes_is_rejected(
    code: str,
) -> None:
    """Exhaustive: all 18 * 30 substitutions of each known-good code."""
    for position in range(18):
        for replacement in USCC_ALPHABET:
            if replacement == code[position]:
                continue
            mutated = code[:position] + replacement + code[position + 1 :]
            with pytest.raises(InvalidUSCC):
                validate_uscc(mutated)
