/*
 * wal_format.h: every framing constant of the write-ahead log, in one
 * place, shared by the writer and the reader in wal.c (and by tests that
 * craft damaged logs). The layout itself is described byte by byte at the
 * top of wal.c and in docs/formats/wal.md.
 * Layer: storage.
 */
#ifndef TDB_STORAGE_WAL_FORMAT_H
#define TDB_STORAGE_WAL_FORMAT_H

#include <assert.h>
#include <stdint.h>

/* File header: magic u32, format version u32, first seqno u64, CRC32C u32. */
#define WAL_FILE_MAGIC 0x4C415754u /* bytes "TWAL" when stored little-endian */
/* Version history:
 *   1: first format (this one). */
#define WAL_FORMAT_VERSION 1u

#define WAL_FILE_MAGIC_OFFSET 0
#define WAL_FILE_VERSION_OFFSET 4
#define WAL_FILE_FIRST_SEQNO_OFFSET 8
#define WAL_FILE_CRC_OFFSET 16
#define WAL_FILE_HEADER_BYTES (4 + 4 + 8 + 4)
static_assert(WAL_FILE_HEADER_BYTES == WAL_FILE_CRC_OFFSET + 4,
              "the file header CRC is its last field");

/* Record header: payload length u32, CRC32C u32, seqno u64, type u8. */
#define WAL_REC_LENGTH_OFFSET 0
#define WAL_REC_CRC_OFFSET 4
#define WAL_REC_SEQNO_OFFSET 8
#define WAL_REC_TYPE_OFFSET 16
#define WAL_RECORD_HEADER_BYTES (4 + 4 + 8 + 1)
static_assert(WAL_RECORD_HEADER_BYTES == WAL_REC_TYPE_OFFSET + 1,
              "the type byte is the last field of the record header");
static_assert(WAL_REC_SEQNO_OFFSET == WAL_REC_CRC_OFFSET + 4,
              "seqno and type follow the CRC contiguously (the CRC covers them)");

/* File names: <first seqno, zero-padded to 20 decimal digits>.wal, so that
 * name order is seqno order (2^64 - 1 has 20 digits). */
#define WAL_FILE_SEQNO_DIGITS 20
#define WAL_FILE_SUFFIX ".wal"
#define WAL_FILE_NAME_BYTES (WAL_FILE_SEQNO_DIGITS + 4)
/* Files moved aside after corruption: <name>.corrupt (never deleted). */
#define WAL_CORRUPT_SUFFIX ".corrupt"

#endif
