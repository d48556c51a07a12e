"""The `iarms-node` command line, run as a user runs it (a real process)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from node.app import Node
from node.cli import main
from node.config import load_config
from node.protocol.descriptor import verify_descriptor
from tests.cli_helpers import CLI, run, wait_served


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
        health = json.loads(wait_served(f"http://127.0.0.1:{fed_port}/federation/v1/health", proc))
        assert health["country"] == "FRA"
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


def run_bytes(
    *args: str | bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run with arguments that may be bytes, as a shell passes `$'\\xff'`."""
    return subprocess.run(
        [os.fsencode(CLI), *(os.fsencode(a) for a in args)],
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["lookup", "--serial", "X", "--case-ref", "C", "--make", b"\xff"], "--make"),
        (["lookup", "--serial", "X", "--case-ref", b"\xff"], "--case-ref"),
        (["lookup", "--serial", b"GLK-\xff1", "--case-ref", "C"], "--serial"),
        (["peers", "show", b"D\xffU"], "country"),
        (["peers", "revoke", b"D\xffU"], "country"),
        (["records", "search", "--from", b"2020\xff"], "--from"),
        (["users", "add", b"b\xffb", "--role", "officer"], "name"),
    ],
)
def test_text_that_is_not_utf8_is_refused_naming_the_option(
    data_dir: Path, args: list[str | bytes], option: str
) -> None:
    result = run_bytes(*args, "--data-dir", str(data_dir))
    assert result.returncode == 2
    assert f"error: argument {option}: not valid UTF-8 text" in result.stderr.decode()
    assert b"Traceback" not in result.stderr


def test_a_file_name_that_is_not_utf8_is_still_a_file_name(data_dir: Path, tmp_path: Path) -> None:
    name = os.fsencode(tmp_path) + b"/seized-\xff.csv"
    with open(name, "w", encoding="utf-8") as f:
        f.write("serial_number,make,firearm_type,status\nUTF8-NAME-1,Glock,pistol,stolen\n")
    # A strict stdout (as under LANG=en_US.UTF-8) must not fail on printing the name back;
    # the byte that is not UTF-8 is shown escaped, as any byte that could upset a terminal.
    result = run_bytes(
        "records", "import", name, "--data-dir", str(data_dir), env={"PYTHONIOENCODING": "utf-8"}
    )
    assert result.returncode == 0, result.stderr
    assert b"seized-\\xff.csv: 1 rows, 1 created" in result.stdout
    audit = run("audit", "show", "--json", "--data-dir", str(data_dir)).stdout.splitlines()
    assert json.loads(audit[0])["target"] == "seized-\ufffd.csv"


@pytest.fixture(scope="module")
def with_hits(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the node with 1,500 peers' hits on its records (hit i at minute i)."""
    copy = tmp_path_factory.mktemp("hits") / "fra"
    subprocess.run(["cp", "-a", str(data_dir), str(copy)], check=True)
    with sqlite3.connect(copy / "node.db") as db:
        db.executemany(
            "INSERT INTO hits (record_id, serial_number, peer, at, case_reference, make_given,"
            " make_agrees, lookup_id) VALUES (?, ?, 'DEU', ?, 'case 7', 'Glock', 1, ?)",
            [
                (
                    i,
                    f"HIT-{i}",
                    f"2025-01-0{1 + i // 1440} {i // 60 % 24:02}:{i % 60:02}:00.000000",
                    i.to_bytes(16, "big"),
                )
                for i in range(1500)
            ],
        )
    return copy


def test_hits_are_paged_with_a_notice_on_stderr(with_hits: Path) -> None:
    result = run("hits", "--data-dir", str(with_hits))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1000 and "HIT-1499" in lines[0]
    assert "(more not shown; use --offset 1000" in result.stderr

    result = run("hits", "--json", "--limit", "2", "--offset", "1", "--data-dir", str(with_hits))
    assert [json.loads(line)["serial_number"] for line in result.stdout.splitlines()] == [
        "HIT-1498",
        "HIT-1497",
    ]
    assert "more not shown; use --offset 3" in result.stderr

    result = run("hits", "--json", "--offset", "1498", "--data-dir", str(with_hits))
    assert [json.loads(line)["serial_number"] for line in result.stdout.splitlines()] == [
        "HIT-1",
        "HIT-0",
    ]
    assert result.stderr == ""


@pytest.mark.parametrize(
    "args",
    [
        ["hits", "--limit", "0"],
        ["hits", "--offset", "-1"],
        ["records", "search", "--offset", str(10**20)],
        ["hits", "--offset", "9223372036854775807"],
        ["evidence", "show", "9223372036854775808"],
        ["evidence", "export", "0", "--out", "/tmp/never-made"],
        ["audit", "show", "--limit", "many"],
    ],
)
def test_counts_out_of_range_are_bad_arguments(data_dir: Path, args: list[str]) -> None:
    result = run(*args, "--data-dir", str(data_dir))
    assert result.returncode == 2
    assert "expected a whole number from" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("days", ["0", "-1", "90.5", "nan", "inf", "1e400", "seven"])
def test_grace_days_out_of_range_are_bad_arguments(data_dir: Path, days: str) -> None:
    result = run("rotate-key", "--grace-days", days, "--data-dir", str(data_dir))
    assert result.returncode == 2
    assert f"expected a number of days above 0 and at most 90, got '{days}'" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "shown"),
    [
        (["hits", "\x1b[2J"], 2, "unrecognized arguments: \\x1b[2J"),
        (["peers", "show", "\x1b[2J\r\x9b\u202e"], 1, "\\x1b[2J\\r\\x9b\\u202e is not a peer"),
    ],
)
def test_errors_quote_arguments_escaped(
    data_dir: Path, args: list[str], code: int, shown: str
) -> None:
    result = run(*args, "--data-dir", str(data_dir))
    assert result.returncode == code
    assert shown in result.stderr
    assert not any(c in result.stderr for c in "\x1b\r\x9b\u202e")


def test_a_reader_that_goes_away_ends_the_output_quietly(with_hits: Path) -> None:
    """`iarms-node hits --json | head -1`: 1,000 lines are more than the pipe holds."""
    proc = subprocess.Popen(
        [CLI, "hits", "--json", "--data-dir", str(with_hits)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert json.loads(first)["serial_number"] == "HIT-1499"
    assert stderr == b""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"serial_number\nGLK-1\n---\n", "bulk.csv: line 3: '---' is not a serial number"),
        (
            b"serial_number\n" + b"".join(b"S-%d\n" % i for i in range(10_001)),
            "bulk.csv has 10,001 serials; one lookup checks at most 10,000: split the file",
        ),
        (b"serial,make\nGLK-1,Glock\n", "bulk.csv: the first line must be a header"),
        (b"serial_number\n\n", "bulk.csv: it has no serial numbers under its header"),
        (b"serial_number\n\xffGLK\n", "bulk.csv: it is not UTF-8 text"),
    ],
)
def test_a_bad_bulk_file_is_refused_naming_the_file_and_line(
    data_dir: Path, tmp_path: Path, content: bytes, message: str
) -> None:
    bulk = tmp_path / "bulk.csv"
    bulk.write_bytes(content)
    result = run("lookup", "--bulk", str(bulk), "--case-ref", "FR-1", "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert f"iarms-node: {tmp_path}/{message}" in result.stderr
    assert result.stderr.count("\n") == 1


def test_make_with_bulk_is_refused(data_dir: Path, tmp_path: Path) -> None:
    bulk = tmp_path / "bulk.csv"
    bulk.write_text("serial_number\nGLK-1\n", encoding="utf-8")
    result = run(
        "lookup",
        "--bulk",
        str(bulk),
        "--make",
        "Glock",
        "--case-ref",
        "FR-1",
        "--data-dir",
        str(data_dir),
    )
    assert result.returncode == 2
    assert "--make applies to --serial; give a make column in the CSV for --bulk" in result.stderr


def test_a_serial_that_starts_with_a_dash(data_dir: Path) -> None:
    assert "--serial=-12345" in run("lookup", "--help").stdout
    result = run("lookup", "--serial=-12345", "--case-ref", "FR-1", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "no active peers" in result.stderr


def _authenticated(data_dir: Path, name: str, password: str) -> bool:
    """Whether `password` signs `name` in, and whether they must change it (None: refused)."""

    async def check() -> bool:
        node = await Node.open(load_config(data_dir))
        try:
            user = await node.users.authenticate(name, password, address="192.0.2.1")
        finally:
            await node.close()
        return user.must_change_password

    return asyncio.run(check())


def test_users_password_resets_a_password_that_must_be_changed(
    data_dir: Path, tmp_path: Path
) -> None:
    dir_args = ("--data-dir", str(data_dir))
    assert run("users", "add", "officer.reset", "--role", "officer", *dir_args).returncode == 0
    result = run("users", "password", "officer.reset", *dir_args)
    assert result.returncode == 0, result.stderr
    [line] = [x for x in result.stdout.splitlines() if x.startswith("one-time password: ")]
    password = line.removeprefix("one-time password: ")
    assert "officer.reset must change it at next login" in result.stdout
    assert _authenticated(data_dir, "officer.reset", password) is True
    chosen = tmp_path / "password.txt"
    chosen.write_text("chosen by the admin\n", encoding="utf-8")
    given = run("users", "password", "officer.reset", "--password-file", str(chosen), *dir_args)
    assert given.returncode == 0 and "chosen by the admin" not in given.stdout
    assert _authenticated(data_dir, "officer.reset", "chosen by the admin") is True
    audit = [json.loads(x) for x in run("audit", "show", "--json", *dir_args).stdout.splitlines()]
    resets = [e for e in audit if e["action"] == "user.password.reset"]
    assert [e["target"] for e in resets] == ["user/officer.reset"] * 2
    assert all(e["actor"].startswith("cli") for e in resets)
    unknown = run("users", "password", "nobody.here", *dir_args)
    assert unknown.returncode == 1 and "no user named 'nobody.here'" in unknown.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["records", "search", "--make", "Glo\0ck"], "--make"),
        (["records", "search", "--model", "G\0"], "--model"),
        (["records", "export", "-", "--serial", "A\0"], "--serial"),
        (["users", "add", "bob\0", "--role", "officer"], "name"),
        (["users", "password", "bob\0"], "name"),
        (["users", "approve", "bob\0"], "name"),
        (["peers", "show", "D\0U"], "country"),
        (["lookup", "--serial", "X", "--case-ref", "case\0"], "--case-ref"),
    ],
)
def test_a_nul_in_an_argument_is_refused_naming_the_option(
    data_dir: Path, args: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shell cannot pass a NUL (argv is C strings), but a program calling `main` can."""
    with pytest.raises(SystemExit) as exited:
        main([*args, "--data-dir", str(data_dir)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {option}: contains a NUL character (U+0000)" in err
    assert "\0" not in err


#: What no command that does not need it may load: migrations, the HTTP stack, the console,
#: libsodium (the OPRF), the progress bar.
HEAVY = (
    *("alembic", "aiohttp", "admin_ui", "rbcl", "tqdm", "node.server"),
    *("node.lookup.querier", "node.lookup.owner", "node.lookup.oprf", "node.lookup.oprf_workers"),
)


def _modules_after(*args: str) -> set[str]:
    """The modules loaded once `iarms-node ARGS` has run, in a fresh interpreter."""
    code = (
        "import sys\nfrom node.cli import main\ntry:\n    main(sys.argv[1:])\n"
        "except SystemExit:\n    pass\nprint(' '.join(sys.modules), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    return set(done.stderr.splitlines()[-1].split())


def _loaded(modules: set[str], names: tuple[str, ...]) -> set[str]:
    return {m for m in modules if any(m == n or m.startswith(f"{n}.") for n in names)}


def test_help_imports_no_node_services_and_no_database(data_dir: Path) -> None:
    modules = _modules_after("--help")
    assert "node.cli.records" in modules  # the parsers were built
    assert _loaded(modules, (*HEAVY, "sqlalchemy", "node.app", "node.store", "argon2")) == set()


@pytest.mark.parametrize(
    "args",
    [
        ["records", "search", "--serial", "X"],
        ["custody", "search", "--serial", "X"],
        ["peers", "list"],
    ],
)
def test_a_command_imports_only_what_it_uses(data_dir: Path, args: list[str]) -> None:
    modules = _modules_after(*args, "--data-dir", str(data_dir))
    assert "node.app" in modules  # it opened the node
    assert _loaded(modules, HEAVY) == set()


def test_reading_the_config_needs_no_database_library() -> None:
    code = "import sys, node.config; print(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert _loaded(set(done.stdout.split()), ("sqlalchemy", "node.store", "aiohttp")) == set()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("", "--case-ref: give the case this lookup is for (the owner of a hit is told it)"),
        ("   ", "--case-ref: give the case this lookup is for"),
        ("c" * 101, "--case-ref: at most 100 characters (this one has 101)"),
        ("FR\u202e1", "--case-ref: character 3 (U+202E) is not printable on one line"),
        ("FR\t1", "--case-ref: character 3 is a control character (U+0009)"),
    ],
)
def test_a_lookup_needs_a_case_reference_by_the_one_rule(
    data_dir: Path, case: str, message: str
) -> None:
    result = run("lookup", "--serial", "X-1", "--case-ref", case, "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert result.stderr.startswith(f"iarms-node: {message}")
    assert result.stderr.count("\n") == 1


def test_a_lookup_without_a_case_reference_is_a_usage_error(data_dir: Path) -> None:
    result = run("lookup", "--serial", "X-1", "--data-dir", str(data_dir))
    assert result.returncode == 2
    assert "the following arguments are required: --case-ref" in result.stderr
