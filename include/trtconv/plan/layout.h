/* layout.h: how a job's (tp, pp) cells map onto MPI ranks, in one place.
 *
 * A cell is one output rank file: cell = pp_rank * tp + tp_rank
 * (trtllm-checkpoint.md §2). Two assignments of cells to ranks exist:
 *   conversion   any number N of ranks; rank r writes cells r, r+N, r+2N, ...
 *                (a rank may hold none or several);
 *   calibration  the model runs forward in the conversion layout, so N must be
 *                a multiple of cells: rank r holds cell r % cells as data-
 *                parallel replica r / cells (dp = N / cells replicas).
 * The model's divisibility rules for a (tp, pp) live here too, so every
 * stage (plan, convert, fwd, quant, manifest, the run's summary) asks the
 * same object. Plain values: no ownership. */
#ifndef TRTCONV_LAYOUT_H
#define TRTCONV_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/status.h"
#include "trtconv/model/hf_model.h"

typedef struct tc_layout {
    int tp, pp;      /* tensor- and pipeline-parallel sizes, >= 1 */
    int ranks;       /* MPI ranks of the job (>= 1) */
    /* Mixture of experts (TensorRT-LLM v0.12 mapping.py): the tp ranks of
     * a stage split each expert moe_tp ways and the experts moe_ep ways,
     * moe_tp * moe_ep = tp; tp rank r is moe_tp rank r / moe_ep and moe_ep
     * rank r % moe_ep. tc_layout_init sets moe_tp = tp, moe_ep = 1. */
    int moe_tp, moe_ep;
} tc_layout;

/* tp, pp, ranks >= 1 and tp * pp <= 65536; messages name the flag. */
tc_status tc_layout_init(tc_layout *l, int64_t tp, int64_t pp, int ranks);
/* --moe_tp_size / --moe_ep_size as convert_checkpoint.py main() resolves
 * them: both -1 is tp-only, one -1 is derived from the other; the product
 * must be tp_size (TC_E_USAGE naming the flags). */
tc_status tc_layout_set_moe(tc_layout *l, int64_t moe_tp, int64_t moe_ep);

static inline int tc_layout_cells(const tc_layout *l) { return l->tp * l->pp; }
static inline int tc_layout_tp_rank(const tc_layout *l, int cell) { return cell % l->tp; }
static inline int tc_layout_pp_rank(const tc_layout *l, int cell) { return cell / l->tp; }
static inline int tc_layout_cell(const tc_layout *l, int tp_rank, int pp_rank)
{
    return pp_rank * l->tp + tp_rank;
}
static inline int tc_layout_moe_tp_rank(const tc_layout *l, int cell)
{
    return tc_layout_tp_rank(l, cell) / l->moe_ep;
}
static inline int tc_layout_moe_ep_rank(const tc_layout *l, int cell)
{
    return tc_layout_tp_rank(l, cell) % l->moe_ep;
}

/* Conversion: the cells rank `rank` writes (r, r+N, ...), ascending, into
 * cells[0..return value); cells must hold tc_layout_max_cells_per_rank. */
size_t tc_layout_max_cells_per_rank(const tc_layout *l);
size_t tc_layout_rank_cells(const tc_layout *l, int rank, int *cells);

/* Calibration: TC_OK when ranks is a multiple of the cells (the rest is
 * data parallelism), else TC_E_USAGE naming `what`, the numbers and `hint`
 * ("" for none). */
tc_status tc_layout_check_replicas(const tc_layout *l, const char *what, const char *hint);
static inline int tc_layout_dp(const tc_layout *l) { return l->ranks / tc_layout_cells(l); }
static inline int tc_layout_replica_cell(const tc_layout *l, int rank)
{
    return rank % tc_layout_cells(l);
}
static inline int tc_layout_replica(const tc_layout *l, int rank)
{
    return rank / tc_layout_cells(l);
}

/* The model's divisibility by tp and pp: layers by pp, heads, KV heads
 * (or tp by KV heads when they are duplicated) and intermediate size by tp;
 * for a MoE model the experts by moe_ep and the intermediate size by
 * moe_tp instead.
 * Messages name the config value and the rule. */
tc_status tc_layout_check_model(const tc_layout *l, const tc_hf_config *cfg);

/* Rows of the vocabulary each tp rank holds after padding: ceil(V/tp). */
static inline int64_t tc_layout_vocab_rows(const tc_layout *l, int64_t vocab)
{
    return (vocab + l->tp - 1) / l->tp;
}

#endif
