/*
 * fdkinds.c — the one table of file kinds (see fdkind.h).  Order matters
 * only where two kinds could match the same file: specific kinds first.
 */
#include "agent/engine/fdkind.h"

extern const struct fd_kind fdkind_pipe, fdkind_regfile, fdkind_inet;
extern const struct fd_kind fdkind_eventfd, fdkind_epoll, fdkind_timerfd, fdkind_signalfd,
	fdkind_unix, fdkind_pidfd, fdkind_inotify, fdkind_memfd,
	fdkind_shmfile, fdkind_sysv, fdkind_pty, fdkind_mounts, fdkind_locks;

const struct fd_kind *const fd_kinds[] = {
	&fdkind_mounts,    /* mounts.c: the pod's own mounts, made before any file is reopened (hooks only) */
	&fdkind_pipe,      /* pipe.c: anonymous pipes and FIFOs with their data */
	&fdkind_pty,       /* pty.c: ptys of the pod's devpts (before regfile: they are char devices) */
	&fdkind_regfile,   /* regfile.c: regular files, directories, a few devices */
	&fdkind_eventfd,   /* eventfd.c: counter, semaphore */
	&fdkind_timerfd,   /* timerfd.c: clock, time left, interval, ticks */
	&fdkind_signalfd,  /* signalfd.c: mask */
	&fdkind_unix,      /* unix.c: AF_UNIX sockets, pairs, listeners, queued data */
	&fdkind_pidfd,     /* pidfd.c: pidfd of a pod process (re-opened in the late phase) */
	&fdkind_inotify,   /* inotify.c: watches by path, same wds */
	&fdkind_memfd,     /* memfd.c: memfds and deleted-but-open files, by content */
	&fdkind_shmfile,   /* shmfile.c: content of the pod's /dev/shm files (hooks only) */
	&fdkind_epoll,     /* epoll.c: interest list (re-added once all files exist) */
	&fdkind_inet,      /* inet.c: TCP and UDP sockets (netstate) */
	&fdkind_sysv,      /* sysv*.c: SysV IPC of the pod's IPC namespace (hooks only) */
	&fdkind_locks,     /* locks.c: file locks (hooks only; taken again in restore.c restore_process) */
	NULL,
};
