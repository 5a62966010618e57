"""app/url_policy.py: which URLs and addresses verify-by-URL accepts, without any network."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from app.url_policy import AllowList, address_refusal, parse_allow_entry, parse_target
from signing import UrlRefusedError


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "93.184.215.14", "2606:4700::1111", "2002:808:808::", "64:ff9b::808:808"],
)
def test_public_addresses_are_accepted(address: str) -> None:
    assert address_refusal(ip_address(address)) is None


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.1.2.3", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fec0::1", "site-local"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("198.18.0.1", "private"),  # benchmarking
        ("192.0.2.1", "private"),  # documentation
        ("2001:db8::1", "private"),  # documentation
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::ffff:127.0.0.1", "an IPv4 address written in IPv6 form"),
        ("::ffff:8.8.8.8", "an IPv4 address written in IPv6 form"),
        ("::127.0.0.1", "an IPv4 address written in IPv6 form"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "an IPv4 address written in IPv6 form"),  # Teredo
        ("64:ff9b:1::808:808", "an IPv4 address written in IPv6 form"),  # local-use NAT64
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::", "link-local"),  # 6to4 of 169.254.169.254
    ],
)
def test_internal_addresses_are_refused_with_a_reason(address: str, why: str) -> None:
    assert address_refusal(ip_address(address)) == why


def test_a_url_is_split_for_the_request() -> None:
    target = parse_target("HTTPS://Files.Example.COM./a%20b%20c/é.jpg?sig=1&x=é#frag")
    assert (target.scheme, target.host, target.port) == ("https", "files.example.com", 443)
    assert target.request_path == "/a%20b%20c/%C3%A9.jpg?sig=1&x=%C3%A9"
    assert target.origin == "https://files.example.com"
    assert target.literal is None
    v6 = parse_target("http://[0:0::1]:8080")
    assert (v6.host, v6.port, v6.request_path, v6.origin) == ("::1", 8080, "/", "http://[::1]:8080")
    assert v6.literal == ip_address("::1")


def test_a_non_ascii_host_is_sent_in_its_ascii_form() -> None:
    assert parse_target("http://bücher.example/").host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://2130706433/", "host"),
        ("http://0177.0.0.1/", "host"),
        ("http://0x7f.0.0.1/", "host"),
        ("http://127.1/", "host"),
        ("http://1.2.3.04/", "host"),
        ("http://[fe80::1%25eth0]/", "host"),
        ("http://exa_mple..com/", "host"),
        ("http://host:0/", "port"),
        ("http://host:http/", "port"),
        ("HTTP://user@host/", "userinfo"),
        ("data:image/png;base64,AAAA", "scheme"),
        ("http://host/\r\nX-Injected: 1", "malformed"),
    ],
)
def test_odd_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UrlRefusedError) as refused:
        parse_target(url)
    assert refused.value.details["reason"] == reason


def test_a_refusal_never_quotes_the_path_or_query() -> None:
    with pytest.raises(UrlRefusedError) as refused:
        parse_target("http://0177.0.0.1/private/path?token=s3cr3t")
    assert "s3cr3t" not in refused.value.message
    assert "private/path" not in refused.value.message
    assert "0177.0.0.1" in refused.value.message  # what the person typed as host is named


def test_the_allow_list_matches_host_and_port() -> None:
    allow = AllowList(["Files.Test", "[::1]:8080", "127.0.0.1:9000"])
    assert allow.admits(parse_target("http://files.test:1234/"))
    assert allow.admits(parse_target("http://[::1]:8080/"))
    assert allow.admits(parse_target("http://127.0.0.1:9000/"))
    assert not allow.admits(parse_target("http://127.0.0.1:9001/"))
    assert not allow.admits(parse_target("http://[::1]/"))
    assert not allow.admits(parse_target("http://sub.files.test/"))
    assert not AllowList([])


@pytest.mark.parametrize("entry", ["http://host", "host/path", "user@host", "host:port", "", "0177.0.0.1"])
def test_malformed_allow_list_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="host"):
        parse_allow_entry(entry)
    assert parse_allow_entry("host:81") == ("host", 81)  # control


def test_the_allow_list_setting_is_read_and_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from app.settings import Settings

    monkeypatch.setenv(
        "HALLMARK_URL_ALLOWLIST", " Media.Internal.:8080, [0::1] ,127.0.0.1,media.internal:8080"
    )
    assert Settings().url_allowlist == ["media.internal:8080", "[::1]", "127.0.0.1"]
    monkeypatch.setenv("HALLMARK_URL_ALLOWLIST", "https://media.internal/")
    with pytest.raises(ValidationError, match="url_allowlist"):
        Settings()
    monkeypatch.delenv("HALLMARK_URL_ALLOWLIST")
    assert Settings().url_allowlist == []
    assert Settings().url_fetch is False
