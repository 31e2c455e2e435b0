/*
 * msg.c - turns one inbound text message into a validated struct msg.
 *
 * Every rule about what a well-formed message looks like lives here, so
 * the router, pubsub and session code can trust the fields they read.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avd.h"

/* Largest timeout a caller may ask for: about 24 days, well inside int32 ms. */
#define MAX_TIMEOUT_MS 2147483647LL

bool
msg_valid_event_name(const char *s, size_t len)
{
	if (len < 1 || len > 255)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == ':' || c == '/' || c == '-'))
			return false;
	}
	return true;
}

int
msg_id_key(const json_t *id, char *buf, size_t size)
{
	size_t n;

	if (json_is_integer(id)) {
		if (size < 22)
			return -E2BIG;
		buf[0] = 'i';
		n = 1 + fmt_i64(buf + 1, json_integer_value(id));
	} else if (json_is_string(id)) {
		/* Up to the first NUL, as the key is used as a C string. */
		n = strnlen(json_string_value(id), json_string_length(id));
		/* Ids longer than the key buffer are refused rather than
		 * truncated, so two different ids can never share a key. */
		if (n + 2 > size)
			return -E2BIG;
		buf[0] = 's';
		memcpy(buf + 1, json_string_value(id), n++);
	} else {
		return -EINVAL;
	}
	buf[n] = '\0';
	return (int)n;
}

static bool
valid_id(const json_t *id)
{
	char key[256];

	return id && msg_id_key(id, key, sizeof(key)) > 0;
}

static const char *
opt_string(json_t *root, const char *key, bool *bad)
{
	json_t *v = json_object_get(root, key);

	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		*bad = true;
		return NULL;
	}
	return json_string_value(v);
}

static int
invalid(struct avd_err *err, const char *fmt, const char *what)
{
	return err_set(err, AVD_E_INVALID_REQUEST, NULL, fmt, what);
}

static int
decode_call(struct msg *m, struct avd_err *err)
{
	json_t *method = json_object_get(m->root, "method");
	json_t *t = json_object_get(m->root, "timeout_ms");

	if (!json_is_string(method) || !json_string_length(method))
		return invalid(err, "%s", "call needs a non-empty string \"method\"");
	if (!valid_id(m->id))
		return invalid(err, "%s",
			       "call needs an \"id\" that is a string or an integer");
	m->kind = MSG_CALL;
	m->method = json_string_value(method);
	m->params = json_object_get(m->root, "params");
	if (!m->params) {
		m->params = json_null();
		json_object_set_new(m->root, "params", m->params);
	}
	if (t && !json_is_null(t)) {
		if (!json_is_integer(t) || json_integer_value(t) < 0 ||
		    json_integer_value(t) > MAX_TIMEOUT_MS)
			return invalid(err, "%s",
				       "\"timeout_ms\" must be a non-negative integer");
		m->has_timeout = true;
		m->timeout_ms = json_integer_value(t);
	}
	return 0;
}

static int
decode_response(struct msg *m, struct avd_err *err)
{
	json_t *ok = json_object_get(m->root, "ok");

	if (!valid_id(m->id))
		return invalid(err, "%s",
			       "response needs an \"id\" that is a string or an integer");
	m->kind = MSG_RESPONSE;
	m->result = json_object_get(m->root, "result");
	m->error = json_object_get(m->root, "error");
	if (ok) {
		if (!json_is_boolean(ok))
			return invalid(err, "%s", "\"ok\" must be true or false");
		m->ok = json_is_true(ok);
	} else {
		m->ok = !m->error || json_is_null(m->error);
	}
	if (m->ok && !m->result)
		m->result = json_null();
	if (!m->ok && (!m->error || json_is_null(m->error)))
		return invalid(err, "%s", "a failed response needs \"error\"");
	return 0;
}

static int
decode_typed(struct msg *m, const char *type, struct avd_err *err)
{
	bool bad = false;

	if (!strcmp(type, "call"))
		return decode_call(m, err);
	if (!strcmp(type, "hello")) {
		json_t *sv = json_object_get(m->root, "schema_version");
		m->kind = MSG_HELLO;
		m->schema_version = AVD_SCHEMA_VERSION;
		if (sv) {
			if (!json_is_integer(sv))
				return invalid(err, "%s",
					       "\"schema_version\" must be an integer");
			m->schema_version = json_integer_value(sv);
		}
		m->role = opt_string(m->root, "role", &bad);
		m->name = opt_string(m->root, "name", &bad);
		m->token = opt_string(m->root, "token", &bad);
		if (bad)
			return invalid(err, "%s",
				       "hello fields role, name and token must be strings");
		if (m->role && strcmp(m->role, "frontend") && strcmp(m->role, "backend"))
			return invalid(err, "%s",
				       "\"role\" must be \"frontend\" or \"backend\"");
		m->subscribe = json_object_get(m->root, "subscribe");
		if (m->subscribe && !json_is_array(m->subscribe))
			return invalid(err, "%s", "\"subscribe\" must be an array");
		return 0;
	}
	if (!strcmp(type, "ready")) {
		m->kind = MSG_READY;
		m->handlers = json_object_get(m->root, "handlers");
		if (m->handlers && !json_is_array(m->handlers))
			return invalid(err, "%s", "\"handlers\" must be an array");
		return 0;
	}
	if (!strcmp(type, "event")) {
		json_t *ev = json_object_get(m->root, "event");
		json_t *echo = json_object_get(m->root, "echo");
		m->kind = MSG_EVENT;
		if (!json_is_string(ev) ||
		    !msg_valid_event_name(json_string_value(ev),
					  json_string_length(ev)))
			return invalid(err, "%s",
				       "\"event\" must be 1-255 letters, digits or _ . : / -");
		m->event = json_string_value(ev);
		m->data = json_object_get(m->root, "data");
		if (!m->data)
			m->data = json_object_get(m->root, "detail");
		m->to = json_object_get(m->root, "to");
		if (m->to && !json_is_null(m->to)) {
			size_t i;
			json_t *v;
			if (!json_is_array(m->to))
				return invalid(err, "%s", "\"to\" must be an array of session ids");
			json_array_foreach(m->to, i, v)
				if (!json_is_string(v))
					return invalid(err, "%s",
						       "\"to\" must be an array of session ids");
		} else {
			m->to = NULL;
		}
		if (echo && !json_is_boolean(echo))
			return invalid(err, "%s", "\"echo\" must be true or false");
		m->echo = json_is_true(echo);
		return 0;
	}
	if (!strcmp(type, "chunk") || !strcmp(type, "cancel")) {
		m->kind = type[1] == 'h' ? MSG_CHUNK : MSG_CANCEL;
		if (!valid_id(m->id))
			return invalid(err, "%s needs an \"id\" that is a string or an integer",
				       type);
		m->data = json_object_get(m->root, "data");
		m->reason = opt_string(m->root, "reason", &bad);
		return 0;
	}
	if (!strcmp(type, "error")) {
		m->kind = MSG_ERROR;
		m->error = json_object_get(m->root, "error");
		return 0;
	}
	return err_set(err, AVD_E_INVALID_REQUEST,
		       json_pack("{s:s}", "type", type),
		       "unknown message type \"%.64s\"", type);
}

/* ---- the fast path: calls, answers, chunks, events as scanned text -- */

/* Top-level names the fast path reads; others are ignored, as jansson's
 * path ignores them. */
enum field { F_ID, F_TYPE, F_METHOD, F_PARAMS, F_TIMEOUT, F_OK, F_RESULT,
	     F_ERROR, F_EVENT, F_DATA, F_DETAIL, F_TO, F_ECHO, F_COUNT };

static int
field_of(const char *k, size_t n)
{
#define NAME(s) { s, sizeof(s) - 1 }
	static const struct {
		const char *s;
		size_t n;
	} names[F_COUNT] = {
		NAME("id"), NAME("type"), NAME("method"), NAME("params"),
		NAME("timeout_ms"), NAME("ok"), NAME("result"), NAME("error"),
		NAME("event"), NAME("data"), NAME("detail"), NAME("to"), NAME("echo"),
	};
#undef NAME

	for (int i = 0; i < F_COUNT; i++)
		if (names[i].n == n && !memcmp(names[i].s, k, n))
			return i;
	return -1;
}

/* A string member without escapes: its text is its value. */
static bool
plain_string(const struct scan_member *v)
{
	return v && v->type == SCAN_STRING && !v->escaped && v->vlen > 2;
}

static bool
is(const struct scan_member *v, const char *s)
{
	size_t n = strlen(s);

	return plain_string(v) && v->vlen == n + 2 && !memcmp(v->val + 1, s, n);
}

/* A new jansson id for a plain string or an integer, or NULL. */
static json_t *
fast_id(const struct scan_member *v)
{
	json_int_t x = 0;
	const char *p;

	if (plain_string(v))
		return v->vlen - 2 < 250 ? json_stringn_nocheck(v->val + 1, v->vlen - 2)
					 : NULL;
	if (!v || v->type != SCAN_NUMBER || memchr(v->val, '.', v->vlen) ||
	    (v->vlen == 2 && !memcmp(v->val, "-0", 2)))
		return NULL;
	/* scan.c allows at most 18 digits: no overflow here. */
	for (p = v->val + (*v->val == '-'); p < v->val + v->vlen; p++)
		x = x * 10 + (*p - '0');
	return json_integer(*v->val == '-' ? -x : x);
}

/* The string at v as a C string, terminated in place over its closing
 * quote: nothing reads that byte once the message is decoded. */
static const char *
terminate(const struct scan_member *v)
{
	((char *)v->val)[v->vlen - 1] = '\0';
	return v->val + 1;
}

/*
 * Decode buf as a call, an answer, a chunk or an event without jansson.
 * Returns false, with buf untouched, when the message needs the full
 * decoder: scan.c declined it, it is another kind, or a field is anything
 * but the plain form (errors are explained by the full decoder).
 */
static bool
decode_fast(char *buf, size_t len, struct msg *m)
{
	struct scan_member mem[16];
	const struct scan_member *f[F_COUNT] = { 0 };
	const struct scan_member *pl = NULL;
	int n = scan_object(buf, len, mem, 16);

	for (int i = 0; i < n; i++) {
		int k = field_of(mem[i].key, mem[i].klen);
		if (k >= 0)
			f[k] = &mem[i]; /* a repeated name: the last one counts */
	}
	if (n < 0 || (f[F_TYPE] && !plain_string(f[F_TYPE])))
		return false;
	if (is(f[F_TYPE], "call") || (!f[F_TYPE] && f[F_METHOD])) {
		const struct scan_member *t = f[F_TIMEOUT];
		if (!plain_string(f[F_METHOD]))
			return false;
		if (t && t->type != SCAN_NULL) {
			json_t *v = fast_id(t);
			json_int_t x = v && json_is_integer(v) ? json_integer_value(v) : -1;
			json_decref(v);
			if (x < 0 || x > MAX_TIMEOUT_MS)
				return false;
			m->has_timeout = true;
			m->timeout_ms = x;
		}
		m->kind = MSG_CALL;
		pl = f[F_PARAMS];
	} else if (!f[F_TYPE] && f[F_ID] && !f[F_ERROR] && (f[F_OK] || f[F_RESULT])) {
		if (f[F_OK] && f[F_OK]->type != SCAN_TRUE)
			return false;
		m->kind = MSG_RESPONSE;
		m->ok = true;
		pl = f[F_RESULT];
	} else if (is(f[F_TYPE], "chunk")) {
		m->kind = MSG_CHUNK;
		pl = f[F_DATA];
	} else if (is(f[F_TYPE], "event")) {
		const struct scan_member *e = f[F_ECHO];
		if (!plain_string(f[F_EVENT]) ||
		    !msg_valid_event_name(f[F_EVENT]->val + 1, f[F_EVENT]->vlen - 2) ||
		    (f[F_TO] && f[F_TO]->type != SCAN_NULL) ||
		    (e && e->type != SCAN_TRUE && e->type != SCAN_FALSE))
			return false;
		m->kind = MSG_EVENT;
		m->echo = e && e->type == SCAN_TRUE;
		pl = f[F_DATA] ? f[F_DATA] : f[F_DETAIL];
	} else {
		return false;
	}
	if (m->kind != MSG_EVENT && !(m->id = fast_id(f[F_ID])))
		return false;
	if (m->kind == MSG_CALL)
		m->method = terminate(f[F_METHOD]);
	if (m->kind == MSG_EVENT)
		m->event = terminate(f[F_EVENT]);
	m->fast = true;
	if (pl) {
		m->payload = pl->val;
		m->payload_len = pl->vlen;
	} else {
		/* What the full decoder puts there: null, or {} for an event. */
		m->payload = m->kind == MSG_EVENT ? "{}" : "null";
		m->payload_len = m->kind == MSG_EVENT ? 2 : 4;
	}
	return true;
}

void
msg_parse_payload(struct msg *m)
{
	json_error_t jerr;
	json_t *v;

	if (!m->fast || m->root)
		return;
	v = json_loadb(m->payload, m->payload_len, JSON_ALLOW_NUL | JSON_DECODE_ANY,
		       &jerr);
	if (!v) {
		/* scan.c accepts only what jansson accepts: this is a bug. */
		log_error("a scanned payload did not parse: %s", jerr.text);
		v = json_null();
	}
	m->root = v; /* owns the payload from now on */
	if (m->kind == MSG_CALL)
		m->params = v;
	else if (m->kind == MSG_RESPONSE)
		m->result = v;
	else
		m->data = v;
}

void
msg_put_payload(struct framebuf *b, const struct msg *m)
{
	const json_t *j = m->kind == MSG_CALL ? m->params
			  : m->kind == MSG_RESPONSE ? m->result
						    : m->data;

	if (m->fast && !m->root)
		frame_put(b, m->payload, m->payload_len);
	else if (j)
		frame_put_json(b, j);
	else if (m->kind == MSG_EVENT)
		frame_put_lit(b, "{}");
	else
		frame_put_lit(b, "null");
}

int
msg_decode(char *buf, size_t len, struct msg *m, struct avd_err *err,
	   json_t **bad_id)
{
	json_error_t jerr;
	json_t *type;
	int rc;

	char *text = buf;

	memset(m, 0, sizeof(*m));
	*bad_id = NULL;
	if (decode_fast(buf, len, m))
		return 0;
	memset(m, 0, sizeof(*m));
	if (memchr(buf, '\\', len))
		text = utf8_fix_surrogates(buf, &len, &m->marked);
	/* JSON_ALLOW_NUL: "\u0000" inside string values is legal and kept. */
	m->root = json_loadb(text, len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
	if (text != buf)
		free(text);
	if (!m->root) {
		/* jansson checks strings; this also catches bytes outside them.
		 * Only a message that failed to parse pays for the scan. */
		if (!utf8_valid((const unsigned char *)buf, len))
			return err_set(err, AVD_E_ENCODING, NULL,
				       "the message is not valid UTF-8");
		if (json_error_code(&jerr) == json_error_null_byte_in_key)
			return err_set(err, AVD_E_ENCODING, NULL,
				       "an object key holds \\u0000, which avd does not accept");
		return err_set(err, AVD_E_PARSE,
			       json_pack("{s:i,s:i}", "line", jerr.line,
					 "column", jerr.column),
			       "not JSON: %s", jerr.text);
	}
	if (!json_is_object(m->root)) {
		rc = err_set(err, AVD_E_INVALID_REQUEST, NULL,
			     "a message must be a JSON object");
		goto fail;
	}
	m->id = json_object_get(m->root, "id");
	type = json_object_get(m->root, "type");
	if (type) {
		if (!json_is_string(type))
			rc = invalid(err, "%s", "\"type\" must be a string");
		else
			rc = decode_typed(m, json_string_value(type), err);
	} else if (json_object_get(m->root, "method")) {
		rc = decode_call(m, err);
	} else if (m->id && (json_object_get(m->root, "ok") ||
			     json_object_get(m->root, "result") ||
			     json_object_get(m->root, "error"))) {
		rc = decode_response(m, err);
	} else {
		rc = invalid(err, "%s",
			     "not a message: needs \"type\", \"method\", or \"id\" with a result");
	}
	if (rc == 0)
		return 0;
fail:
	if (valid_id(m->id) && m->kind != MSG_RESPONSE)
		*bad_id = json_incref(m->id);
	json_decref(m->root);
	m->root = NULL;
	return rc;
}

void
msg_free(struct msg *m)
{
	if (m->fast)
		json_decref(m->id);
	json_decref(m->root);
	m->root = NULL;
	m->id = NULL;
}
