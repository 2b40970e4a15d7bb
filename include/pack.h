/* SPDX-License-Identifier: MIT */
/*
 * pack: tasks are kept compressed (zstd with a dictionary of the API's own
 * field names, then one trained on the first tasks seen), which keeps a
 * large cache small. The only user of zstd. Thread-safe; pack may spend
 * a few hundred milliseconds once, training the dictionary.
 */
#ifndef MIXPEEKFS_PACK_H
#define MIXPEEKFS_PACK_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Worst-case packed size for len bytes of input. */
size_t pack_bound(size_t len);

/* Pack len bytes of src into dst (pack_bound(len) bytes); the size. */
int pack(const char *src, size_t len, unsigned char *dst, size_t *dstlen);

/* Append the rawlen bytes that src unpacks to onto out. 0 or -EIO. */
int unpack(const unsigned char *src, size_t len, size_t rawlen,
	   struct buf *out);

/* Whether two packed forms of rawlen bytes each hold the same bytes
 * (packed with different dictionaries, they differ as bytes). */
bool pack_same(const unsigned char *a, size_t alen, const unsigned char *b,
	       size_t blen, size_t rawlen);

/* Free this thread's contexts now (for threads that are about to end). */
void pack_thread_exit(void);
/* Whether the trained dictionary is in use (its thread has trained it).
 * Never blocks. */
bool pack_trained(void);
/* Free everything, at exit. */
void pack_cleanup(void);

/* zstd's version, for .mixpeekfs/version. */
const char *pack_version(void);

#endif
