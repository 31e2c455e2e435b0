/*
 * builtin.c - the avd.* methods, answered by the daemon itself.
 *
 * They run synchronously on the loop and answer in the response lane, like
 * any other result, so a client needs no special case for them.
 */
#include "config.h"

#include <string.h>

#include "avd.h"

bool
builtin_is(const char *method)
{
	return !strncmp(method, "avd.", 4);
}

static void
reply(struct session *s, struct msg *m, json_t *result)
{
	json_t *j = json_pack("{s:O, s:b, s:o}", "id", m->id, "ok", 1, "result",
			      result);

	session_send_json(s, LANE_RESPONSE, j);
	json_decref(j);
}

static void
reply_err(struct session *s, struct msg *m, struct avd_err *err)
{
	session_send_error_response(s, m->id, err_to_json(err));
}

/* The array under key in params ({"methods": [...]}), borrowed. */
static json_t *
param_list(struct msg *m, const char *key, struct avd_err *err)
{
	json_t *v = json_object_get(m->params, key);

	if (!json_is_array(v)) {
		err_set(err, AVD_E_INVALID_REQUEST, NULL,
			"%s expects params {\"%s\": [...]}", m->method, key);
		return NULL;
	}
	return v;
}

static json_t *
session_info(const struct session *s)
{
	json_t *methods = json_array();

	for (uint32_t i = 0; i < s->methods.n; i++)
		json_array_append_new(methods, json_string(s->methods.v[i]));
	return json_pack("{s:s, s:s, s:s?, s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o, s:o}",
			 "session", s->id, "role",
			 s->role == ROLE_BACKEND ? "backend" : "frontend", "name",
			 s->name, "transport", s->ops->name, "health",
			 s->role == ROLE_BACKEND ? health_str(s->health) : "connected",
			 "queue_bytes", (json_int_t)s->q.bytes, "queue_high_water",
			 (json_int_t)s->q.high_water, "pending_calls",
			 (json_int_t)s->pending_out, "pending_in",
			 (json_int_t)s->pending_in, "methods", methods,
			 "subscriptions", pubsub_list(s), "calls",
			 router_session_calls(s));
}

static void
add_method(const char *key, void *val, void *arg)
{
	const struct session *owner = val;

	json_array_append_new(arg, json_pack("{s:s, s:s, s:s}", "method", key,
					     "owner", owner->id, "owner_name",
					     owner->name));
}

void
builtin_call(struct session *s, struct msg *m)
{
	const char *name = m->method + 4;
	struct avd_err err = { 0 };
	json_t *list;

	if (!strcmp(name, "register")) {
		if (!(list = param_list(m, "methods", &err)) ||
		    router_register(s, list, &err)) {
			reply_err(s, m, &err);
			return;
		}
		reply(s, m, json_pack("{s:O}", "methods", list));
		health_on_ready(s);
	} else if (!strcmp(name, "unregister")) {
		if (!(list = param_list(m, "methods", &err))) {
			reply_err(s, m, &err);
			return;
		}
		reply(s, m, json_pack("{s:o}", "methods", router_unregister(s, list)));
	} else if (!strcmp(name, "subscribe")) {
		if (!(list = param_list(m, "events", &err)) ||
		    pubsub_subscribe(s, list, &err)) {
			reply_err(s, m, &err);
			return;
		}
		reply(s, m, json_pack("{s:o}", "events", pubsub_list(s)));
	} else if (!strcmp(name, "unsubscribe")) {
		if (!(list = param_list(m, "events", &err))) {
			reply_err(s, m, &err);
			return;
		}
		pubsub_unsubscribe(s, list);
		reply(s, m, json_pack("{s:o}", "events", pubsub_list(s)));
	} else if (!strcmp(name, "sessions")) {
		json_t *a = json_array();
		for (struct session *o = hub.sessions; o; o = o->next)
			if (o->state == SESSION_OPEN)
				json_array_append_new(a, session_info(o));
		reply(s, m, json_pack("{s:o}", "sessions", a));
	} else if (!strcmp(name, "methods")) {
		json_t *a = json_array();
		map_each(hub.methods, add_method, a);
		reply(s, m, json_pack("{s:o}", "methods", a));
	} else if (!strcmp(name, "stats")) {
		reply(s, m, metrics_json());
	} else {
		hub.st.failed_by_code[AVD_E_METHOD_NOT_FOUND]++;
		session_send_error_response(
			s, m->id,
			err_json(AVD_E_METHOD_NOT_FOUND,
				 json_pack("{s:s}", "method", m->method),
				 "avd has no method %s", m->method));
	}
}
