/*
 * Some explanation is required here: Swift's Glibc module is built without
 * _GNU_SOURCE, so it hides accept4, sendmmsg/recvmmsg and struct mmsghdr, and
 * macros such as the EPOLL* flags with the high bit set do not import as
 * constants of a useful type.  Each function here is a one-line forwarder;
 * no state, no logic, no allocation.  Prefix cevpl_, never evpl_ (the version
 * script exports evpl_* only), and hidden visibility.
 */
#ifndef CEVPL_LINUX_H
#define CEVPL_LINUX_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>

#define CEVPL_HIDDEN __attribute__((visibility("hidden")))

/* struct mmsghdr mirrored (asserted in shim.c). */
typedef struct {
    struct msghdr msg_hdr;
    unsigned int  msg_len;
} cevpl_mmsghdr;

static const uint32_t CEVPL_EPOLLIN = EPOLLIN;
static const uint32_t CEVPL_EPOLLOUT = EPOLLOUT;
static const uint32_t CEVPL_EPOLLERR = EPOLLERR;
static const uint32_t CEVPL_EPOLLHUP = EPOLLHUP;
static const uint32_t CEVPL_EPOLLRDHUP = EPOLLRDHUP;
static const uint32_t CEVPL_EPOLLET = EPOLLET;
static const uint32_t CEVPL_EPOLLEXCLUSIVE = EPOLLEXCLUSIVE;
static const int CEVPL_MSG_TRUNC = MSG_TRUNC;
/* SOCK_* are enum constants in glibc that the static SDK's Glibc module hides. */
static const int CEVPL_SOCK_STREAM = SOCK_STREAM;
static const int CEVPL_SOCK_DGRAM = SOCK_DGRAM;
static const int CEVPL_SOCK_NONBLOCK = SOCK_NONBLOCK;
static const int CEVPL_SOCK_CLOEXEC = SOCK_CLOEXEC;

CEVPL_HIDDEN int cevpl_epoll_create(void);
CEVPL_HIDDEN int cevpl_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
CEVPL_HIDDEN int cevpl_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);
/* epoll_pwait2: nanosecond timeouts (microsecond timers); < 0 waits forever. */
CEVPL_HIDDEN int cevpl_epoll_wait_ns(int epfd, struct epoll_event *events, int maxevents, int64_t timeout_ns);
CEVPL_HIDDEN uint64_t cevpl_epoll_event_data(const struct epoll_event *events, int i);
CEVPL_HIDDEN uint32_t cevpl_epoll_event_events(const struct epoll_event *events, int i);
CEVPL_HIDDEN unsigned long cevpl_epoll_event_size(void);

CEVPL_HIDDEN int cevpl_eventfd(void);

CEVPL_HIDDEN int cevpl_accept4(int fd, struct sockaddr *addr, socklen_t *len);
CEVPL_HIDDEN int cevpl_sendmmsg(int fd, cevpl_mmsghdr *v, unsigned int n, int flags);
CEVPL_HIDDEN int cevpl_recvmmsg(int fd, cevpl_mmsghdr *v, unsigned int n, int flags);
CEVPL_HIDDEN int cevpl_socket(int domain, int type, int protocol);
/* UDP GSO (UDP_SEGMENT, Linux 4.18): the control message that has the
 * kernel cut one send's payload into datagrams of `size` bytes each. */
CEVPL_HIDDEN unsigned long cevpl_udp_segment_space(void);
CEVPL_HIDDEN void cevpl_udp_segment_cmsg(void *buf, uint16_t size);
/* ioctl(FIONREAD) (ioctl is variadic): bytes waiting in a socket's receive queue, or -1. */
CEVPL_HIDDEN int cevpl_unread_bytes(int fd);
/* O_DIRECT is a _GNU_SOURCE flag. */
CEVPL_HIDDEN int cevpl_o_direct(void);

/*
 * The socket entry points the TCP transport uses, as a table: libc's (filled
 * by cevpl_socket_api_kernel, plain references), or those of a library opened
 * at run time (libxlio.so, filled by cevpl_socket_api_open with dlsym).  Never
 * a link-time dependency on that library.
 */
typedef struct cevpl_socket_api {
    int (*socket)(int domain, int type, int protocol);
    int (*bind)(int fd, const struct sockaddr *addr, socklen_t len);
    int (*listen)(int fd, int backlog);
    int (*accept4)(int fd, struct sockaddr *addr, socklen_t *len, int flags);
    int (*connect)(int fd, const struct sockaddr *addr, socklen_t len);
    int (*setsockopt)(int fd, int level, int name, const void *value, socklen_t len);
    int (*getsockopt)(int fd, int level, int name, void *value, socklen_t *len);
    int (*getsockname)(int fd, struct sockaddr *addr, socklen_t *len);
    int (*getpeername)(int fd, struct sockaddr *addr, socklen_t *len);
    ssize_t (*read)(int fd, void *buf, size_t n);
    ssize_t (*writev)(int fd, const struct iovec *iov, int n);
    int (*close)(int fd);
    int (*shutdown)(int fd, int how);
    int (*epoll_create1)(int flags);
    int (*epoll_ctl)(int epfd, int op, int fd, struct epoll_event *event);
    int (*epoll_wait)(int epfd, struct epoll_event *events, int maxevents, int timeout);
} cevpl_socket_api;

CEVPL_HIDDEN void cevpl_socket_api_kernel(cevpl_socket_api *api);
/*
 * dlopen(path, RTLD_NOW | RTLD_LOCAL) and dlsym of every entry point.  0 on
 * success; -1 with *error set (dlerror's text, or the missing symbol's name,
 * in a static buffer) when the library does not load or lacks an entry point.
 */
CEVPL_HIDDEN int cevpl_socket_api_open(const char *path, cevpl_socket_api *api, const char **error);
/* epoll_ctl / epoll_create1(EPOLL_CLOEXEC) through a table (struct epoll_event is packed on x86-64). */
CEVPL_HIDDEN int cevpl_api_epoll_create(const cevpl_socket_api *api);
CEVPL_HIDDEN int cevpl_api_epoll_ctl(const cevpl_socket_api *api, int epfd, int op, int fd,
                                     uint32_t events, uint64_t data);
CEVPL_HIDDEN int cevpl_api_epoll_wait(const cevpl_socket_api *api, int epfd, struct epoll_event *events,
                                      int maxevents, int timeout);


#endif
