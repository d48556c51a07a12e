"""iarms-node: one country's node in a federation that records illicit firearms.

Data flows one way through the layers: the CLI (`node.cli`), the console
(`admin_ui`) and the federation API call the domain services (`node.records`,
`node.users`, `node.audit`), which call the stores in `node.store`, the only
place with SQL. `node.app` is the single composition root that wires them.
"""

__version__ = "0.1.0"
