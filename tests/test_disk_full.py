"""A full disk stops an import with one line that says what was kept; nothing is lost.

The disk fills for real, in-process: SQLite's `PRAGMA max_page_count` makes
the node's own connections hit SQLITE_FULL ("database or disk is full"), the
error SQLite gives when the disk is full; PostgreSQL's disk-full error
(SQLSTATE 53100) is raised by the server itself; /dev/full refuses every
write with ENOSPC.
"""

from __future__ import annotations

import asyncio
import errno
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from admin_ui import jobs
from admin_ui.jobs import RECORDS_IMPORT, ImportJobs, JobState
from node.app import Node
from node.cli import main
from node.config import load_config
from node.errors import StorageFullError
from node.initialise import init_node
from node.store import database
from node.store.database import Database
from tests.console_helpers import ADMIN_PASSWORD, console_for

HEADER = "serial_number,make,firearm_type,status\n"
ADVICE = "free some space and run the same import again (rows already stored are not stored twice)"


def write_rows(path: Path, count: int) -> Path:
    path.write_text(
        HEADER + "".join(f"DF-{i},Glock,pistol,stolen\n" for i in range(count)), encoding="utf-8"
    )
    return path


def new_node(data_dir: Path) -> Path:
    asyncio.run(init_node(data_dir, "FRA", admin_password="a long admin password"))
    return data_dir


def pages(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "node.db") as db:
        return int(db.execute("PRAGMA page_count").fetchone()[0])


def records(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "node.db") as db:
        return int(db.execute("SELECT count(*) FROM records").fetchone()[0])


def limit_pages(monkeypatch: pytest.MonkeyPatch, most: int) -> None:
    """Every SQLite connection the node opens from now on may grow its file to `most` pages."""
    pragmas = (*database.SQLITE_PRAGMAS, f"PRAGMA max_page_count={most}")
    monkeypatch.setattr(database, "SQLITE_PRAGMAS", pragmas)


def test_a_full_disk_stops_an_import_in_one_line_and_the_same_import_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = new_node(tmp_path / "fra")
    first_batch = write_rows(tmp_path / "first.csv", 50_000)  # the importer's batch size
    seized = write_rows(tmp_path / "seized.csv", 60_000)
    # How large the database is once the first batch is stored: measured on a copy.
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    assert main(["records", "import", str(first_batch), "--data-dir", str(copy)]) == 0
    limit_pages(monkeypatch, pages(copy) + 20)  # the second batch needs hundreds more
    capsys.readouterr()

    assert main(["records", "import", str(seized), "--data-dir", str(data)]) == 1
    out, err = capsys.readouterr()
    assert err == (
        f"iarms-node: the disk holding {data} is full (database or disk is full); the first "
        f"50,000 rows of seized.csv were imported (50,000 new records), the rest were not; "
        f"{ADVICE}\n"
    )
    assert out == ""
    assert records(data) == 50_000  # the committed batch is intact

    monkeypatch.undo()  # space freed
    assert main(["records", "import", str(seized), "--data-dir", str(data)]) == 0
    out, err = capsys.readouterr()
    assert "60000 rows, 10000 created, 50000 already present, 0 rejected" in out
    assert records(data) == 60_000


async def test_the_consoles_import_job_reports_a_full_disk_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "fra"
    await init_node(data, "FRA", admin_password="a long admin password")
    limit_pages(monkeypatch, pages(data) + 2)
    node = await Node.open(load_config(data))
    try:
        jobs = ImportJobs(node)
        spooled = write_rows(tmp_path / "upload.tmp", 5_000)
        job = jobs.start(RECORDS_IMPORT, spooled, "seized.csv", spooled.stat().st_size, "officer")
        await next(t for t in asyncio.all_tasks() if t.get_name() == f"import {job.id}")
    finally:
        await node.close()
    assert job.state is JobState.FAILED
    assert job.error == (
        f"the disk holding {data} is full (database or disk is full); the first 0 rows of "
        f"seized.csv were imported (0 new records), the rest were not; {ADVICE}"
    )


async def fill_the_disk(db: Database) -> None:
    """Write more than the disk holds, in one transaction."""
    async with db.write() as conn:
        if db.is_sqlite:
            await conn.exec_driver_sql("PRAGMA max_page_count=2")
            await conn.exec_driver_sql("CREATE TABLE filler (b BLOB)")
            await conn.exec_driver_sql("INSERT INTO filler VALUES (zeroblob(100000))")
        else:  # what PostgreSQL answers when it cannot extend a file
            await conn.execute(
                text(
                    "DO $$ BEGIN RAISE EXCEPTION 'could not extend file' "
                    "USING ERRCODE = '53100'; END $$"
                )
            )


async def test_the_store_names_a_full_disk_on_each_backend(db_url: str) -> None:
    db = Database(db_url)
    try:
        with pytest.raises(StorageFullError) as caught:
            await fill_the_disk(db)
    finally:
        await db.close()
    error = caught.value
    assert error.code == "storage_full"
    if db.is_sqlite:
        assert (error.where, error.reason) == (
            str(Path(db_url.split(":///")[1]).parent),
            "database or disk is full",
        )
    else:
        assert error.where.startswith("the PostgreSQL database ")
        assert error.reason == "could not extend file"
    assert "\n" not in str(error)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_output_to_a_full_disk_is_one_line(tmp_path: Path) -> None:
    data = new_node(tmp_path / "fra")
    cli = str(Path(sys.executable).parent / "iarms-node")
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [cli, "audit", "show", "--json", "--data-dir", str(data)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr == (
        "iarms-node: the disk holding the standard output's file is full "
        "(No space left on device); free some space and try again\n"
    )


async def test_a_full_disk_while_an_upload_is_spooled_is_one_line_and_leaves_no_file(
    sqlite_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spool's second chunk finds the disk full: a 507 page that says so, nothing kept."""
    written: list[int] = []
    real_write = jobs._Spool.write

    def fill_up(spool: jobs._Spool, chunk: bytes) -> None:
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(chunk))
        real_write(spool, chunk)

    monkeypatch.setattr(jobs._Spool, "write", fill_up)
    async with console_for(sqlite_node) as console:
        await console.login_as("admin", ADMIN_PASSWORD)
        content = HEADER.encode() + b"DF-1,Glock,pistol,stolen\n" * 20_000  # several chunks
        response = await console.upload(content)
        text = await response.text()
    assert response.status == 507 and written
    upload_dir = sqlite_node.config.data_dir / jobs.UPLOAD_DIR
    assert f"the disk holding {upload_dir} is full (No space left on device)" in text
    assert "nothing was imported; free some space and upload the file again" in text
    assert "incident" not in text
    assert list(upload_dir.iterdir()) == []
    assert await sqlite_node.records.count() == 0
