"""The federation kernel: what every peer service (lookup, trace, stats) builds on.

An inbound message flows: transport bytes → `receive.Receiver` (verify the
envelope: size, signature, trust, recipient, freshness, replay) →
`dispatch.Dispatcher` (find the registered type, decode the body into its
typed class from `messages` — the one place a body is refused — run the
handler, for a message with an effect once, in one unit of work with its
inbox claim; seal the signed answer or error). An outbound request flows: a
service → `client.PeerClient.ask` (seal a typed request, post it through a
`transport.PeerTransport`, verify and decode the signed answer). Messages
that must arrive go through `delivery.DeliveryService` (durable outbox, one
queue per peer, capped jittered backoff); the peer's signed answer to each
is kept as its receipt (`receipts`). Peers, their trust,
policies, descriptors and key rotation are `peers`, `descriptor` and
`rotation`. The kernel imports neither aiohttp nor SQLAlchemy: it is handed a
transport and stores by the composition root (`node.app`).
"""
