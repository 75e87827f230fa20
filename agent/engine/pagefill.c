/*
 * pagefill.c — the restore's page pipeline: image page data into the
 * stopped target's memory (UFFDIO_COPY or process_vm_writev), reading and
 * writing on both cores at once.
 *
 * From an image file, each big page record is a *file job*
 * (pagefill_queue_job): the reader has skipped its payload with a seek
 * (image_read_deferred), and whichever of the main thread and the writer
 * thread is free preads the record piece by piece into its own 256 KiB
 * buffer, checksums each piece while it is in the cache, writes it, and
 * compares the record's checksum at the end.  Reading a freshly written
 * tmpfs file is as dear as the target's page allocation here (each folio
 * is activated on the LRU), and unlike that allocation it goes twice as
 * fast from two threads.  The main thread keeps NJOB jobs queued and runs
 * the oldest itself, so the writer always finds the next one.
 *
 * From a pipe, the data goes through a ring of small slots (NSLOT × SLOT bytes): the
 * reader (the engine's main thread) reads the next piece of a page record
 * into a free slot — and checksums it while it is still in the cache —,
 * queues it, and a writer thread puts queued slots into the target.  When
 * every slot is taken the reader writes the oldest queued one itself rather
 * than wait: on a 2-core machine the target's page faults (the kernel
 * allocating and zeroing each 4 KiB page, ~1 µs a page) are the bigger half
 * of the work, and both cores share it.
 *
 * Why small slots in huge pages: on this kind of guest (PVM, software
 * page tables) the first user touch of a 4 KiB page costs 7–15 µs and
 * memory only MAP_POPULATE'd stays slow; the 2×16 MiB buffers this
 * replaces cost more to bring up than the copy itself.  The ring (4 MiB)
 * is asked for as transparent huge pages — the engine's own memory, no
 * process's state — and touched once, when a pipe's record first needs it
 * (a fresh huge page can cost a host fault here: files never map it).
 *
 * A record's checksum is verified when its last piece is read, possibly
 * after earlier pieces reached the target: harmless, no restored task runs
 * before the whole image is verified to its trailer (restore.c).
 */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent/engine/engine.h"
#include "agent/engine/pagefill.h"

#define SLOT    (512u << 10)
#define NSLOT   8u
#define JOBBUF  (256u << 10)    /* per core, for file jobs and small records */
#define HUGE    (2u << 20)
#define NJOB    4u

enum { S_FREE, S_FILLING, S_QUEUED, S_WRITING };

struct slot {
	int state;
	int uffd;
	pid_t pid;
	uint64_t addr;
	size_t len;
};

static struct {
	uint8_t *mem;                   /* the ring (pipes only), NULL until needed */
	uint8_t *jbuf;                  /* 3 × JOBBUF: [0] the main thread's, [1] the writer's,
					 * [2] the gather buffer (mm.c) */
	struct pagefill_job jobs[NJOB]; /* queued file jobs, oldest first */
	uint32_t jhead, jlen;
	int jbusy;                      /* file jobs being run */
	char msg[320];                  /* the first job error, said the image's way */
	struct slot s[NSLOT];
	uint32_t queue[NSLOT];          /* queued slots, oldest first */
	uint32_t qhead, qlen;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t work, done;      /* writer: something queued / reader: a slot is free */
	bool thread, quit;
	bool started, jready;           /* pagefill_prepare ran / jbuf is set (maybe NULL) */
	int busy;                       /* slots being written */
	int err;
	uint64_t err_addr;
} F = { .mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER };

static int ring_map(void)
{
	size_t len = (size_t)NSLOT * SLOT;
	uint8_t *m = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -errno;
	uint8_t *a = (uint8_t *)(((uintptr_t)m + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
	if (a > m)
		munmap(m, (size_t)(a - m));
	if (a + len < m + len + HUGE)
		munmap(a + len, (size_t)(m + len + HUGE - (a + len)));
	madvise(a, len, MADV_HUGEPAGE);         /* best effort: 4 KiB pages work too */
	memset(a, 0, len);                      /* touched once: see the header */
	F.mem = a;
	return 0;
}

/* UFFDIO_COPY: the kernel allocates each page of the (registered, empty)
 * range and copies into it in one call — about a third cheaper here than
 * process_vm_writev, whose pinning faults the pages in one by one. */
static int uffd_copy(int uffd, uint64_t dst, const uint8_t *src, size_t len)
{
	while (len) {
		struct uffdio_copy c = { .dst = dst, .src = (uintptr_t)src, .len = len,
					 .mode = UFFDIO_COPY_MODE_DONTWAKE };
		if (ioctl(uffd, UFFDIO_COPY, &c) == 0)
			return 0;
		if (errno != EAGAIN || c.copy <= 0)     /* copy: bytes done, or -errno */
			return c.copy < 0 ? (int)c.copy : -errno;
		dst += (uint64_t)c.copy;
		src += c.copy;
		len -= (size_t)c.copy;
	}
	return 0;
}

/* Write slot i (its state is S_WRITING, the lock not held). */
static void write_slot(uint32_t i)
{
	struct slot *s = &F.s[i];
	const uint8_t *src = F.mem + (size_t)i * SLOT;
	int e = s->uffd >= 0 ? uffd_copy(s->uffd, s->addr, src, s->len) : mem_write(s->pid, s->addr, src, s->len);
	pthread_mutex_lock(&F.mu);
	if (e < 0 && !F.err) {
		F.err = e;
		F.err_addr = s->addr;
	}
	s->state = S_FREE;
	F.busy--;
	pthread_cond_broadcast(&F.done);
	pthread_mutex_unlock(&F.mu);
}

/* Record the first error (lock not held). */
static void set_error(int e, uint64_t addr, const char *msg)
{
	pthread_mutex_lock(&F.mu);
	if (!F.err) {
		F.err = e;
		F.err_addr = addr;
		snprintf(F.msg, sizeof(F.msg), "%s", msg ? msg : "");
	}
	pthread_mutex_unlock(&F.mu);
}

/*
 * Run a file job with buf (SLOT bytes, this core's): read the record's
 * data from the image file piece by piece, checksum each piece while it is
 * in the cache, write it into the target.  The checksum is compared when
 * the last piece is in: pages written before a mismatch is found are
 * harmless, the restore fails before any restored task runs.
 */
static void run_job(const struct pagefill_job *j, uint8_t *buf)
{
	const struct image_deferred *d = &j->data;
	uint32_t crc = d->crc;
	char msg[320];
	for (uint64_t done = 0; done < d->len;) {
		size_t n = d->len - done < JOBBUF ? (size_t)(d->len - done) : JOBBUF, got = 0;
		while (got < n) {
			ssize_t k = pread(d->fd, buf + got, n - got, (off_t)(d->offset + done + got));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				int e = k < 0 ? errno : EPROTO;
				snprintf(msg, sizeof(msg), "image: record %llu 'pages' at offset %llu: %s",
					 (unsigned long long)d->index, (unsigned long long)d->rec_offset,
					 k < 0 ? strerror(e) : "truncated: stream ends inside the payload");
				set_error(-e, j->addr + done, msg);
				return;
			}
			got += (size_t)k;
		}
		crc = crc32c(crc, buf, n);
		int e = j->uffd >= 0 ? uffd_copy(j->uffd, j->addr + done, buf, n) : mem_write(j->pid, j->addr + done, buf, n);
		if (e < 0) {
			set_error(e, j->addr + done, NULL);
			return;
		}
		done += n;
	}
	if (crc != d->stored) {
		snprintf(msg, sizeof(msg), "image: record %llu 'pages' at offset %llu: checksum mismatch "
			 "(stored 0x%08x, computed 0x%08x)", (unsigned long long)d->index,
			 (unsigned long long)d->rec_offset, d->stored, crc);
		set_error(-EBADMSG, j->addr, msg);
	}
}

/* Take the oldest queued job (lock held); false if none. */
static bool pop_job_locked(struct pagefill_job *j)
{
	if (!F.jlen)
		return false;
	*j = F.jobs[F.jhead];
	F.jhead = (F.jhead + 1) % NJOB;
	F.jlen--;
	F.jbusy++;
	return true;
}

/* Run job j with this core's buffer (lock held, dropped meanwhile). */
static void run_job_locked(const struct pagefill_job *j, uint32_t core)
{
	bool skip = F.err != 0;         /* the restore fails anyway */
	pthread_mutex_unlock(&F.mu);
	if (!skip)
		run_job(j, F.jbuf + (size_t)core * JOBBUF);
	pthread_mutex_lock(&F.mu);
	F.jbusy--;
	pthread_cond_broadcast(&F.done);
}

/* The oldest queued slot, now S_WRITING (lock held); -1 if none. */
static int pop_locked(void)
{
	if (!F.qlen)
		return -1;
	uint32_t i = F.queue[F.qhead];
	F.qhead = (F.qhead + 1) % NSLOT;
	F.qlen--;
	F.s[i].state = S_WRITING;
	F.busy++;
	return (int)i;
}

/* One piece of queued work, F.mu held: a full ring slot, else a file job
 * (writer: called by the writer thread).  false: nothing was queued. */
static bool work_one_locked(int writer)
{
	struct pagefill_job j;
	int i = pop_locked();
	if (i >= 0) {
		pthread_mutex_unlock(&F.mu);
		write_slot((uint32_t)i);
		pthread_mutex_lock(&F.mu);
		return true;
	}
	if (pop_job_locked(&j)) {
		run_job_locked(&j, writer);
		return true;
	}
	return false;
}

/*
 * 3 × JOBBUF of engine memory, touched, in one transparent huge page when
 * the kernel gives one.  The first touch comes before the first page of a
 * restore is written; measured in the engine (8 restores each): as 4 KiB
 * pages 3.3–4.2 ms (192 fresh pages, a shadow page-table fill each on this
 * PVM guest), as a huge page 0.14–0.23 ms, but 8 ms one time in three —
 * when the host has to back the whole 2 MiB again (the guest hands free
 * memory back to it, page_reporting).  NULL if no memory.
 */
static uint8_t *job_buffers(void)
{
	uint8_t *m = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	uint8_t *b = (uint8_t *)(((uintptr_t)m + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
	if (b > m)
		munmap(m, (size_t)(b - m));
	munmap(b + HUGE, (size_t)(m + 2 * HUGE - (b + HUGE)));
	madvise(b, HUGE, MADV_HUGEPAGE);        /* best effort: 4 KiB pages work too */
	memset(b, 0, 3 * JOBBUF);
	return b;
}

static void *writer_main(void *arg)
{
	(void)arg;
	uint8_t *b = job_buffers();
	pthread_mutex_lock(&F.mu);
	F.jbuf = b;
	F.jready = true;
	pthread_cond_broadcast(&F.done);
	for (;;) {
		if (work_one_locked(1))
			continue;
		if (F.quit)
			break;
		pthread_cond_wait(&F.work, &F.mu);
	}
	pthread_mutex_unlock(&F.mu);
	return NULL;
}

/*
 * Called by restore.c once the pod's init is forked, while the engine waits
 * for the tasks: the writer thread starts and brings the job buffers up on
 * the other core (a huge page's first touch can take ~8 ms here, see
 * job_buffers), out of the way of the first page record.  Not earlier: a
 * second thread in the engine while it reads the image and forks slowed
 * the task creation as much as it saved.
 */
void pagefill_prepare(void)
{
	if (F.started)
		return;
	F.started = true;
	/* without the thread the reader writes every slot itself */
	F.thread = pthread_create(&F.th, NULL, writer_main, NULL) == 0;
	if (!F.thread) {
		F.jbuf = job_buffers();
		F.jready = true;
	}
}

int pagefill_begin(void)
{
	pagefill_prepare();
	pthread_mutex_lock(&F.mu);
	while (!F.jready)
		pthread_cond_wait(&F.done, &F.mu);
	pthread_mutex_unlock(&F.mu);
	if (!F.jbuf)
		return -ENOMEM;     /* the 4 MiB ring only for pipes */
	F.err = 0;
	F.msg[0] = 0;
	return 0;
}

int pagefill_queue_job(const struct pagefill_job *job)
{
	struct pagefill_job j;
	pthread_mutex_lock(&F.mu);
	while (F.jlen == NJOB && pop_job_locked(&j))
		run_job_locked(&j, 0);
	F.jobs[(F.jhead + F.jlen) % NJOB] = *job;
	F.jlen++;
	if (F.thread)
		pthread_cond_signal(&F.work);
	/* the queue full (reading ahead costs a seek): the oldest is ours,
	 * the writer thread always finds the next ones */
	while (F.jlen > (F.thread ? NJOB - 1 : 0u) && pop_job_locked(&j))
		run_job_locked(&j, 0);
	int e = F.err;
	pthread_mutex_unlock(&F.mu);
	return e;
}

uint8_t *pagefill_buf(size_t *cap)
{
	*cap = JOBBUF;
	return F.jbuf;
}

uint8_t *pagefill_gather_buf(size_t *cap)
{
	*cap = JOBBUF;
	return F.jbuf + 2 * JOBBUF;
}

int pagefill_write(int uffd, pid_t pid, uint64_t addr, const uint8_t *buf, size_t len)
{
	return uffd >= 0 ? uffd_copy(uffd, addr, buf, len) : mem_write(pid, addr, buf, len);
}

uint8_t *pagefill_slot(size_t *cap)
{
	if (!F.mem && ring_map() < 0)
		return NULL;
	pthread_mutex_lock(&F.mu);
	for (;;) {
		for (uint32_t i = 0; i < NSLOT; i++)
			if (F.s[i].state == S_FREE) {
				F.s[i].state = S_FILLING;
				pthread_mutex_unlock(&F.mu);
				*cap = SLOT;
				return F.mem + (size_t)i * SLOT;
			}
		/* all taken: help with the oldest queued one, else wait for one */
		int i = pop_locked();
		if (i >= 0) {
			pthread_mutex_unlock(&F.mu);
			write_slot((uint32_t)i);
			pthread_mutex_lock(&F.mu);
		} else {
			pthread_cond_wait(&F.done, &F.mu);
		}
	}
}

int pagefill_queue(uint8_t *slot, int uffd, pid_t pid, uint64_t addr, size_t len)
{
	uint32_t i = (uint32_t)((size_t)(slot - F.mem) / SLOT);
	pthread_mutex_lock(&F.mu);
	F.s[i] = (struct slot){ S_QUEUED, uffd, pid, addr, len };
	F.queue[(F.qhead + F.qlen) % NSLOT] = i;
	F.qlen++;
	int e = F.err;
	if (F.thread)
		pthread_cond_signal(&F.work);
	pthread_mutex_unlock(&F.mu);
	if (!F.thread) {        /* no writer thread: write it now */
		pthread_mutex_lock(&F.mu);
		int k = pop_locked();
		pthread_mutex_unlock(&F.mu);
		if (k >= 0)
			write_slot((uint32_t)k);
	}
	return e;
}

void pagefill_unfill(uint8_t *slot)
{
	uint32_t i = (uint32_t)((size_t)(slot - F.mem) / SLOT);
	pthread_mutex_lock(&F.mu);
	F.s[i].state = S_FREE;
	pthread_cond_broadcast(&F.done);
	pthread_mutex_unlock(&F.mu);
}

int pagefill_end(uint64_t *err_addr)
{
	pthread_mutex_lock(&F.mu);
	for (;;) {
		if (work_one_locked(0))
			continue;
		if (!F.busy && !F.jbusy)
			break;
		pthread_cond_wait(&F.done, &F.mu);
	}
	int e = F.err;
	if (err_addr)
		*err_addr = F.err_addr;
	pthread_mutex_unlock(&F.mu);
	return e;
}

const char *pagefill_error(void)
{
	return F.msg;
}
