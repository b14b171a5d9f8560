/* test_tmpdir.h: a per-run scratch directory for unit tests that write
 * files (flat: the tests create files only, no subdirectories). */
#ifndef TRTCONV_TESTS_TMPDIR_H
#define TRTCONV_TESTS_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Create $TMPDIR/trtconv_test_<tag>_XXXXXX (or under /tmp) into buf.
 * Returns 0, or -1 after printing why. */
static int test_tmpdir_create(char *buf, size_t size, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    int r = snprintf(buf, size, "%s/trtconv_test_%s_XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    if (r < 0 || (size_t)r >= size || !mkdtemp(buf)) {
        fprintf(stderr, "cannot create a temporary directory\n");
        return -1;
    }
    return 0;
}

/* Remove the files the tests created, then the directory. */
static void test_tmpdir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        char p[1024];
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, ent->d_name) < sizeof p)
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

#endif
