/*
 * ns_record.h — are two captured records the same, byte for byte once
 * packed, but for TCP_TIMESTAMP (the clock now, in ms: not a difference)?
 * Shared by tests/netstate/ns_bpfcap.c and bench/netstate_bench.c.  The
 * timestamps are put back afterwards: a record may be restored later.
 */
#ifndef ZAPC_NS_RECORD_H
#define ZAPC_NS_RECORD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netstate/netstate.h"

static inline bool same_record(netstate_sock_t *x, netstate_sock_t *y)
{
	uint32_t tx = 0, ty = 0;

	if (!x || !y)
		return false;
	if (x->conn && y->conn) {
		tx = x->conn->timestamp;
		ty = y->conn->timestamp;
		x->conn->timestamp = y->conn->timestamp = 0;
	}
	size_t lx = netstate_sock_packed_size(x), ly = netstate_sock_packed_size(y);
	uint8_t *px = malloc(lx + 1), *py = malloc(ly + 1);
	netstate_sock_pack(x, px);
	netstate_sock_pack(y, py);
	bool same = lx == ly && !memcmp(px, py, lx);
	free(px);
	free(py);
	if (x->conn && y->conn) {
		x->conn->timestamp = tx;
		y->conn->timestamp = ty;
	}
	return same;
}

#endif
