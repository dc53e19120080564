#!/usr/bin/env bash
# Run the real attack tools (Debian packages) once each against bench/detection/target.py on
# 127.0.0.1 and keep their IIS-style logs, trimmed, as fixtures: bench/detection/fixtures/.
# Needs: apt-get install -y sqlmap dirb gobuster ffuf wfuzz wapiti hydra (nikto: not packaged).
# Each tool gets its own target process (its pid is stopped at the end) and a time limit.
#   bash bench/detection/record_tools.sh [port]
set -u
cd "$(dirname "$0")/../.."
PORT=${1:-18899}
OUT=bench/detection/fixtures
WORK=$(mktemp -d /tmp/iiswatch-tools.XXXXXX)
PY=.venv/bin/python
BASE=http://127.0.0.1:$PORT
BROWSER='Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36'
head -n 60 /usr/share/wfuzz/wordlist/others/common_pass.txt > "$WORK/pass.txt" 2>/dev/null \
    || printf '%s\n' 123456 password admin letmein qwerty secret welcome monkey dragon master > "$WORK/pass.txt"

record() {  # record NAME VERSION -- command...
    local name=$1 version=$2; shift 3
    local log=$WORK/$name.log
    $PY -m bench.detection.target --port "$PORT" --log "$log" &
    local pid=$!
    sleep 1.5
    timeout 240 "$@" > "$WORK/$name.out" 2>&1 < /dev/null
    kill "$pid"; wait "$pid" 2>/dev/null
    # trim: at most 600 requests, evenly spread over the run, timing kept
    {
        echo "#Tool: $version"
        grep '^#' "$log"
        grep -v '^#' "$log" | awk -v n="$(grep -vc '^#' "$log")" \
            'BEGIN{k=(n>600)?n/600:1} {if (NR>=next_) {print; next_+=k}}'
    } > "$OUT/$name.log"
    echo "$name: $(grep -vc '^#' "$OUT/$name.log") requests kept of $(grep -vc '^#' "$log")"
}
ver() { dpkg-query -W -f='${Version}' "$1"; }

record sqlmap "sqlmap $(ver sqlmap)" -- sqlmap -u "$BASE/product.aspx?id=1" --batch \
    --flush-session --output-dir="$WORK/sqlmap" --technique=BEUST --level=2 --risk=1
record sqlmap-random-agent "sqlmap $(ver sqlmap) --random-agent" -- sqlmap \
    -u "$BASE/search.aspx?q=shoes" --batch --random-agent --flush-session \
    --output-dir="$WORK/sqlmap2" --technique=BT
record dirb "dirb $(ver dirb)" -- dirb "$BASE/" /usr/share/dirb/wordlists/small.txt -S -r
record gobuster-browser-ua "gobuster $(ver gobuster) -a <Chrome>" -- gobuster dir -u "$BASE/" \
    -w /usr/share/dirb/wordlists/small.txt -q -t 5 -a "$BROWSER"
record ffuf "ffuf $(ver ffuf)" -- ffuf -u "$BASE/FUZZ" -w /usr/share/dirb/wordlists/small.txt -s -t 5
record wfuzz "wfuzz $(ver wfuzz)" -- wfuzz -w /usr/share/wfuzz/wordlist/general/common.txt \
    --hc 404 "$BASE/FUZZ"
record wapiti "wapiti $(ver wapiti)" -- wapiti -u "$BASE/" --flush-session -m sql,exec,file \
    --max-scan-time 150 -o "$WORK/wapiti" -f txt
record hydra "hydra $(ver hydra)" -- hydra -l admin -P "$WORK/pass.txt" -s "$PORT" -t 4 \
    127.0.0.1 http-post-form "/login.aspx:user=^USER^&pass=^PASS^:F=password"
echo "work files (tool output) in $WORK"
