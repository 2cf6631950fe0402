/*
 * preload.h — what the preload's files share among themselves.
 */
#ifndef PF_PRELOAD_H
#define PF_PRELOAD_H

#include "os.h"

/* Fork child: the lock around mallinfo/malloc_info's snapshot is free. */
PF_HIDDEN void pf_introspect_fork_child(void);

#endif
