/*
 * Deferrals: evpl_deferral_init on garbage memory, coalescing of repeated
 * arming, arming order, arming from inside a deferral / a timer / a doorbell
 * callback (runs in that same evpl_continue), evpl_remove_deferral disarming
 * (also from inside another deferral), and removing an unarmed deferral.
 */
#include "harness.h"

#include <stddef.h>
#include <unistd.h>

#define CONTAINER_OF(ptr, type, member) ((type *) ((char *) (ptr) - offsetof(type, member)))

/* Which deferral ran, in order, and how often each ran. */
static char ran[64];
static int nran;
static int pass;            /* incremented before each evpl_continue */

struct tagged {
    struct evpl_deferral d;
    char                 tag;
    int                  runs;
    int                  ran_in_pass;
};

static void
record_cb(struct evpl *evpl, void *private_data)
{
    (void) evpl;
    struct tagged *t = private_data;
    t->runs++;
    t->ran_in_pass = pass;
    if (nran < (int) sizeof(ran) - 1) {
        ran[nran++] = t->tag;
        ran[nran] = '\0';
    }
}

static void
tagged_init(struct tagged *t, char tag)
{
    memset(t, 0, sizeof(*t));
    t->tag = tag;
    evpl_deferral_init(&t->d, record_cb, t);
}

static void
reset_record(void)
{
    nran = 0;
    ran[0] = '\0';
}

static void
one_pass(struct evpl *evpl)
{
    pass++;
    evpl_continue(evpl);
}

/* ---- armed from inside callbacks ---------------------------------------- */

static struct tagged inner, victim;

/* Arms `inner` from inside a deferral callback. */
static void
arming_cb(struct evpl *evpl, void *private_data)
{
    record_cb(evpl, private_data);
    evpl_defer(evpl, &inner.d);
}

/* Disarms `victim` (armed after this one) from inside a deferral callback. */
static void
disarming_cb(struct evpl *evpl, void *private_data)
{
    record_cb(evpl, private_data);
    evpl_remove_deferral(evpl, &victim.d);
}

struct timer_arm {
    struct evpl_timer timer;
    struct tagged    *target;
    int               fired_in_pass;
};

static void
timer_arm_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    struct timer_arm *ta = CONTAINER_OF(timer, struct timer_arm, timer);
    ta->fired_in_pass = pass;
    evpl_remove_timer(evpl, timer);
    evpl_defer(evpl, &ta->target->d);
}

struct bell_arm {
    struct evpl_doorbell bell;
    struct tagged       *target;
    int                  rang_in_pass;
};

static struct bell_arm bell_arm;

static void
bell_arm_cb(struct evpl *evpl, struct evpl_doorbell *bell)
{
    CHECK(bell == &bell_arm.bell);
    bell_arm.rang_in_pass = pass;
    evpl_defer(evpl, &bell_arm.target->d);
}

int
main(void)
{
    alarm(50);
    struct evpl *evpl = test_loop();

    /* Init on garbage (0xff) memory fully initialises the struct; one arm,
     * one pass, one run. */
    {
        struct tagged g;
        memset(&g, 0xff, sizeof(g));
        g.tag = 'g';
        g.runs = 0;
        reset_record();
        evpl_deferral_init(&g.d, record_cb, &g);
        CHECK(g.d.callback == record_cb);
        CHECK(g.d.private_data == &g);
        evpl_defer(evpl, &g.d);
        CHECK_EQ(g.runs, 0);   /* never re-entrant from evpl_defer */
        one_pass(evpl);
        CHECK_EQ(g.runs, 1);
        one_pass(evpl);
        CHECK_EQ(g.runs, 1);
    }

    /* Five arms before it runs: exactly one run, in the next pass. */
    {
        struct tagged f;
        tagged_init(&f, 'f');
        for (int i = 0; i < 5; i++) {
            evpl_defer(evpl, &f.d);
        }
        one_pass(evpl);
        CHECK_EQ(f.runs, 1);
        one_pass(evpl);
        one_pass(evpl);
        CHECK_EQ(f.runs, 1);
    }

    /* Arming order decides running order: armed B, A, C -> run B, A, C;
     * then C, B, A -> C, B, A. */
    {
        struct tagged a, b, c;
        tagged_init(&a, 'A');
        tagged_init(&b, 'B');
        tagged_init(&c, 'C');
        reset_record();
        evpl_defer(evpl, &b.d);
        evpl_defer(evpl, &a.d);
        evpl_defer(evpl, &c.d);
        one_pass(evpl);
        CHECK(strcmp(ran, "BAC") == 0);

        reset_record();
        evpl_defer(evpl, &c.d);
        evpl_defer(evpl, &b.d);
        evpl_defer(evpl, &a.d);
        one_pass(evpl);
        CHECK(strcmp(ran, "CBA") == 0);
    }

    /* Armed from inside a deferral callback: runs in the same pass. */
    {
        struct tagged outer;
        memset(&outer, 0, sizeof(outer));
        outer.tag = 'o';
        evpl_deferral_init(&outer.d, arming_cb, &outer);
        tagged_init(&inner, 'i');
        reset_record();
        evpl_defer(evpl, &outer.d);
        one_pass(evpl);
        CHECK(strcmp(ran, "oi") == 0);
        CHECK_EQ(inner.runs, 1);
        CHECK_EQ(inner.ran_in_pass, outer.ran_in_pass);
    }

    /* evpl_remove_deferral disarms: the callback never runs. */
    {
        struct tagged e, f, g;
        tagged_init(&e, 'e');
        tagged_init(&f, 'f');
        tagged_init(&g, 'g');
        reset_record();
        evpl_defer(evpl, &e.d);
        evpl_remove_deferral(evpl, &e.d);
        evpl_defer(evpl, &f.d);
        evpl_defer(evpl, &g.d);
        evpl_remove_deferral(evpl, &f.d);
        for (int i = 0; i < 3; i++) {
            one_pass(evpl);
        }
        CHECK_EQ(e.runs, 0);
        CHECK_EQ(f.runs, 0);
        CHECK_EQ(g.runs, 1);
        CHECK(strcmp(ran, "g") == 0);

        /* Removing an unarmed (or already run) deferral changes nothing. */
        evpl_remove_deferral(evpl, &e.d);
        evpl_remove_deferral(evpl, &g.d);
        /* Removed, then armed again: runs once. */
        evpl_defer(evpl, &e.d);
        one_pass(evpl);
        CHECK_EQ(e.runs, 1);
    }

    /* Disarmed from inside an earlier deferral of the same pass. */
    {
        struct tagged killer;
        memset(&killer, 0, sizeof(killer));
        killer.tag = 'k';
        evpl_deferral_init(&killer.d, disarming_cb, &killer);
        tagged_init(&victim, 'v');
        reset_record();
        evpl_defer(evpl, &killer.d);
        evpl_defer(evpl, &victim.d);
        for (int i = 0; i < 3; i++) {
            one_pass(evpl);
        }
        CHECK_EQ(killer.runs, 1);
        CHECK_EQ(victim.runs, 0);
    }

    /* Armed from a timer callback: runs in that same evpl_continue. */
    {
        struct tagged t;
        tagged_init(&t, 't');
        struct timer_arm ta;
        memset(&ta, 0, sizeof(ta));
        ta.target = &t;
        evpl_add_timer(evpl, &ta.timer, timer_arm_cb, 2000);
        uint64_t end = now_ms() + 5000;
        while (t.runs == 0 && now_ms() < end) {
            one_pass(evpl);
        }
        CHECK_EQ(t.runs, 1);
        CHECK(ta.fired_in_pass > 0);
        CHECK_EQ(t.ran_in_pass, ta.fired_in_pass);
    }

    /* Armed from a doorbell (I/O) callback: runs in that same evpl_continue. */
    {
        struct tagged d;
        tagged_init(&d, 'd');
        memset(&bell_arm, 0, sizeof(bell_arm));
        bell_arm.target = &d;
        evpl_add_doorbell(evpl, &bell_arm.bell, bell_arm_cb);
        evpl_ring_doorbell(&bell_arm.bell);
        uint64_t end = now_ms() + 5000;
        while (d.runs == 0 && now_ms() < end) {
            one_pass(evpl);
        }
        CHECK_EQ(d.runs, 1);
        CHECK(bell_arm.rang_in_pass > 0);
        CHECK_EQ(d.ran_in_pass, bell_arm.rang_in_pass);
        evpl_remove_doorbell(evpl, &bell_arm.bell);
    }

    evpl_destroy(evpl);
    return 0;
}
