/* testhub.h - drive the hub in-process, with a transport that records. */
#ifndef TESTHUB_H
#define TESTHUB_H

#include <check.h>

#include "avd.h"

extern struct config th_cfg;
extern uint64_t th_now; /* the fake clock every test runs on */

/* Run every test of s; the process exit status (0 = all passed). */
int th_run(Suite *s);
/* Fresh hub with default settings (tests may edit th_cfg after). */
void th_setup(void);
void th_teardown(void);
/* A session that already said hello with role and name. */
struct session *th_open(const char *role, const char *name);
/* Feed one message, as text, to s. */
void th_send(struct session *s, const char *json);
/* Same, built with json_pack-style format. */
void th_sendf(struct session *s, const char *fmt, ...);
/* Next queued message for s (new reference), or NULL when none. */
json_t *th_next(struct session *s);
/* Drop every queued message for s; returns how many. */
int th_drain(struct session *s);
/* Advance the fake clock and fire due timers. */
void th_advance(uint64_t ms);
/* Close code the transport was asked for (0 = none). */
int th_close_code(struct session *s);
/* Pretend the peer went away (transport reports it). */
void th_gone(struct session *s);
/* String member lookup that tolerates NULL along a path "a.b.c". */
const char *th_str(json_t *j, const char *path);
json_t *th_get(json_t *j, const char *path);

#endif
