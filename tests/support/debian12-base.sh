#!/usr/bin/env bash
# Builds a small Debian 12 base image (minbase + python3, a non-root user `app`) as an OCI
# image layout, for the `slug image` tests. The result is cached under
# ${SLUGC_TEST_CACHE:-/var/tmp/slugc-test-cache}/debian12-<hash of this script>/ so that only
# the first run pays for debootstrap. Prints the layout's path; its only ref is `bookworm`.
# Needs root, debootstrap and umoci (.ci/run installs them).
set -euo pipefail

cache="${SLUGC_TEST_CACHE:-/var/tmp/slugc-test-cache}"
key="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
out="$cache/debian12-$key"
mirror="${SLUGC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

mkdir -p "$cache"
# Several test binaries may ask at once: one builds, the others wait and reuse.
exec 9>"$cache/.debian12.lock"
flock 9
if [ -f "$out/index.json" ]; then
  echo "$out"
  exit 0
fi

work="$(mktemp -d "$cache/tmp-debian12.XXXXXX")"
trap 'rm -rf "$work"' EXIT

debootstrap --variant=minbase --include=python3 bookworm "$work/rootfs" "$mirror" >&2
# Trim what a runtime never reads, to keep the layer (and every test's copy) small.
rm -rf "$work/rootfs"/usr/share/{doc,man,info,locale}/* "$work/rootfs"/var/lib/apt/lists/* \
  "$work/rootfs"/var/cache/apt/*.bin "$work/rootfs"/var/cache/apt/archives/*.deb \
  "$work/rootfs"/var/log/*.log
# The non-root user the image runs as (what `slug image` keeps from a base's config).
echo 'app:x:1000:1000:app:/app:/bin/bash' >>"$work/rootfs/etc/passwd"
echo 'app:x:1000:' >>"$work/rootfs/etc/group"

umoci init --layout "$work/oci" >&2
umoci new --image "$work/oci:bookworm" >&2
umoci unpack --image "$work/oci:bookworm" "$work/bundle" >&2
rm -rf "$work/bundle/rootfs"
mv "$work/rootfs" "$work/bundle/rootfs"
umoci repack --image "$work/oci:bookworm" "$work/bundle" >&2
umoci config --image "$work/oci:bookworm" --config.user app \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env LANG=C.UTF-8 >&2
umoci gc --layout "$work/oci" >&2

mv "$work/oci" "$out"
echo "$out"
