/*
 * image.c — `zapc checkpoint`, `zapc restore`, `zapc image show`.
 *
 *   zapc checkpoint POD -o DIR|- [--leave-running]
 *   zapc restore DIR|FILE|- [--pod NAME] [--ip ADDR]
 *   zapc image show DIR|FILE [--json]
 *
 * An image directory holds the stream as DIR/image.zapc.  The CLI opens the
 * files itself, as the caller, and passes the fd to the agent: the agent
 * never writes or reads a path on a user's behalf.  A checkpoint writes a
 * temporary file and renames it over image.zapc only when the agent reports
 * success, so a failed checkpoint leaves the previous image intact.
 * `image show` needs no agent: it runs zapc-engine's reader directly.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/fsutil.h"

#define IMAGE_FILE "image.zapc"

static int is_help(const char *a)
{
	return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static void human(uint64_t b, char *buf, size_t len)
{
	if (b >= (1u << 30))
		snprintf(buf, len, "%.2f GiB", (double)b / (1u << 30));
	else if (b >= (1u << 20))
		snprintf(buf, len, "%.1f MiB", (double)b / (1u << 20));
	else if (b >= 1024)
		snprintf(buf, len, "%.1f KiB", (double)b / 1024);
	else
		snprintf(buf, len, "%llu B", (unsigned long long)b);
}

/* DIR/image.zapc if path is a directory (or does not exist yet), else path itself. */
static void image_path(const char *path, char *out, size_t len)
{
	struct stat st;

	if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
		snprintf(out, len, "%s", path);
	else
		snprintf(out, len, "%s/%s", path, IMAGE_FILE);
}

static void checkpoint_usage(FILE *f)
{
	fprintf(f, "usage: zapc checkpoint POD -o DIR|- [--leave-running] [--parent PREV [--full-every N]]\n"
		   "                       [--track] [--compress[=LEVEL]]\n"
		   "  --parent PREV stores only the pages changed since the image in PREV (a\n"
		   "  directory or file); a full image is written after N increments (10).\n"
		   "  --track arms dirty tracking so the next increment is cheap (implied by\n"
		   "  --parent); --compress stores pages with zstd (level 3 by default).\n"
		   "  Save the pod's processes, memory, files and connections into DIR/%s\n"
		   "  (or the stream to stdout with -o -).  The pod is destroyed afterwards\n"
		   "  unless --leave-running; if the checkpoint fails it keeps running and a\n"
		   "  previous image in DIR stays as it was.\n", IMAGE_FILE);
}

int cmd_checkpoint(int argc, char **argv)
{
	Zapc__Request req = ZAPC__REQUEST__INIT;
	Zapc__Checkpoint ck = ZAPC__CHECKPOINT__INIT;
	Zapc__Response *resp = NULL;
	const char *pod = NULL, *out = NULL;
	char final[PATH_MAX], tmp[PATH_MAX + 32], size[32];
	int leave = 0, fd, rc, to_stdout;
	FILE *msg;
	const char *parent = NULL;
	char parent_abs[PATH_MAX];

	for (int i = 1; i < argc; i++) {
		if (is_help(argv[i])) {
			checkpoint_usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--leave-running") == 0) {
			leave = 1;
		} else if (strcmp(argv[i], "--parent") == 0 || strcmp(argv[i], "--full-every") == 0) {
			if (++i >= argc) {
				cli_err("checkpoint: %s needs a value", argv[i - 1]);
				return 2;
			}
			if (argv[i - 1][2] == 'p')
				parent = argv[i];
			else
				ck.full_every = (uint32_t)atoi(argv[i]);
		} else if (strcmp(argv[i], "--track") == 0) {
			ck.track = 1;
		} else if (strncmp(argv[i], "--compress", 10) == 0 && (!argv[i][10] || argv[i][10] == '=')) {
			ck.compress = argv[i][10] ? atoi(argv[i] + 11) : 3;
			if (ck.compress < 1)
				ck.compress = 1;
		} else if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) {
			if (++i >= argc) {
				cli_err("checkpoint: %s needs a directory or -", argv[i - 1]);
				return 2;
			}
			out = argv[i];
		} else if (argv[i][0] == '-') {
			cli_err("checkpoint: unknown option %s", argv[i]);
			return 2;
		} else if (!pod) {
			pod = argv[i];
		} else {
			cli_err("checkpoint: unexpected argument %s", argv[i]);
			return 2;
		}
	}
	if (!pod || !out) {
		checkpoint_usage(stderr);
		return 2;
	}
	to_stdout = strcmp(out, "-") == 0;
	msg = to_stdout ? stderr : stdout;
	if (to_stdout) {
		if (isatty(STDOUT_FILENO)) {
			cli_err("checkpoint: refusing to write an image to a terminal (redirect stdout)");
			return 2;
		}
		fd = STDOUT_FILENO;
	} else {
		if ((rc = mkdir_p(out, 0755)) < 0) {
			cli_err("checkpoint: cannot create directory %s: %s", out, strerror(-rc));
			return 1;
		}
		snprintf(final, sizeof(final), "%s/%s", out, IMAGE_FILE);
		snprintf(tmp, sizeof(tmp), "%s/.%s.%d.tmp", out, IMAGE_FILE, (int)getpid());
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			cli_err("checkpoint: cannot create %s: %s", tmp, strerror(errno));
			return 1;
		}
	}
	if (parent) {
		/* the caller must be able to read the parent; the engine gets its real path */
		char pf[PATH_MAX + 16];
		struct stat st;
		snprintf(pf, sizeof(pf), "%s", parent);
		if (stat(parent, &st) == 0 && S_ISDIR(st.st_mode))
			snprintf(pf, sizeof(pf), "%s/%s", parent, IMAGE_FILE);
		int pfd = open(pf, O_RDONLY | O_CLOEXEC);
		if (pfd < 0 || !realpath(pf, parent_abs)) {
			cli_err("checkpoint: parent image %s: %s", pf, strerror(errno));
			if (pfd >= 0)
				close(pfd);
			if (!to_stdout) {
				close(fd);
				unlink(tmp);
			}
			return 1;
		}
		close(pfd);
		ck.parent = parent_abs;
	}
	ck.name = (char *)pod;
	ck.leave_running = leave;
	req.cmd_case = ZAPC__REQUEST__CMD_CHECKPOINT;
	req.checkpoint = &ck;
	rc = cli_call(&req, &fd, 1, &resp);
	if (rc < 0 || resp->status != 0) {
		if (!to_stdout) {
			close(fd);
			unlink(tmp);
		}
		rc = rc < 0 ? 1 : cli_fail(resp);
		goto out;
	}
	if (!to_stdout) {
		char dirbuf[PATH_MAX];
		int dfd;

		/* Durable before it replaces the previous image. */
		if (fsync(fd) < 0 || close(fd) < 0 || rename(tmp, final) < 0) {
			cli_err("checkpoint: saving %s: %s", final, strerror(errno));
			unlink(tmp);
			rc = 1;
			goto out;
		}
		snprintf(dirbuf, sizeof(dirbuf), "%s", final);
		dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	if (resp->result_case == ZAPC__RESPONSE__RESULT_CHECKPOINT) {
		Zapc__CheckpointResult *cr = resp->checkpoint;

		human(cr->image_bytes, size, sizeof(size));
		fprintf(msg, "pod %s checkpointed%s%s: %u processes, %u threads, %s, frozen %.1f ms "
			"(%.1f ms in all)%s\n", pod, to_stdout ? "" : " to ", to_stdout ? "" : final,
			cr->processes, cr->threads, size, cr->frozen_us / 1000.0, cr->total_us / 1000.0,
			leave ? ", left running" : "");
	}
	rc = 0;
out:
	if (resp)
		zapc__response__free_unpacked(resp, NULL);
	return rc;
}

static void restore_usage(FILE *f)
{
	fprintf(f, "usage: zapc restore DIR|FILE|- [--pod NAME] [--ip ADDR] [--shift-clocks]\n"
		   "  Restore an image into a new pod.  --pod and --ip override the name and\n"
		   "  virtual IP recorded in the image (two restores of one image on one node\n"
		   "  need different ones).  Restores all or nothing.  The pod's monotonic and\n"
		   "  boot-time clocks continue from the checkpoint; --shift-clocks makes them\n"
		   "  count the time the pod was down too.\n");
}

int cmd_restore(int argc, char **argv)
{
	Zapc__Request req = ZAPC__REQUEST__INIT;
	Zapc__Restore rs = ZAPC__RESTORE__INIT;
	Zapc__Response *resp = NULL;
	const char *src = NULL, *name = "", *ip = "";
	char path[PATH_MAX + 16];
	int fd, rc;

	for (int i = 1; i < argc; i++) {
		if (is_help(argv[i])) {
			restore_usage(stdout);
			return 0;
		} else if ((strcmp(argv[i], "--pod") == 0 || strcmp(argv[i], "--ip") == 0)) {
			if (i + 1 >= argc) {
				cli_err("restore: %s needs a value", argv[i]);
				return 2;
			}
			if (argv[i][2] == 'p')
				name = argv[++i];
			else
				ip = argv[++i];
		} else if (strcmp(argv[i], "--shift-clocks") == 0) {
			rs.shift_clocks = 1;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			cli_err("restore: unknown option %s", argv[i]);
			return 2;
		} else if (!src) {
			src = argv[i];
		} else {
			cli_err("restore: unexpected argument %s", argv[i]);
			return 2;
		}
	}
	if (!src) {
		restore_usage(stderr);
		return 2;
	}
	if (strcmp(src, "-") == 0) {
		fd = STDIN_FILENO;
		snprintf(path, sizeof(path), "stdin");
	} else {
		image_path(src, path, sizeof(path));
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			cli_err("restore: cannot open %s: %s", path, strerror(errno));
			return 1;
		}
	}
	rs.name = (char *)name;
	rs.ip = (char *)ip;
	req.cmd_case = ZAPC__REQUEST__CMD_RESTORE;
	req.restore = &rs;
	rc = cli_call(&req, &fd, 1, &resp);
	if (fd != STDIN_FILENO)
		close(fd);
	if (rc < 0)
		return 1;
	if (resp->status != 0) {
		rc = cli_fail(resp);
	} else {
		if (resp->result_case == ZAPC__RESPONSE__RESULT_RESTORE && resp->restore->pod) {
			Zapc__RestoreResult *rr = resp->restore;

			printf("pod %s restored from %s: ip %s, init %d, %u processes, %u threads "
			       "(%.1f ms)\n", rr->pod->name, path, rr->pod->ip, rr->pod->init_pid,
			       rr->processes, rr->threads, rr->total_us / 1000.0);
		}
		rc = 0;
	}
	zapc__response__free_unpacked(resp, NULL);
	return rc;
}

/* zapc-engine: $ZAPC_ENGINE, next to zapc (build tree), else ../lib/zapc. */
static void find_engine(char *out, size_t len)
{
	char exe[PATH_MAX];
	const char *env = getenv("ZAPC_ENGINE");
	char *dir;
	ssize_t n;

	if (env && env[0]) {
		snprintf(out, len, "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		snprintf(out, len, "/usr/local/lib/zapc/zapc-engine");
		return;
	}
	exe[n] = 0;
	dir = dirname(exe);
	snprintf(out, len, "%s/zapc-engine", dir);
	if (access(out, X_OK) == 0)
		return;
	snprintf(out, len, "%s/../lib/zapc/zapc-engine", dir);
}

/* zapc image squash DIR -o OUTDIR [--compress[=LEVEL]]: one full image of a chain
 * (docs/incremental.md), written by zapc-engine as the caller. */
static int image_squash(int argc, char **argv)
{
	char engine[PATH_MAX + 32], path[PATH_MAX + 16], out[PATH_MAX + 16];
	const char *src = NULL, *dst = NULL, *z = NULL;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
			dst = argv[++i];
		else if (strncmp(argv[i], "--compress", 10) == 0)
			z = argv[i];
		else if (!src && argv[i][0] != '-')
			src = argv[i];
		else {
			cli_err("image squash: unexpected argument %s", argv[i]);
			return 2;
		}
	}
	if (!src || !dst) {
		cli_err("usage: zapc image squash DIR|FILE -o OUTDIR [--compress[=LEVEL]]");
		return 2;
	}
	int rc = mkdir_p(dst, 0755);
	if (rc < 0) {
		cli_err("image squash: cannot create directory %s: %s", dst, strerror(-rc));
		return 1;
	}
	image_path(src, path, sizeof(path));
	snprintf(out, sizeof(out), "%s/%s", dst, IMAGE_FILE);
	find_engine(engine, sizeof(engine));
	if (z)
		execl(engine, "zapc-engine", "squash", "-i", path, "-o", out, z, (char *)NULL);
	else
		execl(engine, "zapc-engine", "squash", "-i", path, "-o", out, (char *)NULL);
	cli_err("image squash: cannot run %s: %s", engine, strerror(errno));
	return 1;
}

int cmd_image(int argc, char **argv)
{
	char engine[PATH_MAX + 32], path[PATH_MAX + 16];
	const char *src = NULL;
	int json = 0;

	if (argc >= 2 && strcmp(argv[1], "squash") == 0)
		return image_squash(argc, argv);
	if (argc < 2 || is_help(argv[1]) || strcmp(argv[1], "show") != 0) {
		fprintf(argc >= 2 && is_help(argv[1]) ? stdout : stderr,
			"usage: zapc image show DIR|FILE [--json]\n"
			"       zapc image squash DIR|FILE -o OUTDIR [--compress[=LEVEL]]\n"
			"  A readable summary of an image: processes, threads, memory regions,\n"
			"  files, sizes (reads the image; needs no agent).  squash merges an\n"
			"  incremental chain into one full image.\n");
		return argc >= 2 && is_help(argv[1]) ? 0 : 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (is_help(argv[i])) {
			printf("usage: zapc image show DIR|FILE [--json]\n");
			return 0;
		} else if (!src)
			src = argv[i];
		else {
			cli_err("image show: unexpected argument %s", argv[i]);
			return 2;
		}
	}
	if (!src) {
		cli_err("image show: which image? (a directory or an image file)");
		return 2;
	}
	image_path(src, path, sizeof(path));
	find_engine(engine, sizeof(engine));
	if (json)
		execl(engine, "zapc-engine", "show", path, "--json", (char *)NULL);
	else
		execl(engine, "zapc-engine", "show", path, (char *)NULL);
	cli_err("image show: cannot run %s: %s", engine, strerror(errno));
	return 1;
}
