/* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/*
 * How stream connections end.
 *  1. client evpl_close (called twice): exactly one DISCONNECTED, status 0,
 *     not from inside evpl_close; the server sees one DISCONNECTED, status 0;
 *  2. the server closes (twice) from inside its RECV_DATA callback;
 *  3. evpl_finish right after queueing 1 MiB: the peer gets all of it, then
 *     DISCONNECTED; a send after evpl_finish is not delivered;
 *  4. the same from the server side: reply + evpl_finish in a callback;
 *  5. a raw peer sends garbage then resets (SO_LINGER {1,0}): the server bind
 *     gets exactly one DISCONNECTED (ECONNRESET, or 0 if the end raced the
 *     data) and the loop carries on;
 *  6. a raw peer half-closes (shutdown(SHUT_WR)) after its request: the
 *     server still gets the request, its reply (queued in the RECV_DATA
 *     callback) reaches the peer in full before EOF, DISCONNECTED status 0;
 *  7. evpl_connect with a local endpoint: the server sees that port;
 *  8. the server replies and calls evpl_finish, and the raw peer sends more
 *     bytes before the close runs: the peer still reads the whole reply and
 *     then EOF (closing with unread bytes would reset the connection instead:
 *     the socket lingers, draining, until the peer's FIN).
 */
#include "harness.h"
#include "net.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define MiB (1024u * 1024u)

enum { M_SINK = 1, M_CLOSE_ON_DATA, M_FINISH_REPLY, M_HALFCLOSE };

static enum evpl_protocol_id proto;
static int                   junk_fd = -1;  /* case 8: a raw peer that sends after evpl_finish */
static struct evpl          *client, *server;
static struct evpl_endpoint *rep;
static int                   port;

#define WAIT_FOR(cond, ms) WAIT_FOR2(client, server, cond, ms)

/* ---- byte pattern keyed by (seed, offset) --------------------------------- */

static unsigned char
pat(uint64_t seed, uint64_t off)
{
    uint64_t z = (off >> 3) + seed * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (unsigned char) (z >> ((off & 7) * 8));
}

static void
fill(unsigned char *p, uint64_t seed, uint64_t off, size_t len)
{
    for (size_t i = 0; i < len; i++) p[i] = pat(seed, off + i);
}

static void
verify(const unsigned char *p, uint64_t seed, uint64_t off, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != pat(seed, off + i)) {
            fprintf(stderr, "byte %llu (seed %llu) is 0x%02x, want 0x%02x\n",
                    (unsigned long long) (off + i), (unsigned long long) seed, p[i], pat(seed, off + i));
            CHECK(0);
        }
    }
}

/* Queue len pattern bytes in 64 KiB evpl_send calls. */
static void
send_pattern(struct evpl *evpl, struct evpl_bind *bind, uint64_t seed, size_t len)
{
    static unsigned char buf[65536];
    size_t off = 0;
    while (off < len) {
        size_t n = len - off < sizeof buf ? len - off : sizeof buf;
        fill(buf, seed, off, n);
        evpl_send(evpl, bind, buf, (unsigned) n);
        off += n;
    }
}

/* ---- connections ---------------------------------------------------------- */

struct conn {
    struct evpl_bind *bind;
    int               mode;
    uint64_t          seed;        /* pattern of the bytes this side receives */
    uint64_t          reply_seed;  /* pattern of the bytes it replies with */
    size_t            expect;      /* request size (M_FINISH_REPLY, M_HALFCLOSE) */
    size_t            reply_len;
    int               in_api;
    int               connected, disconnected, status, other, recv_data;
    uint64_t          received, received_at_disc;
    int               replied;
};

static void
drain(struct evpl *evpl, struct conn *c)
{
    static unsigned char buf[65536];
    int r;
    while ((r = evpl_recv(evpl, c->bind, buf, (int) sizeof buf, 0)) > 0) {
        if (c->seed) verify(buf, c->seed, c->received, (size_t) r);
        c->received += (uint64_t) r;
    }
    CHECK_EQ(r, 0);
}

static void
conn_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct conn *c = priv;
    CHECK(!c->in_api);  /* never re-entrant */
    CHECK(bind == c->bind);
    CHECK_EQ(c->disconnected, 0);  /* nothing after DISCONNECTED */
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        c->connected++;
        break;
    case EVPL_NOTIFY_RECV_DATA:
        CHECK_EQ(c->connected, 1);
        c->recv_data++;
        drain(evpl, c);
        if (c->mode == M_CLOSE_ON_DATA && !c->replied) {
            c->replied = 1;
            c->in_api = 1;
            evpl_close(evpl, bind);
            evpl_close(evpl, bind);
            c->in_api = 0;
        } else if ((c->mode == M_FINISH_REPLY || c->mode == M_HALFCLOSE) &&
                   !c->replied && c->received >= c->expect) {
            CHECK_EQ(c->received, c->expect);
            c->replied = 1;
            send_pattern(evpl, bind, c->reply_seed, c->reply_len);
            if (c->mode == M_FINISH_REPLY) {
                c->in_api = 1;
                evpl_finish(evpl, bind);
                c->in_api = 0;
                if (junk_fd >= 0) {
                    unsigned char junk[1000];
                    memset(junk, 0x5a, sizeof junk);
                    CHECK_EQ(write(junk_fd, junk, sizeof junk), (ssize_t) sizeof junk);
                }
            }
        }
        break;
    case EVPL_NOTIFY_DISCONNECTED:
        c->disconnected++;
        c->status = n->notify_status;
        c->received_at_disc = c->received;
        break;
    default:
        fprintf(stderr, "unexpected notify type %u\n", n->notify_type);
        c->other++;
        break;
    }
}

static struct conn sconns[16];
static int         nsconn;
static struct conn next_conn;  /* template for the next accepted connection */

static void
server_attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *nc,
              evpl_segment_callback_t *sc, void **conn_priv, void *priv)
{
    (void) evpl;
    (void) priv;
    CHECK(nsconn < 16);
    struct conn *c = &sconns[nsconn++];
    *c = next_conn;
    c->bind = bind;
    *nc = conn_notify;
    *sc = NULL;
    *conn_priv = c;
}

static struct conn *
open_pair(struct conn *cl)
{
    int first = nsconn;
    cl->in_api = 1;
    cl->bind = evpl_connect(client, proto, NULL, rep, conn_notify, NULL, cl);
    cl->in_api = 0;
    CHECK(cl->bind != NULL);
    WAIT_FOR(cl->connected && nsconn > first && sconns[first].connected, 10000);
    CHECK_EQ(cl->disconnected, 0);
    CHECK_EQ(nsconn, first + 1);
    return &sconns[first];
}

/* ---- 1 ------------------------------------------------------------------- */

static void
case_client_close(void)
{
    fprintf(stderr, "1: client evpl_close twice\n");
    memset(&next_conn, 0, sizeof next_conn);
    next_conn.mode = M_SINK;
    next_conn.seed = 11;
    struct conn cl;
    memset(&cl, 0, sizeof cl);
    struct conn *s = open_pair(&cl);
    send_pattern(client, cl.bind, 11, 1000);
    WAIT_FOR(s->received == 1000, 10000);
    cl.in_api = 1;
    evpl_close(client, cl.bind);
    evpl_close(client, cl.bind);
    cl.in_api = 0;
    CHECK_EQ(cl.disconnected, 0);
    WAIT_FOR(cl.disconnected && s->disconnected, 10000);
    settle(client, server);
    CHECK_EQ(cl.disconnected, 1);
    CHECK_EQ(cl.status, 0);
    CHECK_EQ(s->disconnected, 1);
    CHECK_EQ(s->status, 0);
    CHECK_EQ(s->received, 1000);
    CHECK_EQ(cl.other + s->other, 0);
}

/* ---- 2 ------------------------------------------------------------------- */

static void
case_server_close(void)
{
    fprintf(stderr, "2: server evpl_close twice inside RECV_DATA\n");
    memset(&next_conn, 0, sizeof next_conn);
    next_conn.mode = M_CLOSE_ON_DATA;
    next_conn.seed = 12;
    struct conn cl;
    memset(&cl, 0, sizeof cl);
    struct conn *s = open_pair(&cl);
    send_pattern(client, cl.bind, 12, 100);
    WAIT_FOR(cl.disconnected && s->disconnected, 10000);
    settle(client, server);
    CHECK_EQ(s->replied, 1);
    CHECK_EQ(s->disconnected, 1);
    CHECK_EQ(s->status, 0);
    CHECK_EQ(cl.disconnected, 1);
    CHECK_EQ(cl.status, 0);
    CHECK_EQ(cl.other + s->other, 0);
}

/* ---- 3 ------------------------------------------------------------------- */

static void
case_client_finish(void)
{
    fprintf(stderr, "3: client queues 1 MiB then evpl_finish\n");
    memset(&next_conn, 0, sizeof next_conn);
    next_conn.mode = M_SINK;
    next_conn.seed = 13;
    struct conn cl;
    memset(&cl, 0, sizeof cl);
    struct conn *s = open_pair(&cl);
    send_pattern(client, cl.bind, 13, MiB);
    cl.in_api = 1;
    evpl_finish(client, cl.bind);
    /* Not accepted after finish: would show up as extra (wrong) bytes. */
    evpl_send(client, cl.bind, "after-finish", 12);
    cl.in_api = 0;
    CHECK_EQ(cl.disconnected, 0);
    WAIT_FOR(cl.disconnected && s->disconnected, 20000);
    settle(client, server);
    CHECK_EQ(s->received_at_disc, MiB);
    CHECK_EQ(s->received, MiB);
    CHECK_EQ(s->disconnected, 1);
    CHECK_EQ(s->status, 0);
    CHECK_EQ(cl.disconnected, 1);
    CHECK_EQ(cl.status, 0);
    CHECK_EQ(cl.other + s->other, 0);
}

/* ---- 4 ------------------------------------------------------------------- */

static void
case_server_finish(void)
{
    fprintf(stderr, "4: server replies 3 MiB then evpl_finish inside RECV_DATA\n");
    memset(&next_conn, 0, sizeof next_conn);
    next_conn.mode = M_FINISH_REPLY;
    next_conn.seed = 14;
    next_conn.expect = 5000;
    next_conn.reply_seed = 15;
    next_conn.reply_len = 3 * MiB;
    struct conn cl;
    memset(&cl, 0, sizeof cl);
    cl.mode = M_SINK;
    cl.seed = 15;
    struct conn *s = open_pair(&cl);
    send_pattern(client, cl.bind, 14, 5000);
    WAIT_FOR(cl.disconnected && s->disconnected, 20000);
    settle(client, server);
    CHECK_EQ(s->replied, 1);
    CHECK_EQ(cl.received_at_disc, 3 * MiB);
    CHECK_EQ(cl.disconnected, 1);
    CHECK_EQ(cl.status, 0);
    CHECK_EQ(s->disconnected, 1);
    CHECK_EQ(s->status, 0);
    CHECK_EQ(cl.other + s->other, 0);
}

/* ---- 5 ------------------------------------------------------------------- */

static void
case_reset(void)
{
    fprintf(stderr, "5: raw peer sends garbage then RST\n");
    memset(&next_conn, 0, sizeof next_conn);
    next_conn.mode = M_SINK;
    int first = nsconn;
    int fd = raw_connect("127.0.0.1", port, 0);
    CHECK(fd >= 0);
    WAIT_FOR(nsconn > first && sconns[first].connected, 10000);
    struct conn *s = &sconns[first];
    unsigned char junk[1000];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char) (i * 7 + 3);
    CHECK_EQ(write(fd, junk, sizeof junk), (ssize_t) sizeof junk);
    struct linger lg = { 1, 0 };
    CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fd);
    WAIT_FOR(s->disconnected, 10000);
    settle(client, server);
    CHECK_EQ(s->disconnected, 1);
    fprintf(stderr, "   server status %d after %llu bytes\n", s->status, (unsigned long long) s->received);
    CHECK(s->status == ECONNRESET || s->status == 0);
    CHECK(s->received <= sizeof junk);
    CHECK_EQ(s->other, 0);
}

/* ---- 6 ------------------------------------------------------------------- */

static void
case_half_close(void)
{
    fprintf(stderr, "6: raw peer half-closes after its request\n");
    const size_t req = 3000, reply = 4 * MiB;
    memset(&next_conn, 0, sizeof next_conn);
    next_conn.mode = M_HALFCLOSE;
    next_conn.seed = 16;
    next_conn.expect = req;
    next_conn.reply_seed = 17;
    next_conn.reply_len = reply;
    int first = nsconn;
    int fd = raw_connect("127.0.0.1", port, 0);
    CHECK(fd >= 0);
    unsigned char buf[65536];
    fill(buf, 16, 0, req);
    CHECK_EQ(write(fd, buf, req), (ssize_t) req);
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    CHECK_EQ(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);

    /* Read the reply without blocking, between loop passes, until EOF. */
    uint64_t got = 0;
    int      eof = 0, err = 0;
    uint64_t end = now_ms() + 20000;
    while (!(eof && nsconn > first && sconns[first].disconnected) && !err && now_ms() < end) {
        evpl_continue(server);
        for (;;) {
            ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r > 0) {
                CHECK(got + (uint64_t) r <= reply);
                verify(buf, 17, got, (size_t) r);
                got += (uint64_t) r;
                continue;
            }
            if (r == 0) eof = 1;
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) err = errno;
            break;
        }
    }
    close(fd);
    CHECK_EQ(err, 0);
    CHECK_EQ(nsconn, first + 1);
    struct conn *s = &sconns[first];
    CHECK_EQ(s->received, req);
    CHECK_EQ(s->replied, 1);
    CHECK_EQ(got, reply);
    CHECK(eof);
    CHECK_EQ(s->disconnected, 1);
    CHECK_EQ(s->status, 0);
    CHECK_EQ(s->other, 0);
}

/* ---- 8 ------------------------------------------------------------------- */

static void
case_finish_while_peer_sends(void)
{
    fprintf(stderr, "8: evpl_finish, then the peer sends more before the close\n");
    const size_t req = 3000, reply = 256 * 1024;
    memset(&next_conn, 0, sizeof next_conn);
    next_conn.mode = M_FINISH_REPLY;
    next_conn.expect = req;
    next_conn.reply_seed = 19;
    next_conn.reply_len = reply;
    int first = nsconn;
    int fd = raw_connect("127.0.0.1", port, 0);
    CHECK(fd >= 0);
    CHECK_EQ(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    static unsigned char buf[65536];
    memset(buf, 0x5a, req);
    /* The server's RECV_DATA callback replies, calls evpl_finish, and then
     * (as a peer could at any moment) more bytes arrive that it never reads:
     * written from inside that callback, so they are in its socket when the
     * close runs at the end of the iteration. */
    junk_fd = fd;
    CHECK_EQ(write(fd, buf, req), (ssize_t) req);
    uint64_t got = 0;
    int      eof = 0, err = 0;
    uint64_t end = now_ms() + 20000;
    while (!eof && !err && now_ms() < end) {
        evpl_continue(server);
        for (;;) {
            ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r > 0) {
                CHECK(got + (uint64_t) r <= reply);
                verify(buf, 19, got, (size_t) r);
                got += (uint64_t) r;
                continue;
            }
            if (r == 0) eof = 1;
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) err = errno;
            break;
        }
    }
    junk_fd = -1;
    fprintf(stderr, "   read %llu of %zu reply bytes, %s\n", (unsigned long long) got, reply,
            eof ? "then EOF" : err ? strerror(err) : "timeout");
    close(fd);
    WAIT_FOR(nsconn > first && sconns[first].disconnected, 10000);
    CHECK_EQ(err, 0);
    CHECK(eof);
    CHECK_EQ(got, reply);
    struct conn *s = &sconns[first];
    CHECK_EQ(s->replied, 1);
    CHECK_EQ(s->disconnected, 1);
    CHECK_EQ(s->status, 0);
    CHECK_EQ(s->other, 0);
}

/* ---- 7 ------------------------------------------------------------------- */

static void
case_local_endpoint(void)
{
    fprintf(stderr, "7: evpl_connect with a local endpoint\n");
    memset(&next_conn, 0, sizeof next_conn);
    next_conn.mode = M_SINK;
    for (int attempt = 0; attempt < 3; attempt++) {
        int lport = free_port("127.0.0.1");
        CHECK(lport > 0 && lport != port);
        struct evpl_endpoint *lep = evpl_endpoint_create("127.0.0.1", lport);
        CHECK(lep != NULL);
        struct conn cl;
        memset(&cl, 0, sizeof cl);
        int first = nsconn;
        cl.bind = evpl_connect(client, proto, lep, rep, conn_notify, NULL, &cl);
        if (cl.bind) {
            WAIT_FOR((cl.connected && nsconn > first && sconns[first].connected) || cl.disconnected, 10000);
        }
        if (!cl.bind || cl.disconnected) {
            /* Someone took the port between free_port and the bind: try another. */
            fprintf(stderr, "   local port %d: %s, retrying\n", lport,
                    cl.bind ? "DISCONNECTED" : "evpl_connect returned NULL");
            CHECK(!cl.bind || cl.status != 0);
            evpl_endpoint_close(lep);
            continue;
        }
        CHECK_EQ(nsconn, first + 1);
        struct conn *s = &sconns[first];
        char want[64], got[128];
        snprintf(want, sizeof want, "127.0.0.1:%d", lport);
        evpl_bind_get_remote_address(s->bind, got, sizeof got);
        CHECK(strcmp(got, want) == 0);
        evpl_bind_get_local_address(cl.bind, got, sizeof got);
        CHECK(strcmp(got, want) == 0);
        CHECK_EQ(addr_port(got), lport);
        evpl_close(client, cl.bind);
        WAIT_FOR(cl.disconnected && s->disconnected, 10000);
        CHECK_EQ(cl.status, 0);
        CHECK_EQ(s->status, 0);
        evpl_endpoint_close(lep);
        return;
    }
    CHECK(!"could not connect from a free local port in 3 tries");
}

int
main(int argc, char **argv)
{
    proto = test_protocol(argc, argv, EVPL_STREAM_SOCKET_TCP);
    if (!evpl_protocol_available(proto)) SKIP("protocol %d not available", (int) proto);

    client = test_loop();
    server = test_loop();
    struct evpl_listener *listener = evpl_listener_create();
    CHECK(listener != NULL);
    struct evpl_listener_binding *lb = evpl_listener_attach(server, listener, server_attach, NULL);
    CHECK(lb != NULL);
    struct evpl_endpoint *lep = NULL;
    port = listen_free(listener, proto, "127.0.0.1", &lep);
    rep = evpl_endpoint_create("127.0.0.1", port);
    CHECK(rep != NULL);

    case_client_close();
    case_server_close();
    case_client_finish();
    case_server_finish();
    case_reset();
    case_half_close();
    case_local_endpoint();
    if (proto == EVPL_STREAM_XLIO_TCP) {
        /* XLIO sockets are closed through libxlio at once (the lingering
         * close is for kernel sockets, whichever transport drives them). */
        fprintf(stderr, "8: skipped over STREAM_XLIO_TCP\n");
    } else {
        case_finish_while_peer_sends();
    }

    evpl_listener_detach(server, lb);
    evpl_listener_destroy(listener);
    evpl_destroy(client);
    evpl_destroy(server);
    evpl_endpoint_close(rep);
    evpl_endpoint_close(lep);
    return 0;
}
