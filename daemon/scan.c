/*
 * scan.c - one pass over a JSON object that says where its members are.
 *
 * avd reads a few top-level fields of a call, an answer or an event (id,
 * method, event) and forwards the payload (params, result, data) as it
 * came.  Parsing payloads into jansson trees only to print them again was
 * most of what a message cost, so this scanner validates the whole text in
 * one pass, without allocating, and hands back byte ranges.
 *
 * It accepts only text that jansson would accept and read the same way.
 * Where it is not sure, or where forwarding the bytes as they are would be
 * wrong, it declines and the message takes the jansson path, which decides
 * and explains the error: numbers with an exponent or more than 18 integer
 * digits (range checks), "\u0000" (refused in keys), escaped surrogates
 * that are not a pair (repaired by utf8.c), line breaks between tokens (a
 * forwarded payload must stay on one line for a child's stdio), escaped
 * member names, very deep nesting, and more members than the caller asked
 * room for.
 */
#include "config.h"

#include <string.h>

#include "avd.h"

/* Well inside jansson's own limit of 2048, so a scanned text never hits it. */
#define SCAN_MAX_DEPTH 1024

/* 1 for the bytes that end the quick loop inside a string: '"', '\\',
 * control characters and the first byte of every multi-byte sequence. */
static const unsigned char special[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20 '"' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50 '\\' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x80 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

typedef const unsigned char *ptr;

/* Past spaces and tabs.  A line break is NULL: see the comment on top. */
static ptr
skip_ws(ptr p, ptr end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p < end && (*p == '\n' || *p == '\r'))
		return NULL;
	return p;
}

static int
hex4(ptr p)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		unsigned char c = p[i];
		int h = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* Length of the valid UTF-8 sequence at p (first byte >= 0x80), or 0:
 * no overlong forms, no encoded surrogates, nothing above U+10FFFF. */
static int
utf8_seq(ptr p, ptr end)
{
	unsigned char c = p[0];
	int n;

	if (c < 0xC2)
		return 0;
	n = c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
	if (!n || end - p < n)
		return 0;
	for (int i = 1; i < n; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0) ||
	    (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
		return 0;
	return n;
}

/* Past the string whose opening quote is at p, or NULL; *esc is set when
 * it holds an escape. */
static ptr
scan_string(ptr p, ptr end, bool *esc)
{
	p++;
	for (;;) {
		while (p < end && !special[*p])
			p++;
		if (p >= end)
			return NULL;
		if (*p == '"')
			return p + 1;
		if (*p == '\\') {
			int u, lo;

			*esc = true;
			if (end - p < 2)
				return NULL;
			if (p[1] && strchr("\"\\/bfnrt", p[1])) {
				p += 2;
				continue;
			}
			if (p[1] != 'u' || end - p < 6 || (u = hex4(p + 2)) < 0)
				return NULL;
			if (u == 0 || (u >= 0xDC00 && u <= 0xDFFF))
				return NULL;
			if (u >= 0xD800 && u <= 0xDBFF) {
				if (end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
				    (lo = hex4(p + 8)) < 0xDC00 || lo > 0xDFFF)
					return NULL;
				p += 6;
			}
			p += 6;
			continue;
		}
		if (*p < 0x20)
			return NULL;
		{
			int n = utf8_seq(p, end);
			if (!n)
				return NULL;
			p += n;
		}
	}
}

/* Past the number at p, or NULL. */
static ptr
scan_number(ptr p, ptr end)
{
	ptr digits;

	if (p < end && *p == '-')
		p++;
	digits = p;
	if (p < end && *p == '0') {
		p++;
	} else {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		if (p == digits || p - digits > 18)
			return NULL;
	}
	if (p < end && *p == '.') {
		ptr frac = ++p;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		if (p == frac)
			return NULL;
	}
	if (p < end && (*p == 'e' || *p == 'E'))
		return NULL;
	return p;
}

static ptr
scan_literal(ptr p, ptr end, const char *word, size_t n)
{
	return (size_t)(end - p) >= n && !memcmp(p, word, n) ? p + n : NULL;
}

/* Past "key" and the colon after it, or NULL. */
static ptr
scan_key(ptr p, ptr end)
{
	bool esc = false;

	if (!(p = skip_ws(p, end)) || p >= end || *p != '"' ||
	    !(p = scan_string(p, end, &esc)) || !(p = skip_ws(p, end)) ||
	    p >= end || *p != ':')
		return NULL;
	return p + 1;
}

/* Nesting levels, one bit each: set for an object, clear for an array. */
static void
set_level(unsigned char *stack, int level, bool obj)
{
	unsigned char bit = (unsigned char)(1u << (level % 8));

	stack[level / 8] = obj ? stack[level / 8] | bit : stack[level / 8] & ~bit;
}

static bool
level_is_object(const unsigned char *stack, int level)
{
	return stack[level / 8] >> (level % 8) & 1;
}

/*
 * Past the one value at p (no leading space), or NULL.  Containers are
 * walked with an explicit stack of one bit per level, never recursion, so
 * a hostile nesting depth costs no C stack.
 */
static ptr
scan_value(ptr p, ptr end, bool *esc)
{
	unsigned char stack[SCAN_MAX_DEPTH / 8];
	int depth = 0;

	for (;;) {
		/* a value starts at p */
		if (p >= end)
			return NULL;
		switch (*p) {
		case '"':
			p = scan_string(p, end, esc);
			break;
		case '{':
		case '[': {
			bool obj = *p == '{';

			if (depth == SCAN_MAX_DEPTH)
				return NULL;
			set_level(stack, depth++, obj);
			if (!(p = skip_ws(p + 1, end)) || p >= end)
				return NULL;
			if (*p == (obj ? '}' : ']')) { /* empty */
				p++;
				depth--;
				break;
			}
			if (obj && (!(p = scan_key(p, end)) || !(p = skip_ws(p, end))))
				return NULL;
			continue; /* the first element or member value */
		}
		case 't':
			p = scan_literal(p, end, "true", 4);
			break;
		case 'f':
			p = scan_literal(p, end, "false", 5);
			break;
		case 'n':
			p = scan_literal(p, end, "null", 4);
			break;
		default:
			p = scan_number(p, end);
			break;
		}
		/* after a value: a comma, or the ends of containers */
		for (;;) {
			bool obj;

			if (!p)
				return NULL;
			if (depth == 0)
				return p;
			if (!(p = skip_ws(p, end)) || p >= end)
				return NULL;
			obj = level_is_object(stack, depth - 1);
			if (*p == ',') {
				p++;
				if (obj && !(p = scan_key(p, end)))
					return NULL;
				if (!(p = skip_ws(p, end)))
					return NULL;
				break;
			}
			if (*p != (obj ? '}' : ']'))
				return NULL;
			p++;
			depth--;
		}
	}
}

static enum scan_type
type_of(unsigned char c)
{
	switch (c) {
	case '"':
		return SCAN_STRING;
	case '{':
		return SCAN_OBJECT;
	case '[':
		return SCAN_ARRAY;
	case 't':
		return SCAN_TRUE;
	case 'f':
		return SCAN_FALSE;
	case 'n':
		return SCAN_NULL;
	default:
		return SCAN_NUMBER;
	}
}

int
scan_object(const char *text, size_t len, struct scan_member *mem, int max)
{
	ptr p = (ptr)text, end = p + len;
	int n = 0;

	if (!(p = skip_ws(p, end)) || p >= end || *p != '{')
		return -1;
	if (!(p = skip_ws(p + 1, end)) || p >= end)
		return -1;
	if (*p != '}') {
		for (;;) {
			struct scan_member *m;
			bool esc = false;
			ptr key, v;
			size_t klen;

			if (n == max || p >= end || *p != '"')
				return -1;
			key = p;
			if (!(p = scan_string(p, end, &esc)) || esc)
				return -1; /* an escaped name may spell a known one */
			klen = (size_t)(p - key) - 2;
			if (!(p = skip_ws(p, end)) || p >= end || *p != ':' ||
			    !(p = skip_ws(p + 1, end)))
				return -1;
			v = p;
			if (!(p = scan_value(p, end, &esc)))
				return -1;
			m = &mem[n++];
			m->key = (const char *)key + 1;
			m->klen = klen;
			m->val = (const char *)v;
			m->vlen = (size_t)(p - v);
			m->type = type_of(*v);
			m->escaped = esc;
			if (!(p = skip_ws(p, end)) || p >= end)
				return -1;
			if (*p == '}')
				break;
			if (*p != ',' || !(p = skip_ws(p + 1, end)))
				return -1;
		}
	}
	if (!(p = skip_ws(p + 1, end)) || p != end)
		return -1;
	return n;
}
