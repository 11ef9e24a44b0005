/*
 * dist_simd.h: the SIMD kernel sets of dist_avx2.c and dist_avx512.c, for
 * the dispatcher in dist.c only. Each file is compiled with its own
 * instruction-set flags (CMakeLists.txt), so nothing here may be called
 * before dist.c has checked the CPU (vec_kernels_get).
 * Layer: vec.
 */
#ifndef TDB_VEC_DIST_SIMD_H
#define TDB_VEC_DIST_SIMD_H

#include "vec/vec.h"

/* The scalar transform, shared by the AVX2 set (no gain from 8 lanes
 * measured worth a second copy). */
void vec_fwht_scalar(float *x, size_t n);

#if defined(__x86_64__) || defined(__i386__)
#define VEC_HAVE_X86 1
extern const vec_kernels vec_kernels_avx2;   /* AVX2 + FMA */
extern const vec_kernels vec_kernels_avx512; /* AVX-512 F/BW/DQ/VL/VPOPCNTDQ + FMA */
#endif

#endif
