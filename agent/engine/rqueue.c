/*
 * rqueue.c — the late restore steps of a process's leader as one batch.
 *
 * Each injected call is a ptrace round trip (set registers, step, wait, read
 * registers); a process used to need ~10 of them after its memory (final
 * protections, PR_SET_MM_MAP, thread state, signal handlers, creds, the
 * inventory's close_range).  The objects queue them here instead, with the
 * bytes they point to (copied into scratch pages 0-2 with one write), and
 * the queue runs as one inj_batch (inject.c) when it is flushed: before any
 * object injects a call of its own (rq_flush first, so the order of the
 * calls is the order they were made in) and before the final registers.
 * A queued call that fails is reported with what it was, as inj_call did.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine/engine.h"
#include "lib/log.h"

#define RQ_DATA (3 * PAGE)

struct rqueue {
	struct inj_op *ops;
	struct rq_meta { const char *what; unsigned flags; } *meta;
	int n, cap;
	uint8_t data[RQ_DATA];
	size_t dlen;
	bool started;           /* rq_flush_start ran it: rq_flush_finish waits */
	int sync_err;           /* rq_flush_start ran it at once: its result */
};

static struct rqueue *rq_of(struct rproc *p)
{
	if (!p->rq)
		p->rq = xcalloc(1, sizeof(*p->rq));
	return p->rq;
}

/* Copy len bytes for the queued calls; their address in the target, or 0
 * if they do not fit even in an empty queue (flushed here if full). */
uint64_t rq_data(struct rst_ctx *r, struct rproc *p, const void *buf, size_t len)
{
	struct rqueue *q = rq_of(p);
	size_t off = (q->dlen + 15) & ~(size_t)15;
	if (off + len > RQ_DATA) {
		if (len > RQ_DATA || rq_flush(r, p) < 0)
			return 0;
		off = 0;
	}
	memcpy(q->data + off, buf, len);
	q->dlen = off + len;
	return r->scratch_addr + off;
}

void rq_add(struct rproc *p, const char *what, unsigned flags, long nr, uint64_t a0, uint64_t a1, uint64_t a2,
	    uint64_t a3, uint64_t a4, uint64_t a5)
{
	struct rqueue *q = rq_of(p);
	if (q->n == q->cap) {
		q->cap = q->cap * 2 + 32;
		q->ops = realloc(q->ops, (size_t)q->cap * sizeof(*q->ops));
		q->meta = realloc(q->meta, (size_t)q->cap * sizeof(*q->meta));
		if (!q->ops || !q->meta)
			abort();
	}
	q->ops[q->n] = (struct inj_op){ (uint64_t)nr, { a0, a1, a2, a3, a4, a5 }, 0 };
	q->meta[q->n++] = (struct rq_meta){ what, flags };
}

/* The results of a batch that ran (err: it could not be run): the first
 * failure, logged; the queue is empty again. */
static int rq_results(struct rproc *p, struct inj *t, int err)
{
	struct rqueue *q = p->rq;
	if (err < 0)
		goto out;
	p->rq_undrained = false;
	for (int i = 0; i < q->n; i++) {
		long ret = (long)q->ops[i].ret;
		if (q->meta[i].flags & RQ_DRAIN) {
			if (ret > 0)
				p->rq_undrained = true;     /* a signal was there: maybe more */
			else if (ret == -EAGAIN)
				p->rq_undrained = false;
			else if (ret < 0 && !err) {
				log_err("restore: pid %u: drain signals: %s", p->tree->pid, strerror((int)-ret));
				err = (int)ret;
			}
			continue;
		}
		if ((q->meta[i].flags & RQ_IGNORE) || !(ret < 0 && ret > -4096) || err)
			continue;
		log_err("tid %d: %s: %s", t->tid, q->meta[i].what, strerror((int)-ret));
		err = (int)ret;
	}
out:
	q->n = 0;
	q->dlen = 0;
	return err;
}

static struct inj *rq_inj(struct rproc *p)
{
	return p->tinj ? &p->tinj[0] : &p->inj;
}

/* Run what is queued in the leader; the first failure (logged) or 0.
 * p->rq_undrained is set when the RQ_DRAIN ops all found a signal. */
int rq_flush(struct rst_ctx *r, struct rproc *p)
{
	struct rqueue *q = p->rq;
	if (!q || !q->n)
		return 0;
	struct inj *t = rq_inj(p);
	return rq_results(p, t, inj_batch_with(t, r->scratch_addr + 3 * PAGE, q->ops, q->n, r->scratch_addr,
					       q->data, q->dlen));
}

/* rq_flush in two halves: the batch runs in the task while the engine
 * goes on with another process (restore.c); rq_flush_finish waits for it
 * and gives its result.  A queue longer than one round runs at once. */
int rq_flush_start(struct rst_ctx *r, struct rproc *p)
{
	struct rqueue *q = p->rq;
	if (!q || !q->n)
		return 0;
	if (q->n > INJ_BATCH_MAX) {
		q->sync_err = rq_flush(r, p);
		return 0;
	}
	int err = inj_batch_with_start(rq_inj(p), r->scratch_addr + 3 * PAGE, q->ops, q->n, r->scratch_addr,
				       q->data, q->dlen);
	if (err < 0)
		return rq_results(p, rq_inj(p), err);
	q->started = true;
	return 0;
}

int rq_flush_finish(struct rst_ctx *r, struct rproc *p)
{
	struct rqueue *q = p->rq;
	if (!q)
		return 0;
	if (!q->started) {
		int err = q->sync_err;
		q->sync_err = 0;
		return err;
	}
	q->started = false;
	struct inj *t = rq_inj(p);
	return rq_results(p, t, inj_batch_finish(t, r->scratch_addr + 3 * PAGE, q->ops, q->n));
}

void rq_free(struct rproc *p)
{
	if (!p->rq)
		return;
	free(p->rq->ops);
	free(p->rq->meta);
	free(p->rq);
	p->rq = NULL;
}
