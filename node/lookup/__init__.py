"""Private serial lookups, a peer service on the federation kernel (`node.protocol`).

The querier (`querier.LookupService`) blinds canonical serials, has each
peer evaluate them under its VOPRF key (`oprf`, over `ristretto`), checks the
outputs against the peer's membership index (`membership`, a Golomb-coded set
in `golomb`) and asks for a confirmation only on a match, keeping the signed
answer as evidence (`evidence`). The owner (`owner.LookupResponder`) answers
those messages from its records and publishes its own index
(`index.LookupIndex`, built by `index_builder` in worker processes:
`oprf_workers`, `evaluate_worker`). `bulk` reads a CSV of serials.
"""
