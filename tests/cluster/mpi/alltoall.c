/*
 * alltoall.c — every rank exchanges a block with every rank, every round,
 * and checks every byte it receives.
 *
 *   alltoall [--rounds R] [--block BYTES] [--delay-us U] [--where]
 *   alltoall --expect P [--rounds R] [--block BYTES]
 *
 * Block (r, src, dst) is a pseudo-random stream seeded by (r, src, dst), so
 * a receiver knows exactly what it should get.  Errors (wrong bytes) and a
 * digest (XOR of the FNV-64 of every block, mixed with its coordinates) are
 * reduced over all ranks.  --expect P computes, without any MPI traffic,
 * the line a correct run on P ranks prints.  Result line:
 *     alltoall ranks=P rounds=R block=B digest=HEX errors=E
 */
#include <mpi.h>

#include "tests/cluster/mpi/mpitest.h"

static void gen_block(unsigned char *p, size_t n, long r, int src, int dst)
{
	uint64_t s = (uint64_t)r * 0x9e3779b97f4a7c15ULL ^ (uint64_t)src << 40 ^
		     (uint64_t)dst << 20 ^ 0x5a5a;

	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = splitmix64(&s);

		memcpy(p + i, &v, n - i < 8 ? n - i : 8);
	}
}

static uint64_t block_digest(const unsigned char *p, size_t n, long r, int src, int dst)
{
	uint64_t h = fnv64(FNV64_INIT, p, n);

	h ^= (uint64_t)r << 32 ^ (uint64_t)src << 16 ^ (uint64_t)dst;
	return h * 0xff51afd7ed558ccdULL;
}

static void result(int nprocs, long rounds, long block, uint64_t digest, long long errors)
{
	printf("alltoall ranks=%d rounds=%ld block=%ld digest=%016llx errors=%lld\n", nprocs,
	       rounds, block, (unsigned long long)digest, errors);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	long rounds = 200, block = 16384, delay_us = 0, where = 0, expect = 0;
	unsigned char *sendbuf, *recvbuf, *want;
	long long errors = 0, total_errors = 0;
	uint64_t digest = 0, total_digest = 0;
	MPI_Request req;
	int rank, nprocs;

	for (int i = 1; i < argc; i++) {
		if (mpitest_opt(argc, argv, &i, "--rounds", &rounds) ||
		    mpitest_opt(argc, argv, &i, "--block", &block) ||
		    mpitest_opt(argc, argv, &i, "--delay-us", &delay_us) ||
		    mpitest_opt(argc, argv, &i, "--expect", &expect))
			continue;
		if (strcmp(argv[i], "--where") == 0) {
			where = 1;
			continue;
		}
		fprintf(stderr, "usage: alltoall [--rounds R] [--block BYTES] [--delay-us U] "
				"[--where] | --expect P\n");
		return 2;
	}
	if (block < 1 || block > (16 << 20)) {
		fprintf(stderr, "alltoall: --block must be 1..16M\n");
		return 2;
	}
	want = malloc((size_t)block);
	if (!want)
		return 1;
	if (expect) {
		/* The reference: same blocks, no communication. */
		for (long r = 0; r < rounds; r++)
			for (int src = 0; src < expect; src++)
				for (int dst = 0; dst < expect; dst++) {
					gen_block(want, (size_t)block, r, src, dst);
					digest ^= block_digest(want, (size_t)block, r, src, dst);
				}
		result((int)expect, rounds, block, digest, 0);
		free(want);
		return 0;
	}

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
	if (where)
		mpitest_where(rank);
	sendbuf = malloc((size_t)block * (size_t)nprocs);
	recvbuf = malloc((size_t)block * (size_t)nprocs);
	if (!sendbuf || !recvbuf)
		MPI_Abort(MPI_COMM_WORLD, 1);

	for (long r = 0; r < rounds; r++) {
		for (int dst = 0; dst < nprocs; dst++)
			gen_block(sendbuf + (size_t)dst * (size_t)block, (size_t)block, r, rank, dst);
		memset(recvbuf, 0, (size_t)block * (size_t)nprocs);
		if (delay_us)
			usleep((useconds_t)delay_us);
		MPI_Ialltoall(sendbuf, (int)block, MPI_BYTE, recvbuf, (int)block, MPI_BYTE,
			      MPI_COMM_WORLD, &req);
		mpitest_wait(&req);
		for (int src = 0; src < nprocs; src++) {
			const unsigned char *got = recvbuf + (size_t)src * (size_t)block;
			long long bad = 0;

			gen_block(want, (size_t)block, r, src, rank);
			for (long i = 0; i < block; i++)
				bad += got[i] != want[i];
			if (bad && errors < 5)
				fprintf(stderr, "alltoall: rank %d round %ld: %lld bad bytes from %d\n",
					rank, r, bad, src);
			errors += bad;
			digest ^= block_digest(got, (size_t)block, r, src, rank);
		}
	}
	MPI_Ireduce(&errors, &total_errors, 1, MPI_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD, &req);
	mpitest_wait(&req);
	MPI_Ireduce(&digest, &total_digest, 1, MPI_UINT64_T, MPI_BXOR, 0, MPI_COMM_WORLD, &req);
	mpitest_wait(&req);
	if (rank == 0)
		result(nprocs, rounds, block, total_digest, total_errors);
	free(sendbuf);
	free(recvbuf);
	free(want);
	MPI_Finalize();
	return total_errors ? 1 : 0;
}
