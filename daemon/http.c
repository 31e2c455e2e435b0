/*
 * http.c - what a plain HTTP GET on avd's port returns.
 *
 * Decisions only, no sockets: server.c turns a struct http_reply into
 * bytes.  Static files come from one directory, never from above it and
 * never as a listing.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "avd.h"

static void
text(struct http_reply *r, int status, const char *type, const char *body)
{
	r->status = status;
	r->content_type = type;
	r->body = xstrdup(body);
	r->body_len = strlen(body);
}

const char *
http_mime(const char *path)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".mjs", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".json", "application/json" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".txt", "text/plain; charset=utf-8" },
		{ ".map", "application/json" },
		{ ".wasm", "application/wasm" },
	};
	const char *dot = strrchr(path, '.');

	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(dot, types[i].ext))
			return types[i].type;
	return "application/octet-stream";
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode uri into out; refuses NUL bytes and malformed escapes. */
static int
decode_path(const char *uri, char *out, size_t size)
{
	size_t n = 0;

	for (const char *p = uri; *p; p++) {
		char c = *p;
		if (c == '%') {
			int h = hexval(p[1]), l = h < 0 ? -1 : hexval(p[2]);
			if (h < 0 || l < 0)
				return -1;
			c = (char)(h * 16 + l);
			p += 2;
			if (!c)
				return -1;
		}
		if (n + 1 >= size)
			return -1;
		out[n++] = c;
	}
	out[n] = '\0';
	return 0;
}

/* True when any segment of path is "..": the one way out of the UI dir. */
static bool
climbs(const char *path)
{
	const char *seg = path;

	for (const char *p = path;; p++) {
		if (*p == '/' || *p == '\\' || !*p) {
			if (p - seg == 2 && seg[0] == '.' && seg[1] == '.')
				return true;
			if (!*p)
				return false;
			seg = p + 1;
		}
	}
}

void
http_route(const struct config *c, const char *uri, const char *token,
	   struct http_reply *r)
{
	char path[1024], full[PATH_MAX], real_root[PATH_MAX], real[PATH_MAX];
	struct stat st;
	size_t rootlen;
	const char *root;

	memset(r, 0, sizeof(*r));
	if (!strcmp(uri, "/healthz")) {
		char body[200];
		snprintf(body, sizeof(body),
			 "{\"status\":\"%s\",\"sessions\":%u,\"frontends\":%u,"
			 "\"backends\":%u}\n",
			 hub.shutting_down ? "stopping" : "ok", hub.nsessions,
			 hub.nfrontends, hub.nbackends);
		text(r, hub.shutting_down ? 503 : 200, "application/json", body);
		return;
	}
	if (!strcmp(uri, "/metrics")) {
		/* Counters say what runs here; they need the token. */
		if (!auth_token_ok(c, token)) {
			text(r, 401, "text/plain; charset=utf-8",
			     "a token is required (?token= or Authorization: Bearer)\n");
			return;
		}
		r->status = 200;
		r->content_type = "text/plain; version=0.0.4; charset=utf-8";
		r->body = metrics_text(&r->body_len);
		if (!r->body)
			text(r, 500, "text/plain; charset=utf-8", "out of memory\n");
		return;
	}
	if (!strcmp(uri, "/ws")) {
		text(r, 426, "text/plain; charset=utf-8",
		     "this is avd's WebSocket endpoint; connect with a WebSocket client\n");
		return;
	}
	if (uri[0] != '/' || decode_path(uri, path, sizeof(path)) || climbs(path)) {
		text(r, 403, "text/plain; charset=utf-8", "forbidden\n");
		return;
	}
	/* The client library is served from its own directory, so a page in
	 * any UI directory can load it from the daemon it talks to. */
	root = c->ui_dir;
	if (!strcmp(path, "/avd.js") || !strcmp(path, "/avd.global.js") ||
	    !strcmp(path, "/index.d.ts"))
		root = c->client_dir;
	if (!root || !realpath(root, real_root)) {
		text(r, 404, "text/plain; charset=utf-8", "not found\n");
		return;
	}
	/* Resolve links too: the file itself must still live under the root. */
	rootlen = strlen(real_root);
	if (snprintf(full, sizeof(full), "%s%s%s", real_root, path,
		     path[strlen(path) - 1] == '/' ? "index.html" : "") >=
		    (int)sizeof(full) ||
	    !realpath(full, real) || strncmp(real, real_root, rootlen) ||
	    (real[rootlen] != '/' && real[rootlen] != '\0')) {
		text(r, 404, "text/plain; charset=utf-8", "not found\n");
		return;
	}
	if (stat(real, &st) || !S_ISREG(st.st_mode)) {
		text(r, 404, "text/plain; charset=utf-8", "not found\n");
		return;
	}
	r->status = 200;
	r->path = xstrdup(real);
	r->content_type = http_mime(real);
}

void
http_reply_free(struct http_reply *r)
{
	free(r->body);
	free(r->path);
	memset(r, 0, sizeof(*r));
}
