// SPDX-License-Identifier: MIT
/*
 * budget.c against simulated servers: a token bucket that sends the
 * X-RateLimit-* headers, the same without them, a server whose 429s are
 * random, a cap on requests in flight, and max_rate. Time is simulated:
 * nothing here sleeps.
 */
#include <math.h>
#include <stdlib.h>

#include "budget.h"
#include "check.h"

/* A server's token bucket (Mixpeek: per key, refilled continuously). */
struct server {
	double rate, burst, tokens, at;
	bool headers;
};

static void server_refill(struct server *s, double now)
{
	s->tokens = fmin(s->burst, s->tokens + (now - s->at) * s->rate);
	s->at = now;
}

/* One request arriving at now; what the answer says. */
static struct budget_answer serve(struct server *s, double now)
{
	struct budget_answer a = { .limit = -1,
				   .remaining = -1,
				   .window = -1,
				   .reset = -1,
				   .retry_after = -1 };

	server_refill(s, now);
	if (s->tokens >= 1) {
		s->tokens -= 1;
		a.status = 200;
	} else {
		a.status = 429;
		a.retry_after = ceil((1 - s->tokens) / s->rate);
		a.hint = BUDGET_HINT_RATE;
	}
	if (s->headers) {
		a.headers = true;
		a.limit = (long)(s->rate * 60);
		a.window = 60;
		a.remaining = (long)floor(s->tokens);
		a.reset = ceil(now + (s->burst - s->tokens) / s->rate);
	}
	return a;
}

/*
 * n requests one after another, each sent when the budget allows: how
 * many were refused, and the time it took (*took).
 */
static int run(struct budget *b, struct server *s, int n, double *took)
{
	double now = 0;
	int i, refused = 0;

	for (i = 0; i < n;) {
		struct budget_answer a;

		now = fmax(now, budget_ready(b, now));
		budget_take(b, now);
		a = serve(s, now);
		now += 0.05; /* the answer's latency */
		if (budget_learn(b, now, now, &a) != BUDGET_OK)
			refused++;
		else
			i++;
	}
	*took = now;
	return refused;
}

/*
 * n requests to a bucket of per_minute and burst, headers or not, from a
 * fresh budget: how many were refused, and how long it took (*took).
 */
static int plan(double per_minute, double burst, bool headers, int n,
		struct budget *b, double *took)
{
	struct server s = { per_minute / 60, burst, burst, 0, headers };

	budget_init(b, 8, 0);
	return run(b, &s, n, took);
}

/* Mixpeek's Free plan with its headers: paced, never refused. */
static void test_headers(void)
{
	struct budget b;
	double took;

	CHECK(plan(60, 20, true, 120, &b, &took) == 0);
	CHECK(b.source == BUDGET_HEADERS && b.limited);
	CHECK(fabs(budget_per_minute(&b) - 60) < 1e-9);
	CHECK(b.cap == BUDGET_LIMITED_CAP); /* where Mixpeek's starts */
	/* 20 at once, then one a second: 100 s for the 100 after */
	CHECK(took >= 99 && took <= 100 * 1.05 + 1);
	CHECK(b.server.burst >= 18 && b.server.burst <= 20);
	/* 10 a minute: one every 6 s after the burst */
	CHECK(plan(10, 10, true, 30, &b, &took) == 0);
	CHECK(took >= 20 * 6 - 1 && took <= 20 * 6 * 1.05 + 1);
}

/* No headers: learned from the 429s alone, few of them. */
static void test_no_headers(void)
{
	struct budget b;
	double took;

	CHECK(plan(60, 20, false, 200, &b, &took) <= 20); /* 10% */
	CHECK(b.source == BUDGET_REFUSALS);
	CHECK(took <= 180 * 1.25 + 5);
}

/*
 * Random 429s without headers (a flaky server, no bucket): each is taken
 * for the rate, as it cannot be told from one; sending goes on, never
 * slower than a request per Retry-After.
 */
static void test_random_refusals(void)
{
	struct budget b;
	unsigned seed = 42;
	double now = 0;
	int ok = 0;

	budget_init(&b, 8, 0);
	while (now < 60) {
		struct budget_answer a = { .status = 200,
					   .limit = -1,
					   .remaining = -1,
					   .window = -1,
					   .reset = -1,
					   .retry_after = -1 };

		now = fmax(now, budget_ready(&b, now));
		budget_take(&b, now);
		if (rand_r(&seed) % 20 == 0) {
			a.status = 429;
			a.retry_after = 1;
			a.hint = BUDGET_HINT_RATE;
		} else {
			ok++;
		}
		now += 0.01;
		budget_learn(&b, now, now, &a);
	}
	CHECK(ok > 60);
}

/* Refused for concurrency: the cap goes to what was in flight beside
 * it, and grows back by one after BUDGET_GROW_OK answers at the cap. */
static void test_concurrency(void)
{
	struct budget_answer a = { .status = 429,
				   .limit = -1,
				   .remaining = -1,
				   .window = -1,
				   .reset = -1,
				   .retry_after = 1,
				   .hint = BUDGET_HINT_CONC,
				   .sent_beside = 5 };
	struct budget b;
	int i;

	budget_init(&b, 8, 0);
	CHECK(b.cap == 8); /* no limit known: max_connections */
	CHECK(budget_learn(&b, 1, 1, &a) == BUDGET_REFUSED_CONC);
	/* a server that does not tell its limits: few at once */
	CHECK(b.cap == BUDGET_GUESS_CAP && b.limited);
	b.cap = 5;
	CHECK(budget_ready(&b, 1) == 1); /* no pause: tokens are there */
	a.status = 200;
	a.hint = BUDGET_HINT_NONE;
	a.sent_beside = 4; /* sent at the cap */
	for (i = 0; i < BUDGET_GROW_OK - 1; i++)
		budget_learn(&b, 2, 2, &a);
	CHECK(b.cap == 5);
	budget_learn(&b, 2, 2, &a);
	CHECK(b.cap == 6);
	a.sent_beside = 0; /* not at the cap: no growth */
	for (i = 0; i < 2 * BUDGET_GROW_OK; i++)
		budget_learn(&b, 2, 2, &a);
	CHECK(b.cap == 6);
	/* with headers and tokens left, a 429 is about concurrency */
	a = (struct budget_answer){ .status = 429,
				    .headers = true,
				    .limit = 60,
				    .remaining = 7,
				    .window = 60,
				    .reset = 10,
				    .retry_after = 1,
				    .sent_beside = 2 };
	CHECK(budget_learn(&b, 3, 3, &a) == BUDGET_REFUSED_CONC);
	CHECK(b.cap == 2);
}

/* A Retry-After pauses everything, at most BUDGET_PAUSE_MAX. */
static void test_pause(void)
{
	struct budget_answer a = { .status = 429,
				   .headers = true,
				   .limit = 600,
				   .remaining = 0,
				   .window = 60,
				   .reset = 100,
				   .retry_after = 15 };
	struct budget b;

	budget_init(&b, 8, 0);
	CHECK(budget_learn(&b, 10, 10, &a) == BUDGET_REFUSED_RATE);
	CHECK(budget_ready(&b, 10) >= 25);
	a.retry_after = 1e12; /* as much as a header can say */
	budget_learn(&b, 10, 10, &a);
	CHECK(budget_ready(&b, 10) <= 10 + BUDGET_PAUSE_MAX + 1);
	/* the same without headers: the rate guessed from it, bounded too */
	budget_init(&b, 8, 0);
	a.headers = false;
	a.hint = BUDGET_HINT_RATE;
	CHECK(budget_learn(&b, 10, 10, &a) == BUDGET_REFUSED_RATE);
	CHECK(budget_ready(&b, 10) <= 10 + 2 * BUDGET_PAUSE_MAX + 1);
	/* Limit and Window without Remaining: followed as no headers */
	budget_init(&b, 8, 0);
	a = (struct budget_answer){ .status = 200,
				    .headers = true,
				    .limit = 60,
				    .remaining = -1,
				    .window = 60,
				    .reset = -1,
				    .retry_after = -1 };
	budget_learn(&b, 1, 1, &a);
	CHECK(b.source == BUDGET_NONE && budget_ready(&b, 2) == 2);
}

/* max_rate: N a minute in bursts of N/6, whatever the server allows. */
static void test_max_rate(void)
{
	struct budget b;
	double now = 0;
	int i;

	budget_init(&b, 8, 60);
	for (i = 0; i < 10; i++) {
		CHECK(budget_ready(&b, now) == now);
		budget_take(&b, now);
	}
	CHECK(fabs(budget_ready(&b, now) - 1) < 1e-9);
	for (i = 0; i < 50; i++) {
		now = budget_ready(&b, now);
		budget_take(&b, now);
	}
	CHECK(fabs(now - 50) < 1e-6);
}

int main(void)
{
	test_headers();
	test_no_headers();
	test_random_refusals();
	test_concurrency();
	test_pause();
	test_max_rate();
	return check_done();
}
