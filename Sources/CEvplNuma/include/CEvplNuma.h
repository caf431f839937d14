/*
 * NUMA for the slab allocator: how many nodes the machine has, which one the
 * calling thread runs on, and preferring a node for a fresh mapping.  No
 * state and no policy: Sources/Evpl/Memory/Slab.swift decides which node's
 * memory a loop gets.
 *
 * These are the three libnuma calls the allocator needs (numa_max_node,
 * numa_node_of_cpu, numa_tonode_memory), made the way libnuma makes them:
 * sysfs, getcpu(2) and mbind(2).  libnuma itself is not linked: Debian's
 * libnuma.a is not position-independent (it cannot go into a shared library)
 * and its versioned symbols are refused under evpl.map, and libnuma.so would
 * be a run-time dependency.  Nothing here prints.
 *
 * This header includes no system headers (see CEvplUring.h for why).
 * Prefix cevpl_, hidden visibility (the version script exports evpl_* only).
 */
#ifndef CEVPL_NUMA_H
#define CEVPL_NUMA_H

#include <stddef.h>

#define CEVPL_NUMA_HIDDEN __attribute__((visibility("hidden")))

/* Nodes in the machine (highest online node + 1): 1 where the kernel has no
 * NUMA support or refuses its memory-policy calls. */
CEVPL_NUMA_HIDDEN int cevpl_numa_nodes(void);

/* The node of the CPU the calling thread runs on; 0 on one node or any failure. */
CEVPL_NUMA_HIDDEN int cevpl_numa_current_node(void);

/* Prefer `node` for the pages of [addr, addr+len), which must not be touched
 * yet (MPOL_PREFERRED: other nodes when it runs out): 0, or -1 with errno set
 * when the kernel refuses (no such node, no NUMA). */
CEVPL_NUMA_HIDDEN int cevpl_numa_bind(void *addr, size_t len, int node);

#endif
