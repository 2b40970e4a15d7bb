// SPDX-License-Identifier: MIT
/*
 * pack: zstd at its fast level -1 with a dictionary of the field names and values
 * that the tasks API documents (tasks-openapi.json), so that even one small
 * task compresses well on its own. zstd is made for small records: a task
 * packs in a few microseconds. The dictionary is digested once and shared;
 * each thread keeps its own contexts.
 *
 * Tasks of one namespace look alike far beyond the field names, so the
 * first SAMPLES_MAX tasks packed are kept as samples, and a dictionary
 * trained on them packs every later task at level 1, about 2.5 times
 * smaller (the test server's COMPLETED tasks: 845 bytes of JSON, packed
 * 470 with the built-in dictionary, 180 with the trained one). The first
 * byte of a packed record says which dictionary it needs; both stay until
 * pack_cleanup.
 *
 * Training is zstd's fastCover with fixed parameters (train_params), on a
 * thread of its own: 5 ms of CPU for 250 tasks. ZDICT_trainFromBuffer
 * took 100 ms for a dictionary no better (it tries several k, each with
 * 6 MiB of tables to fault in), which put a cold `ls` of 9,101 tasks at
 * 0.46 s of daemon CPU; now 0.30 s, as before there was a trained
 * dictionary (medians of 5, interleaved). task_bytes for 20,000 tasks:
 * 6.2 MB (6.1 with ZDICT_trainFromBuffer, 12.5 with the built-in
 * dictionary alone). Level -1 with the trained dictionary packs no
 * faster (2 us a task either way) and 26% bigger.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ZDICT_STATIC_LINKING_ONLY /* fastCover with fixed parameters */
#include <zdict.h>
#include <zstd.h>

#include "pack.h"

#define LEVEL (-1)
#define LEVEL_TRAINED 1
/* The trained dictionary's size, and what it is trained on. */
#define DICT_MAX (16 * 1024)
#define SAMPLES_MAX 250
#define SAMPLES_BYTES ((size_t)256 << 10)
#define SAMPLE_MAX ((size_t)64 << 10) /* a bigger task is no sample */

enum { DICT_BUILTIN, DICT_TRAINED, DICTS };

/*
 * fastCover with the parameters zstd's own search settles on for these
 * tasks (k 1024, d 8), without the search; f 16: a table of 2^16 rather
 * than 2^20 entries (384 KiB rather than 6 MiB to allocate and fault in).
 */
static const ZDICT_fastCover_params_t train_params = {
	.k = 1024,
	.d = 8,
	.f = 16,
	.zParams = { .compressionLevel = LEVEL_TRAINED },
};

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

/* read-only once made; the trained pair once trained is set */
static ZSTD_CDict *cdict[DICTS];
static ZSTD_DDict *ddict[DICTS];
static int trained; /* atomic: cdict and ddict[DICT_TRAINED] are ready */
static pthread_key_t ctx_key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The samples to train on, until done. */
static struct {
	pthread_mutex_t lock;
	char *buf; /* protected by lock: the samples, back to back */
	size_t len;
	size_t sizes[SAMPLES_MAX];
	unsigned n;
	int done; /* atomic: trained, or given up */
	int full; /* protected by lock: enough; the trainer is at it */
	pthread_t trainer;
	int trainer_running; /* protected by lock: to be joined */
} samples = { .lock = PTHREAD_MUTEX_INITIALIZER };

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
	cdict[DICT_BUILTIN] = ZSTD_createCDict(dictionary,
					       sizeof(dictionary) - 1, LEVEL);
	ddict[DICT_BUILTIN] = ZSTD_createDDict(dictionary,
					       sizeof(dictionary) - 1);
	pthread_key_create(&ctx_key, contexts_free);
}

/* Train the dictionary on the samples, once; free them. Lock held. */
static void train_locked(void)
{
	void *dict = malloc(DICT_MAX);
	size_t r = 0;

	/*
	 * The fastCover call and its parameters are zstd's experimental
	 * API, whose layout may change between releases: only with the
	 * libzstd this was built against; otherwise the stable call.
	 */
	if (dict && ZSTD_versionNumber() == ZSTD_VERSION_NUMBER)
		r = ZDICT_trainFromBuffer_fastCover(dict, DICT_MAX, samples.buf,
						    samples.sizes, samples.n,
						    train_params);
	else if (dict)
		r = ZDICT_trainFromBuffer(dict, DICT_MAX, samples.buf,
					  samples.sizes, samples.n);
	if (dict && !ZDICT_isError(r)) {
		cdict[DICT_TRAINED] = ZSTD_createCDict(dict, r, LEVEL_TRAINED);
		ddict[DICT_TRAINED] = ZSTD_createDDict(dict, r);
		if (cdict[DICT_TRAINED] && ddict[DICT_TRAINED])
			__atomic_store_n(&trained, 1, __ATOMIC_RELEASE);
	}
	free(dict);
	free(samples.buf);
	samples.buf = NULL;
	samples.len = 0;
	__atomic_store_n(&samples.done, 1, __ATOMIC_RELEASE);
}

/*
 * A thread of its own trains, so that the listing whose tasks are the
 * samples is not held up (its tasks and those packed meanwhile keep the
 * built-in dictionary).
 */
static void *trainer_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&samples.lock);
	if (!samples.done)
		train_locked();
	pthread_mutex_unlock(&samples.lock);
	return NULL;
}

/* Enough samples: start the trainer, or train now without one. Lock held. */
static void train_start_locked(void)
{
	samples.full = 1;
	samples.trainer_running = !pthread_create(&samples.trainer, NULL,
						  trainer_main, NULL);
	if (!samples.trainer_running)
		train_locked();
}

/* Keep src as a sample while there are too few; train when enough. */
static void sample(const char *src, size_t len)
{
	if (__atomic_load_n(&samples.done, __ATOMIC_ACQUIRE) ||
	    len > SAMPLE_MAX || pthread_mutex_trylock(&samples.lock))
		return; /* a thread is at it: this task is no sample */
	if (!samples.done && !samples.full) {
		if (!samples.buf)
			samples.buf = malloc(SAMPLES_BYTES + SAMPLE_MAX);
		if (!samples.buf) {
			__atomic_store_n(&samples.done, 1, __ATOMIC_RELEASE);
		} else {
			memcpy(samples.buf + samples.len, src, len);
			samples.len += len;
			samples.sizes[samples.n++] = len;
			if (samples.n == SAMPLES_MAX ||
			    samples.len >= SAMPLES_BYTES)
				train_start_locked();
		}
	}
	pthread_mutex_unlock(&samples.lock);
}

static struct contexts *contexts_get(void)
{
	struct contexts *x;

	pthread_once(&once, pack_init);
	if (!cdict[DICT_BUILTIN] || !ddict[DICT_BUILTIN])
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

bool pack_trained(void)
{
	return __atomic_load_n(&trained, __ATOMIC_ACQUIRE);
}

void pack_cleanup(void)
{
	int i;

	pthread_mutex_lock(&samples.lock);
	if (samples.trainer_running) {
		samples.trainer_running = 0;
		pthread_mutex_unlock(&samples.lock);
		pthread_join(samples.trainer, NULL);
	} else {
		pthread_mutex_unlock(&samples.lock);
	}
	pack_thread_exit();
	for (i = 0; i < DICTS; i++) {
		ZSTD_freeCDict(cdict[i]);
		ZSTD_freeDDict(ddict[i]);
		cdict[i] = NULL;
		ddict[i] = NULL;
	}
	__atomic_store_n(&trained, 0, __ATOMIC_RELEASE);
	pthread_mutex_lock(&samples.lock);
	free(samples.buf);
	samples.buf = NULL;
	samples.len = samples.n = 0;
	samples.done = samples.full = 0;
	pthread_mutex_unlock(&samples.lock);
}

size_t pack_bound(size_t len)
{
	return 1 + ZSTD_compressBound(len); /* the dictionary's byte */
}

const char *pack_version(void)
{
	return ZSTD_versionString();
}

int pack(const char *src, size_t len, unsigned char *dst, size_t *dstlen)
{
	struct contexts *x = contexts_get();
	int d;
	size_t r;

	if (!x)
		return -ENOMEM;
	d = __atomic_load_n(&trained, __ATOMIC_ACQUIRE) ? DICT_TRAINED :
							  DICT_BUILTIN;
	if (d == DICT_BUILTIN)
		sample(src, len);
	dst[0] = (unsigned char)d;
	r = ZSTD_CCtx_refCDict(x->c, cdict[d]);
	if (!ZSTD_isError(r))
		r = ZSTD_compress2(x->c, dst + 1, pack_bound(len) - 1, src,
				   len);
	if (ZSTD_isError(r))
		return -EIO;
	*dstlen = r + 1;
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
	if (len < 1 || src[0] >= DICTS ||
	    (src[0] == DICT_TRAINED &&
	     !__atomic_load_n(&trained, __ATOMIC_ACQUIRE)))
		return -EIO;
	if (rawlen > sizeof(stack) && !(tmp = malloc(rawlen)))
		return -ENOMEM;
	r = ZSTD_decompress_usingDDict(x->d, tmp, rawlen, src + 1, len - 1,
				       ddict[src[0]]);
	if (ZSTD_isError(r) || r != rawlen)
		res = -EIO;
	else
		res = buf_add(out, tmp, rawlen);
	if (tmp != stack)
		free(tmp);
	return res;
}

bool pack_same(const unsigned char *a, size_t alen, const unsigned char *b,
	       size_t blen, size_t rawlen)
{
	struct buf x = BUF_INIT(SIZE_MAX), y = BUF_INIT(SIZE_MAX);
	bool same;

	if (alen == blen && !memcmp(a, b, alen))
		return true;
	/* one input packs the same with one dictionary */
	if (alen && blen && a[0] == b[0])
		return false;
	same = !unpack(a, alen, rawlen, &x) && !unpack(b, blen, rawlen, &y) &&
		!memcmp(x.data, y.data, rawlen);
	buf_release(&x);
	buf_release(&y);
	return same;
}
