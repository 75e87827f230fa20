/*
 * tls_throughput.c — loopback throughput of plain TCP against lib/tls, the
 * figure behind "migration streaming ≥ 80% of plain TCP" (issue 6).
 *
 *   tls_throughput [--mib N] [--chunks 16,64,256,1024] [--suites S1,S2,...]
 *                  [--read-ahead KIB] [--reps N]
 *
 * Two processes (sender and receiver, as two agents would be) on loopback.
 * For each write size: plain TCP, then TLS 1.3 with each cipher suite, with
 * certificates from a throw-away cluster CA (cli/ca.c).  Timing starts after
 * the handshake and stops when the receiver acknowledges the last byte.
 * Prints MB/s for each and the ratio to plain TCP at the same write size.
 *
 *   tls_throughput --path agent [--mib N] [--suites ...] [--reps N]
 *
 * The migration path as the agents run it: a producer (the checkpointing
 * engine) writes the image into a pipe, the sending agent's helper copies
 * it to the peer (tls_stream_send), the receiving helper copies it into
 * another pipe (tls_stream_recv), a consumer (the restoring engine) reads
 * it.  The plain-TCP baseline is the same two functions without TLS.  Four
 * processes share the 2 CPUs; timing starts after the handshake and stops
 * when the consumer has the last byte.
 * (This kernel has no CONFIG_TLS, so kTLS is not an option here.)
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/ca.h"
#include "lib/log.h"
#include "lib/tls.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int listen_lo(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

static int connect_lo(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Receiver: read `total` bytes with reads of `chunk`, then send one byte. */
static int receive(int fd, SSL *ssl, size_t total, size_t chunk)
{
	char *buf = malloc(chunk), ack = 'k';
	size_t got = 0;

	while (buf && got < total) {
		ssize_t n = ssl ? tls_read(ssl, buf, chunk) : read(fd, buf, chunk);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	free(buf);
	if (got < total)
		return -1;
	return ssl ? tls_write_all(ssl, &ack, 1) : (write(fd, &ack, 1) == 1 ? 0 : -1);
}

static int send_all(int fd, SSL *ssl, const char *buf, size_t total, size_t chunk)
{
	size_t done = 0;

	while (done < total) {
		size_t n = total - done < chunk ? total - done : chunk;

		if (ssl) {
			if (tls_write_all(ssl, buf, n) < 0)
				return -1;
		} else {
			ssize_t w = write(fd, buf, n);

			if (w <= 0)
				return -1;
			n = (size_t)w;
		}
		done += n;
	}
	return 0;
}

/* One measurement: MB/s, or < 0 on failure.  suite NULL means plain TCP. */
static size_t read_ahead;	/* receiver's tls_ctx_set_read_ahead, bytes */

static double run(const char *dir, const char *suite, size_t total, size_t chunk)
{
	char *buf = malloc(chunk), ack;
	double t0, t1, rate = -1;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	int port, lfd, fd = -1, st;
	pid_t pid;

	lfd = listen_lo(&port);
	if (lfd < 0 || !buf)
		goto out;
	memset(buf, 0xa5, chunk);
	pid = fork();
	if (pid == 0) {
		SSL_CTX *sctx = NULL;
		SSL *sssl = NULL;
		int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), r = -1;

		if (cfd >= 0 && suite) {
			sctx = tls_ctx_new(dir, TLS_SERVER);
			if (sctx)
				tls_ctx_set_read_ahead(sctx, read_ahead);
			if (sctx && tls_ctx_set_ciphersuites(sctx, suite) == 0 &&
			    tls_accept_fd(sctx, cfd, 5000, &sssl) == 0)
				r = receive(cfd, sssl, total, chunk);
		} else if (cfd >= 0) {
			r = receive(cfd, NULL, total, chunk);
		}
		tls_close(sssl);
		SSL_CTX_free(sctx);
		_exit(r == 0 ? 0 : 1);
	}
	if (pid < 0)
		goto out;
	fd = connect_lo(port);
	if (fd < 0)
		goto reap;
	if (suite) {
		ctx = tls_ctx_new(dir, TLS_CLIENT);
		if (!ctx || tls_ctx_set_ciphersuites(ctx, suite) < 0 ||
		    tls_connect_fd(ctx, fd, "bench", 5000, &ssl) < 0)
			goto reap;
	}
	t0 = now();
	if (send_all(fd, ssl, buf, total, chunk) < 0)
		goto reap;
	if (ssl ? tls_read(ssl, &ack, 1) != 1 : read(fd, &ack, 1) != 1)
		goto reap;
	t1 = now();
	rate = (double)total / (t1 - t0) / 1e6;
reap:
	if (rate < 0 && fd >= 0)
		shutdown(fd, SHUT_RDWR);
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		rate = -1;
out:
	tls_close(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	if (lfd >= 0)
		close(lfd);
	free(buf);
	return rate;
}

/* ---- the agent path: producer | sender ==(TLS or TCP)==> receiver | consumer ---- */

struct agent_times {
	double t0, t1;
	uint64_t consumed;
};

static void produce(int out, size_t total)
{
	size_t chunk = 256 << 10, done = 0;
	char *buf = malloc(chunk);

	if (!buf)
		_exit(1);
	memset(buf, 0x5a, chunk);
	while (done < total) {
		size_t n = total - done < chunk ? total - done : chunk;
		ssize_t w = write(out, buf, n);

		if (w <= 0)
			_exit(1);
		done += (size_t)w;
	}
	_exit(0);
}

static void consume(int in, struct agent_times *tm)
{
	size_t chunk = 256 << 10;
	char *buf = malloc(chunk);
	ssize_t n;

	while (buf && (n = read(in, buf, chunk)) > 0)
		tm->consumed += (uint64_t)n;
	tm->t1 = now();
	_exit(0);
}

static int wait_ok(pid_t pid)
{
	int st;

	return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static double children_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_CHILDREN, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* MB/s; *cpu = CPU seconds of all four processes (handshakes included). */
static double run_agent(const char *dir, const char *suite, size_t total, double *cpu)
{
	double c0 = children_cpu();
	struct agent_times *tm = mmap(NULL, sizeof(*tm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int port, lfd = listen_lo(&port), ok;
	double rate = -1;
	pid_t rcv, snd;

	if (tm == MAP_FAILED || lfd < 0)
		return -1;
	memset(tm, 0, sizeof(*tm));
	rcv = fork();
	if (rcv == 0) {			/* receiving agent's helper + restoring engine */
		SSL_CTX *ctx = NULL;
		SSL *ssl = NULL;
		int q[2], fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), r = -1;
		pid_t cons;

		if (fd < 0 || pipe2(q, O_CLOEXEC) < 0)
			_exit(1);
		tls_stream_pipe_size(q[1]);
		if ((cons = fork()) == 0) {
			close(q[1]);
			consume(q[0], tm);
		}
		close(q[0]);
		if (suite) {
			ctx = tls_ctx_new(dir, TLS_SERVER);
			if (ctx)
				tls_ctx_set_read_ahead(ctx, read_ahead);
			if (ctx && tls_ctx_set_ciphersuites(ctx, suite) == 0 && tls_accept_fd(ctx, fd, 5000, &ssl) == 0)
				r = tls_stream_recv(ssl, fd, q[1], NULL);
		} else {
			r = tls_stream_recv(NULL, fd, q[1], NULL);
		}
		close(q[1]);
		tls_close(ssl);
		SSL_CTX_free(ctx);
		_exit(r == 0 && wait_ok(cons) ? 0 : 1);
	}
	snd = fork();
	if (snd == 0) {			/* checkpointing engine + sending agent's helper */
		SSL_CTX *ctx = NULL;
		SSL *ssl = NULL;
		int p[2], fd = connect_lo(port), r = -1;
		pid_t prod;

		close(lfd);
		if (fd < 0 || pipe2(p, O_CLOEXEC) < 0)
			_exit(1);
		tls_stream_pipe_size(p[1]);
		if (suite) {
			ctx = tls_ctx_new(dir, TLS_CLIENT);
			if (!ctx || tls_ctx_set_ciphersuites(ctx, suite) < 0 ||
			    tls_connect_fd(ctx, fd, "bench", 5000, &ssl) < 0)
				_exit(1);
		}
		tm->t0 = now();
		if ((prod = fork()) == 0) {
			close(p[0]);
			produce(p[1], total);
		}
		close(p[1]);
		r = tls_stream_send(p[0], ssl, fd, NULL);
		tls_close(ssl);
		SSL_CTX_free(ctx);
		close(fd);
		_exit(r == 0 && wait_ok(prod) ? 0 : 1);
	}
	close(lfd);
	ok = wait_ok(snd);
	ok = wait_ok(rcv) && ok;
	if (ok && tm->consumed == total && tm->t1 > tm->t0)
		rate = (double)total / (tm->t1 - tm->t0) / 1e6;
	*cpu = children_cpu() - c0;
	munmap(tm, sizeof(*tm));
	return rate;
}

static int split(char *s, char **out, int max)
{
	int n = 0;

	for (char *t = strtok(s, ","); t && n < max; t = strtok(NULL, ","))
		out[n++] = t;
	return n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Plain and each suite, interleaved rep by rep (the machine's load drifts). */
static void agent_bench(const char *dir, char **suites, int ns, size_t total, int reps)
{
	double r[9][32], cpu[9][32], best_ratio = 0;
	const char *best_suite = "";

	if (reps > 32)
		reps = 32;
	for (int k = 0; k < reps; k++)
		for (int s = -1; s < ns && s < 8; s++)
			r[s + 1][k] = run_agent(dir, s < 0 ? NULL : suites[s], total, &cpu[s + 1][k]);
	printf("# agent path: producer | sender ==> receiver | consumer, %zu MiB per run, %d runs, "
	       "receiver read-ahead %zu KiB; MB/s = 10^6 bytes/s\n", total >> 20, reps, read_ahead / 1024);
	printf("%-30s %10s %10s %10s %12s %10s\n", "transport", "best", "median", "vs TCP", "CPU s/GB", "TCP/this");
	for (int s = -1; s < ns && s < 8; s++) {
		qsort(r[s + 1], (size_t)reps, sizeof(double), cmp_double);
		qsort(cpu[s + 1], (size_t)reps, sizeof(double), cmp_double);
		double best = r[s + 1][reps - 1], med = r[s + 1][reps / 2];
		double tcp_med = r[0][reps / 2], gb = (double)total / 1e9;

		/* CPU per byte hardly depends on the other load of the machine:
		 * TCP/this is the throughput ratio on an idle 2-CPU machine if
		 * the pipeline keeps both CPUs busy. */
		printf("%-30s %10.0f %10.0f %9.0f%% %12.3f %9.0f%%\n", s < 0 ? "plain TCP" : suites[s], best, med,
		       tcp_med > 0 ? 100 * med / tcp_med : 0, cpu[s + 1][0] / gb,
		       100 * cpu[0][0] / cpu[s + 1][0]);
		if (s >= 0 && tcp_med > 0 && med / tcp_med > best_ratio) {
			best_ratio = med / tcp_med;
			best_suite = suites[s];
		}
	}
	printf("BENCH tls_agent_stream_tcp %.0f MB/s median, agent path without TLS\n", r[0][reps / 2]);
	printf("BENCH tls_agent_stream_cpu_ratio %.0f %% least CPU per byte, plain over %s\n",
	       100 * cpu[0][0] / cpu[1][0], ns > 0 ? suites[0] : "-");
	printf("BENCH tls_agent_stream_ratio %.0f %% target>=80, median TLS over median plain TCP, agent path, %s\n",
	       100 * best_ratio, best_suite);
}

int main(int argc, char **argv)
{
	char chunks_s[256] = "16,64,256,1024";
	char suites_s[512] = "TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,"
			     "TLS_CHACHA20_POLY1305_SHA256";
	char *chunks[16], *suites[8], tmp[] = "/tmp/zapc-tlsbench-XXXXXX", dir[128], cmd[160];
	const char *names[] = { "bench" };
	int nc, ns, reps = 3, agent_path = 0;
	long mib = 512;
	double best = 0, best_tcp = 0, best_tls = 0;
	const char *best_what = "";
	char best_buf[128];

	log_init("tls_throughput", 0);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc)
			mib = atol(argv[++i]);
		else if (strcmp(argv[i], "--chunks") == 0 && i + 1 < argc)
			snprintf(chunks_s, sizeof(chunks_s), "%s", argv[++i]);
		else if (strcmp(argv[i], "--suites") == 0 && i + 1 < argc)
			snprintf(suites_s, sizeof(suites_s), "%s", argv[++i]);
		else if (strcmp(argv[i], "--read-ahead") == 0 && i + 1 < argc)
			read_ahead = (size_t)atol(argv[++i]) * 1024;
		else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc)
			agent_path = strcmp(argv[++i], "agent") == 0;
		else {
			fprintf(stderr, "usage: tls_throughput [--mib N] [--chunks K1,K2 (KiB)] "
					"[--suites S1,S2] [--read-ahead KIB] [--reps N] [--path socket|agent]\n");
			return 2;
		}
	}
	if (mib < 1 || reps < 1 || !mkdtemp(tmp))
		return 2;
	snprintf(dir, sizeof(dir), "%s/node", tmp);
	{
		char cadir[128];
		struct ca_issue_req q = { .ca_dir = cadir, .name = names[0], .out_dir = dir };

		snprintf(cadir, sizeof(cadir), "%s/ca", tmp);
		if (ca_init(cadir, NULL, 0, 0) < 0 || ca_issue(&q) < 0)
			return 1;
	}
	nc = split(chunks_s, chunks, 16);
	ns = split(suites_s, suites, 8);
	if (agent_path) {
		agent_bench(dir, suites, ns, (size_t)mib << 20, reps);
		goto done;
	}
	printf("# loopback, %ld MiB per run, best of %d, receiver read-ahead %zu KiB; "
	       "MB/s = 10^6 bytes/s\n", mib, reps, read_ahead / 1024);
	printf("%-8s %-30s %10s %8s\n", "write", "transport", "MB/s", "vs TCP");
	for (int c = 0; c < nc; c++) {
		size_t chunk = (size_t)atol(chunks[c]) * 1024;
		double tcp = 0;

		for (int s = -1; s < ns; s++) {
			double r = -1;

			for (int k = 0; k < reps; k++) {
				double x = run(dir, s < 0 ? NULL : suites[s], (size_t)mib << 20, chunk);

				if (x > r)
					r = x;
			}
			if (s < 0)
				tcp = r;
			if (s < 0 && r > best_tcp)
				best_tcp = r;
			if (s >= 0 && r > best_tls)
				best_tls = r;
			printf("%-8s %-30s %10.0f %7.0f%%\n", chunks[c], s < 0 ? "plain TCP" : suites[s],
			       r, tcp > 0 ? 100 * r / tcp : 0);
			if (s >= 0 && tcp > 0 && r / tcp > best) {
				best = r / tcp;
				snprintf(best_buf, sizeof(best_buf), "%s with %s KiB writes", suites[s],
					 chunks[c]);
				best_what = best_buf;
			}
		}
	}
	printf("best TLS/TCP ratio: %.0f%% (%s); target >= 80%%\n", 100 * best, best_what);
	/* Figures for bench/run.sh. */
	printf("BENCH tls_stream_tcp %.0f MB/s plain loopback TCP, best write size\n", best_tcp);
	printf("BENCH tls_stream_tls %.0f MB/s lib/tls, best suite and write size\n", best_tls);
	printf("BENCH tls_stream_ratio %.0f %% target>=80, same write size, %s\n", 100 * best,
	       best_what);
	printf("BENCH tls_stream_best_ratio %.0f %% best TLS over best TCP, any write size\n",
	       best_tcp > 0 ? 100 * best_tls / best_tcp : 0);
done:
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "tls_throughput: could not remove %s\n", tmp);
	return 0;
}
