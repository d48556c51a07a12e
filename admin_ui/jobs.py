"""CSV imports started from the console: the upload spool and the in-app job table.

What a job imports is its `ImportKind`: records (`/records/import`) or custody
events (`/custody/import`), each imported by its service's `ImportService`,
with the same upload, job and report. An upload is streamed in chunks to a
private temporary file under the node's data directory (`uploads/`), refusing
it once it passes the size limit. The
import then runs as an asyncio task registered in `ImportJobs`, which keeps
its progress (bytes read of the file's size) and, at the end, its report or
error for the job page. The temporary file is removed when the task ends,
however it ends; files left behind by a crash are swept when the console starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import logging
import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from aiohttp import BodyPartReader, web

from node.app import Node
from node.errors import IarmsError, NotFoundError, StorageFullError, UploadTooLargeError
from node.records.importer import ImportService
from node.records.model import ImportReport

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 512 * 1024 * 1024
UPLOAD_DIR = "uploads"
UPLOAD_PREFIX = "import-"
KEEP_FINISHED = 100
CHUNK = 1 << 16


class JobState(enum.StrEnum):
    """Where an import job is."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ImportKind:
    """What the console imports at one address, and with which of the node's importers."""

    #: The upload form's address; a job's page is `<path>/<job id>`.
    path: str
    #: What the rows are, for headings ("records").
    title: str
    #: The page the imported rows are seen on, and its name.
    back: str
    back_label: str
    importer: Callable[[Node], ImportService]


RECORDS_IMPORT = ImportKind(
    "/records/import", "records", "/records", "Records", lambda node: node.imports
)
CUSTODY_IMPORT = ImportKind(
    "/custody/import",
    "custody events",
    "/custody",
    "Custody registry",
    lambda node: node.custody.imports,
)
IMPORT_KINDS = (RECORDS_IMPORT, CUSTODY_IMPORT)


@dataclass(slots=True)
class ImportJob:
    """One console import: who started it, on which file, how far it got, how it ended."""

    id: str
    kind: ImportKind
    actor: str
    filename: str
    total_bytes: int
    started_at: datetime
    bytes_read: int = 0
    state: JobState = JobState.RUNNING
    report: ImportReport | None = None
    error: str | None = None
    finished_at: datetime | None = None

    @property
    def percent(self) -> int:
        """How much of the file has been read, 0-100."""
        if self.state is JobState.DONE or self.total_bytes <= 0:
            return 100 if self.state is JobState.DONE else 0
        return min(100, self.bytes_read * 100 // self.total_bytes)

    def progress(self, bytes_read: int) -> None:
        """The importer's progress callback."""
        self.bytes_read = bytes_read

    def to_json(self) -> dict[str, Any]:
        """The job as its page's `.json` twin shows it."""
        report = self.report
        return {
            "id": self.id,
            "state": self.state.value,
            "filename": self.filename,
            "bytes_read": self.bytes_read,
            "total_bytes": self.total_bytes,
            "percent": self.percent,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "report": None
            if report is None
            else {
                "rows": report.rows,
                "created": report.created,
                "duplicates": report.duplicates,
                "rejected": report.rejected,
                "errors": [
                    {"line": e.line, "column": e.column, "reason": e.reason} for e in report.errors
                ],
            },
        }


class _Spool:
    """A private temporary file that an upload is written to."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=UPLOAD_PREFIX, suffix=".csv", dir=directory)
        self.path = Path(name)
        self.size = 0
        self._file: IO[bytes] = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self.size += len(chunk)

    def close(self) -> None:
        self._file.close()

    def discard(self) -> None:
        try:
            with contextlib.suppress(OSError):  # a full disk cannot take the rest: it goes anyway
                self._file.close()
        finally:
            self.path.unlink(missing_ok=True)


def size_text(size: int) -> str:
    """A byte count for people (MiB above one MiB)."""
    return f"{size / (1 << 20):.0f} MiB" if size >= 1 << 20 else f"{size} bytes"


async def receive_upload(part: BodyPartReader, directory: Path, limit: int) -> tuple[Path, int]:
    """Stream an uploaded file to a temporary file in `directory`; return its path and size.

    Raises:
        UploadTooLargeError: if the file is larger than `limit` bytes.
        StorageFullError: if the disk fills while the file is written.
        Nothing is left on disk after either.
    """
    try:
        spool = _Spool(directory)
    except OSError as e:
        raise _spool_error(e, directory) from e
    try:
        while chunk := await part.read_chunk(CHUNK):
            if spool.size + len(chunk) > limit:
                raise UploadTooLargeError(
                    f"file: the file is larger than the {size_text(limit)} limit; "
                    "split it into smaller files and import them one by one"
                )
            spool.write(chunk)
        spool.close()  # the last buffered bytes reach the disk here
    except BaseException as e:
        spool.discard()
        if isinstance(e, OSError):
            raise _spool_error(e, directory) from e
        raise
    return spool.path, spool.size


def _spool_error(error: OSError, directory: Path) -> OSError | StorageFullError:
    """A full disk as one readable line (StorageFullError); any other OSError as it is."""
    if error.errno != errno.ENOSPC:
        return error
    return StorageFullError(
        str(directory),
        error.strerror or "no space left on device",
        "nothing was imported; free some space and upload the file again",
    )


class ImportJobs:
    """The console's import jobs, kept in memory while the console runs."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._jobs: dict[str, ImportJob] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def upload_dir(self) -> Path:
        """Where uploads are spooled: inside the node's private data directory."""
        return self._node.config.data_dir / UPLOAD_DIR

    def start(
        self, kind: ImportKind, path: Path, filename: str, size: int, actor: str
    ) -> ImportJob:
        """Start importing the spooled file `path` in the background; it is removed afterwards."""
        now = self._node.clock.now()
        job = ImportJob(secrets.token_urlsafe(12), kind, actor, filename, size, now)
        self._forget_old()
        self._jobs[job.id] = job
        self._tasks[job.id] = asyncio.create_task(self._run(job, path), name=f"import {job.id}")
        return job

    def get(self, kind: ImportKind, job_id: str, actor: str, admin: bool) -> ImportJob:
        """A job of `kind` its starter (or an admin) may see; NotFoundError for anyone else."""
        job = self._jobs.get(job_id)
        if job is None or job.kind is not kind or not (admin or job.actor == actor):
            raise NotFoundError(
                f"no import job {job_id!r} (jobs are forgotten when the node restarts)"
            )
        return job

    async def _run(self, job: ImportJob, path: Path) -> None:
        try:
            job.report = await job.kind.importer(self._node).import_csv(
                path, job.actor, progress=job.progress, source=job.filename
            )
            job.state = JobState.DONE
        except IarmsError as e:
            job.error = str(e).replace(str(path), job.filename)
            job.state = JobState.FAILED
        except Exception:
            log.exception("import job %s of %s failed", job.id, job.filename)
            job.error = "the import failed unexpectedly; the node's log has the details"
            job.state = JobState.FAILED
        except asyncio.CancelledError:
            job.error = "the import was stopped because the console shut down"
            job.state = JobState.FAILED
            raise
        finally:
            job.finished_at = self._node.clock.now()
            path.unlink(missing_ok=True)
            self._tasks.pop(job.id, None)

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state is not JobState.RUNNING]
        for job in finished[: max(0, len(finished) - KEEP_FINISHED + 1)]:
            del self._jobs[job.id]

    def sweep(self) -> None:
        """Remove upload files left behind by a console that did not shut down cleanly."""
        if self.upload_dir.is_dir():
            for path in self.upload_dir.glob(f"{UPLOAD_PREFIX}*.csv"):
                path.unlink(missing_ok=True)

    async def close(self) -> None:
        """Stop the running imports (each removes its file) and wait for them."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


JOBS = web.AppKey("import_jobs", ImportJobs)
MAX_UPLOAD = web.AppKey("max_upload", int)
