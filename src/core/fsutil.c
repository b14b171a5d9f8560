/* fsutil.c: see fsutil.h. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
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
