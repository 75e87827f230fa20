#!/bin/sh
# tls_throughput.sh — migration streaming over lib/tls against the same path over plain TCP
# (issue 6 target: >= 80%).  First the agent path (engine pipe -> sending helper -> TLS ->
# receiving helper -> engine pipe: lib/tls_stream.c, as agent/peer.c runs it), then bare
# sockets (one writer, one reader) per write size.  Prints the tables and BENCH lines.
: "${ZBIN:=${ZAPC_BUILD:-build}/bin}"
[ -x "$ZBIN/tls_throughput" ] || { echo "no $ZBIN/tls_throughput (run make)"; exit 0; }
"$ZBIN/tls_throughput" --path agent --mib 256 --reps 3 --read-ahead 256 \
	--suites TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256
exec "$ZBIN/tls_throughput" --mib 256 --reps 3 --read-ahead 256
