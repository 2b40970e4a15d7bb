// SPDX-License-Identifier: MIT
/*
 * store_values: the statuses and task types mixpeekfs knows, for the
 * by-status/ and by-type/ folders: the API's published values, then any
 * new one a result shows, STORE_VALUES_MAX of each at most. Append only;
 * a hash table finds a name; one lock of its own, taken after the
 * store's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "log.h"
#include "store_i.h"

const char *const store_statuses[] = { "PENDING",
				       "IN_PROGRESS",
				       "PROCESSING",
				       "COMPLETED",
				       "COMPLETED_WITH_ERRORS",
				       "FAILED",
				       "CANCELED",
				       "UNKNOWN",
				       "SKIPPED",
				       "DRAFT",
				       "ACTIVE",
				       "ARCHIVED",
				       "SUSPENDED",
				       NULL };

const char *const store_types[] = { "api_namespaces_create",
				    "api_namespaces_delete",
				    "api_namespaces_migrations_run",
				    "api_buckets_objects_create",
				    "api_buckets_delete",
				    "api_buckets_batches_process",
				    "api_buckets_batches_submit",
				    "api_buckets_uploads_create",
				    "api_buckets_uploads_confirm",
				    "api_buckets_uploads_batch_confirm",
				    "api_collections_documents_create",
				    "api_collections_extraction_artifacts",
				    "api_taxonomies_create",
				    "api_taxonomies_execute",
				    "api_taxonomies_materialize",
				    "api_evaluations_run",
				    "api_evaluations_dataset_create",
				    "api_retrievers_publish",
				    "api_collections_export",
				    "api_collections_trigger",
				    "engine_feature_extractor_run",
				    "engine_inference_run",
				    "engine_object_processing",
				    "engine_cluster_build",
				    "thumbnail",
				    "video_segment",
				    "audio_segment",
				    "materialize",
				    "plugin_custom",
				    "model_custom",
				    NULL };

struct value {
	char *name;
	struct value *next; /* in the order seen */
	UT_hash_handle hh;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	struct value *head, **tail; /* protected by lock */
	struct value *by_name;	    /* protected by lock */
	size_t n;		    /* protected by lock */
} values[2];

int values_add(enum store_values which, const char *name)
{
	struct value *v;
	int res = 0;

	pthread_mutex_lock(&lock);
	HASH_FIND_STR(values[which].by_name, name, v);
	if (v)
		goto out;
	if (values[which].n >= STORE_VALUES_MAX) {
		log_once(LOG_WARNING,
			 "more than %d distinct %s: by-%s/ shows the first %d",
			 STORE_VALUES_MAX,
			 which == STORE_STATUSES ? "statuses" : "task types",
			 which == STORE_STATUSES ? "status" : "type",
			 STORE_VALUES_MAX);
		goto out;
	}
	v = calloc(1, sizeof(*v));
	if (!v || !(v->name = strdup(name))) {
		free(v);
		res = -ENOMEM;
		goto out;
	}
	if (!values[which].tail)
		values[which].tail = &values[which].head;
	*values[which].tail = v;
	values[which].tail = &v->next;
	values[which].n++;
	HASH_ADD_KEYPTR(hh, values[which].by_name, v->name, strlen(v->name), v);
out:
	pthread_mutex_unlock(&lock);
	return res;
}

int values_init(void)
{
	int i, res = 0;

	for (i = 0; store_statuses[i] && !res; i++)
		res = values_add(STORE_STATUSES, store_statuses[i]);
	for (i = 0; store_types[i] && !res; i++)
		res = values_add(STORE_TYPES, store_types[i]);
	return res;
}

void values_cleanup(void)
{
	int i;

	pthread_mutex_lock(&lock);
	for (i = 0; i < 2; i++) {
		HASH_CLEAR(hh, values[i].by_name);
		while (values[i].head) {
			struct value *v = values[i].head;

			values[i].head = v->next;
			free(v->name);
			free(v);
		}
		values[i].tail = &values[i].head;
		values[i].n = 0;
	}
	pthread_mutex_unlock(&lock);
}

int store_values(enum store_values which, char ***names, size_t *n)
{
	struct value *v;
	size_t count = 0, i = 0;
	char **arr;

	pthread_mutex_lock(&lock);
	count = values[which].n;
	arr = calloc(count + 1, sizeof(*arr));
	for (v = values[which].head; v && arr; v = v->next, i++) {
		arr[i] = strdup(v->name);
		if (!arr[i]) {
			store_values_free(arr, i);
			arr = NULL;
		}
	}
	pthread_mutex_unlock(&lock);
	if (!arr)
		return -ENOMEM;
	*names = arr;
	*n = count;
	return 0;
}

bool store_value_published(enum store_values which, const char *v)
{
	const char *const *p = which == STORE_STATUSES ? store_statuses :
							 store_types;

	for (; *p; p++)
		if (!strcmp(*p, v))
			return true;
	return false;
}

void store_values_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}
