/*
 * threads.c — a multi-threaded program whose threads must keep their TLS,
 * their own vector registers (AVX-512 zmm31 where the CPU has it, else
 * ymm15), their rseq registration (the kernel must keep rewriting cpu_id
 * in each thread's rseq area after every sleep) and keep running.  Workers
 * touch nothing but their counter and nanosleep; main prints
 * "i c1 c2 c3 c4 OK|BAD" every 5 ms.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/rseq.h>
#include <time.h>
#include <unistd.h>

#define N 4
static volatile uint64_t progress[N];
static volatile int bad;
static __thread uint64_t tls_id = 99, tls_count;
static int avx512;

static void vload(uint64_t pat)
{
	uint64_t a[8];
	for (int i = 0; i < 8; i++)
		a[i] = pat + (uint64_t)i;
	if (avx512)
		__asm__ volatile("vmovdqu64 %0, %%zmm31" :: "m"(a));
	else
		__asm__ volatile("vmovdqu %0, %%ymm15" :: "m"(a));
}

static int vcheck(uint64_t pat)
{
	uint64_t a[8], b[8] = { 0 };
	for (int i = 0; i < 8; i++)
		a[i] = pat + (uint64_t)i;
	if (avx512)
		__asm__ volatile("vmovdqu64 %%zmm31, %0" : "=m"(b));
	else
		__asm__ volatile("vmovdqu %%ymm15, %0" : "=m"(b));
	return !memcmp(a, b, avx512 ? 64 : 32);
}

static void *worker(void *arg)
{
	uint64_t id = (uint64_t)(uintptr_t)arg, pat = 0x1111111111111111ull * (id + 1);
	struct timespec ts = { 0, 2000000 };
	tls_id = id;
	vload(pat);
	struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
	int miss = 0;
	for (;;) {
		if (__rseq_size) {
			miss = rs->cpu_id == 0xfffffff0u ? miss + 1 : 0;
			if (miss > 3)
				bad = 2;            /* rseq not registered: nobody updates cpu_id */
			rs->cpu_id = 0xfffffff0u;
		}
		tls_count++;
		if (tls_id != id || !vcheck(pat) || tls_count != progress[id] + 1)
			bad = 1;
		progress[id] = tls_count;
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int main(void)
{
	pthread_t t[N];
	avx512 = __builtin_cpu_supports("avx512f");
	for (uint64_t i = 0; i < N; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
	struct timespec ts = { 0, 5000000 };
	for (unsigned long i = 0;; i++) {
		printf("%lu %lu %lu %lu %lu %s %s\n", i, (unsigned long)progress[0], (unsigned long)progress[1],
		       (unsigned long)progress[2], (unsigned long)progress[3], bad ? "BAD" : "OK",
		       avx512 ? "avx512" : "avx2");
		fflush(stdout);
		nanosleep(&ts, NULL);
	}
}
