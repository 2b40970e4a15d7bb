// SPDX-License-Identifier: MIT
/*
 * pack: raw deflate at level 1, primed with a dictionary of the field
 * names and values that the tasks API documents (tasks-openapi.json), so
 * that even one small task compresses well on its own.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "pack.h"

static const char dictionary[] =
	"\"error_message\":\"from_mongodb\":true,\"job_id\":\"\"batch_id\":\""
	"\"bucket_id\":\"\"namespace_id\":\"ns_\"total_tiers\":"
	"\"collection_ids\":[\"\"object_count\":\"current_tier\":null,"
	"\"sample_object_ids\":[\"\"created_at\":\"\"updated_at\":\""
	"PENDING\"IN_PROGRESS\"PROCESSING\"COMPLETED_WITH_ERRORS\""
	"CANCELED\"FAILED\"COMPLETED\"api_buckets_batches_process\""
	"engine_feature_extractor_run\"api_collections_\"thumbnail\""
	"\"outputs\":[{\"\"inputs\":[\"\"description\":\"\"error\":null,"
	"\"additional_data\":{\"\"status\":\"\"task_type\":\"{\"task_id\":\"";

/*
 * Small inputs: a 4 KiB window and little hash memory are enough, and keep
 * setting up a stream cheap. Each thread keeps its streams for reuse.
 */
#define WINDOW_BITS 12
#define MEM_LEVEL 4

struct streams {
	z_stream def, inf;
	int def_ok, inf_ok;
};

static pthread_key_t streams_key;
static pthread_once_t streams_once = PTHREAD_ONCE_INIT;

static void streams_free(void *p)
{
	struct streams *s = p;

	if (s->def_ok)
		deflateEnd(&s->def);
	if (s->inf_ok)
		inflateEnd(&s->inf);
	free(s);
}

static void streams_init(void)
{
	pthread_key_create(&streams_key, streams_free);
}

static struct streams *streams_get(void)
{
	struct streams *s;

	pthread_once(&streams_once, streams_init);
	s = pthread_getspecific(streams_key);
	if (!s && (s = calloc(1, sizeof(*s))) &&
	    pthread_setspecific(streams_key, s)) {
		free(s);
		s = NULL;
	}
	return s;
}

void pack_thread_exit(void)
{
	struct streams *s;

	pthread_once(&streams_once, streams_init);
	s = pthread_getspecific(streams_key);
	if (s) {
		pthread_setspecific(streams_key, NULL);
		streams_free(s);
	}
}

size_t pack_bound(size_t len)
{
	return compressBound((uLong)len) + 64;
}

int pack(const char *src, size_t len, unsigned char *dst, size_t *dstlen)
{
	struct streams *s = streams_get();
	z_stream *z;
	int rc;

	if (!s)
		return -ENOMEM;
	z = &s->def;
	if (!s->def_ok) {
		if (deflateInit2(z, 1, Z_DEFLATED, -WINDOW_BITS, MEM_LEVEL,
				 Z_DEFAULT_STRATEGY) != Z_OK)
			return -ENOMEM;
		s->def_ok = 1;
	} else if (deflateReset(z) != Z_OK) {
		return -EIO;
	}
	deflateSetDictionary(z, (const Bytef *)dictionary,
			     sizeof(dictionary) - 1);
	z->next_in = (Bytef *)src;
	z->avail_in = (uInt)len;
	z->next_out = dst;
	z->avail_out = (uInt)pack_bound(len);
	rc = deflate(z, Z_FINISH);
	*dstlen = z->total_out;
	return rc == Z_STREAM_END ? 0 : -EIO;
}

int unpack(const unsigned char *src, size_t len, size_t rawlen,
	   struct buf *out)
{
	struct streams *s = streams_get();
	size_t start = out->len;
	z_stream *z;
	int rc;

	if (!s)
		return -ENOMEM;
	z = &s->inf;
	if (!s->inf_ok) {
		if (inflateInit2(z, -WINDOW_BITS) != Z_OK)
			return -ENOMEM;
		s->inf_ok = 1;
	} else if (inflateReset(z) != Z_OK) {
		return -EIO;
	}
	inflateSetDictionary(z, (const Bytef *)dictionary,
			     sizeof(dictionary) - 1);
	z->next_in = (Bytef *)src;
	z->avail_in = (uInt)len;
	for (;;) {
		unsigned char chunk[4096];

		z->next_out = chunk;
		z->avail_out = sizeof(chunk);
		rc = inflate(z, Z_NO_FLUSH);
		if (rc != Z_OK && rc != Z_STREAM_END)
			break;
		if (buf_add(out, chunk, sizeof(chunk) - z->avail_out)) {
			rc = Z_MEM_ERROR;
			break;
		}
		if (rc == Z_STREAM_END || z->avail_in == 0)
			break;
	}
	if (rc != Z_STREAM_END || out->len - start != rawlen)
		return -EIO;
	return 0;
}
