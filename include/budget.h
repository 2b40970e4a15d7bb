/* SPDX-License-Identifier: MIT */
/*
 * budget: the API's limits as mixpeekfs knows them, and what they allow
 * now. Two token buckets (the server's, learned from its answers, and
 * the user's max_rate) and a cap on requests in flight that adapts.
 *
 * What is learned, and from what:
 *   - With X-RateLimit-Limit and -Window, the rate is Limit/Window; the
 *     tokens left are -Remaining (less the other requests in flight,
 *     which may still take theirs), the burst what -Reset says it takes
 *     to fill up again. A server that sends them has limits: requests in
 *     flight start at BUDGET_LIMITED_CAP and grow slowly.
 *   - Without them, a refusal for the rate (429) says the bucket is
 *     empty, and its Retry-After how long one token takes: sending starts
 *     again a little under 1/Retry-After, doubles with each answer up to
 *     half the rate that was refused, then grows slowly (slow start, as
 *     TCP's: a server whose 429s were not its bucket's is soon back at
 *     full speed, one whose bucket binds settles just under it).
 *   - A refusal for concurrency lowers the cap to what was in flight
 *     beside the refused request (to BUDGET_GUESS_CAP after any refusal
 *     from a server without the headers); BUDGET_GROW_OK requests sent
 *     at the cap and answered raise it by one, never above
 *     max_connections.
 *
 * Pure: no clock, no lock, no I/O. The caller (sched.c) holds it under
 * its lock and passes the time: now is CLOCK_MONOTONIC seconds, unix the
 * wall clock's seconds (X-RateLimit-Reset is a Unix time).
 */
#ifndef MIXPEEKFS_BUDGET_H
#define MIXPEEKFS_BUDGET_H

#include <stdbool.h>

/* Requests in flight once a server has shown limits: Mixpeek's smallest
 * documented cap per organisation (Free). */
#define BUDGET_LIMITED_CAP 5
/* Requests in flight after a refusal from a server without the headers. */
#define BUDGET_GUESS_CAP 2
/* Requests sent at the cap and answered before the cap grows by one. */
#define BUDGET_GROW_OK 50
/* Without headers: answers without a refusal before the rate grows 5%. */
#define BUDGET_RATE_OK 20
/* The longest pause a Retry-After imposes (seconds). */
#define BUDGET_PAUSE_MAX 60.0

enum budget_source {
	BUDGET_NONE,	 /* no limit known */
	BUDGET_HEADERS,	 /* X-RateLimit-* */
	BUDGET_REFUSALS, /* 429s and Retry-After, no headers */
};

struct budget_bucket {
	double rate;   /* tokens a second; 0: no limit */
	double burst;  /* what it holds at most */
	double tokens; /* now (may be below 0: owed) */
	double at;     /* when tokens was right */
};

struct budget {
	struct budget_bucket server, user;
	enum budget_source source;
	double paused_until; /* a Retry-After: nothing goes before */
	/* no headers: the guessed rate doubles per answer up to slow_from,
	 * then grows 5% per BUDGET_RATE_OK answers without a refusal */
	double slow_from;
	double refused_at; /* the last refusal for the rate, guessed */
	unsigned rate_ok;
	unsigned cap, cap_max;
	unsigned grow_ok; /* answers sent at the cap since it last moved */
	bool limited;	  /* the server has shown limits */
	/* the last X-RateLimit-* headers, as sent (for .mixpeekfs/stats) */
	long h_limit, h_remaining, h_window;
	double h_reset;
};

/* What kind of limit a 429's body names, if any. */
enum budget_hint {
	BUDGET_HINT_NONE,
	BUDGET_HINT_RATE, /* details.window is a time ("1m") */
	BUDGET_HINT_CONC, /* "concurrent" in its message or window */
};

/* What one answer said. */
struct budget_answer {
	long status; /* 0: no answer */
	bool headers;
	long limit, remaining, window; /* -1 when absent */
	double reset;		       /* Unix time; -1 when absent */
	double retry_after;	       /* seconds; -1 when absent */
	enum budget_hint hint;	       /* what a 429's body says */
	unsigned sent_beside;	       /* others in flight when it was sent */
	unsigned in_flight;	       /* others in flight now */
};

enum budget_verdict {
	BUDGET_OK,	     /* not a refusal */
	BUDGET_REFUSED_RATE, /* 429: the bucket was empty */
	BUDGET_REFUSED_CONC, /* 429: too many in flight */
	BUDGET_REFUSED_BOTH, /* 429 that does not say which: both assumed */
};

/* max_conns: the cap's ceiling; max_rate: the user's requests a minute,
 * 0 for none. */
void budget_init(struct budget *b, unsigned max_conns, unsigned max_rate);
/* When one more request may be sent, by the buckets and a pause: a time
 * <= now if it may now. (The cap is the caller's to check.) */
double budget_ready(const struct budget *b, double now);
/* A request is sent: one token from each bucket. */
void budget_take(struct budget *b, double now);
/* Learn from one answer; what kind of refusal it was, if any. */
enum budget_verdict budget_learn(struct budget *b, double now, double unix,
				 const struct budget_answer *a);
/* The server's rate in requests a minute as known (0: none known). */
double budget_per_minute(const struct budget *b);
/* The tokens the server's bucket holds now, by the estimate. */
double budget_tokens(const struct budget *b, double now);

#endif
