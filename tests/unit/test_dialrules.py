"""The dial rules (phones/dialrules.py): toll fraud through the console is refused, ordinary
mainland numbers go out, per role; the refusal names the rule, never the number."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from callcenter.errors import DialRuleError
from callcenter.phones.dialrules import Refusal, check, classify, mask
from callcenter.sip.settings import DialRules

OPEN = DialRules(international=True)  # supervisors and admins may dial +852/+853/+886
DEFAULT = DialRules()


def refused(number: str, role: str = "agent", rules: DialRules = DEFAULT) -> str:
    with pytest.raises(DialRuleError) as caught:
        check(number, role, "click_to_call", rules)
    assert number.lstrip("+") not in caught.value.message or len(number) < 4
    return caught.value.reason


# -- what goes out ---------------------------------------------------------------------------


@pytest.mark.parametrize(("number", "dial"), [
    ("13812345678", "13812345678"),          # mobile
    ("19912345678", "19912345678"),
    ("+8613812345678", "13812345678"),       # +86 taken off
    ("008613812345678", "13812345678"),
    ("01062345678", "01062345678"),          # Beijing: 010 + 8 digits
    ("+861062345678", "01062345678"),        # +86 10 ... is Beijing, not a 1... number
    ("02187654321", "02187654321"),          # Shanghai
    ("075523456789", "075523456789"),        # Shenzhen, 8-digit subscriber
    ("03112345678", "03112345678"),          # 4-digit area code, 7-digit subscriber
    ("+8675523456789", "075523456789"),
    ("4008895500", "4008895500"),            # 400 / 800
    ("8001234567", "8001234567"),
    ("+864008895500", "4008895500"),
])
def test_mainland_numbers_are_dialled(number: str, dial: str) -> None:
    for role in ("agent", "supervisor", "admin"):
        assert check(number, role, "callback") == dial


# -- toll fraud ------------------------------------------------------------------------------


@pytest.mark.parametrize(("number", "reason"), [
    ("0085291234567", Refusal.INTERNATIONAL),   # abroad, switched off
    ("+85291234567", Refusal.INTERNATIONAL),
    ("+12025550123", Refusal.INTERNATIONAL),
    ("0088112345678", Refusal.PREMIUM),         # satellite
    ("+88234567890", Refusal.PREMIUM),          # international networks
    ("+97912345678", Refusal.PREMIUM),          # international premium rate
    ("16812345678", Refusal.PREMIUM),           # 168 voice information (looks like a mobile)
    ("16001234567", Refusal.PREMIUM),           # 160 information services
    ("1259012345", Refusal.PREMIUM),
    ("10612345678", Refusal.PREMIUM),
    ("13491234567", Refusal.PREMIUM),           # satellite
    ("17401234567", Refusal.PREMIUM),
    ("+8616812345678", Refusal.PREMIUM),        # + tricks end in the same rule
    ("008616812345678", Refusal.PREMIUM),
    ("95555", Refusal.SHORT_CODE),              # short service numbers
    ("96123", Refusal.SHORT_CODE),
    ("10086", Refusal.SHORT_CODE),
    ("12345", Refusal.SHORT_CODE),
    ("110", Refusal.LENGTH),
    ("13812345678#", Refusal.SYNTAX),
    ("*8613812345678", Refusal.SYNTAX),
    ("*67#13812345678", Refusal.SYNTAX),
    ("1381234567a", Refusal.SYNTAX),
    ("138 1234 5678", Refusal.SYNTAX),
    ("138-1234-5678", Refusal.SYNTAX),
    ("++8613812345678", Refusal.SYNTAX),
    ("+", Refusal.SYNTAX),
    ("", Refusal.SYNTAX),
    ("13812345678\n", Refusal.SYNTAX),
    ("13812345678&Local/1@hotline", Refusal.SYNTAX),
    ("１３８１２３４５６７８", Refusal.SYNTAX),     # full-width digits
    ("١٣٨١٢٣٤٥٦٧٨", Refusal.SYNTAX),            # Arabic-Indic digits
    ("138123456789", Refusal.NOT_DIALABLE),     # a mobile one digit too long
    ("1381234567", Refusal.NOT_DIALABLE),
    ("1" * 40, Refusal.LENGTH),
    ("0" * 12, Refusal.SYNTAX),                 # leading zeros: 00 + no country code
    ("0" * 3 + "13812345678", Refusal.SYNTAX),
    ("0" + "13812345678", Refusal.NOT_DIALABLE),
    ("000085291234567", Refusal.SYNTAX),        # 00 + a country code starting 0
    ("+0013812345678", Refusal.SYNTAX),
    ("+860213812345", Refusal.SYNTAX),          # +86 then the area code's 0
    ("0013812345678", Refusal.INTERNATIONAL),   # 00 1 ...: North America, not a mobile
    ("01012345678", Refusal.NOT_DIALABLE),      # subscriber numbers never start 0 or 1
    ("01091234567", Refusal.NOT_DIALABLE),
    ("62345678", Refusal.NOT_DIALABLE),         # no area code
    ("01062345678012", Refusal.LENGTH),
])
def test_toll_fraud_attempts_are_refused(number: str, reason: Refusal) -> None:
    for role in ("agent", "supervisor", "admin"):
        assert refused(number, role) == reason


def test_international_is_for_supervisors_and_only_when_switched_on() -> None:
    assert refused("+85291234567", "agent", OPEN) == Refusal.ROLE
    assert check("+85291234567", "supervisor", "transfer", OPEN) == "0085291234567"
    assert check("0085291234567", "admin", "consult", OPEN) == "0085291234567"
    assert check("+886912345678", "supervisor", "transfer", OPEN) == "00886912345678"
    # only the listed countries, never the blocked ones, whatever is listed
    assert refused("+12025550123", "supervisor", OPEN) == Refusal.INTERNATIONAL
    anywhere = DialRules(international=True, countries=["1", "44", "881"])
    assert check("+12025550123", "supervisor", "transfer", anywhere) == "0012025550123"
    assert refused("+881612345678", "supervisor", anywhere) == Refusal.PREMIUM
    # premium stays premium for everyone
    assert refused("16812345678", "admin", OPEN) == Refusal.PREMIUM


def test_per_role_kinds() -> None:
    mobile_only = DialRules(agent=["mobile"])
    assert check("13812345678", "agent", "callback", mobile_only) == "13812345678"
    assert refused("01062345678", "agent", mobile_only) == Refusal.ROLE
    assert refused("4008895500", "agent", mobile_only) == Refusal.ROLE
    assert check("01062345678", "supervisor", "callback", mobile_only) == "01062345678"
    assert refused("13812345678", "visitor") == Refusal.ROLE  # an unknown role dials nothing
    assert refused("13812345678", "") == Refusal.ROLE


def test_the_site_lists_its_own_numbers_and_local_numbers_get_its_area_code() -> None:
    rules = DialRules(allowed_patterns=["95551", "_9555X", "_0755[2-8]XXXXXXX"],
                      local_area_code="021")
    assert check("95551", "agent", "callback", rules) == "95551"
    assert check("95558", "agent", "callback", rules) == "95558"
    assert refused("95566", "agent", rules) == Refusal.SHORT_CODE
    assert check("62345678", "agent", "callback", rules) == "02162345678"
    assert refused("16812345678", "agent",
                   DialRules(allowed_patterns=["_168XXXXXXXX"])) == Refusal.PREMIUM
    assert refused("95551", "agent", DialRules(allowed_patterns=["95551"], agent=["mobile"])) \
        == Refusal.ROLE


@pytest.mark.parametrize("bad", [
    {"allowed_patterns": ["9555.*"]}, {"allowed_patterns": ["_(9)"]},
    {"allowed_patterns": ["95551&Local"]}, {"allowed_patterns": ["9555X"]},
    {"countries": ["0"]}, {"countries": ["+852"]}, {"blocked_prefixes": ["16x"]},
    {"local_area_code": "21"}, {"min_length": 13, "max_length": 12},
    {"agent": ["premium"]},
])
def test_rules_that_make_no_sense_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DialRules.model_validate(bad)


def test_the_log_form_hides_the_number() -> None:
    assert mask("0088112345678") == "0088********* (13 chars)"
    assert mask("+8\n1") == "+8?1 (4 chars)"
    assert "12345678" not in mask("+8613812345678")


# -- properties ------------------------------------------------------------------------------

_any_number = st.text(alphabet="0123456789+*#abcX ,&;@/\n\uff11", max_size=30)


@given(_any_number, st.sampled_from(["agent", "supervisor", "admin"]))
def test_what_goes_out_is_digits_and_checks_again_to_itself(number: str, role: str) -> None:
    try:
        dial = check(number, role, "transfer", OPEN)
    except DialRuleError as exc:
        assert exc.reason in set(Refusal)
        return
    assert dial.isascii() and dial.isdigit()
    assert check(dial, role, "transfer", OPEN) == dial  # stored once checked, checked again
    assert classify(dial, OPEN)[0] in OPEN.kinds(role)


@given(st.text(min_size=1, max_size=30).filter(lambda s: not (s.isascii() and s.isdigit())))
def test_anything_but_ascii_digits_and_one_plus_is_refused(number: str) -> None:
    assume(not (number.startswith("+") and number[1:].isascii() and number[1:].isdigit()))
    with pytest.raises(DialRuleError) as caught:
        check(number, "admin", "transfer", OPEN)
    assert caught.value.reason in (Refusal.SYNTAX, Refusal.LENGTH)


@given(st.sampled_from(["00", "+"]), st.from_regex(r"[1-9][0-9]{6,14}", fullmatch=True))
def test_no_agent_ever_dials_abroad(prefix: str, digits: str) -> None:
    number = prefix + digits
    assume(not digits.startswith("86"))
    for rules in (DialRules(), OPEN, DialRules(international=True, countries=["1", "44", "7"])):
        with pytest.raises(DialRuleError):
            check(number, "agent", "click_to_call", rules)


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_every_mobile_outside_the_blocked_blocks_goes_out(number: str) -> None:
    blocked = any(number.startswith(p) for p in DialRules().blocked_prefixes)
    if blocked:
        with pytest.raises(DialRuleError):
            check(number, "agent", "callback")
    else:
        assert check(number, "agent", "callback") == number
        assert check("+86" + number, "agent", "callback") == number
