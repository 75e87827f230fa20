/*
 * engine.h — shared model of the checkpoint/restart engine (internal).
 *
 * Dump builds the protobuf records of proto/image.proto directly (they are the
 * in-memory model too); restore reads them back.  Each kind of kernel object
 * lives in its own file with a dump and a restore side, listed in the one
 * table in objects.c.  Restore runs in two places:
 *   - "early": inside the freshly forked task, which still runs engine code
 *     (sessions, fds, cwd, umask, ... — things easiest done by the task itself);
 *   - "late": from the engine, by syscalls injected into the ptrace-stopped
 *     task once its address space is the image's (memory, threads, signals,
 *     registers, creds).
 */
#ifndef ZAPC_ENGINE_H
#define ZAPC_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/user.h>

#include "agent/engine/inject.h"
#include "lib/image.h"
#include "proto/image.pb-c.h"

/* short names for the proto enums */
#define FK_REG    FILE_KIND__FK_REG
#define FK_DIR    FILE_KIND__FK_DIR
#define FK_CHR    FILE_KIND__FK_CHR
#define FK_PIPE   FILE_KIND__FK_PIPE
#define FK_FIFO   FILE_KIND__FK_FIFO
#define FK_MAPPED FILE_KIND__FK_MAPPED
#define FK_EVENTFD  FILE_KIND__FK_EVENTFD
#define FK_UNIX     FILE_KIND__FK_UNIX
#define FK_EPOLL    FILE_KIND__FK_EPOLL
#define FK_TIMERFD  FILE_KIND__FK_TIMERFD
#define FK_SIGNALFD FILE_KIND__FK_SIGNALFD
#define FK_PIDFD    FILE_KIND__FK_PIDFD
#define FK_INOTIFY  FILE_KIND__FK_INOTIFY
#define FK_MEMFD    FILE_KIND__FK_MEMFD
#define FK_DELETED  FILE_KIND__FK_DELETED
#define FK_PTY_MASTER FILE_KIND__FK_PTY_MASTER
#define FK_PTY_SLAVE  FILE_KIND__FK_PTY_SLAVE
#define VK_ANON   VMA_KIND__VK_ANON
#define VK_FILE   VMA_KIND__VK_FILE
#define VK_SHM    VMA_KIND__VK_SHM
#define VK_VDSO   VMA_KIND__VK_VDSO
#define VK_VVAR   VMA_KIND__VK_VVAR
#define VK_VCLOCK VMA_KIND__VK_VCLOCK
#define VK_VSYSCALL VMA_KIND__VK_VSYSCALL
#define VK_SYSV   VMA_KIND__VK_SYSV

#define ENGINE_VERSION "zapc-engine 0.1"
#define PAGE 4096ull

/* Record types of the engine (the payload meaning; the container is lib/image). */
enum {
	REC_INFO = 1,
	REC_TREE = 2,
	REC_FILES = 3,
	REC_SHM_PAGES = 4,
	REC_PROC = 5,
	REC_PAGES = 6,
	REC_THREAD = 7,
	/* incremental / indexed images (chain.c, docs/incremental.md) */
	REC_PARENT = 20,
	REC_ZPAGES = 21,
	REC_PAGE_INDEX = 22,
};
const char *rec_name(uint32_t type);

/* Prefix of REC_PAGES / REC_SHM_PAGES payloads, then npages * 4096 raw bytes. */
struct page_prefix {
	uint64_t addr;     /* vaddr (PAGES) or byte offset in the shm object (SHM_PAGES) */
	uint32_t npages;
	uint32_t owner;    /* pod pid (PAGES) or shm id (SHM_PAGES) */
};
#define PAGES_PER_RECORD 4096u   /* 16 MiB of data per record at most */

/* Prefix of REC_ZPAGES payloads, then data_len bytes: raw pages, or one zstd
 * frame of npages * 4096 bytes when flags has ZP_ZSTD. */
struct zpage_prefix {
	uint64_t addr;
	uint32_t npages;
	uint32_t owner;    /* pod pid */
	uint32_t flags;
	uint32_t data_len;
};
#define ZP_ZSTD 1u

#define SETOPT(m, f, v) do { (m)->has_##f = 1; (m)->f = (v); } while (0)

/* Limits applied to every image (hostile input). */
#define MAX_PROCS    4096
#define MAX_THREADS  4096
#define MAX_VMAS     65530
#define MAX_FDS      65536
#define MAX_FILES    65536
#define MAX_ADDR     0x800000000000ull     /* x86_64 user address space (4-level) */

/* ------------------------------------------------------------------ dump */

struct pagerun {
	uint64_t addr;
	uint32_t npages;
	uint32_t owner;
	uint8_t *data;         /* points into the owner's buffer */
};

struct dthread {
	pid_t htid;
	bool seized;
	bool interrupted;
	int stop_sig;                      /* group-stop signal seen at seize, or 0 */
	struct user_regs_struct regs;      /* as seized (restored on --leave-running) */
	uint64_t sigmask;                  /* as seized */
	ImgThread *img;
};

struct dproc {
	pid_t hpid;
	ImgProc *tree;
	ImgProcCore *core;
	struct dthread *th;
	int nth;
	struct inj inj;              /* injection in the leader */
	uint64_t scratch;            /* injected scratch mapping (0 if none) */
	uint64_t vdso_start;
	struct pagerun *runs;
	int nruns;
	uint8_t *pagebuf;
	size_t pagebuf_len;
	/* indexed images: every page the process has (runs without data) */
	struct pagerun *present;
	int npresent;
	int uffd;                    /* dirty tracking (dirty.c), -1 if none */
	bool tracked;                /* uffd valid since the parent image */
	uint8_t *vscan;              /* per VMA: 1 scanned (re-protected), 2 has "uw", 0 not */
	int npresent_cap;
	/* copy-on-write capture (cowsnap.c): pages read after the resume from a
	 * stopped fork of the process instead of while frozen */
	bool cow_ok;                 /* mm_dump: nothing a fork would not copy privately */
	bool cow_defer;              /* pages not read yet (runs known, or cow_pend) */
	int *cow_pend;               /* VMAs (indexes) whose pages are still to be found: */
	int ncow_pend;               /* scanned in the snapshot child (mm_cow_runs) */
	pid_t cow_child;             /* host pid of the snapshot child, 0 if none */
	pid_t cow_child_ns;          /* its pid in the pod */
	double cow_read_ms;          /* time spent reading pages from it (mm_late_read) */
	struct dump_prefetch *pre;   /* batched injected queries (objects.c), NULL if none */
	struct pagerun *preruns;     /* pre-copied pages used (data in d->pre) */
	int npreruns, npreruns_cap;
	bool late;                   /* runs known, pages read by the writer (mm_late_read) */
	char *status;                /* /proc/PID/status as read while frozen (collect_tree) */
	char *exe_path;              /* mm_dump in a helper thread: exe not yet given a file id */
	/* pages shared with the parent since a fork (cowshare.c) */
	bool cow_looked;             /* cow_from found (or not) */
	struct dproc *cow_from;      /* the parent, alive and in the pod, or NULL */
	int cow_from_pm;             /* its /proc/PID/pagemap while the VMAs are looked at */
	struct range *shared;        /* page ranges that are the parent's */
	int nshared, shared_cap;
};

/*
 * One batch of injected queries run in the leader right after the scratch
 * mapping (objects.c inject_prepare): one ptrace round trip instead of one
 * per call.  The objects read their answers here; ret < 0 is -errno.
 * Output layout in the scratch mapping (copied into out[]):
 */
#define PF_ITIMER(w)   ((w) * 32)              /* struct itimerval, which 0..2 */
#define PF_ALTSTACK    0x100                   /* stack_t of the leader */
#define PF_TIDADDR     0x140                   /* PR_GET_TID_ADDRESS of the leader */
#define PF_SIGACT(sig) (0x200 + ((sig) - 1) * 32)   /* struct ksigaction, sig 1..64 */
#define PF_OUT_LEN     0xa00
struct dump_prefetch {
	uint64_t sigwant;            /* SigCgt | SigIgn of /proc/PID/status */
	int64_t brk;
	int64_t itimer_ret[3], altstack_ret, tidaddr_ret, sigaction_ret[65];
	uint8_t out[PF_OUT_LEN];
};

struct dump_ctx {
	ImgInfo *info;
	ImgTree *tree;
	ImgFiles *files;
	struct dproc *procs;
	int nprocs;
	struct pagerun *shm_runs;
	int nshm_runs;
	/* file description identity for kcmp dedupe */
	struct fdesc { pid_t hpid; int fd; uint64_t dev, ino; uint32_t id; } *fdescs;
	int nfdescs;
	uint32_t next_file_id;
	uint64_t image_bytes;        /* written by dump_write */
	uint64_t stream_id;          /* of the image written */
	/* incremental / indexed images (chain.c, dirty.c) */
	bool indexed;                /* write REC_PAGE_INDEX + REC_ZPAGES */
	int compress;                /* zstd level, 0 = store raw */
	bool track;                  /* keep dirty tracking for the next increment */
	bool write_frozen;           /* bench only: write the image before resuming */
	bool cow;                    /* --leave-running: capture pages copy-on-write (cowsnap.c) */
	bool late_pages;             /* the pod ends: private pages read while writing (mm.c) */
	ImgParent *parent;           /* NULL: a full image */
	struct chain_index *pindex;  /* hashes of the parent chain's pages */
	uint64_t track_stream;       /* stream the kept uffds were armed at (0 none) */
	struct kept_uffd { pid_t hpid; uint64_t start; int fd; } *kept;
	int nkept;
	uint64_t raw_bytes, stored_pages, deduped_pages;
	/* pre-copy (dirty.c): pages written since the parent, copied and
	 * write-protected again before the freeze, and smaps read then */
	struct precopy {
		pid_t hpid;
		struct pagerun *runs;    /* sorted; data in buf */
		int nruns;
		uint8_t *buf;
		size_t len;
		bool lost;               /* protected but not copied: read them frozen */
		char *smaps;             /* /proc/PID/smaps before the freeze */
		size_t smaps_len;
	} *pre;
	int npre;
	bool rt;                     /* SCHED_FIFO while frozen (rtprio.c) */
};

/* chain.c */
uint64_t page_hash(const void *page);
struct chain_index;
/* Read the page indexes of FILE and its ancestors (their first records
 * only).  *parent gets the REC_PARENT for an image whose parent is FILE. */
int chain_index_load(const char *file, unsigned full_every, ImgParent **parent, struct chain_index **out);
const uint64_t *chain_parent_present(const struct chain_index *ci, uint32_t pid, size_t *npairs);
bool chain_index_same(const struct chain_index *ci, uint32_t pid, uint64_t addr, uint64_t hash);
void chain_index_free(struct chain_index *ci);
/* Write the chain ending in the image open on fd (at offset 0) as one image:
 * plain REC_PAGES (indexed = false, for restore) or indexed + compressed. */
int chain_squash(int fd, const char *name, int outfd, bool indexed, int level);
int squash_main(int argc, char **argv);

/* dirty.c — userfaultfd write-protect dirty tracking across engine runs */
int dirty_fetch(struct dump_ctx *d, pid_t init);
int dirty_arm(struct dump_ctx *d, struct dproc *p);
struct range;
int dirty_written(struct dproc *p, int pmfd, uint64_t start, uint64_t end, struct range **out, int *n);
int dirty_present(struct dproc *p, int pmfd, uint64_t start, uint64_t end, struct range **out, int *n);
int dirty_private_pages(int pmfd, uint64_t start, uint64_t end, struct range **out, int *n, int *cap);
void dirty_attach(struct dump_ctx *d);
uint64_t dirty_estimate(struct dump_ctx *d);
int chain_restore_pipe(int fd, const char *name, pid_t *child);
void dirty_keep(struct dump_ctx *d, pid_t init);
int keep_main(int argc, char **argv);
void dirty_drop(struct dump_ctx *d);
void dirty_precopy(struct dump_ctx *d);
const struct precopy *dirty_precopy_of(const struct dump_ctx *d, pid_t hpid);
int mm_read_runs(pid_t pid, struct pagerun *runs, int n);

/* phase.c — frozen-window timing (TIMING phase lines, debug summary) */
void phase_start(void);
void phase_mark(const char *name);
void phase_report(void);
/* rtprio.c — SCHED_FIFO for the frozen window of a tracked increment */
void rt_enter(void);
void rt_leave(void);

int dump_main(int argc, char **argv);
int restore_main(int argc, char **argv);
int show_main(int argc, char **argv);

/* helpers (util.c) */
char *read_file_str(const char *path, size_t *len);       /* NUL-terminated, malloc'd */
ssize_t proc_read_small(const char *path, char *buf, size_t size);   /* procread.c */
int proc_list_numbers(const char *path, int **out);                  /* procread.c */
int read_link(const char *path, char *buf, size_t len);
int write_str(const char *path, const char *s);
void *xcalloc(size_t n, size_t sz);
char *xstrdup(const char *s);
void heap_prepare(size_t pad);   /* pad bytes of heap populated at once */
/* grow a protobuf repeated-pointer field by one zeroed element */
void *pb_push(size_t *n, void ***arr, size_t elem_size, void (*init)(void *));
#define PB_PUSH(msg, field, Type, init_fn) \
	((Type *)pb_push(&(msg)->n_##field, (void ***)&(msg)->field, sizeof(Type), (void (*)(void *))(init_fn)))
uint32_t status_field_u32(const char *status, const char *key, int which);  /* which<0: last */
int status_field_ids(const char *status, const char *key, uint32_t *out, int max);

/* per-object dump sides (called with every thread of the pod ptrace-stopped) */
int mm_dump(struct dump_ctx *d, struct dproc *p);
int mm_dump_shm(struct dump_ctx *d);
/* Read p's runs (p->runs) from the memory of pid (p itself or its snapshot child). */
int mm_read_pages(struct dproc *p, pid_t pid);
/* The pages of p->cow_pend's VMAs (p->runs), found in the page tables of pid:
 * p itself (frozen) or its snapshot child (a copy of them at the fork). */
int mm_cow_runs(struct dproc *p, pid_t pid);
/* Smallest page volume a snapshot captures copy-on-write (bytes). */
size_t mm_cow_min_bytes(void);
/* Read runs (their data pointers set here, into one reused buffer, valid
 * until the next call) of a stopped process; for the image writer. */
/* mm_dump in a helper thread (objects.c): what touches the dump-wide model
 * (file ids, shared memory, info sizes) is left for mm_dump_resolve, which
 * the main thread runs for every process afterwards. */
void mm_dump_deferring(bool on);
int mm_dump_resolve(struct dump_ctx *d, struct dproc *p);
void phase_thread_off(void);
int mm_late_read(struct dproc *p, struct pagerun *runs, int n);

/* cowsnap.c — copy-on-write capture for --leave-running (docs/engine.md) */
int cow_fork_all(struct dump_ctx *d);        /* frozen: fork a stopped snapshot of each big process */
int cow_read_all(struct dump_ctx *d);        /* resumed: find the snapshots' pages (read while writing) */
void cow_abort_all(struct dump_ctx *d);      /* frozen, on failure: end the snapshots */
void cow_end_all(struct dump_ctx *d);        /* image written (or not): end the snapshots */
int files_dump(struct dump_ctx *d, struct dproc *p);
int signals_dump(struct dump_ctx *d, struct dproc *p);
int creds_dump(struct dump_ctx *d, struct dproc *p);
int threads_dump(struct dump_ctx *d, struct dproc *p);
int timers_dump(struct dump_ctx *d, struct dproc *p);

/* ------------------------------------------------------------------ restore */

struct rproc {
	ImgProc *tree;
	ImgProcCore *core;
	ImgThread **th;
	int nth;
	pid_t hpid;                 /* host pid once forked */
	struct inj inj;
	uint64_t scratch;           /* the scratch page the early phase mapped */
	uint64_t vdso_now;          /* where the task's vdso currently is */
	uint64_t vvar_now, vclock_now;
	pid_t *htids;               /* host tids of threads (index = thread) */
	struct inj *tinj;           /* injection per thread (0 = leader) */
	uint32_t *orig_prot;        /* per vma: needs a final mprotect */
	bool seized;
	struct rqueue *rq;          /* queued calls of the leader (rqueue.c) */
	struct pre_ops *mm_pre;     /* layout batch in flight (mm.c) */
	bool mm_mapped;             /* the image's layout is in place */
	bool seed_laid;             /* the seed mapped it (restore_seed.c): no layout batch */
	bool rq_undrained;          /* a queued drain found a signal: drain on */
	bool pages_done;            /* its page records are in (mm_restore_pages) */
	int cow_parent;             /* index of the parent whose pages it shares (cowshare.c), -1 */
	bool cow_late;              /* the seed forks it from that parent after the parent's layout */
	bool cow_forked;            /* ... and its pages: nothing to copy (restore.c early_pages) */
	bool fill_wait;             /* laid out, waiting for its pages to fork (SEED_FILL_ME) */
	bool ready;                 /* parked */
};

struct rst_ctx {
	ImgInfo *info;
	ImgTree *tree;
	ImgFiles *files;
	struct rproc *procs;
	int nprocs;
	int inv_base;               /* first inventory fd number */
	int shm_mnt;                /* the pod's /dev/shm tmpfs, a detached mount (rst_open) */
	int *file_fd;               /* inventory fd per files->files index */
	int *shm_fd;                /* per files->shms index */
	int *pipe_rfd, *pipe_wfd;   /* per files->pipes index */
	int ready_w, ready_r;       /* children report "ready" here */
	int hold_r, hold_w;         /* children block reading hold_r until seized */
	int go_r, go_w;             /* init waits for its cgroups */
	char **cgroups;             /* --cgroup dirs (or the agent's) */
	int ncg;
	bool init_spawned;          /* the init is a vfork-like child (restore.c spawn_init) */
	uint64_t scratch_addr;      /* scratch page address chosen for every task */
	/* the engine's own [vvar], [vvar_vclock], [vdso] (start, length): every
	 * task is a fork of the engine, so they are where its tasks have them */
	uint64_t eng_vvar, eng_vvar_len, eng_vclock, eng_vclock_len, eng_vdso, eng_vdso_len;
	/* restore_seed.c: the tasks are forks of zapc-restore-seed (seed_fd >= 0) */
	int seed_fd, plan_fd;
	uint64_t plan_addr, plan_len;
	struct seed_what { const char *what, *arg; uint32_t pid; int64_t detail; const ImgVma *vma; } *seed_what;   /* detail < 0: none */
	int seed_nops;
	/* --inherit-fd N:KEY — the caller's fd N stands for the file KEY of the
	 * image ("pipe:[INODE]" of a pipe whose other end was outside the pod, or
	 * a path), instead of a new pipe / a reopened file */
	struct inherit { int fd; char *key; } inherit[16];
	int ninherit;
};
/* One line of a /proc/PID/maps: its range in *s and *e (false if it has none);
 * [vdso], [vvar] and [vvar_vclock] are noted in r->eng_* (restore.c). */
bool rst_maps_line(struct rst_ctx *r, char *line, unsigned long long *s, unsigned long long *e);
/* Our [vvar][vvar_vclock][vdso] (from rst_maps_line) lie next to each other,
 * as one block a seed can keep and move. */
bool rst_vdso_block(const struct rst_ctx *r);
int proc_index(const struct rst_ctx *r, uint32_t pid);   /* index in r->procs, -1 if none */
int inherited_fd(struct rst_ctx *r, const char *key);

struct range;
struct seed_report;
int seed_prepare(struct rst_ctx *r, const struct range *avoid, int navoid);
int seed_exec(struct rst_ctx *r);
void seed_log_failure(struct rst_ctx *r, const struct seed_report *m);
int seed_tasks_vdso(struct rst_ctx *r, pid_t root);

struct range { uint64_t s, e; };

/* /proc/PID/pagemap entry bits (mm.c, cowshare.c) */
#define PM_PRESENT   (1ull << 63)
#define PM_SWAPPED   (1ull << 62)
#define PM_FILE      (1ull << 61)   /* a file page or shared anonymous */
#define PM_EXCLUSIVE (1ull << 56)   /* mapped by this process only */
#define PM_PFN(e)    ((e) & ((1ull << 55) - 1))   /* 0 without CAP_SYS_ADMIN */

/* A private mapping, anonymous or of a file: pages of its own to save */
static inline bool vma_private(const ImgVma *v)
{
	return v->kind == VK_ANON || (v->kind == VK_FILE && !(v->flags & MAP_SHARED));
}

/* cowshare.c: pages a child shares with its parent since a fork */
int cowshare_vma(struct dump_ctx *d, struct dproc *p, int pmfd, const ImgVma *v);   /* while frozen */
void cowshare_scan_end(struct dproc *p);
uint64_t cowshare_bytes(const struct dproc *p);
void cowshare_cut(struct dproc *p, struct pagerun **runs, int *n);   /* out of the runs, into the image */
int cowshare_check(struct rst_ctx *r);                    /* the image's cow_parent; sets rproc.cow_parent */
int cowshare_copy(struct rst_ctx *r, struct rproc *p);   /* from the restored parent's memory */
bool cowshare_keeps(const ImgProcCore *parent, const ImgVma *v, size_t *pi);

uint64_t find_gap(uint64_t len, const struct range *r, int n);
int engine_memory_gaps(const struct rst_ctx *r, struct range gaps[5]);

int inv_fd_for_file(struct rst_ctx *r, uint32_t file_id);
int inv_fd_for_shm(struct rst_ctx *r, uint32_t shm_id);

int files_restore_inventory(struct rst_ctx *r);
int files_restore_early(struct rst_ctx *r, struct rproc *p);     /* in the task */
int creds_restore_early(struct rst_ctx *r, struct rproc *p);     /* cwd, umask, ... */
int mm_restore_map_start(struct rst_ctx *r, struct rproc *p);
int mm_check_vmas(struct rproc *p);     /* logs a bad VMA of the image */
int mm_vdso_targets(struct rst_ctx *r, struct rproc *p, uint64_t dst[3], uint64_t len[3]);
typedef void mm_emit_fn(void *ctx, const char *what, uint64_t want, ImgVma *v, const struct inj_op *op);
/* skip: per VMA, true to leave it out (NULL: none) */
int mm_layout_ops(struct rst_ctx *r, struct rproc *p, const bool *skip, mm_emit_fn *emit, void *ctx);
int mm_restore_map_finish(struct rst_ctx *r, struct rproc *p);
/* ZAPC_ENGINE_TIMING: one line with the page-writing time of every process so far. */
void mm_restore_pages_timing(void);
typedef int mm_next_fn(struct rst_ctx *, uint32_t *, uint32_t *);
/* The layout (if the seed did not), the pages shared with the parent, then
 * the process's page records; in a task not seized (laid out by the seed)
 * only process_vm_writev and /proc/PID/mem are used.  Sets pages_done. */
int mm_restore_pages(struct rst_ctx *r, struct rproc *p, struct image_reader *in, mm_next_fn *next);
/* mm_restore_pages unless done, then the late calls (protections, madvise, mm layout) */
int mm_restore_late(struct rst_ctx *r, struct rproc *p, struct image_reader *in, mm_next_fn *next);
int signals_restore_late(struct rst_ctx *r, struct rproc *p);
int threads_restore_late(struct rst_ctx *r, struct rproc *p);
int creds_restore_late(struct rst_ctx *r, struct rproc *p);
int timers_restore_late(struct rst_ctx *r, struct rproc *p);
int pidfd_restore_late(struct rst_ctx *r, struct rproc *p);
int locks_restore_late(struct rst_ctx *r, struct rproc *p);    /* after its inventory fds are closed */
int thread_restore_one(struct rst_ctx *r, struct rproc *p, int i, struct inj *t);
int signals_drain(struct rst_ctx *r, struct rproc *p, struct inj *t);

/* rqueue.c — the leader's late calls as one batch (flush before injecting
 * a call directly) */
#define RQ_IGNORE 1u     /* a failure is not an error */
#define RQ_DRAIN  2u     /* rt_sigtimedwait: -EAGAIN is success, > 0 a signal */
uint64_t rq_data(struct rst_ctx *r, struct rproc *p, const void *buf, size_t len);
void rq_add(struct rproc *p, const char *what, unsigned flags, long nr, uint64_t a0, uint64_t a1, uint64_t a2,
	    uint64_t a3, uint64_t a4, uint64_t a5);
int rq_flush(struct rst_ctx *r, struct rproc *p);
int rq_flush_start(struct rst_ctx *r, struct rproc *p);
int rq_flush_finish(struct rst_ctx *r, struct rproc *p);
void rq_free(struct rproc *p);
int thread_set_final(struct rst_ctx *r, struct rproc *p, int i);
int peek_pending(pid_t tid, bool shared, size_t *n, ProtobufCBinaryData **out);

#endif
