/* job.h: the state of one trtconv run on one rank, shared by the files of
 * src/app/ (the phases of run.c). Not used below app/.
 *
 *   settings.c     setup: output directory, model, resolved settings, GPUs
 *   fingerprint.c  what determines the run's bytes (manifest.h)
 *   cells.c        this rank's cells: plans, --resume, disk space, commit
 *   progress.c     the conversion phase and its progress protocol
 *   calibrated.c   statistics (calibration or --calib_stats) and the
 *                  calibrated methods' passes (quant/method.h)
 *   signals.c      --timeout and SIGTERM
 *   summary.c      peak memory and the written files
 *
 * Ownership: a tc_job owns model and the lock (run.c releases them); comm
 * and the options are borrowed from run.c's frame and main. A tc_cell_set
 * owns its plans and open outputs until tc_cells_free. */
#ifndef TRTCONV_APP_JOB_H
#define TRTCONV_APP_JOB_H

#include <stdbool.h>
#include <stdint.h>
#include "trtconv/cli/options.h"
#include "trtconv/convert/convert.h"
#include "trtconv/core/dtype.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/mpi/comm.h"
#include "trtconv/mpi/gpu.h"
#include "trtconv/output/format.h"
#include "trtconv/output/hf_ckpt.h"
#include "trtconv/output/manifest.h"
#include "trtconv/output/outdir.h"
#include "trtconv/plan/layout.h"
#include "trtconv/plan/plan.h"
#include "trtconv/quant/method.h"

/* Everything the run decided from the options, the model and the GPUs;
 * tc_opts stays as parsed. */
typedef struct tc_settings {
    tc_layout layout;              /* ranks = the MPI world */
    tc_float_type dtype;           /* --dtype resolved (auto: the model's) */
    tc_dtype out_dtype;
    tc_embedding emb;              /* emb.share: the request */
    bool share_embedding;          /* the request, and the model ties lm_head */
    tc_quant_settings quant;       /* methods, alpha, target SM */
    const tc_gpu_info *quant_gpu;  /* streamed quantization's GPU, or NULL */
    const tc_gpu_info *calib_gpu;  /* calibration and calibrated methods' GPU, or NULL */
    const tc_output_format *format;
    /* --output_format hf: its quantization and output (owned; NULL for the
     * TensorRT-LLM checkpoint, whose quantization is `quant`). */
    tc_hf_quant hfq;
    tc_hf_output *hf;
} tc_settings;

typedef struct tc_job {
    const tc_comm *comm;
    const tc_opts *o;
    tc_hf_model *model;            /* NULL without --model_dir/--meta_ckpt_dir */
    tc_gpu_info gpu;               /* this rank's GPU (device -1: none) */
    tc_settings s;
    tc_outdir_lock *lock;          /* rank 0 */
    char lock_token[TC_LOCK_TOKEN_LEN + 1];  /* every rank */
    double t0;
} tc_job;

/* This rank's cells of a run: their plans, output files, and what --resume
 * keeps. outs[i].fd is -1 unless cell i is being written. */
typedef struct tc_cell_set {
    size_t n;
    int *ids;
    tc_plan **plans;
    tc_cell_output *outs;
    bool *reused;
    tc_rank_entry *entries;
    uint64_t my_bytes, all_bytes;  /* bytes to write: this rank, every rank */
} tc_cell_set;

/* settings.c: the setup phase (collective); on TC_OK the output directory
 * is locked and no longer looks complete. */
tc_status tc_job_setup(tc_job *j);
void tc_job_settings_free(tc_job *j);
/* Whether the run calibrates (either format's quantization). */
bool tc_job_calib_needs(const tc_job *j);
/* The output's cell files (rank files or shards), and this rank's share:
 * fills ids (room for tc_job_max_cells_per_rank) and returns the count. */
int tc_job_cells(const tc_job *j);
int tc_job_max_cells_per_rank(const tc_job *j);
size_t tc_job_rank_cells(const tc_job *j, int rank, int *ids);
/* Where calibration text finds its tokenizer. */
const char *tc_job_tokenizer_dir(const tc_opts *o);
/* The output description of this job (the format's metadata input). */
void tc_job_output_desc(const tc_job *j, tc_output_desc *d);

/* fingerprint.c (collective). */
tc_status tc_job_fingerprint(const tc_job *j, tc_run_text *run);

/* cells.c. tc_cells_plan: plan cell_ids[0..n) (the quantization's rewrite
 * and, when calib_job is not NULL, its computed tensors), decide what
 * --resume keeps, check the disk space, agree. Collective, also after a
 * local failure st; on failure the caller still frees s. */
tc_status tc_cells_plan(const tc_job *j, const int *cell_ids, size_t n, void *calib_job,
                        const tc_run_text *run, tc_cell_set *s, tc_status st);
tc_status tc_cells_open(const tc_job *j, tc_cell_set *s);
/* Commit (or discard after a failure) this rank's files, then rank 0 writes
 * the manifest and, last, the format's commit file, which it renders first
 * (tc_job_output_desc). Collective. */
tc_status tc_cells_commit(const tc_job *j, const tc_run_text *run, tc_cell_set *s, tc_status st);
void tc_cells_free(tc_cell_set *s);

/* progress.c: run the conversion workers over the open cells while
 * exchanging progress with rank 0 (collective). */
tc_status tc_convert_phase(const tc_job *j, tc_cell_set *s, const tc_gpu_info *gpu,
                           tc_status pre);
/* The same with `during` (may be NULL) run on this thread once the workers
 * have started, before progress is exchanged: the overlapped calibration,
 * whose gate (may be NULL) releases the tensors layer by layer. A failure
 * of `during` cancels the workers and is this rank's status. */
tc_status tc_convert_phase_during(const tc_job *j, tc_cell_set *s, const tc_gpu_info *gpu,
                                  tc_status pre, tc_convert_gate *gate,
                                  tc_status (*during)(void *ctx), void *during_ctx);

/* calibrated.c: statistics, then the calibrated method's passes, plan,
 * write and commit (collective). */
tc_status tc_calibrated_run(tc_job *j, const tc_run_text *run);
/* The run's statistics (calibration or --calib_stats), checked and saved
 * with --calib_stats_out; *engine (may be NULL) gets the calibrating
 * engine when there was one (collective). */
tc_status tc_calib_statistics(const tc_job *j, tc_calib_stats *stats, tc_fwd_engine **engine);

/* hf_run.c: --output_format hf: statistics when the quantization needs
 * them, then this rank's shards converted and committed (collective). */
tc_status tc_hf_run(tc_job *j, const tc_run_text *run);
/* The calibration input named on the command line exists. */
tc_status tc_calibration_input_check(const tc_job *j);

/* eval_after.c: --eval DATASET. The check runs before converting; the
 * evaluation of the committed checkpoint after it (collective). */
tc_status tc_job_eval_check(const tc_job *j);
tc_status tc_job_eval(const tc_job *j);

/* signals.c */
void tc_signals_arm(const tc_opts *o, int rank);
void tc_signals_disarm(void);

/* summary.c (collective: peak memory is gathered). */
void tc_job_summary(const tc_job *j, double seconds, uint64_t bytes);

#endif
