"""Where files live: Django's storage API over local folders (the default) or an S3-compatible bucket.

Web, workers and commands share only the database, Redis and these storages: page images and uploads in
`default`, exports in `exports`, training-run files in `runs` (settings.STORAGES, chosen by STORAGE_BACKEND).
Code that writes or streams large files asks this module instead of a path: locally it keeps the atomic
`.partial`-then-rename files; in a bucket it streams a multipart upload that S3 shows under its key only
once completed, so readers never see half a file either way.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage, storages

from curation.atomic_files import AtomicFile, bytes_write_atomic, fsync_dir
from gestima.leases import partial_files_remove


class _RootSettingStorage(FileSystemStorage):
    """A local folder named by a setting read when used, so a changed setting (tests, .env) moves it."""

    root_setting = ""

    @cached_property
    def base_location(self):
        return self._value_or_setting(self._location, getattr(settings, self.root_setting))

    def _clear_cached_properties(self, setting, **kwargs):
        super()._clear_cached_properties(setting, **kwargs)
        if setting == self.root_setting:
            self.__dict__.pop("base_location", None)
            self.__dict__.pop("location", None)


class ExportsFileSystemStorage(_RootSettingStorage):
    root_setting = "EXPORTS_ROOT"


class RunsFileSystemStorage(_RootSettingStorage):
    root_setting = "RUNS_ROOT"


def exports_storage() -> Storage:
    return storages["exports"]


def runs_storage() -> Storage:
    return storages["runs"]


def storage_is_local(storage: Storage) -> bool:
    """Whether the storage has paths on this machine (FileSystemStorage); a bucket has none."""
    try:
        storage.path("")
    except NotImplementedError:
        return False
    return True


def _key(storage, name: str) -> str:
    from storages.utils import clean_name

    return storage._normalize_name(clean_name(name))


def _client(storage):
    return storage.connection.meta.client


def storage_location(storage: Storage, name: str) -> str:
    """Where `name` is, in words a person can look up: a local path, or s3://bucket/key."""
    if storage_is_local(storage):
        return storage.path(name)
    return f"s3://{storage.bucket_name}/{_key(storage, name)}"


def storage_name(storage: Storage, location: str) -> str:
    """The storage name of a location made by `storage_location` (the inverse); ValueError if it is elsewhere."""
    if storage_is_local(storage):
        return Path(location).resolve().relative_to(Path(storage.path("")).resolve()).as_posix()
    prefix = f"s3://{storage.bucket_name}/"
    if not location.startswith(prefix):
        raise ValueError(f"{location} is not in the bucket {storage.bucket_name}")
    key = location[len(prefix) :]
    root = (storage.location or "").strip("/")
    return key[len(root) + 1 :] if root and key.startswith(root + "/") else key


def storage_stream(storage: Storage, name: str):
    """A readable binary file-like over `name`, read as it goes (memory stays flat however large the file).

    django-storages' own S3 `open()` first copies the whole object into a temp file held in memory; the
    body of a GET streams instead. FileNotFoundError when there is no such file, wherever it was looked for.
    """
    if storage_is_local(storage):
        return storage.open(name, "rb")
    client = _client(storage)
    try:
        return client.get_object(Bucket=storage.bucket_name, Key=_key(storage, name))["Body"]
    except client.exceptions.NoSuchKey:
        raise FileNotFoundError(f"{storage_location(storage, name)} does not exist") from None


def storage_read_bytes(storage: Storage, name: str) -> bytes:
    """A small file's bytes (a page image), read whole. In a bucket one GET: django-storages' `open()` would
    also send a HEAD and start boto3's threaded download, over twice the time for a page (measured on moto)."""
    if storage_is_local(storage):
        with storage.open(name, "rb") as handle:
            return handle.read()
    with storage_stream(storage, name) as body:
        return body.read()


def storage_sha256(storage: Storage, name: str) -> str:
    digest = hashlib.sha256()
    with storage_stream(storage, name) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def storage_write_bytes(storage: Storage, name: str, data: bytes) -> None:
    """A small file written whole, atomically (a PUT is atomic; locally a temp name and a rename)."""
    if storage_is_local(storage):
        path = Path(storage.path(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        bytes_write_atomic(path, data)
        return
    _client(storage).put_object(Bucket=storage.bucket_name, Key=_key(storage, name), Body=data)


def storage_atomic_file(storage: Storage, name: str):
    """A writer for `name` with AtomicFile's methods (write_pieces, finish, commit, discard, summary)."""
    if storage_is_local(storage):
        path = Path(storage.path(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        return AtomicFile(path)
    return MultipartObject(storage, name)


def storage_commit_durable(storage: Storage, folder: str) -> None:
    """Make the renames of committed local files durable; a bucket's completed uploads already are."""
    if storage_is_local(storage):
        fsync_dir(Path(storage.path(folder)))


def storage_partials_remove(storage: Storage, folder: str, *, depth: int = 2) -> list[str]:
    """Drop what dead writers left under `folder`: local `.partial` files, or a bucket's unfinished uploads.

    Called only for a folder whose export lost its lease, so no live writer is cut off.
    """
    if storage_is_local(storage):
        return partial_files_remove(storage.path(folder), depth=depth)
    client, bucket = _client(storage), storage.bucket_name
    prefix = _key(storage, folder).rstrip("/") + "/"
    removed = []
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            removed.append(upload["Key"])
    return removed


class MultipartObject:
    """Streams one object into the bucket in parts of STORAGE_PART_BYTES: memory holds at most one part.

    S3 shows nothing under the key until `commit()` completes the upload (a file smaller than one part is
    sent by a single PUT at commit); `discard()` aborts it. A killed writer leaves an unfinished upload,
    invisible to readers, that `storage_partials_remove` (or the bucket's lifecycle rule) clears.
    """

    def __init__(self, storage, name: str):
        self.path = name
        self.client = _client(storage)
        self.bucket = storage.bucket_name
        self.key = _key(storage, name)
        self.part_bytes = settings.STORAGE_PART_BYTES
        self.buffer = bytearray()
        self.upload_id = None
        self.parts = []
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self.lines = 0

    def write_pieces(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self.buffer += piece
            self.sha256.update(piece)
            self.bytes += len(piece)
        self.lines += 1
        if len(self.buffer) >= self.part_bytes:
            self._send_part()

    def _send_part(self) -> None:
        if self.upload_id is None:
            self.upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)["UploadId"]
        number = len(self.parts) + 1
        sent = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=bytes(self.buffer)
        )
        self.parts.append({"ETag": sent["ETag"], "PartNumber": number})
        self.buffer.clear()

    def finish(self) -> None:
        if self.upload_id is not None and self.buffer:
            self._send_part()

    def commit(self) -> None:
        if self.upload_id is None:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self.buffer))
            self.buffer.clear()
            return
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )

    def discard(self) -> None:
        self.buffer.clear()
        if self.upload_id is not None:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            except Exception:  # noqa: BLE001 - the export's own error is the one to report; the sweep retries
                pass

    def summary(self) -> dict:
        return {"sha256": self.sha256.hexdigest(), "bytes": self.bytes, "lines": self.lines}


@dataclass(frozen=True)
class StoredFile:
    """One file in a storage, for code that sends it on (a provider's upload) without knowing where it lives."""

    storage: Storage
    name: str

    @classmethod
    def at(cls, path) -> StoredFile:
        """A file on this machine, e.g. one a command or a test wrote."""
        path = Path(path)
        return cls(FileSystemStorage(location=path.parent), path.name)

    @property
    def filename(self) -> str:
        return PurePosixPath(self.name).name

    def size(self) -> int:
        return self.storage.size(self.name)

    def open(self) -> SizedStream:
        """A forward-only stream that knows its size (so an HTTP client sends Content-Length, not chunks)."""
        return SizedStream(storage_stream(self.storage, self.name), self.size())

    @contextmanager
    def local_path(self):
        """A path on this machine, for SDKs that take only a path: the file itself, or a temp copy of it."""
        if storage_is_local(self.storage):
            yield Path(self.storage.path(self.name))
            return
        with tempfile.TemporaryDirectory(prefix="gestima-upload-") as folder:
            target = Path(folder) / self.filename
            with storage_stream(self.storage, self.name) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            yield target


class SizedStream(io.RawIOBase):
    """A stream read front to back whose size is known up front.

    httpx learns a file's length by seeking to its end and back; a bucket's body cannot seek, so this one
    answers those two seeks from the size it was given and refuses to read anywhere but where it stands.
    """

    def __init__(self, raw, size: int):
        self.raw, self.size, self.position, self.asked = raw, size, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.asked

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self.asked + offset, io.SEEK_END: self.size + offset}[whence]
        if not 0 <= target <= self.size:
            raise io.UnsupportedOperation(f"seek to {target} outside 0..{self.size}")
        self.asked = target
        return target

    def read(self, size: int = -1) -> bytes:
        if self.asked != self.position:
            raise io.UnsupportedOperation("this stream reads front to back only")
        data = self.raw.read() if size is None or size < 0 else self.raw.read(size)
        self.position += len(data)
        self.asked = self.position
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()
