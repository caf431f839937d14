/*
 * A stand-in for libxlio.so in the tests (issue 10): it exports the POSIX
 * socket entry points STREAM_XLIO_TCP resolves (socket, bind, listen,
 * accept4, connect, setsockopt, getsockopt, getsockname, getpeername, read,
 * readv, writev, recv, send, close, shutdown, epoll_create1, epoll_ctl,
 * epoll_wait) under their normal names, each forwarding to the kernel with
 * syscall(2): no libc entry point of the same name is called, so nothing can
 * recurse into these definitions, whatever the symbol lookup order.
 *
 * With EVPL_XLIO_STANDIN_STATS set, it prints one line when the process
 * exits: "xlio-standin: sockets=N accepts=N reads=N writes=N polls=N", so a
 * test runner can see that the traffic went through it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

static atomic_long n_sockets, n_accepts, n_reads, n_writes, n_polls;

__attribute__((destructor)) static void
report(void)
{
    if (getenv("EVPL_XLIO_STANDIN_STATS") == NULL) return;
    fprintf(stderr, "xlio-standin: sockets=%ld accepts=%ld reads=%ld writes=%ld polls=%ld\n",
            atomic_load(&n_sockets), atomic_load(&n_accepts), atomic_load(&n_reads),
            atomic_load(&n_writes), atomic_load(&n_polls));
}

EXPORT int socket(int domain, int type, int protocol)
{
    atomic_fetch_add(&n_sockets, 1);
    return (int) syscall(SYS_socket, domain, type, protocol);
}

EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    return (int) syscall(SYS_bind, fd, addr, len);
}

EXPORT int listen(int fd, int backlog)
{
    return (int) syscall(SYS_listen, fd, backlog);
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int r = (int) syscall(SYS_accept4, fd, addr, len, flags);
    if (r >= 0) atomic_fetch_add(&n_accepts, 1);
    return r;
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return accept4(fd, addr, len, 0);
}

EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    return (int) syscall(SYS_connect, fd, addr, len);
}

EXPORT int setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
    return (int) syscall(SYS_setsockopt, fd, level, name, value, len);
}

EXPORT int getsockopt(int fd, int level, int name, void *value, socklen_t *len)
{
    return (int) syscall(SYS_getsockopt, fd, level, name, value, len);
}

EXPORT int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    return (int) syscall(SYS_getsockname, fd, addr, len);
}

EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    return (int) syscall(SYS_getpeername, fd, addr, len);
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    atomic_fetch_add(&n_reads, 1);
    return syscall(SYS_read, fd, buf, n);
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
    atomic_fetch_add(&n_reads, 1);
    return syscall(SYS_readv, fd, iov, n);
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    atomic_fetch_add(&n_reads, 1);
    return syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
    atomic_fetch_add(&n_writes, 1);
    return syscall(SYS_writev, fd, iov, n);
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    atomic_fetch_add(&n_writes, 1);
    return syscall(SYS_sendto, fd, buf, n, flags, NULL, 0);
}

EXPORT int close(int fd)
{
    return (int) syscall(SYS_close, fd);
}

EXPORT int shutdown(int fd, int how)
{
    return (int) syscall(SYS_shutdown, fd, how);
}

EXPORT int epoll_create1(int flags)
{
    return (int) syscall(SYS_epoll_create1, flags);
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    return (int) syscall(SYS_epoll_ctl, epfd, op, fd, event);
}

EXPORT int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    atomic_fetch_add(&n_polls, 1);
    /* epoll_pwait with no signal mask: the one every architecture has. */
    return (int) syscall(SYS_epoll_pwait, epfd, events, maxevents, timeout, NULL, (size_t) 8);
}
