/*
 * UDP binds (DATAGRAM_SOCKET_UDP).
 *  - two binds on 127.0.0.1 port 0; the ports read back with
 *    evpl_bind_get_local_address;
 *  - evpl_sendtoep A -> B: one RECV_MSG, niov 1, exact bytes, recv_msg.addr
 *    set; B replies from inside the callback with evpl_sendto(recv_msg.addr)
 *    and A gets the reply;
 *  - evpl_sendtoepv / evpl_sendtov with evpl_iovec_alloc buffers, with and
 *    without EVPL_SEND_FLAG_TAKE_REF; two iovecs make one datagram; a length
 *    shorter than the iovecs sends only that much;
 *  - 1000 datagrams in batches (the sender keeps at most 64 in flight so a
 *    receive buffer cannot overflow): at least 990 arrive, in order;
 *  - 91 datagrams queued in one go, same size but one (the sender joins
 *    runs of them into UDP GSO sends): each arrives alone, whole, in order;
 *  - a 65000-byte datagram arrives whole; a 70000-byte one (over the default
 *    max_datagram_size of 65536) is not delivered, and traffic goes on;
 *  - evpl_send on a UDP bind with no default peer: no crash, nothing sent;
 *  - IPv6 on ::1;
 *  - interop with a plain POSIX UDP socket, both directions;
 *  - evpl_close: one DISCONNECTED per bind.
 * Every bind is on one loop.
 */
#include "harness.h"
#include "net.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define BURST  1000
#define WINDOW 64

static struct evpl *evpl;

#define WAIT_FOR(cond, ms) WAIT_FOR2(evpl, NULL, cond, ms)

struct ub {
    const char       *name;
    struct evpl_bind *bind;
    struct evpl_endpoint *ep;   /* the bind's own endpoint, kept to the end */
    int               msgs, counts[256];
    int               bad_niov, no_addr, other, disconnected, status;
    unsigned          max_len;
    unsigned char     last[65536];
    unsigned          last_len;
    int               burst, burst_last, burst_disorder;
    int               joined, joined_last, joined_bad;
};

static void
udp_notify(struct evpl *ev, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct ub *u = priv;
    CHECK(ev == evpl);
    CHECK(bind == u->bind);
    CHECK_EQ(u->disconnected, 0);
    switch (n->notify_type) {
    case EVPL_NOTIFY_RECV_MSG: {
        CHECK_EQ(n->notify_status, 0);
        unsigned len = n->recv_msg.length;
        if (n->recv_msg.niov != 1) u->bad_niov++;
        CHECK(n->recv_msg.niov >= 1);
        CHECK_EQ(evpl_iovec_length(&n->recv_msg.iovec[0]), len);
        if (!n->recv_msg.addr) u->no_addr++;
        const unsigned char *d = evpl_iovec_data(&n->recv_msg.iovec[0]);
        u->msgs++;
        if (len > u->max_len) u->max_len = len;
        if (len <= sizeof u->last) {
            memcpy(u->last, d, len);
            u->last_len = len;
        }
        unsigned char op = len ? d[0] : 0;
        u->counts[op]++;
        if (op == 'B' && len >= 5) {
            int seq = d[1] | d[2] << 8 | d[3] << 16 | d[4] << 24;
            if (u->burst && seq <= u->burst_last) u->burst_disorder++;
            u->burst_last = seq;
            u->burst++;
        } else if (op == 'G' && len >= 5) {
            /* Same-size datagrams the sender may join into one GSO send: each
             * must still arrive alone, whole and in order. */
            int seq = d[1] | d[2] << 8 | d[3] << 16 | d[4] << 24;
            unsigned want = seq == 70 ? 301 : 300;
            int ok = len == want && seq == (u->joined ? u->joined_last + 1 : 0);
            for (unsigned i = 5; ok && i < len; i++) ok = d[i] == (unsigned char) (seq * 7 + i);
            if (!ok) u->joined_bad++;
            u->joined_last = seq;
            u->joined++;
        } else if (op == 'S' && n->recv_msg.addr) {
            unsigned char *r = malloc(len);
            CHECK(r != NULL);
            memcpy(r, d, len);
            r[0] = 'r';
            evpl_sendto(ev, bind, n->recv_msg.addr, r, len);
            free(r);
        } else if ((op == 'V' || op == 'W') && n->recv_msg.addr) {
            struct evpl_iovec iov;
            CHECK_EQ(evpl_iovec_alloc(ev, len, 0, 1, &iov), 1);
            memcpy(evpl_iovec_data(&iov), d, len);
            ((unsigned char *) evpl_iovec_data(&iov))[0] = (unsigned char) (op == 'V' ? 'v' : 'w');
            if (op == 'V') {
                evpl_sendtov(ev, bind, n->recv_msg.addr, &iov, 1, (int) len, EVPL_SEND_FLAG_TAKE_REF);
            } else {
                evpl_sendtov(ev, bind, n->recv_msg.addr, &iov, 1, (int) len, 0);
                evpl_iovec_release(&iov);
            }
        }
        for (unsigned i = 0; i < n->recv_msg.niov; i++) evpl_iovec_release(&n->recv_msg.iovec[i]);
        break;
    }
    case EVPL_NOTIFY_DISCONNECTED:
        u->disconnected++;
        u->status = n->notify_status;
        break;
    default:
        fprintf(stderr, "%s: unexpected notify type %u\n", u->name, n->notify_type);
        u->other++;
        break;
    }
}

static struct evpl_bind *
udp_bind(struct ub *u, const char *name, const char *addr, int *port)
{
    memset(u, 0, sizeof *u);
    u->name = name;
    u->ep = evpl_endpoint_create(addr, 0);
    CHECK(u->ep != NULL);
    u->bind = evpl_bind(evpl, EVPL_DATAGRAM_SOCKET_UDP, u->ep, udp_notify, u);
    CHECK(u->bind != NULL);
    CHECK_EQ(evpl_bind_get_protocol(u->bind), EVPL_DATAGRAM_SOCKET_UDP);
    char s[128], want[128];
    evpl_bind_get_local_address(u->bind, s, sizeof s);
    *port = addr_port(s);
    CHECK(*port > 0 && *port < 65536);
    if (strchr(addr, ':')) snprintf(want, sizeof want, "[%s]:%d", addr, *port);
    else snprintf(want, sizeof want, "%s:%d", addr, *port);
    if (strcmp(s, want) != 0) {
        fprintf(stderr, "local address of %s is \"%s\", want \"%s\"\n", name, s, want);
        CHECK(0);
    }
    return u->bind;
}

static void
fill(unsigned char *p, unsigned len, unsigned key)
{
    for (unsigned i = 0; i < len; i++) p[i] = (unsigned char) (i * 13 + (i >> 8) + key);
}

/* Drive the loop until a datagram is waiting on the plain socket fd (5 s at
 * most); recvfrom's result, the sender in *from. */
static ssize_t
plain_recv(int fd, char *buf, size_t len, struct sockaddr_in *from)
{
    ssize_t r = -1;
    uint64_t end = now_ms() + 5000;
    while (now_ms() < end) {
        evpl_continue(evpl);
        socklen_t sl = sizeof *from;
        r = recvfrom(fd, buf, len, MSG_DONTWAIT, (struct sockaddr *) from, &sl);
        if (r >= 0) break;
        CHECK(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    }
    return r;
}

/* Round trip A -> B -> A of an 'S' message over sendtoep/sendto. */
static void
ping(struct ub *a, struct ub *b, struct evpl_endpoint *epb, const char *text)
{
    int r0 = a->counts['r'], s0 = b->counts['S'];
    unsigned len = (unsigned) strlen(text);
    CHECK(text[0] == 'S');
    evpl_sendtoep(evpl, a->bind, epb, text, len);
    WAIT_FOR(a->counts['r'] == r0 + 1, 5000);
    CHECK_EQ(b->counts['S'], s0 + 1);
    CHECK_EQ(a->last_len, len);
    CHECK_EQ(a->last[0], 'r');
    CHECK(memcmp(a->last + 1, text + 1, len - 1) == 0);
}

int
main(int argc, char **argv)
{
    (void) argc;
    (void) argv;
    if (!evpl_protocol_available(EVPL_DATAGRAM_SOCKET_UDP)) SKIP("UDP not available");
    CHECK_EQ(evpl_protocol_is_stream(EVPL_DATAGRAM_SOCKET_UDP), 0);
    evpl = test_loop();

    static struct ub A, B;
    int pa, pb;
    udp_bind(&A, "A", "127.0.0.1", &pa);
    udp_bind(&B, "B", "127.0.0.1", &pb);
    CHECK(pa != pb);
    struct evpl_endpoint *epa = evpl_endpoint_create("127.0.0.1", pa);
    struct evpl_endpoint *epb = evpl_endpoint_create("127.0.0.1", pb);
    CHECK(epa != NULL && epb != NULL);

    /* ---- sendtoep, and sendto(recv_msg.addr) from the callback ---- */
    fprintf(stderr, "sendtoep / sendto reply\n");
    evpl_sendtoep(evpl, A.bind, epb, "Shello udp", 10);
    WAIT_FOR(A.counts['r'] == 1, 5000);
    CHECK_EQ(B.msgs, 1);
    CHECK_EQ(B.counts['S'], 1);
    CHECK_EQ(A.last_len, 10);
    CHECK(memcmp(A.last, "rhello udp", 10) == 0);
    CHECK_EQ(A.bad_niov + B.bad_niov, 0);
    CHECK_EQ(A.no_addr + B.no_addr, 0);

    /* ---- sendtoepv / sendtov ---- */
    fprintf(stderr, "sendtoepv / sendtov with and without TAKE_REF\n");
    struct evpl_iovec iov[2];
    unsigned char want[4096];

    CHECK_EQ(evpl_iovec_alloc(evpl, 1000, 0, 1, iov), 1);
    fill(evpl_iovec_data(&iov[0]), 1000, 1);
    ((unsigned char *) evpl_iovec_data(&iov[0]))[0] = 'V';
    memcpy(want, evpl_iovec_data(&iov[0]), 1000);
    evpl_sendtoepv(evpl, A.bind, epb, iov, 1, 1000, EVPL_SEND_FLAG_TAKE_REF);
    WAIT_FOR(A.counts['v'] == 1, 5000);  /* B answered with sendtov + TAKE_REF */
    CHECK_EQ(A.last_len, 1000);
    want[0] = 'v';
    CHECK(memcmp(A.last, want, 1000) == 0);

    CHECK_EQ(evpl_iovec_alloc(evpl, 1500, 0, 1, iov), 1);
    fill(evpl_iovec_data(&iov[0]), 1500, 2);
    ((unsigned char *) evpl_iovec_data(&iov[0]))[0] = 'W';
    memcpy(want, evpl_iovec_data(&iov[0]), 1500);
    evpl_sendtoepv(evpl, A.bind, epb, iov, 1, 1500, 0);
    evpl_iovec_release(&iov[0]);  /* ours to drop: the library holds its own */
    WAIT_FOR(A.counts['w'] == 1, 5000);  /* B answered with sendtov, no TAKE_REF */
    CHECK_EQ(A.last_len, 1500);
    want[0] = 'w';
    CHECK(memcmp(A.last, want, 1500) == 0);

    /* Two iovecs, one datagram. */
    CHECK_EQ(evpl_iovec_alloc(evpl, 300, 0, 1, &iov[0]), 1);
    CHECK_EQ(evpl_iovec_alloc(evpl, 700, 0, 1, &iov[1]), 1);
    fill(want, 1000, 3);
    want[0] = 'N';
    memcpy(evpl_iovec_data(&iov[0]), want, 300);
    memcpy(evpl_iovec_data(&iov[1]), want + 300, 700);
    evpl_sendtoepv(evpl, A.bind, epb, iov, 2, 1000, EVPL_SEND_FLAG_TAKE_REF);
    WAIT_FOR(B.counts['N'] == 1, 5000);
    CHECK_EQ(B.last_len, 1000);
    CHECK(memcmp(B.last, want, 1000) == 0);

    /* length shorter than the iovec: 600 of 1000 bytes. */
    CHECK_EQ(evpl_iovec_alloc(evpl, 1000, 0, 1, iov), 1);
    fill(evpl_iovec_data(&iov[0]), 1000, 4);
    ((unsigned char *) evpl_iovec_data(&iov[0]))[0] = 'N';
    memcpy(want, evpl_iovec_data(&iov[0]), 600);
    evpl_sendtoepv(evpl, A.bind, epb, iov, 1, 600, EVPL_SEND_FLAG_TAKE_REF);
    WAIT_FOR(B.counts['N'] == 2, 5000);
    CHECK_EQ(B.last_len, 600);
    CHECK(memcmp(B.last, want, 600) == 0);
    CHECK_EQ(A.bad_niov + B.bad_niov, 0);

    /* ---- 1000 datagrams ---- */
    fprintf(stderr, "burst of %d datagrams\n", BURST);
    {
        unsigned char d[200];
        int      sent = 0, last_seen = 0;
        uint64_t last_progress = now_ms(), end = now_ms() + 20000;
        while (B.burst < BURST && now_ms() < end && now_ms() - last_progress < 1000) {
            while (sent < BURST && (sent - B.burst < WINDOW || now_ms() - last_progress > 200)) {
                fill(d, sizeof d, (unsigned) sent);
                d[0] = 'B';
                d[1] = (unsigned char) sent;
                d[2] = (unsigned char) (sent >> 8);
                d[3] = (unsigned char) (sent >> 16);
                d[4] = (unsigned char) (sent >> 24);
                evpl_sendtoep(evpl, A.bind, epb, d, sizeof d);
                sent++;
                if (sent % WINDOW == 0) break;  /* one batch per pass */
            }
            evpl_continue(evpl);
            if (B.burst != last_seen) {
                last_seen = B.burst;
                last_progress = now_ms();
            }
        }
        fprintf(stderr, "   %d of %d arrived\n", B.burst, sent);
        CHECK_EQ(sent, BURST);
        CHECK(B.burst >= BURST - 10);
        CHECK_EQ(B.burst_disorder, 0);
        CHECK_EQ(B.bad_niov, 0);
    }

    /* ---- same-size datagrams queued together (UDP GSO joins them) ---- */
    fprintf(stderr, "91 datagrams queued at once: 70 x 300 B, 1 x 301 B, 20 x 300 B\n");
    {
        unsigned char g[301];
        for (int seq = 0; seq < 91; seq++) {
            unsigned len = seq == 70 ? 301 : 300;
            g[0] = 'G';
            g[1] = (unsigned char) seq; g[2] = (unsigned char) (seq >> 8);
            g[3] = (unsigned char) (seq >> 16); g[4] = (unsigned char) (seq >> 24);
            for (unsigned i = 5; i < len; i++) g[i] = (unsigned char) (seq * 7 + i);
            evpl_sendtoep(evpl, A.bind, epb, g, len);
        }
        WAIT_FOR(B.joined == 91, 5000);
        CHECK_EQ(B.joined, 91);
        CHECK_EQ(B.joined_bad, 0);
        CHECK_EQ(B.joined_last, 90);
    }

    /* ---- large datagrams ---- */
    fprintf(stderr, "65000-byte datagram, 70000-byte datagram\n");
    {
        unsigned char *big = malloc(70000);
        CHECK(big != NULL);
        fill(big, 70000, 5);
        big[0] = 'N';
        int n0 = B.counts['N'];
        evpl_sendtoep(evpl, A.bind, epb, big, 65000);
        WAIT_FOR(B.counts['N'] == n0 + 1, 5000);
        CHECK_EQ(B.last_len, 65000);
        CHECK(memcmp(B.last, big, 65000) == 0);
        CHECK_EQ(B.bad_niov, 0);

        big[0] = 'X';
        int m0 = B.msgs;
        evpl_sendtoep(evpl, A.bind, epb, big, 70000);  /* rejected */
        evpl_sendtoep(evpl, A.bind, epb, "Nafter-big", 10);
        WAIT_FOR(B.counts['N'] == n0 + 2, 5000);
        for (int i = 0; i < 5; i++) evpl_continue(evpl);
        CHECK_EQ(B.counts['X'], 0);
        CHECK_EQ(B.msgs, m0 + 1);
        CHECK_EQ(B.last_len, 10);
        CHECK(memcmp(B.last, "Nafter-big", 10) == 0);
        free(big);
    }

    /* ---- evpl_send with no default peer ---- */
    fprintf(stderr, "evpl_send on a UDP bind without a peer\n");
    {
        int m0 = B.msgs;
        evpl_send(evpl, A.bind, "Zno-peer", 8);
        ping(&A, &B, epb, "Sstill alive");
        CHECK_EQ(B.counts['Z'], 0);
        CHECK_EQ(B.msgs, m0 + 1);
    }

    /* ---- IPv6 ---- */
    int s6 = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 probe;
    memset(&probe, 0, sizeof probe);
    probe.sin6_family = AF_INET6;
    probe.sin6_addr = in6addr_loopback;
    int have6 = s6 >= 0 && bind(s6, (struct sockaddr *) &probe, sizeof probe) == 0;
    if (s6 >= 0) close(s6);
    if (have6) {
        fprintf(stderr, "IPv6 on ::1\n");
        static struct ub A6, B6;
        int pa6, pb6;
        udp_bind(&A6, "A6", "::1", &pa6);
        udp_bind(&B6, "B6", "::1", &pb6);
        struct evpl_endpoint *epb6 = evpl_endpoint_create("::1", pb6);
        CHECK(epb6 != NULL);
        ping(&A6, &B6, epb6, "Shello over v6");
        CHECK_EQ(A6.bad_niov + B6.bad_niov + A6.no_addr + B6.no_addr, 0);
        evpl_close(evpl, A6.bind);
        evpl_close(evpl, B6.bind);
        WAIT_FOR(A6.disconnected && B6.disconnected, 5000);
        CHECK_EQ(A6.status, 0);
        CHECK_EQ(B6.status, 0);
        evpl_endpoint_close(epb6);
        evpl_endpoint_close(A6.ep);
        evpl_endpoint_close(B6.ep);
    } else {
        fprintf(stderr, "note: no ::1 on this machine, IPv6 case not run\n");
    }

    /* ---- a plain POSIX UDP socket ---- */
    fprintf(stderr, "interop with a plain UDP socket\n");
    {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        CHECK(fd >= 0);
        struct sockaddr_in me, to, from;
        socklen_t sl = sizeof me;
        memset(&me, 0, sizeof me);
        me.sin_family = AF_INET;
        me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK_EQ(bind(fd, (struct sockaddr *) &me, sizeof me), 0);
        CHECK_EQ(getsockname(fd, (struct sockaddr *) &me, &sl), 0);

        /* plain -> B, B replies with sendto(recv_msg.addr) */
        to = me;
        to.sin_port = htons((uint16_t) pb);
        CHECK_EQ(sendto(fd, "Sfrom plain", 11, 0, (struct sockaddr *) &to, sizeof to), 11);
        char buf[256];
        ssize_t r = plain_recv(fd, buf, sizeof buf, &from);
        CHECK_EQ(r, 11);
        CHECK(memcmp(buf, "rfrom plain", 11) == 0);
        CHECK_EQ(ntohs(from.sin_port), pb);
        CHECK_EQ(from.sin_addr.s_addr, htonl(INADDR_LOOPBACK));

        /* A -> plain */
        struct evpl_endpoint *epp = evpl_endpoint_create("127.0.0.1", ntohs(me.sin_port));
        CHECK(epp != NULL);
        evpl_sendtoep(evpl, A.bind, epp, "to plain", 8);
        r = plain_recv(fd, buf, sizeof buf, &from);
        CHECK_EQ(r, 8);
        CHECK(memcmp(buf, "to plain", 8) == 0);
        CHECK_EQ(ntohs(from.sin_port), pa);
        close(fd);
        evpl_endpoint_close(epp);
    }

    /* ---- close ---- */
    CHECK_EQ(A.other + B.other, 0);
    CHECK_EQ(A.no_addr + B.no_addr, 0);
    evpl_close(evpl, A.bind);
    evpl_close(evpl, B.bind);
    CHECK_EQ(A.disconnected + B.disconnected, 0);
    WAIT_FOR(A.disconnected && B.disconnected, 5000);
    for (int i = 0; i < 5; i++) evpl_continue(evpl);
    CHECK_EQ(A.disconnected, 1);
    CHECK_EQ(B.disconnected, 1);
    CHECK_EQ(A.status, 0);
    CHECK_EQ(B.status, 0);

    evpl_destroy(evpl);
    evpl_endpoint_close(epa);
    evpl_endpoint_close(epb);
    evpl_endpoint_close(A.ep);
    evpl_endpoint_close(B.ep);
    return 0;
}
