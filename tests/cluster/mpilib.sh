# mpilib.sh — helpers for the MPI tests on a simulated cluster (source after tests/lib.sh).
#
# Needs: SC (the simcluster script), SIMCLUSTER_PREFIX exported, M (MPI program dir), T (tmp).
# mpirun OUT NP HOST:SLOTS... -- PROG ARGS   mpiexec in the switch netns through simcluster-launch
# check_where OUT NP NNS "ADDR ADDR ..."     the ranks' --where lines: NP lines, NNS distinct
#                                            netns, exactly these eth0 addresses (sorted, unique)
# port_rx_all                                bytes each node sent into the switch, "n1 n2 ..."
# crossed BEFORE AFTER NODES MIN             every one of the first NODES nodes sent >= MIN bytes

HEAD=10.77.0.254	# mpiexec listens on the switch's gateway address

mpirun() {
	local out=$1 np=$2 hosts=$T/hosts.$RANDOM
	shift 2
	: > "$hosts"
	while [ "$1" != -- ]; do echo "$1" >> "$hosts"; shift; done
	shift
	t_timeout 120 "$SC" exec sw -- mpiexec -f "$hosts" -n "$np" \
		-launcher ssh -launcher-exec "$ZAPC_SRC/tests/cluster/simcluster-launch" \
		-localhost "$HEAD" \
		-genv UCX_TLS tcp,self -genv UCX_NET_DEVICES eth0 -genv MPIR_CVAR_NOLOCAL 1 \
		-genv LD_PRELOAD "$M/libucxforceclose.so" \
		"$@" > "$out" 2> "$out.err"
	local st=$?
	[ $st -eq 0 ] || { diag "mpiexec exit $st; stderr:"; sed 's/^/#   /' "$out.err" | head -20; }
	return $st
}

check_where() {
	local out=$1 np=$2 nns=$3 want=$4 got
	is "$(grep -c '^where ' "$out")" "$np" "$(basename "$out"): every rank reported where it runs"
	got=$(sed -n 's/^where .* netns=\([0-9]*\) .*/\1/p' "$out" | sort -u | wc -l)
	is "$got" "$nns" "$(basename "$out"): ranks ran in $nns different network namespaces"
	got=$(sed -n 's/^where .* eth0=\(.*\)$/\1/p' "$out" | sort -u | tr '\n' ' ')
	is "$got" "$(echo $want | tr ' ' '\n' | sort -u | tr '\n' ' ')" \
		"$(basename "$out"): ranks' eth0 addresses are $want"
}

# What node port nK received in the switch = what node K sent over the bridge.
# `ip netns exec` remounts /sys for the netns (nsenter alone would show ours).
port_rx_all() {
	local i
	for i in 1 2 3 4; do
		ip netns exec "$SIMCLUSTER_PREFIX-sw" cat "/sys/class/net/n$i/statistics/rx_bytes"
	done | tr '\n' ' '
}

crossed() {
	local before=($1) after=($2) nodes=$3 min=$4 i d bad=""
	for i in $(seq 0 $((nodes - 1))); do
		d=$(( after[i] - before[i] ))
		[ "$d" -ge "$min" ] || bad="$bad n$((i + 1)):$d"
	done
	[ -z "$bad" ] || diag "bytes sent into the switch below $min:$bad"
	[ -z "$bad" ]
}
