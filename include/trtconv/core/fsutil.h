/* fsutil.h: the file helpers every stage uses: opening inputs safely,
 * reading small files whole, writing at offsets, joining paths, mkdir -p.
 *
 * Every input trtconv reads (weights, configs, indexes, tokenizer files,
 * calibration text, statistics) is opened with tc_open_input: O_NONBLOCK so
 * that opening a FIFO (or a device) cannot block the job, then fstat, and
 * anything but a regular file refused with the file named; O_NONBLOCK is
 * then cleared so reads behave as usual. */
#ifndef TRTCONV_FSUTIL_H
#define TRTCONV_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/status.h"

/* Open path read-only; on TC_OK *fd (close-on-exec) belongs to the caller.
 * what names the input in errors ("model shard", "--calib_dataset", ...;
 * NULL for none). TC_E_IO when it cannot be opened, TC_E_INPUT when it is
 * not a regular file (the message says what it is). */
tc_status tc_open_input(const char *path, const char *what, int *fd);

/* Read a whole small file (config/index JSON, records) with a size cap,
 * through tc_open_input. On TC_OK *out (malloc'd, NUL-terminated, caller
 * frees) holds *len bytes. */
tc_status tc_read_small_file(const char *path, size_t max_len, char **out, size_t *len);

/* Write n bytes of buf at offset off of fd, retrying short writes and
 * EINTR. Errors (TC_E_IO) name path, the size and the offset. Thread-safe. */
tc_status tc_pwrite_all(int fd, const char *path, const void *buf, size_t n, uint64_t off);

/* close(*fd) with its error reported (TC_E_IO naming path: a failed close
 * can be a lost write on NFS); *fd is -1 afterwards in every case. */
tc_status tc_close_file(int *fd, const char *path);

/* dir + "/" + name into buf; TC_E_INPUT naming both when it does not fit. */
tc_status tc_path_join(char *buf, size_t size, const char *dir, const char *name);
/* The same, malloc'd (caller frees); NULL when out of memory. */
char *tc_path_join_alloc(const char *dir, const char *name);

/* mkdir -p path (mode 0755); TC_E_IO naming the component that failed, or
 * the path when it exists and is not a directory. `what` names the option
 * in errors ("--output_dir", "--out"). */
tc_status tc_mkdir_p(const char *path, const char *what);

#endif
