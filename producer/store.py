"""S3 access for the producer: the input object, the job manifest, rejects and checkpoint files."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models import JobManifest, ObjectRef
from models.csvsafe import escape_cell
from producer.csvstream import BadFile
from producer.watch import WatchList, list_watch_lists

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def manifest_key(job_id: str) -> str:
    return f"jobs/{job_id}/manifest.json"


class ManifestChanged(Exception):
    """The manifest is no longer the version this invocation read: another one wrote it."""


_CONFLICTS = ("PreconditionFailed", "ConditionalRequestConflict", "412")


class JobStore:
    def __init__(self, s3: S3Client, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    def load_manifest(self, job_id: str) -> JobManifest | None:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=manifest_key(job_id))["Body"].read()
        except self._s3.exceptions.NoSuchKey:
            return None
        return JobManifest.model_validate_json(body)

    def read_manifest(self, job_id: str) -> tuple[JobManifest, str] | None:
        """The manifest and its ETag, for a conditional write back (write_manifest)."""
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=manifest_key(job_id))
        except self._s3.exceptions.NoSuchKey:
            return None
        return JobManifest.model_validate_json(response["Body"].read()), response["ETag"]

    def write_manifest(self, manifest: JobManifest, etag: str | None) -> str:
        """Write the manifest only if it is still the version read (`etag`), or, with None, only
        if there is none yet: S3 conditional writes, so of two invocations racing for one job
        exactly one wins (the other gets ManifestChanged). Returns the new ETag."""
        condition: dict[str, str] = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            response = self._s3.put_object(
                Bucket=self.bucket,
                Key=manifest_key(manifest.job_id),
                Body=manifest.model_dump_json(indent=2).encode(),
                ContentType="application/json",
                **condition,  # type: ignore[arg-type]
            )
        except self._s3.exceptions.ClientError as exc:
            # NoSuchKey: the version read was deleted (If-Match on a missing object).
            if exc.response.get("Error", {}).get("Code") in (*_CONFLICTS, "NoSuchKey"):
                raise ManifestChanged(manifest.job_id) from exc
            raise
        return response["ETag"]

    def open_input(self, ref: ObjectRef, offset: int = 0) -> Any:
        """The object's body as a stream, pinned to the ETag the job started from."""
        # No Range for a fresh read: "bytes=0-" on an empty object is a 416, not an empty body.
        extra: dict[str, Any] = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            response = self._s3.get_object(Bucket=ref.bucket, Key=ref.key, IfMatch=f'"{ref.etag}"', **extra)
            return response["Body"]
        except self._s3.exceptions.NoSuchKey as exc:
            raise BadFile(f"input '{ref.key}' was deleted before the job could read it") from exc
        except self._s3.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "InvalidRange" and offset:
                return io.BytesIO(b"")  # the checkpoint was the file's last row
            if code in _CONFLICTS:
                # The key now holds other bytes; that upload is a job of its own (new ETag).
                raise BadFile(f"input '{ref.key}' was replaced while this job read it") from exc
            raise

    def watch_lists(self) -> list[WatchList]:
        return list_watch_lists(self._s3, self.bucket)

    def upload(self, job_id: str, name: str, path: Path, content_type: str) -> None:
        self._s3.upload_file(
            str(path), self.bucket, f"jobs/{job_id}/{name}", ExtraArgs={"ContentType": content_type}
        )

    def download(self, job_id: str, name: str, path: Path) -> bool:
        try:
            self._s3.download_file(self.bucket, f"jobs/{job_id}/{name}", str(path))
        except self._s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return False
            raise
        return True

    def delete(self, job_id: str, name: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=f"jobs/{job_id}/{name}")

    def delete_all(self, job_id: str, prefix: str) -> None:
        """Every object under jobs/<job_id>/<prefix>."""
        pages = self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"jobs/{job_id}/{prefix}"
        )
        for page in pages:
            for found in page.get("Contents", []):
                self._s3.delete_object(Bucket=self.bucket, Key=found["Key"])


class RejectsFile:
    """rejects.csv on local disk (row, value, reason), appended row by row, uploaded whole."""

    HEADER = ("row", "value", "reason")

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        fresh = not (resume and path.exists())
        self._handle = path.open("w" if fresh else "a", encoding="utf-8", newline="")
        self._writer = csv.writer(self._handle)
        if fresh:
            self._writer.writerow(self.HEADER)

    def add(self, row: int, value: str, reason: str) -> None:
        # Undecodable bytes were kept as surrogates; write them as U+FFFD so the file stays UTF-8.
        safe = value.encode("utf-8", "replace").decode("utf-8")[:1000]
        self._writer.writerow((row, escape_cell(safe), escape_cell(reason)))

    def flush(self) -> Path:
        self._handle.flush()
        return self.path

    def close(self) -> None:
        self._handle.close()
