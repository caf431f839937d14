/*
 * Endpoints: IPv4/IPv6 literals, a host name and the wildcard forms are
 * accepted and report back their address and port; out-of-range ports give
 * NULL; malformed addresses give NULL or an endpoint whose connect fails
 * cleanly (NULL, or DISCONNECTED with an error and never CONNECTED);
 * evpl_endpoint_close(NULL) is harmless.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* Creates an endpoint that must exist and report what it was given. */
static struct evpl_endpoint *
good_endpoint(const char *address, int port)
{
    struct evpl_endpoint *ep = evpl_endpoint_create(address, port);
    if (!ep) {
        fprintf(stderr, "evpl_endpoint_create(%s, %d) returned NULL\n",
                address ? address : "NULL", port);
    }
    CHECK(ep != NULL);
    CHECK_EQ(evpl_endpoint_port(ep), port);
    if (address) {
        const char *got = evpl_endpoint_address(ep);
        CHECK(got != NULL);
        if (strcmp(got, address) != 0) {
            fprintf(stderr, "address %s reported as %s\n", address, got);
        }
        CHECK(strcmp(got, address) == 0);
    }
    return ep;
}

/* A TCP port on 127.0.0.1 with (very probably) no listener: bound by the
 * kernel, read back, closed. */
static int
unused_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    CHECK_EQ(getsockname(fd, (struct sockaddr *) &sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

struct conn_state {
    int connected;
    int disconnected;
    int status;
};

static void
notify_cb(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify, void *private_data)
{
    (void) evpl;
    (void) bind;
    struct conn_state *s = private_data;
    switch (notify->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        s->connected++;
        break;
    case EVPL_NOTIFY_DISCONNECTED:
        s->disconnected++;
        s->status = notify->notify_status;
        break;
    default:
        break;
    }
}

int
main(void)
{
    alarm(50);
    struct evpl_endpoint *eps[16];
    int n = 0;

    /* Literals, a host name and wildcards, with ordinary and edge ports. */
    eps[n++] = good_endpoint("127.0.0.1", 8000);
    eps[n++] = good_endpoint("::1", 8001);
    eps[n++] = good_endpoint("localhost", 8002);
    eps[n++] = good_endpoint("0.0.0.0", 8003);
    eps[n++] = good_endpoint("::", 8004);
    eps[n++] = good_endpoint("127.0.0.1", 0);
    eps[n++] = good_endpoint("127.0.0.1", 65535);
    eps[n++] = good_endpoint("::1", 0);
    eps[n++] = good_endpoint("::1", 65535);

    /* NULL is the wildcard: accepted, port kept (what the address string
     * reads back as is not specified). */
    eps[n++] = good_endpoint(NULL, 8005);
    eps[n++] = good_endpoint(NULL, 0);

    /* Out-of-range ports give NULL, for every address form. */
    static const char *addrs[] = { "127.0.0.1", "::1", "localhost", NULL };
    static const int bad_ports[] = { -1, 65536, 100000, -65535, 1 << 30 };
    for (size_t a = 0; a < sizeof(addrs) / sizeof(addrs[0]); a++) {
        for (size_t p = 0; p < sizeof(bad_ports) / sizeof(bad_ports[0]); p++) {
            CHECK(evpl_endpoint_create(addrs[a], bad_ports[p]) == NULL);
        }
    }

    /* Malformed addresses: NULL, or an endpoint whose connect fails cleanly.
     * The port has no listener, so even an address read as the wildcard or
     * as loopback can only be refused. */
    {
        static const char *bad[] = {
            "1.2.3.4.5", "[::1", "", "not a host name .invalid", "256.1.1.1", "::1::2",
        };
        const size_t nbad = sizeof(bad) / sizeof(bad[0]);
        struct conn_state st[sizeof(bad) / sizeof(bad[0])];
        struct evpl_endpoint *bep[sizeof(bad) / sizeof(bad[0])];
        int pending = 0;
        struct evpl *evpl = test_loop();
        int port = unused_port();

        memset(st, 0, sizeof(st));
        for (size_t i = 0; i < nbad; i++) {
            bep[i] = evpl_endpoint_create(bad[i], port);
            if (!bep[i]) {
                continue;
            }
            struct evpl_bind *b = evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, bep[i],
                                               notify_cb, NULL, &st[i]);
            if (!b) {
                /* Failed at once: no callback may follow. */
                st[i].disconnected = -1;
                continue;
            }
            /* Never re-entrant: nothing delivered from inside evpl_connect. */
            CHECK_EQ(st[i].connected, 0);
            CHECK_EQ(st[i].disconnected, 0);
            pending++;
        }
        uint64_t end = now_ms() + 30000;
        for (;;) {
            int left = 0;
            for (size_t i = 0; i < nbad; i++) {
                if (bep[i] && st[i].disconnected == 0) {
                    left++;
                }
            }
            if (left == 0 || now_ms() >= end) {
                break;
            }
            evpl_continue(evpl);
        }
        for (size_t i = 0; i < nbad; i++) {
            if (!bep[i]) {
                continue;
            }
            fprintf(stderr, "malformed \"%s\": connected %d disconnected %d status %d\n",
                    bad[i], st[i].connected, st[i].disconnected, st[i].status);
            CHECK_EQ(st[i].connected, 0);
            if (st[i].disconnected == -1) {
                continue;
            }
            CHECK_EQ(st[i].disconnected, 1);
            CHECK(st[i].status > 0);
        }
        /* A few more passes: still exactly one DISCONNECTED each. */
        for (int k = 0; k < 3; k++) {
            evpl_continue(evpl);
        }
        for (size_t i = 0; i < nbad; i++) {
            if (bep[i] && st[i].disconnected != -1) {
                CHECK_EQ(st[i].disconnected, 1);
                CHECK_EQ(st[i].connected, 0);
            }
        }
        (void) pending;
        evpl_destroy(evpl);
        for (size_t i = 0; i < nbad; i++) {
            if (bep[i]) {
                evpl_endpoint_close(bep[i]);
            }
        }
    }

    /* Closing: every endpoint once, and NULL is harmless. */
    for (int i = 0; i < n; i++) {
        evpl_endpoint_close(eps[i]);
    }
    evpl_endpoint_close(NULL);
    return 0;
}
