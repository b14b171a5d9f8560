/* mkhostile.c: hostile statistics files for tests/mpi/test_hostile.sh.
 *
 *   tc-mkhostile stats MODEL_DIR OUT.h5 VALUE
 *       every maximum (x, y, w of every linear) = VALUE (0, 3e38, ...): a
 *       well-formed file whose values make scales divide by zero or
 *       overflow;
 *   tc-mkhostile external MODEL_DIR OUT.h5 RAW_PATH
 *       a well-formed file (every maximum 1) whose dataset
 *       /layers/0/q_proj/x keeps its data in the external file RAW_PATH
 *       (H5Pset_external), which may be a FIFO. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/build_config.h"
#include "trtconv/calib/calib_stats.h"
#include "trtconv/model/hf_model.h"
#include "trtconv/core/log.h"
#if TRTCONV_HAVE_HDF5
#include <hdf5.h>
#endif

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "stats") && strcmp(argv[1], "external"))) {
        fprintf(stderr, "usage: tc-mkhostile stats|external MODEL_DIR OUT.h5 VALUE|RAW_PATH\n");
        return 2;
    }
    tc_hf_model *m = NULL;
    if (tc_hf_open(argv[2], &m) != TC_OK)
        return 1;
    tc_calib_dims d;
    tc_calib_dims_from_config(&m->cfg, &d);
    tc_calib_stats s;
    if (tc_calib_stats_alloc(&d, &s) != TC_OK)
        return 1;
    const float v = strcmp(argv[1], "stats") == 0 ? strtof(argv[4], NULL) : 1.0f;
    for (size_t i = 0; i < s.n; i++)
        s.data[i] = v;
    int rc = tc_calib_stats_write_h5(&s, argv[3]) == TC_OK ? 0 : 1;
#if TRTCONV_HAVE_HDF5
    if (rc == 0 && strcmp(argv[1], "external") == 0) {
        const char *name = "/layers/0/q_proj/x";
        hid_t f = H5Fopen(argv[3], H5F_ACC_RDWR, H5P_DEFAULT);
        hsize_t n = (hsize_t)d.hidden;
        hid_t space = H5Screate_simple(1, &n, NULL);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        rc = f < 0 || space < 0 || dcpl < 0 || H5Ldelete(f, name, H5P_DEFAULT) < 0 ||
             H5Pset_external(dcpl, argv[4], 0, n * sizeof(float)) < 0;
        hid_t ds = rc ? -1 : H5Dcreate2(f, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl,
                                         H5P_DEFAULT);
        rc = rc || ds < 0;
        if (ds >= 0)
            H5Dclose(ds);
        if (dcpl >= 0)
            H5Pclose(dcpl);
        if (space >= 0)
            H5Sclose(space);
        if (f >= 0)
            H5Fclose(f);
    }
#else
    if (strcmp(argv[1], "external") == 0)
        rc = 77;
#endif
    tc_calib_stats_free(&s);
    tc_hf_close(m);
    return rc;
}
