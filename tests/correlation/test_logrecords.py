"""Reading log documents however their fields were stored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.correlation.logrecords import first_text, lookup, parse_timestamp

NESTED = {"kubernetes": {"labels": {"app": "checkout"}, "namespace_name": "shop"}}
DOTTED = {"kubernetes.labels.app": "checkout", "kubernetes.namespace_name": "shop"}
MIXED = {"kubernetes": {"labels.app": "checkout"}, "kubernetes.namespace_name": "shop"}
LABELS = {"kubernetes": {"labels": {"app.kubernetes.io/name": "cart", "app": "cart-legacy"}}}


@pytest.mark.parametrize("source", [NESTED, DOTTED, MIXED])
def test_a_path_is_found_nested_dotted_or_mixed(source: dict[str, object]) -> None:
    assert lookup(source, "kubernetes.labels.app") == "checkout"
    assert lookup(source, "kubernetes.namespace_name") == "shop"
    assert lookup(source, "kubernetes.pod_name") is None


def test_label_keys_with_dots_and_lists() -> None:
    assert lookup(LABELS, "kubernetes.labels.app.kubernetes.io/name") == "cart"
    assert lookup(LABELS, "kubernetes.labels.app") == "cart-legacy"
    assert lookup({"tags": [{"k": "a"}, {"k": "b", "v": 1}]}, "tags.v") == 1
    assert first_text({"level": ["", "WARN"]}, ["severity", "level"]) == "WARN"
    assert first_text({"ok": True, "n": 50}, ["ok"]) == "true"
    assert first_text({"n": 50}, ["n"]) == "50"
    assert first_text({"o": {"x": 1}}, ["o"]) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-20T10:00:00.123456789Z", datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-20T18:00:00.5+08:00", datetime(2026, 11, 20, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-20T10:00:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),  # zoneless dates are UTC
        (1795168800000, datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("yesterday", None),
        (True, None),
        (None, None),
    ],
)
def test_timestamps_as_fluent_bit_and_loggers_write_them(raw: object, expected: datetime | None) -> None:
    assert parse_timestamp(raw) == expected
