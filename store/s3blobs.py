"""Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, R2, …) at s3://BUCKET/PREFIX.

The endpoint, region and credentials come from the AWS SDK's own chain (AWS_ENDPOINT_URL,
AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/config), so
any S3-protocol server works without settings of deltahub's own.

The layout is the blob directory's: PREFIX/sha256/ab/<digest>.safetensors and PREFIX/REGISTRY.
An object appears only whole (a PUT, or the completion of a multipart upload), so an upload
that dies half-way leaves no object a row could point to: s3transfer aborts a failed multipart
upload, and `collect_garbage` aborts the parts of a killed process after the grace period.
Every upload carries a SHA-256 checksum that the server checks against the bytes it received;
for a single PUT the stored checksum is the whole object's sha256, which must be the digest.
Reads re-hash, as for a directory.

LastModified plays the part of a file's mtime for gc's grace period; `touch` copies an object
onto itself, which gives it a fresh LastModified.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from store.blobs import GC_GRACE_S, MARKER, SUFFIX, BlobFacts, BlobUpload, GcReport, hash_chunks, relative_key
from store.errors import BlobCorrupt, StoreError

# Modules are MBs to a few hundred MBs: one PUT below this, parts of PART_SIZE above.
MULTIPART_THRESHOLD = 64 << 20
PART_SIZE = 16 << 20
_CHUNK = 1 << 20
# The registry server reads and writes from its thread pool; one pooled connection per thread.
_POOL = 32
_MISSING = {"404", "NoSuchKey", "NotFound"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "InvalidClientTokenId"}


class S3Blobs:
    """A content-addressed blob store in a bucket; the same contract as store.blobs.BlobStore."""

    def __init__(self, bucket: str, prefix: str, *, multipart_threshold: int = MULTIPART_THRESHOLD, part_size: int = PART_SIZE) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.multipart_threshold = multipart_threshold
        self.transfer = TransferConfig(multipart_threshold=multipart_threshold, multipart_chunksize=part_size)
        config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60, max_pool_connections=_POOL)
        with self._errors():
            self.client = boto3.session.Session().client("s3", config=config)

    @classmethod
    def from_url(cls, url: str) -> S3Blobs:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise StoreError(f"blob location {url} names no bucket; use s3://BUCKET/PREFIX")
        return cls(bucket, prefix)

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, digest: str) -> str:
        return self.prefix + relative_key(digest)

    def exists(self, digest: str) -> bool:
        with self._errors():
            try:
                self.client.head_object(Bucket=self.bucket, Key=self.key(digest))
            except ClientError as error:
                if _code(error) in _MISSING:
                    return False
                raise
        return True

    def put(self, data: bytes) -> str:
        """Store bytes and return their digest; storing the same bytes again only refreshes LastModified (see `touch`)."""
        digest = hashlib.sha256(data).hexdigest()
        if not self.touch(digest):
            self._upload(io.BytesIO(data), len(data), digest)
        return digest

    def touch(self, digest: str) -> bool:
        """Give a blob a fresh LastModified, as `put` of the same bytes would; False when the blob is absent."""
        key = self.key(digest)
        with self._errors():
            try:
                # A copy onto itself must change something: the metadata is replaced (by the same, empty, metadata).
                self.client.copy_object(
                    Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key}, MetadataDirective="REPLACE", ChecksumAlgorithm="SHA256"
                )
            except ClientError as error:
                if _code(error) in _MISSING:
                    return False
                raise
        return True

    def receive(self, digest: str, max_bytes: int) -> BlobUpload:
        """Start receiving a blob in pieces; they are spooled to a local temp file and uploaded once whole and verified."""
        return BlobUpload(self, digest, max_bytes, None)

    def adopt(self, temp: Path, digest: str) -> None:
        if self.touch(digest):
            return
        with temp.open("rb") as handle:
            self._upload(handle, temp.stat().st_size, digest)

    def get(self, digest: str, owner: str = "") -> bytes:
        what = f" of {owner}" if owner else ""
        pieces = self.read(digest)
        if pieces is None:
            raise BlobCorrupt(f"blob {digest[:12]}{what} is missing from {self.where}; the registry's verify finds every such module")
        with self._errors():
            data = b"".join(pieces)
        if hashlib.sha256(data).hexdigest() != digest:
            raise BlobCorrupt(f"blob {digest[:12]}{what} fails its sha256 check; it is corrupt or from another registry")
        return data

    def read(self, digest: str) -> Iterator[bytes] | None:
        """A blob's bytes in pieces, unverified (the reader checks them against the digest); None when absent."""
        with self._errors():
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=self.key(digest))["Body"]
            except ClientError as error:
                if _code(error) in _MISSING:
                    return None
                raise
        return self._pieces(body)

    def digests(self) -> Iterator[str]:
        for digest, _size, _modified in self._listing():
            yield digest

    def scan(self) -> Iterator[BlobFacts]:
        """Every blob downloaded and re-hashed (one deleted meanwhile by a concurrent gc is skipped)."""
        for digest, _size, _modified in self._listing():
            pieces = self.read(digest)
            if pieces is not None:
                yield BlobFacts(digest, *hash_chunks(pieces))

    def leftovers(self) -> int:
        """Multipart uploads begun and never completed (a killed writer's parts; no object exists for them)."""
        return sum(1 for _ in self._unfinished())

    # --- which registry this bucket prefix belongs to

    def registry_id(self) -> str | None:
        with self._errors():
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + MARKER)["Body"]
            except ClientError as error:
                if _code(error) in _MISSING:  # no marker yet; a missing bucket is NoSuchBucket, raised as such
                    return None
                raise
            return body.read().decode().strip() or None

    def claim(self, registry_id: str, database: str) -> None:
        """Refuse a bucket prefix of another registry; mark an unmarked one as this registry's."""
        if not registry_id:
            return
        found = self.registry_id()
        if found is None:
            with self._errors():
                try:
                    self.client.put_object(Bucket=self.bucket, Key=self.prefix + MARKER, Body=registry_id.encode() + b"\n")
                except ClientError as error:
                    if _code(error) in _DENIED:
                        return  # read-only credentials: reads work, a push will say what is wrong
                    raise
            found = self.registry_id()
        if found != registry_id:
            raise StoreError(
                f"blob location {self.where} belongs to registry {found}, but database {database} is registry {registry_id}; "
                "name the blob location of this registry"
            )

    # --- garbage collection

    def collect_garbage(self, referenced: Callable[[], set[str]], grace_s: float = GC_GRACE_S, dry_run: bool = False) -> GcReport:
        """Delete blobs no row references whose LastModified is older than `grace_s`, and abandoned multipart uploads.

        As for a directory: `referenced` is called after the listing, so a row committed before the
        call protects its blob, and a blob a push refreshed after the listing is looked at again (HEAD)
        right before it is deleted. S3 has no rename to set a blob aside, so a push that refreshes
        the blob between that HEAD and the DELETE (milliseconds, against the grace period's hour)
        loses it; `verify` names such a module.
        """
        report = GcReport()
        now = time.time()
        old: list[tuple[str, int]] = []
        for digest, size, modified in self._listing():
            if modified > now - grace_s:
                report.kept_young += 1
            else:
                old.append((digest, size))
        live = referenced()
        with self._errors():
            for digest, size in old:
                if digest in live:
                    report.referenced += 1
                    continue
                if not dry_run:
                    try:
                        head = self.client.head_object(Bucket=self.bucket, Key=self.key(digest))
                    except ClientError as error:
                        if _code(error) in _MISSING:
                            continue
                        raise
                    if head["LastModified"].timestamp() > time.time() - grace_s:
                        report.kept_young += 1  # a push refreshed it just now
                        continue
                    self.client.delete_object(Bucket=self.bucket, Key=self.key(digest))
                report.removed.append(digest)
                report.removed_bytes += size
            for key, upload_id, initiated in self._unfinished():
                if initiated <= now - grace_s:
                    if not dry_run:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                    report.temp_files += 1
        return report

    # --- internals

    def _upload(self, source: IO[bytes], size: int, digest: str) -> None:
        key = self.key(digest)
        with self._errors():
            if size < self.multipart_threshold:
                response = self.client.put_object(Bucket=self.bucket, Key=key, Body=source, ChecksumAlgorithm="SHA256")
                stored = response.get("ChecksumSHA256")
                if stored is not None and stored != base64.b64encode(bytes.fromhex(digest)).decode():
                    # The bytes that arrived are not the ones hashed: the object must not stand under this address.
                    self.client.delete_object(Bucket=self.bucket, Key=key)
                    raise BlobCorrupt(f"the bucket stored bytes for blob {digest[:12]} whose sha256 differs; nothing was stored")
            else:
                # Each part carries its own SHA-256, checked by the server; the whole is re-hashed on every read.
                self.client.upload_fileobj(source, self.bucket, key, ExtraArgs={"ChecksumAlgorithm": "SHA256"}, Config=self.transfer)

    def _listing(self) -> Iterator[tuple[str, int, float]]:
        """(digest, size, LastModified as a timestamp) of every blob under the prefix."""
        with self._errors():
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + "sha256/")
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"].rsplit("/", 1)[-1]
                    if name.endswith(SUFFIX):
                        yield name.removesuffix(SUFFIX), int(item["Size"]), item["LastModified"].timestamp()

    def _unfinished(self) -> Iterator[tuple[str, str, float]]:
        """(key, upload id, initiated) of every multipart upload under the prefix that was never completed."""
        with self._errors():
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.prefix + "sha256/")
            for page in pages:
                for upload in page.get("Uploads", []):
                    yield upload["Key"], upload["UploadId"], upload["Initiated"].timestamp()

    def _pieces(self, body: Any) -> Iterator[bytes]:
        with self._errors(), body:
            yield from body.iter_chunks(_CHUNK)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """S3 failures as one line naming the bucket and what to check (no traceback, no secret)."""
        try:
            yield
        except NoCredentialsError:
            raise StoreError(f"no credentials for {self.where}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, as for any AWS tool") from None
        except ClientError as error:
            code = _code(error)
            message = error.response.get("Error", {}).get("Message") or code
            if code == "NoSuchBucket" or (code in _MISSING and error.operation_name in ("HeadBucket", "ListObjectsV2", "ListMultipartUploads")):
                raise StoreError(
                    f"bucket {self.bucket} does not exist at {self._endpoint()}; create it, or name the right bucket in s3://BUCKET/PREFIX"
                ) from None
            if code in _DENIED:
                raise StoreError(
                    f"{self._endpoint()} refused the credentials for {self.where} ({code}: {message}); "
                    "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE and the bucket's policy"
                ) from None
            raise StoreError(f"{error.operation_name} on {self.where} failed ({code}: {message})") from None
        except BotoCoreError as error:
            raise StoreError(f"cannot reach {self._endpoint()} for {self.where}: {error}; check AWS_ENDPOINT_URL and that the server is up") from None

    def _endpoint(self) -> str:
        client = getattr(self, "client", None)
        return client.meta.endpoint_url if client is not None else "the S3 endpoint"


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
