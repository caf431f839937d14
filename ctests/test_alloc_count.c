/* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/*
 * No heap allocation per message in steady state (issue: performance).
 * This program defines malloc and friends, forwarding to glibc's __libc_*
 * entry points; libevpl.so and its statically linked Swift runtime resolve
 * to them, so every allocation made anywhere in the process is counted while
 * `counting` is set.  Two scenarios, each warmed up first:
 *   1. 100 000 framed round trips (segment callback, RECV_MSG, zero-copy
 *      echo with evpl_sendv + TAKE_REF, like the shared benchmark);
 *   2. 1 GiB of zero-copy stream (evpl_iovec_alloc + evpl_sendv TAKE_REF on
 *      one side, evpl_recvv + evpl_iovec_release on the other).
 * Each must allocate fewer than one block per 10 000 messages.
 */
#include "harness.h"
#include "net.h"
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stddef.h>

static atomic_int  counting;
static atomic_long allocations;

#ifndef EVPL_TEST_ASAN  /* AddressSanitizer owns malloc: no interposer there */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void  __libc_free(void *);

static inline void
count(void)
{
    if (atomic_load_explicit(&counting, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    }
}

void *malloc(size_t n) { count(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { count(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { count(); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t a, size_t n) { count(); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { count(); return __libc_memalign(a, n); }
int
posix_memalign(void **out, size_t a, size_t n)
{
    count();
    *out = __libc_memalign(a, n);
    return *out ? 0 : ENOMEM;
}
#endif

#define MSG 64

struct side {
    struct evpl_bind *bind;
    int               connected;
    long              messages;   /* RECV_MSG seen (client) / echoed (server) */
    long              bytes;      /* stream bytes received (server) */
    long              sent_bytes; /* SENT totals (stream client) */
};

static struct side server, client;
static int         stream_mode;

static int
segment(struct evpl *evpl, struct evpl_bind *bind, void *priv)
{
    uint32_t len;
    (void) priv;
    if (evpl_peek(evpl, bind, &len, 4) < 4) {
        return 0;
    }
    return (int) ntohl(len) + 4;
}

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct evpl_iovec iov[64];
    int               len, got;
    (void) priv;
    switch (n->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            server.bind = bind;
            server.connected = 1;
            break;
        case EVPL_NOTIFY_RECV_MSG:  /* zero-copy echo: hand the references back */
            evpl_sendv(evpl, bind, n->recv_msg.iovec, (int) n->recv_msg.niov,
                       (int) n->recv_msg.length, EVPL_SEND_FLAG_TAKE_REF);
            server.messages++;
            break;
        case EVPL_NOTIFY_RECV_DATA:
            while ((got = evpl_recvv(evpl, bind, iov, 64, 1 << 30, &len)) > 0) {
                for (int i = 0; i < got; i++) {
                    evpl_iovec_release(&iov[i]);
                }
                server.bytes += len;
            }
            CHECK(got == 0);
            break;
        default:
            break;
    }
}

static void
attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify,
       evpl_segment_callback_t *seg, void **conn, void *priv)
{
    (void) evpl; (void) bind; (void) priv;
    *notify = server_notify;
    *seg = stream_mode ? NULL : segment;
    *conn = NULL;
}

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) evpl; (void) bind; (void) priv;
    switch (n->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            client.connected = 1;
            break;
        case EVPL_NOTIFY_RECV_MSG:
            CHECK_EQ(n->recv_msg.length, MSG);
            for (unsigned i = 0; i < n->recv_msg.niov; i++) {
                evpl_iovec_release(&n->recv_msg.iovec[i]);
            }
            client.messages++;
            break;
        case EVPL_NOTIFY_SENT:
            client.sent_bytes += (long) n->sent.bytes;
            break;
        default:
            break;
    }
}

/* One framed message: 4-byte length, then payload. */
static void
send_message(struct evpl *evpl)
{
    unsigned char buf[MSG];
    uint32_t      len = htonl(MSG - 4);
    memcpy(buf, &len, 4);
    memset(buf + 4, 0x5a, MSG - 4);
    evpl_send(evpl, client.bind, buf, MSG);
}

static long
round_trips(struct evpl *cl, struct evpl *sv, long n)
{
    long target = client.messages + n;
    uint64_t end = now_ms() + 60000;
    while (client.messages < target && now_ms() < end) {
        long before = client.messages;
        send_message(cl);
        while (client.messages == before && now_ms() < end) {
            pump(cl, sv);
        }
    }
    CHECK_EQ(client.messages, target);
    return n;
}

static void
stream(struct evpl *cl, struct evpl *sv, long total)
{
    const unsigned chunk = 16 << 10;
    long goal = server.bytes + total;
    long queued = 0, window = 4L * chunk;
    long sent_at_start = client.sent_bytes;
    uint64_t end = now_ms() + 60000;
    while (server.bytes < goal && now_ms() < end) {
        while (queued < total && queued - (client.sent_bytes - sent_at_start) < window) {
            struct evpl_iovec iov[4];
            int n = evpl_iovec_alloc(cl, chunk, 0, 4, iov);
            CHECK(n > 0);
            evpl_sendv(cl, client.bind, iov, n, (int) chunk, EVPL_SEND_FLAG_TAKE_REF);
            queued += chunk;
        }
        pump(cl, sv);
    }
    CHECK_EQ(server.bytes, goal);
}

static struct evpl_listener_binding *
setup(struct evpl *cl, struct evpl *sv, struct evpl_listener *listener, enum evpl_protocol_id proto)
{
    struct evpl_listener_binding *binding = evpl_listener_attach(sv, listener, attach, NULL);
    struct evpl_endpoint *ep = NULL;
    int port = listen_random_port(listener, proto, &ep);
    if (port != 0) {
        client.bind = evpl_connect(cl, proto, NULL, ep, client_notify,
                                   stream_mode ? NULL : segment, NULL);
        evpl_endpoint_close(ep);
    }
    CHECK(port != 0 && client.bind != NULL);
    uint64_t end = now_ms() + 5000;
    while (!(client.connected && server.connected) && now_ms() < end) {
        pump(cl, sv);
    }
    CHECK(client.connected && server.connected);
    return binding;
}

int
main(int argc, char **argv)
{
#ifdef EVPL_TEST_ASAN
    (void) argc; (void) argv;
    SKIP("allocation counting needs glibc's malloc (this is an AddressSanitizer build)");
#endif
    enum evpl_protocol_id proto = test_protocol(argc, argv, EVPL_STREAM_SOCKET_TCP);

    /* The interposer sees the library's allocations (Swift runtime included). */
    atomic_store(&counting, 1);
    struct evpl_endpoint *probe = evpl_endpoint_create("127.0.0.1", 1);
    atomic_store(&counting, 0);
    CHECK(atomic_load(&allocations) > 0);
    evpl_endpoint_close(probe);

    /* 1. framed round trips */
    {
        struct evpl *cl = loop_with_wait(0), *sv = loop_with_wait(0);  /* never sleep when idle */
        struct evpl_listener *listener = evpl_listener_create();
        struct evpl_listener_binding *binding = setup(cl, sv, listener, proto);
        round_trips(cl, sv, 1000);                    /* warm-up */
        atomic_store(&allocations, 0);
        atomic_store(&counting, 1);
        long n = round_trips(cl, sv, 100000);
        atomic_store(&counting, 0);
        long a = atomic_load(&allocations);
        printf("framed round trips: %ld messages, %ld allocations\n", n, a);
        CHECK(a * 10000 < n);
        evpl_listener_detach(sv, binding);
        evpl_listener_destroy(listener);
        evpl_destroy(cl);
        evpl_destroy(sv);
    }

    /* 2. zero-copy stream */
    {
        memset(&server, 0, sizeof(server));
        memset(&client, 0, sizeof(client));
        stream_mode = 1;
        struct evpl *cl = loop_with_wait(0), *sv = loop_with_wait(0);  /* never sleep when idle */
        struct evpl_listener *listener = evpl_listener_create();
        struct evpl_listener_binding *binding = setup(cl, sv, listener, proto);
        evpl_bind_request_send_notifications(cl, client.bind);
        stream(cl, sv, 256L << 20);                    /* warm-up: the pools reach their working size */
        atomic_store(&allocations, 0);
        atomic_store(&counting, 1);
        long total = 1L << 30;
        stream(cl, sv, total);
        atomic_store(&counting, 0);
        long a = atomic_load(&allocations);
        long messages = total >> 14;                   /* 16 KiB sends */
        printf("zero-copy stream: %ld MiB in %ld sends, %ld allocations\n", total >> 20, messages, a);
        CHECK(a * 10000 < messages);
        evpl_listener_detach(sv, binding);
        evpl_listener_destroy(listener);
        evpl_destroy(cl);
        evpl_destroy(sv);
    }
    return 0;
}
