// SPDX-License-Identifier: MIT
/* Packing round trips, and damaged input failing cleanly. */
#include <stdlib.h>
#include <string.h>

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
	return check_done();
}
