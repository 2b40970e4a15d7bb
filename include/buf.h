/* SPDX-License-Identifier: MIT */
/*
 * buf: a growable byte buffer with a hard maximum size.
 * The data is always NUL-terminated. When an append fails the buffer
 * releases itself, so error paths need no extra cleanup.
 */
#ifndef MIXPEEKFS_BUF_H
#define MIXPEEKFS_BUF_H

#include <stddef.h>

struct buf {
	char *data; /* NULL until the first append */
	size_t len;
	size_t alloc;
	size_t max; /* appends beyond this fail with -EFBIG */
};

#define BUF_INIT(maxsize)             \
	{                             \
		NULL, 0, 0, (maxsize) \
	}

void buf_init(struct buf *b, size_t max);

/* Append; 0, -ENOMEM or -EFBIG (then the buffer is released). */
int buf_add(struct buf *b, const void *data, size_t len);
int buf_addstr(struct buf *b, const char *s);
int buf_addch(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The contents as a string; never NULL ("" when empty). Borrowed. */
const char *buf_str(const struct buf *b);

/*
 * Hand over the storage: a malloc'd NUL-terminated string the caller frees
 * (NULL only on allocation failure). The buffer is empty afterwards.
 */
char *buf_detach(struct buf *b, size_t *len);

/* Free the contents; the buffer may be reused. */
void buf_release(struct buf *b);

#endif
