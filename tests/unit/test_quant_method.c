/* test_quant_method.c: the quantization seam (quant/method.h): which table
 * entry each combination of flags selects and what it says about
 * config.json, calibration, the rotary buffers and its flow; the weight-only
 * plan rewrite (quantized weight followed by its scale, indices, bytes,
 * layout preconditions). */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "trtconv/core/log.h"
#include "trtconv/quant/fp8.h"
#include "trtconv/quant/method.h"

static tc_quant_settings select_ok(tc_quant_request r)
{
    tc_quant_settings q;
    ck_assert_int_eq(tc_quant_select(&r, &q), TC_OK);
    ck_assert_ptr_nonnull(q.weights);
    ck_assert_ptr_nonnull(q.kv);
    ck_assert_int_eq(q.weights->kind, TC_QUANT_WEIGHTS);
    ck_assert_int_eq(q.kv->kind, TC_QUANT_KV);
    return q;
}

START_TEST(no_flags_should_select_none_with_rope_buffers_and_no_calibration)
{
    tc_quant_settings q = select_ok((tc_quant_request){ .smoothquant = NAN });
    ck_assert_ptr_null(q.weights->config_algo);
    ck_assert_ptr_null(q.kv->config_algo);
    ck_assert_uint_eq(tc_quant_calib_needs(&q), 0);
    ck_assert(tc_quant_rope_buffers(&q));
    ck_assert_ptr_null(tc_quant_calibrated(&q));
    ck_assert_ptr_null(q.weights->plan);
}
END_TEST

START_TEST(smoothquant_flags_should_select_upstreams_four_quant_algos)
{
    static const struct { bool pc, pt; const char *algo; } cases[] = {
        { false, false, "W8A8_SQ_PER_TENSOR_PLUGIN" },
        { false, true, "W8A8_SQ_PER_TENSOR_PER_TOKEN_PLUGIN" },
        { true, false, "W8A8_SQ_PER_CHANNEL_PER_TENSOR_PLUGIN" },
        { true, true, "W8A8_SQ_PER_CHANNEL_PER_TOKEN_PLUGIN" },
    };
    for (size_t i = 0; i < 4; i++) {
        tc_quant_settings q = select_ok((tc_quant_request){
            .smoothquant = 0.5, .per_channel = cases[i].pc, .per_token = cases[i].pt });
        ck_assert_str_eq(q.weights->config_algo, cases[i].algo);
        ck_assert(q.weights->smoothquant);
        ck_assert(q.weights->per_channel == cases[i].pc && q.weights->per_token == cases[i].pt);
        ck_assert(fabs(q.alpha - 0.5) == 0.0);
        ck_assert_uint_eq(tc_quant_calib_needs(&q), TC_CALIB_LINEAR_IO);
        ck_assert(q.weights->calib_in_f16);
        ck_assert(!tc_quant_rope_buffers(&q));
        ck_assert_ptr_eq(tc_quant_calibrated(&q), &tc_sq_calibrated_ops);
    }
    /* convert_checkpoint.py tests `args.smoothquant` for truth: 0 is off. */
    tc_quant_settings off = select_ok((tc_quant_request){ .smoothquant = 0.0, .per_channel = true });
    ck_assert_ptr_null(off.weights->config_algo);
}
END_TEST

START_TEST(weight_only_should_be_streamed_with_a_plan_rewrite_and_rope_buffers)
{
    tc_quant_settings q8 = select_ok((tc_quant_request){ .woq_bits = 8, .smoothquant = NAN });
    tc_quant_settings q4 = select_ok((tc_quant_request){ .woq_bits = 4, .smoothquant = NAN });
    tc_quant_settings np = select_ok((tc_quant_request){ .woq_bits = 8, .woq_no_plugin = true,
                                                         .smoothquant = NAN });
    ck_assert_str_eq(q8.weights->config_algo, "W8A16");
    ck_assert_str_eq(q4.weights->config_algo, "W4A16");
    ck_assert_str_eq(np.weights->config_algo, "W8A16");
    ck_assert(q8.weights->gpu_quantize && q4.weights->gpu_quantize && !np.weights->gpu_quantize);
    ck_assert(np.weights->woq_no_plugin && !q8.weights->woq_no_plugin);
    ck_assert_ptr_eq(q8.weights->plan, tc_woq_plan);
    ck_assert_ptr_null(tc_quant_calibrated(&q8));
    ck_assert(tc_quant_rope_buffers(&q8));
    tc_clear_first_error();
    tc_quant_settings bad;
    tc_quant_request r4np = { .woq_bits = 4, .woq_no_plugin = true, .smoothquant = NAN };
    ck_assert_int_eq(tc_quant_select(&r4np, &bad), TC_E_USAGE);
    ck_assert(strstr(tc_first_error(), "W4A16") != NULL);
}
END_TEST

START_TEST(int8_kv_should_be_calibrated_alone_or_with_weight_only_and_drop_rope_buffers)
{
    tc_quant_settings kv = select_ok((tc_quant_request){ .int8_kv_cache = true, .smoothquant = NAN });
    ck_assert_ptr_null(kv.weights->config_algo);
    ck_assert_str_eq(kv.kv->config_algo, "INT8");
    ck_assert_uint_eq(tc_quant_calib_needs(&kv), TC_CALIB_KV);
    ck_assert(!kv.weights->calib_in_f16); /* the model's own dtype (§4.10) */
    /* The KV passes of SmoothQuant's flow, writing while calibrating. */
    ck_assert_ptr_eq(tc_quant_calibrated(&kv), &tc_kv_calibrated_ops);
    ck_assert_ptr_nonnull(tc_kv_calibrated_ops.refresh_layer);
    ck_assert_ptr_null(tc_sq_calibrated_ops.refresh_layer);
    ck_assert(!tc_quant_rope_buffers(&kv));
    tc_quant_settings wkv = select_ok((tc_quant_request){ .woq_bits = 4, .int8_kv_cache = true,
                                                          .smoothquant = NAN });
    ck_assert_str_eq(wkv.weights->config_algo, "W4A16");
    ck_assert_ptr_eq(tc_quant_calibrated(&wkv), &tc_kv_calibrated_ops);
    ck_assert(!tc_quant_rope_buffers(&wkv));
}
END_TEST

START_TEST(every_entry_should_describe_itself)
{
    size_t n = 0;
    const tc_quant_method *m = tc_quant_methods(&n);
    ck_assert_uint_ge(n, 9);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(m[i].name && m[i].per_linear && m[i].kernels, "entry %zu", i);
        /* A calibrated method says what it needs; a streamed one needs nothing. */
        ck_assert_msg(!m[i].calibrated == !m[i].calib, "%s", m[i].name);
    }
}
END_TEST

/* A cell plan of norm [32], linear [N, K=64], norm [32] (no pieces needed). */
static tc_plan *small_plan(int64_t n_rows)
{
    tc_plan *p = calloc(1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    p->n_tensors = 3;
    p->tensors = calloc(3, sizeof *p->tensors);
    ck_assert_ptr_nonnull(p->tensors);
    static const char *const names[3] = { "transformer.layers.0.input_layernorm.weight",
                                          "transformer.layers.0.mlp.fc.weight",
                                          "transformer.layers.0.post_layernorm.weight" };
    for (int i = 0; i < 3; i++) {
        tc_plan_tensor *t = &p->tensors[i];
        strcpy(t->name, names[i]);
        t->dtype = t->slice_dtype = TC_DT_F16;
        t->scale_index = t->scale_of = -1;
        t->ndim = i == 1 ? 2 : 1;
        t->rows = t->shape[0] = i == 1 ? n_rows : 32;
        t->cols = i == 1 ? 64 : 1;
        t->shape[1] = i == 1 ? 64 : 0;
        t->linear = i == 1;
    }
    tc_plan_recount(p);
    return p;
}

START_TEST(woq_plan_should_follow_each_linear_with_its_per_channel_scale)
{
    tc_quant_request r = { .woq_bits = 4, .smoothquant = NAN };
    tc_quant_settings q;
    ck_assert_int_eq(tc_quant_select(&r, &q), TC_OK);
    q.target_sm = 90;
    tc_plan *p = small_plan(64);
    ck_assert_int_eq(tc_woq_plan(&q, p), TC_OK);
    ck_assert_uint_eq(p->n_tensors, 4);
    const tc_plan_tensor *w = &p->tensors[1], *s = &p->tensors[2];
    ck_assert_int_eq(w->dtype, TC_DT_I8);
    ck_assert_int_eq(w->shape[0], 64);       /* [K, N * 4 / 8] */
    ck_assert_int_eq(w->shape[1], 32);
    ck_assert_int_eq(w->woq_bits, 4);
    ck_assert_int_eq(w->scale_index, 2);
    ck_assert_str_eq(s->name, "transformer.layers.0.mlp.fc.per_channel_scale");
    ck_assert_int_eq(s->dtype, TC_DT_F16);
    ck_assert_int_eq(s->ndim, 1);
    ck_assert_int_eq(s->shape[0], 64);
    ck_assert_int_eq(s->scale_of, 1);
    ck_assert_str_eq(p->tensors[3].name, "transformer.layers.0.post_layernorm.weight");
    ck_assert_int_eq(p->target_sm, 90);
    ck_assert_uint_eq(p->write_bytes, 2 * 32 + 64 * 32 + 2 * 64 + 2 * 32);
    tc_plan_free(p);
}
END_TEST

START_TEST(woq_plan_should_check_the_layout_before_anything_is_written)
{
    tc_quant_request r = { .woq_bits = 8, .smoothquant = NAN };
    tc_quant_settings q;
    ck_assert_int_eq(tc_quant_select(&r, &q), TC_OK);
    q.target_sm = 80;
    tc_plan *p = small_plan(48); /* N = 48: not a multiple of 64 for sm80 */
    tc_clear_first_error();
    ck_assert_int_eq(tc_woq_plan(&q, p), TC_E_INPUT);
    ck_assert(strstr(tc_first_error(), "mlp.fc.weight") != NULL);
    ck_assert_uint_eq(p->n_tensors, 3); /* unchanged */
    tc_plan_free(p);
    /* Without the plugin: transposed, unquantized, any N. */
    r.woq_no_plugin = true;
    ck_assert_int_eq(tc_quant_select(&r, &q), TC_OK);
    p = small_plan(48);
    ck_assert_int_eq(tc_woq_plan(&q, p), TC_OK);
    ck_assert(p->tensors[1].woq_transposed_only);
    ck_assert_int_eq(p->tensors[1].dtype, TC_DT_F16);
    ck_assert_int_eq(p->tensors[1].shape[0], 64);
    ck_assert_int_eq(p->tensors[1].shape[1], 48);
    ck_assert_int_eq(p->target_sm, 0);
    tc_plan_free(p);
}
END_TEST


START_TEST(fp8_flags_should_select_their_entries)
{
    tc_quant_settings kv = select_ok((tc_quant_request){ .fp8_kv_cache = true,
                                                         .int8_kv_cache = true,
                                                         .smoothquant = NAN });
    ck_assert_str_eq(kv.kv->config_algo, "FP8");   /* FP8 wins, as upstream */
    ck_assert_uint_eq(tc_quant_calib_needs(&kv), 0);
    ck_assert(tc_quant_rope_buffers(&kv));
    ck_assert_ptr_eq(kv.kv->plan, tc_fp8_kv_plan);
    tc_quant_settings kvc = select_ok((tc_quant_request){ .fp8_kv_cache = true,
                                                          .fp8_kv_calibrate = true,
                                                          .smoothquant = NAN });
    ck_assert_str_eq(kvc.kv->config_algo, "FP8");
    ck_assert_uint_eq(tc_quant_calib_needs(&kvc), TC_CALIB_KV);
    ck_assert_ptr_eq(tc_quant_calibrated(&kvc), &tc_kv_calibrated_ops);
    ck_assert(tc_quant_rope_buffers(&kvc));
    tc_quant_settings bad;
    tc_quant_request nokv = { .fp8_kv_calibrate = true, .smoothquant = NAN };
    ck_assert_int_eq(tc_quant_select(&nokv, &bad), TC_E_USAGE);
    tc_quant_settings rw = select_ok((tc_quant_request){ .fp8_rowwise = true, .smoothquant = NAN });
    ck_assert_str_eq(rw.weights->config_algo, "FP8_PER_CHANNEL_PER_TOKEN");
    ck_assert(rw.has_clamp_val);
    ck_assert(rw.clamp_val[0] == -1200.0 && rw.clamp_val[1] == 1200.0);
    ck_assert(tc_quant_rope_buffers(&rw));
    ck_assert_ptr_null(tc_quant_calibrated(&rw));
}
END_TEST

START_TEST(an_fbgemm_fp8_model_should_select_rowwise_with_its_activation_bound)
{
    tc_hf_config cfg;
    memset(&cfg, 0, sizeof cfg);
    tc_quant_settings q = select_ok((tc_quant_request){ .smoothquant = NAN });
    ck_assert_int_eq(tc_quant_from_model(&q, &cfg), TC_OK);   /* a plain model: no-op */
    ck_assert_ptr_null(q.weights->config_algo);
    cfg.fbgemm_fp8 = true;
    cfg.activation_scale_ub = 640.0;
    ck_assert_int_eq(tc_quant_from_model(&q, &cfg), TC_OK);
    ck_assert_str_eq(q.weights->config_algo, "FP8_PER_CHANNEL_PER_TOKEN");
    ck_assert(q.has_clamp_val && q.clamp_val[0] == -640.0 && q.clamp_val[1] == 640.0);
    tc_quant_settings w = select_ok((tc_quant_request){ .woq_bits = 8, .smoothquant = NAN });
    tc_clear_first_error();
    ck_assert_int_eq(tc_quant_from_model(&w, &cfg), TC_E_USAGE);
    ck_assert(strstr(tc_first_error(), "fbgemm_fp8") != NULL);
}
END_TEST

START_TEST(fp8_rowwise_should_clamp_scale_and_round_each_row)
{
    /* Row 0: a value past the clamp, so amax = 1200 and it maps to 448.
     * Row 1: zeros, scale floored. Row 2: tiny values at the floor. */
    const float w[3][4] = { { 1500.0f, -3.0f, 0.5f, -1200.0f },
                            { 0.0f, 0.0f, -0.0f, 0.0f },
                            { 1e-6f, -1e-6f, 2e-6f, 0.0f } };
    const float clamp[2] = { -1200.0f, 1200.0f };
    uint8_t q[12];
    float s[3];
    ck_assert_int_eq(tc_fp8_rowwise_quantize_rows(w, TC_DT_F32, 3, 4, clamp, q, s), TC_OK);
    const float floor_s = (float)(1.0 / (448.0 * 512.0));
    ck_assert(s[0] == 1200.0f * (1.0f / 448.0f));
    ck_assert(s[1] == floor_s && s[2] == floor_s);
    ck_assert_int_eq(q[0], 0x7E);                      /* 1200 / s = 448 */
    ck_assert_int_eq(q[3], 0xFE);                      /* -448 */
    ck_assert_int_eq(q[1], tc_f32_to_e4m3fn(-3.0f / s[0]));
    ck_assert_int_eq(q[2], tc_f32_to_e4m3fn(0.5f / s[0]));
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(q[4 + k] & 0x7F, 0);
    ck_assert_int_eq(q[6], 0x80);                      /* -0 keeps its sign */
    ck_assert_int_eq(q[8], tc_f32_to_e4m3fn(1e-6f / floor_s));
    ck_assert_int_eq(q[10], tc_f32_to_e4m3fn(2e-6f / floor_s));
    /* The same rows from float16 give the float16-rounded values' bytes. */
    uint16_t h[12];
    tc_convert(h, TC_DT_F16, w, TC_DT_F32, 12);
    uint8_t qh[12];
    float sh[3];
    ck_assert_int_eq(tc_fp8_rowwise_quantize_rows(h, TC_DT_F16, 3, 4, clamp, qh, sh), TC_OK);
    ck_assert(sh[0] == s[0]);
    ck_assert_int_eq(qh[0], 0x7E);
}
END_TEST

START_TEST(fp8_per_tensor_should_be_calibrated_in_the_output_dtype_without_rope_buffers)
{
    tc_quant_settings q = select_ok((tc_quant_request){ .fp8 = true, .smoothquant = NAN });
    ck_assert_str_eq(q.weights->config_algo, "FP8");
    ck_assert_ptr_null(q.kv->config_algo);
    ck_assert_uint_eq(tc_quant_calib_needs(&q), TC_CALIB_LINEAR_IO);
    ck_assert(q.weights->calib_in_out_dtype);
    ck_assert_ptr_eq(tc_quant_calibrated(&q), &tc_fp8_tensor_calibrated_ops);
    ck_assert(!tc_quant_rope_buffers(&q));   /* ModelOpt's export writes none */
    tc_quant_settings kv = select_ok((tc_quant_request){ .fp8 = true, .fp8_kv_cache = true,
                                                         .fp8_kv_calibrate = true,
                                                         .smoothquant = NAN });
    ck_assert_str_eq(kv.kv->config_algo, "FP8");
    ck_assert_uint_eq(tc_quant_calib_needs(&kv), TC_CALIB_LINEAR_IO | TC_CALIB_KV);
    ck_assert_ptr_eq(tc_quant_calibrated(&kv), &tc_fp8_tensor_calibrated_ops);
    tc_quant_settings bad;
    tc_quant_request i8 = { .fp8 = true, .int8_kv_cache = true, .smoothquant = NAN };
    tc_clear_first_error();
    ck_assert_int_eq(tc_quant_select(&i8, &bad), TC_E_USAGE);
    ck_assert(strstr(tc_first_error(), "--int8_kv_cache") != NULL);
}
END_TEST

START_TEST(fp8_per_tensor_scale_and_rounding_should_follow_modelopt)
{
    /* amax 0 is 448 (scale 448 * fl(1/448), not necessarily 1), others
     * amax * fl(1/448) in float32; tiny ones are clamped to FLT_MIN. */
    const float r = 1.0f / 448.0f;
    volatile float a448 = 448.0f, a3 = 3.0f;
    ck_assert(tc_fp8_tensor_scale(0.0f) == a448 * r);
    ck_assert(tc_fp8_tensor_scale(3.0f) == a3 * r);
    ck_assert(tc_fp8_tensor_scale(1e-45f) == FLT_MIN * r);
    const float s = tc_fp8_tensor_scale(3.0f);
    const float w[6] = { 3.0f, -3.0f, 1.5f, 0.0f, -0.0f, NAN };
    uint8_t q[6];
    ck_assert_int_eq(tc_fp8_tensor_quantize_rows(w, TC_DT_F32, 2, 3, s, q), TC_OK);
    ck_assert_int_eq(q[0], tc_f32_to_e4m3fn(3.0f / s));     /* 448 up to one rounding */
    ck_assert_int_eq(q[0] & 0x7F, 0x7E);
    ck_assert_int_eq(q[1], q[0] | 0x80);
    ck_assert_int_eq(q[2], tc_f32_to_e4m3fn(1.5f / s));
    ck_assert_int_eq(q[3], 0x00);
    ck_assert_int_eq(q[4], 0x80);                           /* -0 keeps its sign */
    ck_assert_int_eq(q[5], 0x7F);                           /* NaN: canonical */
    /* No clamp: a quotient past E4M3's range is NaN, as torch's cast. */
    const float big = 3.0f * 1.2f;
    ck_assert_int_eq(tc_fp8_tensor_quantize_rows(&big, TC_DT_F32, 1, 1, s, q), TC_OK);
    ck_assert_int_eq(q[0], 0x7F);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant_method");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, no_flags_should_select_none_with_rope_buffers_and_no_calibration);
    tcase_add_test(tc, smoothquant_flags_should_select_upstreams_four_quant_algos);
    tcase_add_test(tc, weight_only_should_be_streamed_with_a_plan_rewrite_and_rope_buffers);
    tcase_add_test(tc, int8_kv_should_be_calibrated_alone_or_with_weight_only_and_drop_rope_buffers);
    tcase_add_test(tc, every_entry_should_describe_itself);
    tcase_add_test(tc, woq_plan_should_follow_each_linear_with_its_per_channel_scale);
    tcase_add_test(tc, woq_plan_should_check_the_layout_before_anything_is_written);
    tcase_add_test(tc, fp8_flags_should_select_their_entries);
    tcase_add_test(tc, fp8_rowwise_should_clamp_scale_and_round_each_row);
    tcase_add_test(tc, an_fbgemm_fp8_model_should_select_rowwise_with_its_activation_bound);
    tcase_add_test(tc, fp8_per_tensor_should_be_calibrated_in_the_output_dtype_without_rope_buffers);
    tcase_add_test(tc, fp8_per_tensor_scale_and_rounding_should_follow_modelopt);
    suite_add_tcase(s, tc);
    return tc_check_run(s);
}
