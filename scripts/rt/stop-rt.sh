#!/usr/bin/env bash
# Stop the RT server scripts/rt/start-rt.sh started for PORT, by its recorded PID only.
#   usage: scripts/rt/stop-rt.sh [PORT] [--purge]   --purge also deletes the state dir
set -euo pipefail
PORT=${1:-18080}
STATE=${IISWATCH_RT_STATE_DIR:-/tmp/iiswatch-rt-$PORT}
PIDFILE=$STATE/rt-server.pid

PID=$(cat "$PIDFILE" 2>/dev/null || true)
# only our rt-server; a TERM'd master shows as <defunct> briefly (its cmdline is then empty)
alive() { [ -n "$PID" ] && grep -qs rt-server "/proc/$PID/cmdline"; }

if alive; then
    kill -TERM "$PID"   # not INT: on SIGINT as root rt-server chowns /var/lib/request-tracker5
    for _ in $(seq 1 40); do alive || break; sleep 0.25; done
    if alive; then kill -KILL "$PID"; fi
    echo "stop-rt: stopped pid $PID" >&2
else
    echo "stop-rt: not running" >&2
fi
rm -f "$PIDFILE"
if [ "${2:-}" = "--purge" ]; then rm -rf "$STATE" && echo "stop-rt: removed $STATE" >&2; fi
exit 0
