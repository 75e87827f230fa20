/*
 * pod.c — `zapc pod ...`: create, exec, list, destroy.
 *
 *   zapc pod create NAME [--ip ADDR] [--root DIR] [--cwd DIR] -- CMD [ARGS...]
 *   zapc pod exec NAME [--cwd DIR] [--detach] -- CMD [ARGS...]
 *   zapc pod list [--json]
 *   zapc pod destroy NAME
 *   zapc pod log NAME        (the workload's stdout/stderr, read from the console file)
 *
 * The caller's environment goes with create and exec; exec passes the
 * caller's stdin, stdout and stderr to the command (SCM_RIGHTS) and exits
 * with the command's exit code; with --detach the command becomes a process
 * of the pod (child of its init, saved by a checkpoint) and exec returns as
 * soon as it started.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

extern char **environ;

static void usage(FILE *f)
{
	fprintf(f, "usage: zapc pod create NAME [--ip ADDR] [--root DIR] [--cwd DIR] -- CMD [ARGS...]\n"
		   "       zapc pod exec NAME [--cwd DIR] [--detach] -- CMD [ARGS...]\n"
		   "       zapc pod list [--json]\n"
		   "       zapc pod destroy NAME\n"
		   "       zapc pod log NAME\n");
}

static int is_help(const char *a)
{
	return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static size_t env_count(void)
{
	size_t n = 0;

	while (environ && environ[n])
		n++;
	return n;
}

/*
 * Parse NAME, options with a value (names in opts, values stored in vals;
 * a name written "+--flag" takes no value and stores "1"), then "--" and
 * the command.  Returns 0, or prints an error and returns 2.
 */
static int parse_cmdline(int argc, char **argv, const char *const opts[], const char **vals,
			 const char **name, char ***cmd, int *ncmd)
{
	int i;

	*name = NULL;
	*cmd = NULL;
	*ncmd = 0;
	for (i = 2; i < argc; i++) {
		int k, matched = 0;

		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (is_help(argv[i])) {
			usage(stdout);
			exit(0);
		}
		for (k = 0; opts[k]; k++) {
			if (opts[k][0] == '+' && strcmp(argv[i], opts[k] + 1) == 0) {
				vals[k] = "1";
				matched = 1;
				break;
			}
			if (strcmp(argv[i], opts[k]) == 0) {
				if (i + 1 >= argc) {
					cli_err("pod %s: %s needs a value", argv[1], opts[k]);
					return 2;
				}
				vals[k] = argv[++i];
				matched = 1;
				break;
			}
		}
		if (matched)
			continue;
		if (argv[i][0] == '-') {
			cli_err("pod %s: unknown option %s", argv[1], argv[i]);
			return 2;
		}
		if (*name)
			break;	/* the command starts here */
		*name = argv[i];
	}
	if (!*name) {
		cli_err("pod %s: no pod name given", argv[1]);
		return 2;
	}
	if (i >= argc) {
		cli_err("pod %s: no command given (zapc pod %s NAME -- CMD)", argv[1], argv[1]);
		return 2;
	}
	*cmd = argv + i;
	*ncmd = argc - i;
	return 0;
}

static int pod_create(int argc, char **argv)
{
	static const char *const opts[] = { "--ip", "--root", "--cwd", NULL };
	const char *vals[3] = { NULL, NULL, NULL }, *name;
	Zapc__PodCreate pc = ZAPC__POD_CREATE__INIT;
	Zapc__Request req = ZAPC__REQUEST__INIT;
	Zapc__Response *resp = NULL;
	char **cmd;
	int ncmd, rc;

	rc = parse_cmdline(argc, argv, opts, vals, &name, &cmd, &ncmd);
	if (rc)
		return rc;
	pc.name = (char *)name;
	if (vals[0])
		pc.ip = (char *)vals[0];
	if (vals[1]) {
		char *abs = realpath(vals[1], NULL);

		if (!abs) {
			cli_err("pod create: root %s: not found", vals[1]);
			return 1;
		}
		pc.root = abs;
	}
	if (vals[2])
		pc.cwd = (char *)vals[2];
	pc.argv = cmd;
	pc.n_argv = (size_t)ncmd;
	pc.env = environ;
	pc.n_env = env_count();
	req.cmd_case = ZAPC__REQUEST__CMD_POD_CREATE;
	req.pod_create = &pc;
	rc = cli_call(&req, NULL, 0, &resp);
	if (vals[1])
		free(pc.root);
	if (rc < 0)
		return 1;
	if (resp->status != 0) {
		rc = cli_fail(resp);
	} else if (resp->result_case == ZAPC__RESPONSE__RESULT_POD) {
		printf("pod %s: ip %s, mac %s, init pid %d\n", resp->pod->name, resp->pod->ip,
		       resp->pod->mac, resp->pod->init_pid);
	}
	zapc__response__free_unpacked(resp, NULL);
	return rc;
}

static int pod_exec(int argc, char **argv)
{
	static const char *const opts[] = { "--cwd", "+--detach", NULL };
	const char *vals[2] = { NULL, NULL }, *name;
	Zapc__PodExec pe = ZAPC__POD_EXEC__INIT;
	Zapc__Request req = ZAPC__REQUEST__INIT;
	Zapc__Response *resp = NULL;
	int stdio[3] = { 0, 1, 2 };
	char **cmd;
	int ncmd, rc;

	rc = parse_cmdline(argc, argv, opts, vals, &name, &cmd, &ncmd);
	if (rc)
		return rc;
	pe.name = (char *)name;
	if (vals[0])
		pe.cwd = (char *)vals[0];
	pe.detach = vals[1] != NULL;
	pe.argv = cmd;
	pe.n_argv = (size_t)ncmd;
	pe.env = environ;
	pe.n_env = env_count();
	req.cmd_case = ZAPC__REQUEST__CMD_POD_EXEC;
	req.pod_exec = &pe;
	fflush(stdout);
	rc = cli_call(&req, stdio, 3, &resp);
	if (rc < 0)
		return 1;
	if (resp->status != 0)
		rc = cli_fail(resp);
	else if (resp->result_case == ZAPC__RESPONSE__RESULT_EXEC)
		rc = resp->exec->exit_code;
	else
		rc = cli_fail(resp);
	zapc__response__free_unpacked(resp, NULL);
	return rc;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static int pod_list(int argc, char **argv)
{
	Zapc__PodList pl = ZAPC__POD_LIST__INIT;
	Zapc__Request req = ZAPC__REQUEST__INIT;
	Zapc__Response *resp = NULL;
	int json = 0, rc = 0;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (is_help(argv[i])) {
			usage(stdout);
			return 0;
		} else {
			cli_err("pod list: unexpected argument %s", argv[i]);
			return 2;
		}
	}
	req.cmd_case = ZAPC__REQUEST__CMD_POD_LIST;
	req.pod_list = &pl;
	if (cli_call(&req, NULL, 0, &resp) < 0)
		return 1;
	if (resp->status != 0 || resp->result_case != ZAPC__RESPONSE__RESULT_PODS) {
		rc = cli_fail(resp);
		goto out;
	}
	if (json) {
		printf("[");
		for (size_t i = 0; i < resp->pods->n_pods; i++) {
			Zapc__PodInfo *p = resp->pods->pods[i];

			printf("%s\n  {\"name\": ", i ? "," : "");
			json_str(p->name);
			printf(", \"ip\": ");
			json_str(p->ip);
			printf(", \"mac\": ");
			json_str(p->mac);
			printf(", \"state\": ");
			json_str(p->state);
			printf(", \"init_pid\": %d, \"owner_uid\": %u, \"owner_gid\": %u, \"created\": %lld",
			       p->init_pid, p->owner_uid, p->owner_gid, (long long)p->created);
			printf(", \"root\": ");
			json_str(p->root);
			printf(", \"veth\": ");
			json_str(p->veth);
			printf(", \"console\": ");
			json_str(p->console);
			printf(", \"argv\": [");
			for (size_t a = 0; a < p->n_argv; a++) {
				printf("%s", a ? ", " : "");
				json_str(p->argv[a]);
			}
			printf("]}");
		}
		printf("%s]\n", resp->pods->n_pods ? "\n" : "");
	} else {
		printf("%-16s %-15s %-8s %8s %6s  %s\n", "NAME", "IP", "STATE", "INIT", "OWNER", "COMMAND");
		for (size_t i = 0; i < resp->pods->n_pods; i++) {
			Zapc__PodInfo *p = resp->pods->pods[i];

			printf("%-16s %-15s %-8s %8d %6u  ", p->name, p->ip, p->state, p->init_pid,
			       p->owner_uid);
			for (size_t a = 0; a < p->n_argv; a++)
				printf("%s%s", a ? " " : "", p->argv[a]);
			putchar('\n');
		}
	}
out:
	zapc__response__free_unpacked(resp, NULL);
	return rc;
}

static int pod_destroy(int argc, char **argv)
{
	Zapc__PodDestroy pd = ZAPC__POD_DESTROY__INIT;
	Zapc__Request req = ZAPC__REQUEST__INIT;
	Zapc__Response *resp = NULL;
	int rc = 0;

	if (argc >= 3 && is_help(argv[2])) {
		usage(stdout);
		return 0;
	}
	if (argc != 3) {
		cli_err("usage: zapc pod destroy NAME");
		return 2;
	}
	pd.name = argv[2];
	req.cmd_case = ZAPC__REQUEST__CMD_POD_DESTROY;
	req.pod_destroy = &pd;
	if (cli_call(&req, NULL, 0, &resp) < 0)
		return 1;
	if (resp->status != 0)
		rc = cli_fail(resp);
	zapc__response__free_unpacked(resp, NULL);
	return rc;
}

static int pod_log(int argc, char **argv)
{
	Zapc__PodList pl = ZAPC__POD_LIST__INIT;
	Zapc__Request req = ZAPC__REQUEST__INIT;
	Zapc__Response *resp = NULL;
	const char *console = NULL;
	char buf[65536];
	size_t n;
	FILE *f;
	int rc = 1;

	if (argc >= 3 && is_help(argv[2])) {
		usage(stdout);
		return 0;
	}
	if (argc != 3) {
		cli_err("usage: zapc pod log NAME");
		return 2;
	}
	req.cmd_case = ZAPC__REQUEST__CMD_POD_LIST;
	req.pod_list = &pl;
	if (cli_call(&req, NULL, 0, &resp) < 0)
		return 1;
	if (resp->status != 0 || resp->result_case != ZAPC__RESPONSE__RESULT_PODS) {
		rc = cli_fail(resp);
		goto out;
	}
	for (size_t i = 0; i < resp->pods->n_pods; i++)
		if (strcmp(resp->pods->pods[i]->name, argv[2]) == 0)
			console = resp->pods->pods[i]->console;
	if (!console) {
		cli_err("pod %s: no such pod", argv[2]);
		goto out;
	}
	f = fopen(console, "re");
	if (!f) {
		cli_err("pod %s: console %s: %m", argv[2], console);
		goto out;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stdout);
	fclose(f);
	rc = 0;
out:
	zapc__response__free_unpacked(resp, NULL);
	return rc;
}

int cmd_pod(int argc, char **argv)
{
	static const struct { const char *name; int (*fn)(int, char **); } subs[] = {
		{ "create", pod_create }, { "exec", pod_exec },
		{ "list", pod_list }, { "ls", pod_list }, { "destroy", pod_destroy },
		{ "log", pod_log },
	};

	if (argc < 2 || is_help(argv[1])) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].fn(argc, argv);
	cli_err("pod: unknown subcommand '%s' (see zapc pod --help)", argv[1]);
	return 2;
}
