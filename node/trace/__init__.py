"""Traces along the supply chain (issue 9): today the registry of legal custody, the trace
service next.

The custody registry is what a hop answers a trace from: a country's events of
legal custody (manufactured, imported, exported, sold, transferred,
destroyed), imported by CSV through the records' import machinery
(`custody_rows.py` is the row kind, `node.records.importer` the batches and
the worker), stored by `node.store.custody` behind `storage.py`'s Protocol,
and searched by serial and make through `CustodyService` (`custody.py`), whose
`chain` gives one firearm's events in order. Values that cross layers are in
`model.py`; `synthetic.py` generates realistic chains for demos and
benchmarks.
"""
