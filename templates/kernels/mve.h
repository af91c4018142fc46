/*
 * adaptc optimized kernels: helpers for Helium, the M-profile Vector Extension (Cortex-M55).
 *
 * Included after common.h and dsp.h by the *_mve kernels (targets/kernels_mve.py); they build
 * for a core with MVE only (__ARM_FEATURE_MVE: -mcpu=cortex-m55), and the host build of a model
 * for such a core uses the portable kernels instead (adaptc.api.compile_program, host_files).
 * Vectors: 128 bits -- 16 int8, 8 int16 or 4 int32 lanes; predicated loads and stores touch the
 * active lanes only, so no buffer is read or written past its end.
 */
#ifndef ADAPTC_KERNELS_MVE_H
#define ADAPTC_KERNELS_MVE_H

#include <arm_mve.h>

/* conv2d_s8_mve: the conv2d_s8 geometry, with four im2col columns in the arena. */
typedef struct {
    int32_t batches;
    int32_t in_h;
    int32_t in_w;
    int32_t in_c;
    int32_t out_h;
    int32_t out_w;
    int32_t out_c;
    int32_t k_h;
    int32_t k_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t dil_h;
    int32_t dil_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
    int8_t *scratch;        /* arena: four columns of k_h * k_w * in_c bytes */
} conv2d_s8_mve_params;

/* Four lanes of TFLite's requantization, exactly as adaptc_mbqm + output_offset + clamp:
 *   x << max(shift, 0)       VSHL (wraps, as the reference's uint32 shift)
 *   SRDHM(x, mult)           VQRDMULH: (2 x mult + 2^31) >> 32, saturated -- gemmlowp's
 *                            nudge-then-truncate is this floor, INT32_MIN * INT32_MIN included
 *   RDBPOT(s, -shift)        VRSHL by -right_shift rounds ties up; subtracting 1 from negative
 *                            values first (when right_shift > 0) rounds them away from zero
 * No bound on the accumulator is needed. */
static inline int32x4_t adaptc_mve_requant(int32x4_t acc, int32x4_t mult, int32x4_t shift,
                                           int32_t output_offset, int32_t act_min, int32_t act_max)
{
    const int32x4_t zero = vdupq_n_s32(0);
    const int32x4_t right = vminq_s32(shift, zero);               /* -right_shift */
    int32x4_t v = vqrdmulhq_s32(vshlq_s32(acc, vmaxq_s32(shift, zero)), mult);
    v = vaddq_m_s32(v, v, vshrq_n_s32(v, 31), vcmpltq_s32(right, zero));
    v = vaddq_n_s32(vrshlq_s32(v, right), output_offset);
    return vminq_s32(vmaxq_s32(v, vdupq_n_s32(act_min)), vdupq_n_s32(act_max));
}

#endif /* ADAPTC_KERNELS_MVE_H */
