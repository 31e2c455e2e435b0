/*
 * session.c - one peer of the hub, whatever carries its bytes.
 *
 * A session does not know whether it sits on a WebSocket or on a child's
 * pipes: the transport hands it whole messages (session_on_message), pulls
 * frames to write (session_next_frame), and reports when the peer is gone
 * (session_gone).  Sessions are freed only there, never while a message is
 * being dispatched, so code on the message path may close any session
 * without invalidating pointers it holds.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avd.h"

const char *
health_str(enum health h)
{
	switch (h) {
	case HEALTH_READY:
		return "ready";
	case HEALTH_ALIVE:
		return "alive";
	case HEALTH_UNHEALTHY:
		return "unhealthy";
	default:
		return "connected";
	}
}

static void
hello_timeout(struct timer *t)
{
	struct session *s = container_of(t, struct session, hello_timer);

	session_send_error(s, AVD_E_INVALID_REQUEST,
			   json_pack("{s:I}", "hello_timeout_ms",
				     (json_int_t)hub.cfg->hello_timeout_ms),
			   "no hello within %u ms", hub.cfg->hello_timeout_ms);
	session_close(s, 1008, "no hello", false);
}

struct session *
session_new(const struct transport_ops *ops, void *tx, enum sstate state)
{
	struct session *s = xcalloc(1, sizeof(*s));

	snprintf(s->id, sizeof(s->id), "s%" PRIu64, ++hub.next_session);
	s->ops = ops;
	s->tx = tx;
	s->state = state;
	s->last_rx_ms = clock_ms();
	map_set(hub.by_id, s->id, strlen(s->id), s);
	s->next = hub.sessions;
	if (hub.sessions)
		hub.sessions->prev = s;
	hub.sessions = s;
	hub.nsessions++;
	hub.st.sessions_opened++;
	if (state == SESSION_HELLO)
		timer_arm(&s->hello_timer, hub.cfg->hello_timeout_ms, hello_timeout);
	return s;
}

struct session *
session_find(const char *id)
{
	return map_get(hub.by_id, id, strlen(id));
}

int
session_send_frame(struct session *s, enum lane l, struct frame *f)
{
	size_t limit = hub.cfg->max_queue_bytes;

	if (s->state == SESSION_CLOSING)
		return 1;
	/* Only events may be dropped; results, chunks and control never are. */
	if (l == LANE_EVENT && s->q.bytes + f->len > limit) {
		s->q.dropped++;
		hub.st.events_dropped++;
		return 1;
	}
	outq_push(&s->q, l, f);
	if (s->q.bytes > hub.st.queue_high_water)
		hub.st.queue_high_water = s->q.bytes;
	if (s->q.bytes > 2 * limit) {
		hub.st.slow_consumers_closed++;
		log_warn("session %s (%s): closed as a slow consumer with %zu bytes queued",
			 s->id, s->name ? s->name : "-", s->q.bytes);
		session_close(s, 1008, "slow consumer", true);
		return 0;
	}
	s->ops->kick(s);
	return 0;
}

int
session_send_json(struct session *s, enum lane l, const json_t *j)
{
	struct frame *f = frame_from_json(j);
	int rc = session_send_frame(s, l, f);

	frame_unref(f);
	return rc;
}

void
session_send_error(struct session *s, enum avd_code c, json_t *data,
		   const char *fmt, ...)
{
	char message[240];
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	j = json_pack("{s:s, s:o}", "type", "error", "error",
		      err_json(c, data, "%s", message));
	session_send_json(s, LANE_CONTROL, j);
	json_decref(j);
}

void
session_send_error_response(struct session *s, json_t *id, json_t *error)
{
	json_t *j = json_pack("{s:O, s:b, s:o}", "id", id, "ok", 0, "error", error);

	session_send_json(s, LANE_RESPONSE, j);
	json_decref(j);
}

void
session_close(struct session *s, int code, const char *reason, bool discard)
{
	if (s->state == SESSION_CLOSING)
		return;
	s->state = SESSION_CLOSING;
	timer_cancel(&s->hello_timer);
	timer_cancel(&s->health_timer);
	if (discard)
		outq_clear(&s->q);
	s->ops->close(s, code, reason, discard);
}

struct frame *
session_next_frame(struct session *s)
{
	struct frame *f = outq_pop(&s->q);

	if (!f)
		return NULL;
	hub.st.bytes_out += f->len;
	hub.st.messages_out++;
	/* Tell a reader that lost events how many, once it has caught up. */
	if (s->q.dropped && outq_empty(&s->q) && s->state != SESSION_CLOSING) {
		json_t *j = json_pack("{s:s, s:s, s:{s:I, s:s}}", "type", "event",
				      "event", "avd:dropped", "data", "count",
				      (json_int_t)s->q.dropped, "reason",
				      "queue_full");
		s->q.dropped = 0;
		session_send_json(s, LANE_CONTROL, j);
		json_decref(j);
	}
	return f;
}

static void
publish_membership(struct session *s, const char *event)
{
	pubsub_system(event,
		      json_pack("{s:i, s:s, s:s, s:s}", "schema_version",
				AVD_SCHEMA_VERSION, "session", s->id, "role",
				s->role == ROLE_BACKEND ? "backend" : "frontend",
				"name", s->name),
		      false);
}

void
session_gone(struct session *s)
{
	bool was_open = s->name != NULL; /* a name is set once hello succeeded */

	s->state = SESSION_CLOSING;
	timer_cancel(&s->hello_timer);
	timer_cancel(&s->health_timer);
	router_session_gone(s);
	pubsub_session_gone(s);
	map_del(hub.by_id, s->id, strlen(s->id));
	if (s->prev)
		s->prev->next = s->next;
	else
		hub.sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	hub.nsessions--;
	if (was_open) {
		if (s->role == ROLE_BACKEND) {
			hub.nbackends--;
			if (s->health != HEALTH_NONE && !hub.shutting_down &&
			    !s->ops->reports_exit) {
				json_t *d = health_event_data(s);
				json_object_set_new(d, "message",
						    json_string("backend disconnected"));
				json_object_set_new(d, "source", json_string("ipc"));
				json_object_set_new(d, "fatal", json_true());
				pubsub_system("backend_error", d, true);
			}
		} else {
			hub.nfrontends--;
		}
		publish_membership(s, "avd:session_left");
	}
	log_debug("session %s (%s) gone", s->id, s->name ? s->name : "-");
	outq_clear(&s->q);
	for (uint32_t i = 0; i < s->subs.n; i++)
		free(s->subs.v[i]);
	ptrvec_free(&s->subs);
	ptrvec_free(&s->methods);
	map_free(s->out_ids);
	map_free(s->held_deltas);
	free(s->name);
	free(s);
}

static void
reply_bad(struct session *s, json_t *bad_id, struct avd_err *err)
{
	if (s->ops->bad_input)
		s->ops->bad_input(s, err);
	else if (bad_id)
		session_send_error_response(s, bad_id, err_to_json(err));
	else
		session_send_error(s, err->code, err->data ? json_incref(err->data) : NULL,
				   "%s", err->message);
	err_clear(err);
}

/* The session passed its hello (or needs none): count it as open. */
static void
open_session(struct session *s)
{
	s->state = SESSION_OPEN;
	if (s->role == ROLE_BACKEND)
		hub.nbackends++;
	else
		hub.nfrontends++;
}

static void
announce(struct session *s)
{
	log_info("session %s joined: %s \"%s\" over %s", s->id,
		 s->role == ROLE_BACKEND ? "backend" : "frontend", s->name,
		 s->ops->name);
	publish_membership(s, "avd:session_joined");
}

static void
on_hello(struct session *s, struct msg *m)
{
	char name[64];
	json_t *welcome;
	struct avd_err err = { 0 };

	if (m->schema_version != AVD_SCHEMA_VERSION) {
		session_send_error(s, AVD_E_UNSUPPORTED_SCHEMA,
				   json_pack("{s:I, s:i}", "schema_version",
					     (json_int_t)m->schema_version,
					     "supported", AVD_SCHEMA_VERSION),
				   "schema_version %" PRId64 " is not supported; avd speaks 1",
				   m->schema_version);
		session_close(s, 1002, "unsupported schema", false);
		return;
	}
	if (!s->authed && !auth_token_ok(hub.cfg, m->token)) {
		session_send_error(s, AVD_E_UNAUTHORIZED, NULL,
				   m->token ? "wrong token" : "a token is required");
		session_close(s, 1008, "unauthorized", false);
		return;
	}
	timer_cancel(&s->hello_timer);
	s->authed = true;
	s->role = m->role && !strcmp(m->role, "backend") ? ROLE_BACKEND : ROLE_FRONTEND;
	if (m->name && *m->name) {
		s->name = xstrndup(m->name, strnlen(m->name, 255));
	} else {
		snprintf(name, sizeof(name), "%s-%s",
			 s->role == ROLE_BACKEND ? "backend" : "frontend", s->id);
		s->name = xstrdup(name);
	}
	open_session(s);
	welcome = json_pack("{s:s, s:i, s:s, s:s, s:I, s:o}", "type", "welcome",
			    "schema_version", AVD_SCHEMA_VERSION, "session", s->id,
			    "server", AVD_SERVER_NAME, "heartbeat_interval_ms",
			    (json_int_t)hub.cfg->heartbeat_interval_ms, "config",
			    config_client_json(hub.cfg));
	session_send_json(s, LANE_CONTROL, welcome);
	json_decref(welcome);
	if (m->subscribe && pubsub_subscribe(s, m->subscribe, &err))
		reply_bad(s, NULL, &err);
	announce(s);
	if (s->role == ROLE_FRONTEND)
		health_greet(s);
	else
		health_watch(s);
}

struct session *
session_new_backend(const struct transport_ops *ops, void *tx, const char *name)
{
	struct session *s = session_new(ops, tx, SESSION_OPEN);

	s->authed = true;
	s->role = ROLE_BACKEND;
	s->name = xstrdup(name);
	open_session(s);
	announce(s);
	return s;
}

/* A backend announces its handlers (AuroraView style) and is ready. */
static void
on_ready(struct session *s, struct msg *m)
{
	struct avd_err err = { 0 };

	if (m->handlers && router_register(s, m->handlers, &err)) {
		if (s->ops->ready_refused) {
			s->ops->ready_refused(s, &err);
			err_clear(&err);
		} else {
			reply_bad(s, NULL, &err);
		}
		return;
	}
	health_on_ready(s);
}

void
session_on_message(struct session *s, char *buf, size_t len)
{
	struct avd_err err = { 0 };
	json_t *bad_id;
	struct msg m;

	hub.st.bytes_in += len;
	hub.st.messages_in++;
	if (s->state == SESSION_CLOSING)
		return;
	if (msg_decode(buf, len, &m, &err, &bad_id)) {
		/* Invalid UTF-8 in a text message ends a WebSocket (1007), after
		 * the error that says why; a child's lines were repaired before. */
		bool not_utf8 = err.code == AVD_E_ENCODING &&
				!utf8_valid((const unsigned char *)buf, len);
		reply_bad(s, bad_id, &err);
		json_decref(bad_id);
		if (not_utf8)
			session_close(s, 1007, "invalid UTF-8", false);
		else if (s->state == SESSION_HELLO)
			session_close(s, 1008, "expected hello", false);
		return;
	}
	if (s->state == SESSION_HELLO) {
		if (m.kind == MSG_HELLO) {
			on_hello(s, &m);
		} else {
			session_send_error(s, AVD_E_INVALID_REQUEST, NULL,
					   "the first message must be hello");
			session_close(s, 1008, "expected hello", false);
		}
		msg_free(&m);
		return;
	}
	if (s->role == ROLE_BACKEND)
		health_on_rx(s);
	/* Only stream elements may join halves across messages. */
	if (m.marked && m.kind != MSG_CHUNK && m.kind != MSG_EVENT)
		delta_scrub(m.root);
	switch (m.kind) {
	case MSG_CALL:
		router_call(s, &m);
		break;
	case MSG_RESPONSE:
		router_response(s, &m);
		break;
	case MSG_CHUNK:
		router_chunk(s, &m);
		break;
	case MSG_CANCEL:
		router_cancel(s, &m);
		break;
	case MSG_EVENT:
		pubsub_publish(s, &m);
		break;
	case MSG_READY:
		on_ready(s, &m);
		break;
	case MSG_HELLO:
		session_send_error(s, AVD_E_INVALID_REQUEST, NULL,
				   "hello was already received");
		break;
	case MSG_ERROR:
		log_info("session %s (%s) reported an error: %s", s->id, s->name,
			 m.error && json_is_string(json_object_get(m.error, "message"))
				 ? json_string_value(json_object_get(m.error, "message"))
				 : "(no message)");
		break;
	}
	msg_free(&m);
}
