/*
 * unicode.h: the character data the default analyzer needs, as inline
 * lookups over generated tables (unicode_tables.c, made by
 * scripts/gen_unicode_tables.py from Debian's unicode-data files, so the
 * Unicode version is pinned to the one the reference analyzer uses).
 * Layer: text. Tables are immutable; every function is thread-safe.
 *
 * Per code point we need three facts: does it start/continue a token run
 * (letters and decimal digits), does it only continue one (marks), is it in
 * a CJK range; and its simple case folding. All three answers for a code
 * point come from one class byte and one fold delta.
 */
#ifndef TDB_TEXT_UNICODE_H
#define TDB_TEXT_UNICODE_H

#include <stdint.h>

#define TEXT_UC_MAX 0x10FFFFu
#define TEXT_UC_CLASS_SHIFT 7
#define TEXT_UC_FOLD_SHIFT 7

/* Class byte: low two bits are the kind, bit 2 the CJK flag. */
#define TEXT_UC_SEP 0u   /* separates runs */
#define TEXT_UC_START 1u /* letter (L*) or decimal digit (Nd): starts or continues a run */
#define TEXT_UC_MARK 2u  /* mark (M*): continues a run, never starts one */
#define TEXT_UC_KIND_MASK 3u
#define TEXT_UC_CJK 4u

extern const char text_uc_version[];
extern const uint16_t text_uc_class_stage1[];
extern const uint8_t text_uc_class_stage2[];
extern const uint16_t text_uc_fold_stage1[];
extern const int32_t text_uc_fold_stage2[];

/* Class byte of cp (cp <= TEXT_UC_MAX). */
static inline uint32_t text_uc_class(uint32_t cp) {
    uint32_t block = text_uc_class_stage1[cp >> TEXT_UC_CLASS_SHIFT];
    return text_uc_class_stage2[(block << TEXT_UC_CLASS_SHIFT) |
                                (cp & ((1u << TEXT_UC_CLASS_SHIFT) - 1))];
}

/* Simple case folding of cp (CaseFolding.txt statuses C and S). */
static inline uint32_t text_uc_fold(uint32_t cp) {
    uint32_t block = text_uc_fold_stage1[cp >> TEXT_UC_FOLD_SHIFT];
    return (uint32_t)((int32_t)cp + text_uc_fold_stage2[(block << TEXT_UC_FOLD_SHIFT) |
                                                       (cp & ((1u << TEXT_UC_FOLD_SHIFT) - 1))]);
}

#endif
