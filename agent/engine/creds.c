/*
 * creds.c — per-process attributes: user/group ids and groups, rlimits,
 * cwd, root, umask, personality.
 *
 * Dump reads them from outside (/proc/PID/status, cwd, root, personality,
 * prlimit).  Restore: cwd/root/umask/personality inside the new task (early);
 * rlimits from the engine with prlimit, only ever lowered (the engine has no
 * CAP_SYS_RESOURCE, probe §1; research/cr-mechanics.md §7.5); ids last, by
 * injection, because dropping privileges earlier would forbid the rest
 * (clone3 set_tid needs CAP_CHECKPOINT_RESTORE, §4.6).  Capabilities beyond
 * what the uid change implies are not restored yet.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/engine/engine.h"
#include "lib/log.h"

int creds_dump(struct dump_ctx *d, struct dproc *p)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", p->hpid);
	char *st = p->status ? p->status : read_file_str(path, NULL);
	if (!st)
		return -errno;
	ImgCreds *c = p->core->creds;
	uint32_t ids[4];
	if (status_field_ids(st, "Uid", ids, 4) == 4) {
		c->n_uids = 4;
		c->uids = xcalloc(4, sizeof(uint32_t));
		memcpy(c->uids, ids, sizeof(ids));
	}
	if (status_field_ids(st, "Gid", ids, 4) == 4) {
		c->n_gids = 4;
		c->gids = xcalloc(4, sizeof(uint32_t));
		memcpy(c->gids, ids, sizeof(ids));
	}
	uint32_t groups[256];
	int ng = status_field_ids(st, "Groups", groups, 256);
	if (ng > 0) {
		c->n_groups = (size_t)ng;
		c->groups = xcalloc((size_t)ng, sizeof(uint32_t));
		memcpy(c->groups, groups, (size_t)ng * sizeof(uint32_t));
	}
	const char *um = strstr(st, "Umask:\t");
	p->core->umask = um ? (uint32_t)strtoul(um + 7, NULL, 8) : 022;
	if (st != p->status)
		free(st);

	snprintf(path, sizeof(path), "/proc/%d/cwd", p->hpid);
	if (read_link(path, buf, sizeof(buf)) < 0)
		return -errno;
	p->core->cwd = xstrdup(buf);
	snprintf(path, sizeof(path), "/proc/%d/root", p->hpid);
	if (read_link(path, buf, sizeof(buf)) < 0)
		return -errno;
	p->core->root = xstrdup(buf);
	if (strstr(p->core->cwd, " (deleted)")) {
		log_err("dump: pid %u: cwd '%s' is deleted", p->tree->pid, p->core->cwd);
		return -ENOTSUP;
	}
	snprintf(path, sizeof(path), "/proc/%d/personality", p->hpid);
	p->core->personality = proc_read_small(path, buf, sizeof(buf)) > 0 ? (uint32_t)strtoul(buf, NULL, 16) : 0;
	/* status "Name:" is comm with only '\\' and '\n' escaped (proc_task_name,
	 * seq_escape_str with only "\n\\"): without a backslash it is comm itself */
	const char *nm = p->status && !strncmp(p->status, "Name:\t", 6) ? p->status + 6 : NULL;
	size_t nl = nm ? strcspn(nm, "\n") : 0;
	snprintf(path, sizeof(path), "/proc/%d/comm", p->hpid);
	if (nm && nl < 64 && !memchr(nm, '\\', nl)) {
		p->core->comm = strndup(nm, nl);
	} else if (proc_read_small(path, buf, sizeof(buf)) >= 0) {
		buf[strcspn(buf, "\n")] = 0;
		p->core->comm = xstrdup(buf);
	} else {
		p->core->comm = xstrdup("");
	}
	/* prlimit(pid) on another uid needs CAP_SYS_RESOURCE (check_prlimit_permission),
	 * which we lack: /proc/PID/limits lists resources 0..15 in order instead */
	snprintf(path, sizeof(path), "/proc/%d/limits", p->hpid);
	char *lim = proc_read_small(path, buf, sizeof(buf)) >= 0 ? buf : read_file_str(path, NULL);
	char *line = lim ? strchr(lim, '\n') : NULL;
	for (int res = 0; line && res < RLIM_NLIMITS; res++) {
		line++;
		char *nl = strchr(line, '\n');
		if (!nl || nl - line < 27)
			break;
		*nl = 0;
		char a[32], b[32];
		if (sscanf(line + 26, "%31s %31s", a, b) == 2) {
			ImgRlimit *r = PB_PUSH(p->core, rlimits, ImgRlimit, img_rlimit__init);
			r->res = (uint32_t)res;
			r->cur = !strcmp(a, "unlimited") ? RLIM_INFINITY : strtoull(a, NULL, 10);
			r->max = !strcmp(b, "unlimited") ? RLIM_INFINITY : strtoull(b, NULL, 10);
		}
		line = nl;
	}
	if (lim != buf)
		free(lim);
	(void)d;
	return 0;
}

/* Runs inside the new task (engine code, before it is seized). */
int creds_restore_early(struct rst_ctx *r, struct rproc *p)
{
	ImgProcCore *c = p->core;
	if (strcmp(c->root, "/")) {
		if (chroot(c->root) < 0) {
			log_err("restore: pid %u: chroot %s: %s", p->tree->pid, c->root, strerror(errno));
			return -errno;
		}
	}
	if (chdir(c->cwd) < 0) {
		log_err("restore: pid %u: cwd %s: %s", p->tree->pid, c->cwd, strerror(errno));
		return -errno;
	}
	umask(c->umask & 0777);
	if (personality(c->personality) < 0) {
		log_err("restore: pid %u: personality %#x: %s", p->tree->pid, c->personality, strerror(errno));
		return -errno;
	}
	(void)r;
	return 0;
}

int creds_restore_late(struct rst_ctx *r, struct rproc *p)
{
	ImgCreds *c = p->core->creds;
	struct inj *t = &p->tinj[0];
	long x;
	/* rlimits: never above what the task has — ours: it is a fork of this
	 * process or of the seed this process's init exec'd (restore_seed.c),
	 * and it inherited them (the same for every task: read once); set by
	 * the task itself (a queued prlimit on
	 * pid 0: prlimit on another process needs CAP_SYS_RESOURCE when the
	 * uids differ) */
	static struct rlimit ours[RLIM_NLIMITS];
	static bool have[RLIM_NLIMITS], known[RLIM_NLIMITS];
	for (size_t i = 0; i < p->core->n_rlimits; i++) {
		ImgRlimit *l = p->core->rlimits[i];
		struct rlimit cur, want;
		if (l->res >= RLIM_NLIMITS)
			continue;
		if (!known[l->res]) {
			known[l->res] = true;
			have[l->res] = getrlimit((int)l->res, &ours[l->res]) == 0;
		}
		if (!have[l->res])
			continue;
		cur = ours[l->res];
		want.rlim_max = l->max < cur.rlim_max ? l->max : cur.rlim_max;
		want.rlim_cur = l->cur < want.rlim_max ? l->cur : want.rlim_max;
		log_debug("restore: pid %u: rlimit %u: %llu/%llu -> %llu/%llu", p->tree->pid, l->res,
			  (unsigned long long)cur.rlim_cur, (unsigned long long)cur.rlim_max,
			  (unsigned long long)want.rlim_cur, (unsigned long long)want.rlim_max);
		if (want.rlim_max != cur.rlim_max || want.rlim_cur != cur.rlim_cur)
			rq_add(p, "restore: rlimit", 0, SYS_prlimit64, 0, l->res, rq_data(r, p, &want, sizeof(want)), 0, 0, 0);
	}
	if (c->n_groups > 65536 || c->n_uids != 4 || c->n_gids != 4)
		return c->n_uids == 0 ? 0 : -EINVAL;
	int err;
	bool root = !c->uids[0] && !c->uids[1] && !c->uids[2] && !c->gids[0] && !c->gids[1] && !c->gids[2];
	if (root && c->n_groups == 0)
		return 0;
	if (c->n_groups * 4 > 3 * PAGE)
		return -E2BIG;
	if (p->nth == 1 && c->n_groups * 4 <= PAGE) {
		uint64_t g = c->n_groups ? rq_data(r, p, c->groups, c->n_groups * 4) : 0;
		rq_add(p, "restore: setgroups", 0, SYS_setgroups, c->n_groups, g, 0, 0, 0, 0);
		rq_add(p, "restore: setresgid", 0, SYS_setresgid, c->gids[0], c->gids[1], c->gids[2], 0, 0, 0);
		rq_add(p, "restore: setresuid", 0, SYS_setresuid, c->uids[0], c->uids[1], c->uids[2], 0, 0, 0);
		return 0;
	}
	if ((err = rq_flush(r, p)) < 0)     /* injected one by one below */
		return err;
	if (c->n_groups && (err = mem_write(p->hpid, r->scratch_addr, c->groups, c->n_groups * 4)) < 0)
		return err;
	/* credentials are per thread (glibc broadcasts setxid; so do we) */
	for (int i = 0; i < p->nth; i++) {
		t = &p->tinj[i];
		if ((x = inj_call(t, "restore: setgroups", SYS_setgroups, c->n_groups, r->scratch_addr, 0, 0, 0, 0)) < 0 ||
		    (x = inj_call(t, "restore: setresgid", SYS_setresgid, c->gids[0], c->gids[1], c->gids[2], 0, 0, 0)) < 0 ||
		    (x = inj_call(t, "restore: setresuid", SYS_setresuid, c->uids[0], c->uids[1], c->uids[2], 0, 0, 0)) < 0)
			return (int)x;
	}
	return 0;
}
