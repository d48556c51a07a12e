"""Statistics: this country's figures in full, and the catalogue of federation queries.

Data flows one way: the store's group-bys (`node/store/stats.py`, behind the
`storage.StatsStorage` Protocol) feed `local.LocalStats`, which shapes the
national statistics for the console, the command line and the catalogue's
query vectors (`queries`); `charts` renders them as SVG for the console.
Every period is a range of months (`periods`).
"""
