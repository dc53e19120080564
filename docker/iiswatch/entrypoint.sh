#!/bin/sh
# Tell iiswatch where the stack's Elasticsearch is, the way `iiswatch es up` does for a local
# node: $IISWATCH_HOME/es/connection.json names the URL and the superuser's password file.
# `iiswatch setup` then keeps users and roles in the node's file realm, whose config dir
# docker/compose.yaml mounts at $IISWATCH_HOME/es/config (the Maven build has no .security
# index), and writes each purpose's credentials under $IISWATCH_HOME/credentials.
set -eu
if [ -n "${IISWATCH_STACK_ES_URL:-}" ]; then
    mkdir -p "$IISWATCH_HOME/es"
    printf '{"url": "%s", "username": "elastic", "password_file": "%s"}\n' \
        "$IISWATCH_STACK_ES_URL" "${ELASTIC_PASSWORD_FILE:-/run/secrets/elastic_password}" \
        > "$IISWATCH_HOME/es/connection.json.tmp"
    mv "$IISWATCH_HOME/es/connection.json.tmp" "$IISWATCH_HOME/es/connection.json"
fi
exec "$@"
