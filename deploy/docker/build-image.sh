#!/usr/bin/env bash
# Builds the image keyraft:dev (FROM scratch) from target/debug/keyraft and the shared
# libraries `ldd` lists, plus the dynamic loader. Idempotent: the image carries a label with
# the hash of every staged file, and nothing is rebuilt when it matches.
#
#   deploy/docker/build-image.sh            # build the binary if missing, then the image
#   KEYRAFT_BUILD=1 deploy/docker/build-image.sh   # run `cargo build` first in any case
#   KEYRAFT_IMAGE=name:tag deploy/docker/build-image.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
image=${KEYRAFT_IMAGE:-keyraft:dev}
bin=${KEYRAFT_BIN:-$root/target/debug/keyraft}

if [[ ! -x $bin || ${KEYRAFT_BUILD:-0} == 1 ]]; then
    (cd "$root" && cargo build -p keyraft-node --bin keyraft)
fi

# Every file of the rootfs: the binary, then each library by its resolved path (the loader
# line of ldd has no "=>").
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
hash=$(sha256sum "$bin" $(readlink -f $libs) "$here/Dockerfile" | sha256sum | cut -c1-16)

current=$(docker image inspect "$image" --format '{{ index .Config.Labels "keyraft.rootfs" }}' 2>/dev/null || true)
if [[ $current == "$hash" ]]; then
    echo "$image is up to date ($hash)"
    exit 0
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/tmp" "$ctx/rootfs/etc"
chmod 1777 "$ctx/rootfs/tmp"
# Hard link when on the same filesystem (fast), copy otherwise.
ln "$bin" "$ctx/rootfs/usr/local/bin/keyraft" 2>/dev/null || cp "$bin" "$ctx/rootfs/usr/local/bin/keyraft"
for lib in $libs; do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    # Libraries are often symlinks: copy what they point to under the name ldd printed.
    cp -L "$lib" "$ctx/rootfs$lib"
done
# glibc looks names up in files first, then DNS (compose's embedded resolver).
printf 'hosts: files dns\n' >"$ctx/rootfs/etc/nsswitch.conf"
cp "$here/Dockerfile" "$ctx/Dockerfile"

# The classic builder needs no buildx plugin; its deprecation notice is noise unless it fails.
if ! DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} docker build -q --label "keyraft.rootfs=$hash" \
    -t "$image" "$ctx" >"$ctx/build.log" 2>&1; then
    cat "$ctx/build.log" >&2
    exit 1
fi
# The image this one replaced is now untagged: drop it (only untagged images of ours).
docker image prune -f --filter label=keyraft.rootfs >/dev/null
echo "built $image ($hash)"
