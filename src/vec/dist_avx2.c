/*
 * dist_avx2.c: AVX2 + FMA kernels (8 floats per register).
 * Layer: vec. Compiled with -mavx2 -mfma; reached only through dist.c's
 * dispatch after the CPU check. Tails shorter than a register are summed
 * in scalar code after the vector part (AVX2 has no cheap masked loads
 * for bytes), so no load ever reads past dim.
 * Results equal the scalar reference up to float rounding (the summation
 * order differs); tests/vec/test_dist.c holds the tolerance.
 */
#include <immintrin.h>

#include "vec/dist_simd.h"

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

static float l2sq_avx2(const float *a, const float *b, size_t dim) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    if (i + 8 <= dim) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        i += 8;
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

static float dot_avx2(const float *a, const float *b, size_t dim) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    if (i + 8 <= dim) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        i += 8;
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < dim; i++) s += a[i] * b[i];
    return s;
}

static float dot_u8_avx2(const float *a, const uint8_t *codes, size_t dim) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m128i c = _mm_loadu_si128((const __m128i *)(codes + i));
        __m256 c0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c));
        __m256 c1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(c, 8)));
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), c0, s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), c1, s1);
    }
    if (i + 8 <= dim) {
        __m128i c = _mm_loadl_epi64((const __m128i *)(codes + i));
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c)), s0);
        i += 8;
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < dim; i++) s += a[i] * (float)codes[i];
    return s;
}

/* Byte-wise popcount through a nibble lookup table (no vector popcount
 * instruction in AVX2); _mm256_sad_epu8 folds the bytes into 4 u64 lanes. */
static inline __m256i popcnt256(__m256i v) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                         1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_and_si256(v, low);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
    __m256i cnt = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
    return _mm256_sad_epu8(cnt, _mm256_setzero_si256());
}

static uint32_t ip_bits4_avx2(const uint64_t *bits, const uint64_t *planes, size_t words) {
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    size_t w = 0;
    for (; w + 4 <= words; w += 4) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(bits + w));
        for (int j = 0; j < 4; j++) {
            __m256i p = _mm256_loadu_si256((const __m256i *)(planes + (size_t)j * words + w));
            acc[j] = _mm256_add_epi64(acc[j], popcnt256(_mm256_and_si256(x, p)));
        }
    }
    uint64_t s = 0;
    for (int j = 0; j < 4; j++) {
        __m128i h = _mm_add_epi64(_mm256_castsi256_si128(acc[j]), _mm256_extracti128_si256(acc[j], 1));
        uint64_t c = (uint64_t)_mm_cvtsi128_si64(h) + (uint64_t)_mm_extract_epi64(h, 1);
        for (size_t t = w; t < words; t++)
            c += (uint64_t)__builtin_popcountll(bits[t] & planes[(size_t)j * words + t]);
        s += c << j;
    }
    return (uint32_t)s;
}

static int32_t dot_u8_i16_avx2(const int16_t *a, const uint8_t *codes, size_t dim) {
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        __m256i c0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(codes + i)));
        __m256i c1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(codes + i + 16)));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(a + i)), c0));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(a + i + 16)), c1));
    }
    if (i + 16 <= dim) {
        __m256i c0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(codes + i)));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(a + i)), c0));
        i += 16;
    }
    __m256i s = _mm256_add_epi32(s0, s1);
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    int32_t r = _mm_cvtsi128_si32(h);
    for (; i < dim; i++) r += (int32_t)a[i] * codes[i];
    return r;
}

const vec_kernels vec_kernels_avx2 = {"avx2", l2sq_avx2, dot_avx2, dot_u8_avx2, ip_bits4_avx2,
                                      dot_u8_i16_avx2, vec_fwht_scalar};
