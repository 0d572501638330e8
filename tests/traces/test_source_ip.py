"""``is_ip_address`` (inet_pton) must accept exactly what ``ipaddress.ip_address`` accepted before it."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from opencts.traces.model import TraceIn, is_ip_address


def by_ipaddress(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


CURATED = [
    # IPv4
    "0.0.0.0",
    "1.2.3.4",
    "255.255.255.255",
    "256.1.1.1",
    "1.2.3",
    "1.2.3.4.5",
    "01.2.3.4",
    "1.2.3.04",
    "1.2.3.00",
    "1.2.3.0",
    "0x1.2.3.4",
    "1..2.3",
    "1.2.3.",
    ".1.2.3",
    "1.2.3.4 ",
    " 1.2.3.4",
    "1.2.3.4\n",
    "1.2.3.4\x00",
    "1.2.3.4/24",
    "1.2.3.4%eth0",
    "١.٢.٣.٤",  # Arabic-Indic digits: not ASCII
    "１.2.3.4",  # a full-width digit
    "1.2.3.1234",
    "",
    " ",
    "localhost",
    # IPv6
    "::",
    ":::",
    "::1",
    "1::",
    "1::2",
    "2001:db8::1",
    "2001:DB8::1",
    "2001:0db8:0000:0000:0000:0000:0000:0001",
    "2001:db8:0:0:0:0:0:1",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7::",
    "::2:3:4:5:6:7:8",
    "1::3:4:5:6:7:8",
    "1::2:3:4:5:6:7:8",
    "1:2:3:4::5:6:7:8",
    "1::2::3",
    ":1::2",
    "1::2:",
    ":1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:8:",
    "12345::1",
    "g::1",
    "00000::1",
    "0000::1",
    "::ffff:1.2.3.4",
    "::ffff:01.2.3.4",
    "::ffff:256.2.3.4",
    "::ffff:1.2.3",
    "::1.2.3.4",
    "1.2.3.4::",
    "1:2:3:4:5:6:1.2.3.4",
    "1:2:3:4:5:6:7:1.2.3.4",
    "::1:2:3:4:5:6:1.2.3.4",
    "1::1.2.3.4",
    "::ffff:1.2.3.4:1",
    "fe80::1%eth0",
    "fe80::1%",
    "fe80::1%%",
    "fe80::1%a%b",
    "fe80::1%1",
    "fe80::1% ",
    "fe80::1%eth0 ",
    "fe80::1%\x00",
    "::1%x",
    "%eth0",
    "::%eth0",
    "1.2.3.4%a:b",
    "::ffff:1.2.3.4%eth0",
    "2001:db8::1/64",
    " ::1",
    "::1 ",
    "::1\n",
    "[::1]",
    "::\x001",
    "１::1",
    "::ａ",
]


def generated(seed: int = 20261202, count: int = 20_000) -> Iterator[str]:
    """Strings near both grammars: random characters from their alphabet, and broken or whole addresses."""
    rng = random.Random(seed)
    alphabet = "0123456789abcdefABCDEF:.%x :\t\n٣"
    for _ in range(count):
        yield "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 18)))
    for _ in range(count):
        octets = [
            rng.choice([str(rng.randint(0, 300)), f"0{rng.randint(0, 99)}", "", "00", " 1"])
            for _ in range(rng.choice([3, 4, 4, 4, 5]))
        ]
        yield ".".join(octets)

    def hextet() -> str:
        return rng.choice(
            [f"{rng.randint(0, 0xFFFF):x}", f"{rng.randint(0, 0xFFFF):04X}", "0", "00000", "", "g", "12345"]
        )

    for _ in range(count):
        parts = [hextet() for _ in range(rng.randint(1, 9))]
        if rng.random() < 0.5:
            at = rng.randint(0, len(parts))
            parts[at:at] = [""] * rng.choice([1, 1, 2])
        if rng.random() < 0.2:
            parts[-1] = ".".join(str(rng.randint(0, 256)) for _ in range(rng.choice([3, 4, 4])))
        text = ":".join(parts)
        if rng.random() < 0.1:
            text += "%" + rng.choice(["eth0", "", "1", "%", "a%b", " "])
        yield text


@pytest.mark.parametrize("value", CURATED)
def test_curated_strings_get_the_verdict_of_ipaddress(value: str) -> None:
    assert is_ip_address(value) == by_ipaddress(value)


def test_many_generated_strings_get_the_verdict_of_ipaddress() -> None:
    differ = [value for value in generated() if is_ip_address(value) != by_ipaddress(value)]
    assert differ == []


def test_every_place_for_a_double_colon_is_accepted() -> None:
    """'::' standing for each run of one to eight groups, with and without an IPv4 tail for the last two."""
    groups = ["2001", "db8", "0", "0", "1", "0", "0", "1"]
    forms = [":".join(groups), "2001:db8:0:0:1:0:0.0.0.1"]
    for start in range(8):
        for end in range(start + 1, 9):
            forms.append(":".join(groups[:start]) + "::" + ":".join(groups[end:]))
            if end <= 6:
                forms.append(":".join(groups[:start]) + "::" + ":".join([*groups[end:6], "0.0.0.1"]))
    assert [form for form in forms if not by_ipaddress(form)] == []
    assert [form for form in forms if not is_ip_address(form)] == []


def test_the_model_words_a_bad_source_ip_as_ipaddress_did() -> None:
    trace = {"trace_name": "a", "trace_type": "ApiCall", "service_type": "ECS", "time": 1_800_000_000_000}
    with pytest.raises(ValidationError) as err:
        TraceIn.model_validate({**trace, "source_ip": "10.0.0.256"})
    assert err.value.errors()[0]["msg"] == (
        "Value error, '10.0.0.256' does not appear to be an IPv4 or IPv6 address"
    )
    for good in ("fe80::1%eth0", "10.0.0.1", ""):
        assert TraceIn.model_validate({**trace, "source_ip": good}).source_ip == good
