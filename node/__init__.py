"""iarms-node: one country's node in a federation that records illicit firearms.

Imports run one way through the layers (docs/ARCHITECTURE.md, checked by the
import contracts in pyproject.toml): the CLI (`node.cli`) and the console
(`admin_ui`) call the services — records (`node.records`), accounts
(`node.accounts`), audit (`node.audit`) and the peer services such as
lookups (`node.lookup`) — which build on the federation kernel
(`node.protocol`) and reach storage only through Protocols; `node.store` is
the only place with SQL and `node.web` the only one with aiohttp.
`node.app` is the single composition root that wires them.
"""

__version__ = "0.1.0"
