#!/usr/bin/env bash
# The local Debian base image for air-gapped sites and for our tests: a minimal Debian from
# the mirror apt already uses (debootstrap --variant=minbase), imported with `docker import`.
# No registry needed. About 1-2 minutes and ~200 MB, once; skipped when the tag exists.
#
#   bash docker/base/build.sh                 # -> iiswatch/debian:trixie
#   bash docker/base/build.sh trixie my/tag
#
# trixie (Debian 13) because it ships python3.13 and openjdk-21-jre-headless, which
# Elasticsearch 9 needs; bookworm has no Java 21.
set -euo pipefail
SUITE=${1:-trixie}
TAG=${2:-iiswatch/debian:$SUITE}
if docker image inspect "$TAG" >/dev/null 2>&1; then echo "$TAG exists" >&2; echo "$TAG"; exit 0; fi
if ! command -v debootstrap >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "debootstrap missing: apt-get install debootstrap" >&2; exit 1; }
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
fi
# The mirror apt uses (deb822 .sources or a classic sources.list line); MIRROR= overrides.
MIRROR=${MIRROR:-$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | grep -v security | head -n 1 | awk '{print $2}' || true)}
[ -n "$MIRROR" ] || { echo "no Debian mirror in apt's sources; set MIRROR=http://..." >&2; exit 1; }
ROOT=$(mktemp -d /tmp/iiswatch-rootfs.XXXX)
trap 'rm -rf "$ROOT"' EXIT
debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >&2
# Keep images small: no apt lists or caches in the base.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/archives/*.deb
tar -C "$ROOT" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' - "$TAG" >&2
echo "$TAG"
