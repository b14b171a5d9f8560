/* fsutil.h: opening input files safely.
 *
 * Every input trtconv reads (weights, configs, indexes, tokenizer files,
 * calibration text, statistics) is opened with tc_open_input: O_NONBLOCK so
 * that opening a FIFO (or a device) cannot block the job, then fstat, and
 * anything but a regular file refused with the file named; O_NONBLOCK is
 * then cleared so reads behave as usual. */
#ifndef TRTCONV_FSUTIL_H
#define TRTCONV_FSUTIL_H

#include "trtconv/core/status.h"

/* Open path read-only; on TC_OK *fd (close-on-exec) belongs to the caller.
 * what names the input in errors ("model shard", "--calib_dataset", ...;
 * NULL for none). TC_E_IO when it cannot be opened, TC_E_INPUT when it is
 * not a regular file (the message says what it is). */
tc_status tc_open_input(const char *path, const char *what, int *fd);

#endif
