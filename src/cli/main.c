/* main.c: trtconv entry point: `trtconv verify DIR` (no MPI), `trtconv
 * eval ...` (eval_main.c), otherwise MPI setup, option parsing (every rank
 * parses the same argv; only rank 0 prints) and the run (app/run.h). */
#include <mpi.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/app/run.h"
#include "trtconv/core/log.h"
#include "trtconv/eval/eval.h"
#include "trtconv/mpi/launch.h"
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
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    tc_log_init(rank, size, NULL);
    if (argc >= 2 && strcmp(argv[1], "eval") == 0) {
        int code = tc_eval_main(argc - 1, argv + 1);
        if (code == TC_E_COMM)
            MPI_Abort(MPI_COMM_WORLD, code);
        MPI_Finalize();
        return code;
    }
    /* Before anything touches the output: N accidental singletons would each
     * write the whole checkpoint into the same directory. */
    tc_status st = tc_launch_check_world(size, getenv);
    tc_opts opts;
    tc_opts_init(&opts);
    bool help = false;
    if (st == TC_OK)
        st = tc_opts_parse(&opts, argc, argv, rank == 0 ? stdout : NULL,
                           rank == 0 ? stderr : NULL, &help);
    /* Worker threads never call MPI; only the main thread does. */
    int code = st != TC_OK ? (int)st : help ? 0 : tc_run(&opts);
    MPI_Finalize();
    return code;
}
