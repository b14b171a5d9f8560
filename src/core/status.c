/* status.c: names of tc_status values. */
#include "trtconv/core/status.h"

const char *tc_status_str(tc_status st)
{
    switch (st) {
    case TC_OK: return "ok";
    case TC_E_USAGE: return "usage";
    case TC_E_INPUT: return "input";
    case TC_E_IO: return "io";
    case TC_E_COMM: return "communication";
    case TC_E_TIMEOUT: return "timeout";
    case TC_E_INTERNAL: return "internal";
    case TC_E_CANCELLED: return "cancelled";
    }
    return "unknown";
}
