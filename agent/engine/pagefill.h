/* pagefill.h — the restore's page pipeline (pagefill.c). */
#ifndef ZAPC_ENGINE_PAGEFILL_H
#define ZAPC_ENGINE_PAGEFILL_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/image.h"

/* While the tasks are created: the writer thread starts and brings its
 * buffers up meanwhile (else pagefill_begin does it). */
void pagefill_prepare(void);
/* Before a process's pages: the ring and its writer thread exist (0/-errno). */
int pagefill_begin(void);
/* The main thread's buffer (*cap bytes) for a small record, written at once
 * with pagefill_write (uffd as below when >= 0, else process_vm_writev);
 * only between pagefill_* calls, which may use it themselves. */
uint8_t *pagefill_buf(size_t *cap);
int pagefill_write(int uffd, pid_t pid, uint64_t addr, const uint8_t *buf, size_t len);
/* A buffer (*cap bytes) of the caller's own between pagefill_begin calls
 * (mm.c gathers small records in it); no pagefill_* call uses it. */
uint8_t *pagefill_gather_buf(size_t *cap);
/* A free slot to read into (*cap bytes); may write queued slots meanwhile;
 * NULL if the ring cannot be mapped. */
uint8_t *pagefill_slot(size_t *cap);
/* Queue the slot's first len bytes for pid's memory at addr — with
 * UFFDIO_COPY through uffd when it is >= 0 (the range registered, missing
 * mode, still empty), else process_vm_writev; the first write error so far
 * (0 if none). */
int pagefill_queue(uint8_t *slot, int uffd, pid_t pid, uint64_t addr, size_t len);
/* A page record's data left in the image file (image_read_deferred): read,
 * checked against its checksum and written into pid's memory at addr
 * (through uffd as above when >= 0) by whichever core is free.  The first
 * error so far (0 if none). */
struct pagefill_job {
	struct image_deferred data;
	int uffd;
	pid_t pid;
	uint64_t addr;
};
int pagefill_queue_job(const struct pagefill_job *job);
/* The first error's message when the image said it (a checksum mismatch, a
 * truncated record), "" otherwise (a write failed: the caller says where). */
const char *pagefill_error(void);
/* Give back a slot that was not queued (the read failed). */
void pagefill_unfill(uint8_t *slot);
/* Every queued slot written; the first write error (0 if none) and where. */
int pagefill_end(uint64_t *err_addr);
#endif
