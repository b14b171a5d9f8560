/* test_launch.c: Check suite for launch.c: the singleton refusal against
 * each launcher's environment (cluster.md §1.1) and the GPU choice
 * (cluster.md §1.3), with a fake environment instead of real launchers. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "trtconv/mpi/launch.h"
#include "trtconv/core/log.h"

/* A fake environment: up to 8 NAME=VALUE pairs. */
static const char *g_env[8][2];
static int g_env_n;

static void env_clear(void) { g_env_n = 0; }

static void env_set(const char *name, const char *value)
{
    g_env[g_env_n][0] = name;
    g_env[g_env_n][1] = value;
    g_env_n++;
}

static char *fake_getenv(const char *name)
{
    for (int i = 0; i < g_env_n; i++)
        if (!strcmp(g_env[i][0], name))
            return (char *)g_env[i][1];
    return NULL;
}

START_TEST(expected_size_should_be_zero_without_any_launcher_variable)
{
    env_clear();
    char src[64];
    ck_assert_int_eq(tc_launch_expected_size(fake_getenv, src, sizeof src), 0);
    ck_assert_str_eq(src, "");
    ck_assert_int_eq(tc_launch_check_world(1, fake_getenv), TC_OK);
}
END_TEST

START_TEST(a_singleton_should_be_refused_when_srun_started_four_tasks)
{
    /* srun --mpi=none (or a PMI mismatch) with Open MPI 5: every task is a
     * world of one, the step says 4. */
    env_clear();
    env_set("SLURM_NTASKS", "4");
    env_set("SLURM_STEP_NUM_TASKS", "4");
    tc_clear_first_error();
    ck_assert_int_eq(tc_launch_check_world(1, fake_getenv), TC_E_COMM);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "SLURM_STEP_NUM_TASKS=4"));
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "singleton"));
    /* The same environment with the world MPI promised is fine. */
    ck_assert_int_eq(tc_launch_check_world(4, fake_getenv), TC_OK);
}
END_TEST

START_TEST(a_singleton_should_be_refused_when_a_batch_script_runs_it_without_a_launcher)
{
    env_clear();
    env_set("SLURM_NTASKS", "8");
    char src[64];
    ck_assert_int_eq(tc_launch_expected_size(fake_getenv, src, sizeof src), 8);
    ck_assert_str_eq(src, "SLURM_NTASKS=8");
    ck_assert_int_eq(tc_launch_check_world(1, fake_getenv), TC_E_COMM);
}
END_TEST

START_TEST(mpirun_np_1_inside_a_larger_allocation_should_be_allowed)
{
    /* OMPI_COMM_WORLD_SIZE is what mpirun started; the allocation's
     * SLURM_NTASKS must not override it. */
    env_clear();
    env_set("SLURM_NTASKS", "16");
    env_set("OMPI_COMM_WORLD_SIZE", "1");
    ck_assert_int_eq(tc_launch_expected_size(fake_getenv, NULL, 0), 1);
    ck_assert_int_eq(tc_launch_check_world(1, fake_getenv), TC_OK);
}
END_TEST

START_TEST(mpirun_should_decide_over_pmi_and_slurm)
{
    env_clear();
    env_set("SLURM_STEP_NUM_TASKS", "2");
    env_set("PMI_SIZE", "3");
    env_set("OMPI_COMM_WORLD_SIZE", "4");
    char src[64];
    ck_assert_int_eq(tc_launch_expected_size(fake_getenv, src, sizeof src), 4);
    ck_assert_str_eq(src, "OMPI_COMM_WORLD_SIZE=4");
    env_clear();
    env_set("SLURM_STEP_NUM_TASKS", "2");
    env_set("PMI_SIZE", "3");
    ck_assert_int_eq(tc_launch_expected_size(fake_getenv, src, sizeof src), 3);
    ck_assert_str_eq(src, "PMI_SIZE=3");
}
END_TEST

START_TEST(a_pmix_rank_above_zero_should_mean_a_larger_job)
{
    env_clear();
    env_set("PMIX_RANK", "3");
    char src[64];
    ck_assert_int_eq(tc_launch_expected_size(fake_getenv, src, sizeof src), 4);
    ck_assert_str_eq(src, "PMIX_RANK=3");
    ck_assert_int_eq(tc_launch_check_world(1, fake_getenv), TC_E_COMM);
    env_clear();
    env_set("PMIX_RANK", "0");
    ck_assert_int_eq(tc_launch_check_world(1, fake_getenv), TC_OK);
}
END_TEST

START_TEST(unusable_values_should_never_refuse_a_launch)
{
    static const char *const bad[] = { "", "0", "-4", "4x", " 4", "99999999999999999999999", "+4" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        env_clear();
        env_set("OMPI_COMM_WORLD_SIZE", bad[i]);
        env_set("SLURM_NTASKS", "4"); /* shadowed by the more specific, broken value */
        ck_assert_int_eq(tc_launch_expected_size(fake_getenv, NULL, 0), 0);
        ck_assert_int_eq(tc_launch_check_world(1, fake_getenv), TC_OK);
    }
}
END_TEST

START_TEST(allow_singleton_should_turn_the_refusal_off_only_for_exactly_1)
{
    env_clear();
    env_set("SLURM_NTASKS", "4");
    env_set("TRTCONV_ALLOW_SINGLETON", "1");
    ck_assert_int_eq(tc_launch_check_world(1, fake_getenv), TC_OK);
    env_clear();
    env_set("SLURM_NTASKS", "4");
    env_set("TRTCONV_ALLOW_SINGLETON", "yes");
    ck_assert_int_eq(tc_launch_check_world(1, fake_getenv), TC_E_COMM);
}
END_TEST

START_TEST(gpu_choice_should_follow_the_node_local_rank_rules)
{
    int dev = 99;
    /* no device: CPU path */
    ck_assert_int_eq(tc_gpu_choose(0, 3, 4, "h", &dev), TC_OK);
    ck_assert_int_eq(dev, -1);
    /* one visible device (srun --gpus-per-task=1, CUDA_VISIBLE_DEVICES=5): use it */
    for (int r = 0; r < 8; r++) {
        ck_assert_int_eq(tc_gpu_choose(1, r, 8, "h", &dev), TC_OK);
        ck_assert_int_eq(dev, 0);
    }
    /* all devices visible (mpirun in sbatch --gpus-per-node=8): the local rank */
    for (int r = 0; r < 8; r++) {
        ck_assert_int_eq(tc_gpu_choose(8, r, 8, "h", &dev), TC_OK);
        ck_assert_int_eq(dev, r);
    }
    /* more devices than ranks */
    ck_assert_int_eq(tc_gpu_choose(8, 1, 2, "h", &dev), TC_OK);
    ck_assert_int_eq(dev, 1);
}
END_TEST

START_TEST(gpu_choice_should_refuse_fewer_devices_than_ranks_naming_the_host)
{
    int dev = 99;
    tc_clear_first_error();
    ck_assert_int_eq(tc_gpu_choose(2, 3, 4, "node7", &dev), TC_E_USAGE);
    ck_assert_int_eq(dev, -1);
    ck_assert_ptr_nonnull(strstr(tc_first_error(), "4 ranks on host node7 but only 2 visible GPUs"));
    ck_assert_int_eq(tc_gpu_choose(4, 4, 4, "h", &dev), TC_E_INTERNAL); /* not a rank */
}
END_TEST

static Suite *launch_suite(void)
{
    Suite *s = suite_create("launch");
    TCase *tc = tcase_create("singleton");
    tcase_add_test(tc, expected_size_should_be_zero_without_any_launcher_variable);
    tcase_add_test(tc, a_singleton_should_be_refused_when_srun_started_four_tasks);
    tcase_add_test(tc, a_singleton_should_be_refused_when_a_batch_script_runs_it_without_a_launcher);
    tcase_add_test(tc, mpirun_np_1_inside_a_larger_allocation_should_be_allowed);
    tcase_add_test(tc, mpirun_should_decide_over_pmi_and_slurm);
    tcase_add_test(tc, a_pmix_rank_above_zero_should_mean_a_larger_job);
    tcase_add_test(tc, unusable_values_should_never_refuse_a_launch);
    tcase_add_test(tc, allow_singleton_should_turn_the_refusal_off_only_for_exactly_1);
    suite_add_tcase(s, tc);
    tc = tcase_create("gpu");
    tcase_add_test(tc, gpu_choice_should_follow_the_node_local_rank_rules);
    tcase_add_test(tc, gpu_choice_should_refuse_fewer_devices_than_ranks_naming_the_host);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tc_log_set_quiet(1);
    SRunner *sr = srunner_create(launch_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
