/*
 * hub.c - the process-wide state every module shares: sessions, the method
 * table, pending calls and counters.  There is exactly one hub, touched
 * only by the event-loop thread.
 */
#include "config.h"

#include <string.h>

#include "avd.h"

struct hub hub;

void
hub_init(struct config *cfg)
{
	memset(&hub, 0, sizeof(hub));
	hub.cfg = cfg;
	hub.by_id = map_new();
	hub.methods = map_new();
	hub.calls = map_new();
	pubsub_init();
}

void
hub_shutdown(void)
{
	hub.shutting_down = true;
	router_shutdown();
	for (struct session *s = hub.sessions; s; s = s->next)
		session_close(s, 1001, "avd is shutting down", false);
}

void
hub_free(void)
{
	while (hub.sessions)
		session_gone(hub.sessions);
	pubsub_free();
	map_free(hub.by_id);
	map_free(hub.methods);
	map_free(hub.calls);
	timer_reset();
	memset(&hub, 0, sizeof(hub));
}

json_t *
hub_stats_json(void)
{
	const struct stats *st = &hub.st;
	json_t *by_code = json_object();
	json_t *j;

	for (int c = 1; c < AVD_E__COUNT; c++)
		if (st->failed_by_code[c])
			json_object_set_new(by_code, err_code_str((enum avd_code)c),
					    json_integer((json_int_t)st->failed_by_code[c]));
	j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
		      " s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
		      "sessions", (json_int_t)hub.nsessions,
		      "frontends", (json_int_t)hub.nfrontends,
		      "backends", (json_int_t)hub.nbackends,
		      "methods", (json_int_t)map_count(hub.methods),
		      "pending_calls", (json_int_t)map_count(hub.calls),
		      "calls_started", (json_int_t)st->calls_started,
		      "calls_completed", (json_int_t)st->calls_completed,
		      "calls_failed", (json_int_t)st->calls_failed,
		      "calls_timed_out", (json_int_t)st->calls_timed_out,
		      "calls_cancelled", (json_int_t)st->calls_cancelled,
		      "late_answers", (json_int_t)st->late_answers,
		      "events_published", (json_int_t)st->events_published,
		      "events_delivered", (json_int_t)st->events_delivered,
		      "events_dropped", (json_int_t)st->events_dropped,
		      "bytes_in", (json_int_t)st->bytes_in,
		      "bytes_out", (json_int_t)st->bytes_out,
		      "messages_in", (json_int_t)st->messages_in,
		      "messages_out", (json_int_t)st->messages_out,
		      "slow_consumers_closed", (json_int_t)st->slow_consumers_closed,
		      "failed_by_code", by_code);
	return j;
}
