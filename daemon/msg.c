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
	int n;

	if (json_is_integer(id))
		n = snprintf(buf, size, "i%" JSON_INTEGER_FORMAT,
			     json_integer_value(id));
	else if (json_is_string(id))
		n = snprintf(buf, size, "s%s", json_string_value(id));
	else
		return -EINVAL;
	/* Ids longer than the key buffer are refused rather than truncated,
	 * so two different ids can never share a key. */
	return n < 0 || (size_t)n >= size ? -E2BIG : n;
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
	json_decref(m->root);
	m->root = NULL;
}
