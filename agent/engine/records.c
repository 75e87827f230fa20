/*
 * records.c — writing the dump model as image records (restore order) and
 * naming record types for error messages.  See docs/image-format.md.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "agent/engine/engine.h"
#include "lib/log.h"

const char *rec_name(uint32_t type)
{
	switch (type) {
	case REC_INFO: return "info";
	case REC_TREE: return "tree";
	case REC_FILES: return "files";
	case REC_SHM_PAGES: return "shm-pages";
	case REC_PROC: return "proc";
	case REC_PAGES: return "pages";
	case REC_THREAD: return "thread";
	default: return "unknown";
	}
}

static int put_msg(struct image_writer *w, uint32_t type, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	protobuf_c_message_pack(m, buf);
	int err = image_write(w, type, buf, len);
	free(buf);
	return err;
}

static int put_runs(struct image_writer *w, uint32_t type, struct pagerun *runs, int n)
{
	for (int i = 0; i < n; i++) {
		struct page_prefix pp = { runs[i].addr, runs[i].npages, runs[i].owner };
		struct iovec iov[2] = { { &pp, sizeof(pp) }, { runs[i].data, runs[i].npages * PAGE } };
		int err = image_writev(w, type, iov, 2);
		if (err < 0)
			return err;
	}
	return 0;
}

int dump_write(struct dump_ctx *d, int fd)
{
	char errbuf[256];
	struct image_writer *w = image_writer_fd(fd, 0, errbuf, sizeof(errbuf));
	int err = 0;
	if (!w) {
		log_err("dump: %s", errbuf);
		return -EIO;
	}
	d->tree->n_procs = (size_t)d->nprocs;
	d->tree->procs = xcalloc((size_t)d->nprocs, sizeof(ImgProc *));
	for (int i = 0; i < d->nprocs; i++) {
		d->tree->procs[i] = d->procs[i].tree;
		if (d->procs[i].th && !d->procs[i].tree->zombie && d->procs[i].th[0].stop_sig)
			SETOPT(d->procs[i].tree, stop_signo, (uint32_t)d->procs[i].th[0].stop_sig);
	}
	if ((err = put_msg(w, REC_INFO, &d->info->base)) < 0 || (err = put_msg(w, REC_TREE, &d->tree->base)) < 0 ||
	    (err = put_msg(w, REC_FILES, &d->files->base)) < 0)
		goto out;
	/* every process's core first: the restored tree is forked from them */
	for (int i = 0; i < d->nprocs; i++)
		if (!d->procs[i].tree->zombie && (err = put_msg(w, REC_PROC, &d->procs[i].core->base)) < 0)
			goto out;
	if ((err = put_runs(w, REC_SHM_PAGES, d->shm_runs, d->nshm_runs)) < 0)
		goto out;
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		if (p->tree->zombie)
			continue;
		if ((err = put_runs(w, REC_PAGES, p->runs, p->nruns)) < 0)
			goto out;
		for (int j = 0; j < p->nth; j++)
			if ((err = put_msg(w, REC_THREAD, &p->th[j].img->base)) < 0)
				goto out;
		if (p->pagebuf)
			munmap(p->pagebuf, p->pagebuf_len);
		p->pagebuf = NULL;
	}
	err = image_writer_finish(w);
	d->image_bytes = image_writer_bytes(w);
out:
	if (err < 0)
		log_err("dump: writing the image: %s", image_writer_error(w));
	image_writer_free(w);
	return err;
}
