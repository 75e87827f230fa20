/*
 * image_test.c — the image container: CRC32C correctness, round trips
 * through byte-at-a-time sinks and sources, and rejection of every
 * truncation and every single flipped byte of a small image.
 */
#include <errno.h>
#include <linux/audit.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/image.h"
#include "tests/unit/tap.h"

/* Bitwise reference CRC32C, independent of the code under test. */
static uint32_t ref_crc(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
	}
	return ~c;
}

struct mem {
	uint8_t *data;
	size_t len, cap, pos;
	size_t chunk;   /* max bytes per call, to exercise partial I/O */
};

static ssize_t mem_write(void *ctx, const void *buf, size_t len)
{
	struct mem *m = ctx;

	if (m->chunk && len > m->chunk)
		len = m->chunk;
	if (m->len + len > m->cap) {
		m->cap = (m->len + len) * 2;
		m->data = realloc(m->data, m->cap);
	}
	memcpy(m->data + m->len, buf, len);
	m->len += len;
	return (ssize_t)len;
}

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	struct mem *m = ctx;
	size_t n = m->len - m->pos;

	if (m->chunk && len > m->chunk)
		len = m->chunk;
	if (n > len)
		n = len;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static const char *namer(uint32_t type) { return type == 7 ? "pages" : NULL; }

/* A small image: three records (one empty, one written as two iovecs). */
static void make_image(struct mem *m, size_t big)
{
	char err[256];
	struct image_writer *w = image_writer_cb(mem_write, m, 0, err, sizeof(err));
	uint8_t *pages = malloc(big);
	struct iovec iov[2];
	uint64_t prefix = 0x7fff0000;

	for (size_t i = 0; i < big; i++)
		pages[i] = (uint8_t)(i * 31 + 7);
	image_write(w, 1, "hello", 5);
	image_write(w, 2, NULL, 0);
	iov[0] = (struct iovec){ &prefix, sizeof(prefix) };
	iov[1] = (struct iovec){ pages, big };
	image_writev(w, 7, iov, 2);
	image_writer_finish(w);
	image_writer_free(w);
	free(pages);
}

/* Read the whole image; 0 on a clean verified end, else -errno; err filled. */
static int read_image(struct mem *m, char *err, size_t errlen, int *nrec)
{
	struct image_reader *r;
	uint32_t type, len;
	int rc;

	m->pos = 0;
	*nrec = 0;
	r = image_reader_cb(mem_read, m, err, errlen);
	if (!r)
		return -EBADMSG;
	image_reader_set_namer(r, namer);
	while ((rc = image_next(r, &type, &len)) == 1) {
		void *b;

		(*nrec)++;
		if (type == 2)
			continue;   /* left unread on purpose: image_next must skip it */
		if ((rc = image_read_all(r, &b, &len)) < 0)
			break;
		free(b);
	}
	if (rc < 0)
		snprintf(err, errlen, "%s", image_reader_error(r));
	image_reader_free(r);
	return rc;
}

int main(void)
{
	static uint8_t buf[100000];
	struct mem m = { 0 };
	char err[256];
	int nrec, rc, bad;

	/* CRC32C: the standard check value, and agreement with the reference at
	 * every length and alignment around the 3-lane block size. */
	is_int(crc32c(0, "123456789", 9), 0xe3069283u, "crc32c check value");
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(rand() >> 7);
	bad = 0;
	for (size_t len = 0; len < 40000; len += (len < 64 ? 1 : 997))
		for (size_t off = 0; off < 8; off += 3)
			bad += crc32c(0, buf + off, len) != ref_crc(buf + off, len);
	is_int(bad, 0, "crc32c matches the bitwise reference over lengths and alignments");
	is_int(crc32c(crc32c(0, buf, 12345), buf + 12345, 50000), crc32c(0, buf, 62345),
	       "crc32c continues across calls");

	/* Round trip, with sinks and sources that move 3 bytes per call. */
	m.chunk = 3;
	make_image(&m, 70000);
	rc = read_image(&m, err, sizeof(err), &nrec);
	is_int(rc, 0, "byte-trickled image reads back and verifies");
	is_int(nrec, 3, "all three records seen");
	m.chunk = 0;

	/* Payload content and partial reads. */
	{
		struct image_reader *r;
		uint32_t type, len;
		uint8_t pfx[8], *pages = malloc(70000);
		int good = 1;

		m.pos = 0;
		r = image_reader_cb(mem_read, &m, err, sizeof(err));
		ok(r != NULL, "reader opens");
		ok(image_next(r, &type, &len) == 1 && type == 1 && len == 5, "first record header");
		image_next(r, &type, &len);
		ok(image_next(r, &type, &len) == 1 && type == 7 && len == 70008, "page record header");
		ok(image_read(r, pfx, 8) == 0 && image_read(r, pages, 1000) == 0 &&
		   image_read(r, pages + 1000, 69000) == 0, "payload read in pieces");
		for (size_t i = 0; i < 70000; i++)
			good &= pages[i] == (uint8_t)(i * 31 + 7);
		ok(good, "page bytes intact");
		is_int(image_next(r, &type, &len), 0, "verified end of stream");
		is_int(image_read(r, pfx, 1), -EINVAL, "reading past the end is refused");
		image_reader_free(r);
		free(pages);
	}

	/* Every single flipped byte of a small image is caught. */
	{
		struct mem s = { 0 };
		int caught = 0, named = 0;

		make_image(&s, 300);
		for (size_t i = 0; i < s.len; i++) {
			s.data[i] ^= 0x40;
			rc = read_image(&s, err, sizeof(err), &nrec);
			caught += rc < 0;
			named += rc < 0 && strncmp(err, "image: ", 7) == 0;
			s.data[i] ^= 0x40;
		}
		is_int(caught, (long long)s.len, "every single-byte flip (%zu offsets) is rejected", s.len);
		is_int(named, caught, "every rejection has an 'image: ...' message");
		s.data[60] ^= 1;
		read_image(&s, err, sizeof(err), &nrec);
		s.data[60] ^= 1;
		ok(strstr(err, "record 2") != NULL, "a flip in record 2 names record 2 (%s)", err);

		/* Every truncation is caught. */
		caught = 0;
		for (size_t cut = 0; cut < s.len; cut++) {
			size_t full = s.len;

			s.len = cut;
			caught += read_image(&s, err, sizeof(err), &nrec) < 0;
			s.len = full;
		}
		is_int(caught, (long long)s.len, "every truncation (%zu lengths) is rejected", s.len);
		s.len -= 10;
		read_image(&s, err, sizeof(err), &nrec);
		ok(strstr(err, "truncated") != NULL, "truncation says so (%s)", err);
		s.len += 10;

		/* Dropping a whole record breaks the trailer digest. */
		{
			struct mem d = { 0 };
			size_t rec2 = 40 + 8 + 5 + 4;   /* header + record 1 */

			mem_write(&d, s.data, rec2);
			mem_write(&d, s.data + rec2 + 12, s.len - rec2 - 12);
			rc = read_image(&d, err, sizeof(err), &nrec);
			ok(rc < 0 && strstr(err, "trailer"), "a removed record is detected (%s)", err);
			free(d.data);
		}
		free(s.data);
	}

	/* Header checks: version, architecture, bound on record length. */
	{
		struct mem s = { 0 };
		struct image_reader *r;

		make_image(&s, 10);
		s.data[8] = 9;   /* version 9 */
		s.pos = 0;
		r = image_reader_cb(mem_read, &s, err, sizeof(err));
		ok(!r && strstr(err, "version 9 not supported"), "unknown version refused (%s)", err);
		s.data[8] = 1;
		s.data[12] = (uint8_t)AUDIT_ARCH_AARCH64;
		s.data[13] = (uint8_t)(AUDIT_ARCH_AARCH64 >> 8);
		s.data[14] = (uint8_t)(AUDIT_ARCH_AARCH64 >> 16);
		s.data[15] = (uint8_t)(AUDIT_ARCH_AARCH64 >> 24);
		/* Re-seal the header CRC so the architecture check itself is tested. */
		{
			uint32_t c = crc32c(0, s.data, 36);

			memcpy(s.data + 36, &c, 4);
		}
		s.pos = 0;
		r = image_reader_cb(mem_read, &s, err, sizeof(err));
		ok(!r && strstr(err, "made for aarch64"), "foreign architecture refused (%s)", err);
		free(s.data);

		memset(&s, 0, sizeof(s));
		make_image(&s, 5000);
		s.pos = 0;
		r = image_reader_cb(mem_read, &s, err, sizeof(err));
		image_reader_set_namer(r, namer);
		image_reader_set_max_record(r, 4096);
		{
			uint32_t type, len;

			image_next(r, &type, &len);
			image_next(r, &type, &len);
			rc = image_next(r, &type, &len);
		}
		ok(rc == -E2BIG && strstr(image_reader_error(r), "'pages'"),
		   "oversized record refused by name (%s)", image_reader_error(r));
		image_reader_free(r);
		free(s.data);
		s.pos = 0;
		s.len = 0;
		s.data = (uint8_t *)"GIF89a nothing to see here, really not an image";
		s.len = strlen((char *)s.data);
		r = image_reader_cb(mem_read, &s, err, sizeof(err));
		ok(!r && strstr(err, "not a zapc image"), "foreign file refused (%s)", err);
	}

	/* A file must end at the trailer. */
	{
		char path[] = "/tmp/zapc-image-test-XXXXXX";
		int fd = mkstemp(path);
		struct image_writer *w;
		struct image_reader *r;
		uint32_t type, len;

		unlink(path);
		w = image_writer_fd(fd, 0, err, sizeof(err));
		image_write(w, 1, "x", 1);
		ok(image_writer_finish(w) == 0, "fd writer finishes");
		image_writer_free(w);
		lseek(fd, 0, SEEK_SET);
		r = image_reader_fd(fd, err, sizeof(err));
		image_next(r, &type, &len);
		is_int(image_next(r, &type, &len), 0, "file image verifies");
		image_reader_free(r);
		if (write(fd, "junk", 4) != 4)
			return 1;
		lseek(fd, 0, SEEK_SET);
		r = image_reader_fd(fd, err, sizeof(err));
		image_next(r, &type, &len);
		ok(image_next(r, &type, &len) < 0 && strstr(image_reader_error(r), "after the trailer"),
		   "data after the trailer of a file is refused");
		image_reader_free(r);
		close(fd);
	}
	free(m.data);
	return tap_done();
}
