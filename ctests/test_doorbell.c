/*
 * Doorbells: rung from another thread they wake a loop blocked with
 * wait_ms -1 (in evpl_continue and in evpl_run), the callback runs on the
 * loop's thread, rings coalesce; evpl_doorbell_fd is pollable and readable
 * after a ring; two doorbells on one loop stay apart; remove then destroy.
 */
#include "harness.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <unistd.h>

#define CONTAINER_OF(ptr, type, member) ((type *) ((char *) (ptr) - offsetof(type, member)))

struct bell {
    struct evpl_doorbell db;
    struct evpl         *evpl;
    struct evpl_timer    ready_timer;
    atomic_int           count;
    atomic_int           wrong_thread;
    pthread_t            loop_thread;
    uint64_t             first_cb_us;
    int                  stop_on_ring;
    int                  nrings;
    uint64_t             ring0_us;
    /* loop -> ringer: the loop is running */
    pthread_mutex_t      mu;
    pthread_cond_t       cv;
    int                  ready;
};

static void
bell_cb(struct evpl *evpl, struct evpl_doorbell *db)
{
    struct bell *b = CONTAINER_OF(db, struct bell, db);
    CHECK(evpl == b->evpl);
    if (!pthread_equal(pthread_self(), b->loop_thread)) {
        atomic_store(&b->wrong_thread, 1);
    }
    if (atomic_fetch_add(&b->count, 1) == 0) {
        b->first_cb_us = now_us();
    }
    if (b->stop_on_ring) {
        evpl_stop(evpl);
    }
}

/* One-shot: the loop is inside evpl_run/evpl_continue; after this it has
 * nothing to do and blocks. */
static void
ready_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    struct bell *b = CONTAINER_OF(timer, struct bell, ready_timer);
    evpl_remove_timer(evpl, timer);
    pthread_mutex_lock(&b->mu);
    b->ready = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void *
ringer_main(void *arg)
{
    struct bell *b = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&b->mu);
    while (!b->ready) {
        if (pthread_cond_timedwait(&b->cv, &b->mu, &until) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    /* The loop's blocked state cannot be observed; give it time to fall
     * asleep in its untimed wait. */
    struct timespec d = { 0, 100 * 1000 * 1000 };
    nanosleep(&d, NULL);
    b->ring0_us = now_us();
    for (int i = 0; i < b->nrings; i++) {
        evpl_ring_doorbell(&b->db);
    }
    return NULL;
}

static void
bell_setup(struct bell *b, struct evpl *evpl, int nrings, int stop_on_ring)
{
    memset(b, 0, sizeof(*b));
    b->evpl = evpl;
    b->loop_thread = pthread_self();
    b->nrings = nrings;
    b->stop_on_ring = stop_on_ring;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    evpl_add_doorbell(evpl, &b->db, bell_cb);
    evpl_add_timer(evpl, &b->ready_timer, ready_cb, 1000);
}

static int drain_ticks;

static void
drain_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    (void) evpl;
    (void) timer;
    drain_ticks++;
}

/* Lets a wait_ms -1 loop handle anything still pending, bounded by a timer. */
static void
drain(struct evpl *evpl)
{
    struct evpl_timer t;
    memset(&t, 0, sizeof(t));
    drain_ticks = 0;
    evpl_add_timer(evpl, &t, drain_cb, 5000);
    uint64_t end = now_ms() + 5000;
    while (drain_ticks < 2 && now_ms() < end) {
        evpl_continue(evpl);
    }
    CHECK(drain_ticks >= 2);
    evpl_remove_timer(evpl, &t);
}

/* ---- two doorbells on one loop ----------------------------------------- */

struct twin {
    struct evpl_doorbell a, b;
    int                  a_count, b_count;
    int                  stray;
};

static struct twin twin;

static void
twin_cb(struct evpl *evpl, struct evpl_doorbell *db)
{
    (void) evpl;
    if (db == &twin.a) {
        twin.a_count++;
    } else if (db == &twin.b) {
        twin.b_count++;
    } else {
        twin.stray++;
    }
}

static void *
ring_b_main(void *arg)
{
    (void) arg;
    evpl_ring_doorbell(&twin.b);
    return NULL;
}

int
main(void)
{
    alarm(50);

    /* Five rings from another thread while the loop is blocked in
     * evpl_continue (wait_ms -1): woken within 1 s, callback on the loop's
     * thread, 1..5 callbacks in all. */
    {
        struct evpl *evpl = evpl_create(NULL);
        CHECK(evpl != NULL);
        static struct bell b;
        bell_setup(&b, evpl, 5, 0);
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, ringer_main, &b), 0);
        uint64_t end = now_ms() + 10000;
        while (atomic_load(&b.count) == 0) {
            CHECK(now_ms() < end);
            evpl_continue(evpl);
        }
        CHECK_EQ(pthread_join(th, NULL), 0);
        drain(evpl);
        int n = atomic_load(&b.count);
        fprintf(stderr, "5 rings -> %d callbacks, first after %lld us\n", n,
                (long long) (b.first_cb_us - b.ring0_us));
        CHECK(n >= 1 && n <= 5);
        CHECK_EQ(atomic_load(&b.wrong_thread), 0);
        CHECK(b.first_cb_us >= b.ring0_us);
        CHECK(b.first_cb_us - b.ring0_us < 1000000);
        evpl_remove_doorbell(evpl, &b.db);
        evpl_destroy(evpl);
    }

    /* The same with the loop blocked in evpl_run; the callback stops it. */
    {
        struct evpl *evpl = evpl_create(NULL);
        CHECK(evpl != NULL);
        static struct bell b;
        bell_setup(&b, evpl, 1, 1);
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, ringer_main, &b), 0);
        evpl_run(evpl);
        uint64_t ret_us = now_us();
        CHECK_EQ(pthread_join(th, NULL), 0);
        CHECK_EQ(atomic_load(&b.count), 1);
        CHECK_EQ(atomic_load(&b.wrong_thread), 0);
        CHECK(ret_us - b.ring0_us < 1000000);
        evpl_remove_doorbell(evpl, &b.db);
        evpl_destroy(evpl);
    }

    /* evpl_doorbell_fd: a pollable fd, readable after a ring and before the
     * loop has run; the loop then runs the callback once. */
    {
        struct evpl *evpl = test_loop();
        static struct bell b;
        bell_setup(&b, evpl, 0, 0);
        evpl_remove_timer(evpl, &b.ready_timer);
        int fd = evpl_doorbell_fd(&b.db);
        CHECK(fd >= 0);
        evpl_ring_doorbell(&b.db);   /* the owning thread may ring too */
        struct pollfd p = { .fd = fd, .events = POLLIN };
        CHECK_EQ(poll(&p, 1, 1000), 1);
        CHECK(p.revents & POLLIN);
        uint64_t end = now_ms() + 5000;
        while (atomic_load(&b.count) == 0 && now_ms() < end) {
            evpl_continue(evpl);
        }
        for (int i = 0; i < 3; i++) {
            evpl_continue(evpl);
        }
        CHECK_EQ(atomic_load(&b.count), 1);
        CHECK_EQ(atomic_load(&b.wrong_thread), 0);
        evpl_remove_doorbell(evpl, &b.db);
        evpl_destroy(evpl);
    }

    /* Two doorbells on one loop: ringing one runs only its callback, with
     * its own pointer. */
    {
        struct evpl *evpl = test_loop();
        memset(&twin, 0, sizeof(twin));
        evpl_add_doorbell(evpl, &twin.a, twin_cb);
        evpl_add_doorbell(evpl, &twin.b, twin_cb);
        CHECK(evpl_doorbell_fd(&twin.a) >= 0);
        CHECK(evpl_doorbell_fd(&twin.b) >= 0);
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, ring_b_main, NULL), 0);
        CHECK_EQ(pthread_join(th, NULL), 0);
        uint64_t end = now_ms() + 5000;
        while (twin.b_count == 0 && now_ms() < end) {
            evpl_continue(evpl);
        }
        evpl_continue(evpl);
        CHECK_EQ(twin.b_count, 1);
        CHECK_EQ(twin.a_count, 0);
        evpl_ring_doorbell(&twin.a);
        end = now_ms() + 5000;
        while (twin.a_count == 0 && now_ms() < end) {
            evpl_continue(evpl);
        }
        evpl_continue(evpl);
        CHECK_EQ(twin.a_count, 1);
        CHECK_EQ(twin.b_count, 1);
        CHECK_EQ(twin.stray, 0);
        /* Remove both, then destroy. */
        evpl_remove_doorbell(evpl, &twin.a);
        evpl_remove_doorbell(evpl, &twin.b);
        evpl_continue(evpl);
        evpl_destroy(evpl);
    }
    return 0;
}
