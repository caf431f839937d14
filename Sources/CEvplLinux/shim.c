#ifndef _GNU_SOURCE
#error "CEvplLinux must be built with _GNU_SOURCE (see Package.swift)"
#endif
#include "CEvplLinux.h"
#include <stddef.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <netinet/udp.h>
#include <string.h>

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

void cevpl_socket_api_kernel(cevpl_socket_api *api)
{
    api->socket = socket;
    api->bind = bind;
    api->listen = listen;
    api->accept4 = accept4;
    api->connect = connect;
    api->setsockopt = setsockopt;
    api->getsockopt = getsockopt;
    api->getsockname = getsockname;
    api->getpeername = getpeername;
    api->read = read;
    api->writev = writev;
    api->close = close;
    api->shutdown = shutdown;
    api->epoll_create1 = epoll_create1;
    api->epoll_ctl = epoll_ctl;
    api->epoll_wait = epoll_wait;
}

int cevpl_socket_api_open(const char *path, cevpl_socket_api *api, const char **error)
{
    static __thread char message[512];
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *e = dlerror();
        snprintf(message, sizeof(message), "%s", e != NULL ? e : "dlopen failed");
        *error = message;
        return -1;
    }
    /* dlsym on a handle also searches the library's dependencies (libc):
     * an entry point counts only when the library itself defines it. */
    struct link_map *self = NULL;
    if (dlinfo(h, RTLD_DI_LINKMAP, &self) != 0 || self == NULL) {
        snprintf(message, sizeof(message), "%s: dlinfo failed", path);
        *error = message;
        dlclose(h);
        return -1;
    }
#define CEVPL_RESOLVE(name) do { \
        void *p = dlsym(h, #name); \
        Dl_info info; \
        struct link_map *owner = NULL; \
        if (p == NULL || dladdr1(p, &info, (void **) &owner, RTLD_DL_LINKMAP) == 0 || owner != self) { \
            snprintf(message, sizeof(message), "%s does not provide %s", path, #name); \
            *error = message; \
            dlclose(h); \
            return -1; \
        } \
        *(void **) &api->name = p; \
    } while (0)
    CEVPL_RESOLVE(socket);
    CEVPL_RESOLVE(bind);
    CEVPL_RESOLVE(listen);
    CEVPL_RESOLVE(accept4);
    CEVPL_RESOLVE(connect);
    CEVPL_RESOLVE(setsockopt);
    CEVPL_RESOLVE(getsockopt);
    CEVPL_RESOLVE(getsockname);
    CEVPL_RESOLVE(getpeername);
    CEVPL_RESOLVE(read);
    CEVPL_RESOLVE(writev);
    CEVPL_RESOLVE(close);
    CEVPL_RESOLVE(shutdown);
    CEVPL_RESOLVE(epoll_create1);
    CEVPL_RESOLVE(epoll_ctl);
    CEVPL_RESOLVE(epoll_wait);
#undef CEVPL_RESOLVE
    return 0;  /* the handle stays open for the life of the process */
}

int cevpl_api_epoll_create(const cevpl_socket_api *api) { return api->epoll_create1(EPOLL_CLOEXEC); }

int cevpl_api_epoll_ctl(const cevpl_socket_api *api, int epfd, int op, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev = { .events = events, .data.u64 = data };
    return api->epoll_ctl(epfd, op, fd, &ev);
}

int cevpl_api_epoll_wait(const cevpl_socket_api *api, int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    return api->epoll_wait(epfd, events, maxevents, timeout);
}

int cevpl_unread_bytes(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

unsigned long cevpl_udp_segment_space(void)
{
    return CMSG_SPACE(sizeof(uint16_t));
}

void cevpl_udp_segment_cmsg(void *buf, uint16_t size)
{
    struct cmsghdr *c = buf;
    memset(buf, 0, CMSG_SPACE(sizeof(uint16_t)));
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(c), &size, sizeof size);
}
