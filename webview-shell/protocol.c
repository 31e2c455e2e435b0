/*
 * protocol.c - the JSON text of avd's wire protocol (docs/protocol.md).
 *
 * Only building lives here; reading incoming messages is session.c's job.
 */
#include <string.h>

#include "shell.h"

char *
proto_to_string(JsonNode *node)
{
	JsonGenerator *gen = json_generator_new();
	char *text;

	json_generator_set_root(gen, node);
	text = json_generator_to_data(gen, NULL);
	g_object_unref(gen);
	return text;
}

JsonObject *
proto_error(const char *code, const char *name, const char *message, JsonObject *data)
{
	JsonObject *e = json_object_new();

	json_object_set_string_member(e, "code", code);
	json_object_set_string_member(e, "name", name);
	json_object_set_string_member(e, "message", message);
	if (data)
		json_object_set_object_member(e, "data", data); /* takes data */
	return e;
}

/* {"id":ID,"ok":B,KEY:VALUE}; value owned. */
static char *
response(JsonNode *id, gboolean ok, const char *key, JsonNode *value)
{
	JsonObject *o = json_object_new();
	JsonNode *root = json_node_new(JSON_NODE_OBJECT);
	char *text;

	json_object_set_member(o, "id", json_node_copy(id));
	json_object_set_boolean_member(o, "ok", ok);
	json_object_set_member(o, key, value ? value : json_node_new(JSON_NODE_NULL));
	json_node_take_object(root, o);
	text = proto_to_string(root);
	json_node_unref(root);
	return text;
}

char *
proto_response_ok(JsonNode *id, JsonNode *result)
{
	return response(id, TRUE, "result", result);
}

/* The result arrives as JSON text from JavaScriptCore.  It is spliced in
 * as it is rather than parsed and re-serialised: JSON.stringify may emit a
 * lone surrogate escape ("\ud83d"), which avd repairs (protocol section 7)
 * but json-glib would refuse, losing the whole result. */
char *
proto_response_ok_raw(JsonNode *id, const char *result_json)
{
	char *idtext = proto_to_string(id);
	char *text = g_strdup_printf("{\"id\":%s,\"ok\":true,\"result\":%s}", idtext,
				     result_json && *result_json ? result_json : "null");

	g_free(idtext);
	return text;
}

char *
proto_response_error(JsonNode *id, JsonObject *error)
{
	JsonNode *e = json_node_new(JSON_NODE_OBJECT);

	json_node_take_object(e, error);
	return response(id, FALSE, "error", e);
}

char *
proto_preview(const char *s, glong max_chars)
{
	const char *end = s;

	for (glong n = 0; *end && n < max_chars; n++)
		end = g_utf8_next_char(end);
	return g_strndup(s, (gsize)(end - s));
}

const char *
proto_get_string(JsonObject *o, const char *member)
{
	JsonNode *n = o ? json_object_get_member(o, member) : NULL;

	if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
		return NULL;
	return json_node_get_string(n);
}
