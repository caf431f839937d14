/* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/*
 * Connecting to a port nobody listens on: evpl_connect returns a bind at once
 * (it never blocks), no callback runs inside evpl_connect, and the loop then
 * delivers exactly one DISCONNECTED with notify_status ECONNREFUSED and no
 * CONNECTED.  Over 127.0.0.1 (or $EVPL_TEST_ADDR, see net.h) and ::1.
 * Also: evpl_close on a bind whose connect is still pending gives exactly
 * one DISCONNECTED (0, or the refusal if that was already known) and the
 * loop goes on working.
 */
#include "harness.h"
#include "net.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static enum evpl_protocol_id proto;

struct client {
    struct evpl_bind *bind;
    int               in_api;
    int               connected, disconnected, status, other;
};

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) evpl;
    struct client *c = priv;
    CHECK(!c->in_api);
    CHECK(bind == c->bind);
    CHECK_EQ(c->disconnected, 0);  /* nothing after DISCONNECTED */
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        c->connected++;
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
refused(struct evpl *evpl, const char *addr)
{
    fprintf(stderr, "refused connect to %s\n", addr);
    int port = free_port(addr);
    CHECK(port > 0);
    struct evpl_endpoint *ep = evpl_endpoint_create(addr, port);
    CHECK(ep != NULL);

    struct client c;
    memset(&c, 0, sizeof c);
    c.in_api = 1;
    c.bind = evpl_connect(evpl, proto, NULL, ep, client_notify, NULL, &c);
    c.in_api = 0;
    CHECK(c.bind != NULL);
    CHECK_EQ(c.disconnected, 0);
    CHECK_EQ(c.connected, 0);

    CHECK(run_until(evpl, &c.disconnected, 10000));
    settle(evpl, NULL);
    CHECK_EQ(c.connected, 0);
    CHECK_EQ(c.disconnected, 1);
    CHECK_EQ(c.status, ECONNREFUSED);
    CHECK_EQ(c.other, 0);

    /* Close while the connect is pending: one DISCONNECTED, not re-entrant. */
    struct client d;
    memset(&d, 0, sizeof d);
    d.in_api = 1;
    d.bind = evpl_connect(evpl, proto, NULL, ep, client_notify, NULL, &d);
    d.in_api = 0;
    CHECK(d.bind != NULL);
    d.in_api = 1;
    evpl_close(evpl, d.bind);
    d.in_api = 0;
    CHECK_EQ(d.disconnected, 0);
    CHECK(run_until(evpl, &d.disconnected, 10000));
    settle(evpl, NULL);
    CHECK_EQ(d.disconnected, 1);
    CHECK_EQ(d.connected, 0);
    CHECK(d.status == 0 || d.status == ECONNREFUSED);

    evpl_endpoint_close(ep);
}

int
main(int argc, char **argv)
{
    proto = test_protocol(argc, argv, EVPL_STREAM_SOCKET_TCP);
    if (!evpl_protocol_available(proto)) SKIP("protocol %d not available", (int) proto);

    struct evpl *evpl = test_loop();
    refused(evpl, test_addr());
    if (!test_addr_is_default()) {
        fprintf(stderr, "note: EVPL_TEST_ADDR is set, IPv6 case not run\n");
    } else if (free_port("::1") > 0) {
        refused(evpl, "::1");
    } else {
        fprintf(stderr, "note: no ::1 on this machine, IPv6 case not run\n");
    }
    /* Several refusals at once: each bind gets its own single DISCONNECTED. */
    int port = free_port(test_addr());
    CHECK(port > 0);
    struct evpl_endpoint *ep = evpl_endpoint_create(test_addr(), port);
    CHECK(ep != NULL);
    struct client many[8];
    memset(many, 0, sizeof many);
    for (int i = 0; i < 8; i++) {
        many[i].bind = evpl_connect(evpl, proto, NULL, ep, client_notify, NULL, &many[i]);
        CHECK(many[i].bind != NULL);
    }
    uint64_t end = now_ms() + 10000;
    int      all = 0;
    while (!all && now_ms() < end) {
        evpl_continue(evpl);
        all = 1;
        for (int i = 0; i < 8; i++) all &= many[i].disconnected;
    }
    settle(evpl, NULL);
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(many[i].disconnected, 1);
        CHECK_EQ(many[i].connected, 0);
        CHECK_EQ(many[i].status, ECONNREFUSED);
    }
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
    return 0;
}
