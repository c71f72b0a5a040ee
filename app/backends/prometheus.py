"""Async client of the Prometheus HTTP API (``/api/v1``), typed results, no business logic.

Wire facts this relies on (Prometheus 2.x HTTP API):

- ``/api/v1/query`` and ``/api/v1/query_range`` take POST form bodies, so long
  queries never hit URL length limits; times are epoch seconds (millisecond
  precision), ``step`` and ``timeout`` are seconds.
- The envelope is ``{status, data, errorType, error, warnings}``; sample values
  are strings (``"NaN"``, ``"+Inf"``, ``"-Inf"`` included).
- ``bad_data`` comes with HTTP 400, ``execution`` with 422, ``timeout`` and
  ``canceled`` with 503, ``internal`` with 500.
- A range query is refused when ``(end - start) / step > 11000``; longer ranges
  are split here into chunks evaluated at exactly the timestamps one big query
  would use, and their series merged by label set.
"""

from __future__ import annotations

import gc
import math
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, ClassVar, Literal

import httpx
import orjson

from app.backends.errors import BackendError, BackendErrorKind
from app.backends.http import (
    BackendStatus,
    CallObserver,
    HttpBackend,
    ignore_call,
    response_excerpt,
    timed_probe,
)
from app.backends.promql import validate_label_name
from app.config import PrometheusSettings

MAX_POINTS_PER_SERIES = 11_000
"""Prometheus refuses a range query with more than this many steps per series."""

EVALUATION_MARGIN_S = 1.0
"""How much sooner than the HTTP call Prometheus is told to give up evaluating, so that
its own ``timeout`` answer arrives before the client's timeout fires (and it stops
working for a caller that has gone)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ResultType = Literal["vector", "matrix", "scalar", "string"]
Time = datetime | float


@dataclass(frozen=True)
class Sample:
    """One value of an instant vector."""

    labels: dict[str, str]
    value: float
    timestamp: float


@dataclass(frozen=True)
class Series:
    """One series of a range result: ``(timestamp, value)`` points in time order."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class ValueSeries:
    """One series of a range result, its values only (in time order)."""

    labels: dict[str, str]
    values: list[float]


@dataclass(frozen=True)
class InstantResult:
    """The answer to an instant query; which field is filled depends on ``result_type``.

    ``vector`` fills ``samples``; ``matrix`` (a range selector such as ``x[5m]``)
    fills ``series``; ``scalar`` fills ``scalar``; ``string`` fills ``string``.
    """

    result_type: ResultType
    samples: list[Sample] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    scalar: float | None = None
    string: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RangeResult:
    series: list[Series]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BuildInfo:
    version: str
    revision: str = ""
    branch: str = ""
    build_user: str = ""
    build_date: str = ""
    go_version: str = ""


class _ShapeError(Exception):
    """The answer is JSON but not shaped as the API documents."""


class PrometheusClient(HttpBackend):
    """Speaks to one Prometheus (or a server with the same query API)."""

    name: ClassVar[str] = "prometheus"

    def __init__(
        self,
        settings: PrometheusSettings,
        *,
        observer: CallObserver = ignore_call,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(settings, observer=observer, transport=transport)

    async def query(
        self,
        promql: str,
        *,
        at: Time | None = None,
        timeout: float | None = None,
    ) -> InstantResult:
        """Evaluates ``promql`` at ``at`` (Prometheus's current time when None).

        The HTTP call waits the configured ``timeout_s``; Prometheus is asked to
        stop evaluating a little before that. ``timeout`` (seconds) sets
        Prometheus's evaluation deadline instead (the HTTP call then waits at
        least that long plus a margin).
        """
        form: dict[str, str] = {"query": promql}
        if at is not None:
            form["time"] = _format_ms(to_epoch_ms(at))
        data, warnings = await self._evaluate("api/v1/query", form, timeout)
        try:
            with collector_paused():
                return _instant_result(data, warnings)
        except _ShapeError as exc:
            raise self._shape_error(exc) from None

    async def query_range(
        self,
        promql: str,
        *,
        start: Time,
        end: Time,
        step: float | timedelta,
        timeout: float | None = None,
    ) -> RangeResult:
        """Evaluates ``promql`` at ``start``, ``start + step``, … up to ``end``.

        Ranges of more than 11,000 points per series are split into several
        queries at the same evaluation timestamps; the series come back merged by
        label set, sorted as Prometheus sorts them. ``timeout`` applies to each
        chunk.
        """
        merged: dict[tuple[tuple[str, str], ...], Series] = {}
        warnings: list[str] = []
        async for data in self._range_chunks(promql, start, end, step, timeout, warnings):
            try:
                with collector_paused():
                    chunk = _range_series(data)
            except _ShapeError as exc:
                raise self._shape_error(exc) from None
            _merge_into(merged, chunk)
        ordered = [merged[key] for key in sorted(merged)]
        return RangeResult(ordered, warnings)

    async def query_range_values(
        self,
        promql: str,
        *,
        start: Time,
        end: Time,
        step: float | timedelta,
        timeout: float | None = None,
    ) -> list[ValueSeries]:
        """:meth:`query_range`'s series with their values only, in the same order.

        For callers that aggregate every value of a series (a rolled-up day's gauges: 288,000
        values a day for a thousand services): no ``(timestamp, value)`` tuple is made, the
        strings become floats in one C-level pass. The chunks of a long range never evaluate at
        the same timestamp twice (``split_range``), so a series' values are its chunks' values
        one after the other.
        """
        merged: dict[tuple[tuple[str, str], ...], ValueSeries] = {}
        async for data in self._range_chunks(promql, start, end, step, timeout, []):
            try:
                with collector_paused():
                    for labels, values in _range_values(data):
                        key = tuple(sorted(labels.items()))
                        existing = merged.get(key)
                        if existing is None:
                            merged[key] = ValueSeries(labels, values)
                        else:
                            existing.values.extend(values)
            except _ShapeError as exc:
                raise self._shape_error(exc) from None
        return [merged[key] for key in sorted(merged)]

    async def _range_chunks(
        self,
        promql: str,
        start: Time,
        end: Time,
        step: float | timedelta,
        timeout: float | None,
        warnings: list[str],
    ) -> AsyncIterator[Any]:
        """The ``data`` of each chunk's answer (``split_range``); their warnings into ``warnings``."""
        start_ms, end_ms = to_epoch_ms(start), to_epoch_ms(end)
        step_ms = _step_ms(step)
        if step_ms <= 0:
            raise self.error(
                BackendErrorKind.BAD_QUERY,
                f"the step must be positive (at least 1ms), got {step!r}",
            )
        if end_ms < start_ms:
            raise self.error(
                BackendErrorKind.BAD_QUERY,
                f"the range is reversed: end {_format_ms(end_ms)} is before start {_format_ms(start_ms)}",
            )
        for chunk_start, chunk_end in split_range(start_ms, end_ms, step_ms):
            form = {
                "query": promql,
                "start": _format_ms(chunk_start),
                "end": _format_ms(chunk_end),
                "step": _format_ms(step_ms),
            }
            data, chunk_warnings = await self._evaluate("api/v1/query_range", form, timeout)
            warnings.extend(w for w in chunk_warnings if w not in warnings)
            yield data

    async def series(
        self,
        match: Sequence[str],
        *,
        start: Time | None = None,
        end: Time | None = None,
    ) -> list[dict[str, str]]:
        """The label sets of the series any of the ``match`` selectors select."""
        if isinstance(match, str) or not match:
            raise self.error(BackendErrorKind.BAD_QUERY, "series() needs a non-empty list of selectors")
        form: dict[str, str | list[str]] = {"match[]": list(match)}
        form.update(_time_params(start, end))
        data, _ = await self._call("POST", "api/v1/series", data=form)
        try:
            return [_labels(item) for item in _list(data)]
        except _ShapeError as exc:
            raise self._shape_error(exc) from None

    async def label_values(
        self,
        label: str,
        *,
        match: Sequence[str] | None = None,
        start: Time | None = None,
        end: Time | None = None,
    ) -> list[str]:
        """The values ``label`` takes (optionally only among the series ``match`` selects)."""
        try:
            validate_label_name(label)
        except ValueError as exc:
            raise self.error(BackendErrorKind.BAD_QUERY, str(exc)) from None
        if isinstance(match, str):
            raise self.error(BackendErrorKind.BAD_QUERY, "match must be a list of selectors, not a str")
        params: list[tuple[str, str]] = [("match[]", m) for m in match or ()]
        params.extend(_time_params(start, end))
        data, _ = await self._call("GET", f"api/v1/label/{label}/values", params=params)
        try:
            return [_str(value) for value in _list(data)]
        except _ShapeError as exc:
            raise self._shape_error(exc) from None

    async def buildinfo(self, *, timeout: float | None = None, retries: int | None = None) -> BuildInfo:
        """Version and build of the server (``/api/v1/status/buildinfo``)."""
        data, _ = await self._call("GET", "api/v1/status/buildinfo", timeout=timeout, retries=retries)
        try:
            info = _dict(data)
            return BuildInfo(
                version=_str(info.get("version")),
                revision=str(info.get("revision", "")),
                branch=str(info.get("branch", "")),
                build_user=str(info.get("buildUser", "")),
                build_date=str(info.get("buildDate", "")),
                go_version=str(info.get("goVersion", "")),
            )
        except _ShapeError as exc:
            raise self._shape_error(exc) from None

    async def ready(self, *, timeout: float | None = None) -> bool:
        """Whether ``/-/ready`` says the server is ready (False while it starts up).

        Raises BackendError when there is no answer at all (e.g. UNREACHABLE).
        """
        response = await self.request(
            "GET", "-/ready", timeout=timeout, passthrough=frozenset({503}), retries=0
        )
        return response.status_code == 200

    async def probe(self, timeout_s: float) -> BackendStatus:
        """Readiness for the service's own health endpoint: ready, and which version."""

        async def check() -> str | None:
            if not await self.ready(timeout=timeout_s):
                raise self.error(
                    BackendErrorKind.BAD_RESPONSE,
                    "not ready yet (starting up or replaying its write-ahead log)",
                    status=503,
                )
            return (await self.buildinfo(timeout=timeout_s, retries=0)).version

        return await timed_probe(self.name, self.settings, check, timeout_s=timeout_s)

    def decode_json(self, response: httpx.Response) -> Any:
        """orjson, with the garbage collector paused: a rolled-up day of a thousand services is
        12 MB of answers, decoded in 95 ms of CPU this way, 136 ms by the standard library, and
        about 550 ms by either with the collector running (bench/rollup.py times the whole)."""
        try:
            with collector_paused():
                return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return super().decode_json(response)  # says what came instead

    async def _evaluate(
        self, path: str, form: dict[str, str], timeout: float | None
    ) -> tuple[Any, list[str]]:
        evaluation, wait = self._timeouts(timeout)
        form["timeout"] = _format_ms(max(1, round(evaluation * 1000)))
        return await self._call("POST", path, data=form, timeout=wait)

    def _timeouts(self, timeout: float | None) -> tuple[float, float]:
        """(seconds Prometheus may evaluate, seconds the HTTP call waits)."""
        configured = self.settings.timeout_s
        if timeout is None:
            return max(configured - EVALUATION_MARGIN_S, configured * 0.8), configured
        if isinstance(timeout, bool) or not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        return timeout, max(configured, timeout + EVALUATION_MARGIN_S)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        data: Mapping[str, str | list[str]] | None = None,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> tuple[Any, list[str]]:
        """One API call: returns the envelope's ``data`` and ``warnings``."""
        response = await self.request(
            method, path, params=params, data=data, timeout=timeout, retries=retries
        )
        body = self.decode_json(response)
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise self.error(
                BackendErrorKind.BAD_RESPONSE,
                f"not a Prometheus API answer: {response_excerpt(response)}",
                status=response.status_code,
            )
        if body["status"] == "error":
            raise self._envelope_error(body, response.status_code)
        warnings = body.get("warnings") or []
        if not isinstance(warnings, list):
            warnings = [str(warnings)]
        return body.get("data"), [str(w) for w in warnings]

    def error_for_response(self, response: httpx.Response) -> BackendError:
        """Uses the envelope's ``errorType``/``error`` when Prometheus sent one."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("status") == "error" and "error" in body:
            return self._envelope_error(body, response.status_code)
        status = response.status_code
        if status in (401, 403):
            kind = BackendErrorKind.UNAUTHORIZED
        elif status == 504:
            kind = BackendErrorKind.TIMEOUT
        else:
            kind = BackendErrorKind.BAD_RESPONSE
        return self.error(kind, f"HTTP {status}: {response_excerpt(response)}", status=status)

    def _envelope_error(self, body: Mapping[str, Any], status: int) -> BackendError:
        error_type = str(body.get("errorType", ""))
        text = str(body.get("error", ""))
        if error_type in ("bad_data", "execution") or (not error_type and status in (400, 422)):
            return self.error(BackendErrorKind.BAD_QUERY, text, status=status)
        if error_type == "timeout":
            return self.error(BackendErrorKind.TIMEOUT, text, status=status)
        if status in (401, 403):
            return self.error(BackendErrorKind.UNAUTHORIZED, text, status=status)
        return self.error(
            BackendErrorKind.BAD_RESPONSE,
            f"{error_type or 'error'} (HTTP {status}): {text}",
            status=status,
        )

    def _shape_error(self, exc: _ShapeError) -> BackendError:
        return self.error(BackendErrorKind.BAD_RESPONSE, f"unexpected answer shape: {exc}")


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a large answer becomes Python objects.

    A day of a thousand services is a million new lists and strings; the collector, counting
    allocations, would walk the growing heap again and again while they are made (measured:
    550 ms of CPU for 12 MB of answers instead of 95). Nothing else runs meanwhile (no await
    inside), and none of these objects can form a cycle.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def to_epoch_ms(value: Time) -> int:
    """Epoch milliseconds of a tz-aware datetime or of epoch seconds.

    Naive datetimes are refused: guessing their zone is how day boundaries go wrong.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} has no time zone; "
                "pass an aware datetime (e.g. tzinfo=UTC) or epoch seconds"
            )
        return round((value - _EPOCH) / timedelta(milliseconds=1))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a time must be an aware datetime or epoch seconds, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"a time must be finite, got {value!r}")
    return round(value * 1000)


def split_range(start_ms: int, end_ms: int, step_ms: int) -> list[tuple[int, int]]:
    """Chunks of ``[start_ms, end_ms]`` of at most 11,000 evaluation points each.

    Chunk boundaries fall on the evaluation grid ``start_ms + k * step_ms``, so
    the chunks together evaluate at exactly the timestamps one query would, and
    never twice at the same one.
    """
    if step_ms <= 0 or end_ms < start_ms:
        raise ValueError("split_range needs a positive step and start <= end")
    span = (MAX_POINTS_PER_SERIES - 1) * step_ms
    chunks = []
    chunk_start = start_ms
    while chunk_start <= end_ms:
        chunk_end = min(chunk_start + span, end_ms)
        chunks.append((chunk_start, chunk_end))
        chunk_start += span + step_ms
    return chunks


def _merge_into(merged: dict[tuple[tuple[str, str], ...], Series], chunk: list[Series]) -> None:
    for series in chunk:
        key = tuple(sorted(series.labels.items()))
        existing = merged.get(key)
        if existing is None:
            merged[key] = Series(series.labels, list(series.points))
            continue
        last = existing.points[-1][0] if existing.points else -math.inf
        existing.points.extend(point for point in series.points if point[0] > last)


def _step_ms(step: float | timedelta) -> int:
    seconds = step.total_seconds() if isinstance(step, timedelta) else step
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"step must be seconds or a timedelta, got {type(step).__name__}")
    if not math.isfinite(seconds):
        return 0
    return round(seconds * 1000)


def _format_ms(ms: int) -> str:
    """Milliseconds as the decimal seconds Prometheus parses (``1700000000.250``)."""
    sign = "-" if ms < 0 else ""
    whole, frac = divmod(abs(ms), 1000)
    return f"{sign}{whole}.{frac:03d}"


def _time_params(start: Time | None, end: Time | None) -> list[tuple[str, str]]:
    params = []
    if start is not None:
        params.append(("start", _format_ms(to_epoch_ms(start))))
    if end is not None:
        params.append(("end", _format_ms(to_epoch_ms(end))))
    return params


def _instant_result(data: Any, warnings: list[str]) -> InstantResult:
    body = _dict(data)
    result_type = body.get("resultType")
    result = body.get("result")
    if result_type == "vector":
        return InstantResult("vector", samples=_samples(_list(result)), warnings=warnings)
    if result_type == "matrix":
        return InstantResult("matrix", series=[_series(item) for item in _list(result)], warnings=warnings)
    if result_type == "scalar":
        _, value = _point(result)
        return InstantResult("scalar", scalar=value, warnings=warnings)
    if result_type == "string":
        pair = _list(result)
        if len(pair) != 2:
            raise _ShapeError(f"a string result is [time, text], got {pair!r}")
        return InstantResult("string", string=_str(pair[1]), warnings=warnings)
    raise _ShapeError(f"unknown resultType {result_type!r}")


def _range_series(data: Any) -> list[Series]:
    body = _dict(data)
    if body.get("resultType") != "matrix":
        raise _ShapeError(f"a range query answers a matrix, got {body.get('resultType')!r}")
    return [_series(item) for item in _list(body.get("result"))]


def _range_values(data: Any) -> Iterator[tuple[dict[str, str], list[float]]]:
    """A range answer's series as (labels, values): the checking parser when anything is off."""
    body = _dict(data)
    if body.get("resultType") != "matrix":
        raise _ShapeError(f"a range query answers a matrix, got {body.get('resultType')!r}")
    for item in _list(body.get("result")):
        try:
            labels, raw = item["metric"], item["values"]
            values = list(map(float, map(_second, raw)))
            well_formed = (
                isinstance(labels, dict)
                and all(isinstance(value, str) for value in labels.values())
                and (not raw or isinstance(raw[0][1], str))  # values are strings on the wire
            )
        except (TypeError, ValueError, KeyError, IndexError):
            well_formed = False
        if not well_formed or item.get("histograms"):
            series = _series(item)  # it raises, saying what is wrong, or it is well formed after all
            labels, values = series.labels, [value for _, value in series.points]
        yield labels, values


_second = itemgetter(1)


def _samples(raw: list[Any]) -> list[Sample]:
    """An instant vector: one comprehension for well-formed answers (a day's histogram of a thousand
    services is 20,000 samples), the checking parser to say what is wrong otherwise."""
    try:
        samples = [Sample(item["metric"], float(item["value"][1]), float(item["value"][0])) for item in raw]
    except (TypeError, ValueError, KeyError, IndexError):
        return [_sample(item) for item in raw]  # it raises, saying what is wrong
    if raw and not (isinstance(raw[0]["value"][1], str) and isinstance(raw[0]["metric"], dict)):
        return [_sample(item) for item in raw]  # values are strings on the wire; check as a whole
    return samples


def _sample(item: Any) -> Sample:
    entry = _dict(item)
    if "value" not in entry:
        raise _native_histogram_or_missing(entry, "value")
    timestamp, value = _point(entry["value"])
    return Sample(_labels(entry.get("metric", {})), value, timestamp)


def _series(item: Any) -> Series:
    entry = _dict(item)
    if entry.get("histograms"):
        raise _native_histogram_or_missing(entry, "values")
    return Series(_labels(entry.get("metric", {})), _points(_list(entry.get("values", []))))


def _points(raw: list[Any]) -> list[tuple[float, float]]:
    """A range series' points: one comprehension for well-formed answers (a day of 5-minute points
    for a thousand services is 288,000 of them), the checking parser to say what is wrong otherwise."""
    try:
        points = [(float(t), float(v)) for t, v in raw]
    except (TypeError, ValueError):
        return [_point(point) for point in raw]  # it raises, saying what is wrong
    if raw and not isinstance(raw[0][1], str):  # values are strings on the wire; check as a whole
        return [_point(point) for point in raw]
    return points


def _native_histogram_or_missing(entry: dict[str, Any], key: str) -> _ShapeError:
    if "histogram" in entry or "histograms" in entry:
        return _ShapeError("native histogram samples are not supported")
    return _ShapeError(f"missing {key!r} in {entry!r}")


def _point(raw: Any) -> tuple[float, float]:
    pair = _list(raw)
    if len(pair) != 2:
        raise _ShapeError(f"a sample is [time, value], got {pair!r}")
    timestamp, value = pair
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise _ShapeError(f"a sample time must be a number, got {timestamp!r}")
    return float(timestamp), _parse_value(value)


def _parse_value(raw: Any) -> float:
    """Sample values are strings: decimal numbers, ``NaN``, ``+Inf`` or ``-Inf``."""
    if not isinstance(raw, str):
        raise _ShapeError(f"a sample value must be a string, got {raw!r}")
    try:
        return float(raw)
    except ValueError:
        raise _ShapeError(f"not a sample value: {raw!r}") from None


def _labels(raw: Any) -> dict[str, str]:
    labels = _dict(raw)
    if not all(isinstance(value, str) for value in labels.values()):
        raise _ShapeError(f"label values must be strings: {labels!r}")
    return labels


def _dict(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _ShapeError(f"expected an object, got {type(raw).__name__}")
    return raw


def _list(raw: Any) -> list[Any]:
    if not isinstance(raw, list):
        raise _ShapeError(f"expected an array, got {type(raw).__name__}")
    return raw


def _str(raw: Any) -> str:
    if not isinstance(raw, str):
        raise _ShapeError(f"expected a string, got {raw!r}")
    return raw
