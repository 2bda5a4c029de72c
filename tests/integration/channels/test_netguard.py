"""Properties of the SSRF guard: every spelling of an internal address is refused."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clarion.services.netguard import BlockedURL, UrlGuard, is_public_address

INTERNAL_V4 = [
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "0.0.0.0/8",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
]


@st.composite
def internal_v4(draw: st.DrawFn) -> ipaddress.IPv4Address:
    net = draw(st.sampled_from(INTERNAL_V4))
    offset = draw(st.integers(0, net.num_addresses - 1))
    return ipaddress.IPv4Address(int(net.network_address) + offset)


def spellings(ip: ipaddress.IPv4Address) -> list[str]:
    n = int(ip)
    a, b, c, d = ip.packed
    return [
        str(ip),
        str(n),
        hex(n),
        f"0{oct(n)[2:]}",
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"{hex(a)}.{b}.{c}.{d}",
        f"[::ffff:{ip}]",
        f"[::ffff:{(n >> 16):x}:{(n & 0xFFFF):x}]",
        f"[64:ff9b::{(n >> 16):x}:{(n & 0xFFFF):x}]",
        f"[2002:{(n >> 16):x}:{(n & 0xFFFF):x}::1]",
    ]


async def no_dns(host: str, port: int) -> list[str]:
    raise OSError("no DNS in this test")


@given(internal_v4())
async def test_every_spelling_of_an_internal_ipv4_is_blocked(ip: ipaddress.IPv4Address) -> None:
    guard = UrlGuard(resolver=no_dns)
    for host in spellings(ip):
        with pytest.raises(BlockedURL):
            await guard.check(f"http://{host}:8080/hook")


@given(st.ip_addresses(v=6))
def test_ipv6_verdict_matches_embedded_ipv4(ip: ipaddress.IPv6Address) -> None:
    if ip.ipv4_mapped is not None and not is_public_address(ip.ipv4_mapped):
        assert not is_public_address(ip)


async def test_public_literal_passes_and_allow_private_lets_internal_through() -> None:
    assert (await UrlGuard(resolver=no_dns).check("https://93.184.216.34/")).address == (
        "93.184.216.34"
    )
    checked = await UrlGuard(allow_private=True, resolver=no_dns).check("http://0x7f.1:9/")
    assert checked.address == "127.0.0.1"


async def test_unresolvable_host_is_blocked() -> None:
    with pytest.raises(BlockedURL, match="cannot resolve"):
        await UrlGuard(resolver=no_dns).check("https://nowhere.test/")


@pytest.mark.parametrize(
    "host", ["localhost", "localhost.", "LOCALHOST", "api.localhost", "api.localhost."]
)
async def test_localhost_names_are_loopback_without_asking_dns(host: str) -> None:
    with pytest.raises(BlockedURL, match="loopback name") as caught:
        await UrlGuard(resolver=no_dns).check(f"http://{host}:8080/hook")
    assert caught.value.problem == "private_address"

    async def loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    allowed = await UrlGuard(allow_private=True, resolver=loopback).check(f"http://{host}:8080/")
    assert allowed.address == "127.0.0.1"


async def test_check_host_applies_the_same_rules_to_bare_hosts() -> None:
    async def dns(host: str, port: int) -> list[str]:
        answers = {"chat.example": ["93.184.216.34"], "inside.example": ["10.0.0.7"]}
        if host not in answers:
            raise OSError(f"NXDOMAIN {host}")
        return answers[host]

    guard = UrlGuard(resolver=dns)
    assert await guard.check_host("chat.example", 443) == "93.184.216.34"
    assert await guard.check_host("[2606:2800:220:1:248:1893:25c8:1946]", 443) == (
        "2606:2800:220:1:248:1893:25c8:1946"
    )
    for host in ("inside.example", "0x7f.1", "[::1]", "localhost", "169.254.169.254"):
        with pytest.raises(BlockedURL) as caught:
            await guard.check_host(host, 80)
        assert caught.value.problem == "private_address"
    with pytest.raises(BlockedURL) as caught:
        await guard.check_host("nowhere.example", 80)
    assert caught.value.problem == "unresolvable"


async def test_problems_are_stable_tokens() -> None:
    guard = UrlGuard(resolver=no_dns)
    for url, problem in [
        ("ftp://example.org/", "scheme"),
        ("http://u:p@93.184.216.34/", "credentials"),
        ("http://10.0.0.1/", "private_address"),
        ("https://nowhere.test/", "unresolvable"),
    ]:
        with pytest.raises(BlockedURL) as caught:
            await guard.check(url)
        assert caught.value.problem == problem, url
