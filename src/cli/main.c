/* main.c: trtconv entry point: MPI init, tc_main, finalize. */
#include <mpi.h>
#include <stdio.h>
#include "trtconv/driver.h"

int main(int argc, char **argv)
{
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
