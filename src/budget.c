// SPDX-License-Identifier: MIT
/*
 * budget: the two token buckets and the cap on requests in flight, and
 * what each answer teaches them. See budget.h; sched.c is the one user.
 */
#include <math.h>
#include <string.h>

#include "budget.h"

/* The part of a known rate used when it was only guessed from refusals. */
#define GUESS_MARGIN 0.95

static void refill(struct budget_bucket *k, double now)
{
	if (k->rate <= 0 || now <= k->at)
		return;
	k->tokens += (now - k->at) * k->rate;
	if (k->tokens > k->burst)
		k->tokens = k->burst;
	k->at = now;
}

/* When k holds a whole token, from now on. */
static double bucket_ready(const struct budget_bucket *k, double now)
{
	double tokens;

	if (k->rate <= 0)
		return now;
	tokens = k->tokens + (now > k->at ? (now - k->at) * k->rate : 0);
	if (tokens > k->burst)
		tokens = k->burst;
	return tokens >= 1 ? now : now + (1 - tokens) / k->rate;
}

void budget_init(struct budget *b, unsigned max_conns, unsigned max_rate)
{
	memset(b, 0, sizeof(*b));
	b->cap = b->cap_max = max_conns ? max_conns : 1;
	b->h_limit = b->h_remaining = b->h_window = -1;
	b->h_reset = -1;
	if (max_rate) {
		/* a minute's worth at the rate, bursts of ten seconds' worth */
		b->user.rate = max_rate / 60.0;
		b->user.burst = fmax(1.0, ceil(max_rate / 6.0));
		b->user.tokens = b->user.burst;
	}
}

double budget_ready(const struct budget *b, double now)
{
	double t = now > b->paused_until ? now : b->paused_until;
	double s = bucket_ready(&b->server, t), u = bucket_ready(&b->user, t);

	return s > u ? s : u;
}

void budget_take(struct budget *b, double now)
{
	struct budget_bucket *k[2] = { &b->server, &b->user };
	int i;

	for (i = 0; i < 2; i++)
		if (k[i]->rate > 0) {
			refill(k[i], now);
			k[i]->tokens -= 1;
		}
}

double budget_per_minute(const struct budget *b)
{
	return b->server.rate * 60;
}

double budget_tokens(const struct budget *b, double now)
{
	struct budget_bucket k = b->server;

	refill(&k, now);
	return k.tokens;
}

/* The first sign of limits: start the cap low, where Mixpeek's is. */
static void limits_seen(struct budget *b)
{
	if (b->limited)
		return;
	b->limited = true;
	if (b->cap > BUDGET_LIMITED_CAP)
		b->cap = BUDGET_LIMITED_CAP;
	b->grow_ok = 0;
}

/* X-RateLimit-*: the rate, the burst and the tokens left. */
static void learn_headers(struct budget *b, double now, double unix,
			  const struct budget_answer *a)
{
	struct budget_bucket *k = &b->server;
	bool first = b->source != BUDGET_HEADERS;
	double burst, left;

	limits_seen(b);
	b->source = BUDGET_HEADERS;
	b->h_limit = a->limit;
	b->h_remaining = a->remaining;
	b->h_window = a->window;
	b->h_reset = a->reset;
	k->rate = (double)a->limit / (double)a->window;
	/* what it takes to fill up, less the second Reset is rounded up by */
	burst = a->remaining + 1;
	if (a->reset > unix + 1)
		burst = fmax(burst,
			     a->remaining + (a->reset - unix - 1) * k->rate);
	burst = fmin(burst, (double)a->limit);
	k->burst = first ? burst : fmax(k->burst, burst);
	/* the others in flight may not have taken theirs yet */
	left = (double)a->remaining - a->in_flight;
	refill(k, now);
	k->tokens = first ? left : fmin(k->tokens, left);
	k->at = now;
}

/*
 * A refusal for the rate without headers: the bucket is empty now, and
 * Retry-After is what one token takes. Sending starts again at that rate
 * and doubles with each answer up to half the rate that was refused (a
 * server whose refusals were not its bucket's is soon back at full
 * speed), then grows slowly (see budget_learn).
 */
static void guess_rate(struct budget *b, double now, double retry)
{
	struct budget_bucket *k = &b->server;
	double start = GUESS_MARGIN / (retry >= 1 ? retry : 1);

	b->slow_from = b->source == BUDGET_REFUSALS ? k->rate / 2 : INFINITY;
	/* refusals together (requests in flight when the bucket ran out):
	 * a bucket, not chance; no faster than this until it lets through */
	if (b->slow_from < start ||
	    (b->refused_at > 0 && now - b->refused_at < 1))
		b->slow_from = start;
	b->refused_at = now;
	b->source = BUDGET_REFUSALS;
	k->rate = start;
	k->burst = 1;
	k->tokens = 0;
	k->at = now;
	b->rate_ok = 0;
}

/* An answer without a refusal, when the rate was guessed. */
static void rate_grows(struct budget *b)
{
	struct budget_bucket *k = &b->server;

	b->rate_ok++;
	if (k->rate < b->slow_from)
		k->rate = fmin(k->rate * 2, b->slow_from);
	else if (b->rate_ok % BUDGET_RATE_OK == 0)
		k->rate *= 1.05;
}

enum budget_verdict budget_learn(struct budget *b, double now, double unix,
				 const struct budget_answer *a)
{
	enum budget_verdict v = BUDGET_OK;
	double retry = a->retry_after >= 0 ? a->retry_after : 1;

	/* without Remaining the bucket cannot be followed: as no headers */
	if (a->headers && a->limit > 0 && a->window > 0 && a->remaining >= 0)
		learn_headers(b, now, unix, a);
	if (a->status == 429) {
		limits_seen(b);
		if (a->hint == BUDGET_HINT_CONC ||
		    (a->headers && a->remaining > 0))
			v = BUDGET_REFUSED_CONC;
		else if (a->headers || a->hint == BUDGET_HINT_RATE)
			v = BUDGET_REFUSED_RATE;
		else
			v = BUDGET_REFUSED_BOTH;
	} else if (a->status) {
		if (b->source == BUDGET_REFUSALS)
			rate_grows(b);
		/* sent at the cap and answered: it may grow */
		if (b->limited && a->sent_beside + 1 >= b->cap &&
		    b->cap < b->cap_max && ++b->grow_ok >= BUDGET_GROW_OK) {
			b->cap++;
			b->grow_ok = 0;
		}
	}
	if (v == BUDGET_REFUSED_CONC || v == BUDGET_REFUSED_BOTH) {
		/* the server let through the ones beside it, not this one */
		unsigned cap = a->sent_beside > 0 ? a->sent_beside : 1;

		if (cap < b->cap)
			b->cap = cap;
		b->grow_ok = 0;
	}
	/*
	 * Limits that the server does not tell: few in flight from now on,
	 * so that few are refused at once when its bucket runs out.
	 */
	if (v != BUDGET_OK && b->source != BUDGET_HEADERS &&
	    b->cap > BUDGET_GUESS_CAP) {
		b->cap = BUDGET_GUESS_CAP;
		b->grow_ok = 0;
	}
	if (v == BUDGET_REFUSED_RATE || v == BUDGET_REFUSED_BOTH) {
		retry = fmin(retry, BUDGET_PAUSE_MAX);
		if (now + retry > b->paused_until)
			b->paused_until = now + retry;
		if (b->source != BUDGET_HEADERS)
			guess_rate(b, now, retry);
	}
	return v;
}
