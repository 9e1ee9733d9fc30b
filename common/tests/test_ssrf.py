"""SSRF guard: refused targets get a clear reason, at save time and at send time."""

from __future__ import annotations

import pytest

from common.exceptions import ValidationError
from common.models import WebhookEndpoint
from common.services.ssrf import UnsafeTargetError, check_url
from common.services.webhooks import endpoint_create, endpoint_update


@pytest.fixture
def no_allowlist(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254 is a cloud metadata address"),
        ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
        ("http://192.168.0.10/hook", "192.168.0.10 is a private address"),
        ("https://172.16.5.4/hook", "172.16.5.4 is a private address"),
        ("http://[fd12:3456::1]/hook", "fd12:3456::1 is a private address"),
        ("http://127.0.0.1:8000/hook", "127.0.0.1 is a loopback address"),
        ("http://[::1]/hook", "::1 is a loopback address"),
        ("http://169.254.10.1/", "169.254.10.1 is a link-local address"),
        ("http://[fe80::1]/", "fe80::1 is a link-local address"),
        ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
        ("http://240.0.0.1/", "240.0.0.1 is a reserved address"),
        ("http://100.64.0.1/", "100.64.0.1 is not a public address"),
        (
            "http://[::ffff:127.0.0.1]/hook",
            "::ffff:127.0.0.1 is an IPv4-mapped IPv6 address of 127.0.0.1, a loopback address",
        ),
        (
            "http://[::ffff:169.254.169.254]/",
            "::ffff:169.254.169.254 is an IPv4-mapped IPv6 address of 169.254.169.254, "
            "a cloud metadata address",
        ),
        ("http://localhost:8000/hook", "localhost resolves to"),
    ],
)
def test_refused_targets_name_the_reason(no_allowlist, url, reason):
    with pytest.raises(UnsafeTargetError) as exc:
        check_url(url)
    assert str(exc.value).startswith("refused: ")
    assert reason in str(exc.value)


def test_hostname_resolving_to_loopback_is_refused_with_the_address(no_allowlist):
    with pytest.raises(UnsafeTargetError) as exc:
        check_url("http://localhost/hook")
    assert "localhost resolves to" in str(exc.value)
    assert "loopback" in str(exc.value)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http://user:pw@93.184.215.14/", "credentials"),
        ("http:///nohost", "no host"),
        ("http://no-such-host.invalid/", "does not resolve"),
    ],
)
def test_malformed_targets_are_refused(url, reason):
    with pytest.raises(UnsafeTargetError) as exc:
        check_url(url)
    assert reason in str(exc.value)


def test_public_address_and_allowed_loopback_pass(settings):
    check_url("https://93.184.215.14/hook")
    check_url("http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/hook")
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    check_url("http://127.0.0.1:9/hook")
    check_url("http://[::1]:9/hook")
    check_url("http://[::ffff:127.0.0.1]:9/hook")


@pytest.mark.django_db
def test_endpoint_create_refuses_with_a_clear_validation_error(no_allowlist):
    with pytest.raises(ValidationError) as exc:
        endpoint_create(url="http://169.254.169.254/")
    err = exc.value.as_dict()["error"]
    assert err["code"] == "validation_error"
    assert err["message"] == "refused: 169.254.169.254 is a cloud metadata address"
    assert err["details"] == {"field": "url"}
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_endpoint_update_refuses_and_changes_nothing(no_allowlist):
    endpoint = WebhookEndpoint.objects.create(url="https://93.184.215.14/h", secret="whsec_x")
    with pytest.raises(ValidationError):
        endpoint_update(endpoint=endpoint, url="http://10.0.0.1/")
    endpoint.refresh_from_db()
    assert endpoint.url == "https://93.184.215.14/h"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        # 6to4 (2002::/16) carries an IPv4 address in bits 16..48.
        (
            "http://[2002:a9fe:a9fe::1]/",
            "2002:a9fe:a9fe::1 is a 6to4 address of 169.254.169.254, a cloud metadata address",
        ),
        ("http://[2002:a00:1::1]/", "2002:a00:1::1 is a 6to4 address of 10.0.0.1, a private"),
        ("http://[2002:7f00:1::1]/", "2002:7f00:1::1 is a 6to4 address of 127.0.0.1, a loopback"),
        # NAT64, well-known prefix: the IPv4 address is the last 32 bits.
        ("http://[64:ff9b::a9fe:a9fe]/", "a NAT64 address of 169.254.169.254, a cloud metadata"),
        (
            "http://[64:ff9b::c0a8:1]/",
            "64:ff9b::c0a8:1 is a NAT64 address of 192.168.0.1, a private",
        ),
        # Local-use NAT64 is never globally reachable, whatever it embeds.
        ("http://[64:ff9b:1::5db8:d70e]/", "64:ff9b:1::5db8:d70e is a local-use NAT64 address"),
        # Teredo: refused whole (client 127.0.0.1 is stored inverted: 80ff:fffe).
        ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "client 127.0.0.1"),
        ("http://[2001:0:5db8:d70e::1]/", "a Teredo address"),
        ("http://[::ffff:10.0.0.1]/", "IPv4-mapped IPv6 address of 10.0.0.1, a private address"),
        ("http://[::ffff:93.184.215.14]/", "must be written as IPv4"),
        ("http://[::127.0.0.1]/", "::7f00:1 is an IPv4-compatible IPv6 address of 127.0.0.1"),
        ("http://[::a9fe:a9fe]/", "IPv4-compatible IPv6 address of 169.254.169.254"),
        # Non-global IPv6 that some Python releases call global.
        ("http://[2001:db8::1]/", "2001:db8::1 is not a public address"),
        ("http://[3fff::1]/", "3fff::1 is not a public address"),
        ("http://[100::1]/", "100::1 is not a public address"),
        ("http://[2001:2::1]/", "2001:2::1 is not a public address"),
        ("http://[fec0::1]/", "fec0::1 is a site-local address"),
        ("http://[ff02::1]/", "ff02::1 is a multicast address"),
        ("http://[4000::1]/", "4000::1 is not a public address"),
    ],
)
def test_ipv6_forms_that_embed_or_hide_internal_addresses_are_refused(no_allowlist, url, reason):
    with pytest.raises(UnsafeTargetError) as exc:
        check_url(url)
    assert reason in str(exc.value)


def test_embedded_public_ipv4_behind_nat64_or_6to4_passes(no_allowlist):
    # DNS64 answers 64:ff9b::<IPv4> for public hosts on IPv6-only networks.
    check_url("https://[64:ff9b::5db8:d70e]/hook")
    check_url("https://[2002:5db8:d70e::1]/hook")
    check_url("https://[2001:4:112::1]/hook")  # AS112, globally reachable inside 2001::/23


def test_embedded_ipv4_is_judged_against_the_allow_list_as_ipv4(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    check_url("http://[::ffff:127.0.0.1]:9/hook")
    check_url("http://[2002:7f00:1::1]:9/hook")
    check_url("http://[64:ff9b::7f00:1]:9/hook")
    with pytest.raises(UnsafeTargetError, match=r"6to4 address of 169\.254\.169\.254"):
        check_url("http://[2002:a9fe:a9fe::1]/")
