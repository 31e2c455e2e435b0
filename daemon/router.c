/*
 * router.c - who offers which method, and every call in flight.
 *
 * A call is forwarded to its owner under an id of avd's own ("c17"), so
 * callers can pick any ids they like and a callee can never answer someone
 * else's call.  Each call sits on two lists, its caller's and its callee's,
 * so either side leaving settles exactly its own calls at once.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avd.h"

#define MAX_METHOD_LEN 255
#define MAX_METHODS_PER_SESSION 10000

struct call {
	char key[24];      /* "c17": avd's id, the key in hub.calls */
	json_t *caller_id; /* the caller's own id, new reference */
	char *caller_key;  /* key of caller_id in caller->out_ids, new */
	char *method;      /* new */
	struct session *caller, *callee;
	struct call *out_prev, *out_next; /* on caller->calls_out */
	struct call *in_prev, *in_next;   /* on callee->calls_in */
	struct timer timer;
	uint32_t timeout_ms;
	uint16_t held; /* high surrogate half held from the last chunk's delta */
	uint64_t started_us;
};

/* ---- call lifetime ---------------------------------------------------- */

static void call_timeout(struct timer *t);

static struct call *
call_new(struct session *caller, struct session *callee, struct msg *m,
	 const char *caller_key, uint32_t timeout_ms)
{
	struct call *c = xcalloc(1, sizeof(*c));

	c->key[0] = 'c';
	c->key[1 + fmt_u64(c->key + 1, ++hub.next_call)] = '\0';
	c->caller_id = json_incref(m->id);
	c->caller_key = xstrdup(caller_key);
	c->method = xstrdup(m->method);
	c->caller = caller;
	c->callee = callee;
	c->timeout_ms = timeout_ms;
	c->started_us = clock_us();
	map_set(hub.calls, c->key, strlen(c->key), c);
	if (!caller->out_ids)
		caller->out_ids = map_new();
	map_set(caller->out_ids, caller_key, strlen(caller_key), c);
	c->out_next = caller->calls_out;
	if (caller->calls_out)
		caller->calls_out->out_prev = c;
	caller->calls_out = c;
	c->in_next = callee->calls_in;
	if (callee->calls_in)
		callee->calls_in->in_prev = c;
	callee->calls_in = c;
	caller->pending_out++;
	callee->pending_in++;
	if (timeout_ms)
		timer_arm(&c->timer, timeout_ms, call_timeout);
	return c;
}

static void
call_free(struct call *c)
{
	struct session *a = c->caller, *b = c->callee;

	if (c->out_prev)
		c->out_prev->out_next = c->out_next;
	else
		a->calls_out = c->out_next;
	if (c->out_next)
		c->out_next->out_prev = c->out_prev;
	if (c->in_prev)
		c->in_prev->in_next = c->in_next;
	else
		b->calls_in = c->in_next;
	if (c->in_next)
		c->in_next->in_prev = c->in_prev;
	a->pending_out--;
	b->pending_in--;
	map_del(hub.calls, c->key, strlen(c->key));
	map_del(a->out_ids, c->caller_key, strlen(c->caller_key));
	timer_cancel(&c->timer);
	json_decref(c->caller_id);
	free(c->caller_key);
	free(c->method);
	free(c);
}

static void
count_failure(enum avd_code code)
{
	hub.st.calls_failed++;
	hub.st.failed_by_code[code]++;
}

/* Answer a call's caller with an error; the call stays (caller frees). */
static void
fail_call(struct call *c, enum avd_code code, json_t *data, const char *fmt,
	  const char *arg)
{
	count_failure(code);
	session_send_error_response(c->caller, c->caller_id,
				    err_json(code, data, fmt, arg));
}

static void
send_cancel(struct call *c, const char *reason)
{
	json_t *j = json_pack("{s:s, s:s, s:s}", "type", "cancel", "id", c->key,
			      "reason", reason);

	session_send_json(c->callee, LANE_CONTROL, j);
	json_decref(j);
}

static json_t *
unavailable_data(const char *method, const struct session *callee,
		 const char *reason)
{
	return json_pack("{s:s, s:s, s:s, s:s}", "method", method, "backend",
			 callee->name ? callee->name : callee->id, "session",
			 callee->id, "reason", reason);
}

static void
call_timeout(struct timer *t)
{
	struct call *c = container_of(t, struct call, timer);

	hub.st.calls_timed_out++;
	count_failure(AVD_E_TIMEOUT);
	session_send_error_response(
		c->caller, c->caller_id,
		err_json(AVD_E_TIMEOUT,
			 json_pack("{s:s, s:I}", "method", c->method, "timeout_ms",
				   (json_int_t)c->timeout_ms),
			 "%s did not answer within %u ms", c->method, c->timeout_ms));
	send_cancel(c, "timeout");
	call_free(c);
}

/* ---- registration ----------------------------------------------------- */

static bool
valid_method_name(const json_t *v)
{
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);

	return s && n > 0 && n <= MAX_METHOD_LEN && !memchr(s, '\0', n) &&
	       !builtin_is(s) && strcmp(s, "__ping__");
}

int
router_register(struct session *s, const json_t *names, struct avd_err *err)
{
	size_t i;
	json_t *v;

	if (!json_is_array(names))
		return err_set(err, AVD_E_INVALID_REQUEST, NULL,
			       "expected an array of method names");
	if (s->methods.n + json_array_size(names) > MAX_METHODS_PER_SESSION)
		return err_set(err, AVD_E_QUEUE_FULL,
			       json_pack("{s:i}", "limit", MAX_METHODS_PER_SESSION),
			       "a session may offer at most %d methods",
			       MAX_METHODS_PER_SESSION);
	/* Check everything first: registration is all-or-nothing. */
	json_array_foreach(names, i, v) {
		struct session *owner;

		if (!valid_method_name(v))
			return err_set(err, AVD_E_INVALID_REQUEST,
				       json_pack("{s:O}", "method", v),
				       "method names must be 1-%d byte strings not "
				       "starting with \"avd.\"",
				       MAX_METHOD_LEN);
		owner = map_get(hub.methods, json_string_value(v),
				json_string_length(v));
		if (owner && owner != s)
			return err_set(err, AVD_E_ALREADY_REGISTERED,
				       json_pack("{s:O, s:s, s:s}", "method", v,
						 "owner", owner->id, "owner_name",
						 owner->name),
				       "%s is already offered by %s",
				       json_string_value(v), owner->name);
	}
	json_array_foreach(names, i, v) {
		const char *name = json_string_value(v);
		size_t n = json_string_length(v);

		if (map_get(hub.methods, name, n))
			continue; /* already ours */
		map_set(hub.methods, name, n, s);
		ptrvec_push(&s->methods, xstrndup(name, n));
		s->announced = false;
	}
	return 0;
}

static void
unregister_at(struct session *s, uint32_t i)
{
	char *name = s->methods.v[i];

	map_del(hub.methods, name, strlen(name));
	ptrvec_remove(&s->methods, name);
	free(name);
	s->announced = false;
}

json_t *
router_unregister(struct session *s, const json_t *names)
{
	json_t *removed = json_array();
	size_t i;
	json_t *v;

	json_array_foreach(names, i, v) {
		for (uint32_t k = 0; k < s->methods.n; k++) {
			if (json_is_string(v) &&
			    !strcmp(s->methods.v[k], json_string_value(v))) {
				json_array_append(removed, v);
				unregister_at(s, k);
				break;
			}
		}
	}
	return removed;
}

/* ---- calls ------------------------------------------------------------ */

void
router_call(struct session *s, struct msg *m)
{
	char key[256];
	struct session *owner;
	struct call *c;
	uint32_t timeout;
	struct framebuf b;
	struct frame *f;

	if (builtin_is(m->method)) {
		msg_parse_payload(m);
		builtin_call(s, m);
		return;
	}
	hub.st.calls_started++;
	msg_id_key(m->id, key, sizeof(key));
	if (s->out_ids && map_get(s->out_ids, key, strlen(key))) {
		count_failure(AVD_E_INVALID_REQUEST);
		session_send_error_response(
			s, m->id,
			err_json(AVD_E_INVALID_REQUEST, NULL,
				 "id is already used by another pending call of yours"));
		return;
	}
	if (s->pending_out >= hub.cfg->max_pending_calls) {
		count_failure(AVD_E_QUEUE_FULL);
		session_send_error_response(
			s, m->id,
			err_json(AVD_E_QUEUE_FULL,
				 json_pack("{s:I, s:I}", "queue_len",
					   (json_int_t)s->pending_out, "limit",
					   (json_int_t)hub.cfg->max_pending_calls),
				 "too many pending calls (%u)", s->pending_out));
		return;
	}
	owner = map_get(hub.methods, m->method, strlen(m->method));
	if (!owner) {
		count_failure(AVD_E_METHOD_NOT_FOUND);
		session_send_error_response(
			s, m->id,
			err_json(AVD_E_METHOD_NOT_FOUND,
				 json_pack("{s:s}", "method", m->method),
				 "no session offers %s", m->method));
		return;
	}
	if (owner->state == SESSION_CLOSING || health_fail_fast(owner)) {
		const char *why = owner->state == SESSION_CLOSING ? "gone" : "unhealthy";
		count_failure(AVD_E_BACKEND_UNAVAILABLE);
		session_send_error_response(
			s, m->id,
			err_json(AVD_E_BACKEND_UNAVAILABLE,
				 unavailable_data(m->method, owner, why),
				 "%s is %s", owner->name, why));
		return;
	}
	if (owner->q.bytes >= hub.cfg->max_queue_bytes) {
		count_failure(AVD_E_QUEUE_FULL);
		session_send_error_response(
			s, m->id,
			err_json(AVD_E_QUEUE_FULL,
				 json_pack("{s:I, s:s}", "queue_len",
					   (json_int_t)owner->q.bytes, "session",
					   owner->id),
				 "%s is not reading; its queue is full", owner->name));
		return;
	}
	timeout = m->has_timeout ? (uint32_t)m->timeout_ms : hub.cfg->call_timeout_ms;
	c = call_new(s, owner, m, key, timeout);
	/* Written directly, params as they came: see scan.c. */
	frame_begin(&b, 112 + strlen(m->method) + strlen(s->id) +
				(m->fast ? m->payload_len : 0));
	frame_put_lit(&b, "{\"id\":");
	frame_put_str(&b, c->key, strlen(c->key));
	frame_put_lit(&b, ",\"method\":");
	frame_put_str(&b, m->method, strlen(m->method));
	frame_put_lit(&b, ",\"params\":");
	msg_put_payload(&b, m);
	frame_put_lit(&b, ",\"caller\":");
	frame_put_str(&b, s->id, strlen(s->id));
	frame_put_lit(&b, ",\"timeout_ms\":");
	frame_put_int(&b, timeout);
	frame_put_lit(&b, "}");
	f = frame_end(&b);
	session_send_frame(owner, LANE_RESPONSE, f);
	frame_unref(f);
}

/* The call a callee's message refers to, if it is still that callee's. */
static struct call *
callee_call(struct session *s, struct msg *m)
{
	struct call *c;

	if (!json_is_string(m->id))
		return NULL;
	c = map_get(hub.calls, json_string_value(m->id), json_string_length(m->id));
	return c && c->callee == s ? c : NULL;
}

/* Send c's caller head, its own id, middle, then m's payload as it came
 * and "}": an answer or a chunk. */
static void
send_to_caller(struct call *c, const char *head, const char *middle,
	       const struct msg *m)
{
	struct framebuf b;
	struct frame *f;

	frame_begin(&b, 64 + (m->fast ? m->payload_len : 0));
	frame_put(&b, head, strlen(head));
	frame_put_json(&b, c->caller_id);
	frame_put(&b, middle, strlen(middle));
	msg_put_payload(&b, m);
	frame_put_lit(&b, "}");
	f = frame_end(&b);
	session_send_frame(c->caller, LANE_RESPONSE, f);
	frame_unref(f);
}

static json_t *
normalize_error(json_t *error)
{
	json_t *e;

	if (json_is_object(error)) {
		if (json_object_get(error, "code"))
			return json_incref(error);
		e = json_copy(error);
		json_object_set_new(e, "code", json_string("BACKEND_ERROR"));
		return e;
	}
	/* A bare string or number from a sloppy backend still reaches the
	 * caller as a structured error. */
	return json_pack("{s:s, s:s, s:s, s:{s:O}}", "code", "BACKEND_ERROR",
			 "name", "BackendError", "message",
			 json_is_string(error) ? json_string_value(error)
					       : "backend error",
			 "data", "error", error);
}

void
router_response(struct session *s, struct msg *m)
{
	struct call *c;
	json_t *j;

	if (json_is_string(m->id) &&
	    !strncmp(json_string_value(m->id), "__av_ping_", 10)) {
		health_on_pong(s, m);
		return;
	}
	c = callee_call(s, m);
	if (!c) {
		hub.st.late_answers++;
		log_debug("session %s: late or unknown answer dropped", s->id);
		return;
	}
	if (c->held) {
		/* The stream ended holding half a character: it becomes U+FFFD in
		 * a last chunk, so the caller loses nothing silently. */
		j = json_pack("{s:s, s:O, s:{s:s}}", "type", "chunk", "id",
			      c->caller_id, "data", "delta", "\xEF\xBF\xBD");
		session_send_json(c->caller, LANE_RESPONSE, j);
		json_decref(j);
		c->held = 0;
	}
	hub_record_latency(clock_us() - c->started_us);
	if (m->ok) {
		hub.st.calls_completed++;
		send_to_caller(c, "{\"id\":", ",\"ok\":true,\"result\":", m);
	} else {
		json_t *e = normalize_error(m->error);
		count_failure(AVD_E_BACKEND_ERROR);
		j = json_pack("{s:O, s:b, s:o}", "id", c->caller_id, "ok", 0,
			      "error", e);
		session_send_json(c->caller, LANE_RESPONSE, j);
		json_decref(j);
	}
	call_free(c);
}

void
router_chunk(struct session *s, struct msg *m)
{
	struct call *c = callee_call(s, m);
	json_t *delta;

	if (!c)
		return; /* the call already ended; its caller is not waiting */
	/* A scanned chunk holds no markers; only a half character held from
	 * the last one needs its delta looked at. */
	if (c->held)
		msg_parse_payload(m);
	if (m->data && (delta = delta_of(m->data)) && (m->marked || c->held))
		json_object_set_new(m->data, "delta",
				    delta_join(json_string_value(delta),
					       json_string_length(delta), &c->held));
	if (m->marked)
		delta_scrub(m->data);
	send_to_caller(c, "{\"type\":\"chunk\",\"id\":", ",\"data\":", m);
	/* The timeout bounds silence, not the length of a stream. */
	if (c->timeout_ms)
		timer_arm(&c->timer, c->timeout_ms, call_timeout);
}

void
router_cancel(struct session *s, struct msg *m)
{
	char key[256];
	struct call *c;

	if (!s->out_ids || msg_id_key(m->id, key, sizeof(key)) < 0)
		return;
	c = map_get(s->out_ids, key, strlen(key));
	if (!c)
		return; /* finished or never existed: nothing to cancel */
	hub.st.calls_cancelled++;
	fail_call(c, AVD_E_CANCELLED, json_pack("{s:s}", "method", c->method),
		  "%s was cancelled by the caller", c->method);
	send_cancel(c, "cancelled");
	call_free(c);
}

void
router_fail_callee(struct session *s, enum avd_code code, const char *reason)
{
	while (s->calls_in) {
		struct call *c = s->calls_in;
		fail_call(c, code, unavailable_data(c->method, s, reason),
			  code == AVD_E_BACKEND_UNAVAILABLE
				  ? "the backend answering %s is unavailable"
				  : "%s was not answered",
			  c->method);
		call_free(c);
	}
}

void
router_session_gone(struct session *s)
{
	router_fail_callee(s, AVD_E_BACKEND_UNAVAILABLE, "gone");
	while (s->calls_out) {
		struct call *c = s->calls_out;
		send_cancel(c, "caller_gone");
		call_free(c);
	}
	while (s->methods.n)
		unregister_at(s, s->methods.n - 1);
}

void
router_shutdown(void)
{
	for (struct session *s = hub.sessions; s; s = s->next) {
		while (s->calls_out) {
			struct call *c = s->calls_out;
			fail_call(c, AVD_E_EVENT_LOOP_CLOSED,
				  json_pack("{s:s}", "method", c->method),
				  "avd is shutting down; %s was not answered",
				  c->method);
			send_cancel(c, "shutdown");
			call_free(c);
		}
	}
}

json_t *
router_session_calls(const struct session *s)
{
	json_t *a = json_array();

	for (struct call *c = s->calls_out; c; c = c->out_next)
		json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "id", c->key,
						   "method", c->method, "callee",
						   c->callee->id));
	return a;
}
