"""CSV import from the console: the upload form, the upload itself and the job page.

One set of views serves every `ImportKind` (records, custody events): the
kind is the one whose address the request is under. The upload arrives as
multipart form data whose first part, the CSRF token, the session middleware
has already checked; the file part is streamed to a temporary file (never
held in memory) and imported by a background job.
"""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath

from aiohttp import BodyPartReader, web

from admin_ui.auth import MULTIPART, actor, get_node, require_user, requires
from admin_ui.jobs import (
    IMPORT_KINDS,
    JOBS,
    MAX_UPLOAD,
    ImportKind,
    JobState,
    receive_upload,
    size_text,
)
from admin_ui.render import field_errors, page
from node.accounts.model import Role
from node.errors import UploadTooLargeError, ValidationError

MAX_FILENAME_CHARS = 200


def _kind(request: web.Request) -> ImportKind:
    """The kind of import whose address the request is under."""
    return next(k for k in IMPORT_KINDS if request.path.startswith(k.path))


def _import_form(
    request: web.Request, errors: dict[str, str] | None = None, status: int = 200
) -> web.Response:
    kind = _kind(request)
    rows = kind.importer(get_node(request)).kind
    context = {
        "kind": kind,
        "errors": errors or {},
        "columns": rows.columns,
        "required": sorted(rows.required),
        "limit": size_text(request.app[MAX_UPLOAD]),
    }
    return page(request, "import.html", context, status=status)


def _filename(part: BodyPartReader) -> str:
    """The uploaded file's own name, without any directory a browser may have sent."""
    raw = part.filename or "upload.csv"
    name = PureWindowsPath(PurePosixPath(raw).name).name
    return "".join(ch for ch in name if ch.isprintable())[:MAX_FILENAME_CHARS] or "upload.csv"


async def _file_part(request: web.Request) -> BodyPartReader:
    reader = request.get(MULTIPART)
    part = await reader.next() if reader is not None else None
    if not isinstance(part, BodyPartReader) or part.name != "file" or not part.filename:
        raise ValidationError("file: choose a CSV file to import", "file")
    return part


@requires(Role.OFFICER)
async def import_form(request: web.Request) -> web.Response:
    """GET /records/import, /custody/import: the upload form, with the columns a file may have."""
    return _import_form(request)


@requires(Role.OFFICER)
async def import_upload(request: web.Request) -> web.Response:
    """POST /records/import, /custody/import: spool the file, start the job, show its page."""
    limit = request.app[MAX_UPLOAD]
    jobs = request.app[JOBS]
    try:
        if (request.content_length or 0) > limit + (1 << 16):
            raise UploadTooLargeError(
                f"file: the file is larger than the {size_text(limit)} limit; "
                "split it into smaller files and import them one by one"
            )
        part = await _file_part(request)
        name = _filename(part)
        path, size = await receive_upload(part, jobs.upload_dir, limit)
    except ValidationError as e:
        return _import_form(request, field_errors(e), status=e.status)
    kind = _kind(request)
    job = jobs.start(kind, path, name, size, actor(request))
    raise web.HTTPSeeOther(f"{kind.path}/{job.id}")


@requires(Role.OFFICER)
async def import_job(request: web.Request) -> web.Response:
    """GET /records/import/{job}(.json) (or /custody/...): progress while running, then the
    import report."""
    user = require_user(request)
    job_id = request.match_info["job"]
    job = request.app[JOBS].get(_kind(request), job_id, user.name, user.may(Role.ADMIN))
    context = {"job": job, "running": job.state is JobState.RUNNING}
    return page(request, "import_job.html", context, data=job.to_json())
