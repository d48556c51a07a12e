"""Statistics (issue 10): this country's figures in full, and federation totals that no
country can see into.

National statistics are counted from this node's own data: the store's group-bys
(`node/store/stats.py`, behind the `storage.StatsStorage` Protocol) feed
`local.LocalStats`, which shapes the national statistics for the console, the
command line and the catalogue's query vectors (`queries`). Every period is a range
of months (`periods`).

Federation totals are computed in rounds: each contributor counts a query's vector
of cells, splits it into additive shares modulo 2^64, one per aggregator
(`shares.py`), and seals each share to its aggregator with HPKE (`seal.py`,
RFC 9180); each aggregator sums the shares it holds, adds its own discrete Laplace
noise (`noise.py`, from OpenDP) and signs its noisy sum; the sums added together are
the released total, with its interval (docs/PROTOCOL.md §4).
"""
