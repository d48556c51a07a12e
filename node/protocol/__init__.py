"""The peer protocol: the federation HTTP API that other countries' nodes call.

For now it serves `/federation/v1/health` and the node's signed descriptor;
signed envelopes, private lookups and delivery build on it.
"""
