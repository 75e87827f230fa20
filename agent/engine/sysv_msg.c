/*
 * sysv_msg.c — SysV message queues of the pod's IPC namespace.
 *
 * Dump (in the pod's IPC namespace, sysv.c): every queue, found with
 * msgctl(MSG_INFO) + msgctl(MSG_STAT_ANY) by index: key, id, owner, mode,
 * msg_qbytes and every message with its type, in queue order, read without
 * dequeuing by msgrcv(msgtyp = position, IPC_NOWAIT | MSG_COPY) (MSG_COPY
 * exists with CONFIG_CHECKPOINT_RESTORE; it reads the message at that
 * position whatever its type).
 *
 * Restore (in the pod's init): msg_next_id = id, msgget(key,
 * IPC_CREAT|IPC_EXCL), every message re-sent in order, IPC_SET owner/mode/
 * qbytes.  A queue created in a namespace gets msgmnb as its msg_qbytes and
 * raising it needs CAP_SYS_RESOURCE (which we may lack), so msgmnb (and
 * msgmax, the largest message) are raised in the pod's namespace while the
 * queue is created; sysv.c writes the saved limits back afterwards.
 *
 * Not kept: msg_lspid/lrpid, times, creator ids.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>

#include "agent/engine/sysv.h"
#include "lib/log.h"

#define QBYTES_MAX (64u << 20)
#define MSGS_MAX   (1u << 20)

struct msgbuf_any {
	long mtype;
	char mtext[];
};

int sysv_msg_dump(struct dump_ctx *d)
{
	struct msginfo info;
	int max = msgctl(0, MSG_INFO, (struct msqid_ds *)&info);
	for (int idx = 0; idx <= max; idx++) {
		struct msqid_ds ds;
		int id = msgctl(idx, MSG_STAT_ANY, &ds);
		if (id < 0)
			continue;
		/* a message is at most qbytes long (msgsnd checks it) */
		size_t cap = ds.msg_qbytes;
		if (cap > QBYTES_MAX || ds.msg_qnum > MSGS_MAX) {
			log_err("dump: SysV message queue id %d: %lu bytes allowed, %lu messages: more than saved: not supported",
				id, (unsigned long)ds.msg_qbytes, (unsigned long)ds.msg_qnum);
			return -ENOTSUP;
		}
		struct msgbuf_any *b = xcalloc(1, sizeof(*b) + cap + 1);
		ImgSysvMsg *q = PB_PUSH(d->files, sysv_msg, ImgSysvMsg, img_sysv_msg__init);
		q->perm = sysv_perm_new(&ds.msg_perm, id);
		q->qbytes = ds.msg_qbytes;
		for (unsigned long k = 0; k < ds.msg_qnum; k++) {
			ssize_t n = msgrcv(id, b, cap, (long)k, IPC_NOWAIT | MSG_COPY);
			if (n < 0) {
				int e = errno;
				log_err("dump: SysV message queue id %d: message %lu: %s%s", id, k, strerror(e),
					e == ENOSYS ? " (MSG_COPY needs CONFIG_CHECKPOINT_RESTORE)" : "");
				free(b);
				return -e;
			}
			ImgSysvMsgItem *m = PB_PUSH(q, msgs, ImgSysvMsgItem, img_sysv_msg_item__init);
			m->mtype = b->mtype;
			m->text.len = (size_t)n;
			m->text.data = xcalloc(1, (size_t)n + 1);
			memcpy(m->text.data, b->mtext, (size_t)n);
		}
		free(b);
	}
	return 0;
}

static int raise_limit(const char *name, uint64_t want)
{
	char *now = sysv_sysctl_get(name);
	uint64_t cur = now ? strtoull(now, NULL, 10) : 0;
	free(now);
	if (cur >= want)
		return 0;
	char v[32];
	snprintf(v, sizeof(v), "%llu", (unsigned long long)want);
	return sysv_sysctl_set(name, v);
}

int sysv_msg_restore(struct rst_ctx *r)
{
	for (size_t i = 0; i < r->files->n_sysv_msg; i++) {
		ImgSysvMsg *q = r->files->sysv_msg[i];
		ImgIpcPerm *pm = q->perm;
		uint64_t total = 0, biggest = 0;
		for (size_t k = 0; k < q->n_msgs; k++) {
			total += q->msgs[k]->text.len;
			if (q->msgs[k]->text.len > biggest)
				biggest = q->msgs[k]->text.len;
			if (q->msgs[k]->mtype <= 0)
				total = UINT64_MAX;
		}
		if (!pm || pm->id < 0 || q->qbytes > QBYTES_MAX || q->n_msgs > MSGS_MAX || total > QBYTES_MAX) {
			log_err("restore: SysV message queue %zu: bad record", i);
			return -EINVAL;
		}
		/* qbytes of the new queue = msgmnb; the queue must take what it held */
		uint64_t qbytes = q->qbytes > total ? q->qbytes : total;
		int err;
		if ((err = raise_limit("msgmnb", qbytes)) < 0 || (err = raise_limit("msgmax", biggest)) < 0 ||
		    (err = sysv_next_id("msg", pm->id)) < 0)
			return err;
		int id = msgget(pm->key, IPC_CREAT | IPC_EXCL | (int)(pm->mode & 0777));
		if ((err = sysv_check_id("message queue", pm, id)) < 0)
			return err;
		struct msgbuf_any *b = xcalloc(1, sizeof(*b) + biggest + 1);
		for (size_t k = 0; k < q->n_msgs; k++) {
			b->mtype = (long)q->msgs[k]->mtype;
			memcpy(b->mtext, q->msgs[k]->text.data, q->msgs[k]->text.len);
			if (msgsnd(id, b, q->msgs[k]->text.len, IPC_NOWAIT) < 0) {
				err = -errno;
				log_err("restore: SysV message queue id %d: message %zu: %s", id, k, strerror(errno));
				free(b);
				return err;
			}
		}
		free(b);
		struct msqid_ds ds;
		if (msgctl(id, IPC_STAT, &ds) < 0)
			return -errno;
		ds.msg_perm.uid = pm->uid;
		ds.msg_perm.gid = pm->gid;
		ds.msg_perm.mode = pm->mode & 0777;
		ds.msg_qbytes = q->qbytes ? q->qbytes : ds.msg_qbytes;
		if (msgctl(id, IPC_SET, &ds) < 0) {
			log_err("restore: SysV message queue id %d: owner %u:%u, qbytes %llu: %s", id, pm->uid, pm->gid,
				(unsigned long long)q->qbytes, strerror(errno));
			return -errno;
		}
	}
	return 0;
}
