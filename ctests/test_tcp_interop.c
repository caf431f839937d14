/* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/*
 * evpl against plain blocking POSIX sockets, each run in a helper thread.
 *  1. an evpl server (XOR 0x5A on every byte it gets, sent straight back)
 *     and a plain client doing 50 request/response rounds of varying size;
 *     the server sees DISCONNECTED status 0 when the client closes;
 *  2. an evpl client against a plain server (accept, echo a known number of
 *     bytes, close): every byte comes back, the peer port the plain server
 *     saw is the client's local port, and the client gets DISCONNECTED
 *     status 0 after all the data.
 */
#include "harness.h"
#include "net.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#define ROUNDS 50
#define MAXREQ 20000
#define TOTAL2 (300 * 1024)

static enum evpl_protocol_id proto;
static struct evpl          *evpl;

#define WAIT_FOR(cond, ms) WAIT_FOR2(evpl, NULL, cond, ms)

static unsigned char
pat(unsigned key, size_t j)
{
    return (unsigned char) (j * 11 + (j >> 7) + key * 101);
}

/* ---- 1: evpl server, plain client ---------------------------------------- */

struct sconn {
    struct evpl_bind *bind;
    int               connected, disconnected, status, other;
    uint64_t          bytes;
};

static struct sconn srv;
static int          nattach;

static void
server_notify(struct evpl *ev, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct sconn *s = priv;
    CHECK(bind == s->bind);
    CHECK_EQ(s->disconnected, 0);
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        s->connected++;
        break;
    case EVPL_NOTIFY_RECV_DATA: {
        unsigned char buf[7000];
        int r;
        while ((r = evpl_recv(ev, bind, buf, sizeof buf, 0)) > 0) {
            for (int i = 0; i < r; i++) buf[i] ^= 0x5A;
            evpl_send(ev, bind, buf, (unsigned) r);
            s->bytes += (uint64_t) r;
        }
        CHECK_EQ(r, 0);
        break;
    }
    case EVPL_NOTIFY_DISCONNECTED:
        s->disconnected++;
        s->status = n->notify_status;
        break;
    default:
        s->other++;
        break;
    }
}

static void
server_attach(struct evpl *ev, struct evpl_bind *bind, evpl_notify_callback_t *nc,
              evpl_segment_callback_t *sc, void **conn_priv, void *priv)
{
    (void) ev;
    (void) priv;
    nattach++;
    srv.bind = bind;
    *nc = server_notify;
    *sc = NULL;
    *conn_priv = &srv;
}

static int         port1;
static _Atomic int client1_done;  /* 1 ok, -1 failed */
static char        client1_err[160];
static uint64_t    client1_bytes;

static void *
plain_client(void *arg)
{
    (void) arg;
    unsigned char *req = malloc(MAXREQ), *rsp = malloc(MAXREQ);
    int fd = raw_connect("127.0.0.1", port1, 0);
    if (!req || !rsp || fd < 0) {
        snprintf(client1_err, sizeof client1_err, "connect: %s", strerror(errno));
        goto fail;
    }
    for (unsigned k = 0; k < ROUNDS; k++) {
        size_t len = 1 + (k * 997u) % MAXREQ;
        for (size_t j = 0; j < len; j++) req[j] = pat(k, j);
        if (write_all(fd, req, len) != 0 || read_all(fd, rsp, len) != 0) {
            snprintf(client1_err, sizeof client1_err, "round %u: io: %s", k, strerror(errno));
            goto fail;
        }
        for (size_t j = 0; j < len; j++) {
            if (rsp[j] != (req[j] ^ 0x5A)) {
                snprintf(client1_err, sizeof client1_err, "round %u: byte %zu is 0x%02x, want 0x%02x",
                         k, j, rsp[j], req[j] ^ 0x5A);
                goto fail;
            }
        }
        client1_bytes += len;
    }
    close(fd);
    free(req);
    free(rsp);
    atomic_store(&client1_done, 1);
    return NULL;
fail:
    if (fd >= 0) close(fd);
    free(req);
    free(rsp);
    atomic_store(&client1_done, -1);
    return NULL;
}

static void
case_plain_client(void)
{
    fprintf(stderr, "1: evpl server, plain client\n");
    struct evpl_listener *listener = evpl_listener_create();
    CHECK(listener != NULL);
    struct evpl_listener_binding *lb = evpl_listener_attach(evpl, listener, server_attach, NULL);
    CHECK(lb != NULL);
    struct evpl_endpoint *lep = NULL;
    port1 = listen_free(listener, proto, "127.0.0.1", &lep);

    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, plain_client, NULL), 0);
    WAIT_FOR(atomic_load(&client1_done) != 0 && (srv.disconnected || atomic_load(&client1_done) < 0), 30000);
    pthread_join(th, NULL);
    if (atomic_load(&client1_done) < 0) {
        fprintf(stderr, "plain client: %s\n", client1_err);
        CHECK(0);
    }
    for (int i = 0; i < 5; i++) evpl_continue(evpl);
    CHECK_EQ(nattach, 1);
    CHECK_EQ(srv.connected, 1);
    CHECK_EQ(srv.bytes, client1_bytes);
    CHECK_EQ(srv.disconnected, 1);
    CHECK_EQ(srv.status, 0);
    CHECK_EQ(srv.other, 0);

    evpl_listener_detach(evpl, lb);
    evpl_listener_destroy(listener);
    evpl_endpoint_close(lep);
}

/* ---- 2: evpl client, plain server ------------------------------------------ */

static int         lfd2;
static _Atomic int server2_done;  /* 1 ok, -1 failed */
static _Atomic int server2_peer_port;
static char        server2_err[160];

static void *
plain_server(void *arg)
{
    (void) arg;
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    int fd = accept(lfd2, (struct sockaddr *) &peer, &pl);
    if (fd < 0) {
        snprintf(server2_err, sizeof server2_err, "accept: %s", strerror(errno));
        atomic_store(&server2_done, -1);
        return NULL;
    }
    atomic_store(&server2_peer_port, ntohs(peer.sin_port));
    unsigned char buf[16384];
    size_t echoed = 0;
    while (echoed < TOTAL2) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            snprintf(server2_err, sizeof server2_err, "read after %zu bytes: %s", echoed,
                     r == 0 ? "EOF" : strerror(errno));
            close(fd);
            atomic_store(&server2_done, -1);
            return NULL;
        }
        if (write_all(fd, buf, (size_t) r) != 0) {
            snprintf(server2_err, sizeof server2_err, "write: %s", strerror(errno));
            close(fd);
            atomic_store(&server2_done, -1);
            return NULL;
        }
        echoed += (size_t) r;
    }
    close(fd);  /* orderly close once everything is echoed */
    atomic_store(&server2_done, 1);
    return NULL;
}

struct cconn {
    struct evpl_bind *bind;
    int               connected, disconnected, status, other;
    uint64_t          received, received_at_disc;
};

static struct cconn cl;

static void
client_notify(struct evpl *ev, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct cconn *c = priv;
    CHECK(bind == c->bind);
    CHECK_EQ(c->disconnected, 0);
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        c->connected++;
        break;
    case EVPL_NOTIFY_RECV_DATA: {
        unsigned char buf[9000];
        int r;
        while ((r = evpl_recv(ev, bind, buf, sizeof buf, 0)) > 0) {
            for (int i = 0; i < r; i++) {
                if (buf[i] != pat(7, c->received + (uint64_t) i)) {
                    fprintf(stderr, "echo byte %llu wrong\n", (unsigned long long) (c->received + (uint64_t) i));
                    CHECK(0);
                }
            }
            c->received += (uint64_t) r;
        }
        CHECK_EQ(r, 0);
        break;
    }
    case EVPL_NOTIFY_DISCONNECTED:
        c->disconnected++;
        c->status = n->notify_status;
        c->received_at_disc = c->received;
        break;
    default:
        c->other++;
        break;
    }
}

static void
case_plain_server(void)
{
    fprintf(stderr, "2: evpl client, plain server\n");
    int port2;
    lfd2 = plain_listen("127.0.0.1", &port2);

    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, plain_server, NULL), 0);

    struct evpl_endpoint *ep = evpl_endpoint_create("127.0.0.1", port2);
    CHECK(ep != NULL);
    cl.bind = evpl_connect(evpl, proto, NULL, ep, client_notify, NULL, &cl);
    CHECK(cl.bind != NULL);
    WAIT_FOR(cl.connected || cl.disconnected, 10000);
    CHECK_EQ(cl.connected, 1);

    char local[128], remote[128], want[64];
    evpl_bind_get_local_address(cl.bind, local, sizeof local);
    evpl_bind_get_remote_address(cl.bind, remote, sizeof remote);
    snprintf(want, sizeof want, "127.0.0.1:%d", port2);
    CHECK(strcmp(remote, want) == 0);

    unsigned char chunk[10000];
    for (size_t off = 0; off < TOTAL2; off += sizeof chunk) {
        size_t n = TOTAL2 - off < sizeof chunk ? TOTAL2 - off : sizeof chunk;
        for (size_t j = 0; j < n; j++) chunk[j] = pat(7, off + j);
        evpl_send(evpl, cl.bind, chunk, (unsigned) n);
    }
    WAIT_FOR(cl.disconnected || atomic_load(&server2_done) < 0, 30000);
    pthread_join(th, NULL);
    if (atomic_load(&server2_done) < 0) {
        fprintf(stderr, "plain server: %s\n", server2_err);
        CHECK(0);
    }
    for (int i = 0; i < 5; i++) evpl_continue(evpl);
    CHECK_EQ(atomic_load(&server2_peer_port), addr_port(local));
    CHECK_EQ(cl.received_at_disc, TOTAL2);
    CHECK_EQ(cl.disconnected, 1);
    CHECK_EQ(cl.status, 0);
    CHECK_EQ(cl.other, 0);
    close(lfd2);
    evpl_endpoint_close(ep);
}

int
main(int argc, char **argv)
{
    proto = test_protocol(argc, argv, EVPL_STREAM_SOCKET_TCP);
    if (!evpl_protocol_available(proto)) SKIP("protocol %d not available", (int) proto);
    evpl = test_loop();
    case_plain_client();
    case_plain_server();
    evpl_destroy(evpl);
    return 0;
}
