"""Limits on the connections a listening socket holds, and the tally of connection abuse.

Pure: no sockets and no clock of its own; times are passed in (seconds on a
monotonic clock). `node.web.guard` applies these limits to the console and
the federation API; `node.config` reads them from `[console]` and
`[federation]`.

Abuse is logged as one line per kind per window with counts, never a line per
connection: an attacker who opens 20,000 connections must not also be able to
fill the disk with the node's log.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from dataclasses import dataclass, field, replace

#: File descriptors kept free of connections, for the database, log files,
#: outgoing connections to peers and worker processes: at least this many ...
FD_RESERVE_MIN = 256
#: ... and at least this share of the limit.
FD_RESERVE_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one listening socket allows each connection and all of them together.

    Attributes:
        head_timeout_s: time to send a complete request head, from the connection's
            first moment or from the first byte after an idle keep-alive period.
        body_timeout_s: time to send a request body once its head is in (time the
            node itself stopped reading is not counted), and the longest a client
            may leave a response unread.
        idle_timeout_s: how long a keep-alive connection may wait for its next request.
        max_connections: connections held at once on this socket.
        max_connections_per_address: of those, from one client address (IPv6: one /64).
    """

    head_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 60.0
    max_connections: int = 1024
    max_connections_per_address: int = 64

    @property
    def sweep_s(self) -> float:
        """How often deadlines are checked: a quarter of the shortest, within 0.05-1 s."""
        shortest = min(self.head_timeout_s, self.body_timeout_s, self.idle_timeout_s)
        return min(1.0, max(0.05, shortest / 4))


#: Federation peers are other nodes: a few connections each, 1 MiB bodies at most.
FEDERATION_LIMITS = ConnectionLimits()
#: Console clients usually share one address (loopback, a VPN gateway, a proxy), so
#: the per-address cap is the total; a CSV upload may be large (512 MiB).
CONSOLE_LIMITS = ConnectionLimits(
    body_timeout_s=300.0, max_connections=512, max_connections_per_address=512
)


def fd_reserve(fd_limit: int) -> int:
    """File descriptors to keep free of connections when the process may open `fd_limit`."""
    return max(FD_RESERVE_MIN, int(fd_limit * FD_RESERVE_SHARE))


def fit_to_fd_limit(
    limits: dict[str, ConnectionLimits], fd_limit: int
) -> tuple[dict[str, ConnectionLimits], str | None]:
    """Shrink the connection caps, in proportion, until they fit under `fd_limit` with reserve.

    Args:
        limits: each listener's limits, by its name ("console", "federation API").
        fd_limit: the process's soft RLIMIT_NOFILE.

    Returns:
        The limits to apply, and a warning to log once if any were lowered (else None).
    """
    wanted = sum(each.max_connections for each in limits.values())
    room = max(len(limits), fd_limit - fd_reserve(fd_limit))
    if wanted <= room:
        return limits, None
    fitted = {}
    for name, each in limits.items():
        total = max(1, each.max_connections * room // wanted)
        per_address = min(each.max_connections_per_address, total)
        fitted[name] = replace(each, max_connections=total, max_connections_per_address=per_address)
    caps = ", ".join(f"{name} {each.max_connections}" for name, each in fitted.items())
    warning = (
        f"the process may open only {fd_limit} files (ulimit -n), too few for "
        f"{wanted} connections and {fd_reserve(fd_limit)} other files: "
        f"connections limited to {caps}; raise the limit to restore them"
    )
    return fitted, warning


def address_key(host: str) -> str:
    """The client address that per-address caps count: the address itself, for IPv6 its /64.

    One IPv6 subscriber usually holds a whole /64, so counting single
    addresses would let one attacker spread over 2^64 of them.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class Abuse(enum.Enum):
    """The kinds of connection abuse, each logged as one line per window."""

    OVER_ADDRESS_CAP = "over_address_cap"
    EVICTED = "evicted"
    REFUSED_FULL = "refused_full"
    SILENT = "silent"
    HEAD_TIMEOUT = "head_timeout"
    BODY_TIMEOUT = "body_timeout"
    SEND_TIMEOUT = "send_timeout"
    ABORTED_BODY = "aborted_body"
    ACCEPT_ERROR = "accept_error"


def abuse_texts(limits: ConnectionLimits) -> dict[Abuse, str]:
    """What each kind of abuse did, with `{n}` for the count, for a log line."""
    return {
        Abuse.OVER_ADDRESS_CAP: "closed {n} connection(s) over the per-address limit "
        f"({limits.max_connections_per_address:,})",
        Abuse.EVICTED: "closed {n} idle or unfinished connection(s) to make room at the "
        f"connection limit ({limits.max_connections:,})",
        Abuse.REFUSED_FULL: "refused {n} connection(s): all "
        f"{limits.max_connections:,} were busy with requests",
        Abuse.SILENT: "closed {n} connection(s) that sent nothing within "
        f"{limits.head_timeout_s:g} s",
        Abuse.HEAD_TIMEOUT: "closed {n} connection(s) that did not finish a request head "
        f"within {limits.head_timeout_s:g} s",
        Abuse.BODY_TIMEOUT: "closed {n} connection(s) whose request body did not arrive "
        f"within {limits.body_timeout_s:g} s",
        Abuse.SEND_TIMEOUT: "closed {n} connection(s) that left a response unread for "
        f"{limits.body_timeout_s:g} s",
        Abuse.ABORTED_BODY: "{n} request(s) ended by the client before their body arrived",
        Abuse.ACCEPT_ERROR: "could not accept {n} connection(s) for want of file descriptors "
        "or memory (ulimit -n, max_connections)",
    }


#: Kinds that ordinary clients cause too (a browser's unused preconnection): info, not warning.
BENIGN = frozenset({Abuse.SILENT})


@dataclass(slots=True)
class _Tally:
    since: float
    count: int = 0
    addresses: set[str] = field(default_factory=set)


class AbuseLog:
    """Counts abuse by kind and gives one line per kind per window (pure: time passed in).

    A kind's window opens at its first event and closes `every_s` later, when
    `due` returns its line; so two lines of one kind are at least `every_s` apart.
    """

    def __init__(
        self,
        listener: str,
        texts: dict[Abuse, str],
        every_s: float = 60.0,
        max_addresses: int = 10_000,
    ) -> None:
        self.listener = listener
        self.every_s = every_s
        self._texts = texts
        self._max_addresses = max_addresses  # distinct addresses remembered per window
        self._tallies: dict[Abuse, _Tally] = {}

    def note(self, kind: Abuse, address: str | None, now: float) -> None:
        """Count one event of `kind` from `address` (None when unknown) at `now`."""
        tally = self._tallies.get(kind)
        if tally is None:
            tally = self._tallies[kind] = _Tally(now)
        tally.count += 1
        if address is not None and len(tally.addresses) < self._max_addresses:
            tally.addresses.add(address)

    def due(self, now: float) -> list[tuple[int, str]]:
        """(logging level, line) for each kind whose window has closed; those are reset."""
        closed = [kind for kind, t in self._tallies.items() if now - t.since >= self.every_s]
        return [self._line(kind, self._tallies.pop(kind)) for kind in closed]

    def drain(self) -> list[tuple[int, str]]:
        """Every line still open (when the listener stops)."""
        lines = [self._line(kind, tally) for kind, tally in self._tallies.items()]
        self._tallies.clear()
        return lines

    def _line(self, kind: Abuse, tally: _Tally) -> tuple[int, str]:
        text = self._texts[kind].format(n=f"{tally.count:,}")
        if tally.addresses:
            many = len(tally.addresses)
            more = "+" if many >= self._max_addresses else ""
            text += f" from {many:,}{more} address{'es' if many != 1 else ''}"
        level = logging.INFO if kind in BENIGN else logging.WARNING
        return level, f"{self.listener}: {text} in the last {self.every_s:g} s"
