/*
 * image.h — the zapc image stream container: framing, checksums, limits.
 *
 * An image is a seek-free byte stream, so it can go to a file, a pipe or a
 * TLS connection to another agent:
 *
 *   fixed header (40 bytes, little-endian)
 *     magic "ZAPCIMG\n" | u32 version | u32 arch (AUDIT_ARCH_*) | u32 page_size
 *     | u32 flags | u64 stream_id | u32 reserved | u32 crc32c(previous 36 bytes)
 *   records, in restore order
 *     u32 type | u32 len | payload[len] | u32 crc32c(type, len, payload)
 *   trailer record (type IMAGE_REC_TRAILER)
 *     u64 nrecords | u64 payload_bytes | u8 sha256[32]
 *
 * The trailer's SHA-256 covers the fixed header and, for every record, its
 * type, length and CRC — so truncation, reordering, dropped or inserted
 * records are caught, while page bytes are checked by CRC32C only (hardware
 * CRC runs near memcpy speed; SHA-256 of every page would dominate restore
 * time).  docs/image-format.md has the rationale.
 *
 * What a record's payload means (protobuf, page runs) is the engine's
 * business; this layer moves typed, checksummed blobs and never trusts a
 * byte it reads: every length is bounded, every error names the record.
 */
#ifndef ZAPC_IMAGE_H
#define ZAPC_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define IMAGE_MAGIC        "ZAPCIMG\n"
#define IMAGE_VERSION      2   /* 2: a child's pages may be in its parent (cow_parent) */
#define IMAGE_VERSION_MIN  1   /* oldest version still read */
#define IMAGE_REC_TRAILER  0xffffffffu
#define IMAGE_MAX_RECORD   (256u << 20)   /* reader's default bound on one payload */

/* Header flags (docs/incremental.md).  A reader that does not know a flag
 * meets record types it does not know and refuses the image. */
#define IMAGE_FLAG_INDEXED     1u   /* pages as REC_PAGE_INDEX + REC_ZPAGES (maybe zstd) */
#define IMAGE_FLAG_INCREMENTAL 2u   /* has a parent (REC_PARENT): a link of a chain */

/* Byte sink / source: return bytes moved, or -errno.  A source returns 0 at EOF. */
typedef ssize_t (*image_write_fn)(void *ctx, const void *buf, size_t len);
typedef ssize_t (*image_read_fn)(void *ctx, void *buf, size_t len);

struct image_writer;
struct image_reader;

struct image_header {
	uint32_t version;
	uint32_t arch;        /* AUDIT_ARCH_X86_64 on x86_64 */
	uint32_t page_size;
	uint32_t flags;
	uint64_t stream_id;   /* random; an incremental image names its parent's */
};

/* --- writing ------------------------------------------------------------ */

/* Start a stream on fd (not owned) / on a callback.  Writes the header at once. */
struct image_writer *image_writer_fd(int fd, uint32_t flags, char *err, size_t errlen);
struct image_writer *image_writer_cb(image_write_fn fn, void *ctx, uint32_t flags,
				     char *err, size_t errlen);
const struct image_header *image_writer_header(const struct image_writer *w);

/* One record; the iovec form lets a caller prepend a small header to page data
 * without copying.  Return 0 or -errno (the message is in image_writer_error()). */
int image_write(struct image_writer *w, uint32_t type, const void *buf, size_t len);
int image_writev(struct image_writer *w, uint32_t type, const struct iovec *iov, int iovcnt);

/* Write the trailer and flush.  After this the writer accepts nothing more. */
int image_writer_finish(struct image_writer *w);
const char *image_writer_error(const struct image_writer *w);
uint64_t image_writer_bytes(const struct image_writer *w);   /* stream bytes so far */
void image_writer_free(struct image_writer *w);

/* --- reading ------------------------------------------------------------ */

/* Reads and checks the header (magic, version, arch of this machine, page size).
 * On error returns NULL with a one-line reason in err. */
struct image_reader *image_reader_fd(int fd, char *err, size_t errlen);
struct image_reader *image_reader_cb(image_read_fn fn, void *ctx, char *err, size_t errlen);
const struct image_header *image_reader_header(const struct image_reader *r);

/* Names record types in error messages ("record 17 'pages' at offset 4096: ..."). */
void image_reader_set_namer(struct image_reader *r, const char *(*name)(uint32_t type));
void image_reader_set_max_record(struct image_reader *r, uint32_t max);

/*
 * Advance to the next record.  Returns 1 with *type and *len set, 0 at a
 * verified end of stream (trailer read and checked), or -errno
 * (-EBADMSG corrupt, -EPROTO truncated/malformed, -E2BIG over the bound).
 * Any unread payload of the previous record is read and checked first.
 */
int image_next(struct image_reader *r, uint32_t *type, uint32_t *len);
/* Read exactly len bytes of the current payload (len <= what remains).  The
 * record's CRC is checked when its last byte has been read; a mismatch
 * returns -EBADMSG from that call. */
int image_read(struct image_reader *r, void *buf, size_t len);
/* Read and discard the rest of the current payload, checking its CRC: 0, or
 * -EBADMSG/-EPROTO with the reader's error set.  A consumer that finds a
 * record's prefix malformed calls this first, so that a flipped byte is
 * reported as the checksum error it is and not as a bogus field. */
int image_skip(struct image_reader *r);
/*
 * The rest of the current payload left in the image file for the caller:
 * a reader of a regular file moves past it and its stored checksum without
 * reading it, so that the caller can read it with pread (from several
 * threads at once).  The caller must compute crc32c(d->crc, rest of the
 * payload) and compare it with d->stored before it trusts the data or lets
 * anything built from it run; the stream digest takes the stored checksum,
 * so the trailer still covers every record.  0, -ESPIPE (not a regular
 * file: read it the usual way), or -errno with the reader's error set
 * (truncated image).
 */
struct image_deferred {
	int fd;                 /* pread the payload from here */
	uint64_t offset, len;   /* file offset and length of the rest of the payload */
	uint32_t crc;           /* checksum state before it */
	uint32_t stored;        /* what the checksum must come to */
	uint64_t index;         /* the record (1-based) and its stream offset, for errors */
	uint64_t rec_offset;
};
int image_read_deferred(struct image_reader *r, struct image_deferred *d);
/* Convenience: whole payload into a malloc'd buffer (caller frees). */
int image_read_all(struct image_reader *r, void **buf, uint32_t *len);

const char *image_reader_error(const struct image_reader *r);
uint64_t image_reader_record_index(const struct image_reader *r);  /* 1-based */
uint64_t image_reader_offset(const struct image_reader *r);        /* of current record */
void image_reader_free(struct image_reader *r);

/* CRC32C (Castagnoli): AVX-512 VPCLMULQDQ folding, else the SSE4.2 crc32
 * instruction, else tables (lib/crc32c.c). */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
/* The path crc32c() takes here: "vpclmul", "sse42" or "sw" (ZAPC_CRC32C picks a slower one). */
const char *crc32c_impl(void);

#endif
