#!/usr/bin/env bash
# Smoke test of the two-region compose deployment (docker-compose.regions.yml): up; create a
# multi-region key in region A, ReplicateKey to B, encrypt in A, decrypt in B (and the other
# way); stop each region's Raft leader and one front of each region; do it all again through
# the remaining fronts, then rotate the new key in A and decrypt a new ciphertext in B (within
# 10 s); tear down (volumes too), also on failure.
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

work=$(mktemp -d /tmp/keyraft-smoke-regions.XXXXXX)
project=keyraft-smoke-regions-$$
compose=(docker-compose -p "$project" -f "$here/docker-compose.regions.yml")
export KEYRAFT_DIR=$work/regions KEYRAFT_REGION_A=us-east-1 KEYRAFT_REGION_B=us-west-2
mkdir -p "$KEYRAFT_DIR"

cleanup() {
    local rc=$?
    if [[ $rc != 0 ]]; then
        echo "--- failed; last container logs:"
        "${compose[@]}" logs --no-color --tail 20 2>&1 | tail -200 || true
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

# Eight free host ports (bound and released at once; a clash would fail `up` loudly).
read -r KEYRAFT_JSON_PORT_A1 KEYRAFT_GRPC_PORT_A1 KEYRAFT_JSON_PORT_A2 KEYRAFT_GRPC_PORT_A2 \
    KEYRAFT_JSON_PORT_B1 KEYRAFT_GRPC_PORT_B1 KEYRAFT_JSON_PORT_B2 KEYRAFT_GRPC_PORT_B2 < <(
    "$python" -c 'import socket
s=[socket.socket() for _ in range(8)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
export KEYRAFT_JSON_PORT_A1 KEYRAFT_GRPC_PORT_A1 KEYRAFT_JSON_PORT_A2 KEYRAFT_GRPC_PORT_A2 \
    KEYRAFT_JSON_PORT_B1 KEYRAFT_GRPC_PORT_B1 KEYRAFT_JSON_PORT_B2 KEYRAFT_GRPC_PORT_B2

step "building image"
"$here/build-image.sh"
step "docker-compose up -d (project $project: 2 regions x 3 nodes + 2 fronts)"
"${compose[@]}" up -d >"$work/up.log" 2>&1 || { cat "$work/up.log"; exit 1; }
step "both regions up; env files $KEYRAFT_DIR/env and $KEYRAFT_DIR/$KEYRAFT_REGION_B/env"

# Each region's storage network is internal and holds only that region's containers.
for r in a b; do
    net=$(docker network inspect "${project}_region-$r" \
        --format '{{.Internal}} {{range .Containers}}{{.Name}} {{end}}')
    other=$([[ $r == a ]] && echo b || echo a)
    if [[ $net != true* || $net == *"_$other-"* || $net != *"_$r-node1_"* ]]; then
        echo "network region-$r: expected internal with region $r's containers only: $net"
        exit 1
    fi
done
step "networks region-a and region-b are internal, one region each"

# shellcheck disable=SC1091
source "$KEYRAFT_DIR/env"
export SMOKE_WORK=$work
kms() { "$python" "$work/kms.py" "$@"; }
cat >"$work/kms.py" <<'PY'
import json, os, ssl, sys, time, urllib.request
import boto3
from botocore.config import Config

A, B = os.environ["KMS_REGION"], os.environ["KMS_REGION_B"]
work = os.environ["SMOKE_WORK"]
port = lambda name: f"https://127.0.0.1:{os.environ[name]}"

def client(url, region):
    return boto3.client("kms", endpoint_url=url, region_name=region,
                        verify=os.environ["AWS_CA_BUNDLE"],
                        config=Config(retries={"max_attempts": 1}, read_timeout=10))

def retry(what, f, within=60):
    deadline, last = time.time() + within, None
    while time.time() < deadline:
        try:
            return f()
        except Exception as e:  # a region may be electing a leader, a replica on its way
            last = e
            time.sleep(0.3)
    sys.exit(f"{what}: {last}")

def state(c, key):
    return c.describe_key(KeyId=key)["KeyMetadata"]["KeyState"]

def round_trip(label, a, b):
    """Create an MRK in A, replicate it to B, encrypt in each region, decrypt in the other."""
    t = time.time()
    key = retry("create-key", lambda: a.create_key(MultiRegion=True, Description=label)["KeyMetadata"]["KeyId"])
    assert key.startswith("mrk-"), key
    replica = retry("replicate-key", lambda: a.replicate_key(KeyId=key, ReplicaRegion=B))
    assert replica["ReplicaKeyMetadata"]["Arn"].split(":")[3] == B, replica
    def enabled():
        s = state(b, key)
        assert s == "Enabled", s
    retry("replica Enabled in B", enabled)
    replicated = time.time() - t
    text = f"{label} plaintext".encode()
    blob_a = retry("encrypt in A", lambda: a.encrypt(KeyId=key, Plaintext=text)["CiphertextBlob"])
    out = retry("decrypt in B", lambda: b.decrypt(CiphertextBlob=blob_a)["Plaintext"])
    assert out == text, out
    blob_b = retry("encrypt in B", lambda: b.encrypt(KeyId=key, Plaintext=text)["CiphertextBlob"])
    out = retry("decrypt in A", lambda: a.decrypt(CiphertextBlob=blob_b)["Plaintext"])
    assert out == text, out
    cfg = b.describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"]
    assert cfg["MultiRegionKeyType"] == "REPLICA" and cfg["PrimaryKey"]["Region"] == A, cfg
    print(f"{label}: {key}: replica Enabled in {B} after {replicated:.1f}s; "
          f"A->B and B->A decrypt ok ({time.time() - t:.1f}s in all)")
    return key, blob_a

cmd = sys.argv[1]
if cmd == "before":
    a = client(port("KEYRAFT_JSON_PORT_A1"), A)
    b = client(port("KEYRAFT_JSON_PORT_B1"), B)
    key, blob = round_trip("before", a, b)
    json.dump({"key": key}, open(f"{work}/before.json", "w"))
    open(f"{work}/blob", "wb").write(blob)
elif cmd == "leader":
    ctx = ssl.create_default_context(cafile=os.environ["AWS_CA_BUNDLE"])
    def leader():
        s = json.load(urllib.request.urlopen(port(sys.argv[2]) + "/status", context=ctx, timeout=5))
        assert s.get("leaderId"), s
        return s["leaderId"]
    print(retry("status", leader))
elif cmd == "after":
    # Through the fronts left running: front2 of each region.
    a = client(port("KEYRAFT_JSON_PORT_A2"), A)
    b = client(port("KEYRAFT_JSON_PORT_B2"), B)
    blob = open(f"{work}/blob", "rb").read()
    out = retry("decrypt the earlier ciphertext in B", lambda: b.decrypt(CiphertextBlob=blob)["Plaintext"])
    assert out == b"before plaintext", out
    key, _ = round_trip("after", a, b)
    # A rotation on the primary reaches the replica (issue 7: within 10 s).
    retry("rotate in A", lambda: a.rotate_key_on_demand(KeyId=key))
    def rotated():
        assert a.list_key_rotations(KeyId=key)["Rotations"], "no rotation yet"
    retry("rotation listed in A", rotated)
    blob = retry("encrypt after the rotation", lambda: a.encrypt(KeyId=key, Plaintext=b"rotated")["CiphertextBlob"])
    t = time.time()
    out = retry("decrypt the rotated ciphertext in B", lambda: b.decrypt(CiphertextBlob=blob)["Plaintext"], within=10)
    assert out == b"rotated", out
    print(f"rotated in {A}; {B} decrypted a new ciphertext after {time.time() - t:.1f}s")
PY

kms before
step "round 1 done (through a-front1 and b-front1)"
leader_a=$(kms leader KEYRAFT_JSON_PORT_A1)
leader_b=$(kms leader KEYRAFT_JSON_PORT_B1)
step "stopping a-node$leader_a and b-node$leader_b (the Raft leaders), a-front1 and b-front1"
"${compose[@]}" stop -t 0 "a-node$leader_a" "b-node$leader_b" a-front1 b-front1 >/dev/null 2>&1
step "stopped"
kms after
step "round 2 and a rotation done (through a-front2 and b-front2, two nodes per region)"
echo "smoke-regions: ok"
