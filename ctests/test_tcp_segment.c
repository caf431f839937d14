/* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/*
 * A stream used as a datagram protocol: the segment callback reads a 4-byte
 * big-endian length header (length of the payload; the message is header +
 * payload) and RECV_MSG hands over exactly one message at a time.
 *  a. a plain blocking socket in a helper thread writes one message one byte
 *     at a time (waiting, for each header byte, until the server's segment
 *     callback has seen it, so the header really arrives split), then five
 *     messages (payloads 0, 1, 100, 1000, 65536 bytes) in one write: every
 *     RECV_MSG has the right length and bytes, in order;
 *  b. a 3 MiB message, larger than one 2 MiB buffer, arrives intact in
 *     several iovecs;
 *  c. a segment callback returning -1 closes the bind with DISCONNECTED
 *     notify_status EPROTO, and no RECV_MSG;
 *  d. an evpl client with a segment callback against a server that echoes
 *     each message by passing its iovecs on with EVPL_SEND_FLAG_TAKE_REF.
 */
#include "harness.h"
#include "net.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#define MiB (1024u * 1024u)

enum { MODE_CHECK = 1, MODE_ECHO = 2 };

static enum evpl_protocol_id proto;
static struct evpl          *server, *client;
static int                   port;

#define WAIT_FOR(cond, ms) WAIT_FOR2(server, client, cond, ms)

/* Payload byte j of message k. */
static unsigned char
pat(unsigned k, size_t j)
{
    return (unsigned char) ((j * 131u) ^ (j >> 9) ^ (k * 29u + 7u));
}

/* Header + payload of message k. */
static unsigned char *
make_msg(unsigned k, uint32_t plen)
{
    unsigned char *m = malloc((size_t) plen + 4);
    CHECK(m != NULL);
    m[0] = (unsigned char) (plen >> 24);
    m[1] = (unsigned char) (plen >> 16);
    m[2] = (unsigned char) (plen >> 8);
    m[3] = (unsigned char) plen;
    for (size_t j = 0; j < plen; j++) m[4 + j] = pat(k, j);
    return m;
}

/* ---- the segment callback ------------------------------------------------- */

struct conn {
    struct evpl_bind *bind;
    int               mode;
    int               connected, disconnected, status, other;
    int               seg_calls, seg_zero;
    _Atomic int       seen;       /* most header bytes the segment callback saw */
    int               last;       /* header bytes at the latest segment callback */
    int               msgs;       /* RECV_MSGs so far */
    unsigned          max_niov;
    const uint32_t   *lens;       /* expected payload lengths, by message index */
    int               nlens;
    unsigned          kbase;      /* pattern key of message 0 */
};

static int
segment_cb(struct evpl *evpl, struct evpl_bind *bind, void *priv)
{
    struct conn  *c = priv;
    unsigned char hdr[4];
    CHECK(bind == c->bind);
    c->seg_calls++;
    int n = evpl_peek(evpl, bind, hdr, 4);
    CHECK(n >= 0 && n <= 4);
    if (n > atomic_load(&c->seen)) atomic_store(&c->seen, n);
    c->last = n;
    if (n < 4) {
        c->seg_zero++;
        return 0;
    }
    uint32_t plen = (uint32_t) hdr[0] << 24 | (uint32_t) hdr[1] << 16 | (uint32_t) hdr[2] << 8 | hdr[3];
    if (plen == 0xFFFFFFFFu) return -1;  /* "illegal header" */
    return (int) (plen + 4);
}

/* Check a RECV_MSG against the expected message c->msgs; returns its bytes. */
static void
check_msg(struct conn *c, struct evpl_notify *n)
{
    CHECK_EQ(n->notify_status, 0);
    CHECK(c->msgs < c->nlens);
    uint32_t plen = c->lens[c->msgs];
    CHECK(n->recv_msg.niov >= 1);
    CHECK(n->recv_msg.iovec != NULL);
    CHECK_EQ(n->recv_msg.length, plen + 4);
    unsigned char *buf = malloc((size_t) plen + 4);
    CHECK(buf != NULL);
    size_t off = 0;
    for (unsigned i = 0; i < n->recv_msg.niov; i++) {
        unsigned l = evpl_iovec_length(&n->recv_msg.iovec[i]);
        CHECK(off + l <= (size_t) plen + 4);
        memcpy(buf + off, evpl_iovec_data(&n->recv_msg.iovec[i]), l);
        off += l;
    }
    CHECK_EQ(off, (size_t) plen + 4);
    CHECK_EQ(((uint32_t) buf[0] << 24 | (uint32_t) buf[1] << 16 | (uint32_t) buf[2] << 8 | buf[3]), plen);
    unsigned k = c->kbase + (unsigned) c->msgs;
    for (size_t j = 0; j < plen; j++) {
        if (buf[4 + j] != pat(k, j)) {
            fprintf(stderr, "message %d: payload byte %zu is 0x%02x, want 0x%02x\n",
                    c->msgs, j, buf[4 + j], pat(k, j));
            CHECK(0);
        }
    }
    free(buf);
    if (n->recv_msg.niov > c->max_niov) c->max_niov = n->recv_msg.niov;
    c->msgs++;
}

/* ---- server ------------------------------------------------------------- */

static struct conn  sconns[4];
static int          nsconn;
static int          next_mode;
static const uint32_t *next_lens;
static int          next_nlens;
static _Atomic int  written;  /* bytes of message 0 the raw client has started to write */

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct conn *c = priv;
    CHECK(bind == c->bind);
    CHECK_EQ(c->disconnected, 0);
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        c->connected++;
        break;
    case EVPL_NOTIFY_RECV_MSG:
        CHECK_EQ(c->connected, 1);
        if (c->mode == MODE_CHECK) {
            if (c->msgs == 0) CHECK(atomic_load(&written) >= (int) c->lens[0] + 4);
            check_msg(c, n);
            for (unsigned i = 0; i < n->recv_msg.niov; i++) evpl_iovec_release(&n->recv_msg.iovec[i]);
        } else {
            /* Pass the references on: no release here. */
            evpl_sendv(evpl, bind, n->recv_msg.iovec, (int) n->recv_msg.niov,
                       (int) n->recv_msg.length, EVPL_SEND_FLAG_TAKE_REF);
            c->msgs++;
        }
        break;
    case EVPL_NOTIFY_DISCONNECTED:
        c->disconnected++;
        c->status = n->notify_status;
        break;
    default:
        /* RECV_DATA must not come on a bind with a segment callback. */
        fprintf(stderr, "server: unexpected notify type %u\n", n->notify_type);
        c->other++;
        break;
    }
}

static void
server_attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *nc,
              evpl_segment_callback_t *sc, void **conn_priv, void *priv)
{
    (void) evpl;
    (void) priv;
    CHECK(nsconn < 4);
    struct conn *c = &sconns[nsconn++];
    memset(c, 0, sizeof *c);
    c->bind = bind;
    c->mode = next_mode;
    c->lens = next_lens;
    c->nlens = next_nlens;
    *nc = server_notify;
    *sc = segment_cb;
    *conn_priv = c;
}

/* ---- a, b: raw client ------------------------------------------------------ */

static const uint32_t raw_lens[] = { 10, 0, 1, 100, 1000, 65536, 3 * MiB };
#define NRAW ((int) (sizeof raw_lens / sizeof raw_lens[0]))

static _Atomic int   raw_done;     /* 1 ok, -1 failed */
static _Atomic int   server_got_all;
static struct conn *_Atomic raw_conn;  /* the server conn of the raw client */
static char          raw_err[200];

static void *
raw_thread(void *arg)
{
    (void) arg;
    int fd = raw_connect("127.0.0.1", port, 1);  /* TCP_NODELAY */
    if (fd < 0) {
        snprintf(raw_err, sizeof raw_err, "connect: %s", strerror(errno));
        atomic_store(&raw_done, -1);
        return NULL;
    }
    /* Wait for the server side to exist so "seen" belongs to this connection. */
    uint64_t end = now_ms() + 10000;
    while (atomic_load(&raw_conn) == NULL && now_ms() < end) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    struct conn *c = atomic_load(&raw_conn);
    if (!c) {
        snprintf(raw_err, sizeof raw_err, "server never attached the connection");
        goto fail;
    }

    /* Message 0, one byte per write; header bytes wait until seen. */
    unsigned char *m0 = make_msg(0, raw_lens[0]);
    for (unsigned i = 0; i < raw_lens[0] + 4; i++) {
        atomic_store(&written, (int) i + 1);
        if (write_all(fd, m0 + i, 1) != 0) {
            snprintf(raw_err, sizeof raw_err, "write: %s", strerror(errno));
            free(m0);
            goto fail;
        }
        if (i < 3) {
            while (atomic_load(&c->seen) < (int) i + 1 && now_ms() < end) {
                struct timespec ts = { 0, 200000 };
                nanosleep(&ts, NULL);
            }
            if (atomic_load(&c->seen) < (int) i + 1) {
                snprintf(raw_err, sizeof raw_err, "segment callback never saw %u header byte(s)", i + 1);
                free(m0);
                goto fail;
            }
        }
    }
    free(m0);

    /* Messages 1..5 in one write. */
    size_t total = 0;
    for (int k = 1; k <= 5; k++) total += raw_lens[k] + 4;
    unsigned char *batch = malloc(total);
    size_t off = 0;
    for (int k = 1; k <= 5; k++) {
        unsigned char *m = make_msg((unsigned) k, raw_lens[k]);
        memcpy(batch + off, m, raw_lens[k] + 4);
        off += raw_lens[k] + 4;
        free(m);
    }
    int rc = write_all(fd, batch, total);
    free(batch);
    if (rc != 0) {
        snprintf(raw_err, sizeof raw_err, "write batch: %s", strerror(errno));
        goto fail;
    }

    /* Message 6: 3 MiB, more than one buffer. */
    unsigned char *big = make_msg(6, raw_lens[6]);
    rc = write_all(fd, big, raw_lens[6] + 4);
    free(big);
    if (rc != 0) {
        snprintf(raw_err, sizeof raw_err, "write big: %s", strerror(errno));
        goto fail;
    }

    end = now_ms() + 30000;
    while (!atomic_load(&server_got_all) && now_ms() < end) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    close(fd);
    atomic_store(&raw_done, 1);
    return NULL;
fail:
    close(fd);
    atomic_store(&raw_done, -1);
    return NULL;
}

static void
case_raw(void)
{
    fprintf(stderr, "a, b: raw client, split header, batch, 3 MiB message\n");
    next_mode = MODE_CHECK;
    next_lens = raw_lens;
    next_nlens = NRAW;
    int first = nsconn;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, raw_thread, NULL), 0);
    WAIT_FOR(nsconn > first || atomic_load(&raw_done) != 0, 10000);
    if (nsconn > first) atomic_store(&raw_conn, &sconns[first]);
    struct conn *c = &sconns[first];
    WAIT_FOR(c->msgs == NRAW || atomic_load(&raw_done) != 0, 30000);
    atomic_store(&server_got_all, 1);
    WAIT_FOR(atomic_load(&raw_done) != 0 && (c->disconnected || atomic_load(&raw_done) < 0), 10000);
    pthread_join(th, NULL);
    if (atomic_load(&raw_done) < 0) {
        fprintf(stderr, "raw client: %s\n", raw_err);
        CHECK(0);
    }
    CHECK_EQ(nsconn, first + 1);
    CHECK_EQ(c->connected, 1);
    CHECK_EQ(c->msgs, NRAW);
    CHECK(c->seg_zero >= 3);  /* the header arrived 1, 2, 3 bytes at a time */
    CHECK(c->max_niov > 1);   /* the 3 MiB message spans buffers */
    CHECK_EQ(c->other, 0);
    CHECK_EQ(c->disconnected, 1);
    CHECK_EQ(c->status, 0);
}

/* ---- c: the segment callback says -1 ----------------------------------------- */

static void
case_reject(void)
{
    fprintf(stderr, "c: segment callback returns -1\n");
    static const uint32_t none[1] = { 0 };
    next_mode = MODE_CHECK;
    next_lens = none;
    next_nlens = 0;  /* any RECV_MSG fails check_msg */
    int first = nsconn;
    int fd = raw_connect("127.0.0.1", port, 1);  /* TCP_NODELAY */
    CHECK(fd >= 0);
    WAIT_FOR(nsconn > first && sconns[first].connected, 10000);
    struct conn *c = &sconns[first];
    unsigned char bad[8] = { 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4 };
    CHECK_EQ(write_all(fd, bad, sizeof bad), 0);
    WAIT_FOR(c->disconnected, 10000);
    for (int i = 0; i < 5; i++) evpl_continue(server);
    CHECK_EQ(c->disconnected, 1);
    CHECK_EQ(c->status, EPROTO);
    CHECK_EQ(c->msgs, 0);
    CHECK(c->seg_calls >= 1);

    /* The peer sees the connection end (EOF or reset). */
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    CHECK_EQ(poll(&pfd, 1, 10000), 1);
    char tmp[64];
    ssize_t r = read(fd, tmp, sizeof tmp);
    CHECK(r == 0 || (r < 0 && errno == ECONNRESET));
    close(fd);
}

/* ---- d: evpl client with a segment callback, echo by TAKE_REF ------------- */

#define NECHO 40
static uint32_t echo_lens[NECHO + 1];
static struct conn cl;

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) evpl;
    struct conn *c = priv;
    CHECK(c == &cl);
    CHECK(bind == c->bind);
    CHECK_EQ(c->disconnected, 0);
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        c->connected++;
        break;
    case EVPL_NOTIFY_RECV_MSG:
        check_msg(c, n);
        for (unsigned i = 0; i < n->recv_msg.niov; i++) evpl_iovec_release(&n->recv_msg.iovec[i]);
        break;
    case EVPL_NOTIFY_DISCONNECTED:
        c->disconnected++;
        c->status = n->notify_status;
        break;
    default:
        fprintf(stderr, "client: unexpected notify type %u\n", n->notify_type);
        c->other++;
        break;
    }
}

static void
case_echo(void)
{
    fprintf(stderr, "d: evpl client with segment callback, TAKE_REF echo\n");
    client = test_loop();
    uint32_t seedv = 12345;
    for (int k = 0; k < NECHO; k++) {
        seedv = seedv * 1103515245u + 12345u;
        echo_lens[k] = (k % 10 == 9) ? 300000u + (seedv >> 8) % 1000000u : (seedv >> 8) % 5000u;
    }
    echo_lens[NECHO] = 777;  /* sent as two halves in two iterations */
    next_mode = MODE_ECHO;
    next_lens = echo_lens;
    next_nlens = NECHO + 1;
    int first = nsconn;

    memset(&cl, 0, sizeof cl);
    cl.lens = echo_lens;
    cl.nlens = NECHO + 1;
    cl.kbase = 100;
    struct evpl_endpoint *ep = evpl_endpoint_create("127.0.0.1", port);
    CHECK(ep != NULL);
    cl.bind = evpl_connect(client, proto, NULL, ep, client_notify, segment_cb, &cl);
    CHECK(cl.bind != NULL);
    WAIT_FOR(cl.connected && nsconn > first && sconns[first].connected, 10000);
    struct conn *s = &sconns[first];

    for (unsigned k = 0; k < NECHO; k++) {
        unsigned char *m = make_msg(100 + k, echo_lens[k]);
        evpl_send(client, cl.bind, m, echo_lens[k] + 4);
        free(m);
    }
    unsigned char *last = make_msg(100 + NECHO, echo_lens[NECHO]);
    evpl_send(client, cl.bind, last, 3);  /* part of the header only */
    WAIT_FOR(s->msgs == NECHO && s->last == 3, 20000);
    for (int i = 0; i < 3; i++) { evpl_continue(client); evpl_continue(server); }
    CHECK_EQ(s->msgs, NECHO);
    evpl_send(client, cl.bind, last + 3, echo_lens[NECHO] + 1);
    free(last);

    WAIT_FOR(cl.msgs == NECHO + 1, 20000);
    CHECK_EQ(s->msgs, NECHO + 1);
    CHECK(cl.max_niov >= 1);
    evpl_close(client, cl.bind);
    WAIT_FOR(cl.disconnected && s->disconnected, 10000);
    CHECK_EQ(cl.status, 0);
    CHECK_EQ(s->status, 0);
    CHECK_EQ(cl.other, 0);
    CHECK_EQ(s->other, 0);
    evpl_endpoint_close(ep);
    evpl_destroy(client);
    client = NULL;
}

int
main(int argc, char **argv)
{
    proto = test_protocol(argc, argv, EVPL_STREAM_SOCKET_TCP);
    if (!evpl_protocol_available(proto)) SKIP("protocol %d not available", (int) proto);

    server = test_loop();
    struct evpl_listener *listener = evpl_listener_create();
    CHECK(listener != NULL);
    struct evpl_listener_binding *lb = evpl_listener_attach(server, listener, server_attach, NULL);
    CHECK(lb != NULL);
    struct evpl_endpoint *lep = NULL;
    port = listen_free(listener, proto, "127.0.0.1", &lep);

    case_raw();
    case_reject();
    case_echo();

    evpl_listener_detach(server, lb);
    evpl_listener_destroy(listener);
    evpl_destroy(server);
    evpl_endpoint_close(lep);
    return 0;
}
