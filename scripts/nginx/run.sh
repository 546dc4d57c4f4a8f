#!/usr/bin/env bash
# Starts nginx in the foreground with scripts/nginx/heavylift.conf, pointed at
# the given heavylift instances, writing nothing outside its own directory
# (pid, logs, temp files), so it runs as root or not. Installs Debian's nginx
# package with apt-get if nginx is missing. SIGTERM/SIGINT stop it (nginx's
# fast shutdown); SIGQUIT drains it.
#
#   scripts/nginx/run.sh [--listen 127.0.0.1:PORT] [--fast ADDR,...] [--slow ADDR,...]
#                        [--job-timeout SECS] [--dir DIR]
#
# --listen       where nginx listens (default: a free loopback port, printed)
# --fast/--slow  the instances of each pool (default: the config's addresses)
# --job-timeout  the instances' --job-timeout; the slow pool's
#                proxy_read_timeout becomes this plus 5 s (default 30)
# --dir          nginx's prefix: rendered config, pid, access.log, temp dirs
#                (default: a new temp dir)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

listen="" fast="" slow="" job_timeout=30 dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) listen=$2; shift 2 ;;
    --fast) fast=$2; shift 2 ;;
    --slow) slow=$2; shift 2 ;;
    --job-timeout) job_timeout=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done

nginx=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$nginx" ]; then
  echo "run.sh: nginx is missing; installing Debian's package" >&2
  apt-get update -qq && apt-get install -y -qq nginx >/dev/null
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
fi

if [ -z "$listen" ]; then
  listen=127.0.0.1:$(python3 -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
dir=${dir:-$(mktemp -d -t heavylift-nginx.XXXXXX)}
mkdir -p "$dir"
# nginx's workers drop to "nobody" when started as root: let them reach the temp dirs.
chmod 755 "$dir"
read_timeout=$(awk -v t="$job_timeout" 'BEGIN { s = int(t); if (s < t) s++; print s + 5 }')

# Render: each tagged line is rewritten. The first `# @fast` (`# @slow`) line
# is repeated once per given address, keeping its options, and the pool's
# other tagged lines are dropped.
awk -v listen="$listen" -v fast="$fast" -v slow="$slow" -v rt="$read_timeout" '
  function servers(line, list, pool,   n, a, i, l) {
    if (list == "") { print line; return }
    if (seen[pool]++) return
    n = split(list, a, ",")
    for (i = 1; i <= n; i++) { l = line; sub(/server [^ ;]+/, "server " a[i], l); print l }
  }
  /# @listen$/      { sub(/listen [^;]+/, "listen " listen) }
  /# @job-timeout$/ { sub(/proxy_read_timeout [^;]+/, "proxy_read_timeout " rt "s") }
  /# @deadline$/    { sub(/expected-rq-timeout-ms [0-9]+/, "expected-rq-timeout-ms " (rt - 1) * 1000) }
  /# @fast$/        { servers($0, fast, "fast"); next }
  /# @slow$/        { servers($0, slow, "slow"); next }
  { print }
' "$here/heavylift.conf" >"$dir/heavylift.conf"

"$nginx" -p "$dir" -c "$dir/heavylift.conf" -e stderr -t -q
echo "nginx on http://$listen (fast: ${fast:-as configured}, slow: ${slow:-as configured}; prefix $dir)" >&2
exec "$nginx" -p "$dir" -c "$dir/heavylift.conf" -e stderr -g 'daemon off;'
