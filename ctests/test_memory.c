/*
 * Buffers and iovecs with the default buffer_size (2 MiB): exact-length
 * single iovecs up to 2 MiB, alignment, lengths above the buffer size split
 * over several iovecs (or -1 when max_iovecs cannot cover them), writability
 * and non-overlap, addref/release, reserve + commit, release on another
 * thread, evpl_slab_alloc, and 100 000 alloc/release without RSS growth.
 */
#include "harness.h"
#include "net.h"

#include <pthread.h>
#include <unistd.h>

#define KiB 1024u
#define MiB (1024u * 1024u)

/* ---- live ranges: no two iovecs handed out share a byte ------------------ */

struct range {
    uintptr_t lo, hi;   /* [lo, hi) */
};

static int
range_cmp(const void *a, const void *b)
{
    const struct range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void
check_disjoint(const struct evpl_iovec *iov, int n)
{
    struct range *r = malloc(sizeof(*r) * (size_t) n);
    CHECK(r != NULL);
    for (int i = 0; i < n; i++) {
        r[i].lo = (uintptr_t) iov[i].data;
        r[i].hi = r[i].lo + iov[i].length;
    }
    qsort(r, (size_t) n, sizeof(*r), range_cmp);
    for (int i = 1; i < n; i++) {
        CHECK(r[i].lo >= r[i - 1].hi);
    }
    free(r);
}

/* Writes a pattern over the whole iovec and reads it back at both ends and
 * in the middle. */
static void
fill(const struct evpl_iovec *iov, unsigned char seed)
{
    unsigned char *p = iov->data;
    CHECK(p != NULL);
    memset(p, seed, iov->length);
    CHECK_EQ(p[0], seed);
    CHECK_EQ(p[iov->length / 2], seed);
    CHECK_EQ(p[iov->length - 1], seed);
}

static uint64_t
total_length(const struct evpl_iovec *iov, int n)
{
    uint64_t t = 0;
    for (int i = 0; i < n; i++) {
        t += iov[i].length;
    }
    return t;
}

/* ---- release on another thread ------------------------------------------ */

struct handoff {
    struct evpl_iovec *iov;
    int                n;
};

static void *
releaser_main(void *arg)
{
    struct handoff *h = arg;
    for (int i = 0; i < h->n; i++) {
        evpl_iovec_release(&h->iov[i]);
    }
    return NULL;
}

static void
release_on_other_thread(struct evpl_iovec *iov, int n)
{
    struct handoff h = { iov, n };
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, releaser_main, &h), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
}

static uint32_t rng_state = 12345;

static uint32_t
rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

int
main(void)
{
    alarm(55);
    struct evpl *evpl = test_loop();

    /* 1 byte, 4 KiB and 2 MiB (= buffer_size) with max_iovecs 1: one iovec
     * of exactly that length, writable, disjoint while all are live. */
    {
        static const unsigned int sizes[] = { 1, 4096, 2 * MiB };
        struct evpl_iovec live[3];
        for (int i = 0; i < 3; i++) {
            memset(&live[i], 0, sizeof(live[i]));
            CHECK_EQ(evpl_iovec_alloc(evpl, sizes[i], 0, 1, &live[i]), 1);
            CHECK_EQ(live[i].length, sizes[i]);
            CHECK_EQ(evpl_iovec_length(&live[i]), sizes[i]);
            CHECK(evpl_iovec_data(&live[i]) == live[i].data);
            fill(&live[i], (unsigned char) (0x10 + i));
        }
        check_disjoint(live, 3);
        /* Contents survive the other allocations. */
        CHECK_EQ(((unsigned char *) live[0].data)[0], 0x10);
        CHECK_EQ(((unsigned char *) live[1].data)[4095], 0x11);
        for (int i = 0; i < 3; i++) {
            evpl_iovec_release(&live[i]);
        }
    }

    /* max_iovecs 0 cannot cover anything. */
    {
        struct evpl_iovec iov;
        CHECK_EQ(evpl_iovec_alloc(evpl, 100, 0, 0, &iov), -1);
    }

    /* Alignment: 4096 (also after odd-sized allocations), 64 and 512, and a
     * whole 2 MiB buffer at 4096 still in one iovec. */
    {
        struct evpl_iovec odd[32], al[32];
        for (int i = 0; i < 32; i++) {
            CHECK_EQ(evpl_iovec_alloc(evpl, 1 + (unsigned) i * 7, 0, 1, &odd[i]), 1);
            unsigned int align = (i % 3 == 0) ? 4096 : (i % 3 == 1) ? 64 : 512;
            CHECK_EQ(evpl_iovec_alloc(evpl, 100 + (unsigned) i, align, 1, &al[i]), 1);
            CHECK_EQ(al[i].length, 100 + (unsigned) i);
            CHECK_EQ((uintptr_t) al[i].data % align, 0);
        }
        struct evpl_iovec all[64];
        memcpy(all, odd, sizeof(odd));
        memcpy(all + 32, al, sizeof(al));
        check_disjoint(all, 64);
        for (int i = 0; i < 32; i++) {
            evpl_iovec_release(&odd[i]);
            evpl_iovec_release(&al[i]);
        }
        struct evpl_iovec big;
        CHECK_EQ(evpl_iovec_alloc(evpl, 2 * MiB, 4096, 1, &big), 1);
        CHECK_EQ(big.length, 2 * MiB);
        CHECK_EQ((uintptr_t) big.data % 4096, 0);
        evpl_iovec_release(&big);
    }

    /* Above buffer_size: 3 MiB needs 2 iovecs (max 1 -> -1), 10 MiB with
     * max 8 needs at least 5; the iovecs cover exactly the length, each at
     * most one buffer, writable and disjoint. */
    {
        struct evpl_iovec iov[8];
        CHECK_EQ(evpl_iovec_alloc(evpl, 3 * MiB, 0, 1, iov), -1);

        memset(iov, 0, sizeof(iov));
        CHECK_EQ(evpl_iovec_alloc(evpl, 3 * MiB, 0, 2, iov), 2);
        CHECK_EQ(total_length(iov, 2), 3 * MiB);
        for (int i = 0; i < 2; i++) {
            CHECK(iov[i].length > 0 && iov[i].length <= 2 * MiB);
            fill(&iov[i], (unsigned char) (0x20 + i));
        }
        check_disjoint(iov, 2);
        CHECK_EQ(((unsigned char *) iov[0].data)[0], 0x20);
        evpl_iovec_release(&iov[0]);
        evpl_iovec_release(&iov[1]);

        memset(iov, 0, sizeof(iov));
        int n = evpl_iovec_alloc(evpl, 3 * MiB, 0, 4, iov);
        CHECK(n >= 2 && n <= 4);
        CHECK_EQ(total_length(iov, n), 3 * MiB);
        for (int i = 0; i < n; i++) {
            evpl_iovec_release(&iov[i]);
        }

        memset(iov, 0, sizeof(iov));
        n = evpl_iovec_alloc(evpl, 10 * MiB, 0, 8, iov);
        CHECK(n >= 5 && n <= 8);
        CHECK_EQ(total_length(iov, n), 10 * MiB);
        for (int i = 0; i < n; i++) {
            CHECK(iov[i].length <= 2 * MiB);
        }
        check_disjoint(iov, n);
        for (int i = 0; i < n; i++) {
            evpl_iovec_release(&iov[i]);
        }
        CHECK_EQ(evpl_iovec_alloc(evpl, 10 * MiB, 0, 4, iov), -1);
    }

    /* addref then two releases: after the first release the bytes are still
     * ours (intact, and not handed out again). */
    {
        struct evpl_iovec a, b;
        CHECK_EQ(evpl_iovec_alloc(evpl, 64, 0, 1, &a), 1);
        fill(&a, 0x5a);
        evpl_iovec_addref(&a);
        evpl_iovec_release(&a);
        CHECK_EQ(evpl_iovec_alloc(evpl, 64, 0, 1, &b), 1);
        fill(&b, 0xa5);
        struct evpl_iovec both[2] = { a, b };
        check_disjoint(both, 2);
        CHECK_EQ(((unsigned char *) a.data)[0], 0x5a);
        CHECK_EQ(((unsigned char *) a.data)[63], 0x5a);
        evpl_iovec_release(&a);
        evpl_iovec_release(&b);
    }

    /* reserve 64 KiB, use 100 bytes, commit: the next allocation does not
     * overlap the committed 100 bytes, which keep their contents; 1000
     * reserve/commit rounds yield 1000 disjoint 100-byte iovecs. */
    {
        struct evpl_iovec r, next;
        memset(&r, 0, sizeof(r));
        CHECK_EQ(evpl_iovec_reserve(evpl, 64 * KiB, 0, 1, &r), 1);
        CHECK(r.data != NULL);
        CHECK(r.length >= 64 * KiB);
        memset(r.data, 0x77, 100);
        evpl_iovec_set_length(&r, 100);
        evpl_iovec_commit(evpl, 0, &r, 1);
        CHECK_EQ(r.length, 100);
        CHECK_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, &next), 1);
        fill(&next, 0x88);
        struct evpl_iovec both[2] = { r, next };
        check_disjoint(both, 2);
        CHECK_EQ(((unsigned char *) r.data)[0], 0x77);
        CHECK_EQ(((unsigned char *) r.data)[99], 0x77);
        fprintf(stderr, "after commit of 100 bytes, next alloc is at +%lld\n",
                (long long) ((char *) next.data - (char *) r.data));
        evpl_iovec_release(&r);
        evpl_iovec_release(&next);

        static struct evpl_iovec many[1000];
        for (int i = 0; i < 1000; i++) {
            CHECK_EQ(evpl_iovec_reserve(evpl, 64 * KiB, 0, 1, &many[i]), 1);
            memset(many[i].data, (unsigned char) i, 100);
            evpl_iovec_set_length(&many[i], 100);
            evpl_iovec_commit(evpl, 0, &many[i], 1);
        }
        check_disjoint(many, 1000);
        for (int i = 0; i < 1000; i++) {
            CHECK_EQ(((unsigned char *) many[i].data)[0], (unsigned char) i);
            CHECK_EQ(((unsigned char *) many[i].data)[99], (unsigned char) i);
            evpl_iovec_release(&many[i]);
        }
    }

    /* Released on another thread: allocate on the loop's thread, release
     * in a pthread.  Whole buffers (touched) go back to the loop's pool:
     * 20 rounds of 8 x 2 MiB grow RSS by far less than the 320 MiB a leak
     * would.  Then 10 000 more allocs/releases work. */
    {
        struct evpl_iovec iov[8];
        long rss0 = 0;
        for (int round = 0; round < 21; round++) {
            for (int i = 0; i < 8; i++) {
                CHECK_EQ(evpl_iovec_alloc(evpl, 2 * MiB, 0, 1, &iov[i]), 1);
                fill(&iov[i], (unsigned char) round);
            }
            release_on_other_thread(iov, 8);
            evpl_continue(evpl);   /* the loop may reclaim remote releases here */
            if (round == 0) {
                rss0 = rss_bytes();
            }
        }
        long rss1 = rss_bytes();
        fprintf(stderr, "cross-thread release: rss %ld -> %ld KiB\n", rss0 / 1024, rss1 / 1024);
        CHECK(rss1 - rss0 < 64L * 1024 * 1024);

        static struct evpl_iovec small[1000];
        for (int i = 0; i < 1000; i++) {
            CHECK_EQ(evpl_iovec_alloc(evpl, 4096, 0, 1, &small[i]), 1);
        }
        release_on_other_thread(small, 1000);
        evpl_continue(evpl);

        for (int i = 0; i < 10000; i++) {
            struct evpl_iovec v;
            unsigned int len = 1 + rng() % (64 * KiB);
            CHECK_EQ(evpl_iovec_alloc(evpl, len, 0, 1, &v), 1);
            CHECK_EQ(v.length, len);
            ((unsigned char *) v.data)[0] = 1;
            ((unsigned char *) v.data)[len - 1] = 2;
            evpl_iovec_release(&v);
        }
    }

    /* evpl_slab_alloc returns memory. */
    {
        void *slab = evpl_slab_alloc();
        CHECK(slab != NULL);
    }

    /* 100 000 alloc/release (up to 16 live at once, sizes 1..16 KiB): RSS
     * grows by less than 20 MiB after a warm-up. */
    {
        struct evpl_iovec window[16];
        int nlive = 0;
        long rss0 = 0;
        for (int i = 0; i < 101000; i++) {
            if (i == 1000) {
                rss0 = rss_bytes();
            }
            if (nlive == 16) {
                evpl_iovec_release(&window[0]);
                memmove(window, window + 1, sizeof(window[0]) * 15);
                nlive--;
            }
            unsigned int len = 1 + rng() % (16 * KiB);
            struct evpl_iovec *v = &window[nlive];
            CHECK_EQ(evpl_iovec_alloc(evpl, len, 0, 1, v), 1);
            CHECK_EQ(v->length, len);
            ((unsigned char *) v->data)[0] = (unsigned char) i;
            ((unsigned char *) v->data)[len - 1] = (unsigned char) i;
            nlive++;
        }
        while (nlive > 0) {
            evpl_iovec_release(&window[--nlive]);
        }
        long rss1 = rss_bytes();
        fprintf(stderr, "100000 alloc/release: rss %ld -> %ld KiB\n", rss0 / 1024, rss1 / 1024);
        CHECK(rss1 - rss0 < 20L * 1024 * 1024);
    }

    evpl_destroy(evpl);
    return 0;
}
