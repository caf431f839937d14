/*
 * echo_server.c: a TCP echo server on libevpl.
 *
 *   echo_server [-a ADDR] [-p PORT] [-n CONNS]
 *
 * Listens on ADDR:PORT (default 127.0.0.1:8000) and sends every byte it
 * receives straight back.  Prints one line per connection as it comes and
 * goes.  With -n CONNS it exits after CONNS connections have disconnected;
 * without it (or with -n 0) it runs until SIGINT or SIGTERM.
 *
 * The pieces, in the order a server needs them:
 *   evpl_init            set up the library (NULL: default global config)
 *   evpl_create          an event loop, owned by this thread
 *   evpl_listener_create a listener: accepts connections on any number of ports
 *   evpl_listener_attach hand the listener's connections to this loop; our
 *                        attach callback picks each one's notify callback
 *   evpl_listen          start accepting on ADDR:PORT with plain TCP
 *   evpl_continue        run the loop, one iteration at a time
 * and the same in reverse to shut down.
 */
#define _POSIX_C_SOURCE 200809L

#include <evpl/evpl.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Long enough for "[v6 address]:port". */
#define ADDR_STR_LEN 64

/* State shared by all connections of this (single-threaded) server. */
struct server {
    int connections;   /* CONNECTED so far */
    int disconnected;  /* DISCONNECTED so far */
};

/* Per-connection state, handed to evpl as the bind's private data. */
struct connection {
    struct server *server;
    char           peer[ADDR_STR_LEN];  /* the client's address, for the log */
    unsigned long  echoed;              /* bytes sent back */
};

/* Set from the signal handler, checked by the main loop. */
static volatile sig_atomic_t stop_requested;

static void
on_signal(int signo)
{
    (void) signo;
    stop_requested = 1;
}

/*
 * Everything that happens on one connection arrives here: CONNECTED once,
 * RECV_DATA whenever bytes are buffered, DISCONNECTED exactly once at the
 * end (after which the bind must not be used again).
 */
static void
connection_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify,
                  void *private_data)
{
    struct connection *conn = private_data;

    switch (notify->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        evpl_bind_get_remote_address(bind, conn->peer, sizeof conn->peer);
        conn->server->connections++;
        printf("CONNECTED %s\n", conn->peer);
        fflush(stdout);
        break;

    case EVPL_NOTIFY_RECV_DATA: {
        /*
         * Drain what is buffered: evpl_recv copies out up to sizeof buf
         * bytes and returns 0 once nothing is left.  evpl_send copies the
         * bytes again and queues them; they are written at the end of this
         * loop iteration.
         */
        char buf[16384];
        int  n;

        while ((n = evpl_recv(evpl, bind, buf, sizeof buf, 0)) > 0) {
            evpl_send(evpl, bind, buf, (unsigned int) n);
            conn->echoed += (unsigned long) n;
        }
        if (n < 0) {
            fprintf(stderr, "echo_server: evpl_recv failed on %s, closing it\n", conn->peer);
            evpl_close(evpl, bind);
        }
        break;
    }

    case EVPL_NOTIFY_DISCONNECTED:
        /* Status 0 is an orderly end; otherwise it is a positive errno. */
        printf("DISCONNECTED %s (%lu bytes echoed, %s)\n", conn->peer, conn->echoed,
               notify->notify_status ? strerror(notify->notify_status) : "ok");
        fflush(stdout);
        conn->server->disconnected++;
        free(conn);
        break;

    default:
        /* SENT is only delivered when requested; RECV_MSG needs a segment callback. */
        break;
    }
}

/*
 * Called on our loop for each accepted connection, before its CONNECTED:
 * choose the notify callback and the per-connection private data.  No
 * segment callback: we want the raw byte stream (RECV_DATA), not messages.
 */
static void
server_attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_callback,
              evpl_segment_callback_t *segment_callback, void **conn_private_data,
              void *private_data)
{
    struct connection *conn = calloc(1, sizeof *conn);

    (void) evpl;
    (void) bind;
    if (!conn) {
        fprintf(stderr, "echo_server: out of memory\n");
        exit(1);
    }
    conn->server = private_data;
    *notify_callback = connection_notify;
    *segment_callback = NULL;
    *conn_private_data = conn;
}

/* Parse a decimal integer in [min, max] or exit with a usage error. */
static long
parse_number(const char *text, long min, long max, const char *what)
{
    char *end;
    long  value;

    errno = 0;
    value = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || value < min || value > max) {
        fprintf(stderr, "echo_server: %s must be a number from %ld to %ld, not \"%s\"\n", what,
                min, max, text);
        exit(2);
    }
    return value;
}

static void
usage(void)
{
    fprintf(stderr, "usage: echo_server [-a ADDR] [-p PORT] [-n CONNS]\n"
                    "  -a ADDR   address to listen on (default 127.0.0.1)\n"
                    "  -p PORT   port to listen on (default 8000)\n"
                    "  -n CONNS  exit after CONNS connections have ended (default 0: never)\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    const char                   *address = "127.0.0.1";
    int                           port = 8000;
    int                           max_connections = 0;
    struct server                 server = { 0 };
    struct evpl_thread_config    *loop_config;
    struct evpl                  *evpl;
    struct evpl_listener         *listener;
    struct evpl_listener_binding *binding;
    struct evpl_endpoint         *endpoint;
    struct sigaction              sa;
    int                           opt;

    while ((opt = getopt(argc, argv, "a:p:n:h")) != -1) {
        switch (opt) {
        case 'a': address = optarg; break;
        case 'p': port = (int) parse_number(optarg, 1, 65535, "PORT"); break;
        case 'n': max_connections = (int) parse_number(optarg, 0, 1000000, "CONNS"); break;
        default: usage();
        }
    }
    if (optind != argc) {
        usage();
    }

    /* SIGINT/SIGTERM end the loop below cleanly instead of killing us. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    evpl_init(NULL);

    /*
     * An idle loop sleeps until something happens; with wait_ms 100 it
     * also wakes every 100 ms, so a stop request is seen promptly.  The
     * loop copies the config, so we can release ours straight away.
     */
    loop_config = evpl_thread_config_init();
    evpl_thread_config_set_wait_ms(loop_config, 100);
    evpl = evpl_create(loop_config);
    evpl_thread_config_release(loop_config);
    if (!evpl) {
        fprintf(stderr, "echo_server: cannot create an event loop\n");
        return 1;
    }

    /* Attach before listening, so no connection arrives with nobody to take it. */
    listener = evpl_listener_create();
    binding = listener ? evpl_listener_attach(evpl, listener, server_attach, &server) : NULL;
    if (!binding) {
        fprintf(stderr, "echo_server: cannot create a listener\n");
        if (listener) {
            evpl_listener_destroy(listener);
        }
        evpl_destroy(evpl);
        return 1;
    }

    endpoint = evpl_endpoint_create(address, port);
    if (!endpoint) {
        fprintf(stderr, "echo_server: bad address %s port %d\n", address, port);
        evpl_listener_detach(evpl, binding);
        evpl_listener_destroy(listener);
        evpl_destroy(evpl);
        return 1;
    }
    if (evpl_listen(listener, EVPL_STREAM_SOCKET_TCP, endpoint) != 0) {
        /* The library has logged why (port in use, ...). */
        fprintf(stderr, "echo_server: cannot listen on %s:%d\n", address, port);
        evpl_listener_detach(evpl, binding);
        evpl_listener_destroy(listener);
        evpl_endpoint_close(endpoint);
        evpl_destroy(evpl);
        return 1;
    }

    printf("listening on %s:%d\n", address, port);
    fflush(stdout);

    /* All callbacks run from inside evpl_continue, on this thread. */
    while (!stop_requested &&
           (max_connections == 0 || server.disconnected < max_connections)) {
        evpl_continue(evpl);
    }

    /*
     * Shut down in reverse order: stop taking connections, close the
     * listening socket, then destroy the loop, which closes any connection
     * still open (each gets its DISCONNECTED, which frees its state).
     */
    evpl_listener_detach(evpl, binding);
    evpl_listener_destroy(listener);
    evpl_endpoint_close(endpoint);
    evpl_destroy(evpl);

    printf("served %d connection%s\n", server.connections, server.connections == 1 ? "" : "s");
    return 0;
}
