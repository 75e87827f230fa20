/* pagefill.h — the restore's page pipeline (pagefill.c). */
#ifndef ZAPC_ENGINE_PAGEFILL_H
#define ZAPC_ENGINE_PAGEFILL_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Before a process's pages: the ring and its writer thread exist (0/-errno). */
int pagefill_begin(void);
/* A free slot to read into (*cap bytes); may write queued slots meanwhile. */
uint8_t *pagefill_slot(size_t *cap);
/* Queue the slot's first len bytes for pid's memory at addr — with
 * UFFDIO_COPY through uffd when it is >= 0 (the range registered, missing
 * mode, still empty), else process_vm_writev; the first write error so far
 * (0 if none). */
int pagefill_queue(uint8_t *slot, int uffd, pid_t pid, uint64_t addr, size_t len);
/* Give back a slot that was not queued (the read failed). */
void pagefill_unfill(uint8_t *slot);
/* Every queued slot written; the first write error (0 if none) and where. */
int pagefill_end(uint64_t *err_addr);
#endif
