/*
 * show.c — `zapc-engine show FILE [--json]`: a readable summary of an image
 * (processes, threads, memory regions, fds, sizes), like CRIU's crit.  The
 * whole stream is read and verified, so show also checks an image.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/engine/engine.h"
#include "lib/log.h"

static const char *kind_name(int k)
{
	switch (k) {
	case VK_ANON: return "anon"; case VK_FILE: return "file"; case VK_SHM: return "shm";
	case VK_VDSO: return "vdso"; case VK_VVAR: return "vvar"; case VK_VCLOCK: return "vvar_vclock";
	case VK_VSYSCALL: return "vsyscall"; case VK_SYSV: return "sysv-shm"; default: return "?";
	}
}

static const char *fkind_name(int k)
{
	switch (k) {
	case FK_REG: return "file"; case FK_DIR: return "dir"; case FK_CHR: return "chr";
	case FK_PIPE: return "pipe"; case FK_FIFO: return "fifo"; case FK_MAPPED: return "mapped";
	case FK_EVENTFD: return "eventfd"; case FK_UNIX: return "unix"; case FK_EPOLL: return "epoll";
	case FK_TIMERFD: return "timerfd"; case FK_SIGNALFD: return "signalfd"; case FK_PIDFD: return "pidfd";
	case FK_INOTIFY: return "inotify"; case FK_MEMFD: return "memfd"; case FK_DELETED: return "deleted";
	case FK_PTY_MASTER: return "pty-master"; case FK_PTY_SLAVE: return "pty";
	default: return "?";
	}
}

/* pages the process shares with its parent (stored in the parent's records) */
static uint64_t cow_pages(const ImgProcCore *c)
{
	uint64_t n = 0;
	for (size_t k = 1; k < c->n_cow_parent; k += 2)
		n += c->cow_parent[k];
	return n;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static const char *lock_kind_name(LockKind k)
{
	return k == LOCK_KIND__LOCK_POSIX ? "POSIX" : k == LOCK_KIND__LOCK_OFD ? "OFD" : "flock";
}

static const char *file_key(const ImgFile *f)
{
	static char key[32];
	if (!f)
		return "";
	if (f->kind == FK_PIPE) {
		snprintf(key, sizeof(key), "pipe:[%u]", f->pipe_id);
		return key;
	}
	if (f->kind == FK_UNIX && f->unix_sock) {
		snprintf(key, sizeof(key), "socket:[%u]", f->unix_sock->ino);
		return key;
	}
	return f->path ? f->path : "";
}

static ImgFile *file_by_id(ImgFiles *fs, uint32_t id)
{
	for (size_t i = 0; fs && i < fs->n_files; i++)
		if (fs->files[i]->id == id)
			return fs->files[i];
	return NULL;
}

int show_main(int argc, char **argv)
{
	const char *path = NULL;
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else
			path = argv[i];
	}
	if (!path) {
		fprintf(stderr, "usage: zapc-engine show FILE [--json]\n");
		return 2;
	}
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
	if (fd < 0) {
		log_err("show: %s: %s", path, strerror(errno));
		return 1;
	}
	char ebuf[256];
	struct image_reader *in = image_reader_fd(fd, ebuf, sizeof(ebuf));
	if (!in) {
		log_err("%s", ebuf);
		return 1;
	}
	image_reader_set_namer(in, rec_name);
	ImgInfo *info = NULL;
	ImgTree *tree = NULL;
	ImgFiles *files = NULL;
	ImgProcCore **cores = NULL;
	size_t ncores = 0;
	uint64_t pagebytes = 0, shmbytes = 0, nthreads = 0, storedbytes = 0, storedpages = 0, presentpages = 0;
	ImgParent *parent = NULL;
	uint64_t *procpages = NULL;
	uint32_t type, len;
	int n, rc = 0;
	while ((n = image_next(in, &type, &len)) > 0) {
		if (type == REC_ZPAGES) {
			struct zpage_prefix zp;
			if (len < sizeof(zp) || image_read(in, &zp, sizeof(zp)) < 0) {
				n = -EPROTO;
				break;
			}
			pagebytes += (uint64_t)zp.npages * PAGE;
			storedbytes += len - sizeof(zp);
			storedpages += zp.npages;
			for (size_t i = 0; i < ncores; i++)
				if (cores[i]->pid == zp.owner)
					procpages[i] += (uint64_t)zp.npages * PAGE;
			continue;
		}
		if (type == REC_PARENT || type == REC_PAGE_INDEX) {
			void *b;
			if (image_read_all(in, &b, &len) < 0) {
				n = -EBADMSG;
				break;
			}
			if (type == REC_PARENT) {
				if (!parent)
					parent = img_parent__unpack(NULL, len, b);
			} else {
				ImgPageIndex *ix = img_page_index__unpack(NULL, len, b);
				for (size_t i = 1; ix && i < ix->n_present; i += 2)
					presentpages += ix->present[i];
				if (ix)
					img_page_index__free_unpacked(ix, NULL);
			}
			free(b);
			continue;
		}
		if (type == REC_PAGES || type == REC_SHM_PAGES) {
			struct page_prefix pp;
			if (len < sizeof(pp) || image_read(in, &pp, sizeof(pp)) < 0) {
				n = -EPROTO;
				break;
			}
			if (type == REC_PAGES) {
				pagebytes += len - sizeof(pp);
				storedbytes += len - sizeof(pp);
				storedpages += (len - sizeof(pp)) / PAGE;
				presentpages += (len - sizeof(pp)) / PAGE;
				for (size_t i = 0; i < ncores; i++)
					if (cores[i]->pid == pp.owner)
						procpages[i] += len - sizeof(pp);
			} else {
				shmbytes += len - sizeof(pp);
			}
			continue;
		}
		void *buf;
		if (image_read_all(in, &buf, &len) < 0) {
			n = -EBADMSG;
			break;
		}
		const ProtobufCMessageDescriptor *d = type == REC_INFO ? &img_info__descriptor :
			type == REC_TREE ? &img_tree__descriptor : type == REC_FILES ? &img_files__descriptor :
			type == REC_PROC ? &img_proc_core__descriptor : type == REC_THREAD ? &img_thread__descriptor : NULL;
		void *m = d ? protobuf_c_message_unpack(d, NULL, len, buf) : NULL;
		free(buf);
		if (!m) {
			log_err("show: record %llu '%s': malformed or unknown", (unsigned long long)image_reader_record_index(in),
				rec_name(type));
			rc = 1;
			goto out;
		}
		if (type == REC_INFO) info = m;
		else if (type == REC_TREE) tree = m;
		else if (type == REC_FILES) files = m;
		else if (type == REC_PROC) {
			cores = realloc(cores, (ncores + 1) * sizeof(*cores));
			procpages = realloc(procpages, (ncores + 1) * sizeof(*procpages));
			procpages[ncores] = 0;
			cores[ncores++] = m;
		} else {
			nthreads++;
			protobuf_c_message_free_unpacked(m, NULL);
		}
	}
	if (n < 0 || !info || !tree) {
		log_err("%s", n < 0 ? image_reader_error(in) : "show: image lacks info or tree");
		rc = 1;
		goto out;
	}
	if (json) {
		printf("{\"kernel\":");
		json_str(info->kernel_release);
		printf(",\"arch\":");
		json_str(info->arch);
		printf(",\"pod\":");
		json_str(info->pod_name ? info->pod_name : "");
		printf(",\"ctime\":%llu,\"tool\":", (unsigned long long)info->ctime);
		json_str(info->tool_version);
		printf(",\"page_bytes\":%llu,\"shm_bytes\":%llu,\"image_bytes\":%llu,\"threads\":%llu",
		       (unsigned long long)pagebytes, (unsigned long long)shmbytes,
		       (unsigned long long)image_reader_offset(in), (unsigned long long)nthreads);
		/* incremental / compressed images (docs/incremental.md): page_bytes is
		 * raw, stored_bytes what the page data takes in the image */
		printf(",\"stream_id\":\"%016llx\",\"flags\":%u,\"stored_pages\":%llu,\"stored_bytes\":%llu,"
		       "\"present_pages\":%llu,\"parent\":",
		       (unsigned long long)image_reader_header(in)->stream_id, image_reader_header(in)->flags,
		       (unsigned long long)storedpages, (unsigned long long)storedbytes,
		       (unsigned long long)presentpages);
		if (parent) {
			printf("{\"stream_id\":\"%016llx\",\"depth\":%u,\"path\":", (unsigned long long)parent->stream_id,
			       parent->depth);
			json_str(parent->path);
			printf("}");
		} else {
			printf("null");
		}
		printf(",\"locks\":[");     /* locks.c */
		for (size_t i = 0; files && i < files->n_locks; i++) {
			ImgFileLock *l = files->locks[i];
			printf("%s{\"kind\":\"%s\",\"write\":%s,\"start\":%llu,\"end\":", i ? "," : "",
			       lock_kind_name(l->kind), l->write ? "true" : "false", (unsigned long long)l->start);
			if (l->has_end)
				printf("%llu", (unsigned long long)l->end);
			else
				printf("null");
			printf(",\"pid\":%u,\"fd\":%u,\"path\":", l->pid, l->fd);
			json_str(file_key(file_by_id(files, l->file_id)));
			printf("}");
		}
		printf("]");
		printf(",\"processes\":[");
		for (size_t i = 0; i < tree->n_procs; i++) {
			ImgProc *p = tree->procs[i];
			ImgProcCore *c = NULL;
			size_t ci = 0;
			for (size_t k = 0; k < ncores; k++)
				if (cores[k]->pid == p->pid) { c = cores[k]; ci = k; }
			printf("%s{\"pid\":%u,\"ppid\":%u,\"pgid\":%u,\"sid\":%u,\"zombie\":%s,\"threads\":%zu",
			       i ? "," : "", p->pid, p->ppid, p->pgid, p->sid, p->zombie ? "true" : "false", p->n_tids);
			if (c) {
				printf(",\"comm\":");
				json_str(c->comm);
				printf(",\"page_bytes\":%llu,\"pages_from_parent\":%llu,\"vmas\":[",
				       (unsigned long long)procpages[ci], (unsigned long long)cow_pages(c));
				for (size_t k = 0; k < c->n_vmas; k++) {
					ImgVma *v = c->vmas[k];
					printf("%s{\"start\":\"%#llx\",\"end\":\"%#llx\",\"prot\":%u,\"kind\":\"%s\",\"name\":",
					       k ? "," : "", (unsigned long long)v->start, (unsigned long long)v->end, v->prot,
					       kind_name(v->kind));
					json_str(v->name);
					printf("}");
				}
				printf("],\"fds\":[");
				for (size_t k = 0; k < c->n_fds; k++) {
					ImgFile *f = file_by_id(files, c->fds[k]->file_id);
					printf("%s{\"fd\":%u,\"type\":\"%s\",\"path\":", k ? "," : "", c->fds[k]->fd,
					       f ? fkind_name(f->kind) : "?");
					json_str(file_key(f));
					printf("}");
				}
				printf("]");
			}
			printf("}");
		}
		printf("]}\n");
	} else {
		printf("image: %s, kernel %s, %s, %llu bytes\n", info->tool_version, info->kernel_release, info->arch,
		       (unsigned long long)image_reader_offset(in));
		printf("pod: %s, taken %llu, %zu processes, %llu threads, pages %llu KiB, shared memory %llu KiB\n",
		       info->pod_name ? info->pod_name : "-", (unsigned long long)info->ctime, tree->n_procs,
		       (unsigned long long)nthreads, (unsigned long long)pagebytes >> 10,
		       (unsigned long long)shmbytes >> 10);
		printf("pages: %llu present, %llu stored here, raw %llu KiB, stored %llu KiB%s\n",
		       (unsigned long long)presentpages, (unsigned long long)storedpages,
		       (unsigned long long)pagebytes >> 10, (unsigned long long)storedbytes >> 10,
		       image_reader_header(in)->flags & IMAGE_FLAG_INDEXED ? " (indexed)" : "");
		if (parent)
			printf("parent: %s (stream %016llx), increment %u of its chain\n", parent->path,
			       (unsigned long long)parent->stream_id, parent->depth);
		/* the pod's IPC namespace and its own mounts (sysv*.c, mounts.c) */
		for (size_t i = 0; files && i < files->n_sysv_shm; i++)
			printf("sysv shm: key %#x id %d size %llu mode %o owner %u:%u%s\n",
			       (unsigned)files->sysv_shm[i]->perm->key, files->sysv_shm[i]->perm->id,
			       (unsigned long long)files->sysv_shm[i]->size, files->sysv_shm[i]->perm->mode,
			       files->sysv_shm[i]->perm->uid, files->sysv_shm[i]->perm->gid,
			       files->sysv_shm[i]->has_dest && files->sysv_shm[i]->dest ? " removed" : "");
		for (size_t i = 0; files && i < files->n_sysv_sem; i++)
			printf("sysv sem: key %#x id %d %zu semaphores\n", (unsigned)files->sysv_sem[i]->perm->key,
			       files->sysv_sem[i]->perm->id, files->sysv_sem[i]->n_values);
		for (size_t i = 0; files && i < files->n_sysv_msg; i++)
			printf("sysv msg: key %#x id %d %zu messages\n", (unsigned)files->sysv_msg[i]->perm->key,
			       files->sysv_msg[i]->perm->id, files->sysv_msg[i]->n_msgs);
		for (size_t i = 0; files && i < files->n_mounts; i++)
			printf("mount: %s %s%s%s%s\n", files->mounts[i]->fstype, files->mounts[i]->mountpoint,
			       files->mounts[i]->source ? " from " : "", files->mounts[i]->source ? files->mounts[i]->source : "",
			       files->mounts[i]->n_files ? " (with content)" : "");
		for (size_t i = 0; files && i < files->n_locks; i++) {     /* locks.c */
			ImgFileLock *l = files->locks[i];
			char end[24] = "EOF";
			if (l->has_end)
				snprintf(end, sizeof(end), "%llu", (unsigned long long)l->end);
			printf("lock: %s %s %llu-%s on %s (pid %u fd %u)\n",
			       lock_kind_name(l->kind),
			       l->write ? "WRITE" : "READ", (unsigned long long)l->start, end,
			       file_key(file_by_id(files, l->file_id)), l->pid, l->fd);
		}
		for (size_t i = 0; i < tree->n_procs; i++) {
			ImgProc *p = tree->procs[i];
			ImgProcCore *c = NULL;
			size_t ci = 0;
			for (size_t k = 0; k < ncores; k++)
				if (cores[k]->pid == p->pid) { c = cores[k]; ci = k; }
			printf("\nprocess %u (ppid %u pgid %u sid %u)%s%s %s, %zu threads\n", p->pid, p->ppid, p->pgid,
			       p->sid, p->zombie ? " zombie" : "", p->has_stop_signo && p->stop_signo ? " stopped" : "",
			       c ? c->comm : "", p->n_tids);
			if (!c)
				continue;
			printf("  cwd %s  pages %llu KiB", c->cwd, (unsigned long long)procpages[ci] >> 10);
			if (c->n_cow_parent)     /* cowshare.c */
				printf(", %llu KiB shared with its parent", (unsigned long long)cow_pages(c) * PAGE >> 10);
			printf("\n");
			for (size_t k = 0; k < c->n_vmas; k++) {
				ImgVma *v = c->vmas[k];
				printf("  %012llx-%012llx %c%c%c%c %-6s %s\n", (unsigned long long)v->start,
				       (unsigned long long)v->end, v->prot & 1 ? 'r' : '-', v->prot & 2 ? 'w' : '-',
				       v->prot & 4 ? 'x' : '-', v->flags & 1 ? 's' : 'p', kind_name(v->kind),
				       v->name ? v->name : "");
			}
			for (size_t k = 0; k < c->n_fds; k++) {
				ImgFile *f = file_by_id(files, c->fds[k]->file_id);
				printf("  fd %u: %s %s%s\n", c->fds[k]->fd, f ? fkind_name(f->kind) : "?",
				       file_key(f), c->fds[k]->cloexec ? " (cloexec)" : "");
			}
		}
	}
out:
	if (parent)
		img_parent__free_unpacked(parent, NULL);
	image_reader_free(in);
	if (fd)
		close(fd);
	return rc;
}
