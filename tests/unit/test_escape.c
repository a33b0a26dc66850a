/*
 * Unit tests for the escapers, one per output context (src/core/escape.c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "escape.h"
#include "unit.h"

START_TEST(escapers)
{
	cd_buf b = CD_BUF_INIT;
	char s[64];

	esc_html(&b, "<a href=\"x\">Tom & 'Jerry'</a>", 30);
	ck_assert_str_eq(buf_cstr(&b),
	    "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;");
	buf_reset(&b);
	esc_url_arg(&b, "/dashboard?x=1&y=a b");
	ck_assert_str_eq(buf_cstr(&b), "%2Fdashboard%3Fx%3D1%26y%3Da%20b");
	buf_free(&b);

	strcpy(s, "a%20b+c%2F");
	ck_assert(url_decode(s));
	ck_assert_str_eq(s, "a b c/");
	strcpy(s, "bad%2");
	ck_assert(!url_decode(s));
	strcpy(s, "nul%00");
	ck_assert(!url_decode(s));
	strcpy(s, "%zz");
	ck_assert(!url_decode(s));

	ck_assert(local_path_ok("/dashboard"));
	ck_assert(local_path_ok("/chat/5?x=1"));
	ck_assert(!local_path_ok("//evil.example"));
	ck_assert(!local_path_ok("/\\evil.example"));
	ck_assert(!local_path_ok("https://evil.example"));
	ck_assert(!local_path_ok("/a\r\nSet-Cookie: x"));
	ck_assert(header_value_ok("text/html"));
	ck_assert(!header_value_ok("a\r\nb"));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("escape");
	TCase *tc = tcase_create("escape");

	tcase_add_test(tc, escapers);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
