/*
 * sockopt.c — the socket, IP and TCP options a program can set, captured
 * with getsockopt and re-applied with setsockopt from one fixed table.
 *
 * The table is also the validator: an image may only name options that are
 * in it, with a value of the right kind and size.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <linux/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "netstate/internal.h"

enum opt_kind {
	K_INT,        /* plain int */
	K_BUF,        /* SO_SNDBUF/SO_RCVBUF: the kernel doubles what is set */
	K_STR,        /* NUL-terminated name (TCP_CONGESTION, SO_BINDTODEVICE) */
	K_LINGER,     /* struct linger */
	K_TIMEVAL,    /* struct timeval (SO_RCVTIMEO/SO_SNDTIMEO) */
};

enum {
	F_TCP = 1, F_UDP = 2, F_ANY = 3,
	F_V4 = 4, F_V6 = 8, F_BOTHFAM = 12,
	F_AFTER_REPAIR = 16,   /* re-applied after TCP_REPAIR is switched off */
	F_SKIP_DEFAULT = 32,   /* only saved when it differs from a fresh socket */
};

struct opt_desc {
	int level, name;
	enum opt_kind kind;
	int flags;
	const char *what;
};

#define O(l, n, k, f) { l, n, k, f, #n }
static const struct opt_desc opt_table[] = {
	O(SOL_SOCKET, SO_REUSEADDR, K_INT, F_ANY | F_BOTHFAM | F_AFTER_REPAIR),
	O(SOL_SOCKET, SO_REUSEPORT, K_INT, F_ANY | F_BOTHFAM),
	O(SOL_SOCKET, SO_KEEPALIVE, K_INT, F_TCP | F_BOTHFAM),
	O(SOL_SOCKET, SO_BROADCAST, K_INT, F_UDP | F_BOTHFAM),
	O(SOL_SOCKET, SO_OOBINLINE, K_INT, F_TCP | F_BOTHFAM),
	/* Saved only when the program set them (their SO_BUF_LOCK bit): an
	 * autotuned size is the kernel's, not the program's.  Re-applied after
	 * repair, since the restore forces sizes to fit the saved queues. */
	O(SOL_SOCKET, SO_SNDBUF, K_BUF, F_ANY | F_BOTHFAM | F_SKIP_DEFAULT | F_AFTER_REPAIR),
	O(SOL_SOCKET, SO_RCVBUF, K_BUF, F_ANY | F_BOTHFAM | F_SKIP_DEFAULT | F_AFTER_REPAIR),
	O(SOL_SOCKET, SO_LINGER, K_LINGER, F_ANY | F_BOTHFAM),
	O(SOL_SOCKET, SO_MARK, K_INT, F_ANY | F_BOTHFAM),
	O(SOL_SOCKET, SO_RCVLOWAT, K_INT, F_ANY | F_BOTHFAM),
	O(SOL_SOCKET, SO_RCVTIMEO, K_TIMEVAL, F_ANY | F_BOTHFAM),
	O(SOL_SOCKET, SO_SNDTIMEO, K_TIMEVAL, F_ANY | F_BOTHFAM),
	O(SOL_SOCKET, SO_BINDTODEVICE, K_STR, F_ANY | F_BOTHFAM),
	O(SOL_SOCKET, SO_TIMESTAMP, K_INT, F_ANY | F_BOTHFAM),
	O(SOL_SOCKET, SO_PASSCRED, K_INT, F_ANY | F_BOTHFAM),
	O(IPPROTO_IP, IP_TOS, K_INT, F_ANY | F_V4),
	O(IPPROTO_IP, IP_TTL, K_INT, F_ANY | F_V4 | F_SKIP_DEFAULT),
	O(IPPROTO_IP, IP_MTU_DISCOVER, K_INT, F_ANY | F_V4 | F_SKIP_DEFAULT),
	O(IPPROTO_IP, IP_RECVERR, K_INT, F_ANY | F_V4),
	O(IPPROTO_IP, IP_PKTINFO, K_INT, F_UDP | F_V4),
	O(IPPROTO_IP, IP_RECVTOS, K_INT, F_UDP | F_V4),
	O(IPPROTO_IP, IP_FREEBIND, K_INT, F_ANY | F_V4),
	O(IPPROTO_IP, IP_TRANSPARENT, K_INT, F_ANY | F_V4),
	O(IPPROTO_IP, IP_MULTICAST_TTL, K_INT, F_UDP | F_V4),
	O(IPPROTO_IP, IP_MULTICAST_LOOP, K_INT, F_UDP | F_V4),
	O(IPPROTO_IPV6, IPV6_V6ONLY, K_INT, F_ANY | F_V6),
	O(IPPROTO_IPV6, IPV6_TCLASS, K_INT, F_ANY | F_V6),
	O(IPPROTO_IPV6, IPV6_UNICAST_HOPS, K_INT, F_ANY | F_V6 | F_SKIP_DEFAULT),
	O(IPPROTO_IPV6, IPV6_MTU_DISCOVER, K_INT, F_ANY | F_V6 | F_SKIP_DEFAULT),
	O(IPPROTO_IPV6, IPV6_RECVERR, K_INT, F_ANY | F_V6),
	O(IPPROTO_IPV6, IPV6_RECVPKTINFO, K_INT, F_UDP | F_V6),
	O(IPPROTO_IPV6, IPV6_FREEBIND, K_INT, F_ANY | F_V6),
	O(IPPROTO_IPV6, IPV6_TRANSPARENT, K_INT, F_ANY | F_V6),
	O(IPPROTO_TCP, TCP_NODELAY, K_INT, F_TCP | F_BOTHFAM),
	O(IPPROTO_TCP, TCP_CORK, K_INT, F_TCP | F_BOTHFAM),
	O(IPPROTO_TCP, TCP_KEEPIDLE, K_INT, F_TCP | F_BOTHFAM | F_SKIP_DEFAULT),
	O(IPPROTO_TCP, TCP_KEEPINTVL, K_INT, F_TCP | F_BOTHFAM | F_SKIP_DEFAULT),
	O(IPPROTO_TCP, TCP_KEEPCNT, K_INT, F_TCP | F_BOTHFAM | F_SKIP_DEFAULT),
	O(IPPROTO_TCP, TCP_USER_TIMEOUT, K_INT, F_TCP | F_BOTHFAM),
	O(IPPROTO_TCP, TCP_NOTSENT_LOWAT, K_INT, F_TCP | F_BOTHFAM),
	O(IPPROTO_TCP, TCP_LINGER2, K_INT, F_TCP | F_BOTHFAM | F_SKIP_DEFAULT),
	O(IPPROTO_TCP, TCP_SYNCNT, K_INT, F_TCP | F_BOTHFAM | F_SKIP_DEFAULT),
	O(IPPROTO_TCP, TCP_DEFER_ACCEPT, K_INT, F_TCP | F_BOTHFAM),
	O(IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, K_INT, F_TCP | F_BOTHFAM),
	O(IPPROTO_TCP, TCP_CONGESTION, K_STR, F_TCP | F_BOTHFAM | F_SKIP_DEFAULT),
	O(IPPROTO_UDP, UDP_CORK, K_INT, F_UDP | F_BOTHFAM),
	/* After IP_TOS: setting the TOS of a stream socket also sets its priority. */
	O(SOL_SOCKET, SO_PRIORITY, K_INT, F_ANY | F_BOTHFAM),
};
#undef O

#define OPT_STR_MAX 32   /* TCP_CA_NAME_MAX 16, IFNAMSIZ 16 */

static int sock_kind_flags(const Netstate__Socket *s)
{
	return (s->type == SOCK_STREAM ? F_TCP : F_UDP) | (s->family == AF_INET6 ? F_V6 : F_V4);
}

static bool applies(const struct opt_desc *d, int kind)
{
	return (d->flags & kind & F_ANY) && (d->flags & kind & F_BOTHFAM);
}

_Static_assert(sizeof(opt_table) / sizeof(opt_table[0]) <= NS_OPT_TABLE_MAX, "ns_opt_pre.at is too small");

/* (level, name) -> table index + 1, made once: find_desc runs ~30 times
 * per captured connection. */
static uint8_t desc_at[5][128];
static pthread_once_t desc_once = PTHREAD_ONCE_INIT;

static int level_slot(uint32_t level)
{
	switch (level) {
	case SOL_SOCKET: return 0;
	case IPPROTO_IP: return 1;
	case IPPROTO_IPV6: return 2;
	case IPPROTO_TCP: return 3;
	case IPPROTO_UDP: return 4;
	default: return -1;
	}
}

static void desc_index(void)
{
	for (size_t i = 0; i < sizeof(opt_table) / sizeof(opt_table[0]); i++) {
		int l = level_slot((uint32_t)opt_table[i].level);
		if (l >= 0 && opt_table[i].name >= 0 && opt_table[i].name < 128)
			desc_at[l][opt_table[i].name] = (uint8_t)(i + 1);
	}
}

static const struct opt_desc *find_desc(uint32_t level, uint32_t name)
{
	int l = level_slot(level);

	pthread_once(&desc_once, desc_index);
	if (l >= 0 && name < 128)
		return desc_at[l][name] ? &opt_table[desc_at[l][name] - 1] : NULL;
	for (size_t i = 0; i < sizeof(opt_table) / sizeof(opt_table[0]); i++)
		if ((uint32_t)opt_table[i].level == level && (uint32_t)opt_table[i].name == name)
			return &opt_table[i];
	return NULL;
}

/* Read one option into a union-ish buffer; returns its length or -errno. */
static int get_raw(int fd, const struct opt_desc *d, void *buf, socklen_t cap)
{
	socklen_t len = cap;

	memset(buf, 0, cap);
	if (getsockopt(fd, d->level, d->name, buf, &len) < 0)
		return -errno;
	return (int)len;
}

/* Same option on a fresh socket of the same kind: the default to compare
 * with.  Cached per (family, type, option): defaults are per netns sysctls
 * that do not change during a checkpoint, and a socket per option would
 * dominate the capture time. */
#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))
struct default_cache {
	int valid, len;
	char val[OPT_STR_MAX + 16];
};
static struct default_cache defaults[2][2][N_OPTS];   /* [v6][udp][opt] */
static pthread_mutex_t defaults_lock = PTHREAD_MUTEX_INITIALIZER;   /* capture_many's threads */

static int default_raw(const Netstate__Socket *s, const struct opt_desc *d, void *buf, socklen_t cap)
{
	struct default_cache *dc = &defaults[s->family == AF_INET6][s->type == SOCK_DGRAM][d - opt_table];
	int fd, n = 0;

	pthread_mutex_lock(&defaults_lock);
	if (!dc->valid) {
		fd = socket((int)s->family, (int)s->type | SOCK_CLOEXEC, (int)s->protocol);
		n = fd < 0 ? -errno : get_raw(fd, d, dc->val, cap);
		if (fd >= 0)
			close(fd);
		if (n >= 0) {
			dc->len = n;
			dc->valid = 1;
		}
	}
	if (n >= 0) {
		memcpy(buf, dc->val, (size_t)dc->len);
		n = dc->len;
	}
	pthread_mutex_unlock(&defaults_lock);
	return n;
}

static int add_opt(Netstate__Socket *s, const struct opt_desc *d, const void *buf, int len)
{
	Netstate__Opt *o, **v;

	v = realloc(s->opts, (s->n_opts + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->opts = v;
	o = malloc(sizeof(*o));
	if (!o)
		return -ENOMEM;
	netstate__opt__init(o);
	o->level = d->level;
	o->name = d->name;
	if (d->kind == K_INT || d->kind == K_BUF) {
		int iv;
		memcpy(&iv, buf, sizeof(iv));
		o->has_ival = 1;
		o->ival = d->kind == K_BUF ? iv / 2 : iv;
	} else {
		size_t n = d->kind == K_STR ? strnlen(buf, (size_t)len) : (size_t)len;
		o->has_bval = 1;
		o->bval.data = malloc(n ? n : 1);
		if (!o->bval.data) {
			free(o);
			return -ENOMEM;
		}
		memcpy(o->bval.data, buf, n);
		o->bval.len = n;
	}
	s->opts[s->n_opts++] = o;
	return 0;
}

static bool is_zero(const void *buf, int len)
{
	const unsigned char *p = buf;
	for (int i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* The value the netns-wide sock_diag dump already has for this option
 * (same bytes getsockopt would give): its length, or 0 to ask the socket. */
static int from_diag(const struct ns_diag_sock *dg, const struct opt_desc *d, void *buf)
{
	int v;

	if (!dg)
		return 0;
	if (d->level == SOL_SOCKET && d->name == SO_MARK && dg->has_mark)
		v = (int)dg->mark;
	else if (d->level == SOL_SOCKET && d->name == SO_BINDTODEVICE && dg->ifindex == 0)
		return 1;   /* buf is zeroed: no device */
	else if (d->level == IPPROTO_IP && d->name == IP_TOS && dg->has_tos)
		v = dg->tos;
	else if (d->level == IPPROTO_IPV6 && d->name == IPV6_TCLASS && dg->has_tclass)
		v = dg->tclass;
	else if (d->level == IPPROTO_IP && d->name == IP_RECVERR && dg->has_sockopt)
		v = dg->recverr;
	/* IP_ and IPV6_FREEBIND/TRANSPARENT are one bit of the inet socket. */
	else if (((d->level == IPPROTO_IP && d->name == IP_FREEBIND) ||
		  (d->level == IPPROTO_IPV6 && d->name == IPV6_FREEBIND)) && dg->has_sockopt)
		v = dg->freebind;
	else if (((d->level == IPPROTO_IP && d->name == IP_TRANSPARENT) ||
		  (d->level == IPPROTO_IPV6 && d->name == IPV6_TRANSPARENT)) && dg->has_sockopt)
		v = dg->transparent;
	else if (d->level == IPPROTO_TCP && d->name == TCP_CONGESTION && dg->has_cong) {
		/* getsockopt copies TCP_CA_NAME_MAX (16) bytes, NUL padded */
		memcpy(buf, dg->cong, 16);
		return 16;
	} else
		return 0;
	memcpy(buf, &v, sizeof(v));
	return sizeof(v);
}

/* Queue, on r, a read of every SOL_SOCKET option of the table that applies
 * to s and that neither sock_diag answers nor is a string; and SO_BUF_LOCK. */
int ns_opts_queue(struct ns_ring *r, int fd, const Netstate__Socket *s, const struct ns_diag_sock *dg,
		  struct ns_opt_pre *pre)
{
	int kind = sock_kind_flags(s), r2, known = pre->n, queued = 0;
	char tmp[OPT_STR_MAX + 16];

	if (pre->lock_res < (int)sizeof(int)) {   /* not known yet */
		pre->lock = 0;
		if ((r2 = ns_ring_getsockopt(r, fd, SO_BUF_LOCK, &pre->lock, sizeof(pre->lock), &pre->lock_res)))
			return r2;
	}
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt_desc *d = &opt_table[i];
		bool have = false;

		if (d->level != SOL_SOCKET || d->kind == K_STR || !applies(d, kind))
			continue;
		have = pre->at[i] != 0 && pre->at[i] <= known;
		memset(tmp, 0, sizeof(tmp));
		if (have || from_diag(dg, d, tmp) > 0 || queued == NS_PRE_QUEUE_MAX || pre->n == NS_PRE_MAX)
			continue;
		queued++;
		pre->o[pre->n].idx = (uint8_t)i;
		memset(pre->o[pre->n].val, 0, sizeof(pre->o[pre->n].val));
		if ((r2 = ns_ring_getsockopt(r, fd, d->name, pre->o[pre->n].val, sizeof(pre->o[pre->n].val),
					     &pre->o[pre->n].res)))
			return r2;
		pre->at[i] = (uint8_t)(++pre->n);
	}
	return 0;
}

int ns_opt_pre_int(const struct ns_opt_pre *pre, int level, int name, int *val)
{
	for (int k = 0; k < pre->n; k++) {
		const struct opt_desc *d = &opt_table[pre->o[k].idx];

		if (d->level == level && d->name == name && pre->o[k].res >= (int)sizeof(int)) {
			memcpy(val, pre->o[k].val, sizeof(int));
			return 0;
		}
	}
	return -ENOENT;
}

int ns_opt_pre_add(struct ns_opt_pre *pre, int level, int name, const void *val, int len)
{
	const struct opt_desc *d = find_desc((uint32_t)level, (uint32_t)name);

	if (!d)
		return -ENOENT;
	if (pre->n == NS_PRE_MAX || len <= 0 || (size_t)len > sizeof(pre->o[0].val))
		return -ENOSPC;
	pre->o[pre->n].idx = (uint8_t)(d - opt_table);
	pre->o[pre->n].res = len;
	memset(pre->o[pre->n].val, 0, sizeof(pre->o[pre->n].val));
	memcpy(pre->o[pre->n].val, val, (size_t)len);
	pre->at[d - opt_table] = (uint8_t)(++pre->n);
	return 0;
}

void ns_opt_pre_reset(struct ns_opt_pre *pre)
{
	memset(pre->at, 0, sizeof(pre->at));
	pre->n = 0;
	pre->lock_res = -1;
}

int ns_opt_pre_add_int(struct ns_opt_pre *pre, int level, int name, int val)
{
	return ns_opt_pre_add(pre, level, name, &val, sizeof(val));
}

/* The value read ahead for table entry i: its length (or -errno), or 0 when
 * it was not read ahead. */
static int from_pre(const struct ns_opt_pre *pre, size_t i, char *buf)
{
	int k;

	if (!pre || !pre->at[i])
		return 0;
	k = pre->at[i] - 1;
	if (pre->o[k].res == 0)
		return -EIO;   /* an option that has no value: as if unsupported */
	if (pre->o[k].res > 0)
		memcpy(buf, pre->o[k].val, (size_t)pre->o[k].res);
	return pre->o[k].res;
}

int ns_opts_capture(int fd, Netstate__Socket *s, const struct ns_diag_sock *dg, const struct ns_opt_pre *pre,
		    int file_flags)
{
	int kind = sock_kind_flags(s);
	char buf[OPT_STR_MAX + 16], def[OPT_STR_MAX + 16];
	int fl, n, dn, r, lock = 0;
	socklen_t ll = sizeof(lock);

	if (pre && pre->lock_res >= (int)sizeof(int))
		lock = pre->lock;
	else if (pre || getsockopt(fd, SOL_SOCKET, SO_BUF_LOCK, &lock, &ll) < 0)
		lock = SOCK_BUF_LOCK_MASK;   /* old kernel: keep the sizes, as before */
	for (size_t i = 0; i < sizeof(opt_table) / sizeof(opt_table[0]); i++) {
		const struct opt_desc *d = &opt_table[i];

		if (!applies(d, kind))
			continue;
		if (d->kind == K_BUF &&
		    !(lock & (d->name == SO_SNDBUF ? SOCK_SNDBUF_LOCK : SOCK_RCVBUF_LOCK)))
			continue;
		memset(buf, 0, sizeof(buf));
		n = from_diag(dg, d, buf);
		if (n == 0)
			n = from_pre(pre, i, buf);
		if (n == 0)
			n = get_raw(fd, d, buf, d->kind == K_STR ? OPT_STR_MAX : sizeof(buf));
		if (n < 0) {
			log_debug("netstate: getsockopt %s: %s", d->what, strerror(-n));
			continue;   /* not supported here: nothing to restore */
		}
		if (d->flags & F_SKIP_DEFAULT) {
			dn = default_raw(s, d, def, d->kind == K_STR ? OPT_STR_MAX : sizeof(def));
			if (dn == n && !memcmp(buf, def, (size_t)n))
				continue;
		} else if (d->kind != K_STR && is_zero(buf, n)) {
			continue;   /* zero is every one of these options' default */
		}
		if (d->kind == K_STR && !buf[0])
			continue;
		r = add_opt(s, d, buf, n);
		if (r)
			return r;
	}
	if (file_flags >= 0) {
		fl = file_flags;
	} else if ((fl = fcntl(fd, F_GETFL)) < 0) {
		return -errno;
	}
	s->has_file_flags = 1;
	s->file_flags = fl & O_NONBLOCK;
	return 0;
}

/* The autotuning ceiling of the current netns: the third field of
 * net.ipv4.tcp_wmem / tcp_rmem (0 if unreadable). */
static int autotune_max(const char *sysctl)
{
	char path[64], buf[96];
	long lo, def, max = 0;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/%s", sysctl);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	if (sscanf(buf, "%ld %ld %ld", &lo, &def, &max) != 3 || max <= 0 || max > INT32_MAX)
		return 0;
	return (int)max;
}

/* After a restore forced buffer sizes to fit saved queues: the lock bits
 * go back to what the program had (SO_BUF_LOCK, Linux 5.14), so sizes it
 * never set are autotuned again — from no more than autotuning itself
 * would reach.  Left at the forced size, a buffer would hold about twice
 * the queue it was forced for, the next checkpoint would find a queue that
 * big and force twice that: a stream migrated a few times grew its queues
 * past NS_MAX_QUEUE and could no longer be checkpointed. */
int ns_buf_lock_restore(int fd, const Netstate__Socket *s)
{
	static int max_snd = -1, max_rcv = -1;
	int lock = 0;

	for (size_t i = 0; i < s->n_opts; i++)
		if (s->opts[i]->level == SOL_SOCKET && s->opts[i]->has_ival)
			lock |= s->opts[i]->name == SO_SNDBUF ? SOCK_SNDBUF_LOCK :
				s->opts[i]->name == SO_RCVBUF ? SOCK_RCVBUF_LOCK : 0;
	if (max_snd < 0) {
		max_snd = autotune_max("tcp_wmem");
		max_rcv = autotune_max("tcp_rmem");
	}
	for (int k = 0; k < 2; k++) {
		int opt = k ? SO_RCVBUF : SO_SNDBUF, max = k ? max_rcv : max_snd, cur = 0;
		socklen_t len = sizeof(cur);
		if ((lock & (k ? SOCK_RCVBUF_LOCK : SOCK_SNDBUF_LOCK)) || max <= 0 ||
		    getsockopt(fd, SOL_SOCKET, opt, &cur, &len) < 0 || cur <= max)
			continue;
		int half = max / 2;     /* the kernel doubles what is set */
		if (setsockopt(fd, SOL_SOCKET, k ? SO_RCVBUFFORCE : SO_SNDBUFFORCE, &half, sizeof(half)) < 0) {
			int e = errno;
			log_err("netstate: bring %s back to %d bytes: %s", k ? "SO_RCVBUF" : "SO_SNDBUF", max,
				strerror(e));
			return -e;
		}
	}
	if (setsockopt(fd, SOL_SOCKET, SO_BUF_LOCK, &lock, sizeof(lock)) < 0 && errno != ENOPROTOOPT) {
		int e = errno;
		log_err("netstate: restore option SO_BUF_LOCK: %s", strerror(e));
		return -e;
	}
	return 0;
}

int ns_opt_get_int(const Netstate__Socket *s, int level, int name, int *val)
{
	for (size_t i = 0; i < s->n_opts; i++)
		if (s->opts[i]->level == (uint32_t)level && s->opts[i]->name == (uint32_t)name &&
		    s->opts[i]->has_ival) {
			*val = (int)s->opts[i]->ival;
			return 0;
		}
	return -ENOENT;
}

int ns_opts_validate(const Netstate__Socket *s)
{
	int kind = sock_kind_flags(s);

	if (s->n_opts > NS_MAX_OPTS)
		return -EINVAL;
	if (s->has_file_flags && (s->file_flags & ~(uint32_t)O_NONBLOCK))
		return -EINVAL;
	for (size_t i = 0; i < s->n_opts; i++) {
		const Netstate__Opt *o = s->opts[i];
		const struct opt_desc *d = find_desc(o->level, o->name);

		if (!d || !applies(d, kind))
			return -EINVAL;
		switch (d->kind) {
		case K_INT:
		case K_BUF:
			if (!o->has_ival || o->ival < INT32_MIN || o->ival > INT32_MAX)
				return -EINVAL;
			break;
		case K_STR:
			if (!o->has_bval || o->bval.len == 0 || o->bval.len >= OPT_STR_MAX ||
			    memchr(o->bval.data, 0, o->bval.len))
				return -EINVAL;
			break;
		case K_LINGER:
			if (!o->has_bval || o->bval.len != sizeof(struct linger))
				return -EINVAL;
			break;
		case K_TIMEVAL:
			if (!o->has_bval || o->bval.len != sizeof(struct timeval))
				return -EINVAL;
			break;
		}
	}
	return 0;
}

int ns_opts_apply(int fd, const Netstate__Socket *s, enum ns_opt_phase phase)
{
	char str[OPT_STR_MAX];

	for (size_t i = 0; i < s->n_opts; i++) {
		const Netstate__Opt *o = s->opts[i];
		const struct opt_desc *d = find_desc(o->level, o->name);
		const void *val;
		socklen_t len;
		int iv;

		if (!d)
			return -EINVAL;
		if (phase == NS_OPT_AFTER_REPAIR && !(d->flags & F_AFTER_REPAIR))
			continue;
		if (d->kind == K_INT || d->kind == K_BUF) {
			iv = (int)o->ival;
			val = &iv;
			len = sizeof(iv);
		} else if (d->kind == K_STR) {
			memcpy(str, o->bval.data, o->bval.len);
			str[o->bval.len] = 0;
			val = str;
			len = (socklen_t)o->bval.len + 1;
		} else {
			val = o->bval.data;
			len = (socklen_t)o->bval.len;
		}
		if (setsockopt(fd, d->level, d->name, val, len) < 0) {
			int e = errno;
			log_err("netstate: restore option %s: %s", d->what, strerror(e));
			return -e;
		}
	}
	if (phase == NS_OPT_BEFORE_BIND && s->has_file_flags && (s->file_flags & O_NONBLOCK)) {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
			return -errno;
	}
	return 0;
}
