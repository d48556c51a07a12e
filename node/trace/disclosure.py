"""What a hop discloses of the last legal possessor in an `end_of_chain` answer.

The issue's rule: the possessor is "disclosed to the originator per this
node's policy for that peer". The policy's service is `trace-details`
(`iarms-node peers policy FRA --allow traces,trace-details`), as
`hit-details` is for a lookup's record. Without it the answer says the
possessor was identified and withheld: `party` and `licence_reference` are
left out (the event and its date stay: they name no one) and `note` says so,
so that the originator knows whom to ask, and how, through other channels.

An originator that is not our peer (the trace reached us through other
hops) has no policy here: we made no decision to share with it, so the
possessor is withheld (docs/adr/0008). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from node.protocol.model import Peer, Service

#: The details that identify the possessor.
WITHHELD_KEYS = ("party", "licence_reference")


def withheld_note(me: str, originator: str) -> str:
    """The note of an answer whose possessor was withheld."""
    return (
        f"the last legal possessor is identified; withheld by {me}'s policy for "
        f"{originator} (trace-details not allowed)"
    )


def disclosed(
    details: Mapping[str, str], me: str, originator: str, peer: Peer | None
) -> dict[str, str]:
    """An `end_of_chain` answer's details as our policy for the originator allows.

    Args:
        details: what the registry (or the officer) says.
        me: this node's country.
        originator: the trace's originator.
        peer: the originator as our (active) peer, or None if it is not one.
    """
    if peer is not None and peer.allows(Service.TRACE_DETAILS):
        return dict(details)
    kept = {k: v for k, v in details.items() if k not in WITHHELD_KEYS}
    if not any(details.get(k) for k in WITHHELD_KEYS):
        return kept  # nothing identified (a loop, a destruction without a party)
    note = withheld_note(me, originator)
    kept["note"] = f"{kept['note']}; {note}" if kept.get("note") else note
    return kept
