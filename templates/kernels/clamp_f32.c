/*
 * RELU, RELU6, RELU_N1_TO_1, clip (float32).
 * Mirrors TFLite reference_ops::Relu / Relu6 / ReluX (float)
 * (tensorflow/lite/kernels/internal/reference/activations.h).
 *
 * Layout: input, output: flat [size] float.
 * Arithmetic: output = min(max(input, act_min), act_max)
 *   (relu: act_min 0, act_max FLT_MAX; relu6: 0, 6; relu_n1_to_1: -1, 1).
 */
static void clamp_f32(const clamp_f32_params *p, const float *input,
                      float *output)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        float value = input[i];
        value = value < p->act_min ? p->act_min : value;
        value = value > p->act_max ? p->act_max : value;
        output[i] = value;
    }
}
