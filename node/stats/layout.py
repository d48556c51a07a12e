"""Where each contributor's share lies in a round's result (pure).

Most queries have the same cells at every contributor, and a round's result has
those cells. A query whose contributors fill only their own column (`routes`,
`SRC>DST` with DST the contributor) has a share per contributor over its column
alone; the result is every contributor's column in turn, in the order of the
sorted contributors, and each share is laid out over it (zeros elsewhere)
before the shares are added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from node.stats.periods import Period
from node.stats.queries import Query
from node.stats.shares import Share


def contributor_cells(query: Query, period: Period, contributor: str) -> tuple[str, ...]:
    """The cells a contributor's share covers (its own column, for `routes`)."""
    return query.cells(period, contributor)


def round_cells(query: Query, period: Period, contributors: Sequence[str]) -> tuple[str, ...]:
    """The cells of a round's result over `contributors` (sorted): the query's cells, or,
    for a query whose contributors fill their own column, each one's column in turn."""
    if not query.column_only:
        return query.cells(period, contributors[0] if contributors else "XXX")
    return tuple(cell for c in contributors for cell in query.cells(period, c))


def lay_out(
    query: Query, period: Period, shares: Mapping[str, Share], contributors: Sequence[str]
) -> list[Share]:
    """The shares of `contributors`, each as a vector over `round_cells` (zeros outside
    its own column for `routes`), ready to be added."""
    if not query.column_only:
        return [shares[c] for c in contributors]
    sizes = [len(query.cells(period, c)) for c in contributors]
    total = sum(sizes)
    out, offset = [], 0
    for contributor, size in zip(contributors, sizes, strict=True):
        vector = [0] * total
        vector[offset : offset + size] = shares[contributor]
        out.append(tuple(vector))
        offset += size
    return out
