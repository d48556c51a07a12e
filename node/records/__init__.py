"""The firearm records module: what an officer records, and how it is found again.

Input (`RecordInput`, from a form, the CLI or a CSV row) is validated and
normalised by `normalise.py` against the reference table (`reference.py`,
data in `data/`) and the serial canonicaliser (`serials.py`), giving a
`NewRecord`; `RecordsService` (service.py) stores it through
`node.store.records` with its audit entry, and searches and exports.
CSV files flow through `csvio.py` (reading, writing) and `importer.py`
(batches, optionally parsed in a worker process by `import_parse.py`, rows
as `record_rows.py` makes them).
"""
