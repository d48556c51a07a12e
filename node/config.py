"""The node's configuration: one TOML file in the data directory, loaded and validated once.

```toml
[node]
country = "FRA"                      # ISO 3166-1 alpha-3
public_url = "http://127.0.0.1:8443" # how peers reach the federation API

[database]
url = "sqlite+aiosqlite:///node.db"  # relative SQLite paths are inside the data directory

[console]
listen = "127.0.0.1:8080"

[federation]
listen = "127.0.0.1:8443"

[keys]
signing_key = "signing_key.pem"      # Ed25519, mode 0600: PKCS#8 PEM, sealed when encrypted
encrypted = false                    # true: a passphrase is needed to start the node
oprf_key = "oprf_key.bin"            # VOPRF key of the lookups, mode 0600, sealed if encrypted
hpke_key = "hpke_key.bin"            # X25519 key statistics shares are sealed to, the same way
```

The limits are optional: `init` does not write them, and the values below
(all but the example peer override) are the defaults. They go in the same
tables as the keys above and are checked at start-up like them (numbers,
positive, whole where they count something, never booleans):

```toml
[federation]
evaluations_burst = 20000            # blind evaluations a peer may ask for at once
evaluations_per_second = 50          # refill rate of each peer's bucket

max_envelope_bytes = 1048576         # the largest envelope taken from a peer: raise it only
                                     # when the peers' admins agree (PROTOCOL.md §1.2)

[federation.peer_limits.DEU]         # a peer's own limits; a key left out keeps the value above
evaluations_burst = 100000
evaluations_per_second = 200

[delivery]                           # retries of must-arrive messages to a peer that fails
retry_initial_s = 10                 # first wait (jittered ×0.8–1.4)
retry_multiplier = 2                 # each further wait is the last one times this (jittered)
retry_max_s = 3600                   # longest wait; a peer back from an outage is retried by then
max_failed_answers = 5               # a message the peer answers `internal` this often is
                                     # dead-lettered (no answer at all never counts)

[console]
login_failures = 10                  # failed sign-ins per client address ...
login_window_s = 900                 # ... within this window, then refused until it passes
login_tracked_addresses = 10000      # addresses remembered; the least recently failed go first

[trace]                              # how long each hop has to answer a trace, by priority
urgent_deadline_s = 86400            # 24 h; at least 60 s and at most routine_deadline_s
routine_deadline_s = 864000          # 10 days; at most 366 days
[statistics]                         # this node's privacy budget for federation rounds
monthly_epsilon = 1.0                # total ε its contributions may spend per calendar month
max_epsilon = 1.0                    # the most one round may spend (at most monthly_epsilon)
```

Each listening socket has connection limits, in its own table (`[console]`
or `[federation]`); the defaults are those of the federation API, where the
console differs it says so:

```toml
[federation]
head_timeout_s = 10                  # to send a whole request head (from connect, or first byte)
body_timeout_s = 30                  # to send a request body; console: 300 (CSV uploads)
idle_timeout_s = 60                  # a keep-alive connection waiting for its next request
max_connections = 1024               # at once on this socket; console: 512
max_connections_per_address = 64     # of those from one address (IPv6: a /64); console: 512
```
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import tomli_w

from node.accounts.throttle import LoginThrottleConfig
from node.countries import check_alpha3
from node.errors import ConfigError, ValidationError
from node.protocol.backoff import BackoffConfig
from node.protocol.descriptor import check_node_url
from node.protocol.envelope import DEFAULT_MAX_BYTES, MAX_ENVELOPE_LIMIT
from node.protocol.ratelimit import RateLimitConfig
from node.stats.budget import BudgetConfig
from node.trace.model import TraceDeadlines
from node.web.limits import CONSOLE_LIMITS, FEDERATION_LIMITS, ConnectionLimits

CONFIG_NAME = "config.toml"
DEFAULT_CONSOLE = "127.0.0.1:8080"
DEFAULT_FEDERATION = "127.0.0.1:8443"
DEFAULT_DB_URL = "sqlite+aiosqlite:///node.db"
SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
KEY_NAME = "signing_key.pem"
OPRF_KEY_NAME = "oprf_key.bin"
HPKE_KEY_NAME = "hpke_key.bin"
RATE_LIMIT_KEYS = {"evaluations_burst", "evaluations_per_second"}
CONNECTION_KEYS = {
    "head_timeout_s",
    "body_timeout_s",
    "idle_timeout_s",
    "max_connections",
    "max_connections_per_address",
}
SECTIONS = {
    "node": {"country", "public_url"},
    "database": {"url"},
    "console": {
        "listen",
        "login_failures",
        "login_window_s",
        "login_tracked_addresses",
        *CONNECTION_KEYS,
    },
    "federation": {
        "listen",
        "peer_limits",
        "max_envelope_bytes",
        *RATE_LIMIT_KEYS,
        *CONNECTION_KEYS,
    },
    "delivery": {"retry_initial_s", "retry_multiplier", "retry_max_s", "max_failed_answers"},
    "keys": {"signing_key", "encrypted", "oprf_key", "hpke_key"},
    "trace": {"urgent_deadline_s", "routine_deadline_s"},
    "statistics": {"monthly_epsilon", "max_epsilon"},
}
# Upper bounds that keep the arithmetic on times and token counts in range.
MAX_COUNT = 1_000_000_000
MAX_SECONDS = 366 * 86_400
MAX_MULTIPLIER = 100


@dataclass(frozen=True, slots=True)
class Listen:
    """A HOST:PORT to serve on."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_listen(text: str, what: str) -> Listen:
    """Parse HOST:PORT (IPv6 as [::1]:PORT); ConfigError with `what` in the message."""
    host, sep, port = str(text).rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what}: expected HOST:PORT with a port from 1 to 65535, got {text!r}")
    return Listen(host, int(port))


def check_public_url(text: str, what: str = "node.public_url") -> str:
    """An http(s) URL with a host and no query; trailing slash removed (ConfigError)."""
    try:
        return check_node_url(text, what)
    except ValidationError as e:
        raise ConfigError(str(e)) from None


def check_db_url(url: str) -> str:
    """Validate a database URL (`DRIVER://...`, as SQLAlchemy reads it); return it unchanged
    or raise ConfigError. Plain text work: reading the config needs no database library."""
    driver, sep, rest = url.partition("://")
    if not sep or not re.fullmatch(r"[\w+]+", driver):
        raise ConfigError(f"database URL {url!r} is not a valid URL")
    if driver not in SUPPORTED_DRIVERS:
        raise ConfigError(
            f"database URL uses {driver!r}; supported: {', '.join(SUPPORTED_DRIVERS)}"
        )
    path = rest.partition("?")[0].partition("/")[2]  # after the (empty) host
    if driver.startswith("sqlite") and not path:
        raise ConfigError("an SQLite database URL needs a file path (sqlite+aiosqlite:///PATH)")
    return url


def resolve_db_url(url: str, data_dir: Path) -> str:
    """Make a relative SQLite path absolute inside the data directory."""
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str(data_dir / url[len(prefix) :])
    return url


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything the node reads from its config file, validated."""

    data_dir: Path
    country: str
    public_url: str
    database_url: str
    console: Listen
    federation: Listen
    signing_key_file: Path
    key_encrypted: bool
    oprf_key_file: Path
    hpke_key_file: Path
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    # Per-peer overrides of `rate_limit`, sorted by country (a tuple keeps the config hashable).
    peer_rate_limits: tuple[tuple[str, RateLimitConfig], ...] = ()
    delivery_backoff: BackoffConfig = field(default_factory=BackoffConfig)
    #: The largest envelope accepted from a peer (requests, and answers but `index`).
    max_envelope_bytes: int = DEFAULT_MAX_BYTES
    login_throttle: LoginThrottleConfig = field(default_factory=LoginThrottleConfig)
    console_limits: ConnectionLimits = CONSOLE_LIMITS
    federation_limits: ConnectionLimits = FEDERATION_LIMITS
    #: How long each hop has to answer a trace, by priority.
    trace_deadlines: TraceDeadlines = field(default_factory=TraceDeadlines)
    #: The privacy budget of this node's contributions to statistics rounds.
    budget: BudgetConfig = field(default_factory=BudgetConfig)

    @property
    def public_key_file(self) -> Path:
        """The public half of the signing key (raw 32 bytes, hex), readable without a passphrase."""
        return self.signing_key_file.with_suffix(".pub")


def config_path(data_dir: Path) -> Path:
    """Where a data directory keeps its config file."""
    return data_dir / CONFIG_NAME


def load_config(data_dir: Path) -> NodeConfig:
    """Read and validate `DIR/config.toml`; ConfigError naming the bad value otherwise."""
    path = config_path(data_dir)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{data_dir} is not an iarms-node data directory (no {CONFIG_NAME}); "
            "create one with 'iarms-node init'"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read ({e})") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e
    return config_from_dict(raw, data_dir.resolve(), str(path))


def _get(raw: dict[str, Any], section: str, key: str, where: str, default: Any = None) -> Any:
    value = raw.get(section, {}).get(key, default)
    if value is None:
        raise ConfigError(f"{where}: [{section}] {key} is required")
    return value


def config_from_dict(raw: dict[str, Any], data_dir: Path, where: str) -> NodeConfig:
    """Validate a parsed config; every error names the file, section and key."""
    for section, value in raw.items():
        if section not in SECTIONS or not isinstance(value, dict):
            raise ConfigError(f"{where}: unknown section [{section}]; known: {', '.join(SECTIONS)}")
        unknown = set(value) - SECTIONS[section]
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) in [{section}]: {', '.join(sorted(unknown))}"
            )
    try:
        country = check_alpha3(str(_get(raw, "node", "country", where)), f"{where}: node.country")
    except ValidationError as e:
        raise ConfigError(str(e)) from e
    try:
        db_url = check_db_url(
            resolve_db_url(str(_get(raw, "database", "url", where, DEFAULT_DB_URL)), data_dir)
        )
    except ConfigError as e:
        raise ConfigError(f"{where}: database.url: {e}") from e
    console = parse_listen(
        _get(raw, "console", "listen", where, DEFAULT_CONSOLE), f"{where}: console.listen"
    )
    federation = parse_listen(
        _get(raw, "federation", "listen", where, DEFAULT_FEDERATION), f"{where}: federation.listen"
    )
    if (console.host, console.port) == (federation.host, federation.port):
        raise ConfigError(f"{where}: console.listen and federation.listen must differ")
    public_url = check_public_url(
        _get(raw, "node", "public_url", where, f"http://{federation}"), f"{where}: node.public_url"
    )
    encrypted = _get(raw, "keys", "encrypted", where, False)
    if not isinstance(encrypted, bool):
        raise ConfigError(f"{where}: keys.encrypted must be true or false")
    rate_limit, peer_rate_limits = _rate_limits(raw.get("federation", {}), where)
    key_file = Path(str(_get(raw, "keys", "signing_key", where, KEY_NAME)))
    oprf_file = Path(str(_get(raw, "keys", "oprf_key", where, OPRF_KEY_NAME)))
    hpke_file = Path(str(_get(raw, "keys", "hpke_key", where, HPKE_KEY_NAME)))
    return NodeConfig(
        data_dir=data_dir,
        country=country,
        public_url=public_url,
        database_url=db_url,
        console=console,
        federation=federation,
        signing_key_file=key_file if key_file.is_absolute() else data_dir / key_file,
        key_encrypted=encrypted,
        oprf_key_file=oprf_file if oprf_file.is_absolute() else data_dir / oprf_file,
        hpke_key_file=hpke_file if hpke_file.is_absolute() else data_dir / hpke_file,
        rate_limit=rate_limit,
        peer_rate_limits=peer_rate_limits,
        delivery_backoff=_backoff(raw.get("delivery", {}), where),
        max_envelope_bytes=int(
            _number(
                raw.get("federation", {}),
                "max_envelope_bytes",
                f"{where}: federation",
                DEFAULT_MAX_BYTES,
                ENVELOPE_BYTES,
            )
        ),
        login_throttle=_login_throttle(raw.get("console", {}), where),
        console_limits=_connections(raw, "console", where, CONSOLE_LIMITS),
        federation_limits=_connections(raw, "federation", where, FEDERATION_LIMITS),
        trace_deadlines=_trace_deadlines(raw.get("trace", {}), where),
        budget=_budget(raw.get("statistics", {}), where),
    )


@dataclass(frozen=True, slots=True)
class _Bounds:
    """What a numeric setting may be: `minimum` (excluded if `above`) to `maximum`."""

    minimum: int
    maximum: int
    whole: bool = False
    above: bool = False

    def describe(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        low = f"greater than {self.minimum:,}" if self.above else f"at least {self.minimum:,}"
        return f"{kind} {low} and at most {self.maximum:,}"


COUNT = _Bounds(1, MAX_COUNT, whole=True)
RATE = _Bounds(0, MAX_COUNT, above=True)
SECONDS = _Bounds(0, MAX_SECONDS, above=True)
MULTIPLIER = _Bounds(1, MAX_MULTIPLIER)
ENVELOPE_BYTES = _Bounds(DEFAULT_MAX_BYTES, MAX_ENVELOPE_LIMIT, whole=True)
#: A hop's deadline: a minute at least, so that reminders (one per deadline) never flood.
DEADLINE_SECONDS = _Bounds(60, MAX_SECONDS)


def _number(table: dict[str, Any], key: str, path: str, default: float, bounds: _Bounds) -> float:
    """`table[key]` within `bounds` (`default` if absent); `path` is "FILE: section" for errors.

    Booleans are refused although TOML's `true` is a Python int; NaN fails both
    comparisons and the infinities the bounds.
    """
    if key not in table:
        return default
    value = table[key]
    ok = isinstance(value, int if bounds.whole else (int, float)) and not isinstance(value, bool)
    low_ok = ok and (value > bounds.minimum if bounds.above else value >= bounds.minimum)
    if not (low_ok and value <= bounds.maximum):
        raise ConfigError(f"{path}.{key} must be {bounds.describe()}, got {value!r}")
    return float(value)


def _rate_limit(table: dict[str, Any], path: str, fallback: RateLimitConfig) -> RateLimitConfig:
    return RateLimitConfig(
        capacity=_number(table, "evaluations_burst", path, fallback.capacity, COUNT),
        rate=_number(table, "evaluations_per_second", path, fallback.rate, RATE),
    )


def _rate_limits(
    section: dict[str, Any], where: str
) -> tuple[RateLimitConfig, tuple[tuple[str, RateLimitConfig], ...]]:
    """The node-wide evaluation limit and each `[federation.peer_limits.XXX]` override of it."""
    default = _rate_limit(section, f"{where}: federation", RateLimitConfig())
    tables = section.get("peer_limits", {})
    if not isinstance(tables, dict):
        raise ConfigError(
            f"{where}: federation.peer_limits must hold tables such as [federation.peer_limits.DEU]"
        )
    overrides = []
    for country, table in sorted(tables.items()):
        path = f"{where}: federation.peer_limits.{country}"
        try:
            check_alpha3(country, path)
        except ValidationError as e:
            raise ConfigError(str(e)) from e
        if not isinstance(table, dict):
            raise ConfigError(f"{path} must be a table ([federation.peer_limits.{country}])")
        unknown = set(table) - RATE_LIMIT_KEYS
        if unknown:
            raise ConfigError(
                f"{path}: unknown key(s): {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(RATE_LIMIT_KEYS))}"
            )
        overrides.append((country, _rate_limit(table, path, default)))
    return default, tuple(overrides)


def _backoff(section: dict[str, Any], where: str) -> BackoffConfig:
    """`[delivery]`: how long to wait before retrying a peer that failed."""
    path, default = f"{where}: delivery", BackoffConfig()
    initial = _number(section, "retry_initial_s", path, default.initial, SECONDS)
    maximum = _number(section, "retry_max_s", path, default.maximum, SECONDS)
    multiplier = _number(section, "retry_multiplier", path, default.multiplier, MULTIPLIER)
    failed = _number(section, "max_failed_answers", path, default.max_failed_answers, COUNT)
    if initial > maximum:
        raise ConfigError(
            f"{path}.retry_initial_s ({initial:g}) must not exceed "
            f"delivery.retry_max_s ({maximum:g})"
        )
    return BackoffConfig(
        initial=initial, multiplier=multiplier, maximum=maximum, max_failed_answers=int(failed)
    )


def _login_throttle(section: dict[str, Any], where: str) -> LoginThrottleConfig:
    """`[console]`: how many failed sign-ins an address may make, and within what window."""
    path, default = f"{where}: console", LoginThrottleConfig()
    failures = _number(section, "login_failures", path, default.max_failures, COUNT)
    window = _number(section, "login_window_s", path, default.window.total_seconds(), SECONDS)
    addresses = _number(section, "login_tracked_addresses", path, default.max_addresses, COUNT)
    return LoginThrottleConfig(
        max_failures=int(failures), window=timedelta(seconds=window), max_addresses=int(addresses)
    )


def _trace_deadlines(section: dict[str, Any], where: str) -> TraceDeadlines:
    """`[trace]`: each priority's deadline per hop; an urgent trace's is not the longer."""
    path, default = f"{where}: trace", TraceDeadlines()
    urgent = _number(
        section, "urgent_deadline_s", path, default.urgent.total_seconds(), DEADLINE_SECONDS
    )
    routine = _number(
        section, "routine_deadline_s", path, default.routine.total_seconds(), DEADLINE_SECONDS
    )
    if urgent > routine:
        raise ConfigError(
            f"{path}.urgent_deadline_s ({urgent:g}) must not exceed "
            f"trace.routine_deadline_s ({routine:g})"
        )
    return TraceDeadlines(urgent=timedelta(seconds=urgent), routine=timedelta(seconds=routine))


#: ε as the budget takes it (OpenDP's range for a round: `node.stats.noise`).
EPSILON = _Bounds(0, 100, above=True)


def _budget(section: dict[str, Any], where: str) -> BudgetConfig:
    """`[statistics]`: the ε this node's contributions may spend per month, and per round."""
    path, default = f"{where}: statistics", BudgetConfig()
    monthly = _number(section, "monthly_epsilon", path, default.monthly_epsilon, EPSILON)
    cap = _number(section, "max_epsilon", path, min(default.max_epsilon, monthly), EPSILON)
    if cap > monthly:
        raise ConfigError(
            f"{path}.max_epsilon ({cap:g}) must not exceed statistics.monthly_epsilon ({monthly:g})"
        )
    return BudgetConfig(monthly_epsilon=monthly, max_epsilon=cap)


def _connections(
    raw: dict[str, Any], section: str, where: str, default: ConnectionLimits
) -> ConnectionLimits:
    """`[console]` or `[federation]`: deadlines and caps of that listening socket's connections."""
    table, path = raw.get(section, {}), f"{where}: {section}"
    total = int(_number(table, "max_connections", path, default.max_connections, COUNT))
    per_address = int(
        _number(
            table,
            "max_connections_per_address",
            path,
            min(total, default.max_connections_per_address),
            COUNT,
        )
    )
    if per_address > total:
        raise ConfigError(
            f"{path}.max_connections_per_address ({per_address}) must not exceed "
            f"{section}.max_connections ({total})"
        )
    return ConnectionLimits(
        head_timeout_s=_number(table, "head_timeout_s", path, default.head_timeout_s, SECONDS),
        body_timeout_s=_number(table, "body_timeout_s", path, default.body_timeout_s, SECONDS),
        idle_timeout_s=_number(table, "idle_timeout_s", path, default.idle_timeout_s, SECONDS),
        max_connections=total,
        max_connections_per_address=per_address,
    )


def write_config(data_dir: Path, raw: dict[str, Any]) -> NodeConfig:
    """Validate `raw` and write it as the data directory's config (mode 0600)."""
    config = config_from_dict(raw, data_dir.resolve(), str(config_path(data_dir)))
    fd = os.open(config_path(data_dir), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        tomli_w.dump(raw, f)
    return config
