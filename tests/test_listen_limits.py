"""The pure part of the connection defences: the abuse tally, caps under the file limit."""

from __future__ import annotations

import logging

import pytest

from node.web.limits import (
    CONSOLE_LIMITS,
    FEDERATION_LIMITS,
    Abuse,
    AbuseLog,
    ConnectionLimits,
    abuse_texts,
    address_key,
    fit_to_fd_limit,
)


def test_abuse_is_one_line_per_kind_per_window_with_counts() -> None:
    log = AbuseLog("federation API", abuse_texts(FEDERATION_LIMITS), every_s=60)
    for i in range(2950):
        log.note(Abuse.OVER_ADDRESS_CAP, f"10.0.0.{i % 30}", now=100 + i / 100)
    log.note(Abuse.BODY_TIMEOUT, "10.0.1.1", now=130)
    assert log.due(159.9) == []
    assert log.due(160) == [
        (
            logging.WARNING,
            "federation API: closed 2,950 connection(s) over the per-address limit (64) "
            "from 30 addresses in the last 60 s",
        )
    ]
    assert log.due(170) == []  # counted once: the window was reset
    log.note(Abuse.OVER_ADDRESS_CAP, "10.0.0.1", now=171)
    [(_, body)] = log.due(190)
    assert body.startswith("federation API: closed 1 connection(s) whose request body")
    assert body.endswith("within 30 s from 1 address in the last 60 s")
    assert log.due(230) == []  # the second window opened at 171
    [(_, again)] = log.due(231)
    assert "closed 1 connection(s) over the per-address limit" in again


def test_silent_connections_are_info_and_accept_errors_have_no_address() -> None:
    log = AbuseLog("console", abuse_texts(CONSOLE_LIMITS), every_s=60)
    log.note(Abuse.SILENT, "127.0.0.1", now=0)
    for _ in range(3):
        log.note(Abuse.ACCEPT_ERROR, None, now=0)
    assert log.drain() == [
        (
            logging.INFO,
            "console: closed 1 connection(s) that sent nothing within 10 s "
            "from 1 address in the last 60 s",
        ),
        (
            logging.WARNING,
            "console: could not accept 3 connection(s) for want of file "
            "descriptors or memory (ulimit -n, max_connections) in the last 60 s",
        ),
    ]
    assert log.drain() == []


def test_distinct_addresses_are_remembered_up_to_a_bound() -> None:
    log = AbuseLog("x", abuse_texts(FEDERATION_LIMITS), every_s=1, max_addresses=10)
    for i in range(50):
        log.note(Abuse.HEAD_TIMEOUT, f"10.0.0.{i}", now=0)
    [(_, line)] = log.due(1)
    assert "closed 50 connection(s)" in line and "from 10+ addresses" in line


def test_caps_that_fit_the_file_limit_are_kept() -> None:
    limits = {"console": CONSOLE_LIMITS, "federation API": FEDERATION_LIMITS}
    assert fit_to_fd_limit(limits, 20_000) == (limits, None)


def test_caps_are_shrunk_in_proportion_under_a_low_file_limit() -> None:
    limits = {"console": CONSOLE_LIMITS, "federation API": FEDERATION_LIMITS}
    fitted, warning = fit_to_fd_limit(limits, 1024)
    assert fitted["console"].max_connections == 768 * 512 // 1536
    assert fitted["federation API"].max_connections == 768 * 1024 // 1536
    assert fitted["console"].max_connections_per_address == fitted["console"].max_connections
    assert fitted["federation API"].max_connections_per_address == 64
    assert fitted["console"].head_timeout_s == CONSOLE_LIMITS.head_timeout_s
    assert warning is not None
    assert "may open only 1024 files" in warning and "federation API 512" in warning


def test_a_tiny_file_limit_still_leaves_each_socket_a_connection() -> None:
    fitted, _ = fit_to_fd_limit({"a": ConnectionLimits(), "b": ConnectionLimits()}, 100)
    assert [x.max_connections for x in fitted.values()] == [1, 1]


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("127.0.0.2", "127.0.0.2"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::7", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address", "not an address"),
    ],
)
def test_one_ipv6_subscriber_is_one_address(host: str, key: str) -> None:
    assert address_key(host) == key


def test_deadlines_are_checked_often_enough() -> None:
    assert FEDERATION_LIMITS.sweep_s == 1.0
    assert ConnectionLimits(head_timeout_s=1, body_timeout_s=1, idle_timeout_s=1).sweep_s == 0.25
    assert ConnectionLimits(head_timeout_s=0.01).sweep_s == 0.05
