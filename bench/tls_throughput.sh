#!/bin/sh
# tls_throughput.sh — plain loopback TCP vs lib/tls stream throughput (migration streaming
# target: >= 80% of TCP).  Prints the table and BENCH lines for bench/run.sh.
: "${ZBIN:=${ZAPC_BUILD:-build}/bin}"
[ -x "$ZBIN/tls_throughput" ] || { echo "no $ZBIN/tls_throughput (run make)"; exit 0; }
exec "$ZBIN/tls_throughput" --mib 256 --reps 3 --read-ahead 256
