/*
 * pty.c — pseudo-terminals of the pod's own devpts, and controlling ttys.
 *
 * A pod has its own devpts instance on /dev/pts with /dev/ptmx bound to its
 * ptmx (agent/pod_mounts.c).  Dump: a master (the devpts "ptmx" inode) is
 * saved with its index (TIOCGPTN), the slave's termios and window size
 * (termios ioctls on a master act on the slave), lock and packet mode; a
 * slave (/dev/pts/N) with its index.  Both must belong to the pod's devpts
 * (st_dev of the init's /dev/pts) and every open slave's master must be in
 * the pod.  A session leader whose controlling tty is one of them keeps it
 * (tty_nr of /proc/PID/stat) with the tty's foreground process group
 * (tpgid, mapped to a pod pgid).
 *
 * Restore: the pod's devpts is created by the engine as a detached mount
 * (fsopen("devpts"): every devpts mount is a new instance since 4.7), which
 * the pod's init attaches at /dev/pts (restore.c).  devpts has no way to ask
 * for an index (there is no ns_last_pty; the index is the lowest free one,
 * ida_alloc_max in devpts_new_index), and the instance is fresh: ptmx is
 * opened until the wanted index comes out, the fillers are closed at the
 * end.  Slaves are reopened by name in the instance.  The session leader
 * opens its slave and takes it as controlling tty (TIOCSCTTY) in its early
 * phase; the foreground group is set by an injected TIOCSPGRP (only a
 * process whose controlling tty it is may, and SIGTTOU stays blocked then).
 *
 * A file of /dev/tty (the opener's controlling tty) is saved as the slave
 * of the process's controlling pty and restored as a file of that slave:
 * reads, writes and ioctls go to the same terminal; fstat shows the slave.
 *
 * The slave's output the master has not read yet is kept (read at dump and
 * put back at once; written again at restore, see save_output).  Not kept:
 * input not read by the slave side (including a partly typed canonical
 * line: there is no way to read it back without consuming it as the
 * program would), output queued in packet mode.  Exclusive mode (TIOCEXCL), the master's own
 * termios, ptys of the node's devpts (opened through the node's /dev/ptmx
 * or held from outside) are refused at dump.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

#define PTY_INDEX_MAX 4096       /* kernel.pty.max default */
#define OUTPUT_MAX (1u << 20)    /* a master's read queue is far smaller (N_TTY_BUF_SIZE + flip buffers) */
#define UNIX98_PTY_SLAVE_MAJOR 136

static int pts_mnt = -1;         /* restore: the pod's devpts, detached until init mounts it */
static int *masters;             /* restore: engine copy of each master by index (PTY_INDEX_MAX) */

int pty_devpts_fd(void)
{
	return pts_mnt;
}

static bool is_slave(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && major(st->st_rdev) >= UNIX98_PTY_SLAVE_MAJOR &&
	       major(st->st_rdev) < UNIX98_PTY_SLAVE_MAJOR + 8;
}

static bool is_master(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && major(st->st_rdev) == 5 && minor(st->st_rdev) == 2;
}

/* /dev/tty: opens the opener's controlling tty */
static bool is_dev_tty(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && major(st->st_rdev) == 5 && minor(st->st_rdev) == 0;
}

static uint32_t slave_index(const struct stat *st)
{
	return (major(st->st_rdev) - UNIX98_PTY_SLAVE_MAJOR) * 256 + minor(st->st_rdev);
}

static int pty_match(const struct fd_src *s)
{
	return is_slave(&s->st) || is_master(&s->st) || is_dev_tty(&s->st);
}

/* tty_nr and tpgid of /proc/PID/stat (host numbers) */
static int stat_tty(pid_t pid, unsigned long long *tty, int *tpgid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	char *st = read_file_str(path, NULL), *c = st ? strrchr(st, ')') : NULL;
	int n = c ? sscanf(c + 1, " %*c %*d %*d %*d %llu %d", tty, tpgid) : 0;
	free(st);
	return n == 2 ? 0 : -EIO;
}

/* st_dev of the pod's devpts */
static int pod_devpts(pid_t init, dev_t *dev)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof(path), "/proc/%d/root/dev/pts", init);
	if (stat(path, &st) < 0)
		return -errno;
	*dev = st.st_dev;
	return 0;
}

static int save_output(const struct fd_src *s, ImgFile *f, int pkt);

static int pty_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	dev_t pts = 0;
	if (is_dev_tty(&s->st)) {
		/* the file is the controlling tty the process had when it opened
		 * /dev/tty; taken to be its controlling tty now, and restored as
		 * a file of that pty's slave */
		unsigned long long tty = 0;
		int tpgid;
		struct stat ct = { .st_mode = S_IFCHR };
		if (stat_tty(s->p->hpid, &tty, &tpgid) == 0)
			ct.st_rdev = (dev_t)tty;
		if (!tty || !is_slave(&ct)) {
			log_err("dump: pid %u fd %d: /dev/tty of a process whose controlling terminal is not a pty of the pod: not supported",
				s->p->tree->pid, s->fd);
			return -ENOTSUP;
		}
		f->kind = FK_PTY_SLAVE;
		f->path = xstrdup("/dev/tty");
		SETOPT(f, pty_index, slave_index(&ct));
		return 0;
	}
	if (pod_devpts(d->procs[0].hpid, &pts) < 0 || s->st.st_dev != pts) {
		log_err("dump: pid %u fd %d: %s is a pty of the node's devpts, not the pod's: not supported",
			s->p->tree->pid, s->fd, s->link);
		return -ENOTSUP;
	}
	if (is_slave(&s->st)) {
		f->kind = FK_PTY_SLAVE;
		SETOPT(f, pty_index, slave_index(&s->st));
		return 0;
	}
	int n = -1, locked = 0, pkt = 0;
	struct termios t;
	struct winsize ws;
	if (ioctl(s->lfd, TIOCGPTN, &n) < 0 || tcgetattr(s->lfd, &t) < 0 || ioctl(s->lfd, TIOCGWINSZ, &ws) < 0 ||
	    ioctl(s->lfd, TIOCGPTLCK, &locked) < 0 || ioctl(s->lfd, TIOCGPKT, &pkt) < 0) {
		log_err("dump: pid %u fd %d: pty master: %s", s->p->tree->pid, s->fd, strerror(errno));
		return -errno;
	}
	f->kind = FK_PTY_MASTER;
	SETOPT(f, pty_index, (uint32_t)n);
	SETOPT(f, termios, ((ProtobufCBinaryData){ sizeof(t), xcalloc(1, sizeof(t)) }));
	memcpy(f->termios.data, &t, sizeof(t));
	SETOPT(f, winsize, ((ProtobufCBinaryData){ sizeof(ws), xcalloc(1, sizeof(ws)) }));
	memcpy(f->winsize.data, &ws, sizeof(ws));
	SETOPT(f, pty_locked, locked != 0);
	SETOPT(f, pty_packet, pkt != 0);
	return save_output(s, f, pkt);
}

/* Write bytes into the master's read queue, as the slave's output with no
 * output processing (OPOST off for the time of the write: ONLCR and the
 * like were applied when the program wrote them).  master: an fd of the
 * master; the termios ioctls on it act on the slave. */
static int queue_output(int master, const uint8_t *data, size_t len)
{
	struct termios t, raw;
	int s = ioctl(master, TIOCGPTPEER, O_WRONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK), err = 0;
	if (s < 0 || tcgetattr(master, &t) < 0) {
		err = -errno;
		goto out;
	}
	raw = t;
	raw.c_oflag &= ~(tcflag_t)OPOST;
	if (tcsetattr(master, TCSANOW, &raw) < 0) {
		err = -errno;
		goto out;
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = write(s, data + off, len - off);
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)n;
	}
	if (tcsetattr(master, TCSANOW, &t) < 0 && !err)
		err = -errno;
out:
	if (s >= 0)
		close(s);
	return err;
}

/* The slave's output the master has not read: read from our copy of the
 * master (the pod is stopped) and put back at once the same way the restore
 * will, so the pod's queue is what it was whether the dump goes on, fails
 * or leaves the pod running.  Not in packet mode (a read there starts with
 * a status byte). */
static int save_output(const struct fd_src *s, ImgFile *f, int pkt)
{
	int n = 0;
	if (pkt || ioctl(s->lfd, FIONREAD, &n) < 0 || n <= 0)
		return 0;
	if ((unsigned)n > OUTPUT_MAX) {
		log_err("dump: pid %u fd %d: pty master with %d bytes unread: not supported", s->p->tree->pid, s->fd, n);
		return -ENOTSUP;
	}
	uint8_t *buf = xcalloc(1, (size_t)n + 1);
	ssize_t got = read(s->lfd, buf, (size_t)n);    /* n are there: does not block */
	if (got <= 0) {
		free(buf);
		return got < 0 ? -errno : 0;
	}
	SETOPT(f, pty_output, ((ProtobufCBinaryData){ (size_t)got, buf }));
	int err = queue_output(s->lfd, buf, (size_t)got);
	if (err < 0)
		log_err("dump: pid %u fd %d: put back the pty's unread output: %s", s->p->tree->pid, s->fd,
			strerror(-err));
	return err;
}

static ImgFile *master_of(ImgFiles *fs, uint32_t idx)
{
	for (size_t i = 0; i < fs->n_files; i++)
		if (fs->files[i]->kind == FK_PTY_MASTER && fs->files[i]->pty_index == idx)
			return fs->files[i];
	return NULL;
}

/* the tpgid field of /proc/PID/stat is a host pgid: the pod's is that of a
 * pod process in that group */
static uint32_t pod_pgid(struct dump_ctx *d, pid_t host_pgid)
{
	for (int i = 0; i < d->nprocs; i++)
		if (!d->procs[i].tree->zombie && getpgid(d->procs[i].hpid) == host_pgid)
			return d->procs[i].tree->pgid;
	return 0;
}

/* objects.c dump hook: the controlling tty of a session leader */
int pty_ctty_dump(struct dump_ctx *d, struct dproc *p)
{
	if (p->tree->sid != p->tree->pid)
		return 0;
	unsigned long long tty = 0;
	int tpgid = -1;
	if (stat_tty(p->hpid, &tty, &tpgid) < 0) {
		log_err("dump: pid %u: cannot read its controlling tty", p->tree->pid);
		return -EIO;
	}
	if (!tty)
		return 0;
	struct stat fake = { .st_mode = S_IFCHR, .st_rdev = (dev_t)tty };
	if (!is_slave(&fake)) {
		log_err("dump: pid %u: controlling terminal %u:%u is not a pty of the pod: not supported",
			p->tree->pid, major(tty), minor(tty));
		return -ENOTSUP;
	}
	SETOPT(p->core, ctty_index, slave_index(&fake));
	uint32_t fg = tpgid > 0 ? pod_pgid(d, tpgid) : 0;
	if (fg)
		SETOPT(p->core, tty_fg_pgid, fg);
	return 0;
}

static int pty_dump_finish(struct dump_ctx *d)
{
	ImgFiles *fs = d->files;
	for (size_t i = 0; i < fs->n_files; i++) {
		ImgFile *f = fs->files[i];
		if (f->kind == FK_PTY_SLAVE && !master_of(fs, f->pty_index)) {
			log_err("dump: /dev/pts/%u is open in the pod but its master is not (held outside the pod): not supported",
				f->pty_index);
			return -ENOTSUP;
		}
	}
	for (int i = 0; i < d->nprocs; i++) {
		ImgProcCore *c = d->procs[i].core;
		if (c && c->has_ctty_index && !master_of(fs, c->ctty_index)) {
			log_err("dump: pid %u: controlling terminal /dev/pts/%u has its master outside the pod: not supported",
				d->procs[i].tree->pid, c->ctty_index);
			return -ENOTSUP;
		}
	}
	return 0;
}

static bool needs_pty(struct rst_ctx *r)
{
	for (size_t i = 0; i < r->files->n_files; i++)
		if (r->files->files[i]->kind == FK_PTY_MASTER || r->files->files[i]->kind == FK_PTY_SLAVE)
			return true;
	return false;
}

static int make_devpts(void)
{
	int fs = fsopen("devpts", FSOPEN_CLOEXEC), m = -1;
	if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "ptmxmode", "0666", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0620", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "gid", "5", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ||
	    (m = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC)) < 0) {
		int e = errno;
		log_err("restore: the pod's devpts: %s", strerror(e));
		if (fs >= 0)
			close(fs);
		return -e;
	}
	close(fs);
	return m;
}

/* fd kind prepare: the devpts instance and every master, at its index */
static int pty_prepare(struct rst_ctx *r)
{
	if (!needs_pty(r))
		return 0;
	int m = make_devpts();
	if (m < 0)
		return m;
	if ((pts_mnt = inv_move(r, m)) < 0)
		return -errno;
	masters = xcalloc(PTY_INDEX_MAX, sizeof(*masters));
	int *fill = xcalloc(PTY_INDEX_MAX, sizeof(*fill)), nfill = 0, err = 0;
	for (int i = 0; i < PTY_INDEX_MAX; i++)
		masters[i] = -1;
	/* the wanted indexes, lowest first (each new master gets the lowest free one) */
	for (uint32_t want = 0; want < PTY_INDEX_MAX && !err; want++) {
		ImgFile *f = master_of(r->files, want);
		if (!f)
			continue;
		for (;;) {
			int fd = openat(pts_mnt, "ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC), n = -1;
			if (fd < 0 || ioctl(fd, TIOCGPTN, &n) < 0 || n < 0 || n >= PTY_INDEX_MAX || (uint32_t)n > want) {
				log_err("restore: pty %u: open ptmx: %s", want, fd < 0 ? strerror(errno) : "index taken");
				if (fd >= 0)
					close(fd);
				err = -EIO;
				break;
			}
			if ((uint32_t)n == want) {
				masters[want] = fd;
				break;
			}
			fill[nfill++] = fd;
		}
		if (err)
			break;
		int unlock = 0, fd = masters[want];
		struct termios t;
		if (f->has_termios && f->termios.len == sizeof(t)) {
			memcpy(&t, f->termios.data, sizeof(t));
			if (tcsetattr(fd, TCSANOW, &t) < 0)
				err = -errno;
		}
		if (!err && f->has_winsize && f->winsize.len == sizeof(struct winsize) &&
		    ioctl(fd, TIOCSWINSZ, f->winsize.data) < 0)
			err = -errno;
		int pkt = f->has_pty_packet && f->pty_packet;
		if (!err && (ioctl(fd, TIOCSPTLCK, &unlock) < 0 || (pkt && ioctl(fd, TIOCPKT, &pkt) < 0)))
			err = -errno;
		/* unlocked: the slave (TIOCGPTPEER) can be opened to queue the output */
		if (!err && f->has_pty_output && f->pty_output.len <= OUTPUT_MAX &&
		    (err = queue_output(fd, f->pty_output.data, f->pty_output.len)) < 0) {
			log_err("restore: pty %u: unread output: %s", want, strerror(-err));
			break;
		}
		if (err)
			log_err("restore: pty %u: settings: %s", want, strerror(-err));
	}
	for (int i = 0; i < nfill; i++)
		close(fill[i]);
	free(fill);
	return err;
}

static int pty_restore(struct rst_ctx *r, ImgFile *f)
{
	if (!f->has_pty_index || f->pty_index >= PTY_INDEX_MAX || !masters || masters[f->pty_index] < 0) {
		log_err("restore: file %u: pty without its master in the image", f->id);
		return -EINVAL;
	}
	int fd;
	if (f->kind == FK_PTY_MASTER) {
		fd = fcntl(masters[f->pty_index], F_DUPFD_CLOEXEC, 0);
	} else {
		char name[16];
		snprintf(name, sizeof(name), "%u", f->pty_index);
		fd = openat(pts_mnt, name, (int)(f->flags & (O_ACCMODE)) | O_NOCTTY | O_CLOEXEC);
	}
	if (fd < 0) {
		log_err("restore: file %u: pty %u: %s", f->id, f->pty_index, strerror(errno));
		return -errno;
	}
	return rst_status_flags(fd, f->flags);
}

/* every description exists: lock again what was locked, drop our copies */
static int pty_finish(struct rst_ctx *r)
{
	for (int i = 0; masters && i < PTY_INDEX_MAX; i++) {
		if (masters[i] < 0)
			continue;
		ImgFile *f = master_of(r->files, (uint32_t)i);
		int lock = 1;
		if (f && f->has_pty_locked && f->pty_locked)
			ioctl(masters[i], TIOCSPTLCK, &lock);
		close(masters[i]);
		masters[i] = -1;
	}
	return 0;
}

/* objects.c early hook, in the task: a session leader takes its tty back */
int pty_restore_early(struct rst_ctx *r, struct rproc *p)
{
	(void)r;
	if (!p->core->has_ctty_index)
		return 0;
	char name[16];
	snprintf(name, sizeof(name), "%u", p->core->ctty_index);
	int fd = pts_mnt < 0 ? -1 : openat(pts_mnt, name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) < 0) {
		int e = errno;
		log_err("restore: pid %u: controlling terminal /dev/pts/%s: %s", p->tree->pid, name, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	close(fd);
	return 0;
}

/* objects.c late hook: the foreground process group, set by the session
 * leader itself (TIOCSPGRP on its inventory fd of the master) */
int pty_restore_late(struct rst_ctx *r, struct rproc *p)
{
	if (!p->core->has_ctty_index || !p->core->has_tty_fg_pgid)
		return 0;
	ImgFile *m = master_of(r->files, p->core->ctty_index);
	int fd = m ? inv_fd_for_file(r, m->id) : -1;
	if (fd < 0)
		return -EINVAL;
	int32_t pg = (int32_t)p->core->tty_fg_pgid;
	uint64_t at = r->scratch_addr + 2 * PAGE;
	int err = rq_flush(r, p);     /* injected by itself below */
	if (err == 0)
		err = mem_write(p->hpid, at, &pg, sizeof(pg));
	if (err < 0)
		return err;
	long x = inj_call(&p->inj, "restore: tty foreground group", SYS_ioctl, (uint64_t)fd, TIOCSPGRP, at, 0, 0, 0);
	return x < 0 ? (int)x : 0;
}

const struct fd_kind fdkind_pty = {
	.name = "pty",
	.match = pty_match,
	.dump = pty_dump,
	.kinds = { FK_PTY_MASTER, FK_PTY_SLAVE },
	.prepare = pty_prepare,
	.restore = pty_restore,
	.finish = pty_finish,
	.dump_finish = pty_dump_finish,
};
