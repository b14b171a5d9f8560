/* collcheck.c: the collectives layer (coll.h) on host buffers, run under
 * mpirun with any number of ranks: the sum is bit-identical to a
 * left-to-right sum in member order (values chosen so that any other order
 * gives different bits), max, all-gather and point-to-point along a ring, on
 * the world and on a split. Exit 0 when every check passes on every rank. */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/mpi/coll.h"
#include "trtconv/core/log.h"

#define N 1000

/* Member m's element i: large values that cancel, so the order shows. */
static float value(int m, int i)
{
    switch (m % 3) {
    case 0: return 1.0e8f + (float)i;
    case 1: return 1.0f + 0.25f * (float)(i % 7);
    default: return -1.0e8f + 3.0f * (float)i;
    }
}

static int check(tc_coll *c, const char *label)
{
    int bad = 0;
    float buf[N], scratch[N * 64], want;
    if (c->size > 64)
        return 0;
    for (int i = 0; i < N; i++)
        buf[i] = value(c->rank, i);
    if (tc_coll_allreduce_sum_f32(c, buf, N, scratch) != TC_OK)
        return 1;
    for (int i = 0; i < N; i++) {
        want = value(0, i);
        for (int m = 1; m < c->size; m++)
            want += value(m, i);
        if (memcmp(&want, &buf[i], sizeof want))
            bad++;
    }
    for (int i = 0; i < N; i++)
        buf[i] = value(c->rank, i) * (c->rank % 2 ? -1.0f : 1.0f);
    if (tc_coll_allreduce_max_f32(c, buf, N) != TC_OK)
        return 1;
    for (int i = 0; i < N; i++) {
        want = value(0, i);
        for (int m = 1; m < c->size; m++) {
            float v = value(m, i) * (m % 2 ? -1.0f : 1.0f);
            want = v > want ? v : want;
        }
        bad += want != buf[i];
    }
    float mine[4] = { (float)c->rank, 1, 2, 3 }, all[4 * 64];
    if (tc_coll_allgather(c, mine, all, sizeof mine) != TC_OK)
        return 1;
    for (int m = 0; m < c->size; m++)
        bad += all[4 * m] != (float)m || all[4 * m + 3] != 3.0f;
    if (c->size > 1) {
        int token = c->rank * 10, got = -1;
        int next = (c->rank + 1) % c->size, prev = (c->rank + c->size - 1) % c->size;
        tc_status st = TC_OK;
        if (c->rank % 2 == 0) {
            st = tc_coll_send(c, &token, sizeof token, next);
            if (st == TC_OK)
                st = tc_coll_recv(c, &got, sizeof got, prev);
        } else {
            st = tc_coll_recv(c, &got, sizeof got, prev);
            if (st == TC_OK)
                st = tc_coll_send(c, &token, sizeof token, next);
        }
        if (st != TC_OK)
            return 1;
        bad += got != prev * 10;
    }
    if (bad)
        fprintf(stderr, "collcheck %s: member %d of %d: %d mismatches\n", label, c->rank, c->size, bad);
    return bad != 0;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    tc_coll world, half;
    int bad = 0;
    if (tc_coll_create(MPI_COMM_WORLD, 0, rank, NULL, NULL, &world) != TC_OK)
        bad = 1;
    else
        bad |= check(&world, "world");
    if (tc_coll_create(MPI_COMM_WORLD, rank % 2, -rank, NULL, NULL, &half) != TC_OK)
        bad = 1;
    else
        bad |= check(&half, "split");
    int any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0)
        printf("collcheck: %s (world %d ranks, backend %s)\n", any ? "FAILED" : "ok", world.size,
               tc_coll_backend_name(&world));
    tc_coll_free(&world);
    tc_coll_free(&half);
    MPI_Finalize();
    return any;
}
