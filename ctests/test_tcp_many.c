/* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/*
 * 200 concurrent client connections to one listener, client and server binds
 * all on one loop.  Each client ping-pongs NMSG fixed-size messages (tagged
 * with its id and sequence number) through the echo server; no client closes
 * until all of them are done, so all 200 are open at once.  Then every client
 * closes: 200 DISCONNECTED (status 0) on each side, each exactly once.
 */
#include "harness.h"
#include "net.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define NCONN  200
#define NMSG   10
#define MSGLEN 64

static enum evpl_protocol_id proto;

/* ---- server: echo ---------------------------------------------------------- */

struct sconn {
    struct evpl_bind *bind;
    int               connected, disconnected, status;
    uint64_t          bytes;
};

static struct sconn sconns[NCONN + 8];
static int          nsconn, s_connected, s_disconnected, s_bad;

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct sconn *s = priv;
    CHECK(bind == s->bind);
    CHECK_EQ(s->disconnected, 0);
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        s->connected++;
        s_connected++;
        break;
    case EVPL_NOTIFY_RECV_DATA: {
        char buf[4096];
        int  r;
        while ((r = evpl_recv(evpl, bind, buf, sizeof buf, 0)) > 0) {
            evpl_send(evpl, bind, buf, (unsigned) r);
            s->bytes += (uint64_t) r;
        }
        CHECK_EQ(r, 0);
        break;
    }
    case EVPL_NOTIFY_DISCONNECTED:
        s->disconnected++;
        s->status = n->notify_status;
        s_disconnected++;
        if (n->notify_status != 0) s_bad++;
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
    (void) evpl;
    (void) priv;
    CHECK(nsconn < NCONN + 8);
    struct sconn *s = &sconns[nsconn++];
    s->bind = bind;
    *nc = server_notify;
    *sc = NULL;
    *conn_priv = s;
}

/* ---- clients ---------------------------------------------------------------- */

struct cconn {
    struct evpl_bind *bind;
    int               id;
    int               connected, disconnected, status;
    int               seq;  /* messages echoed back so far */
};

static struct cconn clients[NCONN];
static int          c_done, c_disconnected, c_bad;

static void
make_msg(unsigned char *m, int id, int seq)
{
    m[0] = (unsigned char) id;
    m[1] = (unsigned char) (id >> 8);
    m[2] = (unsigned char) seq;
    m[3] = (unsigned char) (seq >> 8);
    for (int j = 4; j < MSGLEN; j++) m[j] = (unsigned char) (id * 7 + seq * 13 + j);
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
        make_msg(m, c->id, 0);
        evpl_send(evpl, bind, m, MSGLEN);
        break;
    case EVPL_NOTIFY_RECV_DATA: {
        int r;
        while ((r = evpl_recv(evpl, bind, m, MSGLEN, EVPL_RECV_FLAG_ALL_OR_NONE)) == MSGLEN) {
            CHECK(c->seq < NMSG);
            make_msg(want, c->id, c->seq);
            if (memcmp(m, want, MSGLEN) != 0) {
                fprintf(stderr, "client %d: echo %d wrong (got id %d seq %d)\n",
                        c->id, c->seq, m[0] | m[1] << 8, m[2] | m[3] << 8);
                CHECK(0);
            }
            c->seq++;
            if (c->seq < NMSG) {
                make_msg(m, c->id, c->seq);
                evpl_send(evpl, bind, m, MSGLEN);
            } else {
                c_done++;
            }
        }
        CHECK_EQ(r, 0);
        break;
    }
    case EVPL_NOTIFY_DISCONNECTED:
        c->disconnected++;
        c->status = n->notify_status;
        c_disconnected++;
        if (n->notify_status != 0) c_bad++;
        break;
    default:
        fprintf(stderr, "client: unexpected notify type %u\n", n->notify_type);
        CHECK(0);
    }
}

int
main(int argc, char **argv)
{
    /* A deep accept backlog: 200 connects land before the first accept. */
    struct evpl_global_config *gcfg = evpl_global_config_init();
    CHECK(gcfg != NULL);
    evpl_global_config_set_max_pending(gcfg, 512);
    evpl_init(gcfg);

    proto = test_protocol(argc, argv, EVPL_STREAM_SOCKET_TCP);
    if (!evpl_protocol_available(proto)) SKIP("protocol %d not available", (int) proto);

    struct evpl *evpl = test_loop();
    struct evpl_listener *listener = evpl_listener_create();
    CHECK(listener != NULL);
    struct evpl_listener_binding *lb = evpl_listener_attach(evpl, listener, server_attach, NULL);
    CHECK(lb != NULL);
    struct evpl_endpoint *lep = NULL;
    int port = listen_free(listener, proto, test_addr(), &lep);
    struct evpl_endpoint *rep = evpl_endpoint_create(test_addr(), port);
    CHECK(rep != NULL);

    /* Start the clients 20 per pass; none closes before all are done. */
    int      started = 0;
    uint64_t t0 = now_ms(), end = t0 + 40000;
    while (c_done < NCONN && c_disconnected == 0 && now_ms() < end) {
        for (int k = 0; k < 20 && started < NCONN; k++, started++) {
            struct cconn *c = &clients[started];
            c->id = started;
            c->bind = evpl_connect(evpl, proto, NULL, rep, client_notify, NULL, c);
            CHECK(c->bind != NULL);
        }
        evpl_continue(evpl);
    }
    fprintf(stderr, "%d/%d clients done in %llu ms; server accepted %d\n", c_done, NCONN,
            (unsigned long long) (now_ms() - t0), nsconn);
    CHECK_EQ(c_disconnected, 0);
    CHECK_EQ(c_done, NCONN);
    for (int i = 0; i < NCONN; i++) {
        CHECK_EQ(clients[i].connected, 1);
        CHECK_EQ(clients[i].seq, NMSG);
    }
    /* All 200 open at the same time, each echoed exactly its own traffic. */
    CHECK_EQ(nsconn, NCONN);
    CHECK_EQ(s_connected, NCONN);
    CHECK_EQ(s_disconnected, 0);
    for (int i = 0; i < nsconn; i++) CHECK_EQ(sconns[i].bytes, (uint64_t) NMSG * MSGLEN);

    for (int i = 0; i < NCONN; i++) evpl_close(evpl, clients[i].bind);
    CHECK_EQ(c_disconnected, 0);
    end = now_ms() + 20000;
    while ((c_disconnected < NCONN || s_disconnected < NCONN) && now_ms() < end) evpl_continue(evpl);
    for (int i = 0; i < 5; i++) evpl_continue(evpl);
    CHECK_EQ(c_disconnected, NCONN);
    CHECK_EQ(s_disconnected, NCONN);
    CHECK_EQ(c_bad, 0);
    CHECK_EQ(s_bad, 0);
    for (int i = 0; i < NCONN; i++) CHECK_EQ(clients[i].disconnected, 1);
    for (int i = 0; i < nsconn; i++) CHECK_EQ(sconns[i].disconnected, 1);

    evpl_listener_detach(evpl, lb);
    evpl_listener_destroy(listener);
    evpl_destroy(evpl);
    evpl_endpoint_close(rep);
    evpl_endpoint_close(lep);
    return 0;
}
