/*
 * error.c - names for krill's error codes, and the version string.
 */
#include "krill.h"

#define STR_(x) #x
#define STR(x) STR_(x)

KR_API const char *kr_strerror(int err)
{
	switch (err) {
	case KR_OK:        return "success";
	case KR_EINVAL:    return "invalid argument";
	case KR_ENOMEM:    return "out of memory";
	case KR_ENOPROC:   return "no such process";
	case KR_ETIMEDOUT: return "timed out";
	case KR_ENOTPROC:  return "not called from a krill process";
	case KR_ESTOPPED:  return "the VM is not running";
	case KR_ELIMIT:    return "limit reached";
	case KR_EEXIST:    return "already exists";
	case KR_ENOSYS:    return "not supported on this system";
	case KR_ESTART:    return "a process that had to start did not";
	case KR_EIO:       return "a system call failed (kr_last_errno says why)";
	case KR_ENOCONN:   return "the node could not be reached, or refused the connection";
	case KR_ENODIST:   return "no distributed node runs (kr_node_start)";
	case KR_ENOTIMER:  return "no such timer (it fired, was cancelled, or its process ended)";
	case KR_ENOTSUP:   return "the process is not a supervisor";
	}
	return "unknown error";
}

KR_API const char *kr_version(void)
{
	return STR(KR_VERSION_MAJOR) "." STR(KR_VERSION_MINOR) "." STR(KR_VERSION_PATCH);
}
