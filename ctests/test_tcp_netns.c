/* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/*
 * Echo between two network namespaces joined by a veth pair, so the bytes
 * cross a real (virtual) link with real addresses instead of loopback.
 *
 * With no mode argument (how the runner calls it) the program execs
 * `sh netns_echo.sh <itself> [args]`, which needs root and `ip netns`: it
 * builds the namespaces, runs this program as --server in one and --client
 * in the other, and removes them on exit.  Without root, without `ip`, or
 * without the script, the test is skipped (77).
 *
 *   --server ADDR PORT PEER   listen on ADDR:PORT; echo one connection,
 *                             whose remote address must be PEER:*; exit 0
 *                             after it ends in order with TOTAL bytes echoed
 *   --client ADDR PORT LOCAL  connect to ADDR:PORT (retrying while it is
 *                             refused), send TOTAL bytes, check the echo and
 *                             that the local address is LOCAL:*
 *   -r PROTO                  the stream protocol (default STREAM_SOCKET_TCP)
 */
#include "harness.h"
#include <limits.h>
#include <unistd.h>

#define TOTAL (1024 * 1024)

static enum evpl_protocol_id proto;

static unsigned char
pat(uint64_t j)
{
    return (unsigned char) (j * 17 + (j >> 10) * 3 + 1);
}

static int
starts_with_ip(const char *addr, const char *ip)
{
    size_t n = strlen(ip);
    return strncmp(addr, ip, n) == 0 && addr[n] == ':';
}

/* ---- exec the namespace script ------------------------------------------------ */

static void
run_script(int argc, char **argv)
{
    char self[PATH_MAX], dir[PATH_MAX], cand[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) SKIP("cannot find my own path");
    self[n] = '\0';
    memcpy(dir, self, (size_t) n + 1);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';

    const char *rel[] = { "%s/netns_echo.sh", "%s/../ctests/netns_echo.sh",
                          "%s/../../ctests/netns_echo.sh", "%s/../../../ctests/netns_echo.sh" };
    const char *script = NULL;
    if (access("ctests/netns_echo.sh", R_OK) == 0) {
        script = "ctests/netns_echo.sh";
    } else {
        for (size_t i = 0; i < sizeof rel / sizeof rel[0] && !script; i++) {
            snprintf(cand, sizeof cand, rel[i], dir);
            if (access(cand, R_OK) == 0) script = cand;
        }
    }
    if (!script) SKIP("ctests/netns_echo.sh not found");

    char **args = calloc((size_t) argc + 3, sizeof *args);
    CHECK(args != NULL);
    args[0] = "sh";
    args[1] = (char *) script;
    args[2] = self;
    for (int i = 1; i < argc; i++) args[i + 2] = argv[i];
    fflush(stderr);
    execvp("sh", args);
    SKIP("cannot exec sh: %s", strerror(errno));
}

/* ---- server ----------------------------------------------------------------- */

struct conn {
    struct evpl_bind *bind;
    int               connected, disconnected, status, other;
    uint64_t          bytes;
    char              remote[128], local[128];
};

static struct conn sc;
static int         nattach;

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct conn *c = priv;
    CHECK(bind == c->bind);
    CHECK_EQ(c->disconnected, 0);
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        c->connected++;
        evpl_bind_get_remote_address(bind, c->remote, sizeof c->remote);
        evpl_bind_get_local_address(bind, c->local, sizeof c->local);
        break;
    case EVPL_NOTIFY_RECV_DATA: {
        char buf[16384];
        int  r;
        while ((r = evpl_recv(evpl, bind, buf, sizeof buf, 0)) > 0) {
            evpl_send(evpl, bind, buf, (unsigned) r);
            c->bytes += (uint64_t) r;
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
server_attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *nc,
              evpl_segment_callback_t *segc, void **conn_priv, void *priv)
{
    (void) evpl;
    (void) priv;
    CHECK_EQ(nattach, 0);  /* one client only */
    nattach++;
    sc.bind = bind;
    *nc = server_notify;
    *segc = NULL;
    *conn_priv = &sc;
}

static int
run_server(const char *addr, int port, const char *peer)
{
    struct evpl *evpl = test_loop();
    struct evpl_listener *listener = evpl_listener_create();
    CHECK(listener != NULL);
    struct evpl_listener_binding *lb = evpl_listener_attach(evpl, listener, server_attach, NULL);
    CHECK(lb != NULL);
    struct evpl_endpoint *ep = evpl_endpoint_create(addr, port);
    CHECK(ep != NULL);
    CHECK_EQ(evpl_listen(listener, proto, ep), 0);
    fprintf(stderr, "server: listening on %s:%d\n", addr, port);

    CHECK(run_until(evpl, &sc.disconnected, 30000));
    fprintf(stderr, "server: %s <- %s, echoed %llu bytes, status %d\n", sc.local, sc.remote,
            (unsigned long long) sc.bytes, sc.status);
    CHECK_EQ(sc.connected, 1);
    CHECK(starts_with_ip(sc.remote, peer));
    CHECK(starts_with_ip(sc.local, addr));
    CHECK_EQ(sc.bytes, TOTAL);
    CHECK_EQ(sc.status, 0);
    CHECK_EQ(sc.other, 0);

    evpl_listener_detach(evpl, lb);
    evpl_listener_destroy(listener);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}

/* ---- client ----------------------------------------------------------------- */

static struct conn cc;

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct conn *c = priv;
    CHECK(bind == c->bind);
    CHECK_EQ(c->disconnected, 0);
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        c->connected++;
        break;
    case EVPL_NOTIFY_RECV_DATA: {
        unsigned char buf[16384];
        int r;
        while ((r = evpl_recv(evpl, bind, buf, sizeof buf, 0)) > 0) {
            for (int i = 0; i < r; i++) CHECK_EQ(buf[i], pat(c->bytes + (uint64_t) i));
            c->bytes += (uint64_t) r;
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

static int
run_client(const char *addr, int port, const char *local_ip)
{
    struct evpl *evpl = test_loop();
    struct evpl_endpoint *ep = evpl_endpoint_create(addr, port);
    CHECK(ep != NULL);

    /* The server starts at the same time: retry while it is not listening. */
    uint64_t end = now_ms() + 15000;
    for (;;) {
        memset(&cc, 0, sizeof cc);
        cc.bind = evpl_connect(evpl, proto, NULL, ep, client_notify, NULL, &cc);
        CHECK(cc.bind != NULL);
        uint64_t t = now_ms() + 5000;
        while (!cc.connected && !cc.disconnected && now_ms() < t) evpl_continue(evpl);
        if (cc.connected) break;
        CHECK(cc.disconnected);  /* no answer at all in 5 s: the link is broken */
        CHECK_EQ(cc.status, ECONNREFUSED);
        CHECK(now_ms() < end);
        for (uint64_t w = now_ms() + 100; now_ms() < w;) evpl_continue(evpl);  /* short back-off */
    }
    evpl_bind_get_local_address(cc.bind, cc.local, sizeof cc.local);
    evpl_bind_get_remote_address(cc.bind, cc.remote, sizeof cc.remote);
    fprintf(stderr, "client: %s -> %s\n", cc.local, cc.remote);
    CHECK(starts_with_ip(cc.local, local_ip));
    char want[128];
    snprintf(want, sizeof want, "%s:%d", addr, port);
    CHECK(strcmp(cc.remote, want) == 0);

    unsigned char chunk[65536];
    for (uint64_t off = 0; off < TOTAL; off += sizeof chunk) {
        for (size_t j = 0; j < sizeof chunk; j++) chunk[j] = pat(off + j);
        evpl_send(evpl, cc.bind, chunk, sizeof chunk);
    }
    end = now_ms() + 20000;
    while (cc.bytes < TOTAL && !cc.disconnected && now_ms() < end) evpl_continue(evpl);
    CHECK_EQ(cc.bytes, TOTAL);
    evpl_close(evpl, cc.bind);
    CHECK(run_until(evpl, &cc.disconnected, 10000));
    CHECK_EQ(cc.status, 0);
    CHECK_EQ(cc.other, 0);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    fprintf(stderr, "client: %d bytes echoed across the namespaces\n", TOTAL);
    return 0;
}

int
main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--server") == 0 || strcmp(argv[i], "--client") == 0)) {
            if (i + 3 >= argc) {
                fprintf(stderr, "usage: %s --server ADDR PORT PEER | --client ADDR PORT LOCAL [-r PROTO]\n",
                        argv[0]);
                return 2;
            }
            proto = test_protocol(argc, argv, EVPL_STREAM_SOCKET_TCP);
            if (!evpl_protocol_available(proto)) SKIP("protocol %d not available", (int) proto);
            int port = atoi(argv[i + 2]);
            CHECK(port > 0 && port < 65536);
            if (argv[i][2] == 's') return run_server(argv[i + 1], port, argv[i + 3]);
            return run_client(argv[i + 1], port, argv[i + 3]);
        }
    }
    run_script(argc, argv);
    return 77;
}
