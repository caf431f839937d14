/* Filled in by rdma.c. */
#include "CEvplRDMA.h"
#include <errno.h>
int cevpl_rdma_ops_open(cevpl_rdma_ops *ops, const char **error) { (void)ops; *error = "not built yet"; return -1; }
