/*
 * cpi.c — pi by the midpoint rule, many rounds, with a barrier per round:
 * long enough to be checkpointed in the middle.
 *
 *   cpi [--intervals N] [--rounds R] [--delay-us U] [--where]
 *
 * Round k integrates 4/(1+x^2) over [0,1] with N+k intervals, cut into a
 * fixed number of blocks dealt round-robin to the ranks.  Each block is
 * summed in order by one rank, and the block sums are added in block order
 * on every rank (an Allreduce of an array in which each slot has exactly
 * one non-zero contributor, so x + 0 adds no rounding).  The result is thus
 * bit-identical for any number of ranks.  Result line:
 *     cpi rounds=R intervals=N pi=3.141592653589xxx digest=HEX
 * where digest is the FNV-64 of every round's pi as raw doubles.
 */
#include <math.h>
#include <mpi.h>

#include "tests/cluster/mpi/mpitest.h"

#define CPI_BLOCKS 256

int main(int argc, char **argv)
{
	long intervals = 1000000, rounds = 40, delay_us = 0, where = 0;
	double part[CPI_BLOCKS], sum[CPI_BLOCKS], pi = 0;
	uint64_t digest = FNV64_INIT;
	MPI_Request req;
	int rank, nprocs;

	for (int i = 1; i < argc; i++) {
		if (mpitest_opt(argc, argv, &i, "--intervals", &intervals) ||
		    mpitest_opt(argc, argv, &i, "--rounds", &rounds) ||
		    mpitest_opt(argc, argv, &i, "--delay-us", &delay_us))
			continue;
		if (strcmp(argv[i], "--where") == 0) {
			where = 1;
			continue;
		}
		fprintf(stderr, "usage: cpi [--intervals N] [--rounds R] [--delay-us U] [--where]\n");
		return 2;
	}
	if (intervals < CPI_BLOCKS || rounds < 1) {
		fprintf(stderr, "cpi: --intervals must be >= %d, --rounds >= 1\n", CPI_BLOCKS);
		return 2;
	}
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
	if (where)
		mpitest_where(rank);

	for (long k = 0; k < rounds; k++) {
		long n = intervals + k;
		double h = 1.0 / (double)n, total = 0;

		for (int b = 0; b < CPI_BLOCKS; b++) {
			long lo = n * b / CPI_BLOCKS, hi = n * (b + 1) / CPI_BLOCKS;
			double s = 0;

			if (b % nprocs == rank)
				for (long i = lo; i < hi; i++) {
					double x = h * ((double)i + 0.5);

					s += 4.0 / (1.0 + x * x);
				}
			part[b] = s;
		}
		MPI_Iallreduce(part, sum, CPI_BLOCKS, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &req);
		mpitest_wait(&req);
		for (int b = 0; b < CPI_BLOCKS; b++)
			total += sum[b];
		pi = h * total;
		digest = fnv64(digest, &pi, sizeof(pi));
		if (delay_us)
			usleep((useconds_t)delay_us);
		MPI_Ibarrier(MPI_COMM_WORLD, &req);
		mpitest_wait(&req);
	}
	if (rank == 0) {
		printf("cpi rounds=%ld intervals=%ld pi=%.15f digest=%016llx\n", rounds, intervals,
		       pi, (unsigned long long)digest);
		fflush(stdout);
		if (fabs(pi - M_PI) > 1e-9)
			fprintf(stderr, "cpi: pi %.15f is off by %.3e\n", pi, fabs(pi - M_PI));
	}
	MPI_Finalize();
	return 0;
}
