#!/bin/bash
# Start Elasticsearch the way the official image does for the settings we use:
# ELASTIC_PASSWORD / ELASTIC_PASSWORD_FILE become the keystore's bootstrap.password (the
# `elastic` user's password), and environment variables named like settings
# (`discovery.type=single-node`) become -E options.
set -euo pipefail
# bash, not sh: dash drops environment variables whose names contain dots
cd "$ES_HOME"
pw=${ELASTIC_PASSWORD:-}
if [ -z "$pw" ] && [ -n "${ELASTIC_PASSWORD_FILE:-}" ] && [ -r "$ELASTIC_PASSWORD_FILE" ]; then
    pw=$(cat "$ELASTIC_PASSWORD_FILE")
fi
ks=$ES_PATH_CONF/elasticsearch.keystore
if [ ! -f "$ks" ]; then
    elasticsearch-keystore create -s
fi
if [ -n "$pw" ]; then
    printf '%s' "$pw" | elasticsearch-keystore add -x -f bootstrap.password
fi
# -E for every environment variable whose name looks like a setting (lower case with dots)
opts=()
while IFS='=' read -r key value; do
    if [[ $key =~ ^[a-z0-9_]+\.[a-z0-9_.]+$ && -n $value ]]; then
        opts+=("-E" "$key=$value")
    fi
done < <(env)
exec elasticsearch "${opts[@]}" "$@"
