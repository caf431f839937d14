/*
 * Core lifecycle: evpl_init (NULL, with a config, twice, after
 * auto-initialisation), evpl_create (NULL, with a config released right
 * after), evpl_continue on an idle loop, evpl_run stopped from another thread
 * and from callbacks, the high-frequency clock, evpl_destroy, and the three
 * protocol queries.
 */
#include "harness.h"
#include "net.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONTAINER_OF(ptr, type, member) ((type *) ((char *) (ptr) - offsetof(type, member)))

/* ---- log capture ------------------------------------------------------- */

static atomic_int log_errors;
static atomic_int log_lines;

static void
capture_log(const char *level, const char *module, const char *srcfile, int lineno,
            const char *fmt, va_list argp)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, argp);
    atomic_fetch_add(&log_lines, 1);
    if (level && strcmp(level, "ERROR") == 0) {
        atomic_fetch_add(&log_errors, 1);
    }
    fprintf(stderr, "[captured] %s %s %s:%d %s\n", level ? level : "(null)",
            module ? module : "(null)", srcfile ? srcfile : "(null)", lineno, msg);
}

/* Runs fn in a child process (before this process touched the library, so
 * each child initialises on its own) and checks that it exited 0. */
static void
in_child(int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(20);
        _exit(fn());
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

/* Child: evpl_init(NULL) initialises with defaults, logs no error, and a loop
 * can be created and destroyed afterwards. */
static int
child_init_null(void)
{
    evpl_set_log_fn(capture_log, NULL);
    evpl_init(NULL);
    struct evpl *evpl = evpl_create(NULL);
    CHECK(evpl != NULL);
    evpl_destroy(evpl);
    CHECK_EQ(atomic_load(&log_errors), 0);
    return 0;
}

/* Child: evpl_init after auto-initialisation (the first evpl_create) logs an
 * error, releases the config, and the existing loop keeps working. */
static int
child_init_after_auto(void)
{
    evpl_set_log_fn(capture_log, NULL);
    struct evpl *evpl = test_loop();
    CHECK_EQ(atomic_load(&log_errors), 0);
    struct evpl_global_config *cfg = evpl_global_config_init();
    CHECK(cfg != NULL);
    evpl_init(cfg);
    CHECK(atomic_load(&log_errors) >= 1);
    evpl_continue(evpl);
    evpl_destroy(evpl);
    return 0;
}

/* ---- evpl_run / evpl_stop ---------------------------------------------- */

struct stop_ctx {
    struct evpl      *evpl;
    struct evpl_timer timer;
    pthread_mutex_t   mu;
    pthread_cond_t    cv;
    int               running;
    atomic_int        stop_called;
    uint64_t          t_stop;
};

/* One-shot timer: proves the loop is inside evpl_run, then leaves it with
 * nothing to do, so it blocks in its wait (-1). */
static void
running_timer_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    struct stop_ctx *s = CONTAINER_OF(timer, struct stop_ctx, timer);
    evpl_remove_timer(evpl, timer);
    pthread_mutex_lock(&s->mu);
    s->running = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void *
stopper_main(void *arg)
{
    struct stop_ctx *s = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&s->mu);
    while (!s->running) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &until) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    /* Give the loop time to fall asleep in its untimed wait; that sleeping
     * state cannot be observed from outside, so this is a deliberate delay. */
    struct timespec d = { 0, 100 * 1000 * 1000 };
    nanosleep(&d, NULL);
    s->t_stop = now_ms();
    atomic_store(&s->stop_called, 1);
    evpl_stop(s->evpl);
    return NULL;
}

static int deferral_runs;

static void
stop_deferral_cb(struct evpl *evpl, void *private_data)
{
    CHECK(private_data == &deferral_runs);
    deferral_runs++;
    evpl_stop(evpl);
}

static int timer_runs;

static void
stop_timer_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    if (++timer_runs == 3) {
        evpl_remove_timer(evpl, timer);
        evpl_stop(evpl);
    }
}

static int64_t
ts_ns(const struct timespec *ts)
{
    return (int64_t) ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static int
has_rdma_device(void)
{
    return dir_entries("/sys/class/infiniband") > 0;
}

int
main(void)
{
    alarm(50);
    unsetenv("EVPL_LOG_LEVEL");

    /* evpl_init(NULL) in a fresh process. */
    in_child(child_init_null);
    /* evpl_init after auto-initialisation: logged error, no crash. */
    in_child(child_init_after_auto);

    /* evpl_init with a config (which it takes over), here in this process. */
    evpl_set_log_fn(capture_log, NULL);
    struct evpl_global_config *gcfg = evpl_global_config_init();
    CHECK(gcfg != NULL);
    evpl_global_config_set_max_pending(gcfg, 32);
    evpl_global_config_set_resolve_timeout_ms(gcfg, 1000);
    evpl_init(gcfg);
    CHECK_EQ(atomic_load(&log_errors), 0);

    /* A second evpl_init (NULL) returns and logs an ERROR. */
    evpl_init(NULL);
    int errors_after_second = atomic_load(&log_errors);
    CHECK(errors_after_second >= 1);

    /* A third, with a config: again an ERROR, and the config is released by
     * the library (the caller must not touch it again). */
    evpl_init(evpl_global_config_init());
    CHECK(atomic_load(&log_errors) > errors_after_second);
    int errors_base = atomic_load(&log_errors);

    /* evpl_create(NULL): defaults. */
    {
        struct evpl *evpl = evpl_create(NULL);
        CHECK(evpl != NULL);
        evpl_destroy(evpl);
    }

    /* evpl_create with a config: the caller reuses it for a second loop,
     * releases it, then both loops run (wait_ms 10 bounds each idle pass). */
    {
        struct evpl_thread_config *tcfg = evpl_thread_config_init();
        CHECK(tcfg != NULL);
        evpl_thread_config_set_wait_ms(tcfg, 10);
        struct evpl *a = evpl_create(tcfg);
        struct evpl *b = evpl_create(tcfg);
        evpl_thread_config_release(tcfg);
        CHECK(a != NULL);
        CHECK(b != NULL);
        CHECK(a != b);
        uint64_t t0 = now_ms();
        for (int i = 0; i < 5; i++) {
            evpl_continue(a);
            evpl_continue(b);
        }
        /* Ten idle passes of at most 10 ms each. */
        CHECK(now_ms() - t0 < 1000);
        evpl_destroy(a);
        evpl_destroy(b);
    }

    /* evpl_continue on an idle loop (wait_ms 10) returns promptly. */
    {
        struct evpl *evpl = test_loop();
        for (int i = 0; i < 3; i++) {
            uint64_t t0 = now_ms();
            evpl_continue(evpl);
            CHECK(now_ms() - t0 < 500);
        }
        evpl_destroy(evpl);
    }

    /* evpl_run on a default loop (wait_ms -1, blocked) stopped by evpl_stop
     * from another thread: returns within 1 s of the stop, not before it. */
    {
        static struct stop_ctx s;
        memset(&s, 0, sizeof(s));
        pthread_mutex_init(&s.mu, NULL);
        pthread_cond_init(&s.cv, NULL);
        s.evpl = evpl_create(NULL);
        CHECK(s.evpl != NULL);
        evpl_add_timer(s.evpl, &s.timer, running_timer_cb, 1000);
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, stopper_main, &s), 0);
        evpl_run(s.evpl);
        uint64_t t_ret = now_ms();
        CHECK_EQ(atomic_load(&s.stop_called), 1);
        CHECK_EQ(pthread_join(th, NULL), 0);
        CHECK_EQ(s.running, 1);
        CHECK(t_ret >= s.t_stop);
        CHECK(t_ret - s.t_stop < 1000);
        evpl_destroy(s.evpl);
        pthread_mutex_destroy(&s.mu);
        pthread_cond_destroy(&s.cv);
    }

    /* evpl_run stopped by a deferral callback on the loop's own thread. */
    {
        struct evpl *evpl = evpl_create(NULL);
        CHECK(evpl != NULL);
        struct evpl_deferral d;
        evpl_deferral_init(&d, stop_deferral_cb, &deferral_runs);
        evpl_defer(evpl, &d);
        evpl_run(evpl);
        CHECK_EQ(deferral_runs, 1);
        evpl_destroy(evpl);
    }

    /* evpl_run stopped by a timer callback (third firing) on the loop. */
    {
        struct evpl *evpl = evpl_create(NULL);
        CHECK(evpl != NULL);
        struct evpl_timer t;
        memset(&t, 0, sizeof(t));
        evpl_add_timer(evpl, &t, stop_timer_cb, 2000);
        uint64_t t0 = now_ms();
        evpl_run(evpl);
        CHECK_EQ(timer_runs, 3);
        CHECK(now_ms() - t0 < 5000);
        evpl_destroy(evpl);
    }

    /* evpl_get_hf_monotonic_time: never goes backwards, and agrees with
     * CLOCK_MONOTONIC (20 ms tolerance, also after the loop has run). */
    {
        struct evpl *evpl = test_loop();
        struct timespec prev, cur, a, b;
        evpl_get_hf_monotonic_time(evpl, &prev);
        for (int i = 0; i < 100000; i++) {
            evpl_get_hf_monotonic_time(evpl, &cur);
            CHECK(cur.tv_nsec >= 0 && cur.tv_nsec < 1000000000L);
            CHECK(ts_ns(&cur) >= ts_ns(&prev));
            prev = cur;
        }
        for (int round = 0; round < 2; round++) {
            clock_gettime(CLOCK_MONOTONIC, &a);
            evpl_get_hf_monotonic_time(evpl, &cur);
            clock_gettime(CLOCK_MONOTONIC, &b);
            CHECK(ts_ns(&cur) >= ts_ns(&a) - 20000000LL);
            CHECK(ts_ns(&cur) <= ts_ns(&b) + 20000000LL);
            /* Let ~50 ms pass through the loop, then compare again. */
            uint64_t end = now_ms() + 50;
            while (now_ms() < end) {
                evpl_continue(evpl);
            }
        }
        evpl_destroy(evpl);
    }

    /* Nothing since the double init was an error. */
    CHECK_EQ(atomic_load(&log_errors), errors_base);

    /* evpl_protocol_lookup: the 8 exact names, and anything else -> -1. */
    {
        static const struct { const char *name; enum evpl_protocol_id id; int stream; } protos[] = {
            { "DATAGRAM_SOCKET_UDP", EVPL_DATAGRAM_SOCKET_UDP, 0 },
            { "DATAGRAM_RDMACM_RC", EVPL_DATAGRAM_RDMACM_RC, 0 },
            { "DATAGRAM_RDMACM_UD", EVPL_DATAGRAM_RDMACM_UD, 0 },
            { "STREAM_SOCKET_TCP", EVPL_STREAM_SOCKET_TCP, 1 },
            { "STREAM_XLIO_TCP", EVPL_STREAM_XLIO_TCP, 1 },
            { "STREAM_IO_URING_TCP", EVPL_STREAM_IO_URING_TCP, 1 },
            { "STREAM_RDMACM_RC", EVPL_STREAM_RDMACM_RC, 1 },
            { "STREAM_SOCKET_TLS", EVPL_STREAM_SOCKET_TLS, 1 },
        };
        for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
            enum evpl_protocol_id id = EVPL_NUM_PROTO;
            CHECK_EQ(evpl_protocol_lookup(&id, protos[i].name), 0);
            CHECK_EQ(id, protos[i].id);
            CHECK_EQ((int) protos[i].id, (int) i);
            /* evpl_protocol_is_stream: 1 for the stream protocols only. */
            CHECK_EQ(evpl_protocol_is_stream(protos[i].id), protos[i].stream);
        }
        static const char *bad[] = {
            "", "UDP", "TCP", "stream_socket_tcp", "STREAM_SOCKET_TCP ",
            " STREAM_SOCKET_TCP", "STREAM_SOCKET_TCPX", "STREAM_SOCKET",
            "DATAGRAM_SOCKET_UDP\n", "no such protocol",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            enum evpl_protocol_id id = EVPL_STREAM_SOCKET_TCP;
            CHECK_EQ(evpl_protocol_lookup(&id, bad[i]), -1);
        }
        /* A NULL name is a bad argument: -1, no crash. */
        enum evpl_protocol_id id = EVPL_STREAM_SOCKET_TCP;
        CHECK_EQ(evpl_protocol_lookup(&id, NULL), -1);
        /* Out-of-range ids are not streams ("0 otherwise"). */
        CHECK_EQ(evpl_protocol_is_stream((enum evpl_protocol_id) 99), 0);
        CHECK_EQ(evpl_protocol_is_stream(EVPL_NUM_PROTO), 0);
    }

    /* evpl_protocol_available: kernel sockets yes, RDMA not without a device,
     * out-of-range ids 0. */
    {
        CHECK_EQ(evpl_protocol_available(EVPL_STREAM_SOCKET_TCP), 1);
        CHECK_EQ(evpl_protocol_available(EVPL_DATAGRAM_SOCKET_UDP), 1);
        if (!has_rdma_device()) {
            CHECK_EQ(evpl_protocol_available(EVPL_DATAGRAM_RDMACM_RC), 0);
            CHECK_EQ(evpl_protocol_available(EVPL_DATAGRAM_RDMACM_UD), 0);
            CHECK_EQ(evpl_protocol_available(EVPL_STREAM_RDMACM_RC), 0);
        }
        for (int i = 0; i < EVPL_NUM_PROTO; i++) {
            int v = evpl_protocol_available((enum evpl_protocol_id) i);
            CHECK(v == 0 || v == 1);
        }
        CHECK_EQ(evpl_protocol_available((enum evpl_protocol_id) 99), 0);
        CHECK_EQ(evpl_protocol_available(EVPL_NUM_PROTO), 0);
        CHECK_EQ(evpl_protocol_available((enum evpl_protocol_id) -1), 0);
    }

    return 0;
}
