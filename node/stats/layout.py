"""Where each contributor's share lies in a round's result (pure).

Most queries have the same cells at every contributor, and a round's result has
those cells. A query whose contributors fill only their own column (`routes`,
`SRC>DST` with DST the contributor) has a share per contributor over its column
alone; the result is every contributor's column in turn, in the order of the
sorted contributors, so the sum of their shares over it is their shares one
after the other (no cell has two contributors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain

from node.errors import ShareError
from node.stats.periods import Period
from node.stats.queries import Query
from node.stats.shares import Share, combine


def contributor_cells(query: Query, period: Period, contributor: str) -> tuple[str, ...]:
    """The cells a contributor's share covers (its own column, for `routes`)."""
    return query.cells(period, contributor)


def round_cells(query: Query, period: Period, contributors: Sequence[str]) -> tuple[str, ...]:
    """The cells of a round's result over `contributors` (sorted): the query's cells, or,
    for a query whose contributors fill their own column, each one's column in turn."""
    if not query.column_only:
        return query.cells(period, contributors[0] if contributors else "XXX")
    return tuple(chain.from_iterable(query.cells(period, c) for c in contributors))


def add_up(
    query: Query, period: Period, shares: Mapping[str, Share], contributors: Sequence[str]
) -> Share:
    """The sum modulo 2^64 of the shares of `contributors` over `round_cells`.

    Raises:
        ShareError: a share that is not the size of its contributor's cells, or a value
            outside 0..2^64−1.
    """
    if not query.column_only:
        return combine(shares[c] for c in contributors)
    for contributor in contributors:
        size = len(query.cells(period, contributor))
        if len(shares[contributor]) != size:
            raise ShareError(
                f"{contributor}'s share has {len(shares[contributor])} cells, not {size}"
            )
    return combine([tuple(chain.from_iterable(shares[c] for c in contributors))])
