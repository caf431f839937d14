/* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/*
 * Bulk transfer and the receive API over a stream protocol.
 *  1. 64 MiB from client to server in random-sized evpl_send chunks
 *     (1 B .. 1 MiB, seeded), the server draining with evpl_recv and checking
 *     every byte against the position-keyed pattern;
 *  2. the same with the server draining with evpl_recvv (zero-copy; it
 *     releases every iovec);
 *  3. one 5 MiB evpl_send arrives intact;
 *  4. evpl_sendv from evpl_iovec_alloc buffers with EVPL_SEND_FLAG_TAKE_REF,
 *     with a length shorter than the iovecs (the tail is not sent), and
 *     without TAKE_REF (the caller releases right after the call);
 *  5. evpl_peek / evpl_peekv / evpl_consume / EVPL_RECV_FLAG_ALL_OR_NONE /
 *     evpl_recvv edge cases, called on the server bind from outside callbacks
 *     (evpl_recvv returns -1 when maxiovecs 1 cannot hold 3 MiB, which
 *     spans at least two 2 MiB buffers).
 * The client asks for SENT notifications on every connection: summed, they
 * must equal the bytes and the number of send calls made.
 * Both loops run in this thread, driven alternately.
 */
#include "harness.h"
#include "net.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define MiB (1024u * 1024u)

enum { MODE_RECV = 1, MODE_RECVV = 2, MODE_MANUAL = 3 };

static enum evpl_protocol_id proto;
static struct evpl          *client, *server;
static struct evpl_endpoint *rep;

#define WAIT_FOR(cond, ms) WAIT_FOR2(client, server, cond, ms)

/* ---- the byte pattern: a function of (seed, stream position) ------------- */

static uint64_t
mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void
fill_pattern(unsigned char *p, uint64_t off, size_t len, uint64_t seed)
{
    size_t i = 0;
    while (i < len) {
        uint64_t pos = off + i;
        uint64_t w = mix64((pos >> 3) ^ (seed << 48));
        for (unsigned k = (unsigned) (pos & 7); k < 8 && i < len; k++, i++) {
            p[i] = (unsigned char) (w >> (k * 8));
        }
    }
}

static void
verify_pattern(const unsigned char *p, uint64_t off, size_t len, uint64_t seed)
{
    static unsigned char want[65536];
    size_t done = 0;
    while (done < len) {
        size_t n = len - done < sizeof want ? len - done : sizeof want;
        fill_pattern(want, off + done, n, seed);
        if (memcmp(p + done, want, n) != 0) {
            for (size_t i = 0; i < n; i++) {
                if (p[done + i] != want[i]) {
                    fprintf(stderr, "pattern mismatch at stream offset %llu: got 0x%02x want 0x%02x\n",
                            (unsigned long long) (off + done + i), p[done + i], want[i]);
                    break;
                }
            }
            CHECK(!"received bytes differ from what was sent");
        }
        done += n;
    }
}

static uint64_t rng_state;

static uint64_t
rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---- server ------------------------------------------------------------- */

struct sconn {
    struct evpl_bind *bind;
    int               mode;
    uint64_t          seed;
    int               connected, disconnected, status, recv_data;
    uint64_t          received;
    int               max_niov;
};

static struct sconn sc;
static int          next_mode;
static uint64_t     next_seed;
static int          nattach;

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct sconn *s = priv;
    CHECK(s == &sc);
    CHECK(bind == s->bind);
    CHECK_EQ(s->disconnected, 0);
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        s->connected++;
        break;
    case EVPL_NOTIFY_RECV_DATA:
        CHECK_EQ(s->connected, 1);
        s->recv_data++;
        if (s->mode == MODE_RECV) {
            static unsigned char buf[256 * 1024];
            int r;
            while ((r = evpl_recv(evpl, bind, buf, (int) sizeof buf, 0)) > 0) {
                verify_pattern(buf, s->received, (size_t) r, s->seed);
                s->received += (uint64_t) r;
            }
            CHECK_EQ(r, 0);
        } else if (s->mode == MODE_RECVV) {
            struct evpl_iovec iov[128];
            int maxlen = 1024 * 1024;
            for (;;) {
                int len = -12345;
                int niov = evpl_recvv(evpl, bind, iov, 128, maxlen, &len);
                if (niov < 0) {
                    /* 128 iovecs cannot hold maxlen bytes as buffered: ask for less. */
                    CHECK(maxlen > 1);
                    maxlen /= 2;
                    continue;
                }
                if (niov == 0) {
                    CHECK_EQ(len, 0);
                    break;
                }
                CHECK(niov <= 128);
                CHECK(len > 0 && len <= maxlen);
                if (niov > s->max_niov) s->max_niov = niov;
                int sum = 0;
                for (int i = 0; i < niov; i++) {
                    unsigned l = evpl_iovec_length(&iov[i]);
                    CHECK(l > 0);
                    verify_pattern(evpl_iovec_data(&iov[i]), s->received, l, s->seed);
                    s->received += l;
                    sum += (int) l;
                    evpl_iovec_release(&iov[i]);
                }
                CHECK_EQ(sum, len);
            }
        }
        break;
    case EVPL_NOTIFY_DISCONNECTED:
        s->disconnected++;
        s->status = n->notify_status;
        break;
    default:
        fprintf(stderr, "server: unexpected notify type %u\n", n->notify_type);
        CHECK(0);
    }
}

static void
server_attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *nc,
              evpl_segment_callback_t *sc_out, void **conn_priv, void *priv)
{
    (void) evpl;
    (void) priv;
    CHECK(sc.bind == NULL);  /* one connection at a time in this test */
    nattach++;
    sc.bind = bind;
    sc.mode = next_mode;
    sc.seed = next_seed;
    *nc = server_notify;
    *sc_out = NULL;
    *conn_priv = &sc;
}

/* ---- client ------------------------------------------------------------- */

struct cconn {
    struct evpl_bind *bind;
    int               connected, disconnected, status, other;
    uint64_t          sent_bytes, sent_calls;   /* what we asked to send */
    uint64_t          note_bytes, note_msgs;    /* what SENT reported */
    int               notes;
};

static struct cconn cc;

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct cconn *c = priv;
    CHECK(c == &cc);
    CHECK(bind == c->bind);
    CHECK_EQ(c->disconnected, 0);
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        c->connected++;
        evpl_bind_request_send_notifications(evpl, bind);
        break;
    case EVPL_NOTIFY_SENT:
        CHECK_EQ(n->notify_status, 0);
        c->notes++;
        c->note_bytes += n->sent.bytes;
        c->note_msgs += n->sent.msgs;
        CHECK(c->note_bytes <= c->sent_bytes);
        CHECK(c->note_msgs <= c->sent_calls);
        break;
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
open_pair(int mode, uint64_t seed)
{
    memset(&sc, 0, sizeof sc);
    memset(&cc, 0, sizeof cc);
    next_mode = mode;
    next_seed = seed;
    cc.bind = evpl_connect(client, proto, NULL, rep, client_notify, NULL, &cc);
    CHECK(cc.bind != NULL);
    WAIT_FOR(cc.connected && sc.connected, 10000);
}

static void
check_sent_accounting(void)
{
    WAIT_FOR(cc.note_bytes >= cc.sent_bytes && cc.note_msgs >= cc.sent_calls, 10000);
    CHECK_EQ(cc.note_bytes, cc.sent_bytes);
    CHECK_EQ(cc.note_msgs, cc.sent_calls);
    CHECK(cc.notes >= 1);
}

static void
close_pair(void)
{
    evpl_close(client, cc.bind);
    WAIT_FOR(cc.disconnected && sc.disconnected, 10000);
    for (int i = 0; i < 3; i++) { evpl_continue(client); evpl_continue(server); }
    CHECK_EQ(cc.disconnected, 1);
    CHECK_EQ(cc.status, 0);
    CHECK_EQ(sc.disconnected, 1);
    CHECK_EQ(sc.status, 0);
    CHECK_EQ(cc.other, 0);
}

static void
client_send(const void *buf, unsigned len)
{
    evpl_send(client, cc.bind, buf, len);
    cc.sent_bytes += len;
    cc.sent_calls++;
}

/* ---- 1, 2: 64 MiB in random chunks -------------------------------------- */

static void
bulk(int mode, uint64_t seed)
{
    const uint64_t total = 64ull * MiB;
    const uint64_t window = 8ull * MiB;  /* pace on what the server has seen */
    unsigned char *chunk = malloc(MiB);
    CHECK(chunk != NULL);
    rng_state = 0x243f6a8885a308d3ull ^ seed;

    open_pair(mode, seed);
    uint64_t t0 = now_ms(), end = t0 + 25000;
    while (sc.received < total && now_ms() < end) {
        while (cc.sent_bytes < total && cc.sent_bytes - sc.received < window) {
            unsigned len = 1 + (unsigned) (rng() % MiB);
            if (len > total - cc.sent_bytes) len = (unsigned) (total - cc.sent_bytes);
            fill_pattern(chunk, cc.sent_bytes, len, seed);
            client_send(chunk, len);
        }
        evpl_continue(client);
        evpl_continue(server);
    }
    CHECK_EQ(sc.received, total);
    fprintf(stderr, "bulk %s: 64 MiB in %llu sends, %llu ms (most iovecs in one recvv: %d)\n",
            mode == MODE_RECV ? "evpl_recv" : "evpl_recvv",
            (unsigned long long) cc.sent_calls, (unsigned long long) (now_ms() - t0), sc.max_niov);
    check_sent_accounting();
    close_pair();
    CHECK_EQ(sc.received, total);
    free(chunk);
}

/* ---- 3: one 5 MiB send --------------------------------------------------- */

static void
one_big_send(void)
{
    const unsigned len = 5 * MiB;
    unsigned char *buf = malloc(len);
    CHECK(buf != NULL);
    open_pair(MODE_RECV, 3);
    fill_pattern(buf, 0, len, 3);
    client_send(buf, len);
    memset(buf, 0, len);  /* evpl_send copied it */
    WAIT_FOR(sc.received >= len, 20000);
    CHECK_EQ(sc.received, len);
    check_sent_accounting();
    close_pair();
    free(buf);
}

/* ---- 4: evpl_sendv ------------------------------------------------------- */

static unsigned
fill_iovecs(struct evpl_iovec *iov, int n, uint64_t off, uint64_t seed)
{
    unsigned total = 0;
    for (int i = 0; i < n; i++) {
        fill_pattern(evpl_iovec_data(&iov[i]), off + total, evpl_iovec_length(&iov[i]), seed);
        total += evpl_iovec_length(&iov[i]);
    }
    return total;
}

static void
sendv_cases(void)
{
    const uint64_t seed = 4;
    struct evpl_iovec iov[8];
    uint64_t off = 0;
    open_pair(MODE_RECV, seed);

    /* TAKE_REF: the library owns our references from here on. */
    int n = evpl_iovec_alloc(client, 3 * MiB, 0, 8, iov);
    CHECK(n >= 1 && n <= 8);
    unsigned len = fill_iovecs(iov, n, off, seed);
    CHECK_EQ(len, 3 * MiB);
    evpl_sendv(client, cc.bind, iov, n, (int) len, EVPL_SEND_FLAG_TAKE_REF);
    cc.sent_bytes += len;
    cc.sent_calls++;
    off += len;

    /* length shorter than the iovec: only the first 600 bytes go out; the
     * 400-byte tail is garbage that would break the pattern if it were sent. */
    n = evpl_iovec_alloc(client, 1000, 0, 1, iov);
    CHECK_EQ(n, 1);
    CHECK_EQ(evpl_iovec_length(&iov[0]), 1000);
    fill_pattern(evpl_iovec_data(&iov[0]), off, 600, seed);
    memset((char *) evpl_iovec_data(&iov[0]) + 600, 0xEE, 400);
    evpl_sendv(client, cc.bind, iov, 1, 600, EVPL_SEND_FLAG_TAKE_REF);
    cc.sent_bytes += 600;
    cc.sent_calls++;
    off += 600;

    /* Without TAKE_REF: the library adds its own reference, we drop ours at once. */
    n = evpl_iovec_alloc(client, MiB + 100, 4096, 4, iov);
    CHECK(n >= 1 && n <= 4);
    for (int i = 0; i < n; i++) CHECK_EQ((uintptr_t) evpl_iovec_data(&iov[i]) % 4096, 0);
    len = fill_iovecs(iov, n, off, seed);
    CHECK_EQ(len, MiB + 100);
    evpl_sendv(client, cc.bind, iov, n, (int) len, 0);
    for (int i = 0; i < n; i++) evpl_iovec_release(&iov[i]);
    cc.sent_bytes += len;
    cc.sent_calls++;
    off += len;

    WAIT_FOR(sc.received >= off, 20000);
    CHECK_EQ(sc.received, off);
    check_sent_accounting();
    close_pair();
    CHECK_EQ(sc.received, off);
}

/* ---- 5: receive API edge cases -------------------------------------------- */

static int
server_peek(void *buf, int len)
{
    return evpl_peek(server, sc.bind, buf, len);
}

static char peekbuf[4096];

#define WAIT_PEEK(n) do { \
        WAIT_FOR(server_peek(peekbuf, (int) sizeof peekbuf) >= (n), 5000); \
        CHECK_EQ(server_peek(peekbuf, (int) sizeof peekbuf), (n)); \
} while (0)

static void
api_cases(void)
{
    char buf[512];
    struct evpl_iovec iov[16];
    int len;

    open_pair(MODE_MANUAL, 5);
    CHECK_EQ(server_peek(buf, (int) sizeof buf), 0);
    CHECK_EQ(evpl_recv(server, sc.bind, buf, (int) sizeof buf, 0), 0);

    /* peek does not consume; consume is all or nothing. */
    client_send("abcdefghij", 10);
    WAIT_PEEK(10);
    CHECK(memcmp(peekbuf, "abcdefghij", 10) == 0);
    CHECK(sc.recv_data >= 1);
    CHECK_EQ(evpl_recv(server, sc.bind, buf, 11, EVPL_RECV_FLAG_ALL_OR_NONE), 0);
    CHECK_EQ(server_peek(buf, (int) sizeof buf), 10);
    CHECK_EQ(evpl_consume(server, sc.bind, 11), -1);
    CHECK_EQ(server_peek(buf, (int) sizeof buf), 10);
    CHECK(memcmp(buf, "abcdefghij", 10) == 0);
    CHECK_EQ(evpl_consume(server, sc.bind, 3), 0);
    CHECK_EQ(server_peek(buf, (int) sizeof buf), 7);
    CHECK(memcmp(buf, "defghij", 7) == 0);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(server_peek(buf, 4), 4);  /* a peek shorter than what is buffered */
    CHECK(memcmp(buf, "defg\0", 5) == 0);
    CHECK_EQ(evpl_recv(server, sc.bind, buf, 7, EVPL_RECV_FLAG_ALL_OR_NONE), 7);
    CHECK(memcmp(buf, "defghij", 7) == 0);
    CHECK_EQ(evpl_recv(server, sc.bind, buf, (int) sizeof buf, 0), 0);
    CHECK_EQ(server_peek(buf, (int) sizeof buf), 0);
    CHECK_EQ(evpl_consume(server, sc.bind, 0), 0);
    CHECK_EQ(evpl_consume(server, sc.bind, 1), -1);

    /* ALL_OR_NONE: 0 until maxlength bytes are there, then exactly maxlength. */
    client_send("12345", 5);
    WAIT_PEEK(5);
    CHECK_EQ(evpl_recv(server, sc.bind, buf, 8, EVPL_RECV_FLAG_ALL_OR_NONE), 0);
    CHECK_EQ(server_peek(buf, (int) sizeof buf), 5);
    client_send("67890", 5);
    WAIT_PEEK(10);
    CHECK_EQ(evpl_recv(server, sc.bind, buf, 8, EVPL_RECV_FLAG_ALL_OR_NONE), 8);
    CHECK(memcmp(buf, "12345678", 8) == 0);
    CHECK_EQ(evpl_recv(server, sc.bind, buf, (int) sizeof buf, 0), 2);
    CHECK(memcmp(buf, "90", 2) == 0);

    /* Plain evpl_recv returns what is there, up to maxlength. */
    client_send("ABCDEFGHIJKLMNOPQRST", 20);
    WAIT_PEEK(20);
    CHECK_EQ(evpl_recv(server, sc.bind, buf, 6, 0), 6);
    CHECK(memcmp(buf, "ABCDEF", 6) == 0);
    CHECK_EQ(evpl_recv(server, sc.bind, buf, (int) sizeof buf, 0), 14);
    CHECK(memcmp(buf, "GHIJKLMNOPQRST", 14) == 0);

    /* Two sends in two iterations: the server probably holds two iovecs. */
    unsigned char pat[300];
    fill_pattern(pat, 0, sizeof pat, 55);
    client_send(pat, 100);
    WAIT_PEEK(100);
    client_send(pat + 100, 100);
    WAIT_PEEK(200);
    CHECK(memcmp(peekbuf, pat, 200) == 0);
    int np = evpl_peekv(server, sc.bind, iov, 16, 200);
    CHECK(np >= 1 && np <= 16);
    {
        unsigned sum = 0;
        for (int i = 0; i < np; i++) {
            unsigned l = evpl_iovec_length(&iov[i]);
            CHECK(sum + l <= 200);
            CHECK(memcmp(evpl_iovec_data(&iov[i]), pat + sum, l) == 0);
            sum += l;
        }
        CHECK_EQ(sum, 200);
        /* peekv'd iovecs are borrowed views (nothing consumed): not released here. */
    }
    CHECK_EQ(server_peek(buf, (int) sizeof buf), 200);
    if (np > 1) {
        len = -7;
        CHECK_EQ(evpl_recvv(server, sc.bind, iov, 1, 200, &len), -1);
        CHECK_EQ(server_peek(buf, (int) sizeof buf), 200);  /* nothing taken */
    } else {
        fprintf(stderr, "note: 200 bytes from two sends sit in one iovec; "
                "recvv -1 on too few iovecs not checked\n");
    }
    len = -7;
    int nr = evpl_recvv(server, sc.bind, iov, 16, 200, &len);
    CHECK(nr >= 1 && nr <= 16);
    CHECK_EQ(len, 200);
    {
        unsigned sum = 0;
        for (int i = 0; i < nr; i++) {
            unsigned l = evpl_iovec_length(&iov[i]);
            CHECK(sum + l <= 200);
            CHECK(memcmp(evpl_iovec_data(&iov[i]), pat + sum, l) == 0);
            sum += l;
            evpl_iovec_release(&iov[i]);
        }
        CHECK_EQ(sum, 200);
    }
    CHECK_EQ(server_peek(buf, (int) sizeof buf), 0);
    len = -7;
    CHECK_EQ(evpl_recvv(server, sc.bind, iov, 16, 200, &len), 0);
    CHECK_EQ(len, 0);

    /* 3 MiB cannot sit in one iovec (one iovec is at most one 2 MiB buffer),
     * so evpl_recvv with maxiovecs 1 must refuse it and take nothing. */
    {
        const unsigned big_len = 3 * MiB;
        unsigned char *big = malloc(big_len), *got = malloc(big_len);
        CHECK(big != NULL && got != NULL);
        fill_pattern(big, 0, big_len, 56);
        client_send(big, big_len);
        WAIT_FOR(server_peek(got, (int) big_len) >= (int) big_len, 10000);
        CHECK(memcmp(got, big, big_len) == 0);
        np = evpl_peekv(server, sc.bind, iov, 16, (int) big_len);
        CHECK(np >= 2 && np <= 16);
        len = -7;
        CHECK_EQ(evpl_recvv(server, sc.bind, iov, 1, (int) big_len, &len), -1);
        CHECK_EQ(server_peek(got, (int) big_len), (int) big_len);
        len = -7;
        nr = evpl_recvv(server, sc.bind, iov, 16, (int) big_len, &len);
        CHECK(nr >= 2 && nr <= 16);
        CHECK_EQ(len, (int) big_len);
        unsigned sum = 0;
        for (int i = 0; i < nr; i++) {
            unsigned l = evpl_iovec_length(&iov[i]);
            CHECK(sum + l <= big_len);
            CHECK(memcmp(evpl_iovec_data(&iov[i]), big + sum, l) == 0);
            sum += l;
            evpl_iovec_release(&iov[i]);
        }
        CHECK_EQ(sum, big_len);
        CHECK_EQ(server_peek(buf, (int) sizeof buf), 0);
        free(big);
        free(got);
    }

    /* recvv with maxlength below what is buffered takes exactly maxlength;
     * the length out-pointer is optional. */
    client_send(pat, 300);
    WAIT_PEEK(300);
    len = -7;
    nr = evpl_recvv(server, sc.bind, iov, 16, 120, &len);
    CHECK(nr >= 1);
    CHECK_EQ(len, 120);
    {
        unsigned sum = 0;
        for (int i = 0; i < nr; i++) {
            unsigned l = evpl_iovec_length(&iov[i]);
            CHECK(memcmp(evpl_iovec_data(&iov[i]), pat + sum, l) == 0);
            sum += l;
            evpl_iovec_release(&iov[i]);
        }
        CHECK_EQ(sum, 120);
    }
    CHECK_EQ(server_peek(buf, (int) sizeof buf), 180);
    CHECK(memcmp(buf, pat + 120, 180) == 0);
    nr = evpl_recvv(server, sc.bind, iov, 16, 1000, NULL);
    CHECK(nr >= 1);
    {
        unsigned sum = 0;
        for (int i = 0; i < nr; i++) {
            unsigned l = evpl_iovec_length(&iov[i]);
            CHECK(memcmp(evpl_iovec_data(&iov[i]), pat + 120 + sum, l) == 0);
            sum += l;
            evpl_iovec_release(&iov[i]);
        }
        CHECK_EQ(sum, 180);
    }
    CHECK_EQ(server_peek(buf, (int) sizeof buf), 0);

    check_sent_accounting();
    close_pair();
}

int
main(int argc, char **argv)
{
    proto = test_protocol(argc, argv, EVPL_STREAM_SOCKET_TCP);
    if (!evpl_protocol_available(proto)) SKIP("protocol %d not available", (int) proto);

    /* Idle waits of at most 1 ms: two loops alternate in this thread, so a
     * long idle wait in one would stall the other's progress. */
    client = loop_with_wait(1);
    server = loop_with_wait(1);
    struct evpl_listener *listener = evpl_listener_create();
    CHECK(listener != NULL);
    struct evpl_listener_binding *lb = evpl_listener_attach(server, listener, server_attach, NULL);
    CHECK(lb != NULL);

    struct evpl_endpoint *lep = NULL;
    int port = listen_free(listener, proto, test_addr(), &lep);
    rep = evpl_endpoint_create(test_addr(), port);
    CHECK(rep != NULL);

    bulk(MODE_RECV, 1);
    bulk(MODE_RECVV, 2);
    one_big_send();
    sendv_cases();
    api_cases();
    CHECK_EQ(nattach, 5);

    evpl_listener_detach(server, lb);
    evpl_listener_destroy(listener);
    evpl_destroy(client);
    evpl_destroy(server);
    evpl_endpoint_close(rep);
    evpl_endpoint_close(lep);
    return 0;
}
