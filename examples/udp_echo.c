/*
 * udp_echo.c: UDP datagrams with libevpl, in one process.
 *
 *   udp_echo
 *
 * Two UDP binds on 127.0.0.1, both on ports the kernel picks, share one
 * event loop.  A sends 100 numbered datagrams to B; B answers each one from
 * inside its receive callback, to whoever sent it; A checks and counts the
 * answers.  Exits 0 when all 100 came back within 5 s, 1 otherwise.
 *
 * What it shows:
 *   evpl_bind                    a datagram socket bound to an endpoint (port 0)
 *   evpl_bind_get_local_address  which port the kernel picked
 *   evpl_sendtoep                send a datagram to an endpoint
 *   EVPL_NOTIFY_RECV_MSG         one notification per datagram received
 *   evpl_sendto                  reply to the sender's address (recv_msg.addr)
 *   evpl_iovec_release           the receiver owns the datagram's buffers
 */
#define _POSIX_C_SOURCE 200809L

#include <evpl/evpl.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT        100   /* datagrams sent from A to B */
#define TIMEOUT_MS   5000
#define ADDR_STR_LEN 64    /* long enough for "[v6 address]:port" */

/* The payload: a sequence number plus some text, so a datagram can be checked. */
struct datagram {
    uint32_t seq;
    char     text[28];
};

struct peer {
    const char *name;
    int         is_sender;        /* A: checks replies; B: echoes */
    int         replies;          /* A: distinct, correct replies received */
    char        seen[COUNT];      /* A: which sequence numbers came back */
    int         bad;              /* A: malformed or duplicate replies */
};

/* Fill datagram `seq` the way both sides expect it. */
static void
make_datagram(struct datagram *d, uint32_t seq)
{
    memset(d, 0, sizeof *d);
    d->seq = seq;
    snprintf(d->text, sizeof d->text, "hello number %u", (unsigned) seq);
}

static void
peer_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify,
            void *private_data)
{
    struct peer *p = private_data;

    if (notify->notify_type != EVPL_NOTIFY_RECV_MSG) {
        return;  /* DISCONNECTED, when the loop is destroyed: nothing to do */
    }

    /*
     * One datagram, in recv_msg.niov iovecs (one for UDP) that now belong
     * to us.  Copy it out so we need not care how it is split.
     */
    struct datagram d;
    unsigned int    copied = 0;
    int             well_formed = notify->recv_msg.length == sizeof d;

    for (unsigned int i = 0; i < notify->recv_msg.niov; i++) {
        struct evpl_iovec *iov = &notify->recv_msg.iovec[i];
        unsigned int       len = evpl_iovec_length(iov);

        if (well_formed && copied + len <= sizeof d) {
            memcpy((char *) &d + copied, evpl_iovec_data(iov), len);
            copied += len;
        }
        /* Done with this buffer: give our reference back. */
        evpl_iovec_release(iov);
    }

    if (!p->is_sender) {
        /* B: echo it to the sender; recv_msg.addr is valid during this callback. */
        if (well_formed) {
            evpl_sendto(evpl, bind, notify->recv_msg.addr, &d, sizeof d);
        }
        return;
    }

    /* A: a reply must be one of ours, unchanged, and new. */
    struct datagram expected;

    if (!well_formed || d.seq >= COUNT) {
        p->bad++;
        return;
    }
    make_datagram(&expected, d.seq);
    if (memcmp(&d, &expected, sizeof d) != 0 || p->seen[d.seq]) {
        p->bad++;
        return;
    }
    p->seen[d.seq] = 1;
    p->replies++;
}

/* Bind a UDP socket to 127.0.0.1 on a port the kernel picks, and learn that port. */
static struct evpl_bind *
bind_udp(struct evpl *evpl, struct peer *p, struct evpl_endpoint *local, int *port)
{
    char              addr[ADDR_STR_LEN];
    const char       *colon;
    struct evpl_bind *bind = evpl_bind(evpl, EVPL_DATAGRAM_SOCKET_UDP, local, peer_notify, p);

    if (!bind) {
        fprintf(stderr, "udp_echo: cannot bind %s\n", p->name);
        return NULL;
    }
    /* "127.0.0.1:PORT": the port follows the last colon. */
    evpl_bind_get_local_address(bind, addr, sizeof addr);
    colon = strrchr(addr, ':');
    *port = colon ? atoi(colon + 1) : 0;
    printf("%s bound to %s\n", p->name, addr);
    return bind;
}

int
main(void)
{
    struct peer                a = { .name = "A", .is_sender = 1 };
    struct peer                b = { .name = "B" };
    struct evpl_thread_config *loop_config;
    struct evpl               *evpl;
    struct evpl_endpoint      *any_port, *b_endpoint = NULL;
    struct evpl_bind          *a_bind, *b_bind;
    struct timespec            now;
    uint64_t                   deadline_ms;
    int                        a_port = 0, b_port = 0;
    int                        ok;

    evpl_init(NULL);

    /* An idle evpl_continue returns within 10 ms, so the deadline below is checked. */
    loop_config = evpl_thread_config_init();
    evpl_thread_config_set_wait_ms(loop_config, 10);
    evpl = evpl_create(loop_config);
    evpl_thread_config_release(loop_config);
    if (!evpl) {
        fprintf(stderr, "udp_echo: cannot create an event loop\n");
        return 1;
    }

    /* Port 0: each bind gets its own free port; one endpoint serves both. */
    any_port = evpl_endpoint_create("127.0.0.1", 0);
    a_bind = bind_udp(evpl, &a, any_port, &a_port);
    b_bind = bind_udp(evpl, &b, any_port, &b_port);
    if (!a_bind || !b_bind || a_port <= 0 || b_port <= 0) {
        evpl_destroy(evpl);
        evpl_endpoint_close(any_port);
        return 1;
    }

    /* Where A sends to: B's address and the port it got. */
    b_endpoint = evpl_endpoint_create("127.0.0.1", b_port);

    /* Queue all the datagrams; they go out in batches at the end of the iteration. */
    for (uint32_t seq = 0; seq < COUNT; seq++) {
        struct datagram d;

        make_datagram(&d, seq);
        evpl_sendtoep(evpl, a_bind, b_endpoint, &d, sizeof d);
    }

    evpl_get_hf_monotonic_time(evpl, &now);
    deadline_ms = (uint64_t) now.tv_sec * 1000 + (uint64_t) now.tv_nsec / 1000000 + TIMEOUT_MS;
    for (;;) {
        if (a.replies == COUNT) {
            break;
        }
        evpl_get_hf_monotonic_time(evpl, &now);
        if ((uint64_t) now.tv_sec * 1000 + (uint64_t) now.tv_nsec / 1000000 >= deadline_ms) {
            break;
        }
        evpl_continue(evpl);
    }

    ok = a.replies == COUNT && a.bad == 0;
    printf("%d of %d datagrams came back%s\n", a.replies, COUNT, ok ? "" : " (FAILED)");
    if (a.bad) {
        fprintf(stderr, "udp_echo: %d replies were wrong or duplicated\n", a.bad);
    }

    /* Destroying the loop closes both binds; then the endpoints can go. */
    evpl_destroy(evpl);
    evpl_endpoint_close(b_endpoint);
    evpl_endpoint_close(any_port);
    return ok ? 0 : 1;
}
