/*
 * pubsub.c - subscriptions and event fan-out.
 *
 * Exact names are found by hash lookup; prefix and "*" patterns are few in
 * practice and scanned.  An event is serialized once and the same frame is
 * queued for every recipient.  A per-publish generation stamp on each
 * session makes sure a session matched by two patterns gets one copy.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "avd.h"

#define MAX_SUBS_PER_SESSION 1000

struct prefix_sub {
	char *prefix; /* the pattern without its '*', new */
	size_t len;
	struct session *s;
};

static struct map *exact;         /* name -> struct ptrvec of sessions */
static struct ptrvec prefixes;    /* struct prefix_sub * (includes "*") */

void
pubsub_init(void)
{
	exact = map_new();
	memset(&prefixes, 0, sizeof(prefixes));
}

static void
free_vec(const char *key, void *val, void *arg)
{
	ptrvec_free(val);
	free(val);
}

void
pubsub_free(void)
{
	map_each(exact, free_vec, NULL);
	map_free(exact);
	exact = NULL;
	for (uint32_t i = 0; i < prefixes.n; i++) {
		struct prefix_sub *p = prefixes.v[i];
		free(p->prefix);
		free(p);
	}
	ptrvec_free(&prefixes);
}

static bool
valid_pattern(const char *p, size_t n)
{
	if (n == 1 && p[0] == '*')
		return true;
	if (n > 1 && p[n - 1] == '*')
		return msg_valid_event_name(p, n - 1);
	return msg_valid_event_name(p, n);
}

static bool
has_sub(const struct session *s, const char *pat)
{
	for (uint32_t i = 0; i < s->subs.n; i++)
		if (!strcmp(s->subs.v[i], pat))
			return true;
	return false;
}

static void
index_add(struct session *s, const char *pat, size_t n)
{
	if (pat[n - 1] == '*') {
		struct prefix_sub *p = xmalloc(sizeof(*p));
		p->prefix = xstrndup(pat, n - 1);
		p->len = n - 1;
		p->s = s;
		ptrvec_push(&prefixes, p);
	} else {
		struct ptrvec *pv = map_get(exact, pat, n);
		if (!pv) {
			pv = xcalloc(1, sizeof(*pv));
			map_set(exact, pat, n, pv);
		}
		ptrvec_push(pv, s);
	}
}

static void
index_remove(struct session *s, const char *pat)
{
	size_t n = strlen(pat);

	if (pat[n - 1] == '*') {
		for (uint32_t i = 0; i < prefixes.n; i++) {
			struct prefix_sub *p = prefixes.v[i];
			if (p->s == s && p->len == n - 1 && !memcmp(p->prefix, pat, n - 1)) {
				ptrvec_remove(&prefixes, p);
				free(p->prefix);
				free(p);
				return;
			}
		}
	} else {
		struct ptrvec *pv = map_get(exact, pat, n);
		if (!pv)
			return;
		ptrvec_remove(pv, s);
		if (!pv->n) {
			map_del(exact, pat, n);
			ptrvec_free(pv);
			free(pv);
		}
	}
}

int
pubsub_subscribe(struct session *s, const json_t *patterns, struct avd_err *err)
{
	size_t i;
	json_t *v;

	if (!json_is_array(patterns))
		return err_set(err, AVD_E_INVALID_REQUEST, NULL,
			       "expected an array of event names or patterns");
	json_array_foreach(patterns, i, v) {
		if (!json_is_string(v) ||
		    !valid_pattern(json_string_value(v), json_string_length(v)))
			return err_set(err, AVD_E_INVALID_REQUEST,
				       json_pack("{s:O}", "pattern", v),
				       "patterns are event names, prefixes ending in *, or *");
	}
	if (s->subs.n + json_array_size(patterns) > MAX_SUBS_PER_SESSION)
		return err_set(err, AVD_E_QUEUE_FULL,
			       json_pack("{s:i}", "limit", MAX_SUBS_PER_SESSION),
			       "a session may hold at most %d subscriptions",
			       MAX_SUBS_PER_SESSION);
	json_array_foreach(patterns, i, v) {
		const char *pat = json_string_value(v);
		if (has_sub(s, pat))
			continue;
		ptrvec_push(&s->subs, xstrdup(pat));
		index_add(s, pat, json_string_length(v));
	}
	return 0;
}

void
pubsub_unsubscribe(struct session *s, const json_t *patterns)
{
	size_t i;
	json_t *v;

	json_array_foreach(patterns, i, v) {
		for (uint32_t k = 0; k < s->subs.n; k++) {
			char *pat = s->subs.v[k];
			if (json_is_string(v) && !strcmp(pat, json_string_value(v))) {
				index_remove(s, pat);
				ptrvec_remove(&s->subs, pat);
				free(pat);
				break;
			}
		}
	}
}

void
pubsub_session_gone(struct session *s)
{
	while (s->subs.n) {
		char *pat = s->subs.v[s->subs.n - 1];
		index_remove(s, pat);
		s->subs.n--;
		free(pat);
	}
}

json_t *
pubsub_list(const struct session *s)
{
	json_t *a = json_array();

	for (uint32_t i = 0; i < s->subs.n; i++)
		json_array_append_new(a, json_string(s->subs.v[i]));
	return a;
}

static void
deliver(struct session *s, struct frame *f, uint64_t gen)
{
	if (s->deliver_gen == gen || s->state != SESSION_OPEN)
		return;
	s->deliver_gen = gen;
	if (session_send_frame(s, LANE_EVENT, f) == 0)
		hub.st.events_delivered++;
}

static void
deliver_matching(const char *event, struct frame *f, uint64_t gen)
{
	size_t n = strlen(event);
	struct ptrvec *pv = map_get(exact, event, n);

	if (pv)
		for (uint32_t i = 0; i < pv->n; i++)
			deliver(pv->v[i], f, gen);
	for (uint32_t i = 0; i < prefixes.n; i++) {
		struct prefix_sub *p = prefixes.v[i];
		if (p->len <= n && !memcmp(p->prefix, event, p->len))
			deliver(p->s, f, gen);
	}
}

/* Bound on open event streams per publisher holding a half character. */
#define MAX_HELD_STREAMS 1024

/*
 * Events carrying data.message_id and data.delta form a stream per
 * (event name, message_id) of one publisher, like the chunks of a call:
 * a character split across two of them arrives whole in the later one.
 */
static void
stream_join(struct session *s, struct msg *m)
{
	json_t *delta = json_is_object(m->data) ? delta_of(m->data) : NULL;
	json_t *mid = delta ? json_object_get(m->data, "message_id") : NULL;
	char key[600];
	uint16_t held = 0;
	void *v;
	int n;

	if (mid && (json_is_string(mid) || json_is_integer(mid))) {
		n = json_is_string(mid)
			    ? snprintf(key, sizeof(key), "%s%c%s", m->event, 0,
				       json_string_value(mid))
			    : snprintf(key, sizeof(key), "%s%c%" JSON_INTEGER_FORMAT,
				       m->event, 0, json_integer_value(mid));
		if (n > 0 && (size_t)n < sizeof(key)) {
			v = s->held_deltas ? map_get(s->held_deltas, key, (size_t)n) : NULL;
			held = (uint16_t)(uintptr_t)v;
			if (m->marked || held) {
				json_object_set_new(m->data, "delta",
						    delta_join(json_string_value(delta),
							       json_string_length(delta),
							       &held));
				if (held) {
					if (!s->held_deltas)
						s->held_deltas = map_new();
					if (map_count(s->held_deltas) < MAX_HELD_STREAMS)
						map_set(s->held_deltas, key, (size_t)n,
							(void *)(uintptr_t)held);
				} else if (v) {
					map_del(s->held_deltas, key, (size_t)n);
				}
			}
		}
	}
	if (m->marked)
		delta_scrub(m->data);
}

void
pubsub_publish(struct session *s, struct msg *m)
{
	struct framebuf b;
	struct frame *f;
	uint64_t gen = ++hub.deliver_gen;

	if (!strncmp(m->event, "avd:", 4)) {
		session_send_error(s, AVD_E_INVALID_REQUEST,
				   json_pack("{s:s}", "event", m->event),
				   "event names starting with \"avd:\" are avd's own");
		return;
	}
	if (!strcmp(m->event, "backend_health") && s->role == ROLE_BACKEND) {
		/* A backend's own heartbeat goes to frontends with its identity. */
		msg_parse_payload(m);
		json_t *d = json_is_object(m->data) ? json_copy(m->data) : json_object();
		json_t *who = health_event_data(s);
		json_object_update(d, who);
		json_decref(who);
		if (!json_object_get(d, "status"))
			json_object_set_new(d, "status", json_string("alive"));
		pubsub_system("backend_health", d, true);
		return;
	}
	/* A scanned event holds no delta markers (scan.c leaves lone
	 * surrogates to utf8.c), so only a half character held from this
	 * publisher's last delta needs the event's data parsed. */
	if (s->held_deltas && map_count(s->held_deltas))
		msg_parse_payload(m);
	if (!m->fast || m->root)
		stream_join(s, m);
	hub.st.events_published++;
	/* Written directly, data as it came: one event, one serialization. */
	frame_begin(&b, 48 + strlen(m->event) + strlen(s->id) +
				(m->fast ? m->payload_len : 0));
	frame_put_lit(&b, "{\"type\":\"event\",\"event\":");
	frame_put_str(&b, m->event, strlen(m->event));
	frame_put_lit(&b, ",\"data\":");
	msg_put_payload(&b, m);
	frame_put_lit(&b, ",\"from\":");
	frame_put_str(&b, s->id, strlen(s->id));
	frame_put_lit(&b, "}");
	f = frame_end(&b);
	if (!m->echo)
		s->deliver_gen = gen;
	if (m->to) {
		size_t i;
		json_t *v;
		json_array_foreach(m->to, i, v) {
			struct session *r = session_find(json_string_value(v));
			if (r)
				deliver(r, f, gen);
		}
	} else {
		deliver_matching(m->event, f, gen);
	}
	frame_unref(f);
}

void
pubsub_system(const char *event, json_t *data, bool to_frontends)
{
	json_t *ev = json_pack("{s:s, s:s, s:o}", "type", "event", "event", event,
			       "data", data);
	struct frame *f = frame_from_json(ev);
	uint64_t gen = ++hub.deliver_gen;

	json_decref(ev);
	if (to_frontends)
		for (struct session *s = hub.sessions; s; s = s->next)
			if (s->role == ROLE_FRONTEND)
				deliver(s, f, gen);
	deliver_matching(event, f, gen);
	frame_unref(f);
}

void
pubsub_send_to(struct session *s, const char *event, json_t *data)
{
	json_t *ev = json_pack("{s:s, s:s, s:o}", "type", "event", "event", event,
			       "data", data);

	session_send_json(s, LANE_EVENT, ev);
	json_decref(ev);
}
