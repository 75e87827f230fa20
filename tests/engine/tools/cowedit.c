/*
 * cowedit.c — zt-cowedit IN OUT PID [ADDR NPAGES]...: copies image IN to OUT
 * with the pages process PID shares with its parent (ImgProcCore.cow_parent)
 * replaced by the given ranges (hex address, page count; none: the list is
 * emptied).  Every record gets a valid checksum and the trailer a valid
 * digest, so the restore sees a well-formed image that lies: how
 * tests/engine/cowshare.t checks that the restore refuses such ranges.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/image.h"
#include "proto/image.pb-c.h"

#define REC_PROC 5     /* agent/engine/engine.h */

int main(int argc, char **argv)
{
	char err[256];
	if (argc < 4 || argc % 2) {
		fprintf(stderr, "usage: zt-cowedit IN OUT PID [ADDR NPAGES]...\n");
		return 2;
	}
	int in = open(argv[1], O_RDONLY), out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600);
	struct image_reader *r = in >= 0 ? image_reader_fd(in, err, sizeof(err)) : NULL;
	if (!r || out < 0) {
		fprintf(stderr, "zt-cowedit: %s: %s\n", argv[1], r ? "cannot create output" : err);
		return 1;
	}
	struct image_writer *w = image_writer_fd(out, image_reader_header(r)->flags, err, sizeof(err));
	if (!w) {
		fprintf(stderr, "zt-cowedit: %s\n", err);
		return 1;
	}
	uint32_t pid = (uint32_t)strtoul(argv[3], NULL, 10), type, len;
	size_t nr = (size_t)(argc - 4);
	uint64_t *ranges = calloc(nr + 1, sizeof(uint64_t));
	for (size_t i = 0; i < nr; i++)
		ranges[i] = strtoull(argv[4 + i], NULL, i % 2 ? 10 : 16);
	int n, found = 0;
	while ((n = image_next(r, &type, &len)) > 0) {
		uint8_t *buf = malloc(len ? len : 1);
		if (!buf || image_read(r, buf, len) < 0) {
			fprintf(stderr, "zt-cowedit: reading %s failed\n", argv[1]);
			return 1;
		}
		ImgProcCore *c = type == REC_PROC ? img_proc_core__unpack(NULL, len, buf) : NULL;
		if (c && c->pid == pid) {
			uint64_t *old = c->cow_parent;
			size_t nold = c->n_cow_parent;
			c->cow_parent = ranges;
			c->n_cow_parent = nr;
			size_t plen = img_proc_core__get_packed_size(c);
			uint8_t *p = malloc(plen + 1);
			img_proc_core__pack(c, p);
			free(buf);
			buf = p;
			len = (uint32_t)plen;
			c->cow_parent = old;
			c->n_cow_parent = nold;
			found = 1;
		}
		if (c)
			img_proc_core__free_unpacked(c, NULL);
		if (image_write(w, type, buf, len) < 0) {
			fprintf(stderr, "zt-cowedit: %s\n", image_writer_error(w));
			return 1;
		}
		free(buf);
	}
	if (n < 0 || !found || image_writer_finish(w) < 0) {
		fprintf(stderr, "zt-cowedit: %s\n", n < 0 ? "bad input image" : !found ? "no such process" :
			image_writer_error(w));
		return 1;
	}
	image_writer_free(w);
	image_reader_free(r);
	free(ranges);
	return close(out) < 0;
}
