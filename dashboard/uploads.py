"""Where the New run form's data file may come from: an upload, or a file in a folder the operator lists.

Uploads arrive as ``dcc.Upload`` delivers them (``"data:text/csv;base64,..."``), at most
:data:`UPLOAD_LIMIT` bytes, and are stored content-addressed as ``<data folder>/uploads/<sha256>.csv``
(written to a temporary name and renamed, so a reader never sees half a file), with the original
name kept beside it in ``<sha256>.json`` for display. Files named from the operator's data roots
(``--data-root``, ``DEEPSCOPE_DATA_ROOTS``) must be regular files inside a root after resolving
symlinks, and no larger than :data:`UPLOAD_LIMIT`; nothing else on the server can be named.
Messages quote a file's content only for the person's own upload (see :meth:`FormFiles.quotes`).
No Dash here: ``dashboard/views/new_run/page.py`` wires it.

Example::

    files = FormFiles(uploads=Path("data/uploads"), roots=(Path("/srv/corpora"),))
    path = files.store_upload("data:text/csv;base64,dGV4dCxsYWJlbAo=", "reviews.csv")
    files.resolve(files.token(path))          # the same path: a token the form may carry
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from backend.datafiles import DataFileError, check_data_file, find_in_roots, human_size

# One place for the size of a data file the dashboard accepts (upload or named). The lead sets
# Flask's MAX_CONTENT_LENGTH from UPLOAD_REQUEST_LIMIT: base64 is 4/3 of the bytes, plus the
# callback's JSON around it.
UPLOAD_LIMIT = 20 * 2**20
UPLOAD_REQUEST_LIMIT = UPLOAD_LIMIT * 4 // 3 + 2**20
UPLOADS_TOTAL_LIMIT = 1 * 2**30  # all uploads together: an operator cannot fill the disk 20 MiB at a time
UPLOADS_DIR = "uploads"
UPLOAD_PREFIX = "upload:"  # form values of uploads: "upload:<sha256>", never a server path
TEXT_TYPES = ("text/", "application/csv", "application/vnd.ms-excel", "application/octet-stream")
TEXT_SUFFIXES = (".csv", ".txt", ".tsv")
MAX_LISTED = 500  # files of the data roots offered in the form; the rest can still be uploaded
_SHA = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FormFiles:
    """The form's data-file policy: the uploads folder and the operator's data roots (resolved)."""

    uploads: Path | None = None
    roots: tuple[Path, ...] = ()
    limit: int = UPLOAD_LIMIT
    total_limit: int = UPLOADS_TOTAL_LIMIT

    def __post_init__(self):  # compared with resolved paths: a root given as a symlink must match too
        object.__setattr__(self, "roots", tuple(Path(r).expanduser().resolve() for r in self.roots))

    @classmethod
    def for_context(cls, ctx) -> "FormFiles":
        """The policy of a :class:`dashboard.context.DashboardContext`."""
        return cls(uploads=Path(ctx.data.store.data_dir) / UPLOADS_DIR, roots=tuple(ctx.data_roots))

    def store_upload(self, contents: object, filename: object) -> Path:
        """Decode and store an upload; its path, or :class:`DataFileError` saying what is wrong.

        >>> FormFiles(Path("/tmp/u")).store_upload("not a data url", "a.csv")  # doctest: +SKIP
        DataFileError: the upload is not a file's contents ...
        """
        if self.uploads is None:
            raise DataFileError("uploads are not available on this server")
        data = decode_upload(contents, filename, self.limit)
        digest = hashlib.sha256(data).hexdigest()
        self.uploads.mkdir(parents=True, exist_ok=True)
        path = self.uploads / f"{digest}.csv"
        if not path.is_file():  # content-addressed: the same bytes are stored once
            if uploads_size(self.uploads) + len(data) > self.total_limit:
                raise DataFileError(f"the uploads folder is full ({human_size(self.total_limit)}); ask the operator "
                                    "to remove old files from it")
            _write_atomic(path, data)
        _write_atomic(self.uploads / f"{digest}.json",
                      json.dumps({"name": display_name(filename)}).encode())
        return path

    def resolve(self, value: object) -> Path:
        """The file a form value names: ``"upload:<sha256>"``, or a path inside (or relative to) a root.

        >>> FormFiles().resolve("/proc/self/environ")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        DataFileError: /proc/self/environ: not inside a data folder this server allows; upload the file instead
        """
        if not isinstance(value, str) or not value.strip():
            raise DataFileError("choose a file: upload a CSV or pick one from the list")
        value = value.strip()
        if value.startswith(UPLOAD_PREFIX):
            digest = value[len(UPLOAD_PREFIX):]
            try:
                if self.uploads is None or not _SHA.fullmatch(digest):
                    raise DataFileError(digest)
                return check_data_file(self.uploads / f"{digest}.csv", (self.uploads,), self.limit)
            except DataFileError:  # say it without the server's folder names
                raise DataFileError("that upload is not known here; upload the file again") from None
        named = find_in_roots(value, self.roots) or value  # a name relative to a root, or a full path
        allowed = self.roots + ((self.uploads,) if self.uploads is not None else ())
        path = check_data_file(named, allowed, self.limit)  # also a stored spec's path of an upload
        if not self.is_upload(path) and not any(path.is_relative_to(r) for r in self.roots):
            # in the uploads folder but not an upload: a name sidecar or a half-written temporary file
            raise DataFileError(f"{value}: not inside a data folder this server allows; upload the file instead")
        return path

    def token(self, path: Path) -> str:
        """The form value of a resolved file: ``"upload:<sha256>"`` (no server path in the page) or the path."""
        if self.is_upload(path):
            return UPLOAD_PREFIX + path.stem
        return str(path)

    def is_upload(self, path: Path) -> bool:
        """Whether ``path`` is a stored upload (its content may be quoted back to the uploader)."""
        return (self.uploads is not None and path.parent == self.uploads.resolve() and path.suffix == ".csv"
                and bool(_SHA.fullmatch(path.stem)))

    def label(self, path: Path) -> str:
        """What the form shows for a file: an upload's original name, or the path inside its root."""
        if self.is_upload(path):
            try:  # the sidecar is ours, small; bounded anyway
                with open(path.parent / f"{path.stem}.json", encoding="utf-8") as fh:
                    return display_name(json.loads(fh.read(4096)).get("name"))
            except (OSError, ValueError, AttributeError):
                return "uploaded file"
        for root in self.roots:
            if path.is_relative_to(root):
                return f"{root.name}/{path.relative_to(root)}"
        return path.name

    def choices(self) -> list[dict]:
        """Dropdown options for the CSV files in the data roots (at most :data:`MAX_LISTED`)."""
        out: list[dict] = []
        for root in self.roots:
            for path in _walk(root, MAX_LISTED - len(out), self.limit):
                out.append({"label": self.label(path), "value": str(path)})
        return out


def decode_upload(contents: object, filename: object, limit: int = UPLOAD_LIMIT) -> bytes:
    """The bytes of a ``dcc.Upload`` value, or :class:`DataFileError` saying what is wrong.

    >>> decode_upload("data:text/csv;base64,dGV4dCxsYWJlbAo=", "a.csv")
    b'text,label\\n'
    """
    if not isinstance(contents, str) or (filename is not None and not isinstance(filename, str)):
        raise DataFileError("upload one file at a time")
    name, comma = display_name(filename), contents.find(",", 0, 256)
    header = contents[:comma].lower() if comma > 0 else ""
    if not (header.startswith("data:") and header.endswith(";base64")):
        raise DataFileError(f"{name}: the upload is not a file's contents (expected a base64 data URL)")
    kind = header[5:].split(";", 1)[0]
    if kind and not kind.startswith(TEXT_TYPES):  # browsers name CSV text/csv, text/plain or ms-excel
        raise DataFileError(f"{name}: its type is {kind[:60]}, not CSV text; upload a .csv file")
    payload = contents[comma + 1:]
    if len(payload) > 4 * -(-limit // 3):  # judged before decoding, so nothing big is built
        raise DataFileError(f"{name}: larger than the limit of {human_size(limit)}")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise DataFileError(f"{name}: the upload is not valid base64 data") from None
    if len(data) > limit:
        raise DataFileError(f"{name}: larger than the limit of {human_size(limit)}")
    if not data:
        raise DataFileError(f"{name}: the file is empty")
    return data


def display_name(filename: object) -> str:
    """A file name safe to show: the last part, printable, at most 120 characters.

    >>> display_name("../../etc/pass\\x00wd")
    'passwd'
    """
    text = filename if isinstance(filename, str) else ""
    text = "".join(ch for ch in text.replace("\\", "/").rsplit("/", 1)[-1] if ch.isprintable())
    return text.strip()[:120] or "upload.csv"


def uploads_size(folder: Path) -> int:
    """Bytes of the stored uploads in ``folder``."""
    total = 0
    for entry in os.scandir(folder):
        try:
            total += entry.stat(follow_symlinks=False).st_size if entry.is_file(follow_symlinks=False) else 0
        except OSError:
            continue
    return total


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _walk(root: Path, budget: int, limit: int):
    """Regular *.csv/*.txt/*.tsv files under ``root`` (resolved, inside it), at most ``budget``; two levels deep."""
    stack = [(root, 0)]
    while stack and budget > 0:
        folder, depth = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if budget <= 0:
                break
            if entry.is_dir(follow_symlinks=False) and depth < 2 and not entry.name.startswith("."):
                stack.append((Path(entry.path), depth + 1))
            elif entry.name.lower().endswith(TEXT_SUFFIXES):
                try:
                    yield check_data_file(entry.path, (root,), limit)
                    budget -= 1
                except DataFileError:  # a link out of the root, a pipe, too large: not offered
                    continue
