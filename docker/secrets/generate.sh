#!/bin/sh
# Random secrets for docker/compose.yaml, once (existing files are kept). rt_token is the
# Request Tracker auth token the alerting service uses, in RT's form (1-<user id>-<32 hex>):
# the demo RT (`--profile servicedesk`) makes it root's token (root is user 14 in a fresh RT 5
# db); for your own RT, replace it with a token made there.
set -eu
cd "$(dirname "$0")"
umask 077
hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
for name in elastic_password kibana_password; do
    [ -s "$name" ] || hex 24 > "$name"
done
[ -s rt_token ] || printf '1-14-%s' "$(hex 16)" > rt_token
# The containers run as uid 1000 and read the secrets as bind-mounted files.
chmod 644 elastic_password kibana_password rt_token
echo "secrets in $(pwd)"
