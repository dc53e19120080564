#!/bin/sh
# Random secrets for docker/compose.yaml, once (existing files are kept). rt_token is the
# Request Tracker auth token the alerting service uses: replace it with your own RT's token.
set -eu
cd "$(dirname "$0")"
umask 077
for name in elastic_password kibana_password rt_token; do
    [ -s "$name" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$name"
done
# The containers run as uid 1000 and read the secrets as bind-mounted files.
chmod 644 elastic_password kibana_password rt_token
echo "secrets in $(pwd)"
