/* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/*
 * One bulk sender cannot hold an iteration: the client streams to a plain
 * socket that another thread drains as fast as it can, and refills its
 * send queue from every SENT notification (as a bulk sender does).  Each
 * evpl_continue must still return promptly and a 5 ms timer keep firing.
 * (Re-flushing every bind that a SENT handler dirtied again, for as long as
 * the kernel took the bytes, once kept one evpl_continue busy for seconds.)
 */
#include "harness.h"
#include "net.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK   (256u * 1024u)
#define WINDOW  (4u * 1024u * 1024u)

static struct evpl      *loop;
static struct evpl_bind *bind_;
static uint64_t          inflight, sent_total;
static int               connected, disconnected, ticks;
static atomic_int        drain_stop;

static void
refill(void)
{
    while (inflight + CHUNK <= WINDOW) {
        struct evpl_iovec iov;
        CHECK_EQ(evpl_iovec_alloc(loop, CHUNK, 0, 1, &iov), 1);
        memset(evpl_iovec_data(&iov), 0x42, 64);
        evpl_sendv(loop, bind_, &iov, 1, (int) CHUNK, EVPL_SEND_FLAG_TAKE_REF);
        inflight += CHUNK;
    }
}

static void
notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) evpl;
    (void) bind;
    (void) priv;
    switch (n->notify_type) {
    case EVPL_NOTIFY_CONNECTED:
        connected = 1;
        refill();
        break;
    case EVPL_NOTIFY_SENT:
        inflight -= n->sent.bytes;
        sent_total += n->sent.bytes;
        if (!disconnected) refill();
        break;
    case EVPL_NOTIFY_DISCONNECTED:
        disconnected = 1;
        break;
    default:
        break;
    }
}

static void
tick(struct evpl *evpl, struct evpl_timer *timer)
{
    (void) evpl;
    (void) timer;
    ticks++;
}

/* Reads and discards until told to stop or the peer closes. */
static void *
drain(void *arg)
{
    int fd = *(int *) arg;
    static char buf[1 << 20];
    while (!atomic_load(&drain_stop)) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) break;
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    enum evpl_protocol_id proto = test_protocol(argc, argv, EVPL_STREAM_SOCKET_TCP);
    loop = test_loop();
    int port = 0;
    int lfd = plain_listen("127.0.0.1", &port);
    struct evpl_endpoint *ep = evpl_endpoint_create("127.0.0.1", port);
    CHECK(ep != NULL);
    bind_ = evpl_connect(loop, proto, NULL, ep, notify, NULL, NULL);
    CHECK(bind_ != NULL);
    evpl_bind_request_send_notifications(loop, bind_);
    int fd = accept(lfd, NULL, NULL);
    CHECK(fd >= 0);
    pthread_t thread;
    CHECK_EQ(pthread_create(&thread, NULL, drain, &fd), 0);
    CHECK(run_until(loop, &connected, 5000));

    struct evpl_timer timer;
    evpl_add_timer(loop, &timer, tick, 5000);
    uint64_t start = now_us(), longest = 0;
    while (now_us() - start < 500000 && !disconnected) {
        uint64_t t0 = now_us();
        evpl_continue(loop);
        uint64_t d = now_us() - t0;
        if (d > longest) longest = d;
    }
    uint64_t elapsed = now_us() - start;
    fprintf(stderr, "%s: %.1f MB streamed in %.0f ms, longest evpl_continue %.2f ms, %d ticks of 5 ms\n",
            argv[0], sent_total / 1e6, elapsed / 1e3, longest / 1e3, ticks);
    CHECK_EQ(disconnected, 0);
    CHECK(sent_total > 8 * WINDOW);        /* it really streamed */
    CHECK(longest < 50000);                /* no iteration held for 50 ms */
    CHECK(ticks >= (int) (elapsed / 5000) / 4);  /* the timer kept running */

    evpl_remove_timer(loop, &timer);
    atomic_store(&drain_stop, 1);
    evpl_close(loop, bind_);
    uint64_t end = now_ms() + 5000;
    while (!disconnected && now_ms() < end) evpl_continue(loop);
    CHECK(disconnected);
    shutdown(fd, SHUT_RDWR);
    CHECK_EQ(pthread_join(thread, NULL), 0);
    close(fd);
    close(lfd);
    evpl_endpoint_close(ep);
    evpl_destroy(loop);
    return 0;
}
