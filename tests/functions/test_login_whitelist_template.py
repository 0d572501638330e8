"""The login-whitelist template decides as the best practice means, and each of the sample's bugs is caught.

The table's every row is checked against the template. Each row also names the bugs that get it wrong:
the fixed decision with that one bug put back must disagree with the row, so no bug can come back
unnoticed, and the sample exactly as the seeds print it (all three bugs) disagrees with every row that
names a bug it has alone.
"""

from __future__ import annotations

import pytest

from opencts.functions.templates import TEMPLATES, source
from opencts.functions.templates.login_whitelist import alarm_text, is_listed, parse_whitelist, publish_url

ACTION, ADDRESS, EXACT = "action", "address", "exact"

# (action, source_ip, IP whitelist, alarm expected, bugs that get this row wrong)
CASES: list[tuple[str, str, str, bool, set[str]]] = [
    ("login", "203.0.113.9", "10.0.0.1", True, {ADDRESS}),
    ("login", "10.0.0.1", "10.0.0.1", False, {ADDRESS}),
    ("logout", "203.0.113.9", "10.0.0.1", True, {ACTION, ADDRESS}),
    ("logout", "10.0.0.1", "10.0.0.1", False, {ADDRESS}),
    ("login", "10.0.0.1", "10.0.0.10", True, {EXACT}),
    ("login", "10.0.0.7", "10.0.0.0/24", False, {EXACT}),
    ("logout", "10.0.0.7", "10.0.0.0/24", False, {EXACT}),
    ("login", "10.0.1.7", "10.0.0.0/24", True, {ADDRESS}),
    ("login", "2001:db8::1", "2001:db8::/32", False, {EXACT}),
    ("login", "2001:db8::1", "2001:db8::10", True, {EXACT}),
    ("login", "2001:DB8::1", "2001:db8::1", False, {EXACT}),
    ("login", "::ffff:10.0.0.1", "10.0.0.1", False, {EXACT}),
    ("login", "10.0.0.2", "10.0.0.1, 10.0.0.2", False, {ADDRESS}),
    ("login", "10.0.0.2", "bogus, 10.0.0.2", False, {ADDRESS}),
    ("login", "198.51.100.1", "", True, {ADDRESS}),
    ("login", "", "10.0.0.1", True, {ADDRESS}),
    ("createServer", "203.0.113.9", "10.0.0.1", False, set()),
]


def decide(action: str, source_ip: str, whitelist: str, bugs: set[str]) -> bool:
    """Whether an alarm goes out: the template's rule, with any of the sample's bugs put back."""
    if ACTION in bugs:
        if action not in ("login" or "logout"):  # the sample's line 15
            return False
    elif action not in ("login", "logout"):
        return False
    if EXACT in bugs:
        listed = whitelist.find(source_ip) >= 0 if source_ip else False  # the sample's substring test
    else:
        listed = is_listed(source_ip, parse_whitelist(whitelist)[0])
    return listed if ADDRESS in bugs else not listed  # the sample alarms for listed addresses


def template_alarms(action: str, source_ip: str, whitelist: str) -> str | None:
    return alarm_text({"trace_name": action, "source_ip": source_ip}, whitelist)


@pytest.mark.parametrize(("action", "source_ip", "whitelist", "alarm", "bugs"), CASES)
def test_the_template_decides_each_case(
    action: str, source_ip: str, whitelist: str, alarm: bool, bugs: set[str]
) -> None:
    text = template_alarms(action, source_ip, whitelist)
    assert (text is not None) is alarm
    if text is not None:
        assert text == f"Illegal operation[IP:{source_ip or 'unknown'}, Action:{action}]"
    assert decide(action, source_ip, whitelist, set()) is alarm


@pytest.mark.parametrize("bug", [ACTION, ADDRESS, EXACT])
def test_each_bug_fails_the_rows_that_name_it(bug: str) -> None:
    named = [c for c in CASES if bug in c[4]]
    assert named, f"no row catches the {bug} bug"
    for action, source_ip, whitelist, alarm, _ in named:
        assert decide(action, source_ip, whitelist, {bug}) is not alarm, (action, source_ip, whitelist)


def test_the_sample_as_printed_gets_rows_wrong() -> None:
    sample = {ACTION, ADDRESS, EXACT}
    wrong = [c for c in CASES if decide(c[0], c[1], c[2], sample) is not c[3]]
    # the whitelisted login alarms, the foreign one does not, and logouts are never looked at
    assert ("login", "10.0.0.1", "10.0.0.1", False, {ADDRESS}) in wrong
    assert ("login", "203.0.113.9", "10.0.0.1", True, {ADDRESS}) in wrong
    assert ("logout", "203.0.113.9", "10.0.0.1", True, {ACTION, ADDRESS}) in wrong


def test_whitelist_parsing_reports_invalid_entries() -> None:
    networks, invalid = parse_whitelist(" 10.0.0.1 ,,10.1.0.0/16; 2001:db8::/48, nope, 300.1.1.1")
    assert [str(n) for n in networks] == ["10.0.0.1/32", "10.1.0.0/16", "2001:db8::/48"]
    assert invalid == ["nope", "300.1.1.1"]


def test_publish_url_encodes_the_topic_urn() -> None:
    url = publish_url("http://127.0.0.1:8080/", "eu-de", "p1", "cts_test")
    assert url == "http://127.0.0.1:8080/v2/p1/notifications/topics/urn%3Asmn%3Aeu-de%3Ap1%3Acts_test/publish"


def test_the_template_ships_as_a_plain_handler_file() -> None:
    filename, handler, env = TEMPLATES["login-whitelist"]
    code = source("login-whitelist").decode()
    assert handler == filename.removesuffix(".py") + ".handler"
    assert "def handler(event" in code and "opencts" not in code.split('"""', 2)[2]
    assert env == ("SMN_Topic", "RegionName", "IP")
