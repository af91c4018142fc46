/*
 * ADD, float32, same-shape inputs (no broadcasting).
 * Mirrors TFLite reference_ops::Add (float)
 * (tensorflow/lite/kernels/internal/reference/add.h).
 *
 * Layout: input1, input2, output: flat [size] float (identical layouts).
 * Arithmetic: output = clamp(input1 + input2, act_min, act_max).
 */
static void add_f32(const add_f32_params *p, const float *input1,
                    const float *input2, float *output)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        float value = input1[i] + input2[i];
        value = value < p->act_min ? p->act_min : value;
        value = value > p->act_max ? p->act_max : value;
        output[i] = value;
    }
}
