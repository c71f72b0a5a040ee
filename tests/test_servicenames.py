"""The one service-name normaliser: every spelling of a service reads the same, and only the same."""

from __future__ import annotations

import re

import pytest

from app import servicenames
from app.servicenames import ServiceName

FQDN = "checkout.shop.svc.cluster.local"


@pytest.mark.parametrize(
    ("spelling", "parsed"),
    [
        ("checkout", ServiceName("checkout")),
        ("checkout.shop", ServiceName("checkout", "shop")),
        (FQDN, ServiceName("checkout", "shop")),
        ("checkout.shop.svc", ServiceName("checkout", "shop")),
        ("checkout.shop.svc.corp.example", ServiceName("checkout", "shop")),
        (" checkout.shop ", ServiceName("checkout", "shop")),
        (".checkout", ServiceName(".checkout")),
        ("checkout.", ServiceName("checkout.")),
    ],
)
def test_every_spelling_reads_as_name_and_namespace(spelling: str, parsed: ServiceName) -> None:
    assert servicenames.parse(spelling) == parsed


def test_an_explicit_namespace_wins_over_the_spelling() -> None:
    assert servicenames.parse("checkout", "shop") == ServiceName("checkout", "shop")
    assert servicenames.parse(FQDN, "other") == ServiceName("checkout", "other")
    assert servicenames.parse("checkout", "") == ServiceName("checkout")


def test_the_canonical_key_is_name_dot_namespace() -> None:
    assert servicenames.key(FQDN) == "checkout.shop"
    assert servicenames.key("checkout.shop") == "checkout.shop"
    assert servicenames.key("checkout") == "checkout"


@pytest.mark.parametrize("wanted", ["checkout", "checkout.shop", FQDN, "checkout.shop.svc"])
@pytest.mark.parametrize("service", ["checkout", "checkout.shop", FQDN])
def test_the_three_forms_match_each_other(wanted: str, service: str) -> None:
    assert servicenames.matches(wanted, service)


@pytest.mark.parametrize(
    ("wanted", "service"),
    [
        ("checkout.other", FQDN),
        ("checkout.other", "checkout.shop"),
        ("check", FQDN),
        ("checkout", "checkoutx.shop"),
        ("shop", FQDN),
        ("pay_ments", "payXments"),
        ("pay%", "payments"),
        ("pay_ments", "pay-ments.shop"),
        ("pay*", "payments"),
    ],
)
def test_nothing_else_matches(wanted: str, service: str) -> None:
    assert not servicenames.matches(wanted, service)


def test_names_with_pattern_characters_match_only_themselves() -> None:
    assert servicenames.matches("pay_ments", "pay_ments.shop.svc.cluster.local")
    assert servicenames.matches("100%", "100%")


def test_matches_any_of_several_filters() -> None:
    assert servicenames.matches_any(FQDN, ["cart", "checkout.shop"])
    assert not servicenames.matches_any(FQDN, ["cart", "checkout.other"])
    assert not servicenames.matches_any(FQDN, [])


def test_spellings_list_what_a_string_store_must_look_for() -> None:
    short = servicenames.spellings("checkout")
    assert short.exact == ("checkout",)
    assert short.prefixes == ("checkout.",)
    for wanted in ("checkout.shop", FQDN):
        forms = servicenames.spellings(wanted)
        assert forms.exact == ("checkout", "checkout.shop")
        assert forms.prefixes == ("checkout.shop.",)


def test_spellings_agree_with_matches() -> None:
    stored = ["checkout", "checkout.shop", FQDN, "checkout.other", "checkout.other.svc", "checkoutx", "cart"]
    for wanted in ("checkout", "checkout.shop", FQDN, "checkout.other"):
        forms = servicenames.spellings(wanted)
        by_strings = {s for s in stored if s in forms.exact or s.startswith(forms.prefixes)}
        assert by_strings == {s for s in stored if servicenames.matches(wanted, s)}


def test_a_page_name_picks_one_service_or_none() -> None:
    entities = [FQDN, "checkout.other.svc.cluster.local", "cart.shop.svc.cluster.local"]
    assert servicenames.unique_match("checkout.shop", entities) == FQDN
    assert servicenames.unique_match(FQDN, entities) == FQDN
    assert servicenames.unique_match("cart", entities) == "cart.shop.svc.cluster.local"
    assert servicenames.unique_match("checkout", entities) is None  # two namespaces have one
    assert servicenames.unique_match("missing", entities) is None
    assert servicenames.unique_match("checkout", ["checkout", FQDN]) == "checkout"


@pytest.mark.parametrize(
    ("typed", "parsed"),
    [
        ("checkout", ServiceName("checkout")),
        (" checkout.shop ", ServiceName("checkout", "shop")),
        (FQDN, ServiceName("checkout", "shop")),
        ("pay_ments", ServiceName("pay_ments")),  # a label's value, not only a Kubernetes name
        ("100%", ServiceName("100%")),
    ],
)
def test_a_typed_filter_reads_as_a_stored_name_does(typed: str, parsed: ServiceName) -> None:
    assert servicenames.parse_filter(typed) == parsed


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("", "empty"),
        (".shop", "empty part around a dot"),
        ("checkout.", "empty part around a dot"),
        ("checkout..svc", "empty part around a dot"),
        ("checkout.Shop", "namespace 'Shop' is not a Kubernetes name"),
        ("checkout.sh_op", "namespace 'sh_op' is not a Kubernetes name"),
        ("check out", "space or a control character"),
        ("checkout\n.shop", "space or a control character"),
        ("shop/checkout", "write a service in a namespace as 'checkout.shop'"),
        ("x" * 254, "at most 253 characters"),
    ],
)
def test_a_malformed_filter_is_refused_saying_why(typed: str, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        servicenames.parse_filter(typed)


ODD_STORED = [
    "api.Example.com",  # an external host (a ServiceEntry): not a Kubernetes namespace
    "checkout.Shop.svc.cluster.local",
    "checkout..svc.cluster.local",  # a label with an empty namespace
    "frontend/api",
    "My App",
    ".hidden",
    "reviews.bookinfo.svc.cluster.local.",  # an absolute DNS name
    "x" * 300,
]


@pytest.mark.parametrize("stored", ODD_STORED)
def test_a_stored_spelling_is_accepted_back_as_a_filter_and_names_itself(stored: str) -> None:
    """What a store holds (and Panorama offers to pick) reads back as that stored name reads,
    however odd; the same text typed without the store behind it is still refused."""
    with pytest.raises(ValueError, match=r"empty part|not a Kubernetes name|space|namespace as|at most 253"):
        servicenames.parse_filter(stored)
    parsed = servicenames.parse_filter(stored, ODD_STORED)
    assert parsed == servicenames.parse(stored)
    assert servicenames.matches(parsed, stored)
    forms = servicenames.spellings(parsed)
    assert stored in forms.exact or stored.startswith(forms.prefixes)


@pytest.mark.parametrize(
    ("shown", "stored", "parsed"),
    [
        ("api.Example", "api.Example.com", ServiceName("api", "Example")),  # its key, as pages show it
        ("checkout.Shop", "checkout.Shop.svc.cluster.local", ServiceName("checkout", "Shop")),
        ("My App.shop", "My App", ServiceName("My App", "shop")),  # service=My App, namespace=shop
    ],
)
def test_a_stored_name_as_panorama_shows_it_reads_back(shown: str, stored: str, parsed: ServiceName) -> None:
    """The key of a stored spelling, and a stored bare name in a Kubernetes namespace (how pages,
    digests and chat messages show and link such a service) are accepted when the store holds it."""
    with pytest.raises(ValueError, match=r"not a Kubernetes name|space"):
        servicenames.parse_filter(shown)
    found = servicenames.parse_filter(shown, [stored, "cart"])
    assert found == parsed
    assert servicenames.matches(found, stored)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("My App.Shop", "My App"),  # not a Kubernetes namespace
        ("My Ap.shop", "My App"),
        ("api.Example.co", "api.Example.com"),
        ("My App.shop", "My App.other"),  # only a bare name takes a namespace
    ],
)
def test_a_stored_name_does_not_let_other_odd_names_through(typed: str, stored: str) -> None:
    with pytest.raises(ValueError, match=r"not a Kubernetes name|space"):
        servicenames.parse_filter(typed, [stored])


def test_a_known_spelling_does_not_let_its_neighbours_through() -> None:
    with pytest.raises(ValueError, match="empty part around a dot"):
        servicenames.parse_filter("checkout..svc", ["checkout..svc.cluster.local"])


@pytest.mark.parametrize(
    ("pattern", "matched"),
    [
        (r"checkout\.shop", ["checkout.shop", FQDN]),
        (r"checkout", ["checkout"]),  # the short name: its namespace is unknown
        (r"checkout(\..*)?", ["checkout", "checkout.shop", FQDN, "checkout.other.svc.cluster.local"]),
        (r".*\.shop", ["checkout.shop", FQDN]),
    ],
)
def test_a_regex_matches_the_canonical_key_in_full(pattern: str, matched: list[str]) -> None:
    compiled = re.compile(pattern)
    spellings = ["checkout", "checkout.shop", FQDN, "checkout.other.svc.cluster.local"]
    assert [s for s in spellings if servicenames.pattern_matches(compiled, s)] == matched
    assert servicenames.pattern_matches(compiled, ServiceName("checkout", "shop")) == (
        "checkout.shop" in matched
    )


@pytest.mark.parametrize(
    ("pattern", "write"),
    [
        (r"reviews\.bookinfo\.svc\.cluster\.local", r"reviews\.bookinfo"),
        (r".*\.svc\..*", r".*\..*"),
        (r"(a\.x\.svc|b\.y\.svc)$", r"(a\.x|b\.y)$"),
    ],
)
def test_a_regex_spelling_the_fqdn_is_refused_naming_the_one_to_write(pattern: str, write: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"write '{write}'")):
        servicenames.check_pattern(pattern)


@pytest.mark.parametrize("pattern", [r"checkout\.shop", r"x\.svc", r"(a\.b|x\.svc)", r".*svc.*", r"x\.svc-a"])
def test_a_regex_on_name_and_namespace_passes_the_check(pattern: str) -> None:
    servicenames.check_pattern(pattern)  # the namespace may be called svc


@pytest.mark.parametrize(
    ("text", "spelled"),
    [
        ("shop/payments", "payments.shop"),
        (" shop/payments ", "payments.shop"),
        ("payments", None),
        ("payments.shop", None),
        ("/payments", None),
        ("shop/", None),
        ("a/b/c", None),
    ],
)
def test_kubectl_namespace_slash_name_reads_as_name_dot_namespace(text: str, spelled: str | None) -> None:
    assert servicenames.kubectl_spelled(text) == spelled
    if spelled is not None:  # the filter refuses the form, naming the same spelling
        with pytest.raises(servicenames.InvalidServiceName, match=re.escape(repr(spelled))):
            servicenames.parse_filter(text)
