/* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/*
 * Stress: 20 rounds of 1 000 connections that end abruptly: 500 evpl clients
 * that evpl_close while the server is still sending to them (closes
 * mid-send), and 500 plain sockets that send a little and reset (SO_LINGER
 * 0).  Every round must finish (no hang), every bind must get exactly one
 * DISCONNECTED, and at the end no descriptor and no buffer memory may have
 * leaked (open fds back to the start; RSS bounded).
 */
#include "harness.h"
#include "net.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define ROUNDS  20
#define EVPL_CLIENTS 500
#define RAW_CLIENTS  500
#define CHUNK   (64 * 1024)

static long server_connected, server_disconnected, client_disconnected, client_connected;
static char big[CHUNK];

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    char buf[16384];
    int got;
    (void) priv;
    switch (n->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            server_connected++;
            break;
        case EVPL_NOTIFY_RECV_DATA:
            while ((got = evpl_recv(evpl, bind, buf, sizeof(buf), 0)) > 0) {
                evpl_send(evpl, bind, big, CHUNK);  /* more than came in: the peer leaves mid-send */
            }
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            server_disconnected++;
            break;
    }
}

static void
attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify,
       evpl_segment_callback_t *seg, void **conn, void *priv)
{
    (void) evpl; (void) bind; (void) priv;
    *notify = server_notify;
    *seg = NULL;
    *conn = NULL;
}

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) priv;
    switch (n->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            client_connected++;
            evpl_send(evpl, bind, big, CHUNK);
            break;
        case EVPL_NOTIFY_RECV_DATA:
            evpl_close(evpl, bind);  /* with the server's reply half delivered */
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            client_disconnected++;
            break;
    }
}

int
main(int argc, char **argv)
{
    struct evpl_global_config *g = evpl_global_config_init();
    evpl_global_config_set_max_pending(g, 4096);
    evpl_init(g);
    enum evpl_protocol_id proto = test_protocol(argc, argv, EVPL_STREAM_SOCKET_TCP);
    alarm(240);
    memset(big, 0x33, sizeof(big));

    struct evpl *evpl = test_loop();
    struct evpl_listener *listener = evpl_listener_create();
    struct evpl_listener_binding *binding = evpl_listener_attach(evpl, listener, attach, NULL);
    struct evpl_endpoint *ep = NULL;
    int port = listen_random_port(listener, proto, &ep);
    CHECK(port != 0);

    int fds_before = open_fds();
    long rss_after_warmup = 0;
    for (int round = 1; round <= ROUNDS; round++) {
        for (int i = 0; i < EVPL_CLIENTS; i++) {
            CHECK(evpl_connect(evpl, proto, NULL, ep, client_notify, NULL, NULL) != NULL);
        }
        static int raw[RAW_CLIENTS];
        for (int i = 0; i < RAW_CLIENTS; i++) {
            raw[i] = raw_connect("127.0.0.1", port, 0);
            CHECK(raw[i] >= 0);
            CHECK(write(raw[i], big, 1024) == 1024);
            if (i % 50 == 49) {
                for (int k = 0; k < 5; k++) {
                    evpl_continue(evpl);  /* let the loop accept and start replying */
                }
            }
        }
        for (int i = 0; i < RAW_CLIENTS; i++) {
            struct linger l = { 1, 0 };
            setsockopt(raw[i], SOL_SOCKET, SO_LINGER, &l, sizeof(l));
            close(raw[i]);  /* RST */
        }
        long want_server = (long) round * (EVPL_CLIENTS + RAW_CLIENTS);
        long want_client = (long) round * EVPL_CLIENTS;
        uint64_t end = now_ms() + 60000;
        while ((server_disconnected < want_server || client_disconnected < want_client) && now_ms() < end) {
            evpl_continue(evpl);
        }
        if (server_disconnected != want_server || client_disconnected != want_client) {
            fprintf(stderr, "round %d: server %ld/%ld disconnected (%ld connected), clients %ld/%ld\n",
                    round, server_disconnected, want_server, server_connected, client_disconnected, want_client);
        }
        CHECK_EQ(server_disconnected, want_server);
        CHECK_EQ(client_disconnected, want_client);
        CHECK_EQ(server_connected, want_server);
        if (round == 2) {
            rss_after_warmup = rss_kib();
        }
    }
    for (int i = 0; i < 20; i++) {
        evpl_continue(evpl);
    }
    int fds_after = open_fds();
    long rss_end = rss_kib();
    printf("%d rounds of %d connections: fds %d -> %d, RSS after round 2 %ld KiB, at the end %ld KiB\n",
           ROUNDS, EVPL_CLIENTS + RAW_CLIENTS, fds_before, fds_after, rss_after_warmup, rss_end);
    CHECK(fds_after <= fds_before + 2);  /* the loop may have made its io_uring meanwhile */
    CHECK(rss_end - rss_after_warmup < 64 * 1024);

    evpl_endpoint_close(ep);
    evpl_listener_detach(evpl, binding);
    evpl_listener_destroy(listener);
    evpl_destroy(evpl);
    return 0;
}
