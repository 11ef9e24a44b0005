/*
 * s3_xml.h: the small, bounded XML reader for S3 replies (ListObjectsV2,
 * errors, multipart initiate and complete).
 * Layer: objstore, internal to s3.c.
 *
 * It reports, in document order, the text of every element that holds
 * text (with the element's path from the root, "ListBucketResult/Contents/Key",
 * namespace prefixes dropped, entities decoded) and the end of every
 * element (text NULL). It is not a general XML parser: no DTDs (a
 * <!DOCTYPE is refused, so no entity expansion), no attributes reported
 * (they are skipped), no NUL byte anywhere (XML has none; text is
 * handed out as C strings), and everything is bounded (S3_XML_MAX_DEPTH,
 * S3_XML_MAX_PATH, S3_XML_MAX_TEXT), since replies are network input.
 */
#ifndef TDB_OBJSTORE_S3_XML_H
#define TDB_OBJSTORE_S3_XML_H

#include <stddef.h>

/* S3 replies nest 3 deep; room for some growth, never a stack hazard. */
#define S3_XML_MAX_DEPTH 16
/* Longest element path reported: depth times a generous name length. */
#define S3_XML_MAX_PATH 256
/* Longest decoded text: a key is at most 1024 bytes; error messages are
 * short. Longer text makes the document malformed for our purposes. */
#define S3_XML_MAX_TEXT 8192

/* Called per text (text != NULL, len bytes, NUL-terminated) and per
 * element end (text NULL, len 0). A non-zero return stops the walk and
 * becomes its result. */
typedef int (*s3_xml_fn)(void *ctx, const char *path, const char *text, size_t len);

/* 0 when the whole document was read, S3_XML_MALFORMED when it is not
 * XML we accept, or the callback's non-zero return. */
#define S3_XML_MALFORMED (-1000)
int s3_xml_walk(const char *xml, size_t len, s3_xml_fn fn, void *ctx);

#endif
