"""The stored form of an entity's day: every number back bit for bit, layouts canonical and stable."""

from __future__ import annotations

import math
import struct
from datetime import date

import numpy as np
import pytest

from app.rollups.compute import FamilyValue
from app.rollups.config import FamilyKind
from app.rollups.layouts import (
    day_number,
    day_of,
    decode,
    decode_many,
    encode_day,
    layout_id,
    make_layout,
    parse_layout,
)

SERVICE = "checkout.shop.svc.cluster.local"
AWKWARD = (0.1 + 0.2, 1e-300, 5e-324, 2.0**53 + 2, 86_400 / 86_399.999, 1.7976931348623157e308)
"""Numbers whose last bits a decimal or float32 round trip would change."""


def values() -> list[FamilyValue]:
    return [
        FamilyValue("service", SERVICE, "requests", total=AWKWARD[0]),
        FamilyValue("service", SERVICE, "errors", total=AWKWARD[1]),
        FamilyValue(
            "service", SERVICE, "latency", buckets={0.5: AWKWARD[2], 25.0: AWKWARD[3], math.inf: AWKWARD[4]}
        ),
        FamilyValue("service", SERVICE, "qps", total=AWKWARD[5], samples=288, peak=3.5, low=None),
    ]


def test_every_number_comes_back_bit_for_bit() -> None:
    encoded = encode_day("service", SERVICE, values())
    numbers = decode(encoded.layout, encoded.data)
    slots = encoded.layout.by_family
    assert [s.family for s in encoded.layout.slots] == ["errors", "latency", "qps", "requests"]
    assert numbers[slots["requests"].offset] == AWKWARD[0]
    assert numbers[slots["errors"].offset] == AWKWARD[1]
    latency = slots["latency"]
    assert latency.kind is FamilyKind.HISTOGRAM
    assert latency.bounds == (0.5, 25.0, math.inf)
    assert numbers[latency.offset : latency.offset + 3].tolist() == [AWKWARD[2], AWKWARD[3], AWKWARD[4]]
    qps = numbers[slots["qps"].offset : slots["qps"].offset + 4].tolist()
    assert qps[:3] == [AWKWARD[5], 288.0, 3.5]
    assert math.isnan(qps[3])  # a number the day does not have
    raw = struct.unpack(f"<{len(numbers)}d", encoded.data)  # little-endian IEEE 754, whatever the platform
    assert [struct.pack("<d", x) for x in raw] == [struct.pack("<d", x) for x in numbers.tolist()]
    assert len(encoded.data) == 8 * (1 + 3 + 4 + 1)


def test_the_layout_does_not_depend_on_the_order_values_come_in() -> None:
    one = encode_day("service", SERVICE, values())
    other = encode_day("service", SERVICE, list(reversed(values())))
    assert one.layout.spec == other.layout.spec
    assert one.data == other.data
    assert one.layout.id == layout_id(one.layout.spec) == other.layout.id
    assert 0 < one.layout.id < 2**63  # fits PostgreSQL's bigint
    assert parse_layout(one.layout.spec) == one.layout
    assert '"+Inf"' in one.layout.spec  # the spec is JSON: +Inf as Prometheus writes it


def test_bounds_given_as_integers_make_the_same_layout_as_floats() -> None:
    whole = make_layout([("x", FamilyKind.HISTOGRAM, [1, 10, math.inf])])
    assert whole == make_layout([("x", FamilyKind.HISTOGRAM, [1.0, 10.0, math.inf])])
    assert parse_layout(whole.spec) == whole


def test_kinds_are_told_apart_and_bounds_are_part_of_the_layout() -> None:
    counter = make_layout([("x", FamilyKind.COUNTER, [])])
    gauge = make_layout([("x", FamilyKind.GAUGE, [])])
    fine = make_layout([("x", FamilyKind.HISTOGRAM, [1.0, math.inf])])
    coarse = make_layout([("x", FamilyKind.HISTOGRAM, [10.0, math.inf])])
    assert len({counter.id, gauge.id, fine.id, coarse.id}) == 4
    assert (counter.width, gauge.width, fine.width) == (1, 4, 2)


def test_a_family_given_twice_for_one_day_is_refused() -> None:
    twice = [FamilyValue("service", SERVICE, "requests", total=1.0)] * 2
    with pytest.raises(ValueError, match="'requests' given twice"):
        encode_day("service", SERVICE, twice)


def test_many_days_decode_as_one_matrix() -> None:
    days = [
        encode_day("service", SERVICE, [FamilyValue("service", SERVICE, "requests", total=float(i))])
        for i in range(5)
    ]
    matrix = decode_many(days[0].layout, [d.data for d in days])
    assert matrix.shape == (5, 1)
    assert matrix[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="do not all have"):
        decode_many(days[0].layout, [days[0].data, days[0].data[:-1]])


def test_day_numbers_count_from_1970() -> None:
    assert day_number(date(1970, 1, 1)) == 0
    assert day_of(day_number(date(2026, 3, 29))) == date(2026, 3, 29)
    assert np.int64(day_number(date(2026, 1, 1))).astype("datetime64[D]") == np.datetime64("2026-01-01")
