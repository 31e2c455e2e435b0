/* error.c - the structured error objects of protocol section 9. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "avd.h"

static const struct {
	const char *code, *name;
} table[AVD_E__COUNT] = {
	[AVD_OK] = { "OK", "Ok" },
	[AVD_E_PARSE] = { "PARSE_ERROR", "ParseError" },
	[AVD_E_INVALID_REQUEST] = { "INVALID_REQUEST", "InvalidRequest" },
	[AVD_E_UNSUPPORTED_SCHEMA] = { "UNSUPPORTED_SCHEMA", "UnsupportedSchema" },
	[AVD_E_UNAUTHORIZED] = { "UNAUTHORIZED", "Unauthorized" },
	[AVD_E_ENCODING] = { "ENCODING", "EncodingError" },
	[AVD_E_PAYLOAD_TOO_LARGE] = { "PAYLOAD_TOO_LARGE", "PayloadTooLarge" },
	[AVD_E_METHOD_NOT_FOUND] = { "METHOD_NOT_FOUND", "MethodNotFound" },
	[AVD_E_ALREADY_REGISTERED] = { "ALREADY_REGISTERED", "AlreadyRegistered" },
	[AVD_E_BACKEND_UNAVAILABLE] = { "BACKEND_UNAVAILABLE", "BackendUnavailableError" },
	[AVD_E_TIMEOUT] = { "TIMEOUT", "TimeoutError" },
	[AVD_E_CANCELLED] = { "CANCELLED", "CancelledError" },
	[AVD_E_QUEUE_FULL] = { "QUEUE_FULL", "QueueFull" },
	[AVD_E_EVENT_LOOP_CLOSED] = { "EVENT_LOOP_CLOSED", "EventLoopClosed" },
	[AVD_E_SCRIPT_EXECUTION] = { "SCRIPT_EXECUTION", "ScriptExecutionError" },
	[AVD_E_WINDOW_OPERATION] = { "WINDOW_OPERATION", "WindowOperationError" },
	[AVD_E_BACKEND_ERROR] = { "BACKEND_ERROR", "BackendError" },
	[AVD_E_INTERNAL] = { "INTERNAL", "InternalError" },
};

const char *
err_code_str(enum avd_code c)
{
	return c < AVD_E__COUNT ? table[c].code : "INTERNAL";
}

const char *
err_name_str(enum avd_code c)
{
	return c < AVD_E__COUNT ? table[c].name : "InternalError";
}

int
err_set(struct avd_err *e, enum avd_code c, json_t *data, const char *fmt, ...)
{
	va_list ap;

	json_decref(e->data);
	e->code = c;
	e->data = data;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return -1;
}

void
err_clear(struct avd_err *e)
{
	json_decref(e->data);
	memset(e, 0, sizeof(*e));
}

static json_t *
build(enum avd_code c, json_t *data, const char *message)
{
	return json_pack("{s:s, s:s, s:s, s:o}", "code", err_code_str(c),
			 "name", err_name_str(c), "message", message, "data",
			 data ? data : json_object());
}

json_t *
err_to_json(struct avd_err *e)
{
	json_t *j = build(e->code, e->data, e->message);

	e->data = NULL;
	return j;
}

json_t *
err_json(enum avd_code c, json_t *data, const char *fmt, ...)
{
	char message[240];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	return build(c, data, message);
}
