/* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/*
 * Listeners.
 *  1. one listener attached to two loops running in two evpl threads (attach
 *     in the init callback, detach in the shutdown callback); 40 clients on
 *     the main thread's loop: every echo succeeds, each server loop gets at
 *     least 10 of the connections (round-robin: 20 each expected), and every
 *     server callback runs on its own loop's thread;
 *  2. after the threads are gone and the listener is destroyed, a new
 *     listener listens on the same port at once (SO_REUSEADDR) and serves;
 *  3. evpl_listen on a port a plain socket is listening on returns -1;
 *  4. one listener on two ports, 127.0.0.1 and ::1, accepts on both.
 */
#include "harness.h"
#include "net.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#define NCLIENT 40
#define MSGLEN  100

static enum evpl_protocol_id proto;
static struct evpl_listener *listener;

/* ---- server side: one "worker" per loop ----------------------------------- */

struct worker {
    struct evpl                  *evpl;
    pthread_t                     tid;
    struct evpl_listener_binding *lb;
    _Atomic int                   conns;
    _Atomic int                   shut;
    _Atomic int                   wrong_thread;
};

struct sconn {
    struct worker    *w;
    struct evpl_bind *bind;
    int               connected;
    char              local[128];
};

static _Atomic int s_connected, s_disconnected, s_bad_status;
static struct sconn *_Atomic last_sconn;  /* the newest accepted connection */

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct sconn *s = priv;
    if (!pthread_equal(pthread_self(), s->w->tid) || evpl != s->w->evpl) {
        atomic_fetch_add(&s->w->wrong_thread, 1);
    }
    CHECK(bind == s->bind);
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        s->connected++;
        evpl_bind_get_local_address(bind, s->local, sizeof s->local);
        atomic_fetch_add(&s_connected, 1);
        break;
    case EVPL_NOTIFY_RECV_DATA: {
        char buf[4096];
        int  r;
        while ((r = evpl_recv(evpl, bind, buf, sizeof buf, 0)) > 0) evpl_send(evpl, bind, buf, (unsigned) r);
        CHECK_EQ(r, 0);
        break;
    }
    case EVPL_NOTIFY_DISCONNECTED:
        if (n->notify_status != 0) atomic_fetch_add(&s_bad_status, 1);
        atomic_fetch_add(&s_disconnected, 1);
        free(s);
        break;
    default:
        fprintf(stderr, "server: unexpected notify type %u\n", n->notify_type);
        CHECK(0);
    }
}

static void
server_attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *nc,
              evpl_segment_callback_t *sc, void **conn_priv, void *priv)
{
    struct worker *w = priv;
    if (!pthread_equal(pthread_self(), w->tid) || evpl != w->evpl) atomic_fetch_add(&w->wrong_thread, 1);
    struct sconn *s = calloc(1, sizeof *s);
    CHECK(s != NULL);
    s->w = w;
    s->bind = bind;
    atomic_fetch_add(&w->conns, 1);
    atomic_store(&last_sconn, s);
    *nc = server_notify;
    *sc = NULL;
    *conn_priv = s;
}

static void *
worker_init(struct evpl *evpl, void *priv)
{
    struct worker *w = priv;
    w->evpl = evpl;
    w->tid = pthread_self();
    w->lb = evpl_listener_attach(evpl, listener, server_attach, w);
    CHECK(w->lb != NULL);
    return w;
}

static void
worker_shutdown(struct evpl *evpl, void *priv)
{
    struct worker *w = priv;
    CHECK(evpl == w->evpl);
    if (!pthread_equal(pthread_self(), w->tid)) atomic_fetch_add(&w->wrong_thread, 1);
    evpl_listener_detach(evpl, w->lb);
    atomic_store(&w->shut, 1);
}

/* ---- clients on the main loop ------------------------------------------------- */

struct cconn {
    struct evpl_bind *bind;
    int               id;
    int               connected, disconnected, status, done;
};

static int c_done, c_disconnected;

static void
make_msg(unsigned char *m, int id)
{
    for (int j = 0; j < MSGLEN; j++) m[j] = (unsigned char) (id * 37 + j * 3);
}

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct cconn *c = priv;
    unsigned char m[MSGLEN], want[MSGLEN];
    CHECK(bind == c->bind);
    CHECK_EQ(c->disconnected, 0);
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        c->connected++;
        make_msg(m, c->id);
        evpl_send(evpl, bind, m, MSGLEN);
        break;
    case EVPL_NOTIFY_RECV_DATA: {
        int r = evpl_recv(evpl, bind, m, MSGLEN, EVPL_RECV_FLAG_ALL_OR_NONE);
        if (r == MSGLEN) {
            make_msg(want, c->id);
            CHECK(memcmp(m, want, MSGLEN) == 0);
            CHECK(!c->done);
            c->done = 1;
            c_done++;
        } else {
            CHECK_EQ(r, 0);
        }
        break;
    }
    case EVPL_NOTIFY_DISCONNECTED:
        c->disconnected++;
        c->status = n->notify_status;
        c_disconnected++;
        break;
    default:
        fprintf(stderr, "client: unexpected notify type %u\n", n->notify_type);
        CHECK(0);
    }
}

/* Connect n clients to ep from evpl, wait for every echo.  At most 10 are
 * in their handshake/echo at a time, so the default accept backlog (16)
 * never overflows (an overflow costs a 1 s SYN retransmit); they all stay
 * open until close_clients. */
static void
echo_clients(struct evpl *evpl, struct evpl_endpoint *ep, struct cconn *cl, int n)
{
    int done0 = c_done, started = 0;
    memset(cl, 0, sizeof *cl * (size_t) n);
    uint64_t end = now_ms() + 20000;
    while (c_done - done0 < n && now_ms() < end) {
        for (; started - (c_done - done0) < 10 && started < n; started++) {
            cl[started].id = started;
            cl[started].bind = evpl_connect(evpl, proto, NULL, ep, client_notify, NULL, &cl[started]);
            CHECK(cl[started].bind != NULL);
        }
        evpl_continue(evpl);
    }
    CHECK_EQ(c_done - done0, n);
}

/* Close them; wait for both sides' DISCONNECTED. */
static void
close_clients(struct evpl *evpl, struct cconn *cl, int n)
{
    int cd0 = c_disconnected, sd0 = atomic_load(&s_disconnected);
    for (int i = 0; i < n; i++) evpl_close(evpl, cl[i].bind);
    uint64_t end = now_ms() + 20000;
    while ((c_disconnected - cd0 < n || atomic_load(&s_disconnected) - sd0 < n) && now_ms() < end) {
        evpl_continue(evpl);
    }
    CHECK_EQ(c_disconnected - cd0, n);
    CHECK_EQ(atomic_load(&s_disconnected) - sd0, n);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(cl[i].disconnected, 1);
        CHECK_EQ(cl[i].status, 0);
    }
    CHECK_EQ(atomic_load(&s_bad_status), 0);
}

int
main(int argc, char **argv)
{
    proto = test_protocol(argc, argv, EVPL_STREAM_SOCKET_TCP);
    if (!evpl_protocol_available(proto)) SKIP("protocol %d not available", (int) proto);

    struct evpl *evpl = test_loop();
    static struct cconn cl[NCLIENT];

    /* ---- 1: two server threads ---- */
    fprintf(stderr, "1: one listener, two server threads, %d clients\n", NCLIENT);
    listener = evpl_listener_create();
    CHECK(listener != NULL);
    static struct worker w[2];
    struct evpl_thread *th[2];
    struct evpl_thread_config *tcfg = evpl_thread_config_init();
    evpl_thread_config_set_wait_ms(tcfg, 10);
    for (int i = 0; i < 2; i++) {
        th[i] = evpl_thread_create(tcfg, worker_init, worker_shutdown, &w[i]);
        CHECK(th[i] != NULL);
        CHECK(w[i].lb != NULL);  /* init has run when evpl_thread_create returns */
    }
    evpl_thread_config_release(tcfg);
    struct evpl_endpoint *lep = NULL;
    int port = listen_free(listener, proto, "127.0.0.1", &lep);
    struct evpl_endpoint *rep = evpl_endpoint_create("127.0.0.1", port);
    CHECK(rep != NULL);

    echo_clients(evpl, rep, cl, NCLIENT);
    int n0 = atomic_load(&w[0].conns), n1 = atomic_load(&w[1].conns);
    fprintf(stderr, "   thread 0 got %d connections, thread 1 got %d\n", n0, n1);
    CHECK_EQ(n0 + n1, NCLIENT);
    CHECK(n0 >= 10);
    CHECK(n1 >= 10);
    close_clients(evpl, cl, NCLIENT);
    CHECK_EQ(atomic_load(&s_connected), NCLIENT);
    CHECK_EQ(atomic_load(&w[0].wrong_thread), 0);
    CHECK_EQ(atomic_load(&w[1].wrong_thread), 0);

    for (int i = 0; i < 2; i++) {
        evpl_thread_destroy(th[i]);
        CHECK_EQ(atomic_load(&w[i].shut), 1);
    }
    evpl_listener_destroy(listener);

    /* ---- 2: the same port again, at once ---- */
    fprintf(stderr, "2: listen again on port %d right after destroy\n", port);
    static struct worker wm;
    wm.evpl = evpl;
    wm.tid = pthread_self();
    listener = evpl_listener_create();
    CHECK(listener != NULL);
    wm.lb = evpl_listener_attach(evpl, listener, server_attach, &wm);
    CHECK(wm.lb != NULL);
    CHECK_EQ(evpl_listen(listener, proto, lep), 0);
    echo_clients(evpl, rep, cl, 3);
    CHECK_EQ(atomic_load(&wm.conns), 3);
    close_clients(evpl, cl, 3);

    /* ---- 3: a port a plain socket listens on ---- */
    fprintf(stderr, "3: evpl_listen on a port in use\n");
    {
        int busy_port;
        int fd = plain_listen("127.0.0.1", &busy_port);
        struct evpl_endpoint *busy = evpl_endpoint_create("127.0.0.1", busy_port);
        CHECK(busy != NULL);
        CHECK_EQ(evpl_listen(listener, proto, busy), -1);
        close(fd);
        evpl_endpoint_close(busy);
        /* The listener's other port is unaffected. */
        echo_clients(evpl, rep, cl, 1);
        close_clients(evpl, cl, 1);
    }

    /* ---- 4: IPv4 and IPv6 on one listener ---- */
    if (free_port("::1") > 0) {
        fprintf(stderr, "4: one listener on 127.0.0.1 and ::1\n");
        struct evpl_endpoint *lep6 = NULL;
        int port6 = listen_free(listener, proto, "::1", &lep6);
        struct evpl_endpoint *rep6 = evpl_endpoint_create("::1", port6);
        CHECK(rep6 != NULL);

        int before = atomic_load(&wm.conns);
        echo_clients(evpl, rep6, cl, 1);
        CHECK_EQ(atomic_load(&wm.conns), before + 1);
        close_clients(evpl, cl, 1);

        /* One more on each address: the server side's local address says
         * which port accepted it. */
        for (int v = 0; v < 2; v++) {
            char want[64];
            if (v) snprintf(want, sizeof want, "[::1]:%d", port6);
            else snprintf(want, sizeof want, "127.0.0.1:%d", port);
            int c0 = atomic_load(&wm.conns);
            echo_clients(evpl, v ? rep6 : rep, cl, 1);
            CHECK_EQ(atomic_load(&wm.conns), c0 + 1);
            struct sconn *s = atomic_load(&last_sconn);
            CHECK(s != NULL && s->connected == 1);
            CHECK(strcmp(s->local, want) == 0);
            close_clients(evpl, cl, 1);
        }
        evpl_endpoint_close(rep6);
        evpl_endpoint_close(lep6);
    } else {
        fprintf(stderr, "note: no ::1 on this machine, dual-stack case not run\n");
    }

    evpl_listener_detach(evpl, wm.lb);
    evpl_listener_destroy(listener);
    uint64_t end = now_ms() + 10000;
    while (atomic_load(&s_disconnected) < atomic_load(&s_connected) && now_ms() < end) evpl_continue(evpl);
    CHECK_EQ(atomic_load(&s_disconnected), atomic_load(&s_connected));
    CHECK_EQ(atomic_load(&wm.wrong_thread), 0);
    evpl_destroy(evpl);
    evpl_endpoint_close(rep);
    evpl_endpoint_close(lep);
    return 0;
}
