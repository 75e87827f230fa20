/*
 * uring.c — a minimal io_uring, to batch a socket capture's many small
 * socket operations into one syscall.
 *
 * Why: on this VM a syscall costs ~1.2-2.4 us (entry/exit dominates), an
 * operation inside one io_uring_enter ~0.1 us (measured: SOL_SOCKET
 * getsockopt, setsockopt at any level, recv MSG_PEEK).  io_uring's socket
 * commands (io_uring/cmd_net.c, 6.7+) are SIOCINQ, SIOCOUTQ, setsockopt at
 * any level and getsockopt at SOL_SOCKET only; IP/TCP-level getsockopt
 * stays a syscall.
 *
 * A chain that must stop at its first failure is linked (IOSQE_IO_LINK:
 * the rest complete with -ECANCELED).
 * Requests of one submission run in order, inline in io_uring_enter: none
 * of the ones used here can block for I/O (recv carries MSG_DONTWAIT, which
 * makes io_uring complete it with -EAGAIN instead of waiting for data), so
 * none is punted to a worker.  Each request's result is stored through its
 * user_data: a pointer to an int (low bit set: keep the first error only).
 * No liburing: Debian 12's has no socket commands.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/log.h"
#include "netstate/internal.h"

#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif

int ns_ring_open(struct ns_ring *r, unsigned entries)
{
	struct io_uring_params p;
	size_t sq_len, cq_len;
	void *sq;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_NO_SQARRAY;
	r->fd = (int)syscall(__NR_io_uring_setup, entries, &p);
	if (r->fd < 0 && errno == EINVAL) {   /* before 6.6: with the SQ index array */
		p.flags &= ~IORING_SETUP_NO_SQARRAY;
		r->fd = (int)syscall(__NR_io_uring_setup, entries, &p);
	}
	if (r->fd < 0)
		return -errno;
	sq_len = p.sq_off.array + (p.flags & IORING_SETUP_NO_SQARRAY ? 0 : p.sq_entries * sizeof(unsigned));
	cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	r->ring_len = sq_len > cq_len ? sq_len : cq_len;   /* IORING_FEAT_SINGLE_MMAP (5.4+) */
	r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	sq = mmap(NULL, r->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_SQ_RING);
	if (sq == MAP_FAILED)
		goto fail;
	r->ring = sq;
	r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED) {
		r->sqes = NULL;
		goto fail;
	}
	r->sq_tail = (unsigned *)((char *)sq + p.sq_off.tail);
	r->sq_mask = *(unsigned *)((char *)sq + p.sq_off.ring_mask);
	r->sq_array = p.flags & IORING_SETUP_NO_SQARRAY ? NULL : (unsigned *)((char *)sq + p.sq_off.array);
	r->cq_head = (unsigned *)((char *)sq + p.cq_off.head);
	r->cq_tail = (unsigned *)((char *)sq + p.cq_off.tail);
	r->cq_mask = *(unsigned *)((char *)sq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)((char *)sq + p.cq_off.cqes);
	r->entries = p.sq_entries;
	r->cq_entries = p.cq_entries;
	return 0;
fail:;
	int e = errno;
	ns_ring_close(r);
	return -e;
}

/* Touch every page of the ring now: the first access to a page costs
 * ~10 us here, better spent before the pod is frozen.  Nothing is queued
 * yet, so writing back what is read changes nothing. */
void ns_ring_touch(struct ns_ring *r)
{
	volatile char *p = r->ring;

	for (size_t off = 0; off < r->ring_len; off += 4096)
		p[off] = p[off];
	memset(r->sqes, 0, r->sqes_len);
}

void ns_ring_close(struct ns_ring *r)
{
	if (r->sqes)
		munmap(r->sqes, r->sqes_len);
	if (r->ring)
		munmap(r->ring, r->ring_len);
	if (r->fd >= 0)
		close(r->fd);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

/* Store the completions' results where their user_data points. */
static void reap(struct ns_ring *r)
{
	unsigned head = *r->cq_head, tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);

	for (; head != tail; head++) {
		const struct io_uring_cqe *c = &r->cqes[head & r->cq_mask];
		uintptr_t ud = (uintptr_t)c->user_data;
		int *slot = (int *)(ud & ~(uintptr_t)1);

		if (!slot)
			continue;
		if (!(ud & 1))
			*slot = c->res;
		else if (c->res < 0 && *slot == 0)
			*slot = c->res;
	}
	__atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
}


int ns_ring_run(struct ns_ring *r)
{
	unsigned n = r->queued;

	while (n) {
		/* all of them complete inline: wait for as many as submitted */
		long got = syscall(__NR_io_uring_enter, r->fd, n, n, IORING_ENTER_GETEVENTS, NULL, 0);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int e = errno;
			log_err("netstate: io_uring_enter: %s", strerror(e));
			reap(r);
			r->queued = 0;
			r->broken = true;   /* what is left in it must never run later */
			return -e;
		}
		reap(r);
		n -= (unsigned)got;
	}
	reap(r);
	r->queued = 0;
	r->last = NULL;
	return 0;
}

struct io_uring_sqe *ns_ring_sqe(struct ns_ring *r, int *slot, bool sticky)
{
	unsigned tail = *r->sq_tail, idx;
	struct io_uring_sqe *e;

	if (r->broken)
		return NULL;
	/* never more in flight than the completion ring holds */
	if (r->queued == r->entries || r->queued == r->cq_entries) {
		if (ns_ring_run(r) < 0)
			return NULL;
		tail = *r->sq_tail;
	}
	idx = tail & r->sq_mask;
	e = &r->sqes[idx];
	memset(e, 0, sizeof(*e));
	if (r->sq_array)
		r->sq_array[idx] = idx;
	e->user_data = (uintptr_t)slot | (sticky ? 1 : 0);
	if (slot && !sticky)
		*slot = -ECANCELED;   /* until it completes */
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	r->queued++;
	r->last = e;
	return e;
}

int ns_ring_reserve(struct ns_ring *r, unsigned n)
{
	unsigned cap = r->entries < r->cq_entries ? r->entries : r->cq_entries;

	if (r->broken || n > cap)
		return -EIO;
	return cap - r->queued < n ? ns_ring_run(r) : 0;
}

void ns_ring_link_last(struct ns_ring *r)
{
	if (r->last)
		r->last->flags |= IOSQE_IO_LINK;
}

/* io_uring socket commands (uapi SOCKET_URING_OP_*, not in Debian 12's headers). */
enum { URING_SIOCINQ = 0, URING_SIOCOUTQ = 1, URING_GETSOCKOPT = 2, URING_SETSOCKOPT = 3 };

/* cmd_op at offset 8, level/optname at 16/20, optlen at 44, optval at 48 (uapi io_uring.h). */
static void sock_cmd(struct io_uring_sqe *e, int fd, unsigned op, int level, int name, void *val, int len)
{
	e->opcode = IORING_OP_URING_CMD;
	e->fd = fd;
	e->cmd_op = op;
	e->addr = (uint64_t)(uint32_t)level | (uint64_t)(uint32_t)name << 32;
	e->file_index = (uint32_t)len;   /* optlen */
	e->addr3 = (uint64_t)(uintptr_t)val;   /* optval */
}

int ns_ring_getsockopt(struct ns_ring *r, int fd, int name, void *val, int len, int *res)
{
	struct io_uring_sqe *e = ns_ring_sqe(r, res, false);

	if (!e)
		return -EIO;
	sock_cmd(e, fd, URING_GETSOCKOPT, SOL_SOCKET, name, val, len);
	return 0;
}

int ns_ring_setsockopt(struct ns_ring *r, int fd, int level, int name, const int *val, int *res, bool sticky)
{
	struct io_uring_sqe *e = ns_ring_sqe(r, res, sticky);

	if (!e)
		return -EIO;
	sock_cmd(e, fd, URING_SETSOCKOPT, level, name, (void *)val, sizeof(int));
	return 0;
}

int ns_ring_inq(struct ns_ring *r, int fd, bool outq, int *res)
{
	struct io_uring_sqe *e = ns_ring_sqe(r, res, false);

	if (!e)
		return -EIO;
	sock_cmd(e, fd, outq ? URING_SIOCOUTQ : URING_SIOCINQ, 0, 0, NULL, 0);
	return 0;
}

int ns_ring_recv(struct ns_ring *r, int fd, void *buf, size_t len, int flags, int *res)
{
	struct io_uring_sqe *e = ns_ring_sqe(r, res, false);

	if (!e)
		return -EIO;
	e->opcode = IORING_OP_RECV;
	e->fd = fd;
	e->addr = (uint64_t)(uintptr_t)buf;
	e->len = (uint32_t)len;
	e->msg_flags = (uint32_t)flags | MSG_DONTWAIT;
	return 0;
}
