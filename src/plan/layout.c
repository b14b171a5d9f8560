/* layout.c: cells, ranks and the model's divisibility (see layout.h). */
#include "trtconv/plan/layout.h"

#include "trtconv/core/log.h"

tc_status tc_layout_init(tc_layout *l, int64_t tp, int64_t pp, int ranks)
{
    if (tp < 1 || tp > 65536)
        return tc_fail(TC_E_USAGE, "--tp_size %lld: must be in [1, 65536]", (long long)tp);
    if (pp < 1 || pp > 65536)
        return tc_fail(TC_E_USAGE, "--pp_size %lld: must be in [1, 65536]", (long long)pp);
    if (tp * pp > 65536)
        return tc_fail(TC_E_USAGE, "--tp_size x --pp_size: more than 65536 cells");
    if (ranks < 1)
        return tc_fail(TC_E_INTERNAL, "layout: %d ranks", ranks);
    l->tp = (int)tp;
    l->pp = (int)pp;
    l->ranks = ranks;
    l->moe_tp = (int)tp;
    l->moe_ep = 1;
    return TC_OK;
}

tc_status tc_layout_set_moe(tc_layout *l, int64_t moe_tp, int64_t moe_ep)
{
    if (moe_tp == -1 && moe_ep == -1) {
        moe_tp = l->tp;
        moe_ep = 1;
    } else if (moe_tp == -1) {
        moe_tp = moe_ep > 0 ? l->tp / moe_ep : 0;
    } else if (moe_ep == -1) {
        moe_ep = moe_tp > 0 ? l->tp / moe_tp : 0;
    }
    if (moe_tp < 1 || moe_ep < 1 || moe_tp * moe_ep != l->tp)
        return tc_fail(TC_E_USAGE, "--moe_tp_size %lld x --moe_ep_size %lld must equal "
                       "--tp_size %d (each tp rank holds one expert-parallel share of one "
                       "tensor-parallel slice)", (long long)moe_tp, (long long)moe_ep, l->tp);
    l->moe_tp = (int)moe_tp;
    l->moe_ep = (int)moe_ep;
    return TC_OK;
}

size_t tc_layout_max_cells_per_rank(const tc_layout *l)
{
    return (size_t)(tc_layout_cells(l) + l->ranks - 1) / (size_t)l->ranks;
}

size_t tc_layout_rank_cells(const tc_layout *l, int rank, int *cells)
{
    size_t n = 0;
    for (int cell = rank; cell < tc_layout_cells(l); cell += l->ranks)
        cells[n++] = cell;
    return n;
}

tc_status tc_layout_check_replicas(const tc_layout *l, const char *what, const char *hint)
{
    const int cells = tc_layout_cells(l);
    if (l->ranks % cells != 0)
        return tc_fail(TC_E_USAGE, "%s runs the model in the conversion layout: the number of "
                       "ranks (%d) must be a multiple of tp_size x pp_size = %d (the rest is data "
                       "parallelism)%s", what, l->ranks, cells, hint);
    return TC_OK;
}

tc_status tc_layout_check_model(const tc_layout *l, const tc_hf_config *c)
{
    const int64_t tp = l->tp, pp = l->pp;
    if (c->num_hidden_layers % pp != 0)
        return tc_fail(TC_E_INPUT,
                       "num_hidden_layers = %lld is not divisible by pp_size = %lld "
                       "(TensorRT-LLM v0.12 would silently drop the trailing layers)",
                       (long long)c->num_hidden_layers, (long long)pp);
    if (c->num_attention_heads % tp != 0)
        return tc_fail(TC_E_INPUT, "num_attention_heads = %lld is not divisible by tp_size = %lld",
                       (long long)c->num_attention_heads, (long long)tp);
    if (c->num_key_value_heads < tp) {
        if (tp % c->num_key_value_heads != 0)
            return tc_fail(TC_E_INPUT,
                           "tp_size = %lld is not a multiple of num_key_value_heads = %lld "
                           "(KV heads are duplicated tp_size/num_key_value_heads times)",
                           (long long)tp, (long long)c->num_key_value_heads);
    } else if (c->num_key_value_heads % tp != 0) {
        return tc_fail(TC_E_INPUT, "num_key_value_heads = %lld is not divisible by tp_size = %lld",
                       (long long)c->num_key_value_heads, (long long)tp);
    }
    if (tc_hf_is_moe(c)) {
        /* v0.12 would take experts // moe_ep per rank (dropping the rest)
         * and log, not stop, on an uneven split. */
        if (c->moe_num_experts % l->moe_ep != 0)
            return tc_fail(TC_E_INPUT, "num_local_experts = %lld is not divisible by "
                           "moe_ep_size = %d", (long long)c->moe_num_experts, l->moe_ep);
        if (c->intermediate_size % l->moe_tp != 0)
            return tc_fail(TC_E_INPUT, "intermediate_size = %lld is not divisible by "
                           "moe_tp_size = %d", (long long)c->intermediate_size, l->moe_tp);
        return TC_OK;
    }
    if (c->intermediate_size % tp != 0)
        return tc_fail(TC_E_INPUT, "intermediate_size = %lld is not divisible by tp_size = %lld",
                       (long long)c->intermediate_size, (long long)tp);
    return TC_OK;
}
