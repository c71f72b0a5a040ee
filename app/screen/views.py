"""Shaping data for the wall: where the graph's nodes go (service names are app.servicenames's).

The graph is laid out here, once per refresh, in layers from the callers outside the mesh to the
deepest callee, rather than by a force simulation in the browser: a wall shows the same picture
at every refresh (nothing drifts or jumps), and the picture reads left to right the way a
request travels. Pure functions, no I/O.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence

Edge = tuple[str, str]


def layered(nodes: Sequence[str], edges: Iterable[Edge]) -> dict[str, tuple[float, float]]:
    """(x, y) of each node: x is the layer (breadth-first distance from the nodes nobody calls),
    y the place in the layer, ordered by where the callers are (fewer crossing edges) and
    centred on 0. Cycles are cut where breadth-first search meets them again."""
    known = set(nodes)
    callees: dict[str, list[str]] = defaultdict(list)
    callers: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        if source in known and target in known and source != target:
            callees[source].append(target)
            callers[target].append(source)
    layer: dict[str, int] = {}
    pending = [n for n in nodes if not callers[n]] or list(nodes[:1])
    while pending:
        queue = deque(sorted(pending))
        for start in queue:
            layer.setdefault(start, 0 if not callers[start] else max(layer.values(), default=-1) + 1)
        while queue:
            node = queue.popleft()
            for callee in sorted(callees[node]):
                if callee not in layer:
                    layer[callee] = layer[node] + 1
                    queue.append(callee)
        pending = [n for n in nodes if n not in layer][:1]  # a cycle nobody outside calls
    columns: dict[int, list[str]] = defaultdict(list)
    for node in nodes:
        columns[layer[node]].append(node)
    place: dict[str, tuple[float, float]] = {}
    for x in sorted(columns):
        members = columns[x]

        def weight(node: str) -> tuple[float, str]:
            above = [place[c][1] for c in callers[node] if c in place]
            return (sum(above) / len(above) if above else 0.0, node)

        members.sort(key=weight)
        middle = (len(members) - 1) / 2
        for index, node in enumerate(members):
            place[node] = (float(x), index - middle)
    return place
