/* check_msg.c - message decoding, as a table of inputs and verdicts. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "testhub.h"

struct dcase {
	const char *in;
	enum avd_code code; /* AVD_OK = decodes */
	int kind;           /* expected kind when it decodes */
	bool id_back;       /* an error that can be answered as a response */
};

static const struct dcase cases[] = {
	{ "{\"id\":1,\"method\":\"api.x\"}", AVD_OK, MSG_CALL, false },
	{ "{\"type\":\"call\",\"id\":\"a\",\"method\":\"m\",\"params\":[1]}", AVD_OK, MSG_CALL, false },
	{ "{\"id\":1,\"method\":\"m\",\"timeout_ms\":0}", AVD_OK, MSG_CALL, false },
	{ "{\"id\":1,\"ok\":true,\"result\":5}", AVD_OK, MSG_RESPONSE, false },
	{ "{\"id\":1,\"result\":5}", AVD_OK, MSG_RESPONSE, false },
	{ "{\"id\":1,\"error\":{\"message\":\"x\"}}", AVD_OK, MSG_RESPONSE, false },
	{ "{\"type\":\"hello\"}", AVD_OK, MSG_HELLO, false },
	{ "{\"type\":\"ready\",\"handlers\":[\"a\"]}", AVD_OK, MSG_READY, false },
	{ "{\"type\":\"event\",\"event\":\"a:b/c-d.e_f\",\"detail\":1}", AVD_OK, MSG_EVENT, false },
	{ "{\"type\":\"chunk\",\"id\":\"c1\",\"data\":\"x\"}", AVD_OK, MSG_CHUNK, false },
	{ "{\"type\":\"cancel\",\"id\":7}", AVD_OK, MSG_CANCEL, false },
	{ "{\"type\":\"error\",\"error\":{}}", AVD_OK, MSG_ERROR, false },
	{ "{\"type\":\"event\",\"event\":\"x\",\"data\":\"\\ud83d\"}", AVD_OK, MSG_EVENT, false },
	{ "{\"type\":\"event\",\"event\":\"x\",\"data\":\"a\\u0000b\"}", AVD_OK, MSG_EVENT, false },
	/* malformed */
	{ "{bad", AVD_E_PARSE, 0, false },
	{ "", AVD_E_PARSE, 0, false },
	{ "[]", AVD_E_INVALID_REQUEST, 0, false },
	{ "42", AVD_E_INVALID_REQUEST, 0, false },
	{ "\"x\"", AVD_E_INVALID_REQUEST, 0, false },
	{ "{}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"a\\u0000b\":1}", AVD_E_ENCODING, 0, false },
	{ "{\"type\":5}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"type\":\"bogus\",\"id\":3}", AVD_E_INVALID_REQUEST, 0, true },
	{ "{\"id\":1,\"method\":5}", AVD_E_INVALID_REQUEST, 0, true },
	{ "{\"id\":1,\"method\":\"\"}", AVD_E_INVALID_REQUEST, 0, true },
	{ "{\"id\":{},\"method\":\"m\"}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"id\":1.5,\"method\":\"m\"}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"id\":true,\"method\":\"m\"}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"method\":\"m\"}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"id\":1,\"method\":\"m\",\"timeout_ms\":-1}", AVD_E_INVALID_REQUEST, 0, true },
	{ "{\"id\":1,\"method\":\"m\",\"timeout_ms\":\"5\"}", AVD_E_INVALID_REQUEST, 0, true },
	{ "{\"id\":1,\"ok\":\"yes\",\"result\":1}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"id\":1,\"ok\":false}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"type\":\"hello\",\"schema_version\":\"1\"}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"type\":\"hello\",\"role\":\"admin\"}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"type\":\"hello\",\"token\":5}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"type\":\"hello\",\"subscribe\":\"x\"}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"type\":\"ready\",\"handlers\":\"x\"}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"type\":\"event\",\"event\":\"has space\"}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"type\":\"event\",\"event\":\"\"}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"type\":\"event\",\"event\":5}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"type\":\"event\",\"event\":\"x\",\"to\":\"s1\"}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"type\":\"event\",\"event\":\"x\",\"to\":[1]}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"type\":\"event\",\"event\":\"x\",\"echo\":1}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"type\":\"chunk\",\"data\":1}", AVD_E_INVALID_REQUEST, 0, false },
	{ "{\"type\":\"cancel\",\"id\":null}", AVD_E_INVALID_REQUEST, 0, false },
};

START_TEST(test_decode_table)
{
	const struct dcase *c = &cases[_i];
	struct avd_err err = { 0 };
	struct msg m;
	json_t *bad_id = NULL;
	char *buf = xstrdup(c->in);
	int rc = msg_decode(buf, strlen(buf), &m, &err, &bad_id);

	if (c->code == AVD_OK) {
		ck_assert_msg(rc == 0, "case %d (%s) failed: %s", _i, c->in, err.message);
		ck_assert_int_eq(m.kind, c->kind);
		msg_free(&m);
	} else {
		ck_assert_msg(rc != 0, "case %d (%s) decoded but should not", _i, c->in);
		ck_assert_msg(err.code == c->code, "case %d (%s): got %s want %s", _i,
			      c->in, err_code_str(err.code), err_code_str(c->code));
		ck_assert_msg(strlen(err.message) > 0, "case %d has no message", _i);
		ck_assert_msg((bad_id != NULL) == c->id_back, "case %d: id back %d", _i,
			      bad_id != NULL);
	}
	json_decref(bad_id);
	err_clear(&err);
	free(buf);
}
END_TEST

START_TEST(test_event_name_rules)
{
	char name[300];

	ck_assert(msg_valid_event_name("agui:text_message_content", 25));
	ck_assert(!msg_valid_event_name("a b", 3));
	ck_assert(!msg_valid_event_name("é", strlen("é")));
	memset(name, 'a', sizeof(name));
	ck_assert(msg_valid_event_name(name, 255));
	ck_assert(!msg_valid_event_name(name, 256));
}
END_TEST

START_TEST(test_defaults_and_aliases)
{
	struct avd_err err = { 0 };
	struct msg m;
	json_t *bad_id;
	char in1[] = "{\"id\":1,\"method\":\"m\"}";
	char in2[] = "{\"type\":\"event\",\"event\":\"e\",\"detail\":{\"k\":1}}";

	ck_assert_int_eq(msg_decode(in1, strlen(in1), &m, &err, &bad_id), 0);
	ck_assert(m.fast);
	ck_assert_ptr_null(m.params); /* not parsed until asked */
	msg_parse_payload(&m);
	ck_assert(json_is_null(m.params));
	ck_assert(!m.has_timeout);
	msg_free(&m);
	ck_assert_int_eq(msg_decode(in2, strlen(in2), &m, &err, &bad_id), 0);
	msg_parse_payload(&m);
	ck_assert_int_eq(json_integer_value(json_object_get(m.data, "k")), 1);
	msg_free(&m);
}
END_TEST

START_TEST(test_surrogate_repair)
{
	/* Lone halves in the middle of strings and in keys become U+FFFD in
	 * place; escaped backslashes are not escapes. */
	char a[] = "{\"s\":\"x\\ud83dy\",\"t\":\"\\ud83d\\ude00\",\"u\":\"\\\\ud83d\",\"k\\ud83d\":1}";
	size_t len = strlen(a);
	bool marked;
	char *out = utf8_fix_surrogates(a, &len, &marked);

	ck_assert_ptr_eq(out, a);
	ck_assert(!marked);
	ck_assert_str_eq(a, "{\"s\":\"x\\ufffdy\",\"t\":\"\\ud83d\\ude00\",\"u\":\"\\\\ud83d\",\"k\\ufffd\":1}");
}
END_TEST

START_TEST(test_delta_markers_join)
{
	char a[] = "{\"delta\":\"a\\ud83d\"}";
	char b[] = "{\"delta\":\"\\ude00b\"}";
	size_t la = strlen(a), lb = strlen(b);
	bool ma, mb;
	char *oa = utf8_fix_surrogates(a, &la, &ma);
	char *ob = utf8_fix_surrogates(b, &lb, &mb);
	json_t *ja = json_loadb(oa, la, 0, NULL), *jb = json_loadb(ob, lb, 0, NULL);
	json_t *da = delta_of(ja), *db = delta_of(jb), *r;
	uint16_t held = 0;

	ck_assert(ma && mb);
	r = delta_join(json_string_value(da), json_string_length(da), &held);
	ck_assert_str_eq(json_string_value(r), "a");
	ck_assert_uint_eq(held, 0xD83D);
	json_decref(r);
	r = delta_join(json_string_value(db), json_string_length(db), &held);
	ck_assert_str_eq(json_string_value(r), "😀b");
	ck_assert_uint_eq(held, 0);
	json_decref(r);
	/* A held half whose partner never comes becomes U+FFFD in front. */
	held = 0xD83D;
	r = delta_join("z", 1, &held);
	ck_assert_str_eq(json_string_value(r), "\xEF\xBF\xBDz");
	json_decref(r);
	/* Markers outside a stream are scrubbed to U+FFFD. */
	delta_scrub(ja);
	ck_assert_str_eq(json_string_value(delta_of(ja)), "a\xEF\xBF\xBD");
	json_decref(ja);
	json_decref(jb);
	free(oa);
	free(ob);
}
END_TEST

START_TEST(test_noncharacters_survive_markers)
{
	/* A message needing markers that also holds noncharacters, raw and
	 * escaped: the pair still joins and the noncharacters come back. */
	char a[] = "{\"delta\":\"\xEF\xB7\x90x\\ufdefy\\ud83d\"}";
	char b[] = "{\"delta\":\"\\ude00\"}";
	size_t la = strlen(a), lb = strlen(b);
	bool ma, mb;
	char *oa = utf8_fix_surrogates(a, &la, &ma), *ob = utf8_fix_surrogates(b, &lb, &mb);
	json_t *ja = json_loadb(oa, la, 0, NULL), *jb = json_loadb(ob, lb, 0, NULL), *r;
	uint16_t held = 0;

	ck_assert(ma && mb);
	r = delta_join(json_string_value(delta_of(ja)), json_string_length(delta_of(ja)), &held);
	ck_assert_str_eq(json_string_value(r), "\xEF\xB7\x90x\xEF\xB7\xAFy");
	ck_assert_uint_eq(held, 0xD83D);
	json_decref(r);
	r = delta_join(json_string_value(delta_of(jb)), json_string_length(delta_of(jb)), &held);
	ck_assert_str_eq(json_string_value(r), "😀");
	json_decref(r);
	json_decref(ja), json_decref(jb);
	free(oa), free(ob);
}
END_TEST

START_TEST(test_utf8_valid)
{
	ck_assert(utf8_valid((const unsigned char *)"héllo 你好 😀", strlen("héllo 你好 😀")));
	ck_assert(!utf8_valid((const unsigned char *)"\xc0\xaf", 2));     /* overlong */
	ck_assert(!utf8_valid((const unsigned char *)"\xe4\xbd", 2));     /* truncated */
	ck_assert(!utf8_valid((const unsigned char *)"\xed\xa0\xbd", 3)); /* surrogate */
	ck_assert(!utf8_valid((const unsigned char *)"\xff", 1));
}
END_TEST

START_TEST(test_id_keys_distinct)
{
	char a[64], b[64];
	json_t *i = json_integer(1), *s = json_string("1");

	msg_id_key(i, a, sizeof(a));
	msg_id_key(s, b, sizeof(b));
	ck_assert_str_ne(a, b);
	json_decref(i);
	json_decref(s);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("msg");
	TCase *tc = tcase_create("decode");

	tcase_add_loop_test(tc, test_decode_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, test_event_name_rules);
	tcase_add_test(tc, test_defaults_and_aliases);
	tcase_add_test(tc, test_surrogate_repair);
	tcase_add_test(tc, test_delta_markers_join);
	tcase_add_test(tc, test_noncharacters_survive_markers);
	tcase_add_test(tc, test_utf8_valid);
	tcase_add_test(tc, test_id_keys_distinct);
	suite_add_tcase(s, tc);
	return th_run(s);
}
