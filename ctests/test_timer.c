/*
 * Timers: periodic firing at the interval (and the public deadline field
 * advancing), the one-shot pattern (remove inside the callback) beside a
 * timer that keeps going, removing inactive timers, a 100 us timer under
 * wait_ms -1 and 1000, 10 000 timers with half removed, and adding/removing
 * other timers from a timer callback.
 */
#include "harness.h"
#include "net.h"

#include <stddef.h>
#include <unistd.h>

#define CONTAINER_OF(ptr, type, member) ((type *) ((char *) (ptr) - offsetof(type, member)))

static int64_t
ts_ns(const struct timespec *ts)
{
    return (int64_t) ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

/* ---- periodic ---------------------------------------------------------- */

#define PERIODIC_FIRES 21   /* 20 intervals */

struct periodic {
    struct evpl_timer timer;
    int               fired;
    uint64_t          at_us[PERIODIC_FIRES];
    int64_t           deadline_ns[PERIODIC_FIRES];
    int               done;
};

static void
periodic_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    struct periodic *p = CONTAINER_OF(timer, struct periodic, timer);
    if (p->fired < PERIODIC_FIRES) {
        p->at_us[p->fired] = now_us();
        p->deadline_ns[p->fired] = ts_ns(&timer->deadline);
    }
    if (++p->fired == PERIODIC_FIRES) {
        evpl_remove_timer(evpl, timer);
        p->done = 1;
    }
}

/* ---- one-shot beside a repeating timer ---------------------------------- */

struct pair {
    struct evpl_timer once, keep;
    int               once_fired, keep_fired;
    int               done;
};

static void
once_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    struct pair *p = CONTAINER_OF(timer, struct pair, once);
    p->once_fired++;
    evpl_remove_timer(evpl, timer);
}

static void
keep_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    struct pair *p = CONTAINER_OF(timer, struct pair, keep);
    (void) evpl;
    if (++p->keep_fired >= 10) {
        p->done = 1;
    }
}

/* ---- fast timer --------------------------------------------------------- */

static int fast_fired;

static void
fast_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    (void) evpl;
    (void) timer;
    fast_fired++;
}

/* A 100 us timer on a loop with the given wait_ms: 200 firings well within
 * a second (a loop that slept its full wait_ms, or even 5 ms per pass,
 * fails), and never more firings than elapsed time allows. */
static void
fast_timer(int wait_ms)
{
    struct evpl *evpl = loop_with_wait(wait_ms);
    struct evpl_timer t;
    memset(&t, 0, sizeof(t));
    fast_fired = 0;
    uint64_t t0 = now_us();
    evpl_add_timer(evpl, &t, fast_cb, 100);
    uint64_t deadline = now_ms() + 1000;
    while (fast_fired < 200 && now_ms() < deadline) {
        evpl_continue(evpl);
    }
    uint64_t elapsed = now_us() - t0;
    fprintf(stderr, "wait_ms %d: 100 us timer fired %d times in %llu us\n",
            wait_ms, fast_fired, (unsigned long long) elapsed);
    CHECK(fast_fired >= 200);
    CHECK((uint64_t) fast_fired <= elapsed / 100 + 2);
    evpl_remove_timer(evpl, &t);
    evpl_destroy(evpl);
}

/* ---- 10 000 timers ------------------------------------------------------ */

#define NTIMERS 10000

struct many {
    struct evpl_timer timer;
    uint64_t          interval_us;
    int               fired;
    int               removed;
    int               fired_at_removal;
};

static struct many many[NTIMERS];
static int many_fired_after_removal;

static void
many_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    (void) evpl;
    struct many *m = CONTAINER_OF(timer, struct many, timer);
    if (m->removed) {
        many_fired_after_removal++;
    }
    m->fired++;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t) (rng_state >> 32);
}

static void
run_for_ms(struct evpl *evpl, uint64_t ms)
{
    uint64_t end = now_ms() + ms;
    while (now_ms() < end) {
        evpl_continue(evpl);
    }
}

/* ---- callbacks adding and removing other timers ------------------------- */

struct juggle {
    struct evpl_timer x, y, z;
    int               x_fired, y_fired, z_fired;
    int               x_removed, x_readded;
};

static void juggle_y_cb(struct evpl *evpl, struct evpl_timer *timer);

/* X (2 ms): on its first firing removes Z and adds Y; removes itself on
 * its third and any later firing. */
static void
juggle_x_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    struct juggle *j = CONTAINER_OF(timer, struct juggle, x);
    j->x_fired++;
    if (j->x_fired == 1) {
        evpl_remove_timer(evpl, &j->z);
        evpl_add_timer(evpl, &j->y, juggle_y_cb, 3000);
    }
    if (j->x_fired >= 3) {
        evpl_remove_timer(evpl, timer);
        j->x_removed = 1;
    }
}

/* Y (3 ms): once X has removed itself, adds X back (it fires once more and
 * removes itself again); removes itself on its tenth firing. */
static void
juggle_y_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    struct juggle *j = CONTAINER_OF(timer, struct juggle, y);
    j->y_fired++;
    if (j->x_removed && !j->x_readded) {
        j->x_readded = 1;
        evpl_add_timer(evpl, &j->x, juggle_x_cb, 2000);
    }
    if (j->y_fired == 10) {
        evpl_remove_timer(evpl, timer);
    }
}

static void
juggle_z_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    (void) evpl;
    struct juggle *j = CONTAINER_OF(timer, struct juggle, z);
    j->z_fired++;
}

int
main(void)
{
    alarm(55);

    /* A 10 ms timer: 20 intervals average 10 ms within 20%, the callback and
     * interval fields are filled in, and deadline advances by about one
     * interval per firing. */
    {
        struct evpl *evpl = test_loop();
        static struct periodic p;
        memset(&p, 0, sizeof(p));
        evpl_add_timer(evpl, &p.timer, periodic_cb, 10000);
        CHECK(p.timer.callback == periodic_cb);
        CHECK_EQ(p.timer.interval, 10000);
        CHECK(run_until(evpl, &p.done, 5000));
        CHECK_EQ(p.fired, PERIODIC_FIRES);
        uint64_t span = p.at_us[PERIODIC_FIRES - 1] - p.at_us[0];
        fprintf(stderr, "20 intervals of 10 ms took %llu us\n", (unsigned long long) span);
        CHECK(span >= 20 * 8000);
        CHECK(span <= 20 * 12000);
        for (int i = 1; i < PERIODIC_FIRES; i++) {
            CHECK(p.deadline_ns[i] > p.deadline_ns[i - 1]);
            CHECK(p.at_us[i] >= p.at_us[i - 1]);
        }
        int64_t dspan = p.deadline_ns[PERIODIC_FIRES - 1] - p.deadline_ns[0];
        CHECK(dspan >= 20 * 8000000LL);
        CHECK(dspan <= 20 * 12000000LL);
        /* Nothing fires after removal. */
        run_for_ms(evpl, 30);
        CHECK_EQ(p.fired, PERIODIC_FIRES);
        evpl_destroy(evpl);
    }

    /* One-shot (removes itself in its callback) fires exactly once while
     * another timer keeps firing; removing inactive timers is a no-op. */
    {
        struct evpl *evpl = test_loop();
        static struct pair p;
        memset(&p, 0, sizeof(p));
        evpl_add_timer(evpl, &p.once, once_cb, 5000);
        evpl_add_timer(evpl, &p.keep, keep_cb, 5000);
        CHECK(run_until(evpl, &p.done, 5000));
        CHECK_EQ(p.once_fired, 1);
        /* Already removed: removing again changes nothing. */
        evpl_remove_timer(evpl, &p.once);
        /* Never added. */
        struct evpl_timer never;
        memset(&never, 0, sizeof(never));
        evpl_remove_timer(evpl, &never);
        int keep_before = p.keep_fired;
        run_for_ms(evpl, 30);
        CHECK_EQ(p.once_fired, 1);
        CHECK(p.keep_fired > keep_before);
        evpl_remove_timer(evpl, &p.keep);
        evpl_remove_timer(evpl, &p.keep);
        keep_before = p.keep_fired;
        run_for_ms(evpl, 20);
        CHECK_EQ(p.keep_fired, keep_before);
        evpl_destroy(evpl);
    }

    /* A 100 us timer with wait_ms -1 and with wait_ms 1000. */
    fast_timer(-1);
    fast_timer(1000);

    /* 10 000 timers, 1..50 ms: run 100 ms, remove half in random order, run
     * 300 ms more.  Removed ones never fire again; the rest each fire at
     * least once after that and never more than elapsed / interval + 2. */
    {
        struct evpl *evpl = test_loop();
        static int order[NTIMERS];
        memset(many, 0, sizeof(many));
        uint64_t t0 = now_us();
        for (int i = 0; i < NTIMERS; i++) {
            many[i].interval_us = (uint64_t) (1 + rng() % 50) * 1000;
            evpl_add_timer(evpl, &many[i].timer, many_cb, many[i].interval_us);
            order[i] = i;
        }
        for (int i = NTIMERS - 1; i > 0; i--) {
            int k = (int) (rng() % (uint32_t) (i + 1));
            int tmp = order[i];
            order[i] = order[k];
            order[k] = tmp;
        }
        run_for_ms(evpl, 100);
        for (int i = 0; i < NTIMERS / 2; i++) {
            struct many *m = &many[order[i]];
            evpl_remove_timer(evpl, &m->timer);
            m->removed = 1;
            m->fired_at_removal = m->fired;
        }
        int fired_mid[NTIMERS];
        for (int i = 0; i < NTIMERS; i++) {
            fired_mid[i] = many[i].fired;
        }
        run_for_ms(evpl, 300);
        uint64_t elapsed = now_us() - t0;
        fprintf(stderr, "10000 timers: %llu us elapsed\n", (unsigned long long) elapsed);
        CHECK_EQ(many_fired_after_removal, 0);
        for (int i = 0; i < NTIMERS; i++) {
            struct many *m = &many[i];
            if (m->removed) {
                CHECK_EQ(m->fired, m->fired_at_removal);
                continue;
            }
            if (m->fired <= fired_mid[i] ||
                (uint64_t) m->fired > elapsed / m->interval_us + 2) {
                fprintf(stderr, "timer %d (%llu us): %d firings, %d before removal phase\n", i,
                        (unsigned long long) m->interval_us, m->fired, fired_mid[i]);
            }
            CHECK(m->fired > fired_mid[i]);
            CHECK((uint64_t) m->fired <= elapsed / m->interval_us + 2);
        }
        for (int i = 0; i < NTIMERS; i++) {
            if (!many[i].removed) {
                evpl_remove_timer(evpl, &many[i].timer);
            }
        }
        evpl_destroy(evpl);
    }

    /* Callbacks adding and removing other timers (and re-adding a timer
     * that removed itself). */
    {
        struct evpl *evpl = test_loop();
        static struct juggle j;
        memset(&j, 0, sizeof(j));
        uint64_t t0 = now_ms();
        evpl_add_timer(evpl, &j.z, juggle_z_cb, 200000);
        evpl_add_timer(evpl, &j.x, juggle_x_cb, 2000);
        uint64_t deadline = t0 + 5000;
        while ((j.y_fired < 10 || j.x_fired < 4 || now_ms() - t0 < 300) && now_ms() < deadline) {
            evpl_continue(evpl);
        }
        CHECK_EQ(j.z_fired, 0);
        CHECK_EQ(j.x_readded, 1);
        CHECK_EQ(j.x_fired, 4);
        CHECK_EQ(j.y_fired, 10);
        evpl_destroy(evpl);
    }
    return 0;
}
