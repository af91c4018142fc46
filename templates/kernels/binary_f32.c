/*
 * Element-wise binary operators, float32, with broadcasting. Mirrors TFLite's reference_ops
 * BroadcastAdd/Sub/Div6DSlow, MaximumMinimumBroadcastSlow, SquaredDifference (float) and ONNX
 * Add, Sub, Div, Max, Min.
 *
 * Layout: as mul_f32.c (four loops over the output, per input a stride per loop, 0: broadcast).
 * Arithmetic, by op: 0 a + b, 1 a - b, 2 b - a, 3 a / b, 4 b / a, 5 max(a, b), 6 min(a, b),
 *   7 (a - b) * (a - b) (a = input1, b = input2; the reversed forms put a constant first
 *   operand in input2); out = clamp(value, act_min, act_max).
 */
typedef struct {
    int32_t dims[4];
    int32_t strides1[4];
    int32_t strides2[4];
    int32_t op;
    float act_min;
    float act_max;
} binary_f32_params;

static float binary_f32_apply(int32_t op, float a, float b)
{
    float d;
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return b - a;
    case 3: return a / b;
    case 4: return b / a;
    case 5: return a > b ? a : b;
    case 6: return a < b ? a : b;
    default:
        d = a - b;
        return d * d;
    }
}

static void binary_f32(const binary_f32_params *p, const float *input1, const float *input2, float *output)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const float *a = input1 + i0 * p->strides1[0] + i1 * p->strides1[1] + i2 * p->strides1[2];
                const float *b = input2 + i0 * p->strides2[0] + i1 * p->strides2[1] + i2 * p->strides2[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    float value = binary_f32_apply(p->op, a[i3 * p->strides1[3]], b[i3 * p->strides2[3]]);
                    value = value < p->act_min ? p->act_min : value;
                    value = value > p->act_max ? p->act_max : value;
                    *output++ = value;
                }
            }
        }
    }
}
