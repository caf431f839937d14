/* protocols: DATAGRAM_SOCKET_UDP */
/*
 * Message delivery over a message (datagram) protocol chosen with -r
 * (default DATAGRAM_SOCKET_UDP), on 127.0.0.1 or $EVPL_TEST_ADDR (net.h;
 * ctests/run_rdma.sh runs this over DATAGRAM_RDMACM_RC and
 * DATAGRAM_RDMACM_UD).  Two loops, driven alternately from this thread.
 *
 * Connectionless (DATAGRAM_SOCKET_UDP, DATAGRAM_RDMACM_UD):
 *  - binds A and B on test_addr() port 0; evpl_bind_get_local_address gives
 *    "addr:port" with a real port, and evpl_bind_get_protocol the protocol;
 *  - A sends NMSG datagrams of deterministic sizes 1..1024 with
 *    evpl_sendtoep to B, at most WINDOW unanswered at a time; B gets each
 *    one as exactly one RECV_MSG (status 0, recv_msg.addr set, iovec
 *    lengths summing to recv_msg.length; niov 1 on UDP) with those bytes,
 *    in order, and echoes it to recv_msg.addr: every third with
 *    evpl_sendtov(received iovecs, EVPL_SEND_FLAG_TAKE_REF) (zero copy,
 *    the references handed over), the rest with evpl_sendto (copy, the
 *    references released); A gets every echo, in order, byte for byte;
 *  - one evpl_sendtoepv from A of 3 evpl_iovec_alloc iovecs with TAKE_REF
 *    arrives at B as one message of the summed length, and its echo at A;
 *  - recv_msg.addr is the sender: struct evpl_address is opaque in the C
 *    ABI (nothing formats it), so this is checked by its use: a third bind
 *    C sends interleaved with A, B echoes each to recv_msg.addr, and A and
 *    C each get exactly their own echoes, in order (the bytes differ per
 *    sender);
 *  - evpl_close: one DISCONNECTED, status 0, per bind.
 *
 * Connection-oriented (DATAGRAM_RDMACM_RC):
 *  - evpl_listen on test_addr() (listen_free), evpl_connect with no segment
 *    callback; CONNECTED once on each side;
 *  - the client sends NMSG messages of sizes 1..65536 (at most WINDOW
 *    unanswered): evpl_send, and every third evpl_sendv with TAKE_REF (one
 *    or two evpl_iovec_alloc iovecs); each arrives at the server as exactly
 *    one RECV_MSG of that length with those bytes, in order; the server
 *    echoes it with evpl_send and the client checks every echo, in order;
 *  - evpl_finish on the client: DISCONNECTED exactly once on both sides,
 *    status 0, never from inside evpl_finish.
 *
 * Stream protocols and anything else: skipped (exit 77), as is a protocol
 * evpl_protocol_available says is not there.
 */
#include "harness.h"
#include "net.h"

#define NMSG      2000
#define WINDOW    16
#define NADDR     100          /* per sender in the recv_msg.addr phase */
#define QCAP      4096         /* expectation FIFO entries (power of two) */
#define DGRAM_MAX 1024         /* connectionless: UD's datagram is the path MTU */
#define MSG_MAX   65536        /* connection-oriented: max_datagram_size */

enum { TAG_A = 1, TAG_Z = 2, TAG_C = 3, TAG_RC = 4 };

static enum evpl_protocol_id proto;
static const char           *proto_name = "DATAGRAM_SOCKET_UDP";

/* ---- deterministic messages -------------------------------------------- */

/* The bytes of message (tag, seq). */
static void
gen(unsigned char *p, unsigned len, unsigned tag, unsigned seq)
{
    uint32_t x = tag * 2654435761u ^ (seq + 1) * 40503u ^ 0x9e3779b9u;
    for (unsigned j = 0; j < len; j++) {
        x = x * 1103515245u + 12345u;
        p[j] = (unsigned char) (x >> 16);
    }
}

/* Connectionless sizes, 1..DGRAM_MAX (both ends come early). */
static unsigned
dgram_len(unsigned seq)
{
    if (seq == 0) return 1;
    if (seq == 1) return DGRAM_MAX;
    return 1 + (seq * 7919u + (seq * seq) % 613u) % DGRAM_MAX;
}

/* Connection-oriented sizes, 1..MSG_MAX: a quarter small, the rest spread. */
static unsigned
msg_len(unsigned seq)
{
    if (seq == 0) return 1;
    if (seq == 1) return MSG_MAX;
    if (seq % 4 == 0) return 1 + seq % 200;
    return 1 + (seq * 40503u + seq * seq * 7u) % MSG_MAX;
}

/* ---- one end: what it expects, what it saw -------------------------------- */

struct expect {
    unsigned tag, seq, len;
};

struct peer {
    const char           *name;
    struct evpl          *loop;
    struct evpl_bind     *bind;
    struct evpl_endpoint *ep;          /* a bind's own endpoint */
    int                   in_api;      /* no callback may run while set */
    int                   verify;      /* check each message against the FIFO */
    int                   echo;        /* 1: sendto/sendtov, 2: evpl_send */
    struct expect         q[QCAP];
    unsigned              head, tail;
    int                   msgs, zc_echoes, copy_echoes, multi_iov, niov_not_1;
    int                   connected, disconnected, status;
};

static unsigned char rbuf[MSG_MAX];   /* a received message, gathered */
static unsigned char wbuf[MSG_MAX];   /* an expected or outgoing one */

static void
expect_push(struct peer *p, unsigned tag, unsigned seq, unsigned len)
{
    CHECK(p->tail - p->head < QCAP);
    p->q[p->tail % QCAP] = (struct expect) { tag, seq, len };
    p->tail++;
}

static void
check_msg(struct peer *p, const unsigned char *d, unsigned len)
{
    if (p->head == p->tail) {
        fprintf(stderr, "%s: unexpected message of %u bytes (%d received)\n", p->name, len, p->msgs);
        CHECK(0);
    }
    struct expect e = p->q[p->head % QCAP];
    p->head++;
    if (len != e.len) {
        fprintf(stderr, "%s: message tag %u seq %u: %u bytes, want %u (lost, merged, split or reordered?)\n",
                p->name, e.tag, e.seq, len, e.len);
        CHECK_EQ(len, e.len);
    }
    gen(wbuf, len, e.tag, e.seq);
    if (memcmp(d, wbuf, len) != 0) {
        unsigned at = 0;
        while (d[at] == wbuf[at]) at++;
        fprintf(stderr, "%s: message tag %u seq %u (%u bytes) differs from byte %u on\n",
                p->name, e.tag, e.seq, len, at);
        CHECK(0);
    }
}

static void
peer_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct peer *p = priv;
    CHECK(!p->in_api);
    CHECK(evpl == p->loop);
    CHECK(bind == p->bind);
    CHECK_EQ(p->disconnected, 0);   /* nothing after DISCONNECTED */
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        CHECK_EQ(n->notify_status, 0);
        CHECK_EQ(p->connected, 0);
        p->connected++;
        break;
    case EVPL_NOTIFY_RECV_MSG: {
        CHECK_EQ(n->notify_status, 0);
        unsigned len = n->recv_msg.length, niov = n->recv_msg.niov;
        CHECK(len >= 1 && len <= MSG_MAX);
        CHECK(niov >= 1);
        CHECK(n->recv_msg.iovec != NULL);
        if (p->echo == 1) CHECK(n->recv_msg.addr != NULL);  /* the sender */
        if (niov != 1) p->niov_not_1++;
        unsigned got = 0;
        for (unsigned i = 0; i < niov; i++) {
            unsigned l = evpl_iovec_length(&n->recv_msg.iovec[i]);
            CHECK(got + l <= len);
            memcpy(rbuf + got, evpl_iovec_data(&n->recv_msg.iovec[i]), l);
            got += l;
        }
        CHECK_EQ(got, len);
        p->msgs++;
        if (p->verify) check_msg(p, rbuf, len);

        int handed_over = 0;
        if (p->echo == 1) {
            if (p->msgs % 3 == 0) {
                /* zero copy: the callback's references go with the datagram */
                evpl_sendtov(evpl, bind, n->recv_msg.addr, n->recv_msg.iovec, (int) niov, (int) len,
                             EVPL_SEND_FLAG_TAKE_REF);
                handed_over = 1;
                p->zc_echoes++;
            } else {
                evpl_sendto(evpl, bind, n->recv_msg.addr, rbuf, len);
                p->copy_echoes++;
            }
        } else if (p->echo == 2) {
            evpl_send(evpl, bind, rbuf, len);
            p->copy_echoes++;
        }
        if (!handed_over) {
            for (unsigned i = 0; i < niov; i++) evpl_iovec_release(&n->recv_msg.iovec[i]);
        }
        break;
    }
    case EVPL_NOTIFY_DISCONNECTED:
        p->disconnected++;
        p->status = n->notify_status;
        break;
    default:
        fprintf(stderr, "%s: unexpected notify type %u (status %d)\n", p->name, n->notify_type,
                n->notify_status);
        CHECK(0);
    }
}

/* ---- connectionless: UDP, RDMA UD ---------------------------------------- */

static void
dgram_bind(struct peer *p, const char *name, struct evpl *loop, int *port)
{
    const char *addr = test_addr();
    p->name = name;
    p->loop = loop;
    p->ep = evpl_endpoint_create(addr, 0);
    CHECK(p->ep != NULL);
    p->in_api = 1;
    p->bind = evpl_bind(loop, proto, p->ep, peer_notify, p);
    p->in_api = 0;
    if (p->bind == NULL) {
        fprintf(stderr, "evpl_bind %s over %s on %s:0 failed\n", name, proto_name, addr);
        CHECK(0);
    }
    CHECK_EQ(evpl_bind_get_protocol(p->bind), proto);
    char s[128], want[128];
    evpl_bind_get_local_address(p->bind, s, sizeof s);
    *port = addr_port(s);
    CHECK(*port > 0 && *port < 65536);
    if (strchr(addr, ':')) snprintf(want, sizeof want, "[%s]:%d", addr, *port);
    else snprintf(want, sizeof want, "%s:%d", addr, *port);
    fprintf(stderr, "%s bound at %s\n", name, s);
    if (strcmp(s, want) != 0) {
        fprintf(stderr, "local address of %s is \"%s\", want \"%s\"\n", name, s, want);
        CHECK(0);
    }
}

/* The echoes sender s has not had yet. */
static unsigned
pending(const struct peer *s)
{
    return s->tail - s->head;
}

static void
run_connectionless(void)
{
    struct evpl *la = loop_with_wait(1), *lb = loop_with_wait(1);
    static struct peer A, B, C;
    int pa, pb, pc;
    dgram_bind(&A, "A", la, &pa);
    dgram_bind(&B, "B", lb, &pb);
    CHECK(pa != pb);
    A.verify = 1;
    B.verify = 1;
    B.echo = 1;
    struct evpl_endpoint *epb = evpl_endpoint_create(test_addr(), pb);
    CHECK(epb != NULL);

    /* ---- NMSG datagrams A -> B -> A, WINDOW at a time ---- */
    fprintf(stderr, "%d datagrams of 1..%d bytes, at most %d unanswered\n", NMSG, DGRAM_MAX, WINDOW);
    unsigned sent = 0;
    uint64_t end = now_ms() + 30000;
    while ((sent < NMSG || pending(&A) > 0) && now_ms() < end) {
        while (sent < NMSG && pending(&A) < WINDOW) {
            unsigned len = dgram_len(sent);
            gen(wbuf, len, TAG_A, sent);
            expect_push(&B, TAG_A, sent, len);
            expect_push(&A, TAG_A, sent, len);
            A.in_api = B.in_api = 1;
            evpl_sendtoep(la, A.bind, epb, wbuf, len);
            A.in_api = B.in_api = 0;
            sent++;
        }
        pump(la, lb);
    }
    if (sent < NMSG || pending(&A) > 0) {
        fprintf(stderr, "timed out: %u sent, B got %d, A got %d echoes\n", sent, B.msgs, A.msgs);
        CHECK(0);
    }
    settle(la, lb);
    CHECK_EQ(B.msgs, NMSG);
    CHECK_EQ(A.msgs, NMSG);
    CHECK_EQ(B.zc_echoes, NMSG / 3);
    CHECK_EQ(B.zc_echoes + B.copy_echoes, NMSG);
    if (proto == EVPL_DATAGRAM_SOCKET_UDP) CHECK_EQ(A.niov_not_1 + B.niov_not_1, 0);

    /* ---- one zero-copy datagram of three iovecs ---- */
    fprintf(stderr, "evpl_sendtoepv of 3 iovecs with TAKE_REF\n");
    {
        static const unsigned part[3] = { 100, 300, 600 };
        const unsigned total = 1000;
        struct evpl_iovec iov[3];
        gen(wbuf, total, TAG_Z, 0);
        unsigned off = 0;
        for (int i = 0; i < 3; i++) {
            CHECK_EQ(evpl_iovec_alloc(la, part[i], 0, 1, &iov[i]), 1);
            CHECK_EQ(evpl_iovec_length(&iov[i]), part[i]);
            memcpy(evpl_iovec_data(&iov[i]), wbuf + off, part[i]);
            off += part[i];
        }
        expect_push(&B, TAG_Z, 0, total);
        expect_push(&A, TAG_Z, 0, total);
        int b0 = B.msgs, a0 = A.msgs;
        A.in_api = B.in_api = 1;
        evpl_sendtoepv(la, A.bind, epb, iov, 3, (int) total, EVPL_SEND_FLAG_TAKE_REF);
        A.in_api = B.in_api = 0;
        WAIT_FOR2(la, lb, A.msgs == a0 + 1, 10000);
        settle(la, lb);
        CHECK_EQ(B.msgs, b0 + 1);   /* one message of the summed length (check_msg) */
        CHECK_EQ(A.msgs, a0 + 1);
        CHECK_EQ(pending(&A), 0);
        CHECK_EQ(B.tail - B.head, 0);
    }

    /* ---- recv_msg.addr is the sender: two senders, each gets its own ---- */
    fprintf(stderr, "recv_msg.addr: A and C send interleaved, each gets only its own echoes\n");
    {
        dgram_bind(&C, "C", la, &pc);
        CHECK(pc != pa && pc != pb);
        C.verify = 1;
        B.verify = 0;   /* the two senders' datagrams may interleave either way */
        int b0 = B.msgs, a0 = A.msgs;
        unsigned sa = 0, sc = 0;
        end = now_ms() + 20000;
        while ((sa < NADDR || sc < NADDR || pending(&A) || pending(&C)) && now_ms() < end) {
            while ((sa < NADDR && pending(&A) < WINDOW / 2) || (sc < NADDR && pending(&C) < WINDOW / 2)) {
                if (sa < NADDR && pending(&A) < WINDOW / 2) {
                    unsigned len = dgram_len(sa + 7);
                    gen(wbuf, len, TAG_A, 10000 + sa);
                    expect_push(&A, TAG_A, 10000 + sa, len);
                    evpl_sendtoep(la, A.bind, epb, wbuf, len);
                    sa++;
                }
                if (sc < NADDR && pending(&C) < WINDOW / 2) {
                    unsigned len = dgram_len(sc + 11);
                    gen(wbuf, len, TAG_C, sc);
                    expect_push(&C, TAG_C, sc, len);
                    evpl_sendtoep(la, C.bind, epb, wbuf, len);
                    sc++;
                }
            }
            pump(la, lb);
        }
        if (pending(&A) || pending(&C) || sa < NADDR || sc < NADDR) {
            fprintf(stderr, "timed out: A sent %u got %d, C sent %u got %d, B got %d\n", sa, A.msgs - a0, sc,
                    C.msgs, B.msgs - b0);
            CHECK(0);
        }
        settle(la, lb);
        CHECK_EQ(A.msgs, a0 + NADDR);
        CHECK_EQ(C.msgs, NADDR);
        CHECK_EQ(B.msgs, b0 + 2 * NADDR);
    }

    /* ---- close ---- */
    struct peer *all[3] = { &A, &B, &C };
    for (int i = 0; i < 3; i++) {
        all[i]->in_api = 1;
        evpl_close(all[i]->loop, all[i]->bind);
        all[i]->in_api = 0;
    }
    WAIT_FOR2(la, lb, A.disconnected && B.disconnected && C.disconnected, 10000);
    settle(la, lb);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(all[i]->disconnected, 1);
        CHECK_EQ(all[i]->status, 0);
        CHECK_EQ(all[i]->connected, 0);
    }
    fprintf(stderr, "B echoed %d by copy, %d zero-copy; multi-iovec receives: %d\n", B.copy_echoes,
            B.zc_echoes, A.niov_not_1 + B.niov_not_1 + C.niov_not_1);
    evpl_destroy(la);
    evpl_destroy(lb);
    evpl_endpoint_close(epb);
    for (int i = 0; i < 3; i++) evpl_endpoint_close(all[i]->ep);
}

/* ---- connection-oriented: RDMA RC datagrams ------------------------------ */

static struct peer srv, cl;
static int attach_token, attached;

static void
server_attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *nc,
              evpl_segment_callback_t *sc, void **conn_priv, void *priv)
{
    CHECK(priv == &attach_token);
    CHECK(evpl == srv.loop);
    CHECK_EQ(attached, 0);
    attached++;
    srv.bind = bind;
    *nc = peer_notify;
    *sc = NULL;
    *conn_priv = &srv;
}

static void
client_send(struct evpl *evpl, unsigned seq)
{
    unsigned len = msg_len(seq);
    gen(wbuf, len, TAG_RC, seq);
    expect_push(&srv, TAG_RC, seq, len);
    expect_push(&cl, TAG_RC, seq, len);
    cl.in_api = srv.in_api = 1;
    if (seq % 3 == 1) {
        /* zero copy, the references handed over; two iovecs every other time */
        struct evpl_iovec iov[2];
        unsigned part[2] = { len, 0 };
        int n = 1;
        if (seq % 2 == 1 && len >= 2) {
            part[0] = len / 3 + 1;
            part[1] = len - part[0];
            n = 2;
        }
        unsigned off = 0;
        for (int i = 0; i < n; i++) {
            CHECK_EQ(evpl_iovec_alloc(evpl, part[i], 0, 1, &iov[i]), 1);
            memcpy(evpl_iovec_data(&iov[i]), wbuf + off, part[i]);
            off += part[i];
        }
        evpl_sendv(evpl, cl.bind, iov, n, (int) len, EVPL_SEND_FLAG_TAKE_REF);
    } else {
        evpl_send(evpl, cl.bind, wbuf, len);
    }
    cl.in_api = srv.in_api = 0;
}

static void
run_connected(void)
{
    const char *addr = test_addr();
    struct evpl *server = loop_with_wait(1), *client = loop_with_wait(1);
    srv.name = "server";
    srv.loop = server;
    srv.verify = 1;
    srv.echo = 2;
    cl.name = "client";
    cl.loop = client;
    cl.verify = 1;

    struct evpl_listener *listener = evpl_listener_create();
    CHECK(listener != NULL);
    struct evpl_listener_binding *lb = evpl_listener_attach(server, listener, server_attach, &attach_token);
    CHECK(lb != NULL);
    struct evpl_endpoint *lep = NULL;
    int sport = listen_free(listener, proto, addr, &lep);
    fprintf(stderr, "listening over %s on %s port %d\n", proto_name, addr, sport);
    struct evpl_endpoint *rep = evpl_endpoint_create(addr, sport);
    CHECK(rep != NULL);

    cl.in_api = 1;
    cl.bind = evpl_connect(client, proto, NULL, rep, peer_notify, NULL, &cl);
    cl.in_api = 0;
    CHECK(cl.bind != NULL);
    WAIT_FOR2(client, server, cl.connected && srv.connected, 10000);
    CHECK_EQ(attached, 1);
    CHECK_EQ(evpl_bind_get_protocol(cl.bind), proto);
    CHECK_EQ(evpl_bind_get_protocol(srv.bind), proto);

    fprintf(stderr, "%d messages of 1..%d bytes, at most %d unanswered\n", NMSG, MSG_MAX, WINDOW);
    unsigned sent = 0;
    uint64_t end = now_ms() + 60000;
    while ((sent < NMSG || pending(&cl) > 0) && now_ms() < end) {
        while (sent < NMSG && pending(&cl) < WINDOW) client_send(client, sent++);
        pump(client, server);
    }
    if (sent < NMSG || pending(&cl) > 0) {
        fprintf(stderr, "timed out: %u sent, server got %d, client got %d echoes\n", sent, srv.msgs, cl.msgs);
        CHECK(0);
    }
    settle(client, server);
    CHECK_EQ(srv.msgs, NMSG);
    CHECK_EQ(cl.msgs, NMSG);
    CHECK_EQ(srv.copy_echoes, NMSG);
    CHECK_EQ(srv.tail - srv.head, 0);

    /* evpl_finish: one DISCONNECTED, status 0, on each side. */
    cl.in_api = 1;
    evpl_finish(client, cl.bind);
    cl.in_api = 0;
    CHECK_EQ(cl.disconnected, 0);
    WAIT_FOR2(client, server, cl.disconnected && srv.disconnected, 10000);
    settle(client, server);
    CHECK_EQ(cl.disconnected, 1);
    CHECK_EQ(cl.status, 0);
    CHECK_EQ(srv.disconnected, 1);
    CHECK_EQ(srv.status, 0);
    CHECK_EQ(cl.connected, 1);
    CHECK_EQ(srv.connected, 1);
    fprintf(stderr, "multi-iovec receives: server %d, client %d\n", srv.niov_not_1, cl.niov_not_1);

    evpl_listener_detach(server, lb);
    evpl_listener_destroy(listener);
    evpl_endpoint_close(rep);
    evpl_endpoint_close(lep);
    evpl_destroy(client);
    evpl_destroy(server);
}

static const char *const names[] = {
    "DATAGRAM_SOCKET_UDP", "DATAGRAM_RDMACM_RC", "DATAGRAM_RDMACM_UD", "STREAM_SOCKET_TCP",
    "STREAM_XLIO_TCP", "STREAM_IO_URING_TCP", "STREAM_RDMACM_RC", "STREAM_SOCKET_TLS",
};

int
main(int argc, char **argv)
{
    /* test_protocol skips (77) when the -r protocol is not available. */
    proto = test_protocol(argc, argv, EVPL_DATAGRAM_SOCKET_UDP);
    if ((unsigned) proto < sizeof names / sizeof names[0]) proto_name = names[proto];
    if (!evpl_protocol_available(proto)) SKIP("%s is not available on this machine", proto_name);
    if (evpl_protocol_is_stream(proto)) {
        SKIP("%s is a stream protocol; this test covers message protocols", proto_name);
    }
    fprintf(stderr, "protocol %s, address %s\n", proto_name, test_addr());
    switch (proto) {
    case EVPL_DATAGRAM_SOCKET_UDP:
    case EVPL_DATAGRAM_RDMACM_UD:
        run_connectionless();
        break;
    case EVPL_DATAGRAM_RDMACM_RC:
        run_connected();
        break;
    default:
        SKIP("no message test for %s", proto_name);
    }
    return 0;
}
