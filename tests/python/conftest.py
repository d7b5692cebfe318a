"""Starts one real `keyraft dev` region (three storage nodes + a front) for the whole session.

The binary comes from KEYRAFT_BIN (default: target/debug/keyraft). Clients get the endpoint,
region, credentials and CA bundle only through the env file the dev region writes, exactly as a
user who ran `source DIR/env` would.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import boto3
import botocore.config
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port_base(start, width=20, span=2000):
    """The first base at or after `start` whose `width` ports are all free on loopback. The
    default range, 29000-30999, is these tests' share of the project's port map (see
    node/tests/it/common/mod.rs): below 32768, where Linux hands out ephemeral ports."""
    import socket

    for base in range(start, start + span, 100):
        sockets = []
        try:
            for port in range(base, base + width):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                sockets.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free loopback port range")


PORT_BASE = free_port_base(int(os.environ.get("KEYRAFT_PY_PORT_BASE", "29000")))


def parse_env_file(path):
    env = {}
    for line in Path(path).read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            env[name] = value.strip("'")
    return env


class Region:
    def __init__(self, directory, port_base=None, extra_args=()):
        self.dir = Path(directory)
        self.proc = None
        self.env = {}
        self.port_base = port_base or PORT_BASE
        self.extra_args = list(extra_args)

    def start(self):
        env_file = self.dir / "env"
        if env_file.exists():
            env_file.unlink()
        binary = os.environ.get("KEYRAFT_BIN", str(ROOT / "target" / "debug" / "keyraft"))
        self.log = open(self.dir / "dev.log", "ab")
        self.proc = subprocess.Popen(
            [binary, "dev", "--dir", str(self.dir), "--port-base", str(self.port_base)]
            + self.extra_args,
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
        )
        deadline = time.time() + 90
        while not env_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"keyraft dev exited: {(self.dir / 'dev.log').read_text()}")
            if time.time() > deadline:
                raise RuntimeError("keyraft dev did not come up")
            time.sleep(0.1)
        self.env = parse_env_file(env_file)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self, alt=False, validate=True):
        prefix = "KMS_ALT_" if alt else "AWS_"
        return boto3.client(
            "kms",
            config=botocore.config.Config(parameter_validation=validate, retries={"max_attempts": 1}),
            region_name=self.env["AWS_DEFAULT_REGION"],
            endpoint_url=self.env["KMS_ENDPOINT"],
            aws_access_key_id=self.env[prefix + "ACCESS_KEY_ID"],
            aws_secret_access_key=self.env[prefix + "SECRET_ACCESS_KEY"],
            verify=self.env["AWS_CA_BUNDLE"],
        )

    def cli_env(self):
        """The environment of a shell that ran `source DIR/env`, and nothing else AWS-ish."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.env)
        env["AWS_CONFIG_FILE"] = str(self.dir / "no-aws-config")
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(self.dir / "no-aws-credentials")
        return env


@pytest.fixture(scope="session")
def region():
    directory = tempfile.mkdtemp(prefix="keyraft-py-")
    r = Region(directory)
    r.start()
    yield r
    r.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture()
def kms(region):
    return region.client()


@pytest.fixture()
def new_key(kms):
    def make(**kwargs):
        return kms.create_key(**kwargs)["KeyMetadata"]["KeyId"]
    return make


@pytest.fixture(scope="session")
def clock_region():
    """A second dev region whose storage nodes add the offset in `region.clock_file` (ms) to
    their clock (`--danger-clock-offset-file`), so tests can move the Raft leader's scheduler
    through days in seconds. Started only by the tests that ask for it."""
    directory = tempfile.mkdtemp(prefix="keyraft-py-clock-")
    clock_file = Path(directory) / "clock-offset-ms"
    r = Region(
        directory,
        port_base=free_port_base(PORT_BASE + 100),
        extra_args=["--danger-clock-offset-file", str(clock_file)],
    )
    r.clock_file = clock_file
    r.start()
    yield r
    r.stop()
    shutil.rmtree(directory, ignore_errors=True)
