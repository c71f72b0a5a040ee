"""A small, honest fake of Elasticsearch 8's HTTP API, served over real HTTP in tests.

What it does like the real server: the root info, index/doc/bulk writes with
dynamic mappings (strings become ``text`` with a ``.keyword`` sub-field, ISO
strings become ``date``), index expressions (comma lists, ``*``, ``-excl``,
``ignore_unavailable``/``allow_no_indices``), the query-DSL subset a log search
needs, sorting (with ``missing`` sentinels, ``_doc``, ``_shard_doc``),
``from``/``size`` with the 10,000 ``index.max_result_window``, ``search_after``,
``track_total_hits``, ``_source`` filtering, points in time (snapshots with
keep-alive and the implicit ``_shard_doc`` tiebreaker), error envelopes with
``root_cause``, ``X-Elastic-Product`` and REST-compatibility content types.

What it refuses (400, never silently ignored): any query, search key or
parameter outside that subset; ES features it knows but does not implement say
so in the reason ("not implemented by FakeElasticsearch").

The analyzer is the standard one, boundaries included (UAX #29 via :mod:`regex`, see
``analysis``); ``prefix`` works on tokens as on a real ``text`` field. Partial answers on
demand: :meth:`FakeElasticsearch.fail_shards` / ``time_out_shards`` make chosen indices' shards
fail or time out, and the search answers 200 with ``_shards.failed`` / ``timed_out``, as
Elasticsearch 8 does with its default ``allow_partial_search_results=true``.

Known simplifications: every hit scores 1.0 (no relevance ranking); documents
are visible at once (no refresh interval); one shard per index; missing ``double``
sort values are rendered as ``null``; a timed-out shard contributes no hits.

Modules: ``server`` (the node, its test-side API, routes and envelopes), ``wire``
(bodies, parameters, media types), ``errors``, ``indices`` (mappings, documents,
index expressions), ``values``, ``analysis``, ``dates`` (formats, date math),
``fields``, ``query`` and ``simple_query_string`` (the query DSL), ``sorting``,
``search`` (paging, ``_source``, totals) and ``pit`` (points in time). Failures on
demand come from :mod:`tests.fakes.faults`.
"""

from tests.fakes.elasticsearch.server import ES_VERSION, FakeElasticsearch, RecordedRequest
from tests.fakes.elasticsearch.values import LONG_MAX, LONG_MIN

__all__ = ["ES_VERSION", "LONG_MAX", "LONG_MIN", "FakeElasticsearch", "RecordedRequest"]
