/*
 * bpf.c — the BPF reader of TCP state: loads bpf/tcpstate.bpf.c (embedded
 * in the binary by bpf_obj.S) once, before the pod is frozen, and reads
 * the records of every TCP socket this process holds with one iterator
 * read (fast.c uses them instead of ~20 IP/TCP-level getsockopt calls per
 * connection).  See docs/netstate.md, "BPF reader".
 *
 * Anything that keeps it from working (ZAPC_NETSTATE_NO_BPF=1, no BTF, no
 * kernel config for CONFIG_HZ, EPERM, a verifier refusal, an old kernel
 * without task-file iterators or their pid filter) leaves the syscall path
 * in force, with one log_info line saying why.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "lib/log.h"
#include "netstate/bpf_rec.h"
#include "netstate/internal.h"

_Static_assert(sizeof(struct ns_bpf_rec) == 216, "ns_bpf_rec: the BPF program (same header, BPF target) writes 216 bytes");

extern const unsigned char ns_bpf_obj_start[], ns_bpf_obj_end[];   /* bpf_obj.S */
static char last_warn[160];         /* libbpf's last warning: the reason of a failure */

/*
 * libbpf is opened with dlopen when the reader is first prepared, not
 * linked: linked, libbpf.so (+ libelf, libz) added ~4300 relocations and
 * 2-7 ms to every start of every program linking libnetstate (the engine:
 * each checkpoint and restore), where only a dump with sockets uses it.
 */
static struct {
	void *h;
	libbpf_print_fn_t (*set_print)(libbpf_print_fn_t fn);
	struct bpf_object *(*open_mem)(const void *buf, size_t len, const struct bpf_object_open_opts *o);
	int (*load)(struct bpf_object *obj);
	struct bpf_program *(*find_prog)(const struct bpf_object *obj, const char *name);
	int (*prog_fd)(const struct bpf_program *p);
	void (*close)(struct bpf_object *obj);
	int (*link_create)(int prog_fd, int target_fd, enum bpf_attach_type type, const struct bpf_link_create_opts *o);
	int (*iter_create)(int link_fd);
	int (*info_by_fd)(int fd, void *info, __u32 *len);
} lb;

static int lb_open(void)
{
	void *h;

	if (lb.h)
		return 0;
	if (!(h = dlopen("libbpf.so.1", RTLD_NOW | RTLD_LOCAL))) {
		snprintf(last_warn, sizeof(last_warn), "%s", dlerror());
		return -ENOENT;
	}
#define SYM(f, name) if (!(lb.f = (typeof(lb.f))dlsym(h, name))) goto missing
	SYM(set_print, "libbpf_set_print");
	SYM(open_mem, "bpf_object__open_mem");
	SYM(load, "bpf_object__load");
	SYM(find_prog, "bpf_object__find_program_by_name");
	SYM(prog_fd, "bpf_program__fd");
	SYM(close, "bpf_object__close");
	SYM(link_create, "bpf_link_create");
	SYM(iter_create, "bpf_iter_create");
	SYM(info_by_fd, "bpf_obj_get_info_by_fd");
#undef SYM
	lb.h = h;
	return 0;
missing:
	snprintf(last_warn, sizeof(last_warn), "libbpf.so.1: %s", dlerror());
	dlclose(h);
	return -ENOENT;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int state;                   /* 0 not tried, 1 ready, -errno failed */
static struct bpf_object *obj;
static int prog_fd = -1;            /* loaded here (in obj) or inherited */
static int link_fd = -1;
static pid_t link_pid;              /* the process the link's iterator walks */
static double load_ms;
static int enabled = 1;             /* netstate_capture_use_bpf */

static int print_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = 0;
	if (level == LIBBPF_WARN && n)
		snprintf(last_warn, sizeof(last_warn), "%s", line);
	log_debug("libbpf: %s", line);
	return 0;
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Attach the iterator to this process's files (task iterators take a pid
 * filter since Linux 6.1; without one it would walk every task). */
static int attach(void)
{
	union bpf_iter_link_info li;
	LIBBPF_OPTS(bpf_link_create_opts, o, .iter_info = &li, .iter_info_len = sizeof(li));
	int fd;

	memset(&li, 0, sizeof(li));
	li.task.pid = (__u32)getpid();
	if ((fd = lb.link_create(prog_fd, 0, BPF_TRACE_ITER, &o)) < 0)
		return -errno;
	if (link_fd >= 0)
		close(link_fd);
	link_fd = fd;
	link_pid = getpid();
	return 0;
}

/* A program loaded by a long-lived parent (NETSTATE_BPF_PROG_FD_ENV names
 * its fd): ours if it is a tracing program called ns_tcpstate (records
 * of another layout are refused by their magic).  Saves the ~0.1-0.3 s of
 * BTF parsing a load costs in every process (docs/netstate.md). */
static int adopt(const char *env)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	char *end;
	long fd = strtol(env, &end, 10);

	memset(&info, 0, sizeof(info));
	if (*end || fd < 0 || fd > 65535 || lb.info_by_fd((int)fd, &info, &len) < 0)
		return -EBADF;
	if (info.type != BPF_PROG_TYPE_TRACING || strcmp(info.name, "ns_tcpstate"))
		return -EBADF;
	if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0)   /* not for the processes we start */
		return -errno;
	prog_fd = (int)fd;
	return 0;
}

static int load(void)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = "zapc_tcpstate");
	int r;

	if (getenv("ZAPC_NETSTATE_NO_BPF") && strcmp(getenv("ZAPC_NETSTATE_NO_BPF"), "0")) {
		log_info("netstate: BPF reader off (ZAPC_NETSTATE_NO_BPF): TCP state by syscalls");
		return -ECANCELED;
	}
	double t0 = now_ms();   /* the load time includes the dlopen */
	if ((r = lb_open()))
		goto fail;
	lb.set_print(print_libbpf);
	const char *env = getenv(NETSTATE_BPF_PROG_FD_ENV);
	if (env && adopt(env) == 0 && attach() == 0) {
		load_ms = now_ms() - t0;
		log_debug("netstate: BPF reader inherited (fd %d), attached in %.2f ms", prog_fd, load_ms);
		return 0;
	}
	prog_fd = -1;
	obj = lb.open_mem(ns_bpf_obj_start, (size_t)(ns_bpf_obj_end - ns_bpf_obj_start), &oo);
	if (!obj) {
		r = errno ? -errno : -EINVAL;
		obj = NULL;
		goto fail;
	}
	if ((r = lb.load(obj)))
		goto fail;
	struct bpf_program *p = lb.find_prog(obj, "ns_tcpstate");
	prog_fd = p ? lb.prog_fd(p) : -1;
	if (prog_fd < 0) {
		r = -ENOENT;
		goto fail;
	}
	if ((r = attach()))
		goto fail;
	load_ms = now_ms() - t0;
	log_debug("netstate: BPF reader loaded in %.2f ms", load_ms);
	return 0;
fail:
	log_info("netstate: BPF reader unavailable (%s%s%s): TCP state by syscalls", strerror(r < 0 ? -r : r),
		 last_warn[0] ? "; libbpf: " : "", last_warn);
	if (obj)
		lb.close(obj);
	obj = NULL;
	prog_fd = -1;
	return r < 0 ? r : -r;
}

int netstate_capture_use_bpf(int on)
{
	return __atomic_exchange_n(&enabled, !!on, __ATOMIC_RELAXED);
}

int ns_bpf_prepare(void)
{
	int r;

	if (!__atomic_load_n(&enabled, __ATOMIC_RELAXED))
		return -ENOTSUP;
	pthread_mutex_lock(&lock);
	if (!state)
		state = load() ? -1 : 1;
	if (state == 1 && link_pid != getpid() && (r = attach()) < 0) {
		log_info("netstate: BPF reader: attach in pid %d: %s: TCP state by syscalls", (int)getpid(),
			 strerror(-r));
		state = -1;
	}
	r = state == 1 ? 0 : -ENOTSUP;
	pthread_mutex_unlock(&lock);
	return r;
}

int ns_bpf_ready(void)
{
	int r = -ENOTSUP;

	if (!__atomic_load_n(&enabled, __ATOMIC_RELAXED))
		return r;
	pthread_mutex_lock(&lock);
	if (state == 1) {
		r = 0;
		if (link_pid != getpid() && (r = attach()) < 0) {
			log_info("netstate: BPF reader: attach in pid %d: %s: TCP state by syscalls", (int)getpid(),
				 strerror(-r));
			state = -1;
		}
	}
	pthread_mutex_unlock(&lock);
	return r < 0 ? -ENOTSUP : 0;
}

int netstate_bpf_prog_fd(void)
{
	return ns_bpf_prepare() == 0 ? prog_fd : -1;
}

int netstate_capture_bpf(double *ms)
{
	int on = ns_bpf_prepare() == 0;

	if (ms)
		*ms = load_ms;
	return on;
}

int ns_bpf_buf_init(struct ns_bpf_buf *b, size_t cap)
{
	if (b->cap >= cap)
		return 0;
	void *p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	memset(p, 0, cap);   /* touched now, not while the pod is frozen */
	b->data = p;
	b->cap = cap;
	return 0;
}

int ns_bpf_read(struct ns_bpf_buf *b)
{
	int fd, r = 0;
	ssize_t n;

	b->len = 0;
	if (ns_bpf_ready())
		return -ENOTSUP;
	if (getenv("ZAPC_NETSTATE_BPF_BREAK"))   /* tests: a reader that fails in the middle of a capture */
		return -EIO;
	if ((fd = lb.iter_create(link_fd)) < 0) {
		r = -errno;
		log_info("netstate: BPF reader: iterator: %s: TCP state by syscalls", strerror(-r));
		return r;
	}
	for (;;) {
		if (b->cap - b->len < 8 * sizeof(struct ns_bpf_rec) && (r = ns_bpf_buf_init(b, b->cap * 2 + 65536)))
			break;
		n = read(fd, (char *)b->data + b->len, b->cap - b->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			log_info("netstate: BPF reader: read: %s: TCP state by syscalls", strerror(-r));
			break;
		}
		if (n == 0)
			break;
		b->len += (size_t)n;
	}
	close(fd);
	if (!r && b->len % sizeof(struct ns_bpf_rec))
		r = -EPROTO;
	return r ? r : (int)(b->len / sizeof(struct ns_bpf_rec));
}

/* The iterator walks the fd table in ascending order: binary search. */
const struct ns_bpf_rec *ns_bpf_find(const struct ns_bpf_buf *b, int fd, uint64_t ino)
{
	const struct ns_bpf_rec *v = b->data;
	size_t lo = 0, hi = b->len / sizeof(*v);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid].fd < fd)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < b->len / sizeof(*v) && v[lo].fd == fd && v[lo].magic == NS_BPF_REC_MAGIC && (!ino || v[lo].ino == ino))
		return &v[lo];
	return NULL;
}
