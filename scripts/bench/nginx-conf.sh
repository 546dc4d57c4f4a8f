# Sourced by scripts/bench.sh and scripts/bench-conns.sh: the nginx both
# compare against, one worker, `return 200 "fast result $arg_id"`.
#   nginx_conf DIR PORT CONNECTIONS [NOFILE]
# writes DIR/nginx.conf (pid, logs and temp paths in DIR, listening on
# 127.0.0.1:PORT, worker_connections CONNECTIONS, and worker_rlimit_nofile
# NOFILE when given); DIR must be readable by nginx's worker user.
nginx_conf() {
  local dir=$1 port=$2 connections=$3 nofile=${4:-}
  {
    echo "worker_processes 1;"
    [ -z "$nofile" ] || echo "worker_rlimit_nofile $nofile;"
    cat <<EOF
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $connections; }
http {
  access_log off;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 75s;
  default_type text/plain;
  server {
    listen 127.0.0.1:$port;
    location / { return 200 "fast result \$arg_id"; }
  }
}
EOF
  } >"$dir/nginx.conf"
}
