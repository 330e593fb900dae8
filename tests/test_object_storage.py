"""Blobs on S3-compatible object storage (--blobs s3://BUCKET/PREFIX), against a real S3-protocol server (tests/s3.py).

Covered: push, pull, export, verify, gc on a bucket; a multipart upload; a wrong digest; a missing
bucket and refused credentials (one line, nothing changed); a registry server killed mid-upload;
moving a registry's blobs to a bucket; two `adapters serve` processes on one PostgreSQL and one bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import synthetic
from helpers import cli, make_tokens, one_line_error, start, stop

from store.blobs import GC_GRACE_S, relative_key
from store.errors import BlobCorrupt, StoreError
from store.registry import Registry, open_blobs
from store.remote import RemoteRegistry
from store.s3blobs import S3Blobs


def bucket_keys(s3_server, url: str) -> set[str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    pages = s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"].removeprefix(prefix + "/") for page in pages for item in page.get("Contents", [])}


def put_object(s3_server, url: str, key: str, data: bytes) -> None:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    s3_server.client().put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)


def test_push_pull_export_verify_and_gc_on_a_bucket(s3_server, bucket: str, tmp_path: Path) -> None:
    registry_dir = tmp_path / "registry"
    registry = Registry.open(registry_dir, bucket)
    try:
        records = [synthetic.push(registry, seed)[0] for seed in range(3)]
        data, *_ = synthetic.module(1)
        assert registry.blobs.get(records[1].blob_digest) == data
        _again, created = synthetic.push(registry, 1)
        assert not created
        registry.remove_module(records[2].id)
    finally:
        registry.close()
    keys = bucket_keys(s3_server, bucket)
    assert {relative_key(r.blob_digest) for r in records} <= keys and "REGISTRY" in keys
    assert not (registry_dir / "blobs").exists(), "a registry on a bucket keeps no blob directory"
    where = ["--registry", str(registry_dir), "--blobs", bucket]

    exported = cli("export", str(records[0].id), str(tmp_path / "out"), *where)
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()

    healthy = cli("verify", *where)
    assert healthy.exit_code == 0 and "2 modules, 3 blobs" in healthy.output, healthy.output

    kept = cli("gc", *where)  # the removed module's blob is younger than the grace period
    assert kept.exit_code == 0 and "0 unreferenced blobs" in kept.output.replace("Removed", "removed"), kept.output
    collected = cli("gc", "--grace", "0", *where)
    assert collected.exit_code == 0, collected.output
    assert relative_key(records[2].blob_digest) not in bucket_keys(s3_server, bucket)
    assert relative_key(records[0].blob_digest) in bucket_keys(s3_server, bucket)

    # Other bytes under a module's address: every read refuses them, and verify names the module.
    put_object(s3_server, bucket, relative_key(records[1].blob_digest), b"not the module")
    registry = Registry.open(registry_dir, bucket)
    try:
        with pytest.raises(BlobCorrupt, match="fails its sha256 check"):
            registry.blobs.get(records[1].blob_digest)
    finally:
        registry.close()
    broken = cli("verify", "--json", *where)
    assert broken.exit_code == 1 and records[1].blob_digest in broken.output


def test_a_multipart_upload_and_a_wrong_digest(bucket: str, tmp_path: Path) -> None:
    bucket_name, _, prefix = bucket.removeprefix("s3://").partition("/")
    blobs = S3Blobs(bucket_name, prefix, multipart_threshold=5 << 20, part_size=5 << 20)
    big = os.urandom(11 << 20)
    digest = blobs.put(big)
    assert blobs.get(digest) == big and list(blobs.digests()) == [digest]

    declared = hashlib.sha256(b"what the client said").hexdigest()
    upload = blobs.receive(declared, max_bytes=1 << 20)
    upload.write(b"other bytes")
    with pytest.raises(BlobCorrupt, match="nothing was stored"):
        upload.commit()
    assert not blobs.exists(declared) and blobs.leftovers() == 0


def test_a_missing_bucket_or_refused_credentials_is_one_line_and_changes_nothing(s3_server, bucket: str, tmp_path: Path, monkeypatch) -> None:
    registry_dir = tmp_path / "registry"
    nowhere = cli("list", "--registry", str(registry_dir), "--blobs", "s3://no-such-bucket-here/lab")
    assert "bucket no-such-bucket-here does not exist" in one_line_error(nowhere)
    assert not registry_dir.exists(), "nothing is created for a registry whose bucket is missing"

    registry = Registry.open(registry_dir, bucket)
    try:
        synthetic.push(registry, 0)
    finally:
        registry.close()
    before = (registry_dir / "registry.db").read_bytes()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    # Verbs that read only the catalog never reach the bucket (nor import boto3); those that need blobs say what is wrong.
    assert cli("list", "--registry", str(registry_dir), "--blobs", bucket).exit_code == 0
    refused = cli("verify", "--registry", str(registry_dir), "--blobs", bucket)
    line = one_line_error(refused)
    assert "refused the credentials" in line and "SignatureDoesNotMatch" in line and "not-the-secret" not in line
    pushed = Registry.open(registry_dir, bucket)
    try:
        with pytest.raises(StoreError, match="refused the credentials"):
            synthetic.push(pushed, 1)
        assert len(pushed.catalog.list_modules()) == 1
    finally:
        pushed.close()
    assert (registry_dir / "registry.db").read_bytes() == before
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    assert len(bucket_keys(s3_server, bucket)) == 2  # the module's blob and the REGISTRY marker


def test_an_object_store_that_goes_away_fails_a_push_in_one_line_and_registers_nothing(tmp_path: Path, monkeypatch) -> None:
    from s3 import start_server

    own = start_server()  # a server of this test's own, to stop
    try:
        for name, value in own.env().items():
            monkeypatch.setenv(name, value)
        location = f"s3://{own.create_bucket()}/lab"
        registry = Registry.open(tmp_path / "registry", location)
        own.stop()
        try:
            with pytest.raises(StoreError, match=f"cannot reach {own.endpoint} for {location}") as failed:
                synthetic.push(registry, 0)
            assert "\n" not in str(failed.value) and registry.catalog.list_modules() == []
        finally:
            registry.close()
    finally:
        own.stop()


def test_a_registry_server_killed_mid_upload_leaves_no_object_and_no_row(s3_server, bucket: str, tmp_path: Path, monkeypatch) -> None:
    registry_dir = tmp_path / "registry"
    registry = Registry.open(registry_dir, bucket)
    try:
        tokens = make_tokens(registry)
    finally:
        registry.close()
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))  # where the server spools an upload before it goes to the bucket
    url, process = start(registry_dir, tmp_path / "server.log", blobs=bucket)
    data = synthetic.module(5)[0]
    digest = hashlib.sha256(data).hexdigest()
    sent = threading.Event()

    def slowly():
        yield data[:4096]
        sent.set()
        time.sleep(30)
        yield data[4096:]

    def upload():
        with contextlib.suppress(httpx.HTTPError):  # the server dies under it
            httpx.put(f"{url}/api/v1/blobs/{digest}", content=slowly(), headers={"Authorization": f"Bearer {tokens['write']}"}, timeout=60)

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    try:
        assert sent.wait(30)
        deadline = time.monotonic() + 30
        while not any(spool.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any(spool.iterdir()), "the server spools the upload"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert relative_key(digest) not in bucket_keys(s3_server, bucket)
    registry = Registry.open(registry_dir, bucket)
    try:
        assert registry.catalog.list_modules() == [] and not registry.blobs.exists(digest)
    finally:
        registry.close()


def test_blobs_copy_moves_a_registry_to_a_bucket_and_switches_only_when_every_blob_is_there(s3_server, bucket: str, tmp_path: Path) -> None:
    registry_dir = tmp_path / "registry"
    registry = Registry.open(registry_dir)
    try:
        records = [synthetic.push(registry, seed)[0] for seed in range(3)]
    finally:
        registry.close()

    # A local blob that went bad is not copied as good bytes: the copy stops and nothing switches.
    bad = registry_dir / "blobs" / relative_key(records[0].blob_digest)
    good = bad.read_bytes()
    bad.write_bytes(b"rot")
    failed = cli("blobs", "copy", "--to", bucket, "--registry", str(registry_dir))
    assert "fails its sha256 check" in one_line_error(failed)
    bad.write_bytes(good)
    assert cli("list", "--registry", str(registry_dir)).exit_code == 0  # still on its directory

    running = Registry.open(registry_dir)  # as a server started before the copy: it writes blobs to the directory
    running.blobs  # noqa: B018
    copied = cli("blobs", "copy", "--to", bucket, "--registry", str(registry_dir))
    assert copied.exit_code == 0, copied.output
    try:
        with pytest.raises(StoreError, match="moved to"):
            synthetic.push(running, 7)  # its row would point at a blob the registry no longer reads
        assert len(running.catalog.list_modules()) == 3
    finally:
        running.close()
    assert f"now at {bucket}" in copied.output
    assert {relative_key(r.blob_digest) for r in records} <= bucket_keys(s3_server, bucket)
    (registry_dir / "blobs").rename(tmp_path / "old-blobs")  # the registry no longer reads its directory
    listed = cli("export", str(records[2].id), str(tmp_path / "out"), "--registry", str(registry_dir))
    assert listed.exit_code == 0, listed.output
    other = cli("list", "--registry", str(registry_dir), "--blobs", str(tmp_path / "old-blobs"))
    assert "moved to" in one_line_error(other)


def test_two_servers_on_one_postgresql_and_one_bucket_are_one_registry(postgres_server, s3_server, bucket: str, tmp_path: Path, monkeypatch) -> None:
    url = postgres_server.create_database()
    registry = Registry.open(url, bucket)
    try:
        tokens = make_tokens(registry)
    finally:
        registry.close()
    first_url, first = start(url, tmp_path / "first.log", blobs=bucket)
    second_url, second = start(url, tmp_path / "second.log", blobs=bucket)
    monkeypatch.setenv("ADAPTERS_TOKEN", tokens["write"])
    one, two = RemoteRegistry(first_url), RemoteRegistry(second_url)
    try:
        _data, probe, _t, _ds = synthetic.module(0)
        assert two.indexes.search_parameters(probe.schema_hash, probe.param_embedding, 5) == []  # the second server's index is built, empty
        pushed, _ = synthetic.push(one, 0)
        # At once through the other server: the row, the blob (from the bucket), and the search (its index caught up).
        assert [m.id for m in two.catalog.list_modules()] == [pushed.id]
        assert two.blobs.get(pushed.blob_digest) == synthetic.module(0)[0]
        assert two.indexes.search_parameters(probe.schema_hash, probe.param_embedding, 5)[0][0] == pushed.id

        # Writers on both at once, the same modules pushed through each: one row each, no duplicate.
        def writer(remote: RemoteRegistry) -> None:
            for seed in range(1, 7):
                synthetic.push(remote, seed)

        threads = [threading.Thread(target=writer, args=(remote,)) for remote in (one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ids_one = sorted(m.id for m in one.catalog.list_modules())
        ids_two = sorted(m.id for m in two.catalog.list_modules())
        assert ids_one == ids_two and len(ids_two) == 7
        _d, last, _t2, _ds2 = synthetic.module(6)
        assert one.indexes.search_parameters(last.schema_hash, last.param_embedding, 1)[0][0] in ids_one
    finally:
        one.close()
        two.close()
        stop(first)
        stop(second)
    assert len([key for key in bucket_keys(s3_server, bucket) if key.startswith("sha256/")]) == 7


def test_the_grace_period_is_kept_on_a_bucket(bucket: str) -> None:
    blobs = open_blobs(bucket)
    digest = blobs.put(b"an orphan a push is about to reference")
    report = blobs.collect_garbage(set, grace_s=GC_GRACE_S)
    assert report.removed == [] and report.kept_young == 1 and blobs.exists(digest)
    # A multipart upload a killed writer began and never completed: parts, but no object. (moto reports
    # a fixed 2010 start time for every upload, so its grace period cannot be shown here.)
    abandoned = hashlib.sha256(b"never completed").hexdigest()
    blobs.client.create_multipart_upload(Bucket=blobs.bucket, Key=blobs.key(abandoned))
    assert blobs.leftovers() == 1
    report = blobs.collect_garbage(set, grace_s=0)
    assert report.removed == [digest] and report.temp_files == 1 and not blobs.exists(digest) and blobs.leftovers() == 0
