#define _GNU_SOURCE
#include "CEvplNuma.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/mempolicy.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Node masks cover the kernel's largest node count (MAX_NUMNODES). */
enum { MAX_NODES = 1024, WORD_BITS = 8 * sizeof(unsigned long) };

/* As numa_available: the memory-policy calls work. */
static int policy_available(void)
{
    return !(syscall(SYS_get_mempolicy, NULL, NULL, 0UL, NULL, 0UL) < 0 &&
             (errno == ENOSYS || errno == EPERM));
}

/* The last number of a sysfs node list such as "0-3" or "0,2": the highest node. */
static int highest_online_node(void)
{
    char text[256];
    int fd = open("/sys/devices/system/node/online", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    int highest = 0;
    for (char *p = text; *p;) {
        if (*p >= '0' && *p <= '9')
            highest = (int)strtol(p, &p, 10);
        else
            p++;
    }
    return highest >= 0 && highest < MAX_NODES ? highest : 0;
}

int cevpl_numa_nodes(void)
{
    if (!policy_available())
        return 1;
    return highest_online_node() + 1;
}

int cevpl_numa_current_node(void)
{
    unsigned cpu = 0, node = 0;
    if (syscall(SYS_getcpu, &cpu, &node, NULL) < 0 || (int)node >= cevpl_numa_nodes())
        return 0;
    return (int)node;
}

int cevpl_numa_bind(void *addr, size_t len, int node)
{
    unsigned long mask[MAX_NODES / WORD_BITS] = { 0 };
    if (node < 0 || node >= MAX_NODES) {
        errno = EINVAL;
        return -1;
    }
    mask[node / WORD_BITS] = 1UL << (node % WORD_BITS);
    /* maxnode is one more than the mask's bits: the kernel reads one fewer. */
    long r = syscall(SYS_mbind, addr, len, (unsigned long)MPOL_PREFERRED, mask,
                     (unsigned long)MAX_NODES + 1, 0UL);
    return r == 0 ? 0 : -1;
}
