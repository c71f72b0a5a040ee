"""Which entities a query is about: the stored ones of a kind, the chosen ones, ad hoc filters.

Entities with rollups come from ``rollups.entities`` (within the range when one is
given); SLO services from the configured objectives. Ad hoc filters apply to the
entities of their key's kind (``namespace`` also to services, through their names);
filters on other keys are ignored. A stored service's namespace is read by :func:`namespace_of`
alone; incidents are matched to services by :mod:`app.servicenames`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.grafana.catalogue import Metric, entity_key, has_kind, labelled, slo_services
from app.grafana.errors import InvalidQuery
from app.grafana.periods import Days
from app.grafana.values import ALL, Filter, Selection
from app.rollups import service as rollups

MAX_SERIES = 200
"""Series one target may answer with: a panel with more is unreadable; ask for a table."""

_SERVICE_NAMESPACE = re.compile(r"^[^.]+\.([^.]+)\.svc(?:\.|$)")


def namespace_of(service: str) -> str | None:
    """``checkout.shop.svc.cluster.local`` → ``shop`` (Istio's destination_service names).

    Stricter than :mod:`app.servicenames` on purpose: these are stored rollup entities, always
    FQDNs for in-mesh services, and an external host such as ``httpbin.org`` (a ServiceEntry)
    has no namespace, while the normaliser would read ``org`` from a filter someone typed."""
    match = _SERVICE_NAMESPACE.match(service)
    return match.group(1) if match else None


def passes(metric: Metric, entity: str, filters: Sequence[Filter]) -> bool:
    """Whether ``entity`` passes every filter that applies to its kind (others are ignored)."""
    return kind_passes(entity_key(metric), entity, filters)


def kind_passes(kind: str, entity: str, filters: Sequence[Filter]) -> bool:
    """Whether ``entity``, of ``kind``, passes every filter that applies to its kind: on the kind's
    own key, or ``namespace`` for a service (through its name); others are ignored."""
    for item in filters:
        if item.key == kind:
            value: str | None = entity
        elif item.key == "namespace" and kind == "service":
            value = namespace_of(entity)
        else:
            continue
        if not item.matches(value):
            return False
    return True


async def kind_entities(
    session: AsyncSession, settings: Settings, kind: str, first: date | None, last: date | None
) -> list[str]:
    """The entities of ``kind`` with rollups (between ``first`` and ``last`` when given)."""
    if not has_kind(settings, kind):
        return []
    entity_kind = rollups.catalog_of(settings).entities[kind]
    if not entity_kind.labels:
        return [kind]
    return await rollups.entities(session, kind, first=first, last=last)


async def namespaces(
    session: AsyncSession, settings: Settings, first: date | None, last: date | None
) -> list[str]:
    """Namespaces with rollups of their own, and those of the services' names."""
    found = set(await kind_entities(session, settings, "namespace", first, last))
    for service in await kind_entities(session, settings, "service", first, last):
        namespace = namespace_of(service)
        if namespace is not None:
            found.add(namespace)
    return sorted(found)


async def offered(session: AsyncSession, settings: Settings, key: str) -> list[str]:
    """The values ``/tag-values`` offers for an ad hoc filter key (one of ``filter_keys``), sorted,
    each once: the namespaces, or the stored entities of the key's kind (services by their stored
    spelling). Each, fed back as an ``=`` filter, keeps its entity: ``/query`` accepts every one of
    them (``servicenames.parse_filter``'s ``stored``)."""
    if key == "namespace":
        found = await namespaces(session, settings, None, None)
    else:
        found = await kind_entities(session, settings, key, None, None)
    return sorted(set(found))


async def target_entities(
    session: AsyncSession,
    settings: Settings,
    metric: Metric,
    chosen: Selection | None,
    filters: Sequence[Filter],
    days: Days,
) -> list[str]:
    """The entities a target asks for, filtered; ``None`` chosen means all."""
    if not labelled(settings, metric):
        return [metric.kind]
    if metric.is_slo:
        configured = slo_services(settings)
        if chosen is None or chosen is ALL:
            names = configured
        else:
            unknown = [name for name in chosen if name not in configured]
            if unknown:
                raise InvalidQuery(f"no SLO objective is configured for {', '.join(map(repr, unknown))}")
            names = list(chosen)
    elif chosen is None or chosen is ALL:
        names = await kind_entities(session, settings, metric.kind, days.first, days.last)
    else:
        names = list(chosen)
    names = [name for name in names if passes(metric, name, filters)]
    if len(names) > MAX_SERIES:
        raise InvalidQuery(
            f"{metric.name}: {len(names)} {entity_key(metric)}s selected; a query answers at most "
            f"{MAX_SERIES} series: narrow the selection or an ad hoc filter, or use format table"
        )
    return names
