/*
 * chain.c — incremental images: page hashes, the parent chain's page index
 * (for dedupe at dump), and squashing a chain into one image (for restore
 * and `zapc image squash`).  docs/incremental.md has the rules.
 *
 * An incremental image holds every non-page record in full, a REC_PARENT
 * naming its parent (stream id + path), and per process a REC_PAGE_INDEX:
 * the pages the process has ("present") and the ones stored in this image.
 * A present page that is not stored here comes from the nearest ancestor
 * that stores it.  Every link is read completely and verified (trailer
 * included) before anything is restored; a missing or corrupt link is
 * refused naming it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zstd.h>

#include "agent/engine/engine.h"
#include "lib/log.h"

#define MAX_CHAIN 1000

/* ------------------------------------------------------------ page hash */

/* 64-bit hash of one page, four independent multiply-rotate lanes (fast,
 * not cryptographic: dedupe trusts a 64-bit match, see incremental.md). */
uint64_t page_hash(const void *page)
{
	const uint64_t *w = page;
	uint64_t a = 0x243f6a8885a308d3ull, b = 0x13198a2e03707344ull, c = 0xa4093822299f31d0ull,
		 d = 0x082efa98ec4e6c89ull;
	const uint64_t P1 = 0x9e3779b185ebca87ull, P2 = 0xc2b2ae3d27d4eb4full;
	for (size_t i = 0; i < PAGE / 8; i += 4) {
		a = ((a + w[i] * P2) << 31 | (a + w[i] * P2) >> 33) * P1;
		b = ((b + w[i + 1] * P2) << 31 | (b + w[i + 1] * P2) >> 33) * P1;
		c = ((c + w[i + 2] * P2) << 31 | (c + w[i + 2] * P2) >> 33) * P1;
		d = ((d + w[i + 3] * P2) << 31 | (d + w[i + 3] * P2) >> 33) * P1;
	}
	uint64_t h = (a << 1 | a >> 63) + (b << 7 | b >> 57) + (c << 12 | c >> 52) + (d << 18 | d >> 46);
	h ^= h >> 33; h *= P2; h ^= h >> 29; h *= 0x165667b19e3779f9ull; h ^= h >> 32;
	return h;
}

/* ------------------------------------------------------------ u64 map */

/* open addressing; key 0 is "empty", so keys are stored + 1 */
struct u64map {
	uint64_t *k, *v;
	size_t cap, n;
};

static uint64_t page_key(uint32_t pid, uint64_t addr)
{
	return ((uint64_t)pid << 36 | addr >> 12) + 1;
}

static size_t slot(uint64_t k, size_t cap)
{
	k ^= k >> 29; k *= 0xbf58476d1ce4e5b9ull; k ^= k >> 32;
	return (size_t)k & (cap - 1);
}

static int map_grow(struct u64map *m)
{
	size_t cap = m->cap ? m->cap * 2 : 4096;
	uint64_t *k = calloc(cap, 8), *v = calloc(cap, 8);
	if (!k || !v) {
		free(k);
		free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++)
		if (m->k[i]) {
			size_t s = slot(m->k[i], cap);
			while (k[s])
				s = (s + 1) & (cap - 1);
			k[s] = m->k[i];
			v[s] = m->v[i];
		}
	free(m->k);
	free(m->v);
	m->k = k;
	m->v = v;
	m->cap = cap;
	return 0;
}

/* insert unless present (the chain is read newest first: first one wins) */
static int map_add(struct u64map *m, uint64_t key, uint64_t val)
{
	if ((m->n + 1) * 2 > m->cap && map_grow(m) < 0)
		return -ENOMEM;
	size_t s = slot(key, m->cap);
	while (m->k[s]) {
		if (m->k[s] == key)
			return 0;
		s = (s + 1) & (m->cap - 1);
	}
	m->k[s] = key;
	m->v[s] = val;
	m->n++;
	return 1;
}

static bool map_get(const struct u64map *m, uint64_t key, uint64_t *val)
{
	if (!m->cap)
		return false;
	size_t s = slot(key, m->cap);
	while (m->k[s]) {
		if (m->k[s] == key) {
			*val = m->v[s];
			return true;
		}
		s = (s + 1) & (m->cap - 1);
	}
	return false;
}

static void map_free(struct u64map *m)
{
	free(m->k);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------ reading links */

static void *read_msg_of(struct image_reader *in, const ProtobufCMessageDescriptor *desc)
{
	void *buf;
	uint32_t len;
	if (image_read_all(in, &buf, &len) < 0)
		return NULL;
	void *m = protobuf_c_message_unpack(desc, NULL, len, buf);
	free(buf);
	return m;
}

/* Check a page index against itself: pairs, counts, alignment. */
static int index_ok(const ImgPageIndex *ix)
{
	uint64_t stored = 0;
	if (ix->n_present % 2 || ix->n_stored % 2)
		return 0;
	for (size_t i = 0; i < ix->n_present; i += 2)
		if (ix->present[i] % PAGE || !ix->present[i + 1] || ix->present[i + 1] > (MAX_ADDR / PAGE) ||
		    ix->present[i] >= MAX_ADDR)
			return 0;
	for (size_t i = 0; i < ix->n_stored; i += 2) {
		if (ix->stored[i] % PAGE || !ix->stored[i + 1] || ix->stored[i + 1] > (MAX_ADDR / PAGE))
			return 0;
		stored += ix->stored[i + 1];
	}
	return stored == ix->n_hash;
}

static int open_link(const char *path, int depth, uint64_t want_id, int *fdp, struct image_reader **inp)
{
	char ebuf[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		log_err("chain link %d: parent image %s: %s", depth, path, strerror(e));
		return -e;
	}
	struct image_reader *in = image_reader_fd(fd, ebuf, sizeof(ebuf));
	if (!in) {
		log_err("chain link %d (%s): %s", depth, path, ebuf);
		close(fd);
		return -EBADMSG;
	}
	if (image_reader_header(in)->stream_id != want_id) {
		log_err("chain link %d (%s): stream id %016llx, but its child names %016llx (replaced image?)", depth,
			path, (unsigned long long)image_reader_header(in)->stream_id, (unsigned long long)want_id);
		image_reader_free(in);
		close(fd);
		return -ESTALE;
	}
	image_reader_set_namer(in, rec_name);
	*fdp = fd;
	*inp = in;
	return 0;
}

/* ------------------------------------------------------------ index (dump) */

struct chain_index {
	struct u64map hashes;          /* page_key → page_hash */
	ImgPageIndex **parent_ix;      /* the direct parent's indexes (present pages) */
	int nparent_ix;
};

/* The parent's present pages of pid as (addr, npages) pairs, sorted. */
const uint64_t *chain_parent_present(const struct chain_index *ci, uint32_t pid, size_t *npairs)
{
	for (int i = 0; ci && i < ci->nparent_ix; i++)
		if (ci->parent_ix[i]->pid == pid) {
			*npairs = ci->parent_ix[i]->n_present / 2;
			return ci->parent_ix[i]->present;
		}
	*npairs = 0;
	return NULL;
}

bool chain_index_same(const struct chain_index *ci, uint32_t pid, uint64_t addr, uint64_t hash)
{
	uint64_t h;
	return ci && map_get(&ci->hashes, page_key(pid, addr), &h) && h == hash;
}

void chain_index_free(struct chain_index *ci)
{
	if (!ci)
		return;
	for (int i = 0; i < ci->nparent_ix; i++)
		img_page_index__free_unpacked(ci->parent_ix[i], NULL);
	free(ci->parent_ix);
	map_free(&ci->hashes);
	free(ci);
}

int chain_index_load(const char *file, unsigned full_every, ImgParent **parentp, struct chain_index **out)
{
	char abs[4096];
	int err = 0, depth = 0, fd = -1;
	struct image_reader *in = NULL;
	struct chain_index *ci = xcalloc(1, sizeof(*ci));
	ImgParent *mine = NULL;
	*parentp = NULL;
	*out = NULL;
	if (!realpath(file, abs)) {
		err = -errno;
		log_err("dump: parent image %s: %s", file, strerror(errno));
		goto fail;
	}
	char ebuf[256];
	if ((fd = open(abs, O_RDONLY | O_CLOEXEC)) < 0 || !(in = image_reader_fd(fd, ebuf, sizeof(ebuf)))) {
		err = fd < 0 ? -errno : -EBADMSG;
		log_err("dump: parent image %s: %s", abs, fd < 0 ? strerror(errno) : ebuf);
		goto fail;
	}
	image_reader_set_namer(in, rec_name);
	mine = xcalloc(1, sizeof(*mine));
	img_parent__init(mine);
	mine->stream_id = image_reader_header(in)->stream_id;
	mine->path = xstrdup(abs);
	mine->depth = 1;
	for (depth = 1;; depth++) {
		uint32_t type, len;
		int n;
		ImgParent *up = NULL;
		bool indexed = image_reader_header(in)->flags & IMAGE_FLAG_INDEXED;
		while ((n = image_next(in, &type, &len)) > 0) {
			if (type == REC_PARENT) {
				if (!(up = read_msg_of(in, &img_parent__descriptor))) {
					n = -EBADMSG;
					break;
				}
			} else if (type == REC_PAGE_INDEX) {
				ImgPageIndex *ix = read_msg_of(in, &img_page_index__descriptor);
				if (!ix || !index_ok(ix)) {
					if (ix)
						img_page_index__free_unpacked(ix, NULL);
					log_err("chain link %d (%s): malformed page index", depth, abs);
					err = -EBADMSG;
					goto fail;
				}
				size_t h = 0;
				for (size_t i = 0; i < ix->n_stored; i += 2)
					for (uint64_t k = 0; k < ix->stored[i + 1]; k++)
						if (map_add(&ci->hashes, page_key(ix->pid, ix->stored[i] + k * PAGE),
							    ix->hash[h++]) < 0) {
							err = -ENOMEM;
							goto fail;
						}
				if (depth == 1) {
					ci->parent_ix = realloc(ci->parent_ix, (size_t)(ci->nparent_ix + 1) * sizeof(ix));
					ci->parent_ix[ci->nparent_ix++] = ix;
				} else {
					img_page_index__free_unpacked(ix, NULL);
				}
			} else if (type == REC_ZPAGES || type == REC_PAGES || type == REC_SHM_PAGES || type == REC_THREAD) {
				break;     /* the indexes come before any page data */
			}
		}
		if (n < 0) {
			log_err("chain link %d (%s): %s", depth, abs, image_reader_error(in));
			err = -EBADMSG;
			goto fail;
		}
		(void)indexed;
		image_reader_free(in);
		in = NULL;
		close(fd);
		fd = -1;
		if (depth == 1 && up)
			mine->depth = up->depth + 1;
		if (!up)
			break;
		if (depth >= MAX_CHAIN) {
			log_err("dump: chain of %s longer than %d links", file, MAX_CHAIN);
			img_parent__free_unpacked(up, NULL);
			err = -ELOOP;
			goto fail;
		}
		snprintf(abs, sizeof(abs), "%s", up->path);
		uint64_t want = up->stream_id;
		img_parent__free_unpacked(up, NULL);
		if ((err = open_link(abs, depth + 1, want, &fd, &in)) < 0)
			goto fail;
	}
	if (full_every && mine->depth > full_every) {
		/* time for a full image: no parent, no dedupe */
		free(mine->path);
		free(mine);
		chain_index_free(ci);
		return 0;
	}
	*parentp = mine;
	*out = ci;
	return 0;
fail:
	if (in)
		image_reader_free(in);
	if (fd >= 0)
		close(fd);
	if (mine) {
		free(mine->path);
		free(mine);
	}
	chain_index_free(ci);
	return err;
}

/* ------------------------------------------------------------ squash */

struct rec {
	uint32_t type, len;
	void *buf;
};

struct chain {
	struct rec *recs;              /* the newest image's records, page data left out */
	int nrecs;
	struct u64map pages;           /* page_key → address of 4096 bytes (newest first) */
	void **blocks;                 /* page data buffers */
	int nblocks;
	struct present { uint32_t pid; uint64_t *pairs; size_t n; } *present;
	int npresent;
};

static void chain_free(struct chain *c)
{
	for (int i = 0; i < c->nrecs; i++)
		free(c->recs[i].buf);
	free(c->recs);
	for (int i = 0; i < c->nblocks; i++)
		free(c->blocks[i]);
	free(c->blocks);
	for (int i = 0; i < c->npresent; i++)
		free(c->present[i].pairs);
	free(c->present);
	map_free(&c->pages);
}

static struct present *present_of(struct chain *c, uint32_t pid)
{
	for (int i = 0; i < c->npresent; i++)
		if (c->present[i].pid == pid)
			return &c->present[i];
	c->present = realloc(c->present, (size_t)(c->npresent + 1) * sizeof(*c->present));
	c->present[c->npresent] = (struct present){ pid, NULL, 0 };
	return &c->present[c->npresent++];
}

/* Page data of one record into the map (unless a newer link had the page). */
static int load_pages(struct chain *c, struct image_reader *in, uint32_t type, uint32_t len, bool top,
		      int depth, const char *name)
{
	struct zpage_prefix zp = { 0 };
	size_t plen = type == REC_ZPAGES ? sizeof(zp) : sizeof(struct page_prefix);
	if (len < plen || image_read(in, &zp, plen) < 0)
		goto bad;
	if (type == REC_PAGES)
		zp.data_len = len - (uint32_t)plen;
	uint64_t raw = (uint64_t)zp.npages * PAGE;
	if (!zp.npages || zp.npages > PAGES_PER_RECORD || zp.addr % PAGE || zp.addr >= MAX_ADDR ||
	    zp.data_len != len - plen || (!(zp.flags & ZP_ZSTD) && zp.data_len != raw))
		goto bad;
	uint8_t *data = malloc(raw);
	void *z = (zp.flags & ZP_ZSTD) ? malloc(zp.data_len ? zp.data_len : 1) : NULL;
	if (!data || ((zp.flags & ZP_ZSTD) && !z)) {
		free(data);
		free(z);
		return -ENOMEM;
	}
	if (image_read(in, z ? z : data, zp.data_len) < 0) {
		free(data);
		free(z);
		log_err("chain link %d (%s): %s", depth, name, image_reader_error(in));
		return -EBADMSG;
	}
	if (z) {
		size_t got = ZSTD_decompress(data, raw, z, zp.data_len);
		free(z);
		if (ZSTD_isError(got) || got != raw) {
			free(data);
			log_err("chain link %d (%s): record %llu: compressed pages at %#llx do not decompress to %u pages",
				depth, name, (unsigned long long)image_reader_record_index(in),
				(unsigned long long)zp.addr, zp.npages);
			return -EBADMSG;
		}
	}
	c->blocks = realloc(c->blocks, (size_t)(c->nblocks + 1) * sizeof(void *));
	c->blocks[c->nblocks++] = data;
	for (uint32_t k = 0; k < zp.npages; k++)
		if (map_add(&c->pages, page_key(zp.owner, zp.addr + k * PAGE), (uint64_t)(uintptr_t)(data + k * PAGE)) < 0)
			return -ENOMEM;
	if (top && type == REC_PAGES) {       /* a plain image: its pages are all it has */
		struct present *p = present_of(c, zp.owner);
		p->pairs = realloc(p->pairs, (p->n + 2) * sizeof(uint64_t));
		p->pairs[p->n++] = zp.addr;
		p->pairs[p->n++] = zp.npages;
	}
	return 0;
bad:
	if (image_skip(in) < 0) {
		log_err("chain link %d (%s): %s", depth, name, image_reader_error(in));
		return -EBADMSG;
	}
	log_err("chain link %d (%s): record %llu '%s': malformed page record", depth, name,
		(unsigned long long)image_reader_record_index(in), rec_name(type));
	return -EBADMSG;
}

/* Read every link completely (trailers verified), newest first. */
static int chain_load(struct chain *c, int topfd, const char *topname)
{
	char ebuf[256], name[4096];
	int fd = topfd, err = 0;
	snprintf(name, sizeof(name), "%s", topname);
	if (lseek(fd, 0, SEEK_SET) < 0) {
		log_err("restore: %s is an incremental or indexed image: it must be a file, not a stream", topname);
		return -ESPIPE;
	}
	struct image_reader *in = image_reader_fd(fd, ebuf, sizeof(ebuf));
	if (!in) {
		log_err("%s", ebuf);
		return -EBADMSG;
	}
	image_reader_set_namer(in, rec_name);
	for (int depth = 0;; depth++) {
		uint32_t type, len;
		int n;
		ImgParent *up = NULL;
		while ((n = image_next(in, &type, &len)) > 0) {
			if (type == REC_PAGES || type == REC_ZPAGES) {
				if ((err = load_pages(c, in, type, len, depth == 0, depth, name)) < 0)
					goto out;
				continue;
			}
			if (type == REC_PARENT) {
				if (up || !(up = read_msg_of(in, &img_parent__descriptor))) {
					n = -EBADMSG;
					break;
				}
				if (depth == 0)
					continue;
			}
			if (depth > 0)
				continue;          /* only the newest image's state counts */
			struct rec r = { type, len, NULL };
			if (type != REC_PARENT && image_read_all(in, &r.buf, &r.len) < 0) {
				n = -EBADMSG;
				break;
			}
			if (type == REC_PAGE_INDEX) {
				ImgPageIndex *ix = img_page_index__unpack(NULL, r.len, r.buf);
				if (!ix || !index_ok(ix)) {
					if (ix)
						img_page_index__free_unpacked(ix, NULL);
					free(r.buf);
					log_err("chain link 0 (%s): malformed page index", name);
					err = -EBADMSG;
					goto out;
				}
				struct present *p = present_of(c, ix->pid);
				p->pairs = malloc((ix->n_present + 1) * sizeof(uint64_t));
				if (ix->n_present)
					memcpy(p->pairs, ix->present, ix->n_present * sizeof(uint64_t));
				p->n = ix->n_present;
				img_page_index__free_unpacked(ix, NULL);
			}
			c->recs = realloc(c->recs, (size_t)(c->nrecs + 1) * sizeof(*c->recs));
			c->recs[c->nrecs++] = r;
		}
		if (n < 0) {
			log_err("chain link %d (%s): %s", depth, name, image_reader_error(in));
			err = -EBADMSG;
			img_parent__free_unpacked(up, NULL);
			goto out;
		}
		image_reader_free(in);
		in = NULL;
		if (fd != topfd)
			close(fd);
		fd = -1;
		if (!up)
			break;
		if (depth + 1 >= MAX_CHAIN) {
			log_err("chain of %s longer than %d links", topname, MAX_CHAIN);
			img_parent__free_unpacked(up, NULL);
			err = -ELOOP;
			goto out;
		}
		snprintf(name, sizeof(name), "%s", up->path);
		uint64_t want = up->stream_id;
		img_parent__free_unpacked(up, NULL);
		if ((err = open_link(name, depth + 1, want, &fd, &in)) < 0)
			goto out;
	}
out:
	if (in)
		image_reader_free(in);
	if (fd >= 0 && fd != topfd)
		close(fd);
	return err;
}

static int put_buf(struct image_writer *w, uint32_t type, const void *buf, size_t len)
{
	return image_write(w, type, buf, len);
}

/* Write one run of pages: REC_PAGES, or REC_ZPAGES (zstd when level > 0). */
int pages_put(struct image_writer *w, bool indexed, int level, uint64_t addr, uint32_t np, uint32_t owner,
	      const uint8_t *data, uint64_t *stored_bytes)
{
	size_t raw = (size_t)np * PAGE;
	if (!indexed) {
		struct page_prefix pp = { addr, np, owner };
		struct iovec iov[2] = { { &pp, sizeof(pp) }, { (void *)data, raw } };
		if (stored_bytes)
			*stored_bytes += raw;
		return image_writev(w, REC_PAGES, iov, 2);
	}
	struct zpage_prefix zp = { addr, np, owner, 0, (uint32_t)raw };
	void *z = NULL;
	if (level > 0) {
		size_t cap = ZSTD_compressBound(raw);
		static __thread ZSTD_CCtx *cctx;
		if (!cctx)
			cctx = ZSTD_createCCtx();
		z = malloc(cap);
		if (z && cctx) {
			size_t got = ZSTD_compressCCtx(cctx, z, cap, data, raw, level);
			if (!ZSTD_isError(got) && got < raw) {
				zp.flags = ZP_ZSTD;
				zp.data_len = (uint32_t)got;
			}
		}
	}
	struct iovec iov[2] = { { &zp, sizeof(zp) }, { zp.flags ? z : (void *)data, zp.data_len } };
	if (stored_bytes)
		*stored_bytes += zp.data_len;
	int err = image_writev(w, REC_ZPAGES, iov, 2);
	free(z);
	return err;
}

static const uint8_t *page_at(struct chain *c, uint32_t pid, uint64_t addr)
{
	uint64_t v;
	return map_get(&c->pages, page_key(pid, addr), &v) ? (const uint8_t *)(uintptr_t)v : NULL;
}

/* All present pages of pid, newest version of each, in runs within the pairs. */
static int emit_pages(struct chain *c, struct image_writer *w, uint32_t pid, bool indexed, int level)
{
	struct present *p = present_of(c, pid);
	static uint8_t *buf;
	if (!buf && !(buf = malloc(PAGES_PER_RECORD * PAGE)))
		return -ENOMEM;
	for (size_t i = 0; i < p->n; i += 2)
		for (uint64_t off = 0; off < p->pairs[i + 1];) {
			uint32_t np = p->pairs[i + 1] - off < PAGES_PER_RECORD ? (uint32_t)(p->pairs[i + 1] - off)
									      : PAGES_PER_RECORD;
			for (uint32_t k = 0; k < np; k++) {
				uint64_t a = p->pairs[i] + (off + k) * PAGE;
				const uint8_t *src = page_at(c, pid, a);
				if (!src) {
					log_err("chain: pid %u page %#llx is in no image of the chain (missing link?)", pid,
						(unsigned long long)a);
					return -ENOENT;
				}
				memcpy(buf + (size_t)k * PAGE, src, PAGE);
			}
			int err = pages_put(w, indexed, level, p->pairs[i] + off * PAGE, np, pid, buf, NULL);
			if (err < 0)
				return err;
			off += np;
		}
	return 0;
}

static int emit_index(struct chain *c, struct image_writer *w, uint32_t pid)
{
	struct present *p = present_of(c, pid);
	ImgPageIndex ix = IMG_PAGE_INDEX__INIT;
	ix.pid = pid;
	ix.n_present = ix.n_stored = p->n;
	ix.present = ix.stored = p->pairs;
	for (size_t i = 0; i < p->n; i += 2)
		ix.n_hash += p->pairs[i + 1];
	ix.hash = malloc((ix.n_hash + 1) * 8);
	size_t h = 0;
	for (size_t i = 0; i < p->n; i += 2)
		for (uint64_t k = 0; k < p->pairs[i + 1]; k++) {
			const uint8_t *src = page_at(c, pid, p->pairs[i] + k * PAGE);
			if (!src) {
				log_err("chain: pid %u page %#llx is in no image of the chain (missing link?)", pid,
					(unsigned long long)(p->pairs[i] + k * PAGE));
				free(ix.hash);
				return -ENOENT;
			}
			ix.hash[h++] = page_hash(src);
		}
	size_t len = img_page_index__get_packed_size(&ix);
	uint8_t *buf = malloc(len + 1);
	img_page_index__pack(&ix, buf);
	int err = put_buf(w, REC_PAGE_INDEX, buf, len);
	free(buf);
	free(ix.hash);
	return err;
}

static int chain_emit(struct chain *c, int outfd, bool indexed, int level)
{
	char ebuf[256];
	struct image_writer *w = image_writer_fd(outfd, indexed ? IMAGE_FLAG_INDEXED : 0, ebuf, sizeof(ebuf));
	if (!w) {
		log_err("squash: %s", ebuf);
		return -EIO;
	}
	int err = 0;
	uint32_t *done = calloc((size_t)c->npresent + 1, sizeof(uint32_t));
	for (int i = 0; i < c->nrecs && err >= 0; i++) {
		struct rec *r = &c->recs[i];
		if (r->type == REC_PARENT)
			continue;
		if (r->type == REC_PAGE_INDEX) {
			ImgPageIndex *ix = img_page_index__unpack(NULL, r->len, r->buf);
			if (indexed && ix)
				err = emit_index(c, w, ix->pid);
			img_page_index__free_unpacked(ix, NULL);
			continue;
		}
		if (r->type == REC_THREAD) {
			/* a process's pages go right before its first thread (the leader) */
			ImgThread *t = img_thread__unpack(NULL, r->len, r->buf);
			for (int k = 0; t && k < c->npresent; k++)
				if (c->present[k].pid == t->tid && !done[k]) {
					done[k] = 1;
					err = emit_pages(c, w, t->tid, indexed, level);
				}
			img_thread__free_unpacked(t, NULL);
			if (err < 0)
				break;
		}
		err = put_buf(w, r->type, r->buf, r->len);
	}
	if (err >= 0)
		err = image_writer_finish(w);
	if (err < 0 && err != -ENOENT)
		log_err("squash: writing: %s", image_writer_error(w));
	image_writer_free(w);
	free(done);
	return err;
}

int chain_squash(int fd, const char *name, int outfd, bool indexed, int level)
{
	struct chain c = { 0 };
	int err = chain_load(&c, fd, name);
	if (err >= 0)
		err = chain_emit(&c, outfd, indexed, level);
	chain_free(&c);
	return err;
}

/* For restore: load (and verify) the chain here, then let a child stream the
 * squashed image into a pipe; returns the read end. */
int chain_restore_pipe(int fd, const char *name, pid_t *child)
{
	struct chain c = { 0 };
	int err = chain_load(&c, fd, name), p[2];
	if (err < 0) {
		chain_free(&c);
		return err;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		chain_free(&c);
		return -errno;
	}
	fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	pid_t pid = fork();
	if (pid < 0) {
		err = -errno;
		close(p[0]);
		close(p[1]);
		chain_free(&c);
		return err;
	}
	if (pid == 0) {
		close(p[0]);
		_exit(chain_emit(&c, p[1], false, 0) < 0 ? 1 : 0);
	}
	close(p[1]);
	chain_free(&c);
	*child = pid;
	return p[0];
}

/* zapc-engine squash -i TOP -o OUT [--compress[=LEVEL]] */
int squash_main(int argc, char **argv)
{
	static const struct option opts[] = { { "input", required_argument, 0, 'i' },
					      { "output", required_argument, 0, 'o' },
					      { "compress", optional_argument, 0, 'z' },
					      { "plain", no_argument, 0, 'p' },
					      { 0, 0, 0, 0 } };
	const char *in = NULL, *out = NULL;
	int level = 0, plain = 0, c;
	while ((c = getopt_long(argc, argv, "i:o:z::p", opts, NULL)) != -1) {
		switch (c) {
		case 'i': in = optarg; break;
		case 'o': out = optarg; break;
		case 'z': level = optarg ? atoi(optarg) : 3; break;
		case 'p': plain = 1; break;
		default: goto usage;
		}
	}
	if (!in || !out)
		goto usage;
	int fd = open(in, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		log_err("squash: %s: %s", in, strerror(errno));
		return 1;
	}
	int ofd = strcmp(out, "-") ? open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : STDOUT_FILENO;
	if (ofd < 0) {
		log_err("squash: %s: %s", out, strerror(errno));
		close(fd);
		return 1;
	}
	int err = chain_squash(fd, in, ofd, !plain, level);
	if (err >= 0 && ofd != STDOUT_FILENO && fsync(ofd) < 0)
		err = -errno;
	close(fd);
	if (ofd != STDOUT_FILENO) {
		close(ofd);
		if (err < 0)
			unlink(out);
	}
	return err < 0 ? 1 : 0;
usage:
	fprintf(stderr, "usage: zapc-engine squash -i IMAGE -o OUT|- [--compress[=LEVEL]] [--plain]\n");
	return 2;
}
