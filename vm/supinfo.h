/*
 * supinfo.h - what a supervisor tells the observer beyond kr_sup.h's
 * calls: its strategy, and when each child was last restarted (sup.c).
 */
#ifndef KRX_SUPINFO_H
#define KRX_SUPINFO_H

#include "krill.h"

typedef struct krx_sup_desc_child {
	kr_sup_child c;           /* as kr_sup_which_children gives it */
	int64_t restarted_ago_ms; /* since the supervisor last restarted it; -1: never */
} krx_sup_desc_child;

/* sup's strategy (enum kr_sup_strategy) into *strategy, and its children
 * in start order, as kr_sup_which_children_timeout: the first max into out.
 * Returns how many children it has, or kr_sup_which_children's errors. A
 * request to the supervisor, answered between its restarts. */
int krx_sup_describe(kr_pid sup, int *strategy, krx_sup_desc_child *out, size_t max,
                     long timeout_ms);

#endif
