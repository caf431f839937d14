/*
 * Idle loops do not spin: a loop thread with the default config (wait_ms
 * -1, poll_mode on) uses under 1% of a core over 2 s, also right after a
 * burst of work (doorbell rings) that makes a polling loop busy-poll for
 * spin_ns before it must go back to sleeping.
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define WINDOW_MS 2000

static uint64_t
process_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void
sleep_ms(int ms)
{
    struct timespec d = { ms / 1000, (long) (ms % 1000) * 1000000L };
    while (nanosleep(&d, &d) != 0 && errno == EINTR) {
    }
}

/* Sleeps through the measurement window (the measurement itself is the
 * point, so this sleep is not awaiting an event) and returns the process's
 * CPU time over it in microseconds. */
static uint64_t
cpu_over_window(void)
{
    uint64_t c0 = process_cpu_us();
    uint64_t t0 = now_us();
    sleep_ms(WINDOW_MS);
    uint64_t c1 = process_cpu_us();
    uint64_t t1 = now_us();
    fprintf(stderr, "cpu %llu us over %llu us\n", (unsigned long long) (c1 - c0),
            (unsigned long long) (t1 - t0));
    return c1 - c0;
}

struct idle_thread {
    struct evpl_doorbell bell;
    atomic_int           rings;
    int                  with_bell;
};

static void
bell_cb(struct evpl *evpl, struct evpl_doorbell *db)
{
    (void) evpl;
    struct idle_thread *it = (struct idle_thread *) db;   /* bell is first */
    atomic_fetch_add(&it->rings, 1);
}

static void *
idle_init(struct evpl *evpl, void *private_data)
{
    struct idle_thread *it = private_data;
    if (it->with_bell) {
        evpl_add_doorbell(evpl, &it->bell, bell_cb);
    }
    return it;
}

static void
idle_shutdown(struct evpl *evpl, void *private_data)
{
    struct idle_thread *it = private_data;
    if (it->with_bell) {
        evpl_remove_doorbell(evpl, &it->bell);
    }
}

int
main(void)
{
    alarm(50);

    /* Default config, nothing to do: < 1% of a core. */
    {
        static struct idle_thread it;
        memset(&it, 0, sizeof(it));
        struct evpl_thread *t = evpl_thread_create(NULL, idle_init, idle_shutdown, &it);
        CHECK(t != NULL);
        sleep_ms(100);   /* past any start-up work and spin window */
        uint64_t used = cpu_over_window();
        CHECK(used < WINDOW_MS * 1000 / 100);
        evpl_thread_destroy(t);
    }

    /* poll_mode on, wait_ms -1, default spin_ns: after a burst of doorbell
     * rings (work arriving faster than spin_ns) it goes idle again. */
    {
        static struct idle_thread it;
        memset(&it, 0, sizeof(it));
        it.with_bell = 1;
        struct evpl_thread_config *cfg = evpl_thread_config_init();
        CHECK(cfg != NULL);
        evpl_thread_config_set_poll_mode(cfg, 1);
        evpl_thread_config_set_wait_ms(cfg, -1);
        struct evpl_thread *t = evpl_thread_create(cfg, idle_init, idle_shutdown, &it);
        evpl_thread_config_release(cfg);
        CHECK(t != NULL);
        for (int i = 0; i < 200; i++) {
            evpl_ring_doorbell(&it.bell);
            struct timespec d = { 0, 100 * 1000 };
            nanosleep(&d, NULL);
        }
        uint64_t end = now_ms() + 5000;
        while (atomic_load(&it.rings) == 0 && now_ms() < end) {
            sleep_ms(1);
        }
        CHECK(atomic_load(&it.rings) >= 1);
        sleep_ms(100);
        uint64_t used = cpu_over_window();
        CHECK(used < WINDOW_MS * 1000 / 100);
        evpl_thread_destroy(t);
    }
    return 0;
}
