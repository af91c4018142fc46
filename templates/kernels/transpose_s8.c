/*
 * TRANSPOSE, int8_t (4-D, any permutation): the layout change TFLite's TRANSPOSE and
 * Relax's permute_dims perform (reference_ops::Transpose).
 *
 * Layout: input  [in_dims[0]][in_dims[1]][in_dims[2]][in_dims[3]]
 *         output [in_dims[perm[0]]]...[in_dims[perm[3]]]
 * Arithmetic: none; output[o0][o1][o2][o3] = input at the coordinate whose
 *   axis perm[i] equals o_i.
 */
static void transpose_s8(const transpose_params *p, const int8_t *input, int8_t *output)
{
    int32_t in_stride[4], stride[4], out_dims[4], i;
    int32_t o0, o1, o2, o3;
    in_stride[3] = 1;
    for (i = 2; i >= 0; --i) {
        in_stride[i] = in_stride[i + 1] * p->in_dims[i + 1];
    }
    for (i = 0; i < 4; ++i) {
        out_dims[i] = p->in_dims[p->perm[i]];
        stride[i] = in_stride[p->perm[i]];
    }
    for (o0 = 0; o0 < out_dims[0]; ++o0) {
        for (o1 = 0; o1 < out_dims[1]; ++o1) {
            for (o2 = 0; o2 < out_dims[2]; ++o2) {
                const int8_t *in_ptr = input + o0 * stride[0] + o1 * stride[1] + o2 * stride[2];
                for (o3 = 0; o3 < out_dims[3]; ++o3) {
                    *output++ = in_ptr[o3 * stride[3]];
                }
            }
        }
    }
}
