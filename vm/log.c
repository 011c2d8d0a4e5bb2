/*
 * log.c - the public face of the VM's reports (krill.h, "Logging"): the
 * level, as logger:set_primary_config(level, L), and kr_log, as
 * logger:log/3. The machinery (the level filter, the burst limit, where
 * reports go) is sched/report.c's; this file only checks arguments and
 * enters the VM, so that a host thread never races kr_vm_start's settings
 * or kr_vm_stop.
 */
#include <stdarg.h>

#include "vm.h"

static const char *const level_names[] = {
	[KR_LOG_NONE] = "none",         [KR_LOG_EMERGENCY] = "emergency",
	[KR_LOG_ALERT] = "alert",       [KR_LOG_CRITICAL] = "critical",
	[KR_LOG_ERROR] = "error",       [KR_LOG_WARNING] = "warning",
	[KR_LOG_NOTICE] = "notice",     [KR_LOG_INFO] = "info",
	[KR_LOG_DEBUG] = "debug",
};

KR_API const char *kr_log_level_name(int level)
{
	if (level < KR_LOG_NONE || level > KR_LOG_DEBUG)
		return "unknown";
	return level_names[level];
}

KR_API int kr_log_set_level(int level)
{
	if (level < KR_LOG_DEFAULT || level > KR_LOG_DEBUG)
		return KR_EINVAL;
	krx_sched *self = krx_sched_self();
	if (krx_vm_enter(self))
		return KR_ESTOPPED;
	int old = krx_log_set_level(level == KR_LOG_DEFAULT ? KR_LOG_NOTICE : level);
	krx_vm_leave(self);
	return old;
}

KR_API int kr_log_get_level(void)
{
	krx_sched *self = krx_sched_self();
	if (krx_vm_enter(self))
		return KR_ESTOPPED;
	int level = krx_log_level();
	krx_vm_leave(self);
	return level;
}

KR_API int kr_log(int level, const char *fmt, ...)
{
	if (!fmt || level < KR_LOG_EMERGENCY || level > KR_LOG_DEBUG)
		return KR_EINVAL;
	krx_sched *self = krx_sched_self();
	if (krx_vm_enter(self))
		return KR_ESTOPPED;
	va_list ap;
	va_start(ap, fmt);
	krx_vlog(level, fmt, ap);
	va_end(ap);
	krx_vm_leave(self);
	return 0;
}
