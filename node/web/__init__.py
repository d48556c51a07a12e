"""The node's HTTP edge (aiohttp): the federation API it serves and the transport it
uses to reach peers. Only the composition root, the server and the tests import it;
the kernel and the services see `node.protocol.transport.PeerTransport` only.
"""
