/*
 * image.c — the image stream container (see image.h for the layout).
 *
 * The writer buffers small records and passes large payloads straight to
 * the sink, so page data is touched once for its CRC and once by the sink.
 * The reader buffers the same way and reads large payloads directly into
 * the caller's memory.  Every error message names the record (index, type,
 * offset) so a user can tell where an image is damaged.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/image.h"
#include "lib/sha256.h"

#define HDR_LEN     40
#define REC_HDR_LEN 8
#define TRAILER_LEN 48
#define BUF_SIZE    (64u << 10)    /* first touches of pages are dear here; big payloads go direct */
#define DIRECT_MIN  (64u << 10)   /* payloads at least this big bypass the buffer */

#if defined(__x86_64__)
#define HOST_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define HOST_ARCH AUDIT_ARCH_AARCH64
#else
#error "unsupported architecture"
#endif

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

static const char *arch_name(uint32_t arch)
{
	switch (arch) {
	case AUDIT_ARCH_X86_64: return "x86_64";
	case AUDIT_ARCH_I386: return "i386";
	case AUDIT_ARCH_AARCH64: return "aarch64";
	case AUDIT_ARCH_ARM: return "arm";
	case AUDIT_ARCH_PPC64LE: return "ppc64le";
	case AUDIT_ARCH_S390X: return "s390x";
	case AUDIT_ARCH_RISCV64: return "riscv64";
	default: return "unknown";
	}
}

static void encode_header(uint8_t *b, const struct image_header *h)
{
	memcpy(b, IMAGE_MAGIC, 8);
	put32(b + 8, h->version);
	put32(b + 12, h->arch);
	put32(b + 16, h->page_size);
	put32(b + 20, h->flags);
	put64(b + 24, h->stream_id);
	put32(b + 32, 0);
	put32(b + 36, crc32c(0, b, 36));
}

/* The trailer digest: header bytes, then (type, len, crc) of every record. */
static void digest_record(struct sha256 *md, uint32_t type, uint32_t len, uint32_t crc)
{
	uint8_t b[12];

	put32(b, type);
	put32(b + 4, len);
	put32(b + 8, crc);
	sha256_update(md, b, sizeof(b));
}

/* --- writer ------------------------------------------------------------- */

struct image_writer {
	image_write_fn fn;
	void *ctx;
	int fd;
	struct image_header hdr;
	uint8_t *buf;
	size_t used;
	uint64_t bytes, nrecords, payload_bytes;
	struct sha256 md;
	int failed, finished;
	char err[256];
};

static ssize_t fd_write(void *ctx, const void *buf, size_t len)
{
	struct image_writer *w = ctx;
	ssize_t n;

	do
		n = write(w->fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int werr(struct image_writer *w, int e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int werr(struct image_writer *w, int e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->err, sizeof(w->err), fmt, ap);
	va_end(ap);
	w->failed = e;
	return -e;
}

static int sink(struct image_writer *w, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len) {
		ssize_t n = w->fn(w->ctx, b, len);

		if (n <= 0)
			return werr(w, n < 0 ? (int)-n : EIO, "image: write after %llu bytes: %s",
				    (unsigned long long)w->bytes, strerror(n < 0 ? (int)-n : EIO));
		b += n;
		len -= (size_t)n;
		w->bytes += (uint64_t)n;
	}
	return 0;
}

static int wflush(struct image_writer *w)
{
	int rc = 0;

	if (w->used)
		rc = sink(w, w->buf, w->used);
	w->used = 0;
	return rc;
}

static int wput(struct image_writer *w, const void *p, size_t len)
{
	if (len >= DIRECT_MIN) {
		int rc = wflush(w);

		return rc ? rc : sink(w, p, len);
	}
	if (w->used + len > BUF_SIZE) {
		int rc = wflush(w);

		if (rc)
			return rc;
	}
	memcpy(w->buf + w->used, p, len);
	w->used += len;
	return 0;
}

static struct image_writer *writer_open(image_write_fn fn, void *ctx, int fd, uint32_t flags,
				       char *err, size_t errlen)
{
	struct image_writer *w = calloc(1, sizeof(*w));
	uint8_t hb[HDR_LEN];

	if (!w || !(w->buf = malloc(BUF_SIZE))) {
		snprintf(err, errlen, "image: out of memory starting a writer");
		goto fail;
	}
	sha256_init(&w->md);
	w->fn = fn;
	w->ctx = ctx ? ctx : w;
	w->fd = fd;
	w->hdr.version = IMAGE_VERSION;
	w->hdr.arch = HOST_ARCH;
	w->hdr.page_size = (uint32_t)sysconf(_SC_PAGESIZE);
	w->hdr.flags = flags;
	if (getrandom(&w->hdr.stream_id, sizeof(w->hdr.stream_id), 0) != sizeof(w->hdr.stream_id)) {
		snprintf(err, errlen, "image: no random bytes for the stream id");
		goto fail;
	}
	encode_header(hb, &w->hdr);
	sha256_update(&w->md, hb, sizeof(hb));
	if (wput(w, hb, sizeof(hb)) < 0) {
		snprintf(err, errlen, "%s", w->err);
		goto fail;
	}
	return w;
fail:
	image_writer_free(w);
	return NULL;
}

struct image_writer *image_writer_cb(image_write_fn fn, void *ctx, uint32_t flags,
				     char *err, size_t errlen)
{
	return writer_open(fn, ctx, -1, flags, err, errlen);
}

struct image_writer *image_writer_fd(int fd, uint32_t flags, char *err, size_t errlen)
{
	return writer_open(fd_write, NULL, fd, flags, err, errlen);
}

const struct image_header *image_writer_header(const struct image_writer *w) { return &w->hdr; }

int image_writev(struct image_writer *w, uint32_t type, const struct iovec *iov, int iovcnt)
{
	uint8_t rh[REC_HDR_LEN], tail[4];
	uint64_t len = 0;
	uint32_t crc;
	int rc;

	if (w->failed)
		return -w->failed;
	if (w->finished)
		return werr(w, EINVAL, "image: record written after the trailer");
	if (type == IMAGE_REC_TRAILER)
		return werr(w, EINVAL, "image: record type 0x%x is reserved", type);
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (len > UINT32_MAX)
		return werr(w, E2BIG, "image: record %llu of type %u is %llu bytes (limit 4 GiB)",
			    (unsigned long long)w->nrecords + 1, type, (unsigned long long)len);
	put32(rh, type);
	put32(rh + 4, (uint32_t)len);
	crc = crc32c(0, rh, sizeof(rh));
	for (int i = 0; i < iovcnt; i++)
		crc = crc32c(crc, iov[i].iov_base, iov[i].iov_len);
	if ((rc = wput(w, rh, sizeof(rh))))
		return rc;
	for (int i = 0; i < iovcnt; i++)
		if (iov[i].iov_len && (rc = wput(w, iov[i].iov_base, iov[i].iov_len)))
			return rc;
	put32(tail, crc);
	if ((rc = wput(w, tail, sizeof(tail))))
		return rc;
	digest_record(&w->md, type, (uint32_t)len, crc);
	w->nrecords++;
	w->payload_bytes += len;
	return 0;
}

int image_write(struct image_writer *w, uint32_t type, const void *buf, size_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return image_writev(w, type, &iov, 1);
}

int image_writer_finish(struct image_writer *w)
{
	uint8_t rec[REC_HDR_LEN + TRAILER_LEN + 4];
	int rc;

	if (w->failed)
		return -w->failed;
	if (w->finished)
		return 0;
	put32(rec, IMAGE_REC_TRAILER);
	put32(rec + 4, TRAILER_LEN);
	put64(rec + 8, w->nrecords);
	put64(rec + 16, w->payload_bytes);
	sha256_final(&w->md, rec + 24);
	put32(rec + 8 + TRAILER_LEN, crc32c(0, rec, 8 + TRAILER_LEN));
	w->finished = 1;
	if ((rc = wput(w, rec, sizeof(rec))) || (rc = wflush(w)))
		return rc;
	return 0;
}

const char *image_writer_error(const struct image_writer *w) { return w->err; }
uint64_t image_writer_bytes(const struct image_writer *w) { return w->bytes + w->used; }

void image_writer_free(struct image_writer *w)
{
	if (!w)
		return;
	free(w->buf);
	free(w);
}

/* --- reader ------------------------------------------------------------- */

struct image_reader {
	image_read_fn fn;
	void *ctx;
	int fd;
	struct image_header hdr;
	uint8_t *buf;
	size_t pos, fill;
	uint64_t offset;        /* stream offset of buf[pos] */
	uint64_t rec_offset;    /* stream offset of the current record */
	uint64_t index;         /* 1-based index of the current record */
	uint32_t type, len, left, crc;
	int in_record, done, failed;
	int regular;            /* fd is a regular file: 1 yes, -1 no, 0 not looked yet */
	uint32_t max_record;
	uint64_t payload_bytes;
	struct sha256 md;
	const char *(*namer)(uint32_t);
	char err[320];
};

static ssize_t fd_read(void *ctx, void *buf, size_t len)
{
	struct image_reader *r = ctx;
	ssize_t n;

	do
		n = read(r->fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int rerr(struct image_reader *r, int e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int rerr(struct image_reader *r, int e, const char *fmt, ...)
{
	char what[128] = "";
	va_list ap;
	int n;

	if (r->index) {
		const char *name = r->namer && r->type != IMAGE_REC_TRAILER ? r->namer(r->type) : NULL;

		if (r->type == IMAGE_REC_TRAILER)
			name = "trailer";
		if (name)
			snprintf(what, sizeof(what), "record %llu '%s' at offset %llu: ",
				 (unsigned long long)r->index, name, (unsigned long long)r->rec_offset);
		else
			snprintf(what, sizeof(what), "record %llu (type %u) at offset %llu: ",
				 (unsigned long long)r->index, r->type, (unsigned long long)r->rec_offset);
	}
	n = snprintf(r->err, sizeof(r->err), "image: %s", what);
	va_start(ap, fmt);
	vsnprintf(r->err + n, sizeof(r->err) - (size_t)n, fmt, ap);
	va_end(ap);
	r->failed = e;
	return -e;
}

/* Fill the buffer to at least 'want' bytes; returns bytes available (may be less at EOF). */
static ssize_t rfill(struct image_reader *r, size_t want)
{
	if (r->fill - r->pos >= want)
		return (ssize_t)(r->fill - r->pos);
	if (r->pos) {
		memmove(r->buf, r->buf + r->pos, r->fill - r->pos);
		r->fill -= r->pos;
		r->pos = 0;
	}
	while (r->fill < want) {
		ssize_t n = r->fn(r->ctx, r->buf + r->fill, BUF_SIZE - r->fill);

		if (n < 0)
			return rerr(r, (int)-n, "read failed: %s", strerror((int)-n));
		if (n == 0)
			break;
		r->fill += (size_t)n;
	}
	return (ssize_t)(r->fill - r->pos);
}

/* Read exactly len bytes (or fewer at EOF: returns the count); big reads go direct. */
static ssize_t rget(struct image_reader *r, void *dst, size_t len)
{
	uint8_t *d = dst;
	size_t got = 0, avail = r->fill - r->pos;

	if (avail) {
		size_t n = avail < len ? avail : len;

		memcpy(d, r->buf + r->pos, n);
		r->pos += n;
		got = n;
	}
	if (len - got >= DIRECT_MIN) {
		while (got < len) {
			ssize_t n = r->fn(r->ctx, d + got, len - got);

			if (n < 0)
				return rerr(r, (int)-n, "read failed: %s", strerror((int)-n));
			if (n == 0)
				break;
			got += (size_t)n;
		}
	} else if (got < len) {
		ssize_t n = rfill(r, len - got);

		if (n < 0)
			return n;
		if ((size_t)n > len - got)
			n = (ssize_t)(len - got);
		memcpy(d + got, r->buf + r->pos, (size_t)n);
		r->pos += (size_t)n;
		got += (size_t)n;
	}
	r->offset += got;
	return (ssize_t)got;
}

/* ctx NULL means "the reader itself" (the fd source reads r->fd). */
static struct image_reader *reader_open(image_read_fn fn, void *ctx, int fd, char *err, size_t errlen)
{
	struct image_reader *r = calloc(1, sizeof(*r));
	uint8_t hb[HDR_LEN];
	ssize_t n;

	if (!r || !(r->buf = malloc(BUF_SIZE))) {
		snprintf(err, errlen, "image: out of memory starting a reader");
		goto fail;
	}
	sha256_init(&r->md);
	r->fn = fn;
	r->ctx = ctx ? ctx : r;
	r->fd = fd;
	r->max_record = IMAGE_MAX_RECORD;
	n = rget(r, hb, sizeof(hb));
	if (n < 0) {
		snprintf(err, errlen, "%s", r->err);
		goto fail;
	}
	if (n < 8 || memcmp(hb, IMAGE_MAGIC, 8) != 0) {
		snprintf(err, errlen, "image: not a zapc image (bad magic)");
		goto fail;
	}
	if (n < HDR_LEN) {
		snprintf(err, errlen, "image: truncated header (%zd of %d bytes)", n, HDR_LEN);
		goto fail;
	}
	r->hdr.version = get32(hb + 8);
	r->hdr.arch = get32(hb + 12);
	r->hdr.page_size = get32(hb + 16);
	r->hdr.flags = get32(hb + 20);
	r->hdr.stream_id = get64(hb + 24);
	/* Version first: a future version may lay the header out differently. */
	if (r->hdr.version < IMAGE_VERSION_MIN || r->hdr.version > IMAGE_VERSION) {
		snprintf(err, errlen, "image: format version %u not supported (this zapc reads versions %u-%u)",
			 r->hdr.version, IMAGE_VERSION_MIN, IMAGE_VERSION);
		goto fail;
	}
	if (get32(hb + 36) != crc32c(0, hb, 36)) {
		snprintf(err, errlen, "image: header checksum mismatch (corrupt header)");
		goto fail;
	}
	if (r->hdr.arch != HOST_ARCH) {
		snprintf(err, errlen, "image: made for %s (0x%x), this machine is %s",
			 arch_name(r->hdr.arch), r->hdr.arch, arch_name(HOST_ARCH));
		goto fail;
	}
	if (r->hdr.page_size != (uint32_t)sysconf(_SC_PAGESIZE)) {
		snprintf(err, errlen, "image: page size %u, this machine uses %ld",
			 r->hdr.page_size, sysconf(_SC_PAGESIZE));
		goto fail;
	}
	sha256_update(&r->md, hb, sizeof(hb));
	return r;
fail:
	image_reader_free(r);
	return NULL;
}

struct image_reader *image_reader_cb(image_read_fn fn, void *ctx, char *err, size_t errlen)
{
	return reader_open(fn, ctx, -1, err, errlen);
}

struct image_reader *image_reader_fd(int fd, char *err, size_t errlen)
{
	return reader_open(fd_read, NULL, fd, err, errlen);
}

const struct image_header *image_reader_header(const struct image_reader *r) { return &r->hdr; }
void image_reader_set_namer(struct image_reader *r, const char *(*name)(uint32_t)) { r->namer = name; }
void image_reader_set_max_record(struct image_reader *r, uint32_t max) { r->max_record = max; }

static int finish_payload(struct image_reader *r)
{
	uint8_t b[4];
	ssize_t n = rget(r, b, sizeof(b));

	if (n < 0)
		return (int)n;
	if (n < 4)
		return rerr(r, EPROTO, "truncated: stream ends inside the record checksum");
	if (get32(b) != r->crc)
		return rerr(r, EBADMSG, "checksum mismatch (stored 0x%08x, computed 0x%08x)",
			    get32(b), r->crc);
	digest_record(&r->md, r->type, r->len, r->crc);
	r->in_record = 0;
	return 0;
}

int image_read(struct image_reader *r, void *buf, size_t len)
{
	ssize_t n;

	if (r->failed)
		return -r->failed;
	if (!r->in_record || len > r->left)
		return rerr(r, EINVAL, "read of %zu bytes past the end of the payload (%u left)",
			    len, r->in_record ? r->left : 0);
	n = rget(r, buf, len);
	if (n < 0)
		return (int)n;
	r->crc = crc32c(r->crc, buf, (size_t)n);
	if ((size_t)n < len)
		return rerr(r, EPROTO, "truncated: stream ends %u bytes into a %u-byte payload",
			    r->len - r->left + (uint32_t)n, r->len);
	r->left -= (uint32_t)len;
	return r->left ? 0 : finish_payload(r);
}

int image_read_deferred(struct image_reader *r, struct image_deferred *d)
{
	struct stat st;
	uint8_t b[4];
	ssize_t n;

	if (r->failed)
		return -r->failed;
	if (!r->in_record || !r->left)
		return rerr(r, EINVAL, "no payload left to defer");
	if (r->fn != fd_read || r->fd < 0)
		return -ESPIPE;
	if (!r->regular)
		r->regular = fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode) ? 1 : -1;
	if (r->regular < 0)
		return -ESPIPE;
	/* the fd stands at the end of what is buffered */
	size_t avail = r->fill - r->pos;
	off_t cur = lseek(r->fd, 0, SEEK_CUR);
	if (cur < 0 || (uint64_t)cur < avail)
		return -ESPIPE;
	d->fd = r->fd;
	d->offset = (uint64_t)cur - avail;
	d->len = r->left;
	d->crc = r->crc;
	d->index = r->index;
	d->rec_offset = r->rec_offset;
	if (avail >= r->left) {
		r->pos += r->left;
	} else {
		r->pos = r->fill;
		if (lseek(r->fd, (off_t)(d->offset + d->len), SEEK_SET) < 0)
			return rerr(r, errno, "seek: %s", strerror(errno));
	}
	r->offset += r->left;
	r->left = 0;
	/* past the end of a truncated file the checksum read finds nothing */
	n = rget(r, b, sizeof(b));
	if (n < 0)
		return (int)n;
	if (n < 4)
		return rerr(r, EPROTO, "truncated: stream ends inside the record");
	d->stored = get32(b);
	digest_record(&r->md, r->type, r->len, d->stored);
	r->in_record = 0;
	return 0;
}

static int skip_payload(struct image_reader *r)
{
	uint8_t tmp[4096];

	while (r->in_record && r->left) {
		size_t n = r->left < sizeof(tmp) ? r->left : sizeof(tmp);
		int rc = image_read(r, tmp, n);

		if (rc)
			return rc;
	}
	return 0;
}

int image_skip(struct image_reader *r)
{
	if (r->failed)
		return -r->failed;
	return skip_payload(r);
}

static int check_trailer(struct image_reader *r)
{
	uint8_t t[TRAILER_LEN], want[32];
	uint64_t nrec, bytes;
	int rc;

	/* The trailer is not part of its own digest: finalise before reading it. */
	sha256_final(&r->md, want);
	if (r->len != TRAILER_LEN)
		return rerr(r, EPROTO, "trailer is %u bytes, expected %d", r->len, TRAILER_LEN);
	r->in_record = 1;
	r->left = r->len;
	if ((rc = image_read(r, t, sizeof(t))))
		return rc;
	nrec = get64(t);
	bytes = get64(t + 8);
	if (nrec != r->index - 1)
		return rerr(r, EBADMSG, "stream has %llu records, trailer says %llu",
			    (unsigned long long)r->index - 1, (unsigned long long)nrec);
	if (bytes != r->payload_bytes)
		return rerr(r, EBADMSG, "stream has %llu payload bytes, trailer says %llu",
			    (unsigned long long)r->payload_bytes, (unsigned long long)bytes);
	if (memcmp(want, t + 16, 32) != 0)
		return rerr(r, EBADMSG, "SHA-256 of the stream does not match the trailer");
	/* A file must end here; a socket may carry more protocol after the image. */
	if (r->fd >= 0) {
		struct stat st;

		if (fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode)) {
			ssize_t n = rfill(r, 1);

			if (n < 0)
				return (int)n;
			if (n > 0)
				return rerr(r, EBADMSG, "unexpected data after the trailer");
		}
	}
	r->done = 1;
	return 0;
}

int image_next(struct image_reader *r, uint32_t *type, uint32_t *len)
{
	uint8_t rh[REC_HDR_LEN];
	ssize_t n;
	int rc;

	if (r->failed)
		return -r->failed;
	if (r->done)
		return 0;
	if (r->in_record && (rc = skip_payload(r)))
		return rc;
	r->rec_offset = r->offset;
	n = rget(r, rh, sizeof(rh));
	if (n < 0)
		return (int)n;
	if (n == 0) {
		r->index++;
		r->type = 0;
		return rerr(r, EPROTO, "truncated: stream ends after %llu records without a trailer",
			    (unsigned long long)r->index - 1);
	}
	r->index++;
	r->type = n >= 4 ? get32(rh) : 0;
	if (n < REC_HDR_LEN)
		return rerr(r, EPROTO, "truncated: stream ends inside the record header");
	r->len = get32(rh + 4);
	r->crc = crc32c(0, rh, sizeof(rh));
	if (r->type == IMAGE_REC_TRAILER) {
		if ((rc = check_trailer(r)))
			return rc;
		return 0;
	}
	if (r->len > r->max_record)
		return rerr(r, E2BIG, "payload of %u bytes exceeds the limit of %u (corrupt length?)",
			    r->len, r->max_record);
	r->in_record = 1;
	r->left = r->len;
	r->payload_bytes += r->len;
	if (r->len == 0 && (rc = finish_payload(r)))
		return rc;
	*type = r->type;
	*len = r->len;
	return 1;
}

int image_read_all(struct image_reader *r, void **buf, uint32_t *len)
{
	void *b;
	int rc;

	*buf = NULL;
	*len = 0;
	if (!r->in_record) {
		if (r->failed)
			return -r->failed;
		*buf = malloc(1);
		return *buf ? 0 : -ENOMEM;
	}
	b = malloc(r->left ? r->left : 1);
	if (!b)
		return rerr(r, ENOMEM, "no memory for a %u-byte payload", r->left);
	*len = r->left;
	if ((rc = image_read(r, b, r->left))) {
		free(b);
		*len = 0;
		return rc;
	}
	*buf = b;
	return 0;
}

const char *image_reader_error(const struct image_reader *r) { return r->err; }
uint64_t image_reader_record_index(const struct image_reader *r) { return r->index; }
uint64_t image_reader_offset(const struct image_reader *r) { return r->rec_offset; }

void image_reader_free(struct image_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}
