/* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/*
 * Bad input never crashes and fails the documented way.
 *  - evpl_connect with a connectionless protocol (UDP) -> NULL;
 *    evpl_bind with a stream protocol -> NULL; evpl_listen with UDP -> -1;
 *  - every protocol that evpl_protocol_available() calls unusable here:
 *    evpl_connect / evpl_bind -> NULL, evpl_listen -> -1;
 *  - NULL endpoints, a NULL listener, NULL notify callbacks -> NULL / -1;
 *  - endpoints with out-of-range ports -> NULL;
 *  - on a live connection: evpl_send(NULL, 0), evpl_sendv with a length
 *    beyond its iovecs, an address query with len 0: nothing is sent or
 *    written, and the connection still carries exactly the next real send;
 *  - evpl_connect to a name that does not resolve: NULL, or DISCONNECTED
 *    with a positive status and no CONNECTED.
 * The stream protocol under test comes from -r (default STREAM_SOCKET_TCP).
 */
#include "harness.h"
#include "net.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static enum evpl_protocol_id proto;
static struct evpl          *evpl;

#define WAIT_FOR(cond, ms) WAIT_FOR2(evpl, NULL, cond, ms)

struct conn {
    struct evpl_bind *bind;
    int               connected, disconnected, status, other;
    char              data[256];
    int               len;
};

static void
conn_notify(struct evpl *ev, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct conn *c = priv;
    CHECK(ev == evpl);
    CHECK(bind == c->bind);
    CHECK_EQ(c->disconnected, 0);
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        c->connected++;
        break;
    case EVPL_NOTIFY_RECV_DATA: {
        int r;
        while ((r = evpl_recv(ev, bind, c->data + c->len, (int) sizeof c->data - c->len, 0)) > 0) {
            c->len += r;
            CHECK(c->len < (int) sizeof c->data);
        }
        CHECK_EQ(r, 0);
        break;
    }
    case EVPL_NOTIFY_DISCONNECTED:
        c->disconnected++;
        c->status = n->notify_status;
        break;
    default:
        c->other++;
        break;
    }
}

static void
never_called(struct evpl *ev, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) ev;
    (void) bind;
    (void) priv;
    fprintf(stderr, "notify type %u on a bind that should not exist\n", n->notify_type);
    CHECK(0);
}

static struct conn srv;

static void
server_attach(struct evpl *ev, struct evpl_bind *bind, evpl_notify_callback_t *nc,
              evpl_segment_callback_t *sc, void **conn_priv, void *priv)
{
    (void) ev;
    (void) priv;
    CHECK(srv.bind == NULL);
    srv.bind = bind;
    *nc = conn_notify;
    *sc = NULL;
    *conn_priv = &srv;
}

static const char *
pname(enum evpl_protocol_id id)
{
    static const char *names[] = {
        "DATAGRAM_SOCKET_UDP", "DATAGRAM_RDMACM_RC", "DATAGRAM_RDMACM_UD", "STREAM_SOCKET_TCP",
        "STREAM_XLIO_TCP", "STREAM_IO_URING_TCP", "STREAM_RDMACM_RC", "STREAM_SOCKET_TLS",
    };
    return (unsigned) id < EVPL_NUM_PROTO ? names[id] : "?";
}

int
main(int argc, char **argv)
{
    proto = test_protocol(argc, argv, EVPL_STREAM_SOCKET_TCP);
    if (!evpl_protocol_available(proto)) SKIP("protocol %d not available", (int) proto);
    evpl = test_loop();

    int port = free_port("127.0.0.1");
    CHECK(port > 0);
    struct evpl_endpoint *ep = evpl_endpoint_create("127.0.0.1", port);
    struct evpl_endpoint *ep0 = evpl_endpoint_create("127.0.0.1", 0);
    CHECK(ep != NULL && ep0 != NULL);
    struct evpl_listener *listener = evpl_listener_create();
    CHECK(listener != NULL);

    /* ---- wrong kind of protocol ---- */
    fprintf(stderr, "wrong kind of protocol\n");
    CHECK(evpl_connect(evpl, EVPL_DATAGRAM_SOCKET_UDP, NULL, ep, never_called, NULL, NULL) == NULL);
    CHECK(evpl_bind(evpl, EVPL_STREAM_SOCKET_TCP, ep0, never_called, NULL) == NULL);
    CHECK(evpl_bind(evpl, proto, ep0, never_called, NULL) == NULL);
    CHECK_EQ(evpl_listen(listener, EVPL_DATAGRAM_SOCKET_UDP, ep), -1);

    /* ---- unavailable protocols ---- */
    for (int id = 0; id < EVPL_NUM_PROTO; id++) {
        enum evpl_protocol_id p = (enum evpl_protocol_id) id;
        if (evpl_protocol_available(p)) {
            fprintf(stderr, "%s: available\n", pname(p));
            continue;
        }
        fprintf(stderr, "%s: not available, must fail cleanly\n", pname(p));
        CHECK(evpl_connect(evpl, p, NULL, ep, never_called, NULL, NULL) == NULL);
        CHECK(evpl_bind(evpl, p, ep0, never_called, NULL) == NULL);
        CHECK_EQ(evpl_listen(listener, p, ep), -1);
    }

    /* ---- NULLs ---- */
    fprintf(stderr, "NULL endpoints, listener, callbacks\n");
    CHECK(evpl_connect(evpl, proto, NULL, NULL, never_called, NULL, NULL) == NULL);
    CHECK(evpl_bind(evpl, EVPL_DATAGRAM_SOCKET_UDP, NULL, never_called, NULL) == NULL);
    CHECK_EQ(evpl_listen(listener, proto, NULL), -1);
    CHECK_EQ(evpl_listen(NULL, proto, ep), -1);
    CHECK(evpl_connect(evpl, proto, NULL, ep, NULL, NULL, NULL) == NULL);
    CHECK(evpl_bind(evpl, EVPL_DATAGRAM_SOCKET_UDP, ep0, NULL, NULL) == NULL);

    /* ---- ports out of range ---- */
    CHECK(evpl_endpoint_create("127.0.0.1", 65536) == NULL);
    CHECK(evpl_endpoint_create("127.0.0.1", -1) == NULL);

    /* None of that left anything behind that the loop would act on. */
    for (int i = 0; i < 5; i++) evpl_continue(evpl);

    /* ---- bad sends on a live connection ---- */
    fprintf(stderr, "bad sends on a live connection\n");
    struct evpl_listener_binding *lb = evpl_listener_attach(evpl, listener, server_attach, NULL);
    CHECK(lb != NULL);
    struct evpl_endpoint *lep = NULL;
    port = listen_free(listener, proto, test_addr(), &lep);
    struct evpl_endpoint *rep = evpl_endpoint_create(test_addr(), port);
    CHECK(rep != NULL);
    static struct conn cl;
    cl.bind = evpl_connect(evpl, proto, NULL, rep, conn_notify, NULL, &cl);
    CHECK(cl.bind != NULL);
    WAIT_FOR(cl.connected && srv.connected, 10000);

    evpl_send(evpl, cl.bind, NULL, 0);
    struct evpl_iovec iov;
    CHECK_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, &iov), 1);
    memset(evpl_iovec_data(&iov), 'G', 100);
    evpl_sendv(evpl, cl.bind, &iov, 1, 200, 0);  /* more than the iovecs hold */
    evpl_iovec_release(&iov);
    char buf[16];
    memset(buf, 'X', sizeof buf);
    evpl_bind_get_local_address(cl.bind, buf, 0);
    evpl_bind_get_remote_address(cl.bind, buf, 0);
    CHECK_EQ(buf[0], 'X');
    evpl_send(evpl, cl.bind, "ok", 2);
    WAIT_FOR(srv.len >= 2, 5000);
    for (int i = 0; i < 5; i++) evpl_continue(evpl);
    CHECK_EQ(srv.len, 2);
    CHECK(memcmp(srv.data, "ok", 2) == 0);
    CHECK_EQ(cl.disconnected + srv.disconnected, 0);
    evpl_close(evpl, cl.bind);
    WAIT_FOR(cl.disconnected && srv.disconnected, 5000);
    CHECK_EQ(cl.status, 0);
    CHECK_EQ(srv.status, 0);
    CHECK_EQ(cl.other + srv.other, 0);

    /* ---- a name that does not resolve ---- */
    fprintf(stderr, "connect to nonexistent.invalid\n");
    struct evpl_endpoint *bad = evpl_endpoint_create("nonexistent.invalid", 80);
    if (bad == NULL) {
        fprintf(stderr, "   evpl_endpoint_create resolved eagerly and returned NULL\n");
    } else {
        static struct conn bc;
        bc.bind = evpl_connect(evpl, proto, NULL, bad, conn_notify, NULL, &bc);
        if (bc.bind == NULL) {
            fprintf(stderr, "   evpl_connect returned NULL\n");
        } else {
            CHECK_EQ(bc.disconnected, 0);
            WAIT_FOR(bc.disconnected, 40000);
            for (int i = 0; i < 5; i++) evpl_continue(evpl);
            fprintf(stderr, "   DISCONNECTED with status %d\n", bc.status);
            CHECK_EQ(bc.connected, 0);
            CHECK_EQ(bc.disconnected, 1);
            CHECK(bc.status > 0);
        }
        evpl_endpoint_close(bad);
    }

    evpl_listener_detach(evpl, lb);
    evpl_listener_destroy(listener);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    evpl_endpoint_close(ep0);
    evpl_endpoint_close(lep);
    evpl_endpoint_close(rep);
    return 0;
}
