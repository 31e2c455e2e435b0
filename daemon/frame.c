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

static void
reserve(struct framebuf *b, size_t n)
{
	size_t need = b->f->len + n;

	if (need > b->cap) {
		while (b->cap < need)
			b->cap *= 2;
		b->f = xrealloc(b->f, sizeof(struct frame) + FRAME_HEADROOM +
					      b->cap + 1);
	}
}

void
frame_begin(struct framebuf *b, size_t hint)
{
	b->cap = hint > 64 ? hint : 64;
	b->f = xmalloc(sizeof(struct frame) + FRAME_HEADROOM + b->cap + 1);
	b->f->refs = 1;
	b->f->len = 0;
}

void
frame_put(struct framebuf *b, const void *p, size_t n)
{
	reserve(b, n);
	memcpy(frame_data(b->f) + b->f->len, p, n);
	b->f->len += (uint32_t)n;
}

void
frame_put_str(struct framebuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t extra = 0;
	unsigned char *o;

	/* Room for exactly what is written, so a frame sized in advance is
	 * never grown for its escapes' worst case. */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		extra += c == '"' || c == '\\' ? 1 : c < 0x20 ? 5 : 0;
	}
	reserve(b, n + extra + 2);
	o = frame_data(b->f) + b->f->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = c;
		} else if (c < 0x20) {
			memcpy(o, "\\u00", 4);
			o[4] = hex[c >> 4];
			o[5] = hex[c & 15];
			o += 6;
		} else {
			*o++ = c;
		}
	}
	*o++ = '"';
	b->f->len = (uint32_t)(o - frame_data(b->f));
}

void
frame_put_int(struct framebuf *b, int64_t v)
{
	char buf[24];

	frame_put(b, buf, fmt_i64(buf, v));
}

static int
append(const char *p, size_t n, void *arg)
{
	frame_put(arg, p, n);
	return 0;
}

void
frame_put_json(struct framebuf *b, const json_t *j)
{
	if (json_is_string(j)) {
		frame_put_str(b, json_string_value(j), json_string_length(j));
	} else if (json_is_integer(j)) {
		frame_put_int(b, json_integer_value(j));
	} else {
		/* JSON_ENSURE_ASCII is off: UTF-8 passes through at its real
		 * size.  (JSON_ALLOW_NUL is a decoding flag; as a dump flag its
		 * bit would mean JSON_INDENT(8).  NULs are escaped on output.) */
		json_dump_callback(j, append, b, JSON_COMPACT | JSON_ENCODE_ANY);
	}
}

struct frame *
frame_end(struct framebuf *b)
{
	struct frame *f = b->f;

	/* Queues count len against their limit: a frame must not hold much
	 * more memory than that, or a full queue would cost twice its limit. */
	if (b->cap - f->len > 1024)
		f = xrealloc(f, sizeof(struct frame) + FRAME_HEADROOM + f->len + 1);
	frame_data(f)[f->len] = '\n';
	b->f = NULL;
	return f;
}

struct frame *
frame_from_json(const json_t *j)
{
	struct framebuf b;

	frame_begin(&b, 240);
	frame_put_json(&b, j);
	return frame_end(&b);
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
