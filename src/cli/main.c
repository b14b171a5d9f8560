/* main.c: trtconv entry point: `trtconv verify DIR` (no MPI), otherwise MPI
 * init, tc_main, finalize. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include "trtconv/app/run.h"
#include "trtconv/core/log.h"
#include "trtconv/output/manifest.h"

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "verify") == 0) {
        /* Offline and single-process: runs where no MPI launcher exists. */
        tc_log_init(0, 1, NULL);
        return tc_verify_main(argc - 1, argv + 1);
    }
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "trtconv: error: MPI_Init_thread failed\n");
        return 5;
    }
    /* Worker threads never call MPI; only the main thread does. */
    int code = tc_main(argc, argv);
    MPI_Finalize();
    return code;
}
