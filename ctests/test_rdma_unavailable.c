/*
 * The RDMA protocols where they cannot run (BEHAVIOR.md, Protocols), and the
 * one-sided RDMA calls on a bind that is not RDMA.
 *  1. in a forked child whose global config sets rdmacm_enabled 0: the three
 *     RDMA protocols report 0 (TCP 1), and evpl_connect over
 *     STREAM_RDMACM_RC returns NULL with one logged line naming the protocol
 *     and "rdmacm_enabled";
 *  2. evpl_protocol_lookup maps DATAGRAM_RDMACM_RC, DATAGRAM_RDMACM_UD and
 *     STREAM_RDMACM_RC to their ids (inexact names: -1);
 *     evpl_protocol_is_stream is 1 for STREAM_RDMACM_RC, 0 for the datagram
 *     ones;
 *  3. on a connected STREAM_SOCKET_TCP pair on 127.0.0.1:
 *     evpl_rdma_get_address sets r_key and r_address to 0 and logs one line;
 *     evpl_rdma_read and evpl_rdma_write (with and without
 *     EVPL_RDMA_FLAG_TAKE_REF) call their callback once, status ENOTSUP,
 *     with their private_data; with TAKE_REF the library released the
 *     caller's reference (the loop's buffer rewinds: the next allocation
 *     gets the same address), without it the caller's reference is intact
 *     (the next allocation does not); the connection still echoes after;
 *  4. with an RDMA device present the rest is skipped (77).  Without one:
 *     evpl_protocol_available is 0 for the three (asked twice), and
 *     evpl_connect, evpl_bind and evpl_listen over each of them return
 *     NULL / NULL / -1, each with exactly one logged line that names the
 *     calling function, the protocol and the reason ("no RDMA device" when
 *     rdma-core loads; the loader's error when it does not).
 */
#include "harness.h"
#include "net.h"

#include <pthread.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- captured log lines ------------------------------------------------------ */

#define MAXLINES 512

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char            lines[MAXLINES][512];
static int             nlines;

static void
capture_log(const char *level, const char *module, const char *srcfile, int lineno,
            const char *fmt, va_list argp)
{
    char line[512];
    (void) srcfile;
    (void) lineno;
    vsnprintf(line, sizeof(line), fmt, argp);
    fprintf(stderr, "log: %s %s: %s\n", level ? level : "?", module ? module : "?", line);
    pthread_mutex_lock(&log_mu);
    if (nlines < MAXLINES) {
        memcpy(lines[nlines], line, sizeof line);
    }
    nlines++;
    pthread_mutex_unlock(&log_mu);
}

static int
log_mark(void)
{
    pthread_mutex_lock(&log_mu);
    int n = nlines;
    pthread_mutex_unlock(&log_mu);
    return n;
}

/* Exactly one line was logged since mark, and it holds each of the strings
 * (NULL-terminated list); fails the test otherwise. */
static void
check_one_line(int mark, const char *what, ...)
{
    pthread_mutex_lock(&log_mu);
    int n = nlines;
    pthread_mutex_unlock(&log_mu);
    if (n - mark != 1) {
        fprintf(stderr, "%s: %d lines logged, want exactly 1\n", what, n - mark);
        CHECK_EQ(n - mark, 1);
    }
    CHECK(mark < MAXLINES);
    va_list ap;
    va_start(ap, what);
    for (const char *s = va_arg(ap, const char *); s != NULL; s = va_arg(ap, const char *)) {
        if (strstr(lines[mark], s) == NULL) {
            fprintf(stderr, "%s: logged line \"%s\" lacks \"%s\"\n", what, lines[mark], s);
            CHECK(!"the logged line names what it should");
        }
    }
    va_end(ap);
}

/* ---- 1: rdmacm_enabled 0, in a child ----------------------------------------- */

static void
never_called(struct evpl *ev, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) ev;
    (void) bind;
    (void) priv;
    fprintf(stderr, "notify type %u on a bind that should not exist\n", n->notify_type);
    CHECK(0);
}

static const enum evpl_protocol_id rdma_ids[3] = {
    EVPL_DATAGRAM_RDMACM_RC, EVPL_DATAGRAM_RDMACM_UD, EVPL_STREAM_RDMACM_RC,
};
static const char *const rdma_names[3] = {
    "DATAGRAM_RDMACM_RC", "DATAGRAM_RDMACM_UD", "STREAM_RDMACM_RC",
};

static void
disabled_child(void)
{
    evpl_set_log_fn(capture_log, NULL);
    struct evpl_global_config *g = evpl_global_config_init();
    CHECK(g != NULL);
    evpl_global_config_set_rdmacm_enabled(g, 0);
    evpl_init(g);
    for (int i = 0; i < 3; i++) CHECK_EQ(evpl_protocol_available(rdma_ids[i]), 0);
    CHECK_EQ(evpl_protocol_available(EVPL_STREAM_SOCKET_TCP), 1);
    struct evpl *evpl = test_loop();
    struct evpl_endpoint *ep = evpl_endpoint_create("127.0.0.1", 9);
    CHECK(ep != NULL);
    int mark = log_mark();
    CHECK(evpl_connect(evpl, EVPL_STREAM_RDMACM_RC, NULL, ep, never_called, NULL, NULL) == NULL);
    check_one_line(mark, "rdmacm_enabled 0: evpl_connect", "STREAM_RDMACM_RC", "rdmacm_enabled", NULL);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
}

static void
run_disabled_child(void)
{
    fprintf(stderr, "1: rdmacm_enabled 0 (forked child)\n");
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        disabled_child();  /* exits 1 on a failed check */
        fflush(stderr);
        _exit(0);
    }
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st)) fprintf(stderr, "the child ended with wait status %#x\n", st);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
}

/* ---- 3: one-sided calls on a TCP bind ---------------------------------------- */

struct conn {
    struct evpl_bind *bind;
    int               connected, disconnected, len;
    char              data[64];
};

static struct conn cl, srv;

static void
conn_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct conn *c = priv;
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        c->connected++;
        break;
    case EVPL_NOTIFY_DISCONNECTED:
        c->disconnected++;
        break;
    case EVPL_NOTIFY_RECV_DATA: {
        char buf[64];
        int  got = evpl_recv(evpl, bind, buf, sizeof buf, 0);
        if (got > 0) {
            if (c == &srv) evpl_send(evpl, bind, buf, got);  /* echo */
            else if (c->len + got <= (int) sizeof c->data) {
                memcpy(c->data + c->len, buf, got);
                c->len += got;
            }
        }
        break;
    }
    default:
        break;
    }
}

static void
server_attach(struct evpl *ev, struct evpl_bind *bind, evpl_notify_callback_t *nc,
              evpl_segment_callback_t *sc, void **conn_priv, void *priv)
{
    (void) ev;
    (void) priv;
    srv.bind = bind;
    *nc = conn_notify;
    *sc = NULL;
    *conn_priv = &srv;
}

struct done {
    int calls, status;
};

static void
rdma_done(int status, void *private_data)
{
    struct done *d = private_data;
    d->calls++;
    d->status = status;
}

/* Drive the loop until d has its callback, then a few passes more. */
static void
wait_done(struct evpl *evpl, struct done *d, const char *what)
{
    uint64_t end = now_ms() + 5000;
    while (d->calls == 0 && now_ms() < end) evpl_continue(evpl);
    for (int i = 0; i < 5; i++) evpl_continue(evpl);
    fprintf(stderr, "   %s: %d callback(s), status %d\n", what, d->calls, d->status);
    CHECK_EQ(d->calls, 1);
    CHECK_EQ(d->status, ENOTSUP);
}

static void
one_sided_on_tcp(void)
{
    fprintf(stderr, "3: evpl_rdma_* on a STREAM_SOCKET_TCP bind\n");
    struct evpl *evpl = test_loop();
    struct evpl_listener *listener = evpl_listener_create();
    CHECK(listener != NULL);
    struct evpl_listener_binding *lb = evpl_listener_attach(evpl, listener, server_attach, NULL);
    CHECK(lb != NULL);
    struct evpl_endpoint *lep = NULL;
    int port = listen_free(listener, EVPL_STREAM_SOCKET_TCP, "127.0.0.1", &lep);
    struct evpl_endpoint *rep = evpl_endpoint_create("127.0.0.1", port);
    CHECK(rep != NULL);
    cl.bind = evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, rep, conn_notify, NULL, &cl);
    CHECK(cl.bind != NULL);
    WAIT_FOR2(evpl, NULL, cl.connected && srv.connected, 10000);

    /* The iovecs come from a loop of their own that nothing else allocates
     * from: its current buffer rewinds once every reference but the pool's
     * is home, so whether an iovec's reference was dropped shows in the
     * address of the next allocation. */
    struct evpl *mem = test_loop();
    struct evpl_iovec a, b;
    CHECK_EQ(evpl_iovec_alloc(mem, 4096, 0, 1, &a), 1);
    evpl_iovec_release(&a);
    CHECK_EQ(evpl_iovec_alloc(mem, 4096, 0, 1, &b), 1);
    int rewinds = evpl_iovec_data(&b) == evpl_iovec_data(&a);
    evpl_iovec_release(&b);
    if (!rewinds) {
        fprintf(stderr, "   note: the loop's buffer does not rewind here; the reference checks "
                "rely on valgrind (make valgrind) instead\n");
    }

    /* evpl_rdma_get_address: both outputs 0, one line. */
    struct evpl_iovec iov;
    CHECK_EQ(evpl_iovec_alloc(mem, 4096, 0, 1, &iov), 1);
    uint32_t key = 0xdeadbeefu;
    uint64_t addr = 0xdeadbeefcafef00dull;
    int mark = log_mark();
    evpl_rdma_get_address(evpl, cl.bind, &iov, &key, &addr);
    CHECK_EQ(key, 0);
    CHECK_EQ(addr, 0);
    check_one_line(mark, "evpl_rdma_get_address on TCP", "evpl_rdma_get_address", NULL);

    /* evpl_rdma_read: ENOTSUP; the caller keeps its reference. */
    struct done rd = { 0, -1 };
    evpl_rdma_read(evpl, cl.bind, 1, 0x1000, &iov, 1, rdma_done, &rd);
    wait_done(evpl, &rd, "evpl_rdma_read");

    /* evpl_rdma_write without TAKE_REF: ENOTSUP; the caller keeps its reference. */
    struct done wr = { 0, -1 };
    evpl_rdma_write(evpl, cl.bind, 1, 0x1000, &iov, 1, 0, rdma_done, &wr);
    wait_done(evpl, &wr, "evpl_rdma_write");
    if (rewinds) {
        CHECK_EQ(evpl_iovec_alloc(mem, 4096, 0, 1, &b), 1);
        CHECK(evpl_iovec_data(&b) != evpl_iovec_data(&iov));  /* iov is still held */
        evpl_iovec_release(&b);
    }
    evpl_iovec_release(&iov);

    /* evpl_rdma_write with TAKE_REF: ENOTSUP, and the reference is gone. */
    CHECK_EQ(evpl_iovec_alloc(mem, 4096, 0, 1, &iov), 1);
    void *taken = evpl_iovec_data(&iov);
    struct done wt = { 0, -1 };
    evpl_rdma_write(evpl, cl.bind, 1, 0x1000, &iov, 1, EVPL_RDMA_FLAG_TAKE_REF, rdma_done, &wt);
    wait_done(evpl, &wt, "evpl_rdma_write TAKE_REF");
    if (rewinds) {
        CHECK_EQ(evpl_iovec_alloc(mem, 4096, 0, 1, &b), 1);
        CHECK(evpl_iovec_data(&b) == taken);  /* released by the library */
        evpl_iovec_release(&b);
    }

    /* The connection is unaffected. */
    CHECK_EQ(cl.disconnected + srv.disconnected, 0);
    evpl_send(evpl, cl.bind, "after", 5);
    WAIT_FOR2(evpl, NULL, cl.len >= 5, 5000);
    CHECK(memcmp(cl.data, "after", 5) == 0);

    evpl_close(evpl, cl.bind);
    WAIT_FOR2(evpl, NULL, cl.disconnected && srv.disconnected, 5000);
    evpl_listener_detach(evpl, lb);
    evpl_listener_destroy(listener);
    evpl_destroy(mem);
    evpl_destroy(evpl);
    evpl_endpoint_close(rep);
    evpl_endpoint_close(lep);
}

/* ---- 4: unavailable protocols ------------------------------------------------- */

static void
unavailable(void)
{
    fprintf(stderr, "4: the RDMA protocols with no RDMA device\n");
    struct evpl *evpl = test_loop();
    struct evpl_endpoint *ep = evpl_endpoint_create("127.0.0.1", 9);
    struct evpl_endpoint *ep0 = evpl_endpoint_create("127.0.0.1", 0);
    CHECK(ep != NULL && ep0 != NULL);
    struct evpl_listener *listener = evpl_listener_create();
    CHECK(listener != NULL);

    for (int i = 0; i < 3; i++) {
        enum evpl_protocol_id p = rdma_ids[i];
        const char *name = rdma_names[i];
        CHECK_EQ(evpl_protocol_available(p), 0);
        CHECK_EQ(evpl_protocol_available(p), 0);  /* the same answer again */

        int mark = log_mark();
        CHECK(evpl_connect(evpl, p, NULL, ep, never_called, NULL, NULL) == NULL);
        check_one_line(mark, "evpl_connect", "evpl_connect", name, "unavailable", NULL);
        fprintf(stderr, "   %s: evpl_connect NULL: \"%s\"\n", name, lines[mark]);
        /* The reason follows "unavailable: ". */
        const char *why = strstr(lines[mark], "unavailable: ");
        CHECK(why != NULL && why[strlen("unavailable: ")] != '\0');

        mark = log_mark();
        CHECK(evpl_bind(evpl, p, ep0, never_called, NULL) == NULL);
        check_one_line(mark, "evpl_bind", "evpl_bind", name, "unavailable", NULL);

        mark = log_mark();
        CHECK_EQ(evpl_listen(listener, p, ep), -1);
        check_one_line(mark, "evpl_listen", "evpl_listen", name, "unavailable", NULL);
    }
    const char *why = strstr(lines[log_mark() - 1], "unavailable: ") + strlen("unavailable: ");
    if (strstr(why, "no RDMA device") == NULL) {
        fprintf(stderr, "   note: the reason is \"%s\" (rdma-core did not load), not \"no RDMA device\"\n",
                why);
    }

    /* Nothing was left behind for the loop to act on. */
    for (int i = 0; i < 5; i++) evpl_continue(evpl);
    evpl_listener_destroy(listener);
    evpl_endpoint_close(ep);
    evpl_endpoint_close(ep0);
    evpl_destroy(evpl);
}

int
main(void)
{
    run_disabled_child();  /* before this process touches the library */

    evpl_set_log_fn(capture_log, NULL);
    evpl_init(NULL);

    fprintf(stderr, "2: names, ids, stream or not\n");
    for (int i = 0; i < 3; i++) {
        enum evpl_protocol_id id = EVPL_NUM_PROTO;
        CHECK_EQ(evpl_protocol_lookup(&id, rdma_names[i]), 0);
        CHECK_EQ(id, rdma_ids[i]);
    }
    CHECK_EQ(EVPL_DATAGRAM_RDMACM_RC, 1);
    CHECK_EQ(EVPL_DATAGRAM_RDMACM_UD, 2);
    CHECK_EQ(EVPL_STREAM_RDMACM_RC, 6);
    enum evpl_protocol_id id;
    CHECK_EQ(evpl_protocol_lookup(&id, "stream_rdmacm_rc"), -1);
    CHECK_EQ(evpl_protocol_lookup(&id, "STREAM_RDMACM"), -1);
    CHECK_EQ(evpl_protocol_is_stream(EVPL_STREAM_RDMACM_RC), 1);
    CHECK_EQ(evpl_protocol_is_stream(EVPL_DATAGRAM_RDMACM_RC), 0);
    CHECK_EQ(evpl_protocol_is_stream(EVPL_DATAGRAM_RDMACM_UD), 0);

    one_sided_on_tcp();

    if (evpl_protocol_available(EVPL_STREAM_RDMACM_RC) == 1) {
        SKIP("this machine has an RDMA device (STREAM_RDMACM_RC is available); the "
             "unavailable-protocol checks need one without (checks 1-3 passed)");
    }
    unavailable();
    return 0;
}
