/*
 * mpitest.h — helpers shared by the cluster test's MPI programs.
 *
 * Each program prints exactly one result line on rank 0, deterministic for
 * the given parameters (no time, pid or host in it), so a test can compare a
 * run across nodes — or a run that was checkpointed and restarted — with an
 * uninterrupted one.  With --where every rank also prints
 *     where rank=R netns=INODE eth0=ADDR
 * so a test can check that the ranks really ran on different nodes.  Blocking waits go through mpitest_wait().
 */
#ifndef MPITEST_H
#define MPITEST_H

#include <mpi.h>
#include <ifaddrs.h>
#include <time.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FNV64_INIT 0xcbf29ce484222325ULL

static inline uint64_t fnv64(uint64_t h, const void *buf, size_t n)
{
	const unsigned char *p = buf;

	while (n--) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static inline uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * Wait for a request without spinning a core: a simulated cluster puts
 * several ranks on each of a few CPUs, and MPICH/UCX busy-poll in blocking
 * calls, so one rank spinning starves the very peer it waits for (a 3-rank
 * ring on 2 CPUs took ~3 ms per hop that way).  Poll, then sleep 20 us.
 */
static inline void mpitest_wait(MPI_Request *req)
{
	struct timespec ts = { 0, 20000 };
	int done = 0;

	for (;;) {
		MPI_Test(req, &done, MPI_STATUS_IGNORE);
		if (done)
			return;
		nanosleep(&ts, NULL);
	}
}

/* One line per rank saying where it runs (one write, so lines stay whole). */
static inline void mpitest_where(int rank)
{
	char addr[INET_ADDRSTRLEN] = "none", line[160];
	struct ifaddrs *ifa, *i;
	struct stat st;
	int n;

	if (stat("/proc/self/ns/net", &st) < 0)
		st.st_ino = 0;
	if (getifaddrs(&ifa) == 0) {
		for (i = ifa; i; i = i->ifa_next)
			if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
			    strcmp(i->ifa_name, "eth0") == 0)
				inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr,
					  addr, sizeof(addr));
		freeifaddrs(ifa);
	}
	n = snprintf(line, sizeof(line), "where rank=%d netns=%lu eth0=%s\n", rank,
		     (unsigned long)st.st_ino, addr);
	if (write(STDOUT_FILENO, line, (size_t)n) < 0)
		return;
}

/* "--name VALUE" options; returns 1 if argv[*i] was NAME and took a value. */
static inline int mpitest_opt(int argc, char **argv, int *i, const char *name, long *val)
{
	char *end;

	if (strcmp(argv[*i], name) != 0)
		return 0;
	if (*i + 1 >= argc) {
		fprintf(stderr, "%s: %s needs a value\n", argv[0], name);
		exit(2);
	}
	*val = strtol(argv[++*i], &end, 10);
	if (*end || *val < 0) {
		fprintf(stderr, "%s: %s: bad value '%s'\n", argv[0], name, argv[*i]);
		exit(2);
	}
	return 1;
}

#endif
