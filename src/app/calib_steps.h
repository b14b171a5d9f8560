/* calib_steps.h (private to src/app/): the steps of a calibrated run that
 * calibrated.c (statistics first, then the method) and calib_overlap.c
 * (the method writing while the statistics are computed) share. */
#ifndef TRTCONV_CALIB_STEPS_H
#define TRTCONV_CALIB_STEPS_H

#include <stdbool.h>
#include "trtconv/app/job.h"
#include "trtconv/calib/calib_stats.h"
#include "trtconv/calib/tokens.h"
#include "trtconv/fwd/fwd.h"
#include "trtconv/quant/method.h"

/* A calibration in progress: its tokens and engine, both owned. */
typedef struct tc_calib_run {
    tc_token_set tok;
    tc_fwd_engine *engine;
    tc_dtype fdt;
    bool streamed;          /* layer by layer (fwd_stream.c) */
} tc_calib_run;

tc_dtype tc_calib_forward_dtype(const tc_job *j);
/* The run writes while it calibrates (calib_overlap.c): the method can
 * (refresh_layer or stream_layer), the statistics are computed (no
 * --calib_stats), layer by layer (no --calib_schedule batch). */
bool tc_calib_overlapped(const tc_job *j);
/* Load the calibration tokens and create the engine (collective). */
tc_status tc_calib_begin(const tc_job *j, tc_calib_run *r);
/* Run the forward pass and collect the statistics into stats (allocated
 * here when stats->data is NULL), with their provenance (collective). The
 * tokens are freed; the engine stays in r. */
tc_status tc_calib_finish(const tc_job *j, tc_calib_run *r, tc_calib_stats *stats);
void tc_calib_run_free(tc_calib_run *r);
/* --calib_stats_out and the check that every used maximum is non-zero
 * (collective). */
tc_status tc_calib_stats_done(const tc_job *j, const tc_calib_stats *stats);

/* The start of a run that writes while it calibrates: stats allocated in
 * the model's dims (zeros until each layer is done), the tokens and engine
 * (tc_calib_begin), the forward dtype recorded (collective). */
tc_status tc_calib_overlap_begin(const tc_job *j, tc_calib_stats *stats, tc_calib_run *run);
/* The calibration half of a run that writes while it calibrates (on the
 * main thread, beside the conversion workers): hook(hook_ctx, layer) after
 * each layer's statistics are final in stats, then the forward pass's end,
 * tc_calib_stats_done, before_free(hook_ctx) when not NULL (success or
 * failure: what the hook's owner holds on the engine goes first), the
 * engine freed, *t_done the time (collective). */
tc_status tc_calib_with_hook(const tc_job *j, tc_calib_run *run, tc_calib_stats *stats,
                             tc_fwd_layer_hook hook, void *hook_ctx,
                             void (*before_free)(void *hook_ctx), double *t_done);

/* calib_overlap.c: a method with refresh_layer, calibrated layer by layer,
 * writes each layer's tensors as soon as the layer's statistics are final. */
tc_status tc_calibrated_run_overlapped(tc_job *j, const tc_run_text *run,
                                       const tc_calibrated_ops *ops);

#endif
