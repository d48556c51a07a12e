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

A trace's pure core: `request.py` validates what an officer gives into the
request's fields, checks its completeness and picks the first hop;
`receipts.py` signs and strictly decodes the statements of a trace (the
originator's request, each hop's receipts and answers, docs/PROTOCOL.md §3);
`chain.py` checks a whole chain with public keys only and tells a receiving
hop where it stands, under the keys the node trusts and those the chain's
`forward` statements vouch for; `export.py` writes and checks the chain file
that carries the keys (and rotation statements) needed to check it without a
node. `hop.py` is a hop's side (receive, answer, forward, relay),
`service.py` the originator's; `intake.py` decides what the originator keeps
of the reports (checked on arrival, bounded per hop), `disclosure.py` what a
hop names of the last legal possessor.

Deadlines: `deadlines.py` holds the pure rules (when a hop's answer is due,
whether it is late, when to remind it); `reminders.py` sends the originator's
reminders from a sweep on the node's clock and takes them as a hop.
"""
