#!/usr/bin/env bash
# Smoke test of the compose region: up, create a key, encrypt, stop the Raft leader's
# container, decrypt (and create another key) through the other front, tear down.
# Exits 0 on success, and 0 with "skipped: no docker engine" when `docker info` fails.
#
# Uses boto3 from $KEYRAFT_PYTHON, the repository's .venv, or python3; otherwise installs it into a
# temporary venv. Each run has its own compose project, directory and host ports.
set -euo pipefail

if ! docker info >/dev/null 2>&1; then
    echo "skipped: no docker engine (docker info failed)"
    exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
t0=$(date +%s.%N)
elapsed() { printf '%6.1fs' "$(echo "$(date +%s.%N) - $t0" | bc)"; }
step() { echo "[$(elapsed)] $*"; }

python=${KEYRAFT_PYTHON:-}
for candidate in "$root/.venv/bin/python" python3; do
    if [[ -z $python ]] && "$candidate" -c 'import boto3' 2>/dev/null; then
        python=$candidate
    fi
done

work=$(mktemp -d /tmp/keyraft-smoke.XXXXXX)
project=keyraft-smoke-$$
compose=(docker-compose -p "$project" -f "$here/docker-compose.yml")
export KEYRAFT_DIR=$work/region
mkdir -p "$KEYRAFT_DIR"

cleanup() {
    local rc=$?
    if [[ $rc != 0 ]]; then
        echo "--- failed; last container logs:"
        "${compose[@]}" logs --no-color --tail 30 2>&1 | tail -120 || true
    fi
    "${compose[@]}" down -v -t 1 --remove-orphans >/dev/null 2>&1 || true
    rm -rf "$work"
    step "torn down (exit $rc)"
}
trap cleanup EXIT

if [[ -z $python ]]; then
    step "installing boto3 into a temporary venv"
    python3 -m venv "$work/venv" && "$work/venv/bin/pip" install -q boto3
    python=$work/venv/bin/python
fi

# Four free host ports (bound and released at once; a clash would fail `up` loudly).
read -r KEYRAFT_JSON_PORT_1 KEYRAFT_GRPC_PORT_1 KEYRAFT_JSON_PORT_2 KEYRAFT_GRPC_PORT_2 < <(
    "$python" -c 'import socket
s=[socket.socket() for _ in range(4)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
export KEYRAFT_JSON_PORT_1 KEYRAFT_GRPC_PORT_1 KEYRAFT_JSON_PORT_2 KEYRAFT_GRPC_PORT_2

step "building image"
"$here/build-image.sh"
step "docker-compose up -d (project $project)"
"${compose[@]}" up -d >"$work/up.log" 2>&1 || { cat "$work/up.log"; exit 1; }
step "region up; env file $KEYRAFT_DIR/env"

# shellcheck disable=SC1091
source "$KEYRAFT_DIR/env"
export SMOKE_FRONT2="https://127.0.0.1:$KEYRAFT_JSON_PORT_2" SMOKE_WORK=$work
kms() { "$python" "$work/kms.py" "$@"; }
cat >"$work/kms.py" <<'PY'
import base64, json, os, ssl, sys, time, urllib.request
import boto3
from botocore.config import Config

def client(url):
    return boto3.client("kms", endpoint_url=url, verify=os.environ["AWS_CA_BUNDLE"],
                        config=Config(retries={"max_attempts": 1}, read_timeout=10))

def retry(what, f, within=60):
    deadline, last = time.time() + within, None
    while time.time() < deadline:
        try:
            return f()
        except Exception as e:  # the region may be electing a leader
            last = e
            time.sleep(0.5)
    sys.exit(f"{what}: {last}")

cmd, work = sys.argv[1], os.environ["SMOKE_WORK"]
if cmd == "encrypt":
    c = client(os.environ["KMS_ENDPOINT"])
    key = retry("create-key", lambda: c.create_key(Description="smoke")["KeyMetadata"]["KeyId"])
    blob = retry("encrypt", lambda: c.encrypt(KeyId=key, Plaintext=b"smoke plaintext")["CiphertextBlob"])
    open(f"{work}/blob", "wb").write(blob)
    print(f"key {key}, ciphertext {len(blob)} bytes")
elif cmd == "leader":
    ctx = ssl.create_default_context(cafile=os.environ["AWS_CA_BUNDLE"])
    def leader():
        s = json.load(urllib.request.urlopen(os.environ["KMS_ENDPOINT"] + "/status", context=ctx, timeout=5))
        assert s.get("leaderId"), s
        return s["leaderId"]
    print(retry("status", leader))
elif cmd == "decrypt":
    c = client(os.environ["SMOKE_FRONT2"])
    blob = open(f"{work}/blob", "rb").read()
    out = retry("decrypt", lambda: c.decrypt(CiphertextBlob=blob)["Plaintext"])
    assert out == b"smoke plaintext", out
    key = retry("create-key after the stop", lambda: c.create_key(Description="after")["KeyMetadata"]["KeyId"])
    print(f"decrypted through front2; created {key} with two nodes")
PY

kms encrypt
step "created a key and encrypted through front1"
leader=$(kms leader)
step "stopping node$leader (the Raft leader)"
"${compose[@]}" stop -t 0 "node$leader" >/dev/null 2>&1
kms decrypt
step "decrypted after the stop"
echo "smoke: ok"
