"""Failed console sign-ins per client address: a pure sliding-window throttle.

An address may fail `max_failures` times within any `window`; once it has, it
is refused until the oldest of those failures is `window` old, before any user
is looked up or password hashed (so a refused attempt costs no Argon2 time and
locks no account). Every attempt counts as a failure from the moment it is
admitted until `forgive` says its password was right: concurrent attempts
cannot slip past the limit while their hashes are being checked.

The throttle also decides which failures deserve an audit entry, so one address
cannot fill the hash-chained log: for unknown user names only the first per
window, and the throttling of an address once per window.

State is in memory only (a restart forgets it) and covers at most
`max_addresses` addresses; the one that failed least recently is forgotten
first. Pure: the caller passes the time in.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from node.errors import LoginThrottledError


@dataclass(frozen=True, slots=True)
class LoginThrottleConfig:
    """How many failed sign-ins an address may make, and how many addresses are tracked."""

    max_failures: int = 10
    window: timedelta = timedelta(minutes=15)
    max_addresses: int = 10_000

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.max_addresses < 1 or self.window <= timedelta(0):
            raise ValueError(
                "login throttle: max_failures and max_addresses must be at least 1 "
                "and the window positive"
            )


@dataclass(frozen=True, slots=True)
class FailureOutcome:
    """What one failed sign-in means for the audit log."""

    failures: int  # failures from the address within the window, this one included
    audit_unknown_user: bool  # the first unknown user name from the address this window
    throttled_until: datetime | None  # set when the address is throttled and not yet audited


@dataclass(slots=True)
class _Address:
    failures: deque[datetime] = field(default_factory=deque)  # oldest first
    unknown_audited: datetime | None = None
    throttle_audited: datetime | None = None


class LoginThrottle:
    """Failed sign-ins per client address, in memory."""

    def __init__(self, config: LoginThrottleConfig | None = None) -> None:
        self.config = config or LoginThrottleConfig()
        self._addresses: OrderedDict[str, _Address] = OrderedDict()  # least recent first

    def admit(self, address: str, now: datetime) -> None:
        """Let one sign-in attempt go ahead, counted as a failure until `forgive`.

        Raises:
            LoginThrottledError: the address has failed `max_failures` times within
                the window; nothing is counted.
        """
        self._forget_stale(now)
        state = self._addresses.pop(address, None) or _Address()
        self._addresses[address] = state
        _prune(state.failures, now - self.config.window)
        if len(state.failures) >= self.config.max_failures:
            raise LoginThrottledError(state.failures[0] + self.config.window - now)
        state.failures.append(now)
        while len(self._addresses) > self.config.max_addresses:
            self._addresses.popitem(last=False)

    def forgive(self, address: str, admitted_at: datetime) -> None:
        """The attempt admitted at `admitted_at` had the right password: it is no failure."""
        state = self._addresses.get(address)
        if state is not None and admitted_at in state.failures:
            state.failures.remove(admitted_at)

    def failed(self, address: str, now: datetime, *, unknown_user: bool) -> FailureOutcome:
        """Note that an admitted attempt failed; say which audit entries it deserves."""
        state = self._addresses.get(address)
        if state is None:  # forgotten while its password was checked (too many addresses)
            state = self._addresses[address] = _Address(deque([now]))
        window = self.config.window
        audit_unknown = unknown_user and _due(state.unknown_audited, now, window)
        if audit_unknown:
            state.unknown_audited = now
        throttled_until = None
        if len(state.failures) >= self.config.max_failures and _due(
            state.throttle_audited, now, window
        ):
            state.throttle_audited = now
            throttled_until = state.failures[0] + window
        return FailureOutcome(len(state.failures), audit_unknown, throttled_until)

    def _forget_stale(self, now: datetime) -> None:
        cutoff = now - self.config.window
        while self._addresses:
            state = next(iter(self._addresses.values()))
            stamps = [*state.failures, state.unknown_audited, state.throttle_audited]
            if any(stamp is not None and stamp > cutoff for stamp in stamps):
                return
            self._addresses.popitem(last=False)

    def __len__(self) -> int:
        return len(self._addresses)


def _prune(failures: deque[datetime], cutoff: datetime) -> None:
    while failures and failures[0] <= cutoff:
        failures.popleft()


def _due(last: datetime | None, now: datetime, window: timedelta) -> bool:
    return last is None or now - last >= window
