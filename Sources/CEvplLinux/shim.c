#ifndef _GNU_SOURCE
#error "CEvplLinux must be built with _GNU_SOURCE (see Package.swift)"
#endif
#include "CEvplLinux.h"
#include <stddef.h>
#include <sys/eventfd.h>
#include <fcntl.h>

_Static_assert(sizeof(cevpl_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");
_Static_assert(offsetof(cevpl_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "mmsghdr layout");

int cevpl_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cevpl_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev = { .events = events, .data.u64 = data };
    return epoll_ctl(epfd, op, fd, &ev);
}

int cevpl_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    return epoll_wait(epfd, events, maxevents, timeout);
}

/* struct epoll_event is packed on x86-64; Swift cannot address its fields safely. */
uint64_t cevpl_epoll_event_data(const struct epoll_event *events, int i) { return events[i].data.u64; }
uint32_t cevpl_epoll_event_events(const struct epoll_event *events, int i) { return events[i].events; }
unsigned long cevpl_epoll_event_size(void) { return sizeof(struct epoll_event); }

int cevpl_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int cevpl_accept4(int fd, struct sockaddr *addr, socklen_t *len)
{
    return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int cevpl_sendmmsg(int fd, cevpl_mmsghdr *v, unsigned int n, int flags)
{
    return sendmmsg(fd, (struct mmsghdr *) v, n, flags);
}

int cevpl_recvmmsg(int fd, cevpl_mmsghdr *v, unsigned int n, int flags)
{
    return recvmmsg(fd, (struct mmsghdr *) v, n, flags, NULL);
}

int cevpl_socket(int domain, int type, int protocol)
{
    return socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
}

int cevpl_epoll_wait_ns(int epfd, struct epoll_event *events, int maxevents, int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return epoll_pwait2(epfd, events, maxevents, NULL, NULL);
    struct timespec ts = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
    return epoll_pwait2(epfd, events, maxevents, &ts, NULL);
}

int cevpl_o_direct(void) { return O_DIRECT; }
