/*
 * STREAM_XLIO_TCP without libxlio (issue 10): with EVPL_XLIO_LIBRARY naming
 * no file, the protocol reports 0, evpl_connect returns NULL and evpl_listen
 * -1, each with a logged line naming STREAM_XLIO_TCP, and nothing else is
 * affected (kernel TCP still connects and echoes).
 *
 * By default the program sets EVPL_XLIO_LIBRARY=/nonexistent/libxlio.so
 * itself; with the argument --env-as-is it keeps the environment as it is
 * (ctests/run_xlio.sh runs it so with the variable unset where the loader
 * finds no libxlio.so, which must behave the same).
 */
#include "harness.h"

#include <pthread.h>
#include <stdarg.h>

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int xlio_lines;

static void
capture_log(const char *level, const char *module, const char *srcfile, int lineno,
            const char *fmt, va_list argp)
{
    char line[1024];
    (void) level;
    (void) module;
    (void) srcfile;
    (void) lineno;
    vsnprintf(line, sizeof(line), fmt, argp);
    fprintf(stderr, "log: %s\n", line);
    pthread_mutex_lock(&log_mu);
    if (strstr(line, "XLIO") != NULL) xlio_lines++;
    pthread_mutex_unlock(&log_mu);
}

static int
xlio_logged(void)
{
    pthread_mutex_lock(&log_mu);
    int n = xlio_lines;
    pthread_mutex_unlock(&log_mu);
    return n;
}

static volatile int connected, got_echo;

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) priv;
    if (n->notify_type == EVPL_NOTIFY_CONNECTED) {
        connected = 1;
        evpl_send(evpl, bind, "ping", 4);
    } else if (n->notify_type == EVPL_NOTIFY_RECV_DATA) {
        char buf[8];
        if (evpl_recv(evpl, bind, buf, sizeof(buf), 0) == 4 && memcmp(buf, "ping", 4) == 0) got_echo = 1;
    }
}

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) priv;
    if (n->notify_type == EVPL_NOTIFY_RECV_DATA) {
        char buf[64];
        int got = evpl_recv(evpl, bind, buf, sizeof(buf), 0);
        if (got > 0) evpl_send(evpl, bind, buf, got);
    }
}

static void
on_attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *nc,
          evpl_segment_callback_t *sc, void **conn_priv, void *priv)
{
    (void) evpl;
    (void) bind;
    (void) priv;
    *nc = server_notify;
    *sc = NULL;
    *conn_priv = NULL;
}

int
main(int argc, char **argv)
{
    if (!(argc > 1 && strcmp(argv[1], "--env-as-is") == 0)) {
        setenv("EVPL_XLIO_LIBRARY", "/nonexistent/libxlio.so", 1);
    }
    evpl_set_log_fn(capture_log, NULL);
    evpl_init(NULL);

    CHECK_EQ(evpl_protocol_available(EVPL_STREAM_XLIO_TCP), 0);
    CHECK_EQ(evpl_protocol_available(EVPL_STREAM_XLIO_TCP), 0);  /* probed once, same answer */
    CHECK_EQ(evpl_protocol_available(EVPL_STREAM_SOCKET_TCP), 1);
    CHECK(xlio_logged() >= 1);  /* the reason, once */

    struct evpl *evpl = test_loop();
    struct evpl_endpoint *ep = evpl_endpoint_create("127.0.0.1", 9);
    int before = xlio_logged();
    CHECK(evpl_connect(evpl, EVPL_STREAM_XLIO_TCP, NULL, ep, client_notify, NULL, NULL) == NULL);
    CHECK(xlio_logged() > before);
    struct evpl_listener *listener = evpl_listener_create();
    before = xlio_logged();
    CHECK_EQ(evpl_listen(listener, EVPL_STREAM_XLIO_TCP, ep), -1);
    CHECK(xlio_logged() > before);
    evpl_listener_destroy(listener);
    evpl_endpoint_close(ep);

    /* Kernel TCP is unaffected: a loopback echo on a kernel-chosen port. */
    listener = evpl_listener_create();
    struct evpl_listener_binding *binding = evpl_listener_attach(evpl, listener, on_attach, NULL);
    CHECK(binding != NULL);
    int port = 0;
    for (int p = 20000 + (int) (now_us() % 20000), tries = 0; tries < 50; tries++, p++) {
        struct evpl_endpoint *sep = evpl_endpoint_create("127.0.0.1", p);
        int r = evpl_listen(listener, EVPL_STREAM_SOCKET_TCP, sep);
        evpl_endpoint_close(sep);
        if (r == 0) {
            port = p;
            break;
        }
    }
    CHECK(port > 0);
    struct evpl_endpoint *cep = evpl_endpoint_create("127.0.0.1", port);
    struct evpl_bind *client = evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, cep, client_notify, NULL, NULL);
    CHECK(client != NULL);
    CHECK(run_until(evpl, &got_echo, 5000));
    CHECK(connected);
    evpl_listener_detach(evpl, binding);
    evpl_endpoint_close(cep);
    evpl_destroy(evpl);
    evpl_listener_destroy(listener);
    return 0;
}
