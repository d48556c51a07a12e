"""The `iarms-node` command line, run as a user runs it (a real process)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from node.config import load_config
from node.protocol.descriptor import verify_descriptor
from tests.harness import init_args

CLI = str(Path(sys.executable).parent / "iarms-node")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("cli")
    password = base / "admin.txt"
    password.write_text("a long admin password\n", encoding="utf-8")
    data = base / "fra"
    result = run(*init_args(data, password))
    assert result.returncode == 0, result.stderr
    assert "signing key fingerprint:" in result.stdout
    return data


def test_init_refuses_an_existing_node(data_dir: Path) -> None:
    result = run("init", "--country", "DEU", "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert "refusing to overwrite" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["init", "--country", "ZZZ", "--data-dir", "/tmp/never-made"], 1, "'ZZZ' is not an ISO"),
        (
            ["init", "--country", "FRA", "--data-dir", "/tmp/never-made", "--console-listen", "x"],
            1,
            "--console-listen: expected HOST:PORT",
        ),
        (["records", "search"], 2, "--data-dir is required"),
        (
            ["records", "search", "--data-dir", "/nonexistent"],
            1,
            "not an iarms-node data directory",
        ),
        (["users", "add", "bob", "--data-dir", "/tmp"], 2, "--role"),
    ],
)
def test_bad_arguments_get_a_clear_error(args: list[str], code: int, message: str) -> None:
    result = run(*args)
    assert result.returncode == code
    assert message in result.stderr
    assert not Path("/tmp/never-made").exists()


def test_import_search_export(data_dir: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "seized.csv"
    csv_file.write_text(
        "serial_number,make,firearm_type,status,notes,external_id\n"
        "CLI-001,Glock,pistol,stolen,=cmd|' /C calc'!A0,c1\n"
        "CLI-002,Glock,pistol,unknown-status,,c2\n"
        "CLI-003,Zastava,rifle,trafficked,,c3\n",
        encoding="utf-8",
    )
    result = run("records", "import", str(csv_file), "--data-dir", str(data_dir))
    assert result.returncode == 3
    assert "3 rows, 2 created, 0 already present, 1 rejected" in result.stdout
    assert "line 3, column status: 'unknown-status' is not one of" in result.stderr

    result = run("records", "search", "--serial", "cli-OO1", "--json", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["serial_number"] for r in rows] == ["CLI-001"]
    assert {"id", "serial_number", "make", "external_id", "event_date"} <= set(rows[0])

    result = run(
        "records",
        "search",
        "--make",
        "zastava arms",
        "--type",
        "rifle",
        "--json",
        env={"IARMS_DATA_DIR": str(data_dir)},
    )
    assert [json.loads(line)["serial_number"] for line in result.stdout.splitlines()] == ["CLI-003"]

    out = tmp_path / "export.csv"
    result = run("records", "export", str(out), "--status", "stolen", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert text.startswith("serial_number,make,model,")
    assert "'=cmd|' /C calc'!A0" in text and "CLI-003" not in text

    result = run("records", "search", "--from", "2020-02-31", "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert "from: '2020-02-31' is not a date in the form YYYY-MM-DD" in result.stderr


def test_import_of_an_unreadable_file(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(
        "serial_number,make,firearm_type,status\nA,Škoda,pistol,lost\n".encode("cp1250")
    )
    result = run("records", "import", str(bad), "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert "not UTF-8 text" in result.stderr
    result = run("records", "import", str(tmp_path / "missing.csv"), "--data-dir", str(data_dir))
    assert result.returncode == 1 and "no such file" in result.stderr


def test_users_need_approval(data_dir: Path) -> None:
    result = run(
        "users",
        "add",
        "customs.lyon",
        "--role",
        "officer",
        "--external",
        "--data-dir",
        str(data_dir),
    )
    assert result.returncode == 0, result.stderr
    assert "pending approval" in result.stdout and "one-time password:" in result.stdout
    listed = {
        json.loads(x)["name"]: json.loads(x)
        for x in run("users", "list", "--json", "--data-dir", str(data_dir)).stdout.splitlines()
    }
    assert listed["customs.lyon"]["status"] == "pending"
    assert run("users", "approve", "customs.lyon", "--data-dir", str(data_dir)).returncode == 0
    again = run("users", "approve", "customs.lyon", "--data-dir", str(data_dir))
    assert again.returncode == 1 and "not pending" in again.stderr
    bad = run("users", "add", "x", "--role", "chief", "--data-dir", str(data_dir))
    assert bad.returncode == 1 and "role: 'chief' is not one of" in bad.stderr


def test_audit_verify_names_the_altered_entry(data_dir: Path, tmp_path: Path) -> None:
    assert run("audit", "verify", "--data-dir", str(data_dir)).returncode == 0
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(data_dir), str(copy)], check=True)
    with sqlite3.connect(copy / "node.db") as db:
        db.execute("UPDATE audit_log SET target = 'forged' WHERE seq = 2")
    result = run("audit", "verify", "--data-dir", str(copy))
    assert result.returncode == 1
    assert "BROKEN at entry 2" in result.stderr


def test_identity(data_dir: Path) -> None:
    info = json.loads(run("identity", "--json", "--data-dir", str(data_dir)).stdout)
    assert info["country"] == "FRA" and len(info["fingerprint"]) == 64


def test_run_serves_and_stops_cleanly(data_dir: Path) -> None:
    """Even when started by a parent that blocks SIGTERM (the child inherits the mask)."""
    fed_port = load_config(data_dir).federation.port
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        proc = subprocess.Popen(
            [CLI, "run", "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        health = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{fed_port}/federation/v1/health", timeout=2
                ) as r:
                    health = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.1)
        assert health is not None and health["country"] == "FRA"
        with urllib.request.urlopen(
            f"http://127.0.0.1:{fed_port}/federation/v1/descriptor", timeout=2
        ) as r:
            descriptor = verify_descriptor(r.read())
        identity = json.loads(run("identity", "--json", "--data-dir", str(data_dir)).stdout)
        assert descriptor.country == "FRA"
        assert health["fingerprint"] == identity["fingerprint"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "shutting down" in proc.stdout.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_pending_user_is_activated_only_by_approval(data_dir: Path) -> None:
    assert (
        run(
            "users",
            "add",
            "border.nice",
            "--role",
            "officer",
            "--external",
            "--data-dir",
            str(data_dir),
        ).returncode
        == 0
    )
    result = run("users", "enable", "border.nice", "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert "pending; approve the account instead" in result.stderr
