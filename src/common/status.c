/* Status names, the per-thread last-error message and the version string. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char last_error[512];

const char *fopt_version(void) { return FOPT_VERSION_STRING; }

const char *fopt_status_string(fopt_status status)
{
    switch (status) {
    case FOPT_SUCCESS: return "FOPT_SUCCESS";
    case FOPT_ERROR_INVALID_VALUE: return "FOPT_ERROR_INVALID_VALUE";
    case FOPT_ERROR_NOT_SUPPORTED: return "FOPT_ERROR_NOT_SUPPORTED";
    case FOPT_ERROR_OUT_OF_MEMORY: return "FOPT_ERROR_OUT_OF_MEMORY";
    case FOPT_ERROR_NO_DEVICE: return "FOPT_ERROR_NO_DEVICE";
    case FOPT_ERROR_CUDA: return "FOPT_ERROR_CUDA";
    }
    return "FOPT_UNKNOWN_STATUS";
}

const char *fopt_last_error(void) { return last_error; }

fopt_status fopt_fail(fopt_status status, const char *fmt, ...)
{
    int len = snprintf(last_error, sizeof last_error, "%s: ", fopt_status_string(status));
    if (len < 0 || (size_t)len >= sizeof last_error)
        return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error + len, sizeof last_error - (size_t)len, fmt, ap);
    va_end(ap);
    return status;
}
