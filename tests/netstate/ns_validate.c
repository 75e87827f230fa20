/*
 * ns_validate — unit test (no root, no network): image records are checked
 * before use.  A valid record passes; each kind of bad field is refused;
 * random corruptions of a packed record never crash the parser/validator.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "netstate/netstate.h"
#include "tests/unit/tap.h"

static uint8_t ip4[4] = { 10, 0, 0, 1 }, ip4b[4] = { 10, 0, 0, 2 }, data[8] = "abcdefg";

static Netstate__Addr *addr(uint8_t *ip, uint32_t port)
{
	Netstate__Addr *a = calloc(1, sizeof(*a));
	netstate__addr__init(a);
	a->family = AF_INET;
	a->ip.data = malloc(4);
	memcpy(a->ip.data, ip, 4);
	a->ip.len = 4;
	a->port = port;
	return a;
}

static uint8_t *dup(const void *p, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);
	memcpy(b, p, n);
	return b;
}

/* A valid ESTABLISHED record, built the way capture builds one. */
static Netstate__Socket *valid_tcp(void)
{
	Netstate__Socket *s = calloc(1, sizeof(*s));
	Netstate__TcpConn *c = calloc(1, sizeof(*c));
	Netstate__Opt *o = calloc(1, sizeof(*o));

	netstate__socket__init(s);
	netstate__tcp_conn__init(c);
	netstate__opt__init(o);
	s->family = AF_INET;
	s->type = SOCK_STREAM;
	s->protocol = IPPROTO_TCP;
	s->local = addr(ip4, 40000);
	s->peer = addr(ip4b, 80);
	s->has_tcp_state = 1;
	s->tcp_state = TCP_ESTABLISHED;
	o->level = IPPROTO_TCP;
	o->name = TCP_NODELAY;
	o->has_ival = 1;
	o->ival = 1;
	s->opts = malloc(sizeof(*s->opts));
	s->opts[0] = o;
	s->n_opts = 1;
	c->state = TCP_ESTABLISHED;
	c->sndq.data = dup(data, 7);
	c->sndq.len = 7;
	c->unsent_len = 3;
	c->rcvq.data = dup(data, 5);
	c->rcvq.len = 5;
	c->mss = 1448;
	c->opt_mask = TCPI_OPT_SACK | TCPI_OPT_WSCALE | TCPI_OPT_TIMESTAMPS;
	c->has_snd_wscale = c->has_rcv_wscale = 1;
	c->snd_wscale = 7;
	c->rcv_wscale = 7;
	c->snd_wnd = 1000;
	c->max_window = 2000;
	c->rcv_wnd = 1000;
	s->conn = c;
	return s;
}

int main(void)
{
	Netstate__Socket *s;
	uint8_t *buf;
	size_t len;
	int r;

	log_init("ns_validate", 0);
	/* Each refusal below logs one line by design; keep the TAP output readable. */
	if (!getenv("NS_VERBOSE") && !freopen("/dev/null", "w", stderr))
		return 1;

	s = valid_tcp();
	tap_ok(netstate_sock_validate(s) == 0, "a well-formed ESTABLISHED record is accepted");
	len = netstate_sock_packed_size(s);
	buf = malloc(len);
	netstate_sock_pack(s, buf);
	netstate_sock_free(s);
	s = netstate_sock_unpack(buf, len);
	tap_ok(s && netstate_sock_validate(s) == 0 && s->conn->sndq.len == 7 && s->conn->unsent_len == 3,
	       "it survives pack/unpack unchanged");
	netstate_sock_free(s);

#define BAD(what, mutate)                                                       \
	do {                                                                    \
		Netstate__Socket *m = valid_tcp();                              \
		mutate;                                                         \
		tap_ok(netstate_sock_validate(m) == -EINVAL, "refused: %s", what); \
		netstate_sock_free(m);                                          \
	} while (0)

	BAD("unknown family", m->family = 99);
	BAD("UDP protocol on a stream socket", m->protocol = IPPROTO_UDP);
	BAD("IPv4 address of 5 bytes", m->peer->ip.len = 3);
	BAD("port above 65535", m->local->port = 70000);
	BAD("address family differs from the socket's", m->peer->family = AF_INET6);
	BAD("unsent part longer than the send queue", m->conn->unsent_len = 8);
	BAD("MSS of 0", m->conn->mss = 0);
	BAD("window scale 15", m->conn->snd_wscale = 15);
	BAD("unknown TCP option bit", m->conn->opt_mask |= 64);
	BAD("urgent byte offset beyond the receive queue", (m->conn->has_oob = 1, m->conn->oob_offset = 6));
	BAD("urgent byte value above 255", (m->conn->has_oob = 1, m->conn->oob_byte = 300));
	BAD("FIN flags that do not match ESTABLISHED", m->conn->peer_fin = 1);
	BAD("state differs between socket and connection", m->conn->state = TCP_FIN_WAIT1);
	BAD("a state that cannot be restored (TIME_WAIT)", (m->tcp_state = TCP_TIME_WAIT, m->conn->state = TCP_TIME_WAIT));
	BAD("max_window below snd_wnd", m->conn->max_window = 10);
	BAD("connection without peer", (netstate__addr__free_unpacked(m->peer, NULL), m->peer = NULL));
	BAD("option not in the table", m->opts[0]->name = 9999);
	BAD("integer option without a value", m->opts[0]->has_ival = 0);
	BAD("integer option out of int range", m->opts[0]->ival = (int64_t)1 << 40);
	BAD("listener with a connection record", m->tcp_state = TCP_LISTEN);
	BAD("UDP datagram queue on a TCP socket", (m->rcvq = calloc(1, sizeof(*m->rcvq)), m->n_rcvq = 1,
						     m->rcvq[0] = calloc(1, sizeof(**m->rcvq)),
						     netstate__datagram__init(m->rcvq[0]),
						     m->rcvq[0]->from = addr(ip4b, 1), m->rcvq[0]->data.data = malloc(1)));
	tap_ok(netstate_sock_validate(NULL) == -EINVAL, "refused: no record");

	/* Random corruption of a packed record: unpack either fails, or the
	 * record is validated without crashing (ASan/UBSan run this too). */
	s = valid_tcp();
	len = netstate_sock_packed_size(s);
	buf = realloc(buf, len);
	netstate_sock_pack(s, buf);
	netstate_sock_free(s);
	srand(42);
	int unpacked = 0, accepted = 0;
	for (int i = 0; i < 20000; i++) {
		uint8_t *m = dup(buf, len);
		for (int k = 0; k < 1 + rand() % 4; k++)
			m[rand() % len] = (uint8_t)rand();
		Netstate__Socket *u = netstate_sock_unpack(m, (size_t)(rand() % 8 ? len : rand() % len));
		if (u) {
			unpacked++;
			r = netstate_sock_validate(u);
			accepted += r == 0;
			netstate_sock_free(u);
		}
		free(m);
	}
	tap_ok(1, "20000 corrupted records: %d parsed, %d passed validation, no crash", unpacked, accepted);
	free(buf);
	return tap_done();
}
