/* fsutil.c: see fsutil.h. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trtconv/core/log.h"

static const char *kind_of(mode_t m)
{
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

tc_status tc_open_input(const char *path, const char *what, int *fd)
{
    *fd = -1;
    const char *sep = what ? " " : "";
    int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (f < 0)
        return tc_fail(TC_E_IO, "%s%s%s: cannot open: %s", what ? what : "", sep, path,
                       strerror(errno));
    struct stat sb;
    if (fstat(f, &sb) != 0) {
        int e = errno;
        close(f);
        return tc_fail(TC_E_IO, "%s%s%s: cannot stat: %s", what ? what : "", sep, path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(f);
        return tc_fail(TC_E_INPUT, "%s%s%s: is %s, not a regular file: refusing to read it "
                       "(a FIFO or device could block or never end)", what ? what : "", sep, path,
                       kind_of(sb.st_mode));
    }
    int fl = fcntl(f, F_GETFL);
    if (fl < 0 || fcntl(f, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(f);
        return tc_fail(TC_E_IO, "%s%s%s: fcntl: %s", what ? what : "", sep, path, strerror(e));
    }
    *fd = f;
    return TC_OK;
}

tc_status tc_read_small_file(const char *path, size_t max_len, char **out,
                             size_t *len)
{
    tc_status st = TC_OK;
    int fd = -1;
    char *buf = NULL;
    size_t size = 0;
    struct stat sb;

    *out = NULL;
    *len = 0;
    st = tc_open_input(path, NULL, &fd);
    if (st != TC_OK)
        goto done;
    if (fstat(fd, &sb) != 0) {
        st = tc_fail(TC_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (sb.st_size < 0 || (uint64_t)sb.st_size > (uint64_t)max_len) {
        st = tc_fail(TC_E_INPUT, "%s: file is %lld bytes, more than the limit of %zu",
                     path, (long long)sb.st_size, max_len);
        goto done;
    }
    size = (size_t)sb.st_size;
    buf = malloc(size + 1);
    if (!buf) {
        st = tc_fail(TC_E_INTERNAL, "%s: out of memory (%zu bytes)", path, size + 1);
        goto done;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            st = tc_fail(TC_E_IO, "%s: read failed at byte %zu: %s", path, got,
                         strerror(errno));
            goto done;
        }
        if (r == 0) {
            st = tc_fail(TC_E_IO, "%s: file ended at byte %zu of %zu (changed while "
                         "reading?)", path, got, size);
            goto done;
        }
        got += (size_t)r;
    }
    buf[size] = '\0';
    *out = buf;
    *len = size;
    buf = NULL;

done:
    free(buf);
    if (fd >= 0)
        close(fd);
    return st;
}

tc_status tc_pwrite_all(int fd, const char *path, const void *buf, size_t n, uint64_t off)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return tc_fail(TC_E_IO, "%s: write of %zu bytes at offset %llu failed: %s", path, n,
                           (unsigned long long)off, strerror(errno));
        }
        if (w == 0)
            return tc_fail(TC_E_IO, "%s: write returned 0 at offset %llu", path,
                           (unsigned long long)off);
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return TC_OK;
}

tc_status tc_path_join(char *buf, size_t size, const char *dir, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return tc_fail(TC_E_INPUT, "path %s/%s is longer than %zu bytes", dir, name, size - 1);
    return TC_OK;
}

char *tc_path_join_alloc(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

tc_status tc_mkdir_p(const char *path, const char *what)
{
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf)
        return tc_fail(TC_E_USAGE, "%s: path too long", what);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return tc_fail(TC_E_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return tc_fail(TC_E_IO, "%s: cannot create %s directory: %s", buf, what, strerror(errno));
    struct stat sb;
    if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return tc_fail(TC_E_IO, "%s: %s exists and is not a directory", buf, what);
    return TC_OK;
}

tc_status tc_close_file(int *fd, const char *path)
{
    int rc = close(*fd);
    *fd = -1;
    if (rc != 0)
        return tc_fail(TC_E_IO, "%s: close: %s", path, strerror(errno));
    return TC_OK;
}
