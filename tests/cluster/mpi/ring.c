/*
 * ring.c — a checksummed token forwarded around all ranks.
 *
 *   ring [--hops H] [--size BYTES] [--delay-us U] [--where]
 *
 * The token is a header {hop, sum} plus SIZE payload bytes.  Hop h goes
 * from rank (h-1) % P to rank h % P.  The receiver checks that the header
 * says hop h-1 and that the payload's FNV-64 equals the sum carried along
 * (any lost, duplicated or corrupted byte breaks it), then changes a few
 * payload words as a function of h and the sum and recomputes it.  The
 * final sum depends only on H and SIZE, not on the number of ranks, so a
 * one-rank run gives the expected result of any run.  Result line:
 *     ring hops=H size=S digest=HEX errors=E
 */
#include <mpi.h>

#include "tests/cluster/mpi/mpitest.h"

struct token_hdr {
	uint64_t hop;
	uint64_t sum;
};

static void mutate(unsigned char *payload, size_t size, uint64_t hop, uint64_t sum)
{
	uint64_t s = hop * 0x2545f4914f6cdd1dULL ^ sum;
	size_t words = size / 8;

	for (int k = 0; k < 4 && words > 0; k++) {
		uint64_t v, idx = splitmix64(&s) % words;

		memcpy(&v, payload + idx * 8, 8);
		v ^= splitmix64(&s);
		memcpy(payload + idx * 8, &v, 8);
	}
}

int main(int argc, char **argv)
{
	long hops = 20000, size = 4096, delay_us = 0, where = 0;
	unsigned char *tok, *tmp;
	struct token_hdr *hdr;
	long long errors = 0, total_errors = 0;
	uint64_t final_sum;
	int rank, nprocs;

	for (int i = 1; i < argc; i++) {
		if (mpitest_opt(argc, argv, &i, "--hops", &hops) ||
		    mpitest_opt(argc, argv, &i, "--size", &size) ||
		    mpitest_opt(argc, argv, &i, "--delay-us", &delay_us))
			continue;
		if (strcmp(argv[i], "--where") == 0) {
			where = 1;
			continue;
		}
		fprintf(stderr, "usage: ring [--hops H] [--size BYTES] [--delay-us U] [--where]\n");
		return 2;
	}
	if (size < 8 || size > (64 << 20)) {
		fprintf(stderr, "ring: --size must be 8..64M\n");
		return 2;
	}
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
	if (where)
		mpitest_where(rank);

	tok = calloc(1, sizeof(*hdr) + (size_t)size);
	tmp = calloc(1, sizeof(*hdr) + (size_t)size);
	if (!tok || !tmp)
		MPI_Abort(MPI_COMM_WORLD, 1);
	hdr = (struct token_hdr *)tok;
	if (rank == 0) {
		uint64_t s = 42;

		for (long i = 0; i + 8 <= size; i += 8) {
			uint64_t v = splitmix64(&s);

			memcpy(tok + sizeof(*hdr) + i, &v, 8);
		}
		hdr->hop = 0;
		hdr->sum = fnv64(FNV64_INIT, tok + sizeof(*hdr), (size_t)size);
	}

	for (long h = 1; h <= hops; h++) {
		int from = (int)((h - 1) % nprocs), to = (int)(h % nprocs);
		int count = (int)sizeof(*hdr) + (int)size;

		if (rank != from && rank != to)
			continue;
		if (rank == from && delay_us)
			usleep((useconds_t)delay_us);
		if (from == to) {
			memcpy(tmp, tok, (size_t)count);
			MPI_Sendrecv(tmp, count, MPI_BYTE, rank, 0, tok, count, MPI_BYTE, rank, 0,
				     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		} else if (rank == from) {
			MPI_Request req;

			MPI_Isend(tok, count, MPI_BYTE, to, 0, MPI_COMM_WORLD, &req);
			mpitest_wait(&req);
			continue;
		} else {
			MPI_Request req;

			MPI_Irecv(tok, count, MPI_BYTE, from, 0, MPI_COMM_WORLD, &req);
			mpitest_wait(&req);
		}
		/* The receiver checks the token, then changes it. */
		if (hdr->hop != (uint64_t)(h - 1) ||
		    hdr->sum != fnv64(FNV64_INIT, tok + sizeof(*hdr), (size_t)size)) {
			if (errors++ < 5)
				fprintf(stderr, "ring: rank %d hop %ld: token corrupt (hop field %llu)\n",
					rank, h, (unsigned long long)hdr->hop);
		}
		mutate(tok + sizeof(*hdr), (size_t)size, (uint64_t)h, hdr->sum);
		hdr->hop = (uint64_t)h;
		hdr->sum = fnv64(FNV64_INIT, tok + sizeof(*hdr), (size_t)size);
	}

	final_sum = hdr->sum;
	{
		MPI_Request req;

		MPI_Ibcast(&final_sum, 1, MPI_UINT64_T, (int)(hops % nprocs), MPI_COMM_WORLD, &req);
		mpitest_wait(&req);
		MPI_Ireduce(&errors, &total_errors, 1, MPI_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD,
			    &req);
		mpitest_wait(&req);
	}
	if (rank == 0)
		printf("ring hops=%ld size=%ld digest=%016llx errors=%lld\n", hops, size,
		       (unsigned long long)final_sum, total_errors);
	fflush(stdout);
	free(tok);
	free(tmp);
	MPI_Finalize();
	return total_errors ? 1 : 0;
}
