"""The federation kernel: what every peer service (lookup, trace, stats) builds on.

An inbound message flows: transport bytes → `receive.Receiver` (verify the
envelope: size, signature, trust, recipient, freshness, replay) →
`dispatch.Dispatcher` (find the handler of its type, run it, seal the signed
answer or error). An outbound request flows: a service → `client.PeerClient`
(seal, post through a `transport.PeerTransport`, verify the signed answer).
Messages that must arrive go through `delivery.DeliveryService` (durable
outbox, one queue per peer, capped jittered backoff). Peers, their trust,
policies, descriptors and key rotation are `peers`, `descriptor` and
`rotation`. The kernel imports neither aiohttp nor SQLAlchemy: it is handed a
transport and stores by the composition root (`node.app`).
"""
