/*
 * frame.c - a serialized message, encoded once and shared.
 *
 * A broadcast to a thousand subscribers is one frame with a thousand
 * references: nothing is re-encoded or copied per recipient.  The headroom
 * in front lets libwebsockets write its frame header in place, and the
 * trailing '\n' lets the stdio transport write the same bytes as a line.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "avd.h"

struct growbuf {
	struct frame *f;
	size_t cap; /* JSON bytes that fit */
};

static int
append(const char *p, size_t n, void *arg)
{
	struct growbuf *g = arg;
	size_t need = g->f->len + n;

	if (need > g->cap) {
		while (g->cap < need)
			g->cap *= 2;
		g->f = xrealloc(g->f, sizeof(struct frame) + FRAME_HEADROOM +
					      g->cap + 1);
	}
	memcpy(frame_data(g->f) + g->f->len, p, n);
	g->f->len += (uint32_t)n;
	return 0;
}

struct frame *
frame_from_json(const json_t *j)
{
	struct growbuf g = { .cap = 240 };

	g.f = xmalloc(sizeof(struct frame) + FRAME_HEADROOM + g.cap + 1);
	g.f->refs = 1;
	g.f->len = 0;
	/* JSON_ENSURE_ASCII is off: UTF-8 passes through at its real size.
	 * (JSON_ALLOW_NUL is a decoding flag; as a dump flag its bit would
	 * mean JSON_INDENT(8).  Embedded NULs are always escaped on output.) */
	json_dump_callback(j, append, &g, JSON_COMPACT);
	/* Queues count len against their limit: a frame must not hold much
	 * more memory than that, or a full queue would cost twice its limit. */
	if (g.cap - g.f->len > 1024)
		g.f = xrealloc(g.f, sizeof(struct frame) + FRAME_HEADROOM + g.f->len + 1);
	frame_data(g.f)[g.f->len] = '\n';
	return g.f;
}

struct frame *
frame_from_bytes(const void *p, size_t len)
{
	struct frame *f = xmalloc(sizeof(struct frame) + FRAME_HEADROOM + len + 1);

	f->refs = 1;
	f->len = (uint32_t)len;
	memcpy(frame_data(f), p, len);
	frame_data(f)[len] = '\n';
	return f;
}

void
frame_unref(struct frame *f)
{
	if (f && --f->refs == 0)
		free(f);
}
