#!/usr/bin/env bash
# Start a Docker engine when none answers (root, no systemd: CI containers and test machines).
# Idempotent. Installs Debian's docker.io and docker-compose (1.29) if dockerd is missing.
# Data under ${DOCKER_DATA_ROOT:-/var/lib/docker}; log in ${DOCKERD_LOG:-/tmp/dockerd.log}.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "no dockerd: install docker.io (apt-get install docker.io)" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq docker.io docker-compose >&2
fi
# No iptables management and no default docker0 bridge: neither is needed (Compose and the
# tests use user-defined bridge networks; published ports go through docker-proxy), and both
# fail in some sandboxes. Consequence: a container needs a user-defined network to talk out.
nohup dockerd --iptables=false --bridge=none --data-root "${DOCKER_DATA_ROOT:-/var/lib/docker}" \
  >"${DOCKERD_LOG:-/tmp/dockerd.log}" 2>&1 &
pid=$!
for _ in $(seq 1 90); do
  if docker info >/dev/null 2>&1; then echo "dockerd up (pid $pid)" >&2; exit 0; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 1
done
echo "dockerd did not come up; see ${DOCKERD_LOG:-/tmp/dockerd.log}" >&2
exit 1
