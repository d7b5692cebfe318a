#!/usr/bin/env bash
# keyraft at scale, in one command: how fast a region creates keys as it grows, what a storage
# node costs in memory and disk per million keys, how long a restarted node takes to serve and
# how long a wiped node takes to catch up by snapshot (issue 8, "Scale").
#
#   bench/scale.sh                       # release build, 1,000,000 keys
#   SCALE_KEYS=100000 bench/scale.sh     # a shorter run
#
# What it does:
#   1. builds release `keyraft` and `keyraft-bench` (SCALE_NO_BUILD=1 skips it);
#   2. `keyraft dev --init-only` writes a 3-node loopback region's PKI and configs; the roles
#      are started separately (3 x `keyraft node --config`, 1 x `keyraft front --config`,
#      each its own pid), and `keyraft dev --external-nodes` bootstraps the identities and
#      writes the env file;
#   3. fills the region with real CreateKey calls (keyraft-bench, AWS JSON, 32 clients, closed
#      loop) in chunks of SCALE_CHUNK keys, recording each chunk's rate, p99, and every
#      storage node's RSS and data-dir size;
#   4. at SCALE_BASE_KEYS keys and again at SCALE_KEYS keys: a 15 s CreateKey run (after a
#      short counted warm-up chunk), RSS (VmRSS) and `du -sb` of each data dir;
#   5. restart: kill -9 a follower, start it again, and time until the front's /status shows it
#      a follower whose lastApplied >= the leader's lastApplied at the kill; then the same after
#      SIGTERM (a clean stop: no database repair);
#   6. catch-up: a follower is lost (kill -9, data dir deleted) and a new node (id 4, empty
#      data dir) joins in its place (`keyraft node --join --join-replaces F`); timed until it
#      logs "joined the region" (caught up by snapshot, then a voter);
#   7. writes summary.txt and summary.json to SCALE_OUT, with every "built snapshot" line's
#      size and build time, and the snapshot log lines of the catch-up.
# Every process it started is stopped on exit (trap), also on Ctrl-C or failure; a summary
# of what was measured so far is written then too ("complete": false).
#
# Settings (environment): SCALE_KEYS (1000000), SCALE_BASE_KEYS (10000), SCALE_CHUNK (50000),
# SCALE_CLIENTS (32), SCALE_DURATION (measured seconds, 15), SCALE_FILL_SECONDS (stop filling
# after this long and measure at the count reached; default: no limit), SCALE_WAIT_SECONDS
# (restart / catch-up give-up time, 600), SCALE_PORT_BASE (31100: JSON +0, gRPC +1, nodes
# +11..+13), SCALE_DIR (region, /tmp/scale-region; wiped first), SCALE_OUT (/tmp/scale-out),
# SCALE_KEEP_DATA (1: leave SCALE_DIR in place), SCALE_NO_BUILD, CARGO_TARGET_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KEYS="${SCALE_KEYS:-1000000}"
BASE_KEYS="${SCALE_BASE_KEYS:-10000}"
CHUNK="${SCALE_CHUNK:-50000}"
CLIENTS="${SCALE_CLIENTS:-32}"
DURATION="${SCALE_DURATION:-15}"
FILL_SECONDS="${SCALE_FILL_SECONDS:-0}"
WAIT_SECONDS="${SCALE_WAIT_SECONDS:-600}"
PORT="${SCALE_PORT_BASE:-31100}"
DIR="${SCALE_DIR:-/tmp/scale-region}"
OUT="${SCALE_OUT:-/tmp/scale-out}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
KEYRAFT="$TARGET_DIR/release/keyraft"
BENCH="$TARGET_DIR/release/keyraft-bench"
WARMUP_KEYS=2000

log() { echo "== $(date -u +%H:%M:%S) $*" >&2; }
now() { date +%s.%N; }
# Seconds between two `now` stamps, 2 decimals.
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# The commit as the run starts (the tree may move on while it runs); "+dirty" if it has
# uncommitted changes.
COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
if [ -n "$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  COMMIT="$COMMIT+dirty"
fi
rm -rf "$OUT" "$DIR"
mkdir -p "$OUT"/{pids,logs,runs} "$DIR"
FACTS="$OUT/facts.tsv"   # name <tab> value, read by the summary
: >"$FACTS"
fact() { printf '%s\t%s\n' "$1" "$2" >>"$FACTS"; }
COMPLETE=0

# --- processes: one pid file per role in $OUT/pids (not DIR/pids: `keyraft dev` kills those) --
start_node() { # id
  echo "---- start $(date -u +%FT%T.%3NZ)" >>"$OUT/logs/node-$1.log"
  "$KEYRAFT" node --config "$DIR/roles/node-$1.toml" >>"$OUT/logs/node-$1.log" 2>&1 &
  echo $! >"$OUT/pids/node-$1.pid"
}
start_front() {
  "$KEYRAFT" front --config "$DIR/roles/front.toml" >>"$OUT/logs/front.log" 2>&1 &
  echo $! >"$OUT/pids/front.pid"
}
pid_of() { cat "$OUT/pids/$1.pid"; }
stop_role() { # name signal: waits up to 10 s, then SIGKILL
  local pid
  pid="$(pid_of "$1")"
  kill "-$2" "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  set +e
  trap - EXIT INT TERM
  [ -f "$OUT/pids/front.pid" ] && stop_role front TERM
  for f in "$OUT"/pids/node-*.pid; do
    [ -f "$f" ] && stop_role "$(basename "$f" .pid)" TERM
  done
  write_summary
  [ "${SCALE_KEEP_DATA:-0}" = 1 ] || rm -rf "$DIR"
  log "summary: $OUT/summary.txt"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the front's view --------------------------------------------------------------------
status() { curl -s --max-time 5 --cacert "$DIR/ca.pem" "https://127.0.0.1:$PORT/status"; }
# "leaderId leaderLastApplied" from /status, or nothing.
leader() {
  status | jq -r '.nodes as $n | .leaderId as $l | select($l != null)
    | "\($l) \([$n[] | select(.nodeId == $l) | .lastApplied][0] // 0)"' 2>/dev/null || true
}
# "state lastApplied" of node $1, or "down -".
node_view() {
  status | jq -r --argjson id "$1" '[.nodes[] | select(.nodeId == $id)][0]
    | "\(.state // "down") \(.lastApplied // "-")"' 2>/dev/null || echo "down -"
}
wait_ready() {
  for _ in $(seq 600); do
    curl -sf --max-time 2 --cacert "$DIR/ca.pem" "https://127.0.0.1:$PORT/readyz" >/dev/null && return 0
    sleep 0.2
  done
  echo "the front never became ready" >&2
  return 1
}

# --- resources ---------------------------------------------------------------------------
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$(pid_of "node-$1")/status" 2>/dev/null || echo 0; }
disk_b() { du -sb "$DIR/data/node-$1" 2>/dev/null | cut -f1 || echo 0; }
# Allocated, not apparent: redb grows its file in large steps ahead of use.
disk_alloc_b() { du -s -B1 "$DIR/data/node-$1" 2>/dev/null | cut -f1 || echo 0; }
record_resources() { # label keys
  local n
  for n in 1 2 3; do
    fact "rss_kb.$1.node-$n" "$(rss_kb $n)"
    fact "disk_b.$1.node-$n" "$(disk_b $n)"
    fact "disk_alloc_b.$1.node-$n" "$(disk_alloc_b $n)"
  done
  fact "keys.$1" "$2"
}

# --- load --------------------------------------------------------------------------------
KEYS_NOW=0
bench_run() { # name count|"" duration [extra]
  local name="$1" count="$2" duration="$3"
  shift 3
  local extra=()
  [ -n "$count" ] && extra=(--count "$count")
  "$BENCH" run --target keyraft-json --op create-key --concurrency "$CLIENTS" \
    --warmup 0 --duration "$duration" --timeout 30 --env-file "$DIR/env" --quiet \
    --json "$OUT/runs/$name.json" "${extra[@]}" "$@" >"$OUT/runs/$name.txt" 2>&1 ||
    { echo "keyraft-bench failed ($name):" >&2; cat "$OUT/runs/$name.txt" >&2; return 1; }
  KEYS_NOW=$((KEYS_NOW + $(jq '.[0].ok' "$OUT/runs/$name.json")))
}
FILL_STARTED=""
FILL_STOPPED=0
fill_to() { # keys
  local n name ok err rate p99 fails=0
  [ -z "$FILL_STARTED" ] && FILL_STARTED="$(date +%s)"
  while [ "$KEYS_NOW" -lt "$1" ]; do
    if [ "$FILL_SECONDS" -gt 0 ] && [ $(($(date +%s) - FILL_STARTED)) -ge "$FILL_SECONDS" ]; then
      log "fill: SCALE_FILL_SECONDS=$FILL_SECONDS reached at $KEYS_NOW keys"
      FILL_STOPPED=1
      return 0
    fi
    n=$(($1 - KEYS_NOW))
    [ "$n" -gt "$CHUNK" ] && n="$CHUNK"
    name="fill-$(printf %08d "$KEYS_NOW")"
    bench_run "$name" "$n" 86400
    read -r ok err rate p50 p99 < <(jq -r '.[0] | "\(.ok) \([.errors[]] | add // 0) \(.throughput) \(.latency.p50) \(.latency.p99)"' "$OUT/runs/$name.json")
    printf '%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%T)" "$KEYS_NOW" "$ok" "$rate" "$p50" "$p99" "$err" \
      "$(rss_kb 1)" "$(rss_kb 2)" "$(rss_kb 3)" "$(disk_b 1)" "$(disk_b 2)" "$(disk_b 3)" >>"$OUT/fill.tsv"
    log "fill: $KEYS_NOW keys (chunk $ok ok, $err errors, $(printf %.0f "$rate")/s, p99 ${p99} ms)"
    if [ "$ok" = 0 ]; then
      fails=$((fails + 1))
      [ "$fails" -ge 3 ] && { echo "three chunks without one key created: giving up" >&2; return 1; }
    else
      fails=0
    fi
  done
}
measure() { # label
  log "measure at $KEYS_NOW keys: $WARMUP_KEYS keys warm-up, then ${DURATION}s, $CLIENTS clients"
  bench_run "warmup-$1" "$WARMUP_KEYS" 86400
  record_resources "$1" "$KEYS_NOW"
  local at="$KEYS_NOW"
  bench_run "create-key-$1" "" "$DURATION" --svg "$OUT/runs/create-key-$1.svg"
  fact "measured_at.$1" "$at"
  jq -r '.[0] | "\(.throughput) \(.latency.p50) \(.latency.p99) \([.errors[]] | add // 0)"' \
    "$OUT/runs/create-key-$1.json" | {
    read -r rate p50 p99 err
    fact "rate.$1" "$rate"; fact "p50.$1" "$p50"; fact "p99.$1" "$p99"; fact "errors.$1" "$err"
    log "  $(printf %.0f "$rate") req/s, p50 $p50 ms, p99 $p99 ms, $err errors"
  }
}

# --- the summary (also on early exit) -----------------------------------------------------
write_summary() {
  # Every "built snapshot" line of every node: node, time, last log index, bytes, ms.
  : >"$OUT/snapshots.tsv"
  for n in 1 2 3; do
    [ -f "$OUT/logs/node-$n.log" ] || continue
    grep 'built snapshot' "$OUT/logs/node-$n.log" | while read -r line; do
      printf 'node-%s\t%s\t%s\t%s\t%s\n' "$n" "${line%% *}" \
        "$(grep -o 'index: [0-9]*' <<<"$line" | tail -1 | cut -d' ' -f2)" \
        "$(grep -o 'bytes=[0-9]*' <<<"$line" | cut -d= -f2)" \
        "$(grep -o ' ms=[0-9]*' <<<"$line" | cut -d= -f2)"
    done >>"$OUT/snapshots.tsv"
  done
  grep -h -E 'snapshot' "$OUT"/logs/node-*.log 2>/dev/null | grep -v 'built snapshot' \
    >"$OUT/snapshot-log.txt" || true
  python3 - "$OUT" "$COMPLETE" "$KEYS" "$CLIENTS" "$DURATION" \
    "$COMMIT" <<'PY'
import json, sys, os, datetime
out, complete, keys, clients, duration, commit = sys.argv[1:]
facts = {}
for line in open(os.path.join(out, "facts.tsv")):
    k, _, v = line.rstrip("\n").partition("\t")
    facts[k] = v
def num(k):
    v = facts.get(k)
    try:
        return float(v)
    except (TypeError, ValueError):
        return None
fill = []
if os.path.exists(os.path.join(out, "fill.tsv")):
    for line in open(os.path.join(out, "fill.tsv")):
        t, k, ok, rate, p50, p99, err, r1, r2, r3, d1, d2, d3 = line.split("\t")
        fill.append({"time": t, "keys_after": int(k), "ok": int(ok), "rate": float(rate),
                     "p50_ms": float(p50), "p99_ms": float(p99), "errors": int(err),
                     "rss_kb": [int(r1), int(r2), int(r3)],
                     "disk_bytes": [int(d1), int(d2), int(d3)]})
snaps = []
for line in open(os.path.join(out, "snapshots.tsv")):
    node, t, idx, b, ms = (line.rstrip("\n").split("\t") + [""] * 5)[:5]
    snaps.append({"node": node, "time": t, "index": int(idx) if idx else None,
                  "bytes": int(b) if b else None, "ms": int(ms) if ms else None})
def level(label):
    if f"keys.{label}" not in facts:
        return None
    return {
        "keys": int(facts[f"keys.{label}"]),
        "create_key": {"keys_at_start": int(facts.get(f"measured_at.{label}", 0)),
                       "req_per_s": num(f"rate.{label}"), "p50_ms": num(f"p50.{label}"),
                       "p99_ms": num(f"p99.{label}"), "errors": num(f"errors.{label}")},
        "rss_kb": {f"node-{n}": int(facts[f"rss_kb.{label}.node-{n}"]) for n in (1, 2, 3)},
        "disk_bytes": {f"node-{n}": int(facts[f"disk_b.{label}.node-{n}"]) for n in (1, 2, 3)},
        "disk_allocated_bytes": {f"node-{n}": int(facts[f"disk_alloc_b.{label}.node-{n}"]) for n in (1, 2, 3)},
    }
base, big = level("base"), level("large")
per_million = None
if base and big and big["keys"] > base["keys"]:
    dk = (big["keys"] - base["keys"]) / 1e6
    per_million = {
        "rss_mib": {n: round((big["rss_kb"][n] - base["rss_kb"][n]) / 1024 / dk, 1) for n in big["rss_kb"]},
        "disk_mib": {n: round((big["disk_bytes"][n] - base["disk_bytes"][n]) / 2**20 / dk, 1) for n in big["disk_bytes"]},
        "disk_allocated_mib": {n: round((big["disk_allocated_bytes"][n] - base["disk_allocated_bytes"][n]) / 2**20 / dk, 1) for n in big["disk_bytes"]},
        "note": "growth between the two measurements, scaled to 1,000,000 keys",
    }
ratio = None
if base and big and base["create_key"]["req_per_s"] and big["create_key"]["req_per_s"] is not None:
    ratio = big["create_key"]["req_per_s"] / base["create_key"]["req_per_s"]
def sec(k):
    return num(k)
summary = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "commit": commit, "complete": complete == "1", "keys_requested": int(keys),
    "clients": int(clients), "duration_s": int(duration),
    "machine": f"{os.cpu_count()} cores",
    "base": base, "large": big, "rate_ratio_large_vs_base": ratio,
    "per_million_keys": per_million,
    "restart": {k.split(".", 1)[1]: facts[k] for k in facts if k.startswith("restart.")},
    "graceful_restart": {k.split(".", 1)[1]: facts[k] for k in facts
                         if k.startswith("graceful_restart.")},
    "catchup": {k.split(".", 1)[1]: facts[k] for k in facts if k.startswith("catchup.")},
    "fill": fill, "snapshots_built": snaps,
}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
L = []
L.append(f"keyraft scale — {summary['date']}, commit {commit}, {os.cpu_count()} cores, "
         f"release, 3 redb storage nodes + 1 front, audit sync, {clients} clients"
         + ("" if summary["complete"] else "  [INCOMPLETE: stopped early]"))
L.append("")
L.append("fill (CreateKey, closed loop):")
L.append(f"  {'keys':>9} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>8} {'err':>4} {'RSS MiB (1/2/3)':>20} {'disk MiB (1/2/3)':>22}")
for f in fill:
    L.append(f"  {f['keys_after']:>9} {f['rate']:>7.0f} {f['p50_ms']:>7.1f} {f['p99_ms']:>8.1f} {f['errors']:>4} "
             f"{'/'.join(str(r // 1024) for r in f['rss_kb']):>20} "
             f"{'/'.join(str(d // 2**20) for d in f['disk_bytes']):>22}")
L.append("")
for name, lv in (("base", base), ("large", big)):
    if not lv:
        continue
    c = lv["create_key"]
    L.append(f"{name}: {lv['keys']} keys: CreateKey {duration}s: {c['req_per_s'] or 0:.0f} req/s, "
             f"p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms, errors {c['errors']}")
    L.append(f"  RSS MiB {', '.join(f'{n} {v / 1024:.0f}' for n, v in lv['rss_kb'].items())}; "
             f"disk MiB {', '.join(f'{n} {v / 2**20:.0f}' for n, v in lv['disk_bytes'].items())} "
             f"(allocated {', '.join(f'{v / 2**20:.0f}' for v in lv['disk_allocated_bytes'].values())})")
if ratio is not None:
    L.append(f"ratio large/base: {ratio:.2f} (target >= 0.80)")
if per_million:
    L.append(f"per million keys (growth): RSS MiB {per_million['rss_mib']}, disk MiB {per_million['disk_mib']}, "
             f"allocated {per_million['disk_allocated_mib']}")
L.append("")
for part in ("restart", "graceful_restart", "catchup"):
    if summary[part]:
        L.append(f"{part}: " + ", ".join(f"{k}={v}" for k, v in sorted(summary[part].items())))
L.append("")
L.append(f"snapshots built: {len(snaps)}")
for s in snaps:
    L.append(f"  {s['node']} {s['time']} index {s['index']} bytes {s['bytes']} ms {s['ms']}")
open(os.path.join(out, "summary.txt"), "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
}

# --- 1. build ------------------------------------------------------------------------------
if [ "${SCALE_NO_BUILD:-0}" != 1 ]; then
  log "building keyraft and keyraft-bench (release)"
  (cd "$ROOT" && cargo build --release -q -p keyraft-node -p keyraft-bench)
fi

# --- 2. the region, role by role -----------------------------------------------------------
log "region in $DIR (ports $PORT..$((PORT + 13))), logs in $OUT/logs"
NODES="127.0.0.1:$((PORT + 11)),127.0.0.1:$((PORT + 12)),127.0.0.1:$((PORT + 13))"
"$KEYRAFT" dev --init-only --dir "$DIR" --port-base "$PORT" >"$OUT/logs/init.log" 2>&1
# The loopback configs as written now: the bootstrap below rewrites DIR/*.toml for
# externally run nodes (0.0.0.0), which this script does not want.
mkdir -p "$DIR/roles"
cp "$DIR"/node-{1,2,3}.toml "$DIR/front.toml" "$DIR/roles/"
for n in 1 2 3; do start_node $n; done
"$KEYRAFT" dev --dir "$DIR" --port-base "$PORT" --external-nodes "$NODES" \
  --public-url "https://127.0.0.1:$PORT" --public-grpc-url "https://127.0.0.1:$((PORT + 1))" \
  >"$OUT/logs/bootstrap.log" 2>&1
[ -f "$DIR/env" ] || { echo "bootstrap wrote no env file" >&2; cat "$OUT/logs/bootstrap.log" >&2; exit 1; }
start_front
wait_ready
log "region up: $(leader | cut -d' ' -f1) leads"

# --- 3/4. fill, measuring at SCALE_BASE_KEYS and SCALE_KEYS --------------------------------
fill_to "$BASE_KEYS"
measure base
fill_to "$KEYS"
measure large

# --- 5. restart: stop a follower (kill -9, then SIGTERM), start it, time until it serves -----
# After kill -9 redb repairs the file (walks every page) before the state loads; after SIGTERM
# the node closed its database and only the load remains.
restart_follower() { # signal fact-prefix
  local sig="$1" part="$2" st la served deadline opened
  read -r L LEADER_APPLIED < <(leader) || { echo "no leader on /status" >&2; exit 1; }
  F=$(( L == 3 ? 2 : 3 ))
  log "$part: SIG$sig node $F (leader $L at lastApplied $LEADER_APPLIED)"
  T_KILL="$(now)"
  stop_role "node-$F" "$sig"
  start_node "$F"
  T_START="$(now)"
  fact "$part.node" "$F"
  fact "$part.signal" "$sig"
  fact "$part.leader_applied_at_stop" "$LEADER_APPLIED"
  served=""
  deadline=$(( $(date +%s) + WAIT_SECONDS ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    st=down la=-
    read -r st la < <(node_view "$F") || true
    if [ "$st" = Follower ] && [ "$la" != "-" ] && [ "$la" -ge "$LEADER_APPLIED" ]; then
      served="$(now)"; break
    fi
    sleep 0.1
  done
  if [ -n "$served" ]; then
    # The node's own split: opening the database (redb repairs it after a crash) and loading
    # the state.
    opened="$(grep 'storage opened' "$OUT/logs/node-$F.log" | tail -1)"
    fact "$part.open_ms" "$(echo "$opened" | grep -o 'open_ms=[0-9]*' | cut -d= -f2)"
    fact "$part.load_ms" "$(echo "$opened" | grep -o 'load_ms=[0-9]*' | cut -d= -f2)"
    fact "$part.seconds_from_start" "$(since "$T_START" "$served")"
    fact "$part.seconds_from_stop" "$(since "$T_KILL" "$served")"
    log "$part: node $F a follower at lastApplied $la after $(since "$T_START" "$served") s (stop to serve $(since "$T_KILL" "$served") s)"
  else
    fact "$part.seconds_from_start" "not within ${WAIT_SECONDS}s"
    log "$part: node $F did not catch up within ${WAIT_SECONDS}s (last seen: $st $la)"
  fi
}
restart_follower KILL restart
restart_follower TERM graceful_restart

# --- 6. catch-up by snapshot: a new node replaces a lost follower -----------------------------
# A node that lost its disk never comes back under its old id (it lost its vote and the
# entries it acknowledged; openraft refuses such a log reversion). A new node (id 4, empty
# data dir) joins with `--join --join-replaces F`: the leader adds it as a learner, sends it a
# snapshot (the log it needs was purged), and makes it a voter in F's place.
NEW=4
NEW_ADDR="127.0.0.1:$((PORT + 14))"
log "catch-up: node $F lost (killed, data dir deleted); node $NEW joins in its place at $NEW_ADDR"
stop_role "node-$F" KILL
rm -rf "$DIR/data/node-$F"
sed -e "s/^node_id = .*/node_id = $NEW/" \
    -e "s#^listen = .*#listen = \"$NEW_ADDR\"#" \
    -e "s#^data_dir = .*#data_dir = \"$DIR/data/node-$NEW\"#" \
    -e "s#^peers = \[\(.*\)\]#peers = [\1, \"$NEW=$NEW_ADDR\"]#" \
    -e "s#^\[tls\]#join = true\njoin_replaces = $F\n\n[tls]#" \
    "$DIR/roles/node-$F.toml" >"$DIR/roles/node-$NEW.toml"
start_node "$NEW"
T_START="$(now)"
fact catchup.node "$NEW"
fact catchup.replaces "$F"
caught=""
deadline=$(( $(date +%s) + WAIT_SECONDS ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  if grep -q 'joined the region' "$OUT/logs/node-$NEW.log"; then caught="$(now)"; break; fi
  if grep -q 'could not join the region' "$OUT/logs/node-$NEW.log"; then break; fi
  sleep 0.2
done
if [ -n "$caught" ]; then
  fact catchup.seconds "$(since "$T_START" "$caught")"
  fact catchup.leader_caught_up_ms "$(grep -o 'caught_up_ms=[0-9]*' "$OUT/logs/node-$NEW.log" | tail -1 | cut -d= -f2)"
  log "catch-up: node $NEW a voter in place of $F after $(since "$T_START" "$caught") s ($(grep -o 'voters=\[[^]]*\]' "$OUT/logs/node-$NEW.log" | tail -1))"
else
  fact catchup.seconds "not within ${WAIT_SECONDS}s"
  log "catch-up: node $NEW did not join within ${WAIT_SECONDS}s"
fi
fact catchup.rss_kb_after "$(rss_kb "$NEW")"
fact catchup.disk_b_after "$(disk_b "$NEW")"
grep -i 'snapshot\|storage node\|join' "$OUT/logs/node-$NEW.log" >"$OUT/catchup-node-$NEW.log" || true
grep -i 'snapshot\|learner\|joined' "$OUT/logs/node-$L.log" | tail -20 >"$OUT/catchup-leader-$L.log" || true
fact catchup.started_at "$(date -u -d "@${T_START%.*}" +%FT%TZ)"
fact catchup.sending_snapshot_at "$(grep 'sending snapshot' "$OUT/catchup-leader-$L.log" | tail -1 | cut -d' ' -f1)"
fact catchup.installed_snapshot_at "$(grep 'installed snapshot' "$OUT/catchup-node-$NEW.log" | tail -1 | cut -d' ' -f1)"
fact catchup.sent_bytes "$(grep -o 'sending snapshot.*bytes=[0-9]*' "$OUT/catchup-leader-$L.log" | tail -1 | grep -o '[0-9]*$')"
COMPLETE=1
