"""The service dependency graph, assembled from Istio traffic and Jaeger's dependency links. No I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app import servicenames
from app.backends.traces import DependencyLink
from app.correlation.istio import EdgeRef, EdgeTraffic, NodeRef
from app.correlation.schemas import GraphEdge, GraphNode


def build_graph(
    edges: Mapping[EdgeRef, EdgeTraffic], node_latency: Mapping[NodeRef, float]
) -> tuple[list[GraphNode], list[GraphEdge]]:
    """Nodes and edges of the Istio traffic.

    A node's ``requests_per_s``/``error_rate`` add up the edges into it (so they agree with
    the arrows drawn); its latency is the p99 its own sidecar measured for every caller.
    ``unknown`` (callers outside the mesh) has no figures: nothing reports what it receives.
    """
    nodes: dict[NodeRef, tuple[float, float]] = {}
    out_edges: list[GraphEdge] = []
    for ref, traffic in edges.items():
        chosen = traffic.traffic
        nodes.setdefault(ref.source, (0.0, 0.0))
        received, errors = nodes.get(ref.target, (0.0, 0.0))
        nodes[ref.target] = (received + chosen.requests_per_s, errors + chosen.errors_per_s)
        out_edges.append(
            GraphEdge(
                source=ref.source.id,
                target=ref.target.id,
                requests_per_s=chosen.requests_per_s,
                error_rate=chosen.error_rate,
                latency_p99_ms=traffic.latency_p99_ms,
                protocol=ref.protocol,
                reporter=traffic.reporter,
                trace_calls=None,
            )
        )
    out_nodes = [
        GraphNode(
            id=node.id,
            service=node.service,
            namespace=node.namespace,
            requests_per_s=None if node.is_unknown else received,
            error_rate=errors / received if received > 0 else None,
            latency_p99_ms=node_latency.get(node),
        )
        for node, (received, errors) in nodes.items()
    ]
    return out_nodes, out_edges


def add_trace_links(
    nodes: list[GraphNode],
    edges: list[GraphEdge],
    links: Sequence[DependencyLink],
    namespace: str | None,
) -> None:
    """Puts Jaeger's call counts on the edges they confirm, and adds the links Istio did not see
    (services outside the mesh) as edges without metrics.

    Jaeger names services as the spans do: Istio's sidecars ``<app>.<namespace>`` (a node id),
    instrumented apps often the bare app name (matched when one node has that service name).
    With a ``namespace``, only links touching the graph's nodes or that namespace are added.
    """
    by_id = {node.id: node for node in nodes}
    by_service: dict[str, list[str]] = {}
    for node in nodes:
        by_service.setdefault(node.service, []).append(node.id)

    def node_id(name: str) -> str | None:
        if name in by_id:
            return name
        same = by_service.get(name, [])
        return same[0] if len(same) == 1 else None

    busiest: dict[tuple[str, str], GraphEdge] = {}
    for edge in edges:
        key = (edge.source, edge.target)
        if key not in busiest or (edge.requests_per_s or 0) > (busiest[key].requests_per_s or 0):
            busiest[key] = edge
    for link in links:
        parent, child = node_id(link.parent), node_id(link.child)
        if parent is not None and child is not None and (parent, child) in busiest:
            edge = busiest[(parent, child)]
            edge.trace_calls = (edge.trace_calls or 0) + link.call_count
            continue
        outside = all(servicenames.parse(name).namespace != namespace for name in (link.parent, link.child))
        if namespace is not None and parent is None and child is None and outside:
            continue
        source, target = parent or link.parent, child or link.child
        for name in (source, target):
            if name not in by_id:
                parsed = servicenames.parse(name)
                by_id[name] = GraphNode(
                    id=name,
                    service=parsed.name,
                    namespace=parsed.namespace,
                    requests_per_s=None,
                    error_rate=None,
                    latency_p99_ms=None,
                )
                nodes.append(by_id[name])
        edge = GraphEdge(
            source=source,
            target=target,
            requests_per_s=None,
            error_rate=None,
            latency_p99_ms=None,
            protocol=None,
            reporter=None,
            trace_calls=link.call_count,
        )
        busiest[(source, target)] = edge
        edges.append(edge)
