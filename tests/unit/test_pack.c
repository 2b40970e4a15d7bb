// SPDX-License-Identifier: MIT
/* Packing round trips, and damaged input failing cleanly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "pack.h"

static void round_trip(const char *src, size_t len)
{
	unsigned char *p = malloc(pack_bound(len));
	struct buf out = BUF_INIT(1 << 24);
	size_t plen = 0;

	CHECK(p != NULL);
	CHECK(pack(src, len, p, &plen) == 0);
	CHECK(plen <= pack_bound(len));
	CHECK(unpack(p, plen, len, &out) == 0);
	CHECK(out.len == len && (len == 0 || !memcmp(out.data, src, len)));
	buf_release(&out);
	/* a damaged stream or a wrong length is an error, never a crash */
	if (plen > 2) {
		p[plen / 2] ^= 0x5a;
		unpack(p, plen, len, &out);
		buf_release(&out);
		CHECK(unpack(p, plen / 2, len, &out) == -EIO);
		buf_release(&out);
	}
	free(p);
}

/* Pack one made-up task; its size. */
static size_t pack_task(unsigned i, unsigned char *p, size_t cap, char *json)
{
	size_t plen = 0;

	snprintf(json, 1024,
		 "{\"task_id\":\"task_%08x\",\"status\":\"%s\","
		 "\"task_type\":\"thumbnail\",\"inputs\":[\"s3://bucket-"
		 "%u/videos/clip_%05u.mp4\"],\"additional_data\":{\"batch_id\""
		 ":\"btch_%06u\",\"namespace_id\":\"ns_prod\",\"note\":"
		 "\"frames extracted at 2 fps, 720p, h264\"}}",
		 i * 2654435761u, i % 3 ? "COMPLETED" : "FAILED", i % 7, i,
		 i / 10);
	CHECK(pack_bound(strlen(json)) <= cap);
	CHECK(pack(json, strlen(json), p, &plen) == 0);
	return plen;
}

/*
 * After SAMPLES_MAX (250) tasks, a dictionary trained on them (by a
 * thread of its own) packs the later ones smaller; records of both kinds
 * unpack, and compare by what they hold.
 */
static void test_trained(void)
{
	unsigned char first[2048], later[2048], again[2048];
	char json[1024];
	struct buf out = BUF_INIT(1 << 20);
	size_t a, b, c, len;
	unsigned i;

	a = pack_task(0, first, sizeof(first), json);
	for (i = 1; i < 1000; i++)
		pack_task(i, later, sizeof(later), json);
	/* the trainer: poll, for at most 30 s */
	for (i = 0; i < 30000 && !pack_trained(); i++)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	CHECK(pack_trained());
	b = pack_task(0, later, sizeof(later), json);
	len = strlen(json);
	CHECK(first[0] != later[0]); /* another dictionary */
	CHECK(b * 3 / 2 < a);	     /* at least 1.5 times smaller */
	CHECK(unpack(first, a, len, &out) == 0);
	CHECK(out.len == len && !memcmp(out.data, json, len));
	buf_release(&out);
	CHECK(unpack(later, b, len, &out) == 0);
	CHECK(out.len == len && !memcmp(out.data, json, len));
	buf_release(&out);
	/* the same task either way; another task is another */
	CHECK(pack_same(first, a, later, b, len));
	c = pack_task(1, again, sizeof(again), json);
	CHECK(!pack_same(later, b, again, c, len));
	CHECK(!pack_same(first, a, again, c, len));
	/* a record naming no dictionary there is fails cleanly */
	later[0] = 7;
	CHECK(unpack(later, b, len, &out) == -EIO);
	buf_release(&out);
}

int main(void)
{
	static const char task[] =
		"{\"task_id\":\"task_1\",\"status\":"
		"\"FAILED\",\"additional_data\":{\"bucket_id\":\"bkt\"}}";
	char *big = malloc(300000);
	size_t i;
	unsigned seed = 7;

	round_trip("", 0);
	round_trip(task, strlen(task));
	for (i = 0; i < 300000; i++)
		big[i] = (char)(i % 7 ? 'a' + rand_r(&seed) % 26 : '"');
	round_trip(big, 300000);
	free(big);
	test_trained();
	round_trip(task, strlen(task));
	pack_cleanup();
	return check_done();
}
