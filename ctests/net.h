/*
 * Helpers shared by the C tests beyond harness.h (include it after
 * "harness.h"): free ports, plain POSIX sockets beside evpl, evpl_listen on
 * a free port, loops with a chosen idle wait and driving two loops at once,
 * and the process measurements (RSS, open descriptors) the resource tests
 * compare.  Addresses are numeric: "a.b.c.d" or an IPv6 literal ("::1").
 */
#ifndef EVPL_CTEST_NET_H
#define EVPL_CTEST_NET_H

#include "harness.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- addresses and ports --------------------------------------------------- */

/* The local address the evpl-to-evpl stream tests listen and connect on:
 * $EVPL_TEST_ADDR when set and not empty (ctests/run_rdma.sh sets it to an
 * RDMA-capable local address, since RDMA cannot use loopback), else
 * 127.0.0.1.  Checks that involve plain sockets keep 127.0.0.1. */
static inline const char *
test_addr(void)
{
    const char *a = getenv("EVPL_TEST_ADDR");
    return (a != NULL && a[0] != '\0') ? a : "127.0.0.1";
}

/* 1 unless EVPL_TEST_ADDR overrides 127.0.0.1: only then do the tests add
 * their loopback-only legs (::1). */
static inline int
test_addr_is_default(void)
{
    const char *a = getenv("EVPL_TEST_ADDR");
    return a == NULL || a[0] == '\0';
}

/* addr:port as a sockaddr (IPv6 when addr holds a ':'); 0 if addr does not parse. */
static inline int
net_sockaddr(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(addr, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t) port);
        if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1) return 0;
        *len = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *) ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t) port);
        if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1) return 0;
        *len = sizeof *s4;
    }
    return 1;
}

/* The port of an AF_INET or AF_INET6 sockaddr. */
static inline int
net_sockaddr_port(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *) ss)->sin6_port)
                                     : ntohs(((const struct sockaddr_in *) ss)->sin_port);
}

/* A TCP port on addr that was free a moment ago: bind a plain socket to
 * port 0 and read the port back.  -1 on failure (e.g. no ::1 here). */
static inline int
free_port(const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (!net_sockaddr(addr, 0, &ss, &sl)) return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *) &ss, sl) != 0 ||
        getsockname(fd, (struct sockaddr *) &ss, &sl) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return net_sockaddr_port(&ss);
}

/* The port of an address string "a.b.c.d:port" or "[v6]:port"; -1 without one. */
static inline int
addr_port(const char *s)
{
    const char *c = strrchr(s, ':');
    return c ? atoi(c + 1) : -1;
}

/* ---- plain POSIX sockets --------------------------------------------------- */

/* A blocking TCP socket connected to addr:port, with TCP_NODELAY when
 * nodelay is set; -1 (errno from the failing call) on failure. */
static inline int
raw_connect(const char *addr, int port, int nodelay)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (!net_sockaddr(addr, port, &ss, &sl)) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *) &ss, sl) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (nodelay) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* A plain TCP socket listening (backlog 4) on addr at a port the kernel
 * picks, written to *port_out.  Any failure fails the test. */
static inline int
plain_listen(const char *addr, int *port_out)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    CHECK(net_sockaddr(addr, 0, &ss, &sl));
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    CHECK_EQ(bind(fd, (struct sockaddr *) &ss, sl), 0);
    CHECK_EQ(listen(fd, 4), 0);
    CHECK_EQ(getsockname(fd, (struct sockaddr *) &ss, &sl), 0);
    *port_out = net_sockaddr_port(&ss);
    return fd;
}

/* Write all len bytes (retrying on EINTR and short writes); 0, or -1 on error. */
static inline int
write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        len -= (size_t) w;
    }
    return 0;
}

/* Read exactly len bytes (retrying on EINTR and short reads); 0, or -1 on
 * error or EOF first. */
static inline int
read_all(int fd, void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        len -= (size_t) r;
    }
    return 0;
}

/* ---- listening with evpl --------------------------------------------------- */

/* evpl_listen on addr at a port from free_port, up to 5 tries (someone may
 * take the port in between); returns the port, the endpoint in *ep_out.
 * (A listener has no bind to ask for a kernel-picked port.) */
static inline int
listen_free(struct evpl_listener *l, enum evpl_protocol_id proto, const char *addr,
            struct evpl_endpoint **ep_out)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = free_port(addr);
        CHECK(port > 0);
        struct evpl_endpoint *ep = evpl_endpoint_create(addr, port);
        CHECK(ep != NULL);
        if (evpl_listen(l, proto, ep) == 0) {
            *ep_out = ep;
            return port;
        }
        evpl_endpoint_close(ep);
    }
    CHECK(!"evpl_listen failed on 5 free ports");
    return -1;
}

/* evpl_listen on test_addr() (127.0.0.1 unless EVPL_TEST_ADDR) at a
 * pseudo-random port in 20000..49999, up to 20 tries; returns the port, or 0
 * if every try failed.  The endpoint of a successful listen goes to *ep_out,
 * or is closed when ep_out is NULL. */
static inline int
listen_random_port(struct evpl_listener *l, enum evpl_protocol_id proto, struct evpl_endpoint **ep_out)
{
    for (int tries = 0; tries < 20; tries++) {
        int p = 20000 + (int) ((now_us() * 7919 + (uint64_t) tries * 104729) % 30000);
        struct evpl_endpoint *ep = evpl_endpoint_create(test_addr(), p);
        if (evpl_listen(l, proto, ep) == 0) {
            if (ep_out) *ep_out = ep;
            else evpl_endpoint_close(ep);
            return p;
        }
        evpl_endpoint_close(ep);
    }
    return 0;
}

/* ---- loops ------------------------------------------------------------------- */

/* A loop whose idle passes wait at most wait_ms (test_loop() uses 10; two
 * loops alternating in one thread want 0 or 1). */
static inline struct evpl *
loop_with_wait(int wait_ms)
{
    struct evpl_thread_config *cfg = evpl_thread_config_init();
    evpl_thread_config_set_wait_ms(cfg, wait_ms);
    struct evpl *evpl = evpl_create(cfg);
    evpl_thread_config_release(cfg);
    CHECK(evpl != NULL);
    return evpl;
}

/* One pass of loop a, then one of b (b may be NULL). */
static inline void
pump(struct evpl *a, struct evpl *b)
{
    evpl_continue(a);
    if (b) evpl_continue(b);
}

/* A few more passes, to give a duplicate notification the chance to show. */
static inline void
settle(struct evpl *a, struct evpl *b)
{
    for (int i = 0; i < 5; i++) pump(a, b);
}

/* run_until for two loops (b may be NULL): drive both until *done or
 * timeout_ms passes; returns *done. */
static inline int
run_until2(struct evpl *a, struct evpl *b, const volatile int *done, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t) timeout_ms;
    while (!*done && now_ms() < end) pump(a, b);
    return *done;
}

/* Drive loops a and b (b may be NULL) until cond holds; fail the test,
 * naming cond, if it does not within ms milliseconds. */
#define WAIT_FOR2(a, b, cond, ms) do { \
        uint64_t _end = now_ms() + (uint64_t) (ms); \
        while (!(cond) && now_ms() < _end) pump((a), (b)); \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: timed out waiting for %s\n", __FILE__, __LINE__, #cond); \
            exit(1); \
        } \
} while (0)

/* ---- process resources --------------------------------------------------- */

/* Resident set size of this process in bytes (/proc/self/statm). */
static inline long
rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL);
    long size = 0, resident = 0;
    CHECK_EQ(fscanf(f, "%ld %ld", &size, &resident), 2);
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

/* The same in KiB. */
static inline long
rss_kib(void)
{
    return rss_bytes() / 1024;
}

/* Entries of directory path, not counting those whose name starts with '.';
 * -1 if it cannot be opened. */
static inline int
dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Descriptors open in this process (/proc/self/fd, less the one listing it). */
static inline int
open_fds(void)
{
    int n = dir_entries("/proc/self/fd");
    CHECK(n >= 0);
    return n - 1;   /* the directory stream itself */
}

#endif
