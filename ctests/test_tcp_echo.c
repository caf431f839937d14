/* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/*
 * Echo over a stream protocol, on 127.0.0.1 (or $EVPL_TEST_ADDR, see net.h)
 * and on ::1: a client sends NMSG messages of varying length with evpl_send,
 * the server echoes them with evpl_recv + evpl_send, the client checks every
 * byte.  Also checks the address strings on both sides (client local port ==
 * the server's view of the remote port), evpl_bind_get_protocol, truncation
 * of the address string, and one orderly DISCONNECTED (status 0) per side
 * after the client closes.  Client and server run on two loops driven
 * alternately from this thread.
 */
#include "harness.h"
#include "net.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define NMSG   100
#define MAXMSG 4000

static enum evpl_protocol_id proto;

static int
have_ipv6(void)
{
    return free_port("::1") > 0;
}

/* ---- server ------------------------------------------------------------- */

struct server {
    struct evpl_bind *bind;
    int               attached, connected, disconnected, status;
    uint64_t          echoed;
};

static struct server srv;
static int attach_token;

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct server *s = priv;
    CHECK(s == &srv);
    CHECK(bind == s->bind);
    CHECK_EQ(s->disconnected, 0);
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        CHECK_EQ(n->notify_status, 0);
        CHECK_EQ(s->attached, 1);
        s->connected++;
        break;
    case EVPL_NOTIFY_RECV_DATA: {
        CHECK_EQ(s->connected, 1);
        char buf[3000];  /* smaller than one message: echo in pieces */
        int  r;
        while ((r = evpl_recv(evpl, bind, buf, sizeof buf, 0)) > 0) {
            evpl_send(evpl, bind, buf, (unsigned) r);
            s->echoed += (uint64_t) r;
        }
        CHECK_EQ(r, 0);
        break;
    }
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
              evpl_segment_callback_t *sc, void **conn_priv, void *priv)
{
    (void) evpl;
    CHECK(priv == &attach_token);
    CHECK_EQ(srv.attached, 0);
    srv.attached++;
    srv.bind = bind;
    *nc = server_notify;
    *sc = NULL;
    *conn_priv = &srv;
}

/* ---- client ------------------------------------------------------------- */

struct client {
    struct evpl_bind *bind;
    int               in_connect;
    int               connected, disconnected, status, done;
    uint64_t          sent, received;
    unsigned char    *expect;
};

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct client *c = priv;
    CHECK(!c->in_connect);
    CHECK(bind == c->bind);
    CHECK_EQ(c->disconnected, 0);
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        CHECK_EQ(n->notify_status, 0);
        c->connected++;
        for (int i = 0; i < NMSG; i++) {
            unsigned len = 1 + (unsigned) (i * 977) % MAXMSG;
            unsigned char msg[MAXMSG];
            for (unsigned j = 0; j < len; j++) {
                msg[j] = (unsigned char) (i * 31 + j * 7 + (j >> 8));
            }
            memcpy(c->expect + c->sent, msg, len);
            evpl_send(evpl, bind, msg, len);
            c->sent += len;
        }
        break;
    case EVPL_NOTIFY_RECV_DATA: {
        CHECK_EQ(c->connected, 1);
        unsigned char buf[5000];
        int           r;
        while ((r = evpl_recv(evpl, bind, buf, sizeof buf, 0)) > 0) {
            CHECK(c->received + (uint64_t) r <= c->sent);
            if (memcmp(buf, c->expect + c->received, (size_t) r) != 0) {
                fprintf(stderr, "echo mismatch in bytes %llu..%llu\n",
                        (unsigned long long) c->received,
                        (unsigned long long) (c->received + (uint64_t) r));
                CHECK(0);
            }
            c->received += (uint64_t) r;
        }
        CHECK_EQ(r, 0);
        if (c->received == c->sent) c->done = 1;
        break;
    }
    case EVPL_NOTIFY_DISCONNECTED:
        c->disconnected++;
        c->status = n->notify_status;
        break;
    default:
        fprintf(stderr, "client: unexpected notify type %u\n", n->notify_type);
        CHECK(0);
    }
}

static void
check_truncation(struct evpl_bind *bind, const char *full)
{
    char buf[160];
    int  flen = (int) strlen(full);
    CHECK(flen > 6 && flen < 100);

    memset(buf, 'X', sizeof buf);
    evpl_bind_get_local_address(bind, buf, 5);
    CHECK_EQ(buf[4], '\0');
    CHECK(memcmp(buf, full, 4) == 0);
    CHECK_EQ(buf[5], 'X');  /* nothing written past len */

    memset(buf, 'X', sizeof buf);
    evpl_bind_get_local_address(bind, buf, 1);
    CHECK_EQ(buf[0], '\0');
    CHECK_EQ(buf[1], 'X');

    memset(buf, 'X', sizeof buf);
    evpl_bind_get_local_address(bind, buf, flen);  /* one short */
    CHECK_EQ((int) strlen(buf), flen - 1);
    CHECK(memcmp(buf, full, (size_t) flen - 1) == 0);
    CHECK_EQ(buf[flen], 'X');

    memset(buf, 'X', sizeof buf);
    evpl_bind_get_local_address(bind, buf, flen + 1);  /* exactly enough */
    CHECK(strcmp(buf, full) == 0);
}

static void
run_echo(const char *addr)
{
    fprintf(stderr, "echo over %s\n", addr);
    memset(&srv, 0, sizeof srv);

    struct evpl *server = test_loop();
    struct evpl *client = test_loop();

    struct evpl_listener *listener = evpl_listener_create();
    CHECK(listener != NULL);
    struct evpl_listener_binding *lb = evpl_listener_attach(server, listener, server_attach,
                                                            &attach_token);
    CHECK(lb != NULL);
    struct evpl_endpoint *lep = NULL;
    int sport = listen_free(listener, proto, addr, &lep);

    struct evpl_endpoint *rep = evpl_endpoint_create(addr, sport);
    CHECK(rep != NULL);

    struct client cl;
    memset(&cl, 0, sizeof cl);
    size_t cap = (size_t) NMSG * MAXMSG;
    cl.expect = malloc(cap);
    CHECK(cl.expect != NULL);

    cl.in_connect = 1;
    cl.bind = evpl_connect(client, proto, NULL, rep, client_notify, NULL, &cl);
    cl.in_connect = 0;
    CHECK(cl.bind != NULL);
    CHECK_EQ(cl.connected, 0);  /* never from inside evpl_connect */

    CHECK(run_until2(client, server, &cl.done, 20000));
    CHECK_EQ(cl.connected, 1);
    CHECK_EQ(srv.connected, 1);
    CHECK_EQ(srv.echoed, cl.sent);
    CHECK_EQ(cl.received, cl.sent);

    /* Protocol of both ends. */
    CHECK_EQ(evpl_bind_get_protocol(cl.bind), proto);
    CHECK_EQ(evpl_bind_get_protocol(srv.bind), proto);

    /* Addresses: a.b.c.d:port or [v6]:port, both sides agreeing. */
    char cl_local[128], cl_remote[128], sv_local[128], sv_remote[128], want[160];
    evpl_bind_get_local_address(cl.bind, cl_local, sizeof cl_local);
    evpl_bind_get_remote_address(cl.bind, cl_remote, sizeof cl_remote);
    evpl_bind_get_local_address(srv.bind, sv_local, sizeof sv_local);
    evpl_bind_get_remote_address(srv.bind, sv_remote, sizeof sv_remote);
    fprintf(stderr, "client %s -> %s, server %s <- %s\n", cl_local, cl_remote, sv_local, sv_remote);

    int v6 = strchr(addr, ':') != NULL;
    int cport = addr_port(cl_local);
    CHECK(cport > 0 && cport < 65536);
    CHECK(cport != sport);
    if (v6) snprintf(want, sizeof want, "[%s]:%d", addr, sport);
    else snprintf(want, sizeof want, "%s:%d", addr, sport);
    CHECK(strcmp(cl_remote, want) == 0);
    CHECK(strcmp(sv_local, want) == 0);
    if (v6) snprintf(want, sizeof want, "[%s]:%d", addr, cport);
    else snprintf(want, sizeof want, "%s:%d", addr, cport);
    CHECK(strcmp(cl_local, want) == 0);
    CHECK(strcmp(sv_remote, want) == 0);

    check_truncation(cl.bind, cl_local);

    /* Orderly close: one DISCONNECTED, status 0, on each side. */
    evpl_close(client, cl.bind);
    CHECK_EQ(cl.disconnected, 0);  /* not from inside evpl_close */
    WAIT_FOR2(client, server, cl.disconnected && srv.disconnected, 10000);
    settle(client, server);
    CHECK_EQ(cl.disconnected, 1);
    CHECK_EQ(cl.status, 0);
    CHECK_EQ(srv.disconnected, 1);
    CHECK_EQ(srv.status, 0);
    CHECK_EQ(srv.attached, 1);

    evpl_listener_detach(server, lb);
    evpl_listener_destroy(listener);
    evpl_destroy(client);
    evpl_destroy(server);
    evpl_endpoint_close(rep);
    evpl_endpoint_close(lep);
    free(cl.expect);
}

int
main(int argc, char **argv)
{
    proto = test_protocol(argc, argv, EVPL_STREAM_SOCKET_TCP);
    if (!evpl_protocol_available(proto)) SKIP("protocol %d not available", (int) proto);
    CHECK_EQ(evpl_protocol_is_stream(proto), 1);

    run_echo(test_addr());
    if (!test_addr_is_default()) {
        fprintf(stderr, "note: EVPL_TEST_ADDR is set, IPv6 echo on ::1 not run\n");
    } else if (have_ipv6()) {
        run_echo("::1");
    } else {
        fprintf(stderr, "note: no ::1 on this machine, IPv6 echo not run\n");
    }
    return 0;
}
