/* protocols: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/*
 * 10 000 idle TCP connections on one loop cost at most 16 KiB of resident
 * memory each (issue: performance).  A forked child opens the connections
 * with plain sockets (its own descriptor table), sends one 64-byte message on
 * each and reads the echo; the parent's loop accepts and echoes.  With every
 * connection idle again, the parent's RSS growth divided by the number of
 * connections must stay under 16 KiB.
 */
#include "harness.h"
#include "net.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONNS 10000
#define MSG   64

static long connected, echoed, disconnected;

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    char buf[MSG];
    (void) priv;
    switch (n->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            connected++;
            break;
        case EVPL_NOTIFY_RECV_DATA:
            while (evpl_recv(evpl, bind, buf, MSG, EVPL_RECV_FLAG_ALL_OR_NONE) == MSG) {
                evpl_send(evpl, bind, buf, MSG);
                echoed++;
            }
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            disconnected++;
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

/* The child: CONNS blocking sockets, one message and its echo on each, then
 * report on `up` and hold them open until `down` closes. */
static void
child(int port, int up, int down)
{
    static int fds[CONNS];
    char msg[MSG], echo[MSG];
    memset(msg, 0x42, MSG);
    for (int i = 0; i < CONNS; i++) {
        fds[i] = raw_connect("127.0.0.1", port, 0);
        if (fds[i] < 0 || write(fds[i], msg, MSG) != MSG) {
            fprintf(stderr, "child: connection %d failed: %s\n", i, strerror(errno));
            _exit(1);
        }
    }
    for (int i = 0; i < CONNS; i++) {
        if (read_all(fds[i], echo, MSG) != 0) {
            fprintf(stderr, "child: echo %d failed\n", i);
            _exit(1);
        }
        if (memcmp(echo, msg, MSG) != 0) {
            _exit(1);
        }
    }
    char ok = 1;
    if (write(up, &ok, 1) != 1) {
        _exit(1);
    }
    (void) read(down, &ok, 1);  /* EOF: the parent has measured */
    _exit(0);
}

int
main(int argc, char **argv)
{
    /* Before anything else touches the library: evpl_init only takes effect first. */
    struct evpl_global_config *g = evpl_global_config_init();
    evpl_global_config_set_max_pending(g, 4096);
    evpl_init(g);
    enum evpl_protocol_id proto = test_protocol(argc, argv, EVPL_STREAM_SOCKET_TCP);
    alarm(120);

    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_max < CONNS + 200) {
        SKIP("RLIMIT_NOFILE hard limit %lu is below %d", (unsigned long) rl.rlim_max, CONNS + 200);
    }
    rl.rlim_cur = rl.rlim_max;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);

    struct evpl *evpl = test_loop();
    struct evpl_listener *listener = evpl_listener_create();
    struct evpl_listener_binding *binding = evpl_listener_attach(evpl, listener, attach, NULL);
    int port = listen_random_port(listener, proto, NULL);
    CHECK(port != 0);

    /* Warm the loop's buffers and the allocator before the baseline. */
    for (int i = 0; i < 10; i++) {
        evpl_continue(evpl);
    }
    long before = rss_kib();

    int up[2], down[2];
    CHECK(pipe(up) == 0 && pipe(down) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        child(port, up[1], down[0]);
    }
    close(up[1]);
    close(down[0]);

    /* Serve until the child has all its echoes. */
    uint64_t end = now_ms() + 90000;
    char ready = 0;
    while (now_ms() < end) {
        evpl_continue(evpl);
        if (echoed == CONNS) {
            fd_set set;
            struct timeval tv = { 0, 0 };
            FD_ZERO(&set);
            FD_SET(up[0], &set);
            if (select(up[0] + 1, &set, NULL, NULL, &tv) == 1) {
                CHECK(read(up[0], &ready, 1) == 1);
                break;
            }
        }
    }
    CHECK_EQ(connected, CONNS);
    CHECK_EQ(echoed, CONNS);
    CHECK(ready == 1);
    for (int i = 0; i < 10; i++) {
        evpl_continue(evpl);  /* let the last flushes settle */
    }
    long after = rss_kib();
    long per_conn = (after - before) * 1024 / CONNS;
    printf("%d idle connections: RSS %ld KiB -> %ld KiB, %ld bytes each\n", CONNS, before, after, per_conn);
#ifndef EVPL_TEST_ASAN  /* ASan's redzones and quarantine are not ours to count */
    CHECK(per_conn <= 16 * 1024);
#endif

    close(down[1]);  /* the child closes everything */
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    end = now_ms() + 30000;
    while (disconnected < CONNS && now_ms() < end) {
        evpl_continue(evpl);
    }
    CHECK_EQ(disconnected, CONNS);
    evpl_listener_detach(evpl, binding);
    evpl_listener_destroy(listener);
    evpl_destroy(evpl);
    return 0;
}
