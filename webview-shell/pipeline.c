/*
 * pipeline.c - incoming calls, queued by priority and run one at a time.
 *
 * Why a pipeline at all: a backend may fire a hundred eval_js calls and
 * then a close.  Run in arrival order, the close would wait for every
 * script; worse, a script that never returns would hold it forever.  So
 * calls are sorted into four lanes and the highest non-empty lane always
 * goes first:
 *
 *   LANE_CLOSE       close
 *   LANE_NAVIGATION  load_url, load_html, reload, stop
 *   LANE_SCRIPT      eval_js
 *   LANE_STATE       set_visible, set_title, resize
 *
 * Calls are not run from the WebSocket message handler.  The handler only
 * queues them; one idle source (G_PRIORITY_DEFAULT_IDLE, below socket I/O)
 * runs one call per main-loop turn.  Because it runs below I/O, every
 * message already waiting on the socket is read and queued before the next
 * call runs, so a close sent after a burst of scripts overtakes them.
 *
 * eval_js finishes asynchronously.  At most one script is in flight: the
 * rest wait in our queue, where a cancel can still remove them and a close
 * can answer them, instead of in WebKit's, where neither is possible.
 * While a script runs, the other lanes keep moving: a close or a
 * navigation never waits for a script to finish.
 *
 * Within a lane order is kept; across lanes it is not.  A caller that
 * needs set_title to happen before an eval_js waits for its answer first.
 *
 * Ownership: a queued call is owned by its lane queue; once popped it is
 * owned by window.c until one call_reply_*() frees it.  The in-flight
 * script is additionally remembered in `script_running` (borrowed).
 */
#include <stdarg.h>
#include <string.h>

#include "shell.h"

static const struct {
	const char *name;
	enum lane lane;
} ops[OP_COUNT] = {
	[OP_CLOSE] = { "close", LANE_CLOSE },
	[OP_LOAD_URL] = { "load_url", LANE_NAVIGATION },
	[OP_LOAD_HTML] = { "load_html", LANE_NAVIGATION },
	[OP_RELOAD] = { "reload", LANE_NAVIGATION },
	[OP_STOP] = { "stop", LANE_NAVIGATION },
	[OP_EVAL_JS] = { "eval_js", LANE_SCRIPT },
	[OP_SET_VISIBLE] = { "set_visible", LANE_STATE },
	[OP_SET_TITLE] = { "set_title", LANE_STATE },
	[OP_RESIZE] = { "resize", LANE_STATE },
};

static GQueue lanes[LANE_COUNT];     /* of struct call *, owned */
static struct call *script_running;  /* borrowed; owned by window.c */
static guint drain_source;	     /* idle source id, 0 when none */

const char *
pipeline_op_name(enum op op)
{
	return ops[op].name;
}

char **
pipeline_method_names(const char *label)
{
	char **names = g_new0(char *, OP_COUNT + 1);

	for (int i = 0; i < OP_COUNT; i++)
		names[i] = g_strdup_printf("window.%s.%s", label, ops[i].name);
	return names;
}

static void
call_free(struct call *c)
{
	json_node_unref(c->id);
	g_free(c->key);
	if (c->params)
		json_object_unref(c->params);
	g_object_unref(c->cancellable);
	g_free(c);
}

/* The next call that may run now, or NULL.  The script lane is skipped
 * while a script is in flight, so the lanes below it still move. */
static struct call *
next_call(void)
{
	for (int l = 0; l < LANE_COUNT; l++) {
		if (l == LANE_SCRIPT && script_running)
			continue;
		if (!g_queue_is_empty(&lanes[l]))
			return g_queue_pop_head(&lanes[l]);
	}
	return NULL;
}

static gboolean
runnable(void)
{
	for (int l = 0; l < LANE_COUNT; l++)
		if (!g_queue_is_empty(&lanes[l]) && !(l == LANE_SCRIPT && script_running))
			return TRUE;
	return FALSE;
}

static gboolean
drain(gpointer unused)
{
	struct call *c = next_call();

	if (c) {
		if (c->op == OP_EVAL_JS)
			script_running = c;
		window_dispatch(c); /* c now belongs to window.c */
	}
	if (runnable())
		return G_SOURCE_CONTINUE;
	drain_source = 0;
	return G_SOURCE_REMOVE;
}

static void
schedule(void)
{
	if (!drain_source && runnable())
		drain_source = g_idle_add_full(G_PRIORITY_DEFAULT_IDLE, drain, NULL, NULL);
}

/* ---- arrival ------------------------------------------------------------ */

void
pipeline_submit(JsonObject *msg, const char *suffix, guint generation)
{
	JsonNode *id = json_object_get_member(msg, "id");
	JsonNode *params = json_object_get_member(msg, "params");
	struct call *c;
	int op = -1;

	for (int i = 0; i < OP_COUNT; i++)
		if (!strcmp(suffix, ops[i].name))
			op = i;

	c = g_new0(struct call, 1);
	c->id = json_node_copy(id);
	c->key = JSON_NODE_HOLDS_VALUE(id) && json_node_get_value_type(id) == G_TYPE_STRING
			 ? g_strdup(json_node_get_string(id))
			 : proto_to_string(id);
	c->generation = generation;
	c->cancellable = g_cancellable_new();
	c->arrived_us = g_get_monotonic_time();
	if (params && JSON_NODE_HOLDS_OBJECT(params))
		c->params = json_object_ref(json_node_get_object(params));
	else if (params && !JSON_NODE_HOLDS_NULL(params))
		c->params_bad = TRUE;

	if (op < 0) {
		/* avd only forwards what we registered, so this is a method of
		 * ours from an older build, or a bug; answer rather than hang. */
		JsonObject *data = json_object_new();
		char *msgtext = g_strdup_printf("this window has no method \"%s\"", suffix);
		json_object_set_string_member(data, "method", suffix);
		call_reply_error(c, proto_error("METHOD_NOT_FOUND", "MethodNotFound",
						msgtext, data));
		g_free(msgtext);
		return;
	}
	c->op = (enum op)op;
	if (shell_quitting() || !window_alive()) {
		call_reply_window_error(c, "the window is closed");
		return;
	}
	g_queue_push_tail(&lanes[ops[op].lane], c);
	schedule();
}

void
pipeline_cancel(const char *key)
{
	for (int l = 0; l < LANE_COUNT; l++) {
		for (GList *it = lanes[l].head; it; it = it->next) {
			struct call *c = it->data;
			if (!strcmp(c->key, key)) {
				g_queue_delete_link(&lanes[l], it);
				call_free(c); /* never started: nothing to undo */
				return;
			}
		}
	}
	/* Already running: only a script can still be stopped.  Its
	 * completion sees `cancelled` and answers nothing, as avd has
	 * already answered the caller (a late answer would only be counted
	 * in late_answers). */
	if (script_running && !strcmp(script_running->key, key)) {
		script_running->cancelled = TRUE;
		g_cancellable_cancel(script_running->cancellable);
	}
}

void
pipeline_drop_all(void)
{
	for (int l = 0; l < LANE_COUNT; l++) {
		struct call *c;
		while ((c = g_queue_pop_head(&lanes[l])))
			call_free(c);
	}
	if (script_running) {
		script_running->cancelled = TRUE;
		g_cancellable_cancel(script_running->cancellable);
	}
}

void
pipeline_fail_all(const char *why)
{
	for (int l = 0; l < LANE_COUNT; l++) {
		struct call *c;
		while ((c = g_queue_pop_head(&lanes[l])))
			call_reply_window_error(c, "%s", why);
	}
	/* The running script is answered now, while the session is still
	 * open; its completion, if it ever comes, just frees it. */
	if (script_running && !script_running->cancelled && !script_running->replied) {
		JsonObject *data = json_object_new();
		char *text;
		json_object_set_string_member(data, "operation", "eval_js");
		text = proto_response_error(script_running->id,
					    proto_error("WINDOW_OPERATION", "WindowOperationError",
							why, data));
		session_send_text(script_running->generation, text);
		g_free(text);
		script_running->replied = TRUE;
		g_cancellable_cancel(script_running->cancellable);
	}
}

/* ---- answers ------------------------------------------------------------ */

/* text owned; sends it unless the call was withdrawn or answered already,
 * then releases the call and lets the next script run. */
static void
finish(struct call *c, char *text)
{
	gsize limit = session_max_message_bytes();

	/* avd would discard an answer over its limit and the caller would
	 * wait for its timeout; tell the caller what happened instead. */
	if (strlen(text) > limit) {
		JsonObject *data = json_object_new();
		char *msg = g_strdup_printf("the answer (%zu bytes) is over avd's "
					    "max_message_bytes (%zu)", strlen(text), limit);
		json_object_set_int_member(data, "limit", (gint64)limit);
		g_free(text);
		text = proto_response_error(c->id, proto_error("PAYLOAD_TOO_LARGE", "PayloadTooLarge",
								msg, data));
		g_free(msg);
	}
	if (!c->cancelled && !c->replied)
		session_send_text(c->generation, text);
	g_free(text);
	if (c == script_running) {
		script_running = NULL;
		schedule();
	}
	call_free(c);
}

void
call_reply_ok(struct call *c, JsonNode *result)
{
	finish(c, proto_response_ok(c->id, result));
}

void
call_reply_raw(struct call *c, const char *result_json)
{
	finish(c, proto_response_ok_raw(c->id, result_json));
}

void
call_reply_error(struct call *c, JsonObject *error)
{
	finish(c, proto_response_error(c->id, error));
}

void
call_reply_window_error(struct call *c, const char *fmt, ...)
{
	JsonObject *data = json_object_new();
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	json_object_set_string_member(data, "operation", ops[c->op].name);
	call_reply_error(c, proto_error("WINDOW_OPERATION", "WindowOperationError", msg, data));
	g_free(msg);
}
