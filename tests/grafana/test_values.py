"""Reading back what Grafana interpolated: multi-value variables in every form, ad hoc filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.grafana.annotations import Incident, incident_frame
from app.grafana.entities import namespace_of
from app.grafana.errors import InvalidQuery
from app.grafana.values import ALL, parse_filters, scalar, selection
from tests.grafana.frames import annotation_events, to_data_frame
from tests.grafana.support import CHECKOUT, PAYMENTS, SEARCH, regex

KEYS = ("namespace", "service")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (regex(CHECKOUT), [CHECKOUT]),  # builder mode, one value: regex-escaped
        (regex(CHECKOUT, PAYMENTS), [CHECKOUT, PAYMENTS]),  # builder mode, several: (a|b)
        ([CHECKOUT, PAYMENTS], [CHECKOUT, PAYMENTS]),  # code mode, json format
        (f'["{CHECKOUT}","{PAYMENTS}"]', [CHECKOUT, PAYMENTS]),  # a json list left as text
        ([regex(CHECKOUT, PAYMENTS)], [CHECKOUT, PAYMENTS]),  # builder multi-select: items interpolated
        (CHECKOUT, [CHECKOUT]),  # a plain name
        (f"{CHECKOUT}|x", [f"{CHECKOUT}|x"]),  # not a group: a name with a bar
        (regex("a|b", "c(d)"), ["a|b", "c(d)"]),  # escaped bars and parentheses inside values
        ([CHECKOUT, CHECKOUT], [CHECKOUT]),
        (42, ["42"]),
    ],
)
def test_selection_reads_every_form(raw: object, expected: list[str]) -> None:
    assert selection(raw, field="payload.entity") == expected


@pytest.mark.parametrize("raw", ["$__all", "__all", "*", ".*", ["$__all"], [CHECKOUT, "$__all"]])
def test_all_in_any_form(raw: object) -> None:
    assert selection(raw, field="payload.entity") is ALL


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("$service", "not interpolated"),
        ("${service}", "not interpolated"),
        ("[oops", "not one"),
        ({"a": 1}, "must be a string"),
        ([], "is empty"),
        ("()", "is empty"),
    ],
)
def test_selection_errors_name_the_field(raw: object, message: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        selection(raw, field="payload.entity")
    assert "payload.entity" in caught.value.message
    assert message in caught.value.message


def test_scalar_values() -> None:
    assert scalar("day", field="g") == "day"
    assert scalar(["week"], field="g") == "week"
    assert scalar(None, field="g") is None
    assert scalar("", field="g") is None
    with pytest.raises(InvalidQuery):
        scalar(["day", "week"], field="g")
    with pytest.raises(InvalidQuery):
        scalar("$granularity", field="g")


def test_filters_match_like_prometheus_matchers() -> None:
    filters = parse_filters(
        [
            {"key": "namespace", "operator": "=", "value": "shop"},
            {"key": "service", "operator": "=~", "value": "(checkout|payments)\\..*"},
            {"key": "service", "operator": "!~", "value": "pay.*"},
            {"key": "service", "operator": "!=|", "value": "", "values": ["x", "y"]},
        ],
        KEYS,
    )
    equal, matches, not_matches, none_of = filters
    assert [equal.matches("shop"), equal.matches("shopping"), equal.matches(None)] == [True, False, False]
    # anchored at both ends, as Prometheus does
    assert [matches.matches(CHECKOUT), matches.matches(PAYMENTS), matches.matches(SEARCH)] == [
        True,
        True,
        False,
    ]
    assert [not_matches.matches(PAYMENTS), not_matches.matches(CHECKOUT)] == [False, True]
    assert [none_of.matches(CHECKOUT), none_of.matches("x")] == [True, False]
    one_of = parse_filters([{"key": "service", "operator": "=|", "values": [CHECKOUT]}], KEYS)[0]
    assert [one_of.matches(CHECKOUT), one_of.matches(PAYMENTS)] == [True, False]
    [other] = parse_filters([{"key": "namespace", "operator": "!=", "value": "a"}], KEYS)
    assert other.matches(None)  # a service outside any namespace is not in namespace a


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"key": "pod", "operator": "=", "value": "x"}, "key 'pod' is not one of namespace, service"),
        ({"key": "service", "operator": ">", "value": "x"}, "operator '>'"),
        ({"key": "service", "operator": "=~", "value": "(a+)+$"}, "exponential"),
        ({"key": "service", "operator": "=~", "value": "(a|aa)*"}, "exponential"),
        ({"key": "service", "operator": "=~", "value": "x" * 300}, "longer than"),
        ({"key": "service", "operator": "=~", "value": "(unclosed"}, "not a regular expression"),
        ("service=x", "must be an object"),
    ],
)
def test_bad_filters_are_refused(item: object, message: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_filters([item], KEYS)
    assert caught.value.message.startswith("filters[0]")
    assert message in caught.value.message


def test_service_filters_match_any_spelling_of_the_service() -> None:
    """``checkout`` is that service in every namespace, ``checkout.shop`` in ``shop`` only, whether
    a figure is stored under its FQDN, ``name.namespace`` or short name (:mod:`app.servicenames`)."""
    stored = [CHECKOUT, "checkout.shop", "checkout", "checkout.other.svc.cluster.local", PAYMENTS]

    def passing(operator: str, value: str, values: list[str] | None = None) -> list[str]:
        item = {"key": "service", "operator": operator, "value": value, "values": values}
        [found] = parse_filters([item], KEYS)
        return [name for name in stored if found.matches(name)]

    in_shop = [CHECKOUT, "checkout.shop", "checkout"]  # a short name may be in any namespace
    assert passing("=", "checkout.shop") == in_shop
    assert passing("=", CHECKOUT) == in_shop
    assert passing("=", "checkout") == stored[:4]
    assert passing("!=", "checkout.shop") == ["checkout.other.svc.cluster.local", PAYMENTS]
    assert passing("!=", "checkout") == [PAYMENTS]
    assert passing("=|", "", ["checkout.other", "payments"]) == stored[2:]
    assert passing("!=|", "", ["checkout.other", "payments"]) == [CHECKOUT, "checkout.shop"]
    [missing] = parse_filters([{"key": "service", "operator": "!=", "value": "checkout"}], KEYS)
    assert missing.matches(None)


def test_service_regexes_match_the_canonical_key() -> None:
    """A regex sees ``name.namespace`` (the name alone when the spelling has no namespace), never
    the stored FQDN."""
    stored = [CHECKOUT, "checkout", "checkout.other.svc.cluster.local", SEARCH]

    def passing(operator: str, value: str) -> list[str]:
        [found] = parse_filters([{"key": "service", "operator": operator, "value": value}], KEYS)
        return [name for name in stored if found.matches(name)]

    assert passing("=~", "checkout\\.shop") == [CHECKOUT]
    assert passing("=~", ".*\\.(shop|catalog)") == [CHECKOUT, SEARCH]
    assert passing("=~", "checkout(\\..*)?") == stored[:3]
    assert passing("!~", "checkout.*") == [SEARCH]


@pytest.mark.parametrize(
    ("pattern", "write"),
    [
        ("reviews\\.bookinfo\\.svc\\.cluster\\.local", "reviews\\.bookinfo"),
        ("reviews.bookinfo.svc.cluster.local", "reviews.bookinfo"),
        (".*\\.svc\\.cluster\\.local", ".*"),
        ("(a\\.x\\.svc\\.cluster\\.local|b\\.y\\.svc\\.corp)", "(a\\.x|b\\.y)"),
        ("reviews\\.bookinfo\\.svc", "reviews\\.bookinfo"),
    ],
)
def test_a_service_regex_written_against_the_fqdn_is_refused_naming_the_one_to_write(
    pattern: str, write: str
) -> None:
    """A regex sees ``name.namespace``, which has one dot and no ``.svc``: one spelling the FQDN
    could never match, so it is a 400 saying what to write rather than an empty panel."""
    for operator in ("=~", "!~"):
        with pytest.raises(InvalidQuery) as caught:
            parse_filters([{"key": "service", "operator": operator, "value": pattern}], KEYS)
        assert caught.value.message == (
            f"filters[0]: '{pattern}': a service regex matches name.namespace (reviews.bookinfo), not the "
            f"FQDN (reviews.bookinfo.svc.cluster.local): write '{write}'"
        )


def test_a_namespace_called_svc_can_still_be_matched() -> None:
    [item] = parse_filters([{"key": "service", "operator": "=~", "value": "(x|y)\\.svc"}], KEYS)
    assert item.matches("x.svc.svc.cluster.local")
    assert not item.matches("x.shop.svc.cluster.local")
    [other] = parse_filters([{"key": "namespace", "operator": "=~", "value": ".*\\.svc\\..*"}], KEYS)
    assert not other.matches("shop")  # only service regexes are read as service names


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"operator": "=", "value": "checkout..svc"}, "'checkout..svc' has an empty part around a dot"),
        ({"operator": "!=", "value": "shop/checkout"}, "write a service in a namespace as 'checkout.shop'"),
        ({"operator": "=", "value": " "}, "a service name is empty"),
        ({"operator": "=", "value": "checkout.Shop"}, "namespace 'Shop' is not a Kubernetes name"),
        ({"operator": "=|", "values": ["checkout", ".shop"]}, "'.shop' has an empty part around a dot"),
    ],
)
def test_a_malformed_service_filter_is_refused_as_the_incident_filter_is(
    item: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_filters([{"key": "service", **item}], KEYS)
    assert caught.value.message.startswith("filters[0]: ")
    assert message in caught.value.message


def test_namespace_filters_are_not_read_as_service_names() -> None:
    [item] = parse_filters([{"key": "namespace", "operator": "=|", "values": ["Shop", ""]}], KEYS)
    assert [item.matches("Shop"), item.matches(""), item.matches("shop")] == [True, True, False]


def test_harmless_groups_are_allowed() -> None:
    [item] = parse_filters([{"key": "service", "operator": "=~", "value": "(checkout|cart)?-v2"}], KEYS)
    assert [item.matches("checkout-v2"), item.matches("-v2"), item.matches("v2")] == [True, True, False]


def test_namespace_of_istio_service_names() -> None:
    assert namespace_of(CHECKOUT) == "shop"
    assert namespace_of("checkout.shop.svc") == "shop"
    assert namespace_of("httpbin.org") is None
    assert namespace_of("unknown") is None


def test_incident_frames_map_onto_annotations() -> None:
    """The frame incidents will fill (none exist yet): what Grafana's annotation mapping reads."""
    opened = datetime(2025, 2, 1, 10, 0, tzinfo=UTC)
    found = [
        Incident(opened.replace(hour=12), None, "Disk full", "node-2", tags=("sev2",)),
        Incident(opened, opened.replace(hour=11), "Checkout 5xx", "error rate 30%", CHECKOUT, ("sev1",)),
    ]
    frame = to_data_frame(incident_frame(found, "Anno"))
    assert frame.ref_id == "Anno"
    assert [f.type for f in frame.fields] == ["time", "time", "string", "string", "other"]
    first, second = annotation_events(frame)
    assert first == {
        "time": int(opened.timestamp() * 1000),
        "timeEnd": int(opened.replace(hour=11).timestamp() * 1000),
        "title": "Checkout 5xx",
        "text": "error rate 30%",
        "tags": [f"service:{CHECKOUT}", "sev1"],
    }
    assert second["timeEnd"] == second["time"]  # still open: a point annotation
    assert annotation_events(to_data_frame(incident_frame([], "Anno"))) == []
