/*
 * health.c - is a backend still there?
 *
 * Any message from a backend proves it alive, so the message path only
 * stores a timestamp.  One timer per backend wakes when the backend could
 * first have been silent too long, looks at that timestamp, and either
 * goes back to sleep, pings, or declares the backend unhealthy.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "avd.h"

json_t *
health_event_data(const struct session *s)
{
	return json_pack("{s:i, s:s, s:s}", "schema_version", AVD_SCHEMA_VERSION,
			 "backend", s->name ? s->name : s->id, "session", s->id);
}

static json_t *
status_data(const struct session *s, const char *status)
{
	json_t *d = health_event_data(s);

	json_object_set_new(d, "status", json_string(status));
	json_object_set_new(d, "ts", json_integer(clock_wall_ms()));
	return d;
}

static json_t *
ready_data(const struct session *s)
{
	json_t *d = health_event_data(s);
	json_t *h = json_array();

	for (uint32_t i = 0; i < s->methods.n; i++)
		json_array_append_new(h, json_string(s->methods.v[i]));
	json_object_set_new(d, "handlers", h);
	return d;
}

static void
send_ping(struct session *s)
{
	char id[48];
	json_t *j;

	snprintf(id, sizeof(id), "__av_ping_%" PRIu64, ++hub.next_ping);
	j = json_pack("{s:s, s:s, s:{s:i, s:I}}", "id", id, "method", "__ping__",
		      "params", "schema_version", AVD_SCHEMA_VERSION, "ts",
		      (json_int_t)clock_wall_ms());
	session_send_json(s, LANE_CONTROL, j);
	json_decref(j);
}

static void
go_unhealthy(struct session *s, uint64_t silence)
{
	json_t *d;

	s->health = HEALTH_UNHEALTHY;
	log_warn("backend %s (%s) unhealthy: silent for %" PRIu64 " ms", s->id,
		 s->name, silence);
	pubsub_system("backend_health", status_data(s, "unhealthy"), true);
	d = health_event_data(s);
	json_object_set_new(d, "message",
			    json_sprintf("no message for %" PRIu64 " ms", silence));
	json_object_set_new(d, "source", json_string("heartbeat"));
	json_object_set_new(d, "fatal", json_false());
	pubsub_system("backend_error", d, true);
	if (hub.cfg->backend_fail_fast)
		router_fail_callee(s, AVD_E_BACKEND_UNAVAILABLE, "unhealthy");
}

static void
health_tick(struct timer *t)
{
	struct session *s = container_of(t, struct session, health_timer);
	uint64_t now = clock_ms(), silence = now - s->last_rx_ms;
	uint64_t interval = hub.cfg->heartbeat_interval_ms;
	uint64_t timeout = hub.cfg->heartbeat_timeout_ms;
	uint64_t next;

	if (silence >= timeout && s->health != HEALTH_UNHEALTHY)
		go_unhealthy(s, silence);
	if (silence >= interval) {
		send_ping(s);
		next = interval;
	} else {
		next = interval - silence;
	}
	if (s->health != HEALTH_UNHEALTHY && timeout > silence &&
	    timeout - silence < next)
		next = timeout - silence;
	timer_arm(&s->health_timer, next, health_tick);
}

void
health_watch(struct session *s)
{
	s->last_rx_ms = clock_ms();
	timer_arm(&s->health_timer, hub.cfg->heartbeat_interval_ms, health_tick);
}

void
health_on_rx(struct session *s)
{
	s->last_rx_ms = clock_ms();
	if (s->health == HEALTH_UNHEALTHY) {
		s->health = HEALTH_ALIVE;
		log_info("backend %s (%s) is alive again", s->id, s->name);
		pubsub_system("backend_health", status_data(s, "alive"), true);
	}
}

void
health_on_ready(struct session *s)
{
	if (s->role != ROLE_BACKEND)
		return;
	if (s->health != HEALTH_UNHEALTHY)
		s->health = HEALTH_READY;
	/* A supervised child is watched from its ready line on, not before:
	 * its start-up is bounded by the ready timeout instead. */
	if (!timer_armed(&s->health_timer))
		health_watch(s);
	if (s->ops->ready)
		s->ops->ready(s);
	/* avd.register followed by ready (the Python client's sequence) is
	 * one announcement, not two. */
	if (s->announced)
		return;
	s->announced = true;
	log_info("backend %s (%s) ready with %u methods", s->id, s->name,
		 s->methods.n);
	pubsub_system("backend_ready", ready_data(s), true);
}

bool
health_fail_fast(const struct session *s)
{
	return hub.cfg->backend_fail_fast && s->role == ROLE_BACKEND &&
	       s->health == HEALTH_UNHEALTHY;
}

void
health_on_pong(struct session *s, struct msg *m)
{
	/* health_on_rx already counted the pong as a sign of life. */
	log_debug("backend %s answered %s", s->id, json_string_value(m->id));
}

void
health_greet(struct session *frontend)
{
	for (struct session *s = hub.sessions; s; s = s->next) {
		if (s->role != ROLE_BACKEND || s->state != SESSION_OPEN ||
		    s->health == HEALTH_NONE)
			continue;
		pubsub_send_to(frontend, "backend_ready", ready_data(s));
		if (s->health == HEALTH_UNHEALTHY)
			pubsub_send_to(frontend, "backend_health",
				       status_data(s, "unhealthy"));
	}
}
