"""A throwaway S3-protocol server for the object-storage tests and benchmarks: moto's standalone server.

Debian ships no MinIO server, and its Ceph RGW needs a whole Ceph cluster; PyPI's `moto[server]`
gives `moto_server`, a separate process that speaks S3 over HTTP on a loopback port. The tests
use it exactly as a real endpoint (boto3 over HTTP, never patched in-process), with its IAM
checks on: the first few requests (unauthenticated) make a user with an S3 policy and an access
key, and every later request must be signed with that key, so wrong credentials are refused
as S3 refuses them.

`env()` is what a process needs to reach it the way the AWS SDK reads settings: the endpoint,
region and key in environment variables, with the machine's own ~/.aws files kept out.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REGION = "us-east-1"
# create_user, put_user_policy, create_access_key: the requests moto takes before it checks signatures.
_SETUP_REQUESTS = 3


def find_binary() -> Path | None:
    found = Path(sys.executable).with_name("moto_server")
    return found if found.exists() else (Path(which) if (which := shutil.which("moto_server")) else None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Server:
    """A running moto_server and the access key of its one user."""

    process: subprocess.Popen
    endpoint: str
    access_key: str
    secret_key: str
    home: Path

    def env(self, secret: str | None = None) -> dict[str, str]:
        """Environment variables that point the AWS SDK at this server (with another secret to get refused)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": secret if secret is not None else self.secret_key,
            "AWS_CONFIG_FILE": str(self.home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self):
        import boto3

        env = self.env()
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"]
        )

    def create_bucket(self) -> str:
        name = f"t-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.home, ignore_errors=True)


def start_server(port: int | None = None) -> S3Server:
    """Start moto_server on a loopback port and make its user; raises RuntimeError saying why it cannot."""
    import boto3

    binary = find_binary()
    if binary is None:
        raise RuntimeError("no moto_server; install the dev extras (pip install -e '.[dev]', which include moto[server])")
    port = port or _free_port()
    home = Path(tempfile.mkdtemp(prefix="deltahub-s3-"))
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_REQUESTS)}
    log = (home / "log").open("wb")
    process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                detail = (home / "log").read_text(errors="replace")[-300:]
                shutil.rmtree(home, ignore_errors=True)
                raise RuntimeError(f"moto_server did not start on port {port}: {detail}") from None
            time.sleep(0.2)
    iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="setup", aws_secret_access_key="setup")
    iam.create_user(UserName="lab")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="lab", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="lab")["AccessKey"]
    return S3Server(process, endpoint, key["AccessKeyId"], key["SecretAccessKey"], home)
