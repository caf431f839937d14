/*
 * echo_client.c: a TCP echo client on libevpl, the partner of echo_server.
 *
 *   echo_client [-a ADDR] [-p PORT] [-m MESSAGES] [-s SIZE]
 *
 * Connects to ADDR:PORT (default 127.0.0.1:8000) and sends MESSAGES
 * messages (default 1000) of SIZE bytes (default 64), one at a time: the
 * next one goes out once the previous echo has fully come back.  Every
 * echoed byte is checked.  Then it closes the connection gracefully and
 * prints the number of round trips, the bytes echoed and the mean round
 * trip time.
 *
 * Exit status: 0 on success; 1 on a wrong byte, a lost connection or when
 * the whole exchange takes longer than 10 s; 2 on a usage error.
 *
 * Unlike echo_server, which sits in its loop, this program drives the loop
 * itself with evpl_continue and checks its own progress and a deadline
 * between iterations.
 */
#define _POSIX_C_SOURCE 200809L

#include <evpl/evpl.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TIMEOUT_MS   10000  /* the whole run, connect to disconnect */
#define ADDR_STR_LEN 64     /* long enough for "[v6 address]:port" */

struct client {
    /* What to do. */
    long          messages;     /* round trips to make */
    unsigned int  size;         /* bytes per message */
    unsigned char *message;     /* the message in flight */

    /* Progress. */
    long          completed;    /* echoes fully received and checked */
    int           in_flight;    /* a message is out, its echo not complete */
    unsigned int  received;     /* bytes of the current echo so far */
    uint64_t      sent_at_ns;   /* when the current message was sent */
    uint64_t      rtt_total_ns; /* sum of all round trip times */

    /* Outcome. */
    int           finishing;    /* evpl_finish called: the end is expected */
    int           disconnected; /* DISCONNECTED arrived */
    int           failed;       /* something went wrong (already reported) */
};

/* The loop's monotonic clock in nanoseconds. */
static uint64_t
now_ns(struct evpl *evpl)
{
    struct timespec ts;

    evpl_get_hf_monotonic_time(evpl, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/*
 * Byte `offset` of message number `seq`.  It depends on both, so a lost,
 * duplicated, reordered or stale byte does not go unnoticed.
 */
static unsigned char
pattern(long seq, unsigned int offset)
{
    return (unsigned char) (seq * 7 + offset + offset / 251);
}

/* Fill the next message and queue it; it is written at the end of the iteration. */
static void
send_next(struct evpl *evpl, struct evpl_bind *bind, struct client *c)
{
    for (unsigned int i = 0; i < c->size; i++) {
        c->message[i] = pattern(c->completed, i);
    }
    c->in_flight = 1;
    c->received = 0;
    c->sent_at_ns = now_ns(evpl);
    evpl_send(evpl, bind, c->message, c->size);
}

/* Report a failure once and close the connection (DISCONNECTED follows). */
static void
fail(struct evpl *evpl, struct evpl_bind *bind, struct client *c, const char *what)
{
    if (!c->failed) {
        fprintf(stderr, "echo_client: %s\n", what);
        c->failed = 1;
    }
    evpl_close(evpl, bind);
}

/* Take in buffered echo bytes, check them, and move on when a message is complete. */
static void
receive_echo(struct evpl *evpl, struct evpl_bind *bind, struct client *c)
{
    unsigned char chunk[16384];

    for (;;) {
        /* Never read past the current message: anything beyond it is an error. */
        unsigned int want = c->in_flight ? c->size - c->received : (unsigned int) sizeof chunk;
        int          n;

        if (want > sizeof chunk) {
            want = sizeof chunk;
        }
        n = evpl_recv(evpl, bind, chunk, (int) want, 0);
        if (n == 0) {
            return;  /* drained; more arrives with the next RECV_DATA */
        }
        if (n < 0) {
            fail(evpl, bind, c, "evpl_recv failed");
            return;
        }
        if (!c->in_flight) {
            fail(evpl, bind, c, "received bytes that were never sent");
            return;
        }

        for (int i = 0; i < n; i++) {
            unsigned int  offset = c->received + (unsigned int) i;
            unsigned char expected = pattern(c->completed, offset);

            if (chunk[i] != expected) {
                char what[128];

                snprintf(what, sizeof what,
                         "message %ld, byte %u: expected 0x%02x, got 0x%02x", c->completed,
                         offset, expected, chunk[i]);
                fail(evpl, bind, c, what);
                return;
            }
        }
        c->received += (unsigned int) n;

        if (c->received == c->size) {
            /* A full round trip. */
            c->rtt_total_ns += now_ns(evpl) - c->sent_at_ns;
            c->in_flight = 0;
            c->completed++;
            if (c->completed < c->messages) {
                send_next(evpl, bind, c);
            } else {
                /* Done: close once everything queued is out; DISCONNECTED follows. */
                c->finishing = 1;
                evpl_finish(evpl, bind);
            }
        }
    }
}

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify,
              void *private_data)
{
    struct client *c = private_data;

    switch (notify->notify_type) {
    case EVPL_NOTIFY_CONNECTED: {
        char local[ADDR_STR_LEN], remote[ADDR_STR_LEN];

        evpl_bind_get_local_address(bind, local, sizeof local);
        evpl_bind_get_remote_address(bind, remote, sizeof remote);
        printf("connected to %s from %s\n", remote, local);
        send_next(evpl, bind, c);
        break;
    }

    case EVPL_NOTIFY_RECV_DATA:
        receive_echo(evpl, bind, c);
        break;

    case EVPL_NOTIFY_DISCONNECTED:
        /*
         * Exactly once per bind.  It is expected after our evpl_finish;
         * before that it means the connection failed (a failed connect
         * also ends here, with e.g. ECONNREFUSED).
         */
        c->disconnected = 1;
        if (!c->failed && (!c->finishing || notify->notify_status != 0)) {
            fprintf(stderr, "echo_client: connection ended after %ld of %ld round trips: %s\n",
                    c->completed, c->messages,
                    notify->notify_status ? strerror(notify->notify_status)
                                          : "closed by the server");
            c->failed = 1;
        }
        break;

    default:
        break;
    }
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
        fprintf(stderr, "echo_client: %s must be a number from %ld to %ld, not \"%s\"\n", what,
                min, max, text);
        exit(2);
    }
    return value;
}

static void
usage(void)
{
    fprintf(stderr, "usage: echo_client [-a ADDR] [-p PORT] [-m MESSAGES] [-s SIZE]\n"
                    "  -a ADDR      server address (default 127.0.0.1)\n"
                    "  -p PORT      server port (default 8000)\n"
                    "  -m MESSAGES  round trips to make (default 1000)\n"
                    "  -s SIZE      bytes per message (default 64)\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    const char                *address = "127.0.0.1";
    int                        port = 8000;
    struct client              c = { .messages = 1000, .size = 64 };
    struct evpl_thread_config *loop_config;
    struct evpl               *evpl;
    struct evpl_endpoint      *server;
    struct evpl_bind          *bind;
    uint64_t                   deadline;
    int                        opt;

    while ((opt = getopt(argc, argv, "a:p:m:s:h")) != -1) {
        switch (opt) {
        case 'a': address = optarg; break;
        case 'p': port = (int) parse_number(optarg, 1, 65535, "PORT"); break;
        case 'm': c.messages = parse_number(optarg, 1, 100000000, "MESSAGES"); break;
        case 's': c.size = (unsigned int) parse_number(optarg, 1, 64 << 20, "SIZE"); break;
        default: usage();
        }
    }
    if (optind != argc) {
        usage();
    }

    c.message = malloc(c.size);
    if (!c.message) {
        fprintf(stderr, "echo_client: out of memory\n");
        return 1;
    }

    evpl_init(NULL);

    /*
     * wait_ms 10: an idle evpl_continue returns within 10 ms, so the loop
     * below checks the deadline at least that often.  The loop copies the
     * config, so we can release ours straight away.
     */
    loop_config = evpl_thread_config_init();
    evpl_thread_config_set_wait_ms(loop_config, 10);
    evpl = evpl_create(loop_config);
    evpl_thread_config_release(loop_config);
    if (!evpl) {
        fprintf(stderr, "echo_client: cannot create an event loop\n");
        free(c.message);
        return 1;
    }

    server = evpl_endpoint_create(address, port);
    if (!server) {
        fprintf(stderr, "echo_client: bad address %s port %d\n", address, port);
        evpl_destroy(evpl);
        free(c.message);
        return 1;
    }

    /* Never blocks: CONNECTED (or DISCONNECTED with an errno) comes from the loop. */
    bind = evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, server, client_notify, NULL, &c);
    if (!bind) {
        fprintf(stderr, "echo_client: cannot connect to %s:%d\n", address, port);
        evpl_endpoint_close(server);
        evpl_destroy(evpl);
        free(c.message);
        return 1;
    }

    deadline = now_ns(evpl) + (uint64_t) TIMEOUT_MS * 1000000u;
    while (!c.disconnected && now_ns(evpl) < deadline) {
        evpl_continue(evpl);
    }
    if (!c.disconnected) {
        fprintf(stderr, "echo_client: timed out after %d s (%ld of %ld round trips)\n",
                TIMEOUT_MS / 1000, c.completed, c.messages);
        c.failed = 1;
    }

    /* Closes the bind if it is still open (its DISCONNECTED runs here). */
    evpl_destroy(evpl);
    evpl_endpoint_close(server);
    free(c.message);

    if (c.failed) {
        return 1;
    }
    printf("%ld round trips of %u bytes: %llu bytes echoed, mean round trip %.1f us\n",
           c.completed, c.size, (unsigned long long) c.completed * c.size,
           (double) c.rtt_total_ns / (double) c.completed / 1000.0);
    return 0;
}
