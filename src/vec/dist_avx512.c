/*
 * dist_avx512.c: AVX-512 kernels (16 floats per register, masked tails).
 * Layer: vec. Compiled with -mavx512f/bw/dq/vl/vpopcntdq -mfma; reached only
 * through dist.c's dispatch after the CPU check.
 * Tails use masked loads: lanes past dim are neither read (a masked-off
 * lane never faults) nor summed. Four accumulators hide the FMA latency
 * on long vectors. Results equal the scalar reference up to float
 * rounding; tests/vec/test_dist.c holds the tolerance.
 */
#include <immintrin.h>
#include <math.h>

#include "vec/dist_simd.h"

static inline __mmask16 tail16(size_t n) { return (__mmask16)((1u << n) - 1u); }

static float l2sq_avx512(const float *a, const float *b, size_t dim) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
        __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
        s2 = _mm512_fmadd_ps(d2, d2, s2);
        s3 = _mm512_fmadd_ps(d3, d3, s3);
    }
    for (; i + 16 <= dim; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    if (i < dim) {
        __mmask16 m = tail16(dim - i);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        s1 = _mm512_fmadd_ps(d, d, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static float dot_avx512(const float *a, const float *b, size_t dim) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= dim; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < dim) {
        __mmask16 m = tail16(dim - i);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static inline __m512 u8x16_to_ps(__m128i c) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(c)); }

static float dot_u8_avx512(const float *a, const uint8_t *codes, size_t dim) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        const __m128i *c = (const __m128i *)(codes + i);
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), u8x16_to_ps(_mm_loadu_si128(c)), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), u8x16_to_ps(_mm_loadu_si128(c + 1)), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), u8x16_to_ps(_mm_loadu_si128(c + 2)), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), u8x16_to_ps(_mm_loadu_si128(c + 3)), s3);
    }
    for (; i + 16 <= dim; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i),
                             u8x16_to_ps(_mm_loadu_si128((const __m128i *)(codes + i))), s0);
    if (i < dim) {
        __mmask16 m = tail16(dim - i);
        __m128i c = _mm_maskz_loadu_epi8(m, codes + i);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), u8x16_to_ps(c), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static uint32_t ip_bits4_avx512(const uint64_t *bits, const uint64_t *planes, size_t words) {
    __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
    __m512i a2 = _mm512_setzero_si512(), a3 = _mm512_setzero_si512();
    for (size_t w = 0; w < words; w += 8) {
        __mmask8 m = words - w >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (words - w)) - 1u);
        __m512i x = _mm512_maskz_loadu_epi64(m, bits + w);
        a0 = _mm512_add_epi64(a0, _mm512_popcnt_epi64(_mm512_and_si512(x, _mm512_maskz_loadu_epi64(m, planes + w))));
        a1 = _mm512_add_epi64(a1, _mm512_popcnt_epi64(_mm512_and_si512(x, _mm512_maskz_loadu_epi64(m, planes + words + w))));
        a2 = _mm512_add_epi64(a2, _mm512_popcnt_epi64(_mm512_and_si512(x, _mm512_maskz_loadu_epi64(m, planes + 2 * words + w))));
        a3 = _mm512_add_epi64(a3, _mm512_popcnt_epi64(_mm512_and_si512(x, _mm512_maskz_loadu_epi64(m, planes + 3 * words + w))));
    }
    __m512i s = _mm512_add_epi64(_mm512_add_epi64(a0, _mm512_slli_epi64(a1, 1)),
                                 _mm512_add_epi64(_mm512_slli_epi64(a2, 2), _mm512_slli_epi64(a3, 3)));
    return (uint32_t)_mm512_reduce_add_epi64(s);
}

static int32_t dot_u8_i16_avx512(const int16_t *a, const uint8_t *codes, size_t dim) {
    __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        __m512i c0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(codes + i)));
        __m512i c1 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(codes + i + 32)));
        s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(_mm512_loadu_si512(a + i), c0));
        s1 = _mm512_add_epi32(s1, _mm512_madd_epi16(_mm512_loadu_si512(a + i + 32), c1));
    }
    for (; i < dim; i += 32) {
        __mmask32 m = dim - i >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << (dim - i)) - 1u);
        __m512i c = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, codes + i));
        s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(_mm512_maskz_loadu_epi16(m, a + i), c));
    }
    return _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
}

/* Stages with h >= 16 pair whole registers; the four stages h = 1, 2, 4,
 * 8 pair lanes inside one register: t = x with lane j swapped for lane
 * j ^ h, then x + t in lanes without bit h and t - x in lanes with it. */
static void fwht_avx512(float *x, size_t n) {
    const __m512i swap1 = _mm512_setr_epi32(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    const __m512i swap2 = _mm512_setr_epi32(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    const __m512i swap4 = _mm512_setr_epi32(4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    const __m512i swap8 = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    for (size_t i = 0; i < n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i), t;
        t = _mm512_permutexvar_ps(swap1, v);
        v = _mm512_mask_sub_ps(_mm512_add_ps(v, t), (__mmask16)0xaaaa, t, v);
        t = _mm512_permutexvar_ps(swap2, v);
        v = _mm512_mask_sub_ps(_mm512_add_ps(v, t), (__mmask16)0xcccc, t, v);
        t = _mm512_permutexvar_ps(swap4, v);
        v = _mm512_mask_sub_ps(_mm512_add_ps(v, t), (__mmask16)0xf0f0, t, v);
        t = _mm512_permutexvar_ps(swap8, v);
        v = _mm512_mask_sub_ps(_mm512_add_ps(v, t), (__mmask16)0xff00, t, v);
        _mm512_storeu_ps(x + i, v);
    }
    for (size_t h = 16; h < n; h *= 2)
        for (size_t i = 0; i < n; i += 2 * h)
            for (size_t j = i; j < i + h; j += 16) {
                __m512 a = _mm512_loadu_ps(x + j), b = _mm512_loadu_ps(x + j + h);
                _mm512_storeu_ps(x + j, _mm512_add_ps(a, b));
                _mm512_storeu_ps(x + j + h, _mm512_sub_ps(a, b));
            }
    __m512 s = _mm512_set1_ps(1.0f / sqrtf((float)n));
    for (size_t i = 0; i < n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), s));
}

const vec_kernels vec_kernels_avx512 = {"avx512", l2sq_avx512, dot_avx512, dot_u8_avx512,
                                        ip_bits4_avx512, dot_u8_i16_avx512, fwht_avx512};
