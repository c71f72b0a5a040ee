"""Trace ids as people paste them and as logs write them."""

from __future__ import annotations

import pytest

from app.correlation.config import DEFAULT_TRACE_ID_PATTERNS, CorrelationSettings
from app.correlation.ids import IdExtractor, TraceIdError, glued_keys, normalise_span_id, parse_trace_id

W3C = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
SHORT = "0af7651916cd43dd"  # a 64-bit id with a leading zero


@pytest.mark.parametrize(
    "pasted",
    [
        W3C,
        W3C.upper(),
        f"0x{W3C}",
        f"  {W3C}\n",
        f"00-{W3C}-{SPAN}-01",
        f"traceparent: 00-{W3C}-{SPAN}-01",
        f"{W3C}:{SPAN}:0:1",
        f"uber-trace-id: {W3C}%3A{SPAN}%3A0%3A1",
        f"{W3C}-{SPAN}-1",
        f"b3: {W3C}-{SPAN}-d-{SPAN}",
        f"{W3C}-{SPAN}",
    ],
)
def test_every_pasted_form_gives_the_canonical_id(pasted: str) -> None:
    assert parse_trace_id(pasted).hex == W3C


@pytest.mark.parametrize(
    "pasted", [SHORT, SHORT.upper(), SHORT.lstrip("0"), "0" * 16 + SHORT, f"{SHORT.lstrip('0')}:{SPAN}:0:1"]
)
def test_64_bit_ids_in_any_width(pasted: str) -> None:
    parsed = parse_trace_id(pasted)
    assert parsed.hex == "0" * 16 + SHORT
    assert parsed.is_64_bit
    assert parsed.forms == ("0" * 16 + SHORT, SHORT, SHORT.lstrip("0"))


def test_a_128_bit_id_is_searched_as_written_and_without_leading_zeros() -> None:
    assert parse_trace_id(W3C).forms == (W3C,)
    padded = "00a1" + W3C[4:]
    assert parse_trace_id(padded).forms == (padded, padded.lstrip("0"))


def test_header_values_keep_their_span_id() -> None:
    assert parse_trace_id(f"00-{W3C}-{SPAN}-01").span_id == SPAN
    assert parse_trace_id(f"{W3C}:{SPAN[2:]}:0:1").span_id == SPAN
    assert parse_trace_id(W3C).span_id is None


@pytest.mark.parametrize(
    ("pasted", "why"),
    [
        ("", "empty"),
        ("not-a-trace", "accepted forms"),
        ("g" * 32, "accepted forms"),
        ("a" * 33, "33 hex digits"),
        ("0" * 32, "all-zero"),
        (f"ff-{W3C}-{SPAN}-01", "version"),
        (f"00-{W3C}-{SPAN}-01-extra", "exactly 4 parts"),
        (f"00-{W3C[:30]}-{SPAN}-01", "32-hex trace id"),
        (f"{W3C}:{SPAN}:0", "4"),
        (f"{W3C}-{SPAN}-x", "b3"),
    ],
)
def test_anything_else_is_refused_with_the_accepted_forms(pasted: str, why: str) -> None:
    with pytest.raises(TraceIdError, match=why) as caught:
        parse_trace_id(pasted)
    message = str(caught.value)
    assert "traceparent" in message or "all-zero" in message or "version" in message or "parts" in message


def test_span_ids_are_normalised() -> None:
    assert normalise_span_id(SPAN.upper()) == SPAN
    assert normalise_span_id("f067aa0ba902b7") == SPAN
    assert normalise_span_id("0" * 16) is None
    assert normalise_span_id("x" * 16) is None
    assert normalise_span_id("a" * 17) is None


@pytest.mark.parametrize(
    ("message", "trace_id", "span_id"),
    [
        (f"GET /pay 200 traceparent=00-{W3C}-{SPAN}-01 took 3ms", W3C, SPAN),
        (f"uber-trace-id: {SHORT.lstrip('0')}:{SPAN}:0:1 charge ok", "0" * 16 + SHORT, SPAN),
        (f"b3={W3C}-{SPAN}-1", W3C, SPAN),
        (f"level=info trace_id={W3C.upper()} msg=done", W3C, None),
        (f'{{"msg": "done", "traceId": "{W3C}"}}', W3C, None),
        (f"[trace.id: {SHORT}] done", "0" * 16 + SHORT, None),
        (f"X-B3-TraceId: {SHORT}", "0" * 16 + SHORT, None),
    ],
)
def test_ids_are_found_in_message_text(message: str, trace_id: str, span_id: str | None) -> None:
    found = IdExtractor(CorrelationSettings().trace_id_patterns).find(message)
    assert found is not None
    assert (found.trace_id, found.span_id) == (trace_id, span_id)


@pytest.mark.parametrize(
    "message",
    [
        "connected to 10.0.0.1:8080 at 12:30:45",
        "trace_id=null",
        f"trace_id={W3C[:8]}-{W3C[8:12]}-rest",  # a UUID is not a hex trace id
        "trace_id=" + "0" * 32,
        "no ids here at all",
    ],
)
def test_no_id_is_made_up(message: str) -> None:
    assert IdExtractor(CorrelationSettings().trace_id_patterns).find(message) is None


def test_glued_keys_are_those_the_configured_patterns_find_an_id_after() -> None:
    """`<key>:<id>` is one token when the key ends with a letter and the id starts with one; the words
    to look for are the keys' last words, only for keys some configured pattern accepts."""
    assert glued_keys(tuple(DEFAULT_TRACE_ID_PATTERNS)) == ("trace_id", "traceid", "trace.id", "id")
    traceparent_only = (DEFAULT_TRACE_ID_PATTERNS[0],)
    assert glued_keys(traceparent_only) == ()
    ecs_only = (r"\btrace\.id[:=](?P<trace_id>[0-9a-f]{32})",)
    assert glued_keys(ecs_only) == ("trace.id",)
