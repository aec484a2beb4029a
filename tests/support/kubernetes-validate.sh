#!/usr/bin/env bash
# Installs the `kubernetes-validate` validator (PyPI: the Kubernetes OpenAPI schemas, checked
# offline, as `kubectl apply --dry-run=client` would against a server) into a venv cached
# under ${SLUGC_TEST_CACHE:-/var/tmp/slugc-test-cache}/kubernetes-validate-<hash of this
# script>/. Prints the path of its executable.
set -euo pipefail

version=1.37.0
cache="${SLUGC_TEST_CACHE:-/var/tmp/slugc-test-cache}"
key="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
out="$cache/kubernetes-validate-$key"

mkdir -p "$cache"
exec 9>"$cache/.kubernetes-validate.lock"
flock 9
if [ ! -x "$out/bin/kubernetes-validate" ]; then
  rm -rf "$out.tmp"
  python3 -m venv "$out.tmp" >&2
  "$out.tmp/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$version" >&2
  # The venv's scripts name their interpreter by path: build in place, then move and relink.
  rm -rf "$out"
  mv "$out.tmp" "$out"
  python3 -m venv --upgrade "$out" >&2
  sed -i "1s|^#!.*|#!$out/bin/python|" "$out/bin/kubernetes-validate"
fi
echo "$out/bin/kubernetes-validate"
