/*
 * unix.c — AF_UNIX sockets: stream, datagram, seqpacket; socketpairs and
 * connections whose both ends are in the pod; bound (path and abstract) and
 * listening sockets with the connections waiting in their accept queue; the
 * bytes/messages queued in each receive queue.
 *
 * Dump: sock_diag (NETLINK_SOCK_DIAG, a socket opened inside the pod's
 * network namespace: unix diag only sees sockets of its own netns) gives the
 * type, state, bound name, peer inode, shutdown bits, queue lengths and, for
 * a listener, UNIX_DIAG_ICONS: the inodes of the *client* sockets waiting in
 * accept() (the server-side "embryo" sockets have no inode until accepted,
 * so a pending client's own UNIX_DIAG_PEER is 0).  Queued data is read
 * without consuming it: MSG_PEEK with SO_PEEK_OFF (set to 0, walked, then
 * put back), one recvmsg per datagram.  fds in flight (SCM_RIGHTS), which the
 * peek installs in the engine, are matched (kcmp) to a pod process holding
 * the same file and passed again at restore; one no pod process holds fails
 * the dump, and so do a peer outside the pod, unread bytes a pending client already
 * sent (they sit in the embryo, which cannot be peeked), and datagrams
 * queued on a socket that nothing in the pod could re-send them to.
 *
 * Restore: a connection whose two ends are in the image (a socketpair, an
 * accepted connection and its client) is re-created with socketpair() and
 * each end's queue is re-sent through the other end, in order, before the
 * shutdown bits are applied.  Bound path sockets: unlink + bind; listeners
 * listen with their backlog; in the `finish` hook every pending client is
 * connect()ed to its listener in queue order (so accept() returns them in
 * the same order), one-way connected datagram sockets connect to their
 * (bound) peer, and their queued datagrams are re-sent.  Names of sockets
 * re-created as a socketpair are not kept (getsockname of an accepted socket
 * is empty), nor the sender address of queued datagrams, nor the
 * credentials attached to queued messages (SO_PASSCRED is kept: new
 * messages carry credentials again).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kcmp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

#define ST_ESTABLISHED 1
#define ST_LISTEN 10
#define SHUT_RCV_BIT 1
#define SHUT_SEND_BIT 2
#define MAX_QUEUE_BYTES (64u << 20)   /* per socket, dump and restore */
#define PEEK_BUF (4u << 20)

/* ------------------------------------------------------------------ dump */

struct udiag {
	uint32_t ino, type, state, peer, shutdown, rq, wq;
	uint8_t name[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int namelen;
	uint32_t icons[1024];
	int nicons;
};

static struct {
	struct dump_ctx *d;          /* the dump these belong to */
	int diag;                    /* NETLINK_SOCK_DIAG socket in the pod's netns */
	uint32_t *held;              /* socket inodes held by fds of the pod */
	int nheld;
} U = { .diag = -1 };

static int diag_open(struct dump_ctx *d)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/net", d->procs[0].hpid);
	int pod = open(path, O_RDONLY | O_CLOEXEC), self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	int fd = -1, err = 0;
	if (pod < 0 || self < 0 || setns(pod, CLONE_NEWNET) < 0) {
		err = -errno;
		goto out;
	}
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		err = -errno;
	if (setns(self, CLONE_NEWNET) < 0 && !err) {
		/* cannot happen for a root engine that just left it; fail the dump */
		err = -errno;
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
out:
	if (pod >= 0)
		close(pod);
	if (self >= 0)
		close(self);
	if (err)
		log_err("dump: sock_diag in the pod's netns: %s", strerror(-err));
	return err ? err : fd;
}

static void held_scan(struct dump_ctx *d)
{
	for (int i = 0; i < d->nprocs; i++) {
		if (d->procs[i].tree->zombie)
			continue;
		char path[300], link[64];
		snprintf(path, sizeof(path), "/proc/%d/fd", d->procs[i].hpid);
		DIR *dir = opendir(path);
		struct dirent *de;
		while (dir && (de = readdir(dir))) {
			snprintf(path, sizeof(path), "/proc/%d/fd/%s", d->procs[i].hpid, de->d_name);
			unsigned ino;
			if (read_link(path, link, sizeof(link)) < 0 || sscanf(link, "socket:[%u]", &ino) != 1)
				continue;
			U.held = realloc(U.held, (size_t)(U.nheld + 1) * sizeof(uint32_t));
			U.held[U.nheld++] = ino;
		}
		if (dir)
			closedir(dir);
	}
}

static int setup(struct dump_ctx *d)
{
	if (U.d == d)
		return 0;
	if (U.diag >= 0)
		close(U.diag);
	free(U.held);
	U.held = NULL;
	U.nheld = 0;
	U.d = d;
	if ((U.diag = diag_open(d)) < 0) {
		U.d = NULL;
		return U.diag;
	}
	held_scan(d);
	return 0;
}

static bool held(uint32_t ino)
{
	for (int i = 0; i < U.nheld; i++)
		if (U.held[i] == ino)
			return true;
	return false;
}

static void parse_one(struct nlmsghdr *h, struct udiag *u)
{
	struct unix_diag_msg *m = NLMSG_DATA(h);
	memset(u, 0, sizeof(*u));
	u->ino = m->udiag_ino;
	u->type = m->udiag_type;
	u->state = m->udiag_state;
	int len = (int)h->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
	for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		size_t n = RTA_PAYLOAD(a);
		switch (a->rta_type) {
		case UNIX_DIAG_NAME:
			u->namelen = (int)(n < sizeof(u->name) ? n : sizeof(u->name));
			memcpy(u->name, RTA_DATA(a), (size_t)u->namelen);
			break;
		case UNIX_DIAG_PEER:
			if (n >= 4)
				memcpy(&u->peer, RTA_DATA(a), 4);
			break;
		case UNIX_DIAG_ICONS:
			u->nicons = (int)(n / 4 < 1024 ? n / 4 : 1024);
			memcpy(u->icons, RTA_DATA(a), (size_t)u->nicons * 4);
			break;
		case UNIX_DIAG_RQLEN:
			if (n >= sizeof(struct unix_diag_rqlen)) {
				struct unix_diag_rqlen *q = RTA_DATA(a);
				u->rq = q->udiag_rqueue;
				u->wq = q->udiag_wqueue;
			}
			break;
		case UNIX_DIAG_SHUTDOWN:
			if (n >= 1)
				u->shutdown = *(uint8_t *)RTA_DATA(a);
			break;
		}
	}
}

/* One diag query: by inode (ino != 0), or a dump of all sockets in `states`.
 * cb is called for each answer; returns 0, -ENOENT (no such socket) or -errno. */
static int diag_query(uint32_t ino, uint32_t states, int (*cb)(struct udiag *, void *), void *arg)
{
	struct {
		struct nlmsghdr h;
		struct unix_diag_req r;
	} req = {
		.h = { .nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
		       .nlmsg_flags = NLM_F_REQUEST | (ino ? 0 : NLM_F_DUMP), .nlmsg_seq = 1 },
		.r = { .sdiag_family = AF_UNIX, .udiag_states = states, .udiag_ino = ino,
		       .udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN,
		       .udiag_cookie = { ~0u, ~0u } },
	};
	if (send(U.diag, &req, sizeof(req), 0) < 0)
		return -errno;
	static char buf[1 << 16];
	struct udiag *u = xcalloc(1, sizeof(*u));
	int err = 0, done = 0, found = 0;
	while (!done && !err) {
		ssize_t n = recv(U.diag, buf, sizeof(buf), 0);
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			break;
		}
		int len = (int)n;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type == NLMSG_DONE) {
				done = 1;
				break;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);
				err = e->error ? e->error : 0;
				done = 1;
				break;
			}
			parse_one(h, u);
			found = 1;
			if ((err = cb(u, arg)) < 0)
				break;
			if (ino)
				done = 1;
		}
	}
	free(u);
	if (!err && ino && !found)
		err = -ENOENT;
	return err;
}

static int copy_cb(struct udiag *u, void *arg)
{
	memcpy(arg, u, sizeof(*u));
	return 0;
}

struct icons_find { uint32_t ino; int found; uint32_t listener; };

static int icons_cb(struct udiag *u, void *arg)
{
	struct icons_find *f = arg;
	for (int i = 0; i < u->nicons; i++)
		if (u->icons[i] == f->ino && held(u->ino)) {
			f->found = 1;
			f->listener = u->ino;
		}
	return 0;
}

static bool same_file(pid_t hpid, int fd, void *mine)
{
	return syscall(SYS_kcmp, getpid(), hpid, KCMP_FILE, *(int *)mine, fd) == 0;
}

/* A (pod pid, fd) holding the same file as our fd `mine` (kcmp), or -ENOENT. */
static int find_holder(struct dump_ctx *d, int mine, uint32_t *pid, uint32_t *fd)
{
	return pod_fd_find(d, same_file, &mine, pid, fd);
}

/* Peek the whole receive queue without consuming it. */
static int peek_queue(struct dump_ctx *d, const struct fd_src *s, ImgUnix *x)
{
	int old = -1, zero = 0, err = 0;
	socklen_t sl = sizeof(old);
	if (getsockopt(s->lfd, SOL_SOCKET, SO_PEEK_OFF, &old, &sl) < 0 ||
	    setsockopt(s->lfd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) < 0) {
		log_err("dump: pid %u fd %d: unix socket: SO_PEEK_OFF: %s", s->p->tree->pid, s->fd, strerror(errno));
		return -errno;
	}
	SETOPT(x, peek_off, old);
	uint8_t *buf = xcalloc(1, PEEK_BUF);
	size_t total = 0;
	for (;;) {
		union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int) * 64) + CMSG_SPACE(sizeof(struct ucred))]; } cb;
		struct iovec iov = { buf, PEEK_BUF };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cb, .msg_controllen = sizeof(cb) };
		ssize_t n = recvmsg(s->lfd, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno != EAGAIN)
				err = -errno;
			break;
		}
		/* fds in flight: the peek installed copies in the engine; each must be
		 * a file some pod process holds, which the restore passes again */
		bool orphan_fd = (mh.msg_flags & MSG_CTRUNC) != 0;
		uint32_t hp[64], hf[64];
		size_t nh = 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				int *fds = (int *)CMSG_DATA(c);
				for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
					if (nh < 64 && find_holder(d, fds[k], &hp[nh], &hf[nh]) == 0)
						nh++;
					else
						orphan_fd = true;
					close(fds[k]);
				}
			}
		if (orphan_fd) {
			log_err("dump: pid %u fd %d: unix socket %s has file descriptors in flight (SCM_RIGHTS) that no "
				"process of the pod holds: not supported", s->p->tree->pid, s->fd, s->link);
			err = -ENOTSUP;
			break;
		}
		if (mh.msg_flags & MSG_TRUNC) {
			log_err("dump: pid %u fd %d: unix socket %s: a queued message is larger than %u bytes",
				s->p->tree->pid, s->fd, s->link, PEEK_BUF);
			err = -ENOTSUP;
			break;
		}
		if (n == 0 && x->type == SOCK_STREAM)
			break;          /* end of stream (peer shut down) */
		total += (size_t)n;
		if (total > MAX_QUEUE_BYTES) {
			log_err("dump: pid %u fd %d: unix socket %s: more than %u queued bytes", s->p->tree->pid, s->fd,
				s->link, MAX_QUEUE_BYTES);
			err = -E2BIG;
			break;
		}
		ImgUnixMsg *m = PB_PUSH(x, rqueue, ImgUnixMsg, img_unix_msg__init);
		m->data.len = (size_t)n;
		m->data.data = xcalloc(1, (size_t)n + 1);
		memcpy(m->data.data, buf, (size_t)n);
		if (nh) {
			m->n_fd_pid = m->n_fd_num = nh;
			m->fd_pid = xcalloc(nh, sizeof(uint32_t));
			m->fd_num = xcalloc(nh, sizeof(uint32_t));
			memcpy(m->fd_pid, hp, nh * sizeof(uint32_t));
			memcpy(m->fd_num, hf, nh * sizeof(uint32_t));
		}
	}
	free(buf);
	setsockopt(s->lfd, SOL_SOCKET, SO_PEEK_OFF, &old, sizeof(old));
	if (err && err != -ENOTSUP && err != -E2BIG)
		log_err("dump: pid %u fd %d: unix socket %s: peek queue: %s", s->p->tree->pid, s->fd, s->link,
			strerror(-err));
	return err;
}

static int unix_match(const struct fd_src *s)
{
	int dom = 0;
	socklen_t l = sizeof(dom);
	return !strncmp(s->link, "socket:[", 8) &&
	       getsockopt(s->lfd, SOL_SOCKET, SO_DOMAIN, &dom, &l) == 0 && dom == AF_UNIX;
}

static int unix_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	uint32_t pid = s->p->tree->pid;
	int err = setup(d);
	if (err < 0)
		return err;
	struct udiag *u = xcalloc(1, sizeof(*u));
	if ((err = diag_query((uint32_t)s->st.st_ino, ~0u, copy_cb, u)) < 0) {
		log_err("dump: pid %u fd %d: unix socket %s: sock_diag: %s", pid, s->fd, s->link, strerror(-err));
		goto out;
	}
	log_debug("dump: pid %u fd %d: unix ino %u type %u state %u peer %u icons %d rq %u wq %u shut %u name %d",
		  pid, s->fd, u->ino, u->type, u->state, u->peer, u->nicons, u->rq, u->wq, u->shutdown, u->namelen);
	f->kind = FK_UNIX;
	ImgUnix *x = xcalloc(1, sizeof(*x));
	img_unix__init(x);
	f->unix_sock = x;
	x->type = u->type;
	x->ino = u->ino;
	x->state = u->state;
	SETOPT(x, peer, u->peer);
	SETOPT(x, shutdown, u->shutdown);
	if (u->namelen > 0) {
		x->has_name = 1;
		x->name.len = (size_t)u->namelen;
		x->name.data = xcalloc(1, (size_t)u->namelen + 1);
		memcpy(x->name.data, u->name, (size_t)u->namelen);
		if (u->name[0] != 0 && u->name[0] != '/') {
			log_err("dump: pid %u fd %d: unix socket %s bound to a relative path '%.*s': not supported", pid,
				s->fd, s->link, u->namelen, u->name);
			err = -ENOTSUP;
			goto out;
		}
	}
	int v = 0;
	socklen_t vl = sizeof(v);
	if (getsockopt(s->lfd, SOL_SOCKET, SO_SNDBUF, &v, &vl) == 0)
		SETOPT(x, sndbuf, (uint32_t)v);
	vl = sizeof(v);
	if (getsockopt(s->lfd, SOL_SOCKET, SO_RCVBUF, &v, &vl) == 0)
		SETOPT(x, rcvbuf, (uint32_t)v);
	vl = sizeof(v);
	if (getsockopt(s->lfd, SOL_SOCKET, SO_PASSCRED, &v, &vl) == 0)
		SETOPT(x, passcred, v != 0);

	if (u->state == ST_LISTEN) {
		SETOPT(x, backlog, u->wq);
		for (int i = 0; i < u->nicons; i++) {
			if (!u->icons[i]) {
				log_err("dump: pid %u fd %d: listening unix socket %s has a pending connection whose client "
					"is already closed: not supported", pid, s->fd, s->link);
				err = -ENOTSUP;
				goto out;
			}
			if (!held(u->icons[i])) {
				log_err("dump: pid %u fd %d: listening unix socket %s has a pending connection from socket "
					"%u outside the pod: not supported", pid, s->fd, s->link, u->icons[i]);
				err = -ENOTSUP;
				goto out;
			}
			x->icons = realloc(x->icons, (x->n_icons + 1) * sizeof(uint32_t));
			x->icons[x->n_icons++] = u->icons[i];
		}
		goto out;
	}
	if (u->peer && !held(u->peer)) {
		log_err("dump: pid %u fd %d: unix socket %s is connected to socket %u outside the pod: not supported",
			pid, s->fd, s->link, u->peer);
		err = -ENOTSUP;
		goto out;
	}
	if (!u->peer && u->state == ST_ESTABLISHED && u->type != SOCK_DGRAM) {
		/* a client waiting in a listener's accept queue, or a peer that is gone */
		struct icons_find fi = { .ino = u->ino };
		if ((err = diag_query(0, 1u << ST_LISTEN, icons_cb, &fi)) < 0) {
			log_err("dump: pid %u fd %d: sock_diag listeners: %s", pid, s->fd, strerror(-err));
			goto out;
		}
		if (fi.found && u->wq) {
			log_err("dump: pid %u fd %d: unix socket %s waits in the accept queue of socket %u with %u bytes "
				"sent and not accepted yet: not supported", pid, s->fd, s->link, fi.listener, u->wq);
			err = -ENOTSUP;
			goto out;
		}
		if (!fi.found && u->shutdown != (SHUT_RCV_BIT | SHUT_SEND_BIT)) {
			log_err("dump: pid %u fd %d: unix socket %s is connected to a socket outside the pod: not "
				"supported", pid, s->fd, s->link);
			err = -ENOTSUP;
			goto out;
		}
	}
	if ((err = peek_queue(d, s, x)) < 0)
		goto out;
	if (x->n_rqueue && u->type == SOCK_DGRAM && !u->namelen && !u->peer) {
		log_err("dump: pid %u fd %d: unbound, unconnected unix datagram socket %s has %zu queued messages: "
			"not supported", pid, s->fd, s->link, x->n_rqueue);
		err = -ENOTSUP;
	}
out:
	free(u);
	return err;
}

/* ------------------------------------------------------------------ restore */

static ImgFile *by_ino(struct rst_ctx *r, uint32_t ino, int *index)
{
	for (size_t i = 0; ino && i < r->files->n_files; i++) {
		ImgFile *f = r->files->files[i];
		if (f->kind == FK_UNIX && f->unix_sock && f->unix_sock->ino == ino) {
			if (index)
				*index = (int)i;
			return f;
		}
	}
	return NULL;
}

/* The other end of a socketpair made for a peer not restored yet. */
static struct { uint32_t ino; int fd; } stash[4096];
static int nstash;

static bool mutual(struct rst_ctx *r, ImgUnix *x, ImgFile **pf)
{
	ImgFile *p = by_ino(r, x->peer, NULL);
	if (pf)
		*pf = p;
	return p && p->unix_sock->peer == x->ino && p->unix_sock->type == x->type &&
	       (x->type != SOCK_DGRAM || (!x->has_name && !p->unix_sock->has_name));
}

static bool is_pending_client(struct rst_ctx *r, uint32_t ino, ImgFile **listener)
{
	for (size_t i = 0; i < r->files->n_files; i++) {
		ImgFile *f = r->files->files[i];
		if (f->kind != FK_UNIX || !f->unix_sock || f->unix_sock->state != ST_LISTEN)
			continue;
		for (size_t k = 0; k < f->unix_sock->n_icons; k++)
			if (f->unix_sock->icons[k] == ino) {
				if (listener)
					*listener = f;
				return true;
			}
	}
	return false;
}

static socklen_t mkaddr(const ImgUnix *x, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	size_t n = x->name.len < sizeof(a->sun_path) ? x->name.len : sizeof(a->sun_path);
	memcpy(a->sun_path, x->name.data, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

static bool queue_has_fds(const ImgUnix *x)
{
	for (size_t i = 0; x && i < x->n_rqueue; i++)
		if (x->rqueue[i]->n_fd_pid)
			return true;
	return false;
}

/* The inventory fd of the file pod pid `pid` holds at `fd`, or -1. */
static int holder_inv(struct rst_ctx *r, uint32_t pid, uint32_t fd)
{
	for (int i = 0; i < r->nprocs; i++) {
		ImgProcCore *c = r->procs[i].core;
		for (size_t k = 0; c && c->pid == pid && k < c->n_fds; k++)
			if (c->fds[k]->fd == fd)
				return inv_fd_for_file(r, c->fds[k]->file_id);
	}
	return -1;
}

/* Send every queued message of `x` into it through `from` (non-blocking:
 * buffers were made big enough), fds in flight passed again (SCM_RIGHTS). */
static int requeue(struct rst_ctx *r, int from, const ImgUnix *x, const struct sockaddr_un *to, socklen_t tolen)
{
	size_t total = 0;
	for (size_t i = 0; i < x->n_rqueue; i++) {
		const ImgUnixMsg *msg = x->rqueue[i];
		const ProtobufCBinaryData *m = &msg->data;
		union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int) * 64)]; } cb;
		size_t nfd = msg->n_fd_pid < msg->n_fd_num ? msg->n_fd_pid : msg->n_fd_num;
		total += m->len;
		if (total > MAX_QUEUE_BYTES || nfd > 64)
			return -E2BIG;
		size_t off = 0;
		do {
			struct iovec iov = { m->data + off, m->len - off };
			struct msghdr mh = { .msg_name = (void *)to, .msg_namelen = to ? tolen : 0,
					     .msg_iov = &iov, .msg_iovlen = 1 };
			if (nfd && off == 0) {
				mh.msg_control = &cb;
				mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfd);
				struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
				c->cmsg_level = SOL_SOCKET;
				c->cmsg_type = SCM_RIGHTS;
				c->cmsg_len = CMSG_LEN(sizeof(int) * nfd);
				for (size_t k = 0; k < nfd; k++) {
					int fd = holder_inv(r, msg->fd_pid[k], msg->fd_num[k]);
					if (fd < 0) {
						log_err("restore: unix socket %u: fd in flight (pid %u fd %u) missing in image",
							x->ino, msg->fd_pid[k], msg->fd_num[k]);
						return -EINVAL;
					}
					((int *)CMSG_DATA(c))[k] = fd;
				}
			}
			ssize_t n = sendmsg(from, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0)
				return -errno;
			off += (size_t)n;
		} while (off < m->len && x->type == SOCK_STREAM);
	}
	return 0;
}

static void bufs(int fd, const ImgUnix *x, bool big)
{
	int v = big ? (int)(MAX_QUEUE_BYTES) : 0;
	if (big || x->has_sndbuf) {
		v = big ? v : (int)(x->sndbuf / 2);
		setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v));
	}
	if (big || x->has_rcvbuf) {
		v = big ? (int)MAX_QUEUE_BYTES : (int)(x->rcvbuf / 2);
		setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v));
	}
}

static void apply_shutdown(int fd, const ImgUnix *x, const ImgUnix *peer)
{
	if (x->shutdown & SHUT_SEND_BIT)
		shutdown(fd, SHUT_WR);
	if ((x->shutdown & SHUT_RCV_BIT) && !(peer && (peer->shutdown & SHUT_SEND_BIT)))
		shutdown(fd, SHUT_RD);
}

static int finish_fd(int fd, ImgFile *f)
{
	int one = 1;
	if (f->unix_sock->passcred)
		setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	if (f->unix_sock->has_peek_off && f->unix_sock->peek_off >= 0)
		setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &f->unix_sock->peek_off, sizeof(int));
	if (fcntl(fd, F_SETFL, (int)(f->flags & (O_NONBLOCK | O_ASYNC))) < 0)
		return -errno;
	return fd;
}

static int unix_restore(struct rst_ctx *r, ImgFile *f)
{
	ImgUnix *x = f->unix_sock;
	ImgFile *pf = NULL;
	int err;
	if (!x || (x->type != SOCK_STREAM && x->type != SOCK_DGRAM && x->type != SOCK_SEQPACKET) ||
	    x->name.len > sizeof(((struct sockaddr_un *)0)->sun_path) || x->n_rqueue > 1000000) {
		log_err("restore: file %u: bad unix socket in image", f->id);
		return -EINVAL;
	}
	for (int i = 0; i < nstash; i++)
		if (stash[i].ino == x->ino) {
			int fd = stash[i].fd;
			stash[i] = stash[--nstash];
			return finish_fd(fd, f);
		}
	bool pair = x->state != ST_LISTEN && x->peer && mutual(r, x, &pf);
	/* a connection whose other end is gone: a pair whose other end we close */
	bool orphan = x->state == ST_ESTABLISHED && x->type != SOCK_DGRAM && !x->peer &&
		      !is_pending_client(r, x->ino, NULL);
	if (pair || orphan) {
		int sv[2];
		if (socketpair(AF_UNIX, (int)x->type | SOCK_CLOEXEC, 0, sv) < 0) {
			log_err("restore: file %u: socketpair: %s", f->id, strerror(errno));
			return -errno;
		}
		/* fds in flight are passed once every file exists: queues and
		 * shutdowns of such a pair wait for the finish hook */
		bool later = queue_has_fds(x) || (pair && queue_has_fds(pf->unix_sock));
		if (later && !pair) {
			log_err("restore: file %u: fds in flight on a socket whose peer is gone: not supported", f->id);
			close(sv[0]);
			close(sv[1]);
			return -ENOTSUP;
		}
		bufs(sv[0], x, true);
		bufs(sv[1], x, true);
		if (!later && ((err = requeue(r, sv[1], x, NULL, 0)) < 0 ||
			       (pair && (err = requeue(r, sv[0], pf->unix_sock, NULL, 0)) < 0))) {
			log_err("restore: file %u: re-queue unix socket data: %s", f->id, strerror(-err));
			close(sv[0]);
			close(sv[1]);
			return err;
		}
		if (!later) {
			bufs(sv[0], x, false);
			apply_shutdown(sv[0], x, pair ? pf->unix_sock : NULL);
		}
		if (pair && !later) {
			bufs(sv[1], pf->unix_sock, false);
			apply_shutdown(sv[1], pf->unix_sock, x);
		}
		if (pair) {
			if (nstash == (int)(sizeof(stash) / sizeof(stash[0])) || (sv[1] = inv_move(r, sv[1])) < 0) {
				close(sv[0]);
				return -EMFILE;
			}
			stash[nstash].ino = pf->unix_sock->ino;
			stash[nstash++].fd = sv[1];
		} else {
			close(sv[1]);
		}
		return finish_fd(sv[0], f);
	}
	int fd = socket(AF_UNIX, (int)x->type | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_err("restore: file %u: socket: %s", f->id, strerror(errno));
		return -errno;
	}
	bufs(fd, x, false);
	if (x->has_name && x->name.len) {
		struct sockaddr_un a;
		socklen_t al = mkaddr(x, &a);
		if (a.sun_path[0] == '/')
			unlink(a.sun_path);   /* the old socket file of the dead pod */
		if (bind(fd, (struct sockaddr *)&a, al) < 0) {
			log_err("restore: file %u: bind unix socket to %s%.*s: %s", f->id, a.sun_path[0] ? "" : "@",
				(int)x->name.len - (a.sun_path[0] ? 0 : 1), a.sun_path + (a.sun_path[0] ? 0 : 1),
				strerror(errno));
			close(fd);
			return -errno;
		}
	}
	if (x->state == ST_LISTEN && listen(fd, (int)x->backlog) < 0) {
		log_err("restore: file %u: listen: %s", f->id, strerror(errno));
		close(fd);
		return -errno;
	}
	return finish_fd(fd, f);
}

/* Connections to listeners and to bound datagram sockets; datagrams re-sent;
 * queues of pairs with fds in flight. */
static int unix_finish(struct rst_ctx *r)
{
	int err = 0;
	nstash = 0;
	for (size_t i = 0; i < r->files->n_files && !err; i++) {
		ImgFile *f = r->files->files[i], *pf;
		int pi = -1;
		if (f->kind != FK_UNIX || f->unix_sock->state == ST_LISTEN || !mutual(r, f->unix_sock, &pf) ||
		    !(queue_has_fds(f->unix_sock) || queue_has_fds(pf->unix_sock)))
			continue;
		by_ino(r, pf->unix_sock->ino, &pi);
		/* each end of such a pair: send its queue from the other end, then shut down */
		bufs(r->file_fd[i], f->unix_sock, true);
		if ((err = requeue(r, r->file_fd[pi], f->unix_sock, NULL, 0)) < 0)
			log_err("restore: unix socket %u: re-queue with fds in flight: %s", f->unix_sock->ino,
				strerror(-err));
		bufs(r->file_fd[i], f->unix_sock, false);
		if ((size_t)pi < i) {   /* both queues are in: now the shutdowns */
			apply_shutdown(r->file_fd[i], f->unix_sock, pf->unix_sock);
			apply_shutdown(r->file_fd[pi], pf->unix_sock, f->unix_sock);
		}
	}
	for (size_t i = 0; i < r->files->n_files && !err; i++) {
		ImgFile *l = r->files->files[i];
		if (l->kind != FK_UNIX || l->unix_sock->state != ST_LISTEN)
			continue;
		struct sockaddr_un a;
		socklen_t al = mkaddr(l->unix_sock, &a);
		for (size_t k = 0; k < l->unix_sock->n_icons && !err; k++) {
			int ci;
			ImgFile *c = by_ino(r, l->unix_sock->icons[k], &ci);
			if (!c) {
				log_err("restore: unix listener %u: pending client %u missing in image", l->unix_sock->ino,
					l->unix_sock->icons[k]);
				return -EINVAL;
			}
			int fd = r->file_fd[ci], fl = fcntl(fd, F_GETFL);
			fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
			if (connect(fd, (struct sockaddr *)&a, al) < 0) {
				err = -errno;
				log_err("restore: unix socket %u: connect to listener %u: %s", c->unix_sock->ino,
					l->unix_sock->ino, strerror(errno));
			}
			fcntl(fd, F_SETFL, fl);
			if (!err)
				apply_shutdown(fd, c->unix_sock, NULL);
		}
	}
	/* datagram sockets connected one way, and queued datagrams of unpaired sockets */
	for (size_t i = 0; i < r->files->n_files && !err; i++) {
		ImgFile *f = r->files->files[i];
		if (f->kind != FK_UNIX || f->unix_sock->type != SOCK_DGRAM || mutual(r, f->unix_sock, NULL))
			continue;
		ImgUnix *x = f->unix_sock;
		int pi;
		ImgFile *p = by_ino(r, x->peer, &pi);
		if (x->peer && p) {
			struct sockaddr_un a;
			socklen_t al = mkaddr(p->unix_sock, &a);
			if (!p->unix_sock->has_name || connect(r->file_fd[i], (struct sockaddr *)&a, al) < 0) {
				log_err("restore: unix datagram socket %u: connect to %u: %s", x->ino, p->unix_sock->ino,
					p->unix_sock->has_name ? strerror(errno) : "peer has no name");
				return -EINVAL;
			}
		}
		if (x->n_rqueue) {
			/* a connected datagram socket takes datagrams only from its peer */
			struct sockaddr_un a;
			socklen_t al = mkaddr(x, &a);
			int tmp = x->peer && p ? -1 : socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			int from = x->peer && p ? r->file_fd[pi] : tmp;
			bufs(r->file_fd[i], x, true);
			if (from < 0 || !x->has_name || (err = requeue(r, from, x, &a, al)) < 0) {
				log_err("restore: unix datagram socket %u: re-queue %zu messages: %s", x->ino, x->n_rqueue,
					strerror(err ? -err : EINVAL));
				err = err ? err : -EINVAL;
			}
			bufs(r->file_fd[i], x, false);
			if (tmp >= 0)
				close(tmp);
		}
	}
	return err;
}

const struct fd_kind fdkind_unix = {
	.name = "unix socket",
	.match = unix_match,
	.dump = unix_dump,
	.kinds = { FK_UNIX },
	.restore = unix_restore,
	.finish = unix_finish,
};
