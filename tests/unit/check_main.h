/* check_main.h: running one Check suite as a test program's main. */
#ifndef TC_TEST_CHECK_MAIN_H
#define TC_TEST_CHECK_MAIN_H

#include <check.h>

/* Run every test of s (forked, as CK_FORK says); 0 when all passed. */
static inline int tc_check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? 1 : 0;
}

#endif
