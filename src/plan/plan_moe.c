/* plan_moe.c: the MLP of a mixture-of-experts layer (Mixtral), as
 * TensorRT-LLM v0.12 writes it (docs/moe.md; tensorrt_llm/models/llama/
 * convert.py load_weights_from_hf_safetensors and load_weights_from_hf_model,
 * which agree byte for byte):
 *   mlp.router.weight  F32 [E, H]: block_sparse_moe.gate.weight, whole, cast
 *                      to float32 from the stored dtype ("Router should never
 *                      be quantized");
 *   mlp.fc.weight      [E_l, 2 I_l, H]: for each local expert, the moe_tp
 *                      slice of w3 (up) then of w1 (gate): torch.concat([w3,
 *                      w1], dim=-2) over the stacked experts;
 *   mlp.proj.weight    [E_l, H, I_l]: w2's columns of the slice.
 * E_l = E / moe_ep experts, those of moe_ep rank q being [q E_l, (q+1) E_l)
 * (Mapping.ep_experts); I_l = I / moe_tp rows from moe_tp rank t: t I_l. A
 * rank reads only its experts' slices. fc and proj are linears whose
 * expert_rows tell weight-only quantization to treat each expert as its
 * own matrix (the batched quantization of upstream). */
#include "plan_internal.h"

#include <stdio.h>
#include "trtconv/core/log.h"

tc_status tcp_plan_moe(builder *b, const tc_hf_config *c, tc_dtype dt, int64_t g, int64_t local,
                       const tc_layout *lay, int cell)
{
    const int64_t H = c->hidden_size, I = c->intermediate_size, E = c->moe_num_experts;
    const int moe_ep = lay->moe_ep > 0 ? lay->moe_ep : 1;
    const int moe_tp = lay->moe_tp > 0 ? lay->moe_tp : lay->tp;
    const int64_t tp_rank = tc_layout_tp_rank(lay, cell);
    const int64_t ep_rank = tp_rank % moe_ep, mtp_rank = tp_rank / moe_ep;
    const int64_t E_l = E / moe_ep, e0 = ep_rank * E_l, I_l = I / moe_tp, i0 = mtp_rank * I_l;
    char in[256], out[160];
    tc_hf_tensor t, w1, w3;

    snprintf(in, sizeof in, "model.layers.%lld.block_sparse_moe.gate.weight", (long long)g);
    TC_TRY(tcp_need(b, in, 2, E, H, &t));
    snprintf(out, sizeof out, "transformer.layers.%lld.mlp.router.weight", (long long)local);
    TC_TRY(tcp_begin_tensor(b, out, TC_DT_F32, 2, E, H));
    TC_TRY(tcp_add_piece(b, &t, 0, 0, E));

    snprintf(out, sizeof out, "transformer.layers.%lld.mlp.fc.weight", (long long)local);
    TC_TRY(tcp_begin_tensor(b, out, dt, 2, E_l * 2 * I_l, H));
    tc_plan_tensor *fc = b->cur;
    fc->ndim = 3;
    fc->shape[0] = E_l;
    fc->shape[1] = 2 * I_l;
    fc->shape[2] = H;
    fc->expert_rows = 2 * I_l;
    fc->expert0 = e0;
    tcp_mark_linear(b);
    for (int64_t e = e0; e < e0 + E_l; e++) {
        snprintf(in, sizeof in, "model.layers.%lld.block_sparse_moe.experts.%lld.w3.weight",
                 (long long)g, (long long)e);
        TC_TRY(tcp_need(b, in, 2, I, H, &w3));
        snprintf(in, sizeof in, "model.layers.%lld.block_sparse_moe.experts.%lld.w1.weight",
                 (long long)g, (long long)e);
        TC_TRY(tcp_need(b, in, 2, I, H, &w1));
        TC_TRY(tcp_add_piece(b, &w3, i0, 0, I_l));
        TC_TRY(tcp_add_piece(b, &w1, i0, 0, I_l));
    }

    snprintf(out, sizeof out, "transformer.layers.%lld.mlp.proj.weight", (long long)local);
    TC_TRY(tcp_begin_tensor(b, out, dt, 2, E_l * H, I_l));
    tc_plan_tensor *proj = b->cur;
    proj->ndim = 3;
    proj->shape[0] = E_l;
    proj->shape[1] = H;
    proj->shape[2] = I_l;
    proj->expert_rows = H;
    proj->expert0 = e0;
    tcp_mark_linear(b);
    for (int64_t e = e0; e < e0 + E_l; e++) {
        snprintf(in, sizeof in, "model.layers.%lld.block_sparse_moe.experts.%lld.w2.weight",
                 (long long)g, (long long)e);
        TC_TRY(tcp_need(b, in, 2, H, I, &t));
        TC_TRY(tcp_add_piece(b, &t, 0, i0, H));
    }
    return TC_OK;
}
