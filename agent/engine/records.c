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
	case REC_PARENT: return "parent";
	case REC_ZPAGES: return "zpages";
	case REC_PAGE_INDEX: return "page-index";
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

/* Pages of a process that were not copied while frozen (mm_late_read): read
 * now, at most 16 MiB at a time, and written from the reused buffer. */
static int put_late_runs(struct image_writer *w, struct dproc *p)
{
	for (int i = 0; i < p->nruns;) {
		size_t total = p->runs[i].npages * PAGE;
		int j = i + 1;
		while (j < p->nruns && total + p->runs[j].npages * PAGE <= PAGES_PER_RECORD * PAGE)
			total += p->runs[j++].npages * PAGE;
		int err = mm_late_read(p, p->runs + i, j - i);
		if (err == 0)
			err = put_runs(w, REC_PAGES, p->runs + i, j - i);
		for (int k = i; k < j; k++)
			p->runs[k].data = NULL;
		if (err < 0)
			return err;
		i = j;
	}
	return 0;
}

int pages_put(struct image_writer *w, bool indexed, int level, uint64_t addr, uint32_t np, uint32_t owner,
	      const uint8_t *data, uint64_t *stored_bytes);

/*
 * Indexed images: hash every page read, drop those the parent chain already
 * has with the same content (dedupe), and write the process's page index
 * (present pages, stored runs, hashes).  Runs here never cross a VMA: they
 * are pieces of the read runs, which don't.
 */
static int put_index(struct dump_ctx *d, struct image_writer *w, struct dproc *p, struct pagerun **stp, int *nstp)
{
	ImgPageIndex ix = IMG_PAGE_INDEX__INIT;
	struct pagerun *st = NULL;
	int nst = 0, cap = 0, err;
	size_t nh = 0;
	for (int i = 0; i < p->nruns; i++)
		nh += p->runs[i].npages;
	ix.pid = p->tree->pid;
	ix.hash = malloc((nh + 1) * 8);
	ix.n_present = (size_t)p->npresent * 2;
	ix.present = malloc((ix.n_present + 1) * 8);
	ix.stored = malloc((nh * 2 + 1) * 8);
	for (int i = 0; i < p->npresent; i++) {
		ix.present[2 * i] = p->present[i].addr;
		ix.present[2 * i + 1] = p->present[i].npages;
	}
	for (int i = 0; i < p->nruns; i++) {
		struct pagerun *r = &p->runs[i];
		for (uint32_t k = 0; k < r->npages; k++) {
			uint8_t *pg = r->data + (size_t)k * PAGE;
			uint64_t a = r->addr + k * PAGE, h = page_hash(pg);
			d->raw_bytes += PAGE;
			if (chain_index_same(d->pindex, p->tree->pid, a, h)) {
				d->deduped_pages++;
				continue;
			}
			ix.hash[ix.n_hash++] = h;
			d->stored_pages++;
			if (nst && st[nst - 1].addr + st[nst - 1].npages * PAGE == a &&
			    st[nst - 1].data + st[nst - 1].npages * PAGE == pg && st[nst - 1].npages < PAGES_PER_RECORD) {
				st[nst - 1].npages++;
				ix.stored[ix.n_stored - 1]++;
				continue;
			}
			if (nst == cap) {
				cap = cap ? cap * 2 : 64;
				st = realloc(st, (size_t)cap * sizeof(*st));
			}
			st[nst++] = (struct pagerun){ a, 1, p->tree->pid, pg };
			ix.stored[ix.n_stored++] = a;
			ix.stored[ix.n_stored++] = 1;
		}
	}
	err = put_msg(w, REC_PAGE_INDEX, &ix.base);
	free(ix.hash);
	free(ix.present);
	free(ix.stored);
	*stp = st;
	*nstp = nst;
	return err;
}

int dump_write(struct dump_ctx *d, int fd)
{
	char errbuf[256];
	uint32_t flags = d->indexed ? IMAGE_FLAG_INDEXED | (d->parent ? IMAGE_FLAG_INCREMENTAL : 0) : 0;
	struct image_writer *w = image_writer_fd(fd, flags, errbuf, sizeof(errbuf));
	struct pagerun **stored = NULL;
	int *nstored = NULL;
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
	d->stream_id = image_writer_header(w)->stream_id;
	if ((err = put_msg(w, REC_INFO, &d->info->base)) < 0 ||
	    (d->parent && (err = put_msg(w, REC_PARENT, &d->parent->base)) < 0) ||
	    (err = put_msg(w, REC_TREE, &d->tree->base)) < 0 ||
	    (err = put_msg(w, REC_FILES, &d->files->base)) < 0)
		goto out;
	/* every process's core first: the restored tree is forked from them */
	for (int i = 0; i < d->nprocs; i++)
		if (!d->procs[i].tree->zombie && (err = put_msg(w, REC_PROC, &d->procs[i].core->base)) < 0)
			goto out;
	if (d->indexed) {
		stored = xcalloc((size_t)d->nprocs, sizeof(*stored));
		nstored = xcalloc((size_t)d->nprocs, sizeof(*nstored));
		for (int i = 0; i < d->nprocs; i++)
			if (!d->procs[i].tree->zombie &&
			    (err = put_index(d, w, &d->procs[i], &stored[i], &nstored[i])) < 0)
				goto out;
	}
	if ((err = put_runs(w, REC_SHM_PAGES, d->shm_runs, d->nshm_runs)) < 0)
		goto out;
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		if (p->tree->zombie)
			continue;
		if (!d->indexed && p->late && (err = put_late_runs(w, p)) < 0)
			goto out;
		if (!d->indexed && !p->late && (err = put_runs(w, REC_PAGES, p->runs, p->nruns)) < 0)
			goto out;
		for (int k = 0; d->indexed && k < nstored[i]; k++)
			if ((err = pages_put(w, true, d->compress, stored[i][k].addr, stored[i][k].npages,
					     stored[i][k].owner, stored[i][k].data, NULL)) < 0)
				goto out;
		for (int j = 0; j < p->nth; j++)
			if ((err = put_msg(w, REC_THREAD, &p->th[j].img->base)) < 0)
				goto out;
		/* give big buffers back as soon as written; small ones are not
		 * worth a munmap each (TLB flush on every CPU the engine ran on) */
		if (p->pagebuf && p->pagebuf_len >= (4u << 20))
			munmap(p->pagebuf, p->pagebuf_len);
		p->pagebuf = NULL;
	}
	err = image_writer_finish(w);
	d->image_bytes = image_writer_bytes(w);
out:
	for (int i = 0; stored && i < d->nprocs; i++)
		free(stored[i]);
	free(stored);
	free(nstored);
	if (err < 0)
		log_err("dump: writing the image: %s", image_writer_error(w));
	image_writer_free(w);
	return err;
}
