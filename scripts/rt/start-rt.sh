#!/usr/bin/env bash
# Request Tracker 5 for iiswatch's integration tests and demo: Debian's packages (bookworm's
# 5.0.3 on test hosts, trixie's 5.0.7 in docker/rt), SQLite, the standalone Starlet server, on
# 127.0.0.1:PORT (IISWATCH_RT_HOST). Idempotent: installs the packages
# if missing (root, apt, ~30 s once), initialises the db if missing, starts the server unless
# it already runs, waits until REST2 answers.
#
#   usage: scripts/rt/start-rt.sh [PORT]      (default 18080)
#   env:   IISWATCH_RT_STATE_DIR  config, db, token, log, pid, mail (default /tmp/iiswatch-rt-PORT)
#          IISWATCH_RT_HOST       address rt-server binds (default 127.0.0.1; the container: 0.0.0.0)
#          IISWATCH_RT_PASSWORD   root password, applied when the db is created
#          IISWATCH_RT_TOKEN_FILE root's REST token comes from this file (RT's form,
#                                 1-<root's user id>-<32 hex>) instead of being random; read
#                                 when the db is created (docker/rt: the stack's rt_token secret)
#          IISWATCH_RT_WEB_URL    the URL users reach RT by (RT's WebBaseURL; default the
#                                 loopback URL; docker/rt: the published port)
#          IISWATCH_RT_FOREGROUND=1  the server replaces this script after the init and nothing
#                                 is printed (a container's main process; its healthcheck
#                                 waits for REST2 instead of step 5)
#
# stdout: RT_URL, RT_REST, RT_USER, RT_PASSWORD, RT_TOKEN as KEY=VALUE lines, so
#   eval "$(bash scripts/rt/start-rt.sh 18080)"
# Progress goes to stderr. Adapted from ../shared/services/rt5 (its README numbers the
# pitfalls cited below as "pitfall N").
#
# The db gets the ticket custom fields iiswatch writes, on queue General:
#   Severity         FreeformSingle    the alert's severity
#   IiswatchAlertId  FreeformMultiple  every alert delivered to the ticket (created or
#                                      commented): the idempotency key TicketSQL searches
#   IiswatchGroup    FreeformSingle    rule id + group key: finds the open ticket of a group
set -euo pipefail

PORT=${1:-18080}
STATE=${IISWATCH_RT_STATE_DIR:-/tmp/iiswatch-rt-$PORT}
PASS=${IISWATCH_RT_PASSWORD:-iiswatch-rt-test}
URL=http://127.0.0.1:$PORT
WEB_URL=${IISWATCH_RT_WEB_URL:-$URL}
PIDFILE=$STATE/rt-server.pid
log() { echo "start-rt: $*" >&2; }
# pitfall 14: a TERM'd master lingers as <defunct>; trust /proc/PID/cmdline, not kill -0
running() { [ -f "$PIDFILE" ] && grep -qs rt-server "/proc/$(cat "$PIDFILE")/cmdline"; }

# 1. packages. pitfall 1: dma satisfies mail-transport-agent without exim4; pitfall 2:
#    dbconfig-no-thanks, we create the db ourselves; pitfall 6: w3m silences a start warning.
#    pitfall 15: needs root and apt the first time.
if ! dpkg -s request-tracker5 rt5-standalone rt5-db-sqlite w3m >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        log "Request Tracker 5 is not installed and installing it needs root"
        log "run once as root: bash scripts/rt/start-rt.sh $PORT"
        exit 3
    fi
    log "installing RT 5 packages (about 30 s, once)"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        request-tracker5 rt5-standalone rt5-db-sqlite rt5-clients \
        dbconfig-no-thanks dma w3m >&2
fi

# 2. our own config dir, read *instead of* /etc/request-tracker5/RT_SiteConfig.d (pitfall 2).
#    pitfall 3: WebPath '' (Debian's default /rt moves REST2); pitfall 4: BcryptCost 4 before
#    init (tests only); pitfall 7: mail appended to a file in $STATE; pitfall 8: no '\@'.
mkdir -p "$STATE/etc"
export RT_SITE_CONFIG_DIR=$STATE/etc STATE
# WebDomain and WebPort from the same URL as WebBaseURL, so that RT's settings agree
web_part() {
    local rest=${WEB_URL#*://}; rest=${rest%%/*}
    case $1 in
        host) echo "${rest%%:*}" ;;
        port) if [[ $rest == *:* ]]; then echo "${rest##*:}"
              elif [[ $WEB_URL == https:* ]]; then echo 443; else echo 80; fi ;;
    esac
}
cat > "$STATE/etc/90-iiswatch.pm" <<CONF
Set(\$rtname, 'rt.test');
Set(\$Organization, 'rt.test');
Set(\$Timezone, 'UTC');
Set(\$DatabaseType, 'SQLite');
Set(\$DatabaseName, '$STATE/rt.sqlite');
Set(\$WebDomain, '$(web_part host)');
Set(\$WebPort, $(web_part port));
Set(\$WebPath, '');
Set(\$WebBaseURL, '$WEB_URL');
Set(\$CorrespondAddress, 'rt@localhost');
Set(\$CommentAddress, 'rt-comment@localhost');
Set(\$MailCommand, 'sendmailpipe');
Set(\$SendmailPath, '/bin/sh');
Set(\$SendmailArguments, q{-c '{ echo "From rt"; cat; echo; } >> $STATE/outgoing-mail.txt' sendmail});
Set(\$BcryptCost, 4);
Set(\$LogToSyslog, undef);
Set(\$LogToSTDERR, 'warning');
CONF

# 3. db: schema, core data, root password; then our custom fields (pitfall 10: REST2 cannot
#    create them) and a root API token. The token file is written last: it marks a done init.
if [ ! -s "$STATE/token" ]; then
    log "initialising $STATE/rt.sqlite"
    rm -f "$STATE/rt.sqlite"
    cat > "$STATE/initialdata" <<'PERL'
@CustomFields = (
    { Name => 'Severity', Type => 'FreeformSingle',
      LookupType => 'RT::Queue-RT::Ticket', Queue => ['General'],
      Description => 'iiswatch alert severity' },
    { Name => 'IiswatchAlertId', Type => 'FreeformMultiple',
      LookupType => 'RT::Queue-RT::Ticket', Queue => ['General'],
      Description => 'iiswatch alert ids delivered to this ticket (idempotency key)' },
    { Name => 'IiswatchGroup', Type => 'FreeformSingle',
      LookupType => 'RT::Queue-RT::Ticket', Queue => ['General'],
      Description => 'iiswatch rule id and group key' },
);
@Final = (sub {
    my $root = RT::CurrentUser->new(RT->SystemUser);
    $root->Load('root');
    my $auth = RT::AuthToken->new($root);
    my ($ok, $msg, $token) = $auth->Create(Owner => $root->Id, Description => 'iiswatch');
    $ok or die "token: $msg\n";
    # a given token (IISWATCH_RT_TOKEN_FILE): its secret replaces the random one. SetToken is
    # refused by design, so the raw setter; the hash is RT's own (_CryptToken, bcrypt)
    if (defined(my $want = $ENV{WANT_TOKEN})) {
        my ($uid, $secret) = RT::AuthToken->ParseAuthString($want)
            or die "token file $ENV{TOKEN_FILE}: not an RT auth token (1-USERID-32 hex digits):"
                . " delete it and run docker/secrets/generate.sh for a new one\n";
        $uid == $root->Id
            or die "token file $ENV{TOKEN_FILE}: user id $uid is not root's (" . $root->Id . ")\n";
        ($ok, $msg) = $auth->__Set(Field => 'Token', Value => $auth->_CryptToken($secret));
        $ok or die "token: $msg\n";
        $token = $want;
    }
    open(my $fh, '>', "$ENV{STATE}/token") or die $!;
    print $fh "$token\n";
    close($fh);
});
PERL
    if [ -n "${IISWATCH_RT_TOKEN_FILE:-}" ]; then
        [ -r "$IISWATCH_RT_TOKEN_FILE" ] || { log "cannot read IISWATCH_RT_TOKEN_FILE=$IISWATCH_RT_TOKEN_FILE"; exit 1; }
        WANT_TOKEN=$(tr -d ' \n' < "$IISWATCH_RT_TOKEN_FILE")
        export WANT_TOKEN TOKEN_FILE=$IISWATCH_RT_TOKEN_FILE
    fi
    ( umask 077
      printf '%s\n' "$PASS" > "$STATE/rootpw"
      rt-setup-database-5 --action init --skip-create --root-password-file "$STATE/rootpw"
      rm -f "$STATE/rootpw"
      rt-setup-database-5 --action insert --skip-create --datafile "$STATE/initialdata"
    ) >&2
    [ -s "$STATE/token" ] || { log "init failed (no token written)"; exit 1; }
fi

# 4. the server. pitfall 5: two workers, not ten; pitfall 7: TMPDIR for w3m's HOME;
#    pitfall 13: setsid and no inherited stdout, or "$(start-rt.sh)" never returns.
if [ "${IISWATCH_RT_FOREGROUND:-}" = 1 ]; then
    log "rt-server on ${IISWATCH_RT_HOST:-127.0.0.1}:$PORT (foreground), web URL $WEB_URL"
    cd "$STATE"
    TMPDIR=$STATE exec /usr/share/request-tracker5/libexec/rt-server \
        --host "${IISWATCH_RT_HOST:-127.0.0.1}" --port "$PORT" --max-workers 2 < /dev/null
fi
if running; then
    log "already running (pid $(cat "$PIDFILE"))"
else
    log "starting rt-server on $URL"
    cd "$STATE"
    TMPDIR=$STATE setsid /usr/share/request-tracker5/libexec/rt-server \
        --host "${IISWATCH_RT_HOST:-127.0.0.1}" --port "$PORT" --max-workers 2 \
        > "$STATE/rt-server.log" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
fi

# 5. ready when an authenticated REST2 request succeeds
TOKEN=$(cat "$STATE/token")
for _ in $(seq 1 120); do
    if curl -sf -o /dev/null -H "Authorization: token $TOKEN" "$URL/REST/2.0/rt"; then
        echo "RT_URL=$URL"
        echo "RT_REST=$URL/REST/2.0"
        echo "RT_USER=root"
        echo "RT_PASSWORD=$PASS"
        echo "RT_TOKEN=$TOKEN"
        exit 0
    fi
    running || break
    sleep 0.25
done
log "rt-server did not come up; last lines of $STATE/rt-server.log:"
tail -n 20 "$STATE/rt-server.log" >&2
exit 1
