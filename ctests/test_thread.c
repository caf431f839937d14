/*
 * Threads: evpl_thread_create with and without a config returns once init
 * has run (on the new thread); init's return value reaches shutdown;
 * evpl_thread_destroy runs shutdown and joins; a config may be released
 * right after create; a pool of 3 runs init and shutdown 3 times on 3
 * threads; 100 create/destroy cycles leak no fds and little memory.
 */
#include "harness.h"
#include "net.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <unistd.h>

struct probe {
    atomic_int   init_ran;
    atomic_int   shutdown_ran;
    pthread_t    init_thread;
    pthread_t    shutdown_thread;
    struct evpl *init_evpl;
    struct evpl *shutdown_evpl;
    void        *shutdown_arg;
    int          init_arg_ok;
    int          token;          /* init returns &token */
    /* doorbell on the thread's loop, rung from the main thread */
    struct evpl_doorbell bell;
    int                  use_bell;
    pthread_mutex_t      mu;
    pthread_cond_t       cv;
    int                  bell_rang;
    pthread_t            bell_thread;
};

static struct probe *bell_owner;

static void
probe_bell_cb(struct evpl *evpl, struct evpl_doorbell *db)
{
    (void) evpl;
    (void) db;
    struct probe *p = bell_owner;
    pthread_mutex_lock(&p->mu);
    p->bell_rang++;
    p->bell_thread = pthread_self();
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void *
probe_init(struct evpl *evpl, void *private_data)
{
    struct probe *p = private_data;
    p->init_arg_ok = 1;
    p->init_thread = pthread_self();
    p->init_evpl = evpl;
    if (p->use_bell) {
        bell_owner = p;
        evpl_add_doorbell(evpl, &p->bell, probe_bell_cb);
    }
    atomic_store(&p->init_ran, 1);
    return &p->token;
}

static void
probe_shutdown(struct evpl *evpl, void *private_data)
{
    /* private_data is what init returned: &p->token */
    struct probe *p = (struct probe *) ((char *) private_data - offsetof(struct probe, token));
    p->shutdown_arg = private_data;
    p->shutdown_thread = pthread_self();
    p->shutdown_evpl = evpl;
    if (p->use_bell) {
        evpl_remove_doorbell(evpl, &p->bell);
    }
    atomic_store(&p->shutdown_ran, 1);
}

static void
probe_reset(struct probe *p, int use_bell)
{
    memset(p, 0, sizeof(*p));
    p->use_bell = use_bell;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
}

/* Create, check init ran on a new thread before create returned, optionally
 * ring a doorbell on the thread's loop, destroy, check shutdown. */
static void
probe_thread(struct evpl_thread_config *cfg, int release_cfg, int use_bell)
{
    static struct probe p;
    probe_reset(&p, use_bell);
    struct evpl_thread *t = evpl_thread_create(cfg, probe_init, probe_shutdown, &p);
    if (release_cfg) {
        evpl_thread_config_release(cfg);
    }
    CHECK(t != NULL);
    CHECK_EQ(atomic_load(&p.init_ran), 1);
    CHECK(p.init_arg_ok);
    CHECK(p.init_evpl != NULL);
    CHECK(!pthread_equal(p.init_thread, pthread_self()));
    CHECK_EQ(atomic_load(&p.shutdown_ran), 0);

    if (use_bell) {
        /* The thread's loop is alive (config already released): a ring from
         * here runs the callback on that thread. */
        evpl_ring_doorbell(&p.bell);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        pthread_mutex_lock(&p.mu);
        while (p.bell_rang == 0) {
            if (pthread_cond_timedwait(&p.cv, &p.mu, &until) != 0) {
                break;
            }
        }
        CHECK(p.bell_rang >= 1);
        CHECK(pthread_equal(p.bell_thread, p.init_thread));
        pthread_mutex_unlock(&p.mu);
    }

    evpl_thread_destroy(t);
    CHECK_EQ(atomic_load(&p.shutdown_ran), 1);
    CHECK(p.shutdown_arg == &p.token);
    CHECK(pthread_equal(p.shutdown_thread, p.init_thread));
    CHECK(p.shutdown_evpl == p.init_evpl);
}

/* ---- pool --------------------------------------------------------------- */

#define POOL 3

static atomic_int pool_inits;
static atomic_int pool_shutdowns;
static pthread_t pool_threads[POOL];
static int pool_slot_shutdowns[POOL];
static int pool_slot_ids[POOL];
static int pool_bad_arg;
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static int pool_token;

static void *
pool_init(struct evpl *evpl, void *private_data)
{
    CHECK(evpl != NULL);
    if (private_data != &pool_token) {
        pool_bad_arg = 1;
    }
    int slot = atomic_fetch_add(&pool_inits, 1);
    CHECK(slot < POOL);
    pool_threads[slot] = pthread_self();
    pool_slot_ids[slot] = slot;
    return &pool_slot_ids[slot];
}

static void
pool_shutdown(struct evpl *evpl, void *private_data)
{
    (void) evpl;
    int *slot = private_data;
    CHECK(slot >= &pool_slot_ids[0] && slot < &pool_slot_ids[POOL]);
    pthread_mutex_lock(&pool_mu);
    pool_slot_shutdowns[*slot]++;
    pthread_mutex_unlock(&pool_mu);
    CHECK(pthread_equal(pool_threads[*slot], pthread_self()));
    atomic_fetch_add(&pool_shutdowns, 1);
}

/* ---- create/destroy cycles (open_fds, rss_bytes: net.h) ---------------- */

static atomic_int cycle_inits, cycle_shutdowns;

static void *
cycle_init(struct evpl *evpl, void *private_data)
{
    (void) evpl;
    atomic_fetch_add(&cycle_inits, 1);
    return private_data;
}

static void
cycle_shutdown(struct evpl *evpl, void *private_data)
{
    (void) evpl;
    (void) private_data;
    atomic_fetch_add(&cycle_shutdowns, 1);
}

int
main(void)
{
    alarm(55);

    /* Without a config. */
    probe_thread(NULL, 0, 0);

    /* With a config released right after create; the loop still runs. */
    {
        struct evpl_thread_config *cfg = evpl_thread_config_init();
        CHECK(cfg != NULL);
        evpl_thread_config_set_wait_ms(cfg, 10);
        probe_thread(cfg, 1, 1);
    }

    /* With a default-config thread and a doorbell (wait_ms -1 loop). */
    probe_thread(NULL, 0, 1);

    /* A config reused for two threads, then released. */
    {
        struct evpl_thread_config *cfg = evpl_thread_config_init();
        CHECK(cfg != NULL);
        evpl_thread_config_set_poll_mode(cfg, 0);
        probe_thread(cfg, 0, 0);
        probe_thread(cfg, 1, 1);
    }

    /* A pool of 3: three inits on three distinct threads before create
     * returns, three shutdowns each with its own init's value. */
    {
        struct evpl_threadpool *pool = evpl_threadpool_create(NULL, POOL, pool_init,
                                                              pool_shutdown, &pool_token);
        CHECK(pool != NULL);
        CHECK_EQ(atomic_load(&pool_inits), POOL);
        CHECK_EQ(pool_bad_arg, 0);
        for (int i = 0; i < POOL; i++) {
            CHECK(!pthread_equal(pool_threads[i], pthread_self()));
            for (int k = 0; k < i; k++) {
                CHECK(!pthread_equal(pool_threads[i], pool_threads[k]));
            }
        }
        CHECK_EQ(atomic_load(&pool_shutdowns), 0);
        evpl_threadpool_destroy(pool);
        CHECK_EQ(atomic_load(&pool_shutdowns), POOL);
        for (int i = 0; i < POOL; i++) {
            CHECK_EQ(pool_slot_shutdowns[i], 1);
        }
    }

    /* 100 create/destroy cycles (after a warm-up): open fds grow by at most
     * 2, resident memory by less than 20 MiB. */
    {
        for (int i = 0; i < 3; i++) {
            struct evpl_thread *t = evpl_thread_create(NULL, cycle_init, cycle_shutdown, NULL);
            CHECK(t != NULL);
            evpl_thread_destroy(t);
        }
        int fds0 = open_fds();
        long rss0 = rss_bytes();
        atomic_store(&cycle_inits, 0);
        atomic_store(&cycle_shutdowns, 0);
        for (int i = 0; i < 100; i++) {
            struct evpl_thread *t = evpl_thread_create(NULL, cycle_init, cycle_shutdown, &fds0);
            CHECK(t != NULL);
            CHECK_EQ(atomic_load(&cycle_inits), i + 1);
            evpl_thread_destroy(t);
            CHECK_EQ(atomic_load(&cycle_shutdowns), i + 1);
        }
        int fds1 = open_fds();
        long rss1 = rss_bytes();
        fprintf(stderr, "100 cycles: fds %d -> %d, rss %ld -> %ld KiB\n",
                fds0, fds1, rss0 / 1024, rss1 / 1024);
        CHECK(fds1 - fds0 <= 2);
        CHECK(rss1 - rss0 < 20L * 1024 * 1024);
    }
    return 0;
}
