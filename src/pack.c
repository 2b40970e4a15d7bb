// SPDX-License-Identifier: MIT
/*
 * pack: zstd at its fast level -1 with a dictionary of the field names and values
 * that the tasks API documents (tasks-openapi.json), so that even one small
 * task compresses well on its own. zstd is made for small records: a task
 * packs in a few microseconds. The dictionary is digested once and shared;
 * each thread keeps its own contexts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "pack.h"

#define LEVEL (-1)

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

static ZSTD_CDict *cdict; /* read-only once made */
static ZSTD_DDict *ddict;
static pthread_key_t ctx_key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

struct contexts {
	ZSTD_CCtx *c;
	ZSTD_DCtx *d;
};

static void contexts_free(void *p)
{
	struct contexts *x = p;

	ZSTD_freeCCtx(x->c);
	ZSTD_freeDCtx(x->d);
	free(x);
}

static void pack_init(void)
{
	cdict = ZSTD_createCDict(dictionary, sizeof(dictionary) - 1, LEVEL);
	ddict = ZSTD_createDDict(dictionary, sizeof(dictionary) - 1);
	pthread_key_create(&ctx_key, contexts_free);
}

static struct contexts *contexts_get(void)
{
	struct contexts *x;

	pthread_once(&once, pack_init);
	if (!cdict || !ddict)
		return NULL;
	x = pthread_getspecific(ctx_key);
	if (x)
		return x;
	x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->c = ZSTD_createCCtx();
	x->d = ZSTD_createDCtx();
	if (!x->c || !x->d || pthread_setspecific(ctx_key, x)) {
		contexts_free(x);
		return NULL;
	}
	/* the raw length is kept beside the data; no need to repeat it */
	ZSTD_CCtx_setParameter(x->c, ZSTD_c_contentSizeFlag, 0);
	ZSTD_CCtx_setParameter(x->c, ZSTD_c_dictIDFlag, 0);
	return x;
}

void pack_thread_exit(void)
{
	struct contexts *x;

	pthread_once(&once, pack_init);
	x = pthread_getspecific(ctx_key);
	if (x) {
		pthread_setspecific(ctx_key, NULL);
		contexts_free(x);
	}
}

void pack_cleanup(void)
{
	pack_thread_exit();
	ZSTD_freeCDict(cdict);
	ZSTD_freeDDict(ddict);
	cdict = NULL;
	ddict = NULL;
}

size_t pack_bound(size_t len)
{
	return ZSTD_compressBound(len);
}

const char *pack_version(void)
{
	return ZSTD_versionString();
}

int pack(const char *src, size_t len, unsigned char *dst, size_t *dstlen)
{
	struct contexts *x = contexts_get();
	size_t r;

	if (!x)
		return -ENOMEM;
	r = ZSTD_CCtx_refCDict(x->c, cdict);
	if (!ZSTD_isError(r))
		r = ZSTD_compress2(x->c, dst, pack_bound(len), src, len);
	if (ZSTD_isError(r))
		return -EIO;
	*dstlen = r;
	return 0;
}

int unpack(const unsigned char *src, size_t len, size_t rawlen, struct buf *out)
{
	struct contexts *x = contexts_get();
	char stack[16384], *tmp = stack;
	size_t r;
	int res;

	if (!x)
		return -ENOMEM;
	if (rawlen > sizeof(stack) && !(tmp = malloc(rawlen)))
		return -ENOMEM;
	r = ZSTD_decompress_usingDDict(x->d, tmp, rawlen, src, len, ddict);
	if (ZSTD_isError(r) || r != rawlen)
		res = -EIO;
	else
		res = buf_add(out, tmp, rawlen);
	if (tmp != stack)
		free(tmp);
	return res;
}
