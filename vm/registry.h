/*
 * registry.h - registered names: one name per process, one process per
 * name, freed when the process ends.
 */
#ifndef KRX_REGISTRY_H
#define KRX_REGISTRY_H

#include "proc.h"

int krx_registry_init(void);
void krx_registry_free(void);
/* p, whose pid was pid, is ending: free its name, if it has one. */
void krx_registry_drop(krx_proc *p, kr_pid pid);
/* The name pid has, into out ("" if none): for kr_info, from any thread
 * inside the VM. */
void krx_registry_name_of(kr_pid pid, char out[KR_NAME_MAX + 1]);

#endif
