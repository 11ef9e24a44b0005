/*
 * test_s3_xml.c: the bounded XML reader for S3 replies: the replies we
 * parse (list, error, initiate), entities and CDATA, and refusal of what
 * we do not accept (DOCTYPE, mismatched or unclosed tags, depth and text
 * beyond the bounds, unknown entities).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objstore/s3_xml.h"

typedef struct events {
    char log[4096];
    size_t len;
} events;

static int record(void *ctx, const char *path, const char *text, size_t len) {
    events *e = ctx;
    int n = text ? snprintf(e->log + e->len, sizeof e->log - e->len, "%s=%.*s;", path, (int)len, text)
                 : snprintf(e->log + e->len, sizeof e->log - e->len, "/%s;", path);
    if (n > 0) e->len += (size_t)n;
    return 0;
}

static int walk(const char *xml, events *e) {
    memset(e, 0, sizeof *e);
    return s3_xml_walk(xml, strlen(xml), record, e);
}

static void s3_xml_reads_a_list_reply(void **state) {
    (void)state;
    events e;
    const char *xml =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name>"
        "<IsTruncated>true</IsTruncated><Contents><Key>p/a&amp;b</Key><Size>12</Size></Contents>"
        "<Contents><Key>p/c</Key><ETag>&quot;x&quot;</ETag><Size>0</Size></Contents></ListBucketResult>";
    assert_int_equal(walk(xml, &e), 0);
    assert_string_equal(e.log,
                        "ListBucketResult/Name=b;/ListBucketResult/Name;"
                        "ListBucketResult/IsTruncated=true;/ListBucketResult/IsTruncated;"
                        "ListBucketResult/Contents/Key=p/a&b;/ListBucketResult/Contents/Key;"
                        "ListBucketResult/Contents/Size=12;/ListBucketResult/Contents/Size;"
                        "/ListBucketResult/Contents;"
                        "ListBucketResult/Contents/Key=p/c;/ListBucketResult/Contents/Key;"
                        "ListBucketResult/Contents/ETag=\"x\";/ListBucketResult/Contents/ETag;"
                        "ListBucketResult/Contents/Size=0;/ListBucketResult/Contents/Size;"
                        "/ListBucketResult/Contents;/ListBucketResult;");
}

static void s3_xml_reads_errors_entities_cdata_and_comments(void **state) {
    (void)state;
    events e;
    assert_int_equal(walk("<Error>\n  <Code>NoSuchBucket</Code><!-- note -->\n"
                          "  <Message><![CDATA[a <b> c]]> &#65;&#x42;&#xe9;</Message><Empty/></Error>\n",
                          &e),
                     0);
    assert_string_equal(e.log, "Error/Code=NoSuchBucket;/Error/Code;"
                               "Error/Message=a <b> c AB\xc3\xa9;/Error/Message;"
                               "Error/Empty=;/Error/Empty;/Error;");
    /* Namespace prefixes are dropped. */
    assert_int_equal(walk("<s3:Error xmlns:s3=\"u\"><s3:Code>X</s3:Code></s3:Error>", &e), 0);
    assert_string_equal(e.log, "Error/Code=X;/Error/Code;/Error;");
}

static void s3_xml_refuses_what_it_does_not_accept(void **state) {
    (void)state;
    events e;
    const char *bad[] = {
        "",                                                /* no root */
        "<!DOCTYPE x [<!ENTITY a \"b\">]><A>&a;</A>",      /* DTDs: never */
        "<A>&unknown;</A>",                                /* entity we do not know */
        "<A><B></A></B>",                                  /* mismatched */
        "<A><B>",                                          /* unclosed */
        "<A></A><B></B>",                                  /* two roots */
        "text<A/>",                                        /* text outside the root */
        "<A>&#0;</A>",                                     /* NUL by reference */
        "<A>&#xD800;</A>",                                 /* a surrogate */
        "<A attr=\"x>",                                    /* tag never ends */
        "</A>",                                            /* end without start */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = walk(bad[i], &e);
        if (rc != S3_XML_MALFORMED) fail_msg("accepted case %zu: %s", i, bad[i]);
    }
}

static void s3_xml_bounds_depth_and_text(void **state) {
    (void)state;
    events e;
    char deep[1024] = "";
    for (int i = 0; i < S3_XML_MAX_DEPTH + 1; i++) strcat(deep, "<a>");
    for (int i = 0; i < S3_XML_MAX_DEPTH + 1; i++) strcat(deep, "</a>");
    assert_int_equal(walk(deep, &e), S3_XML_MALFORMED);
    size_t n = S3_XML_MAX_TEXT + 1;
    char *big = malloc(n + 16);
    assert_non_null(big);
    strcpy(big, "<A>");
    memset(big + 3, 'x', n);
    strcpy(big + 3 + n, "</A>");
    assert_int_equal(s3_xml_walk(big, strlen(big), record, &e), S3_XML_MALFORMED);
    big[3 + n - 1] = '\0'; /* exactly the limit is fine */
    strcpy(big + 3 + n - 1, "</A>");
    memset(&e, 0, sizeof e);
    assert_int_equal(s3_xml_walk(big, strlen(big), record, &e), 0);
    free(big);
}

static int stop_at_code(void *ctx, const char *path, const char *text, size_t len) {
    (void)ctx;
    (void)len;
    return text && strcmp(path, "Error/Code") == 0 ? 7 : 0;
}

static void s3_xml_callback_can_stop_the_walk(void **state) {
    (void)state;
    const char *xml = "<Error><Code>X</Code><Message>m</Message></Error>";
    assert_int_equal(s3_xml_walk(xml, strlen(xml), stop_at_code, NULL), 7);
}

/* A raw NUL byte anywhere in a reply refuses the whole document before any
 * callback runs: an UploadId or Key holding one must never reach a caller
 * cut short at the NUL (it would name another upload or object). */
static void s3_xml_refuses_a_nul_byte_anywhere(void **state) {
    (void)state;
    static const char *const docs[] = {
        "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
        "<UploadId>abc@def</UploadId></InitiateMultipartUploadResult>",
        "<ListBucketResult><Contents><Key>p/a@b</Key><Size>1</Size></Contents></ListBucketResult>",
        "<Error><Code>NoSuch@Key</Code></Error>",
        "<A><B@/></A>",                      /* in a tag name */
        "<A x=\"@\"><B>x</B></A>",           /* in an attribute */
        "<A><![CDATA[a@b]]></A>",            /* in CDATA */
        "<A><!-- @ --><B>x</B></A>",         /* in a comment */
        "@<A>x</A>",                         /* before the root */
        "<A>x</A>@",                         /* after the root */
        "<A>x</A>\n@\n",                     /* trailing, after whitespace */
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        /* '@' marks where the NUL goes: a real byte 0 inside the length. */
        char buf[256];
        size_t len = strlen(docs[i]);
        assert_true(len < sizeof buf);
        memcpy(buf, docs[i], len);
        char *at = memchr(buf, '@', len);
        assert_non_null(at);
        *at = '\0';
        events e;
        memset(&e, 0, sizeof e);
        int rc = s3_xml_walk(buf, len, record, &e);
        if (rc != S3_XML_MALFORMED) fail_msg("accepted a NUL in case %zu: %s", i, docs[i]);
        if (e.len != 0) fail_msg("case %zu reported before refusing: %s", i, e.log);
        /* The same document with the NUL replaced by a letter is accepted
         * (so the refusal above is the NUL's doing), except the cases where
         * the stray byte lies outside the root. */
        *at = 'Z';
        rc = s3_xml_walk(buf, len, record, &e);
        if (i < 7 && rc != 0) fail_msg("case %zu without the NUL was refused (%d)", i, rc);
    }
    /* The length is what counts: a NUL just past len is not part of the reply. */
    const char ok[] = "<A><UploadId>u1</UploadId></A>";
    events e;
    memset(&e, 0, sizeof e);
    assert_int_equal(s3_xml_walk(ok, sizeof ok - 1, record, &e), 0);
    assert_string_equal(e.log, "A/UploadId=u1;/A/UploadId;/A;");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(s3_xml_reads_a_list_reply),
        cmocka_unit_test(s3_xml_reads_errors_entities_cdata_and_comments),
        cmocka_unit_test(s3_xml_refuses_what_it_does_not_accept),
        cmocka_unit_test(s3_xml_bounds_depth_and_text),
        cmocka_unit_test(s3_xml_callback_can_stop_the_walk),
        cmocka_unit_test(s3_xml_refuses_a_nul_byte_anywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
