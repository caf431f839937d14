/*
 * Configuration: every global and thread setter with ordinary and
 * out-of-range values (never a crash), NULL configs everywhere, releasing a
 * global config that never reached evpl_init, and one setting taking effect:
 * evpl_init with buffer_size 1 MiB makes 1 MiB the largest single iovec.
 * (This process owns the one evpl_init, so it is the buffer_size process.)
 */
#include "harness.h"

#include <limits.h>
#include <stdatomic.h>
#include <unistd.h>

#define MiB (1024u * 1024u)

static atomic_int log_lines;

static void
capture_log(const char *level, const char *module, const char *srcfile, int lineno,
            const char *fmt, va_list argp)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, argp);
    atomic_fetch_add(&log_lines, 1);
    fprintf(stderr, "[captured] %s %s %s:%d %s\n", level ? level : "(null)",
            module ? module : "(null)", srcfile ? srcfile : "(null)", lineno, msg);
}

/* Ordinary values: the documented defaults or close to them. */
static void
set_all_ordinary(struct evpl_global_config *c)
{
    evpl_global_config_set_buffer_size(c, 2 * MiB);
    evpl_global_config_set_slab_size(c, 1024ull * MiB);
    evpl_global_config_set_spin_ns(c, 1000000);
    evpl_global_config_set_max_datagram_size(c, 65536);
    evpl_global_config_set_max_datagram_batch(c, 16);
    evpl_global_config_set_max_num_iovec(c, 128);
    evpl_global_config_set_iovec_ring_size(c, 1024);
    evpl_global_config_set_dgram_ring_size(c, 256);
    evpl_global_config_set_rdma_request_ring_size(c, 64);
    evpl_global_config_set_resolve_timeout_ms(c, 5000);
    evpl_global_config_set_hf_time_mode(c, 2);
    evpl_global_config_set_max_pending(c, 16);
    evpl_global_config_set_max_poll_fd(c, 16);
    evpl_global_config_set_huge_pages(c, 0);
    evpl_global_config_set_io_uring_enabled(c, 1);
    evpl_global_config_set_rdmacm_enabled(c, 1);
    evpl_global_config_set_xlio_enabled(c, 1);
    evpl_global_config_set_vfio_enabled(c, 1);
    evpl_global_config_set_rdmacm_tos(c, 0);
    evpl_global_config_set_rdmacm_datagram_size_override(c, 0);
    evpl_global_config_set_rdmacm_srq_prefill(c, 0);
    evpl_global_config_set_rdmacm_max_sge(c, 31);
    evpl_global_config_set_rdmacm_cq_size(c, 8192);
    evpl_global_config_set_rdmacm_sq_size(c, 256);
    evpl_global_config_set_rdmacm_srq_size(c, 8192);
    evpl_global_config_set_rdmacm_srq_min(c, 256);
    evpl_global_config_set_rdmacm_max_inline(c, 250);
    evpl_global_config_set_rdmacm_srq_batch(c, 16);
    evpl_global_config_set_rdmacm_retry_count(c, 4);
    evpl_global_config_set_rdmacm_rnr_retry_count(c, 4);
    evpl_global_config_set_tls_cert(c, "/nonexistent/cert.pem");
    evpl_global_config_set_tls_key(c, "/nonexistent/key.pem");
    evpl_global_config_set_tls_ca(c, "/nonexistent/ca.pem");
    evpl_global_config_set_tls_cipher_list(c, "HIGH:!aNULL");
    evpl_global_config_set_tls_verify_peer(c, 1);
    evpl_global_config_set_tls_ktls_enabled(c, 1);
}

/* Out-of-range values: clamped or rejected with a log line, never a crash. */
static void
set_all_extreme(struct evpl_global_config *c, int variant)
{
    uint64_t u64 = variant ? UINT64_MAX : 0;
    unsigned int u = variant ? UINT_MAX : 0;
    int i = variant ? INT_MIN : -1;
    static char long_path[8192];
    memset(long_path, 'x', sizeof(long_path) - 1);
    const char *str = variant ? long_path : NULL;

    evpl_global_config_set_buffer_size(c, variant ? u64 : 1);
    evpl_global_config_set_slab_size(c, variant ? u64 : 1);
    evpl_global_config_set_spin_ns(c, u64);
    evpl_global_config_set_max_datagram_size(c, u);
    evpl_global_config_set_max_datagram_batch(c, u);
    evpl_global_config_set_max_num_iovec(c, u);
    evpl_global_config_set_iovec_ring_size(c, variant ? u : 3);  /* not a power of two */
    evpl_global_config_set_dgram_ring_size(c, variant ? u : 5);
    evpl_global_config_set_rdma_request_ring_size(c, u);
    evpl_global_config_set_resolve_timeout_ms(c, u);
    evpl_global_config_set_hf_time_mode(c, variant ? u : 3);
    evpl_global_config_set_max_pending(c, u);
    evpl_global_config_set_max_poll_fd(c, u);
    evpl_global_config_set_huge_pages(c, i);
    evpl_global_config_set_io_uring_enabled(c, i);
    evpl_global_config_set_rdmacm_enabled(c, i);
    evpl_global_config_set_xlio_enabled(c, i);
    evpl_global_config_set_vfio_enabled(c, i);
    evpl_global_config_set_rdmacm_tos(c, variant ? 255 : 0);
    evpl_global_config_set_rdmacm_datagram_size_override(c, u);
    evpl_global_config_set_rdmacm_srq_prefill(c, i);
    evpl_global_config_set_rdmacm_max_sge(c, u);
    evpl_global_config_set_rdmacm_cq_size(c, u);
    evpl_global_config_set_rdmacm_sq_size(c, u);
    evpl_global_config_set_rdmacm_srq_size(c, u);
    evpl_global_config_set_rdmacm_srq_min(c, u);
    evpl_global_config_set_rdmacm_max_inline(c, u);
    evpl_global_config_set_rdmacm_srq_batch(c, u);
    evpl_global_config_set_rdmacm_retry_count(c, u);
    evpl_global_config_set_rdmacm_rnr_retry_count(c, u);
    evpl_global_config_set_tls_cert(c, str);
    evpl_global_config_set_tls_key(c, str);
    evpl_global_config_set_tls_ca(c, str);
    evpl_global_config_set_tls_cipher_list(c, str);
    evpl_global_config_set_tls_verify_peer(c, i);
    evpl_global_config_set_tls_ktls_enabled(c, i);
}

static void
set_thread_ordinary(struct evpl_thread_config *c)
{
    evpl_thread_config_set_poll_mode(c, 1);
    evpl_thread_config_set_poll_mode(c, 0);
    evpl_thread_config_set_poll_iterations(c, 1000);
    evpl_thread_config_set_wait_ms(c, -1);
    evpl_thread_config_set_wait_ms(c, 10);
}

static void
set_thread_extreme(struct evpl_thread_config *c)
{
    evpl_thread_config_set_poll_mode(c, INT_MIN);
    evpl_thread_config_set_poll_mode(c, 42);
    evpl_thread_config_set_poll_iterations(c, -1);
    evpl_thread_config_set_poll_iterations(c, 0);
    evpl_thread_config_set_poll_iterations(c, INT_MAX);
    evpl_thread_config_set_wait_ms(c, INT_MIN);
    evpl_thread_config_set_wait_ms(c, -2);
    evpl_thread_config_set_wait_ms(c, INT_MAX);
}

int
main(void)
{
    alarm(50);
    evpl_set_log_fn(capture_log, NULL);

    /* Global config with ordinary values, released without evpl_init. */
    {
        struct evpl_global_config *c = evpl_global_config_init();
        CHECK(c != NULL);
        set_all_ordinary(c);
        set_all_ordinary(c);   /* setting twice replaces (strings too) */
        evpl_global_config_release(c);
    }

    /* Global configs with out-of-range values (two flavours), released. */
    for (int variant = 0; variant < 2; variant++) {
        struct evpl_global_config *c = evpl_global_config_init();
        CHECK(c != NULL);
        set_all_extreme(c, variant);
        evpl_global_config_release(c);
    }

    /* Every global setter and both release functions with a NULL config. */
    set_all_ordinary(NULL);
    set_all_extreme(NULL, 0);
    set_all_extreme(NULL, 1);
    evpl_global_config_release(NULL);

    /* Thread config: ordinary and out-of-range values, released. */
    {
        struct evpl_thread_config *c = evpl_thread_config_init();
        CHECK(c != NULL);
        set_thread_ordinary(c);
        set_thread_extreme(c);
        evpl_thread_config_release(c);
    }

    /* Every thread setter and the release with a NULL config. */
    set_thread_ordinary(NULL);
    set_thread_extreme(NULL);
    evpl_thread_config_release(NULL);

    /* The real initialisation: buffer_size 1 MiB (other settings sane). */
    {
        struct evpl_global_config *c = evpl_global_config_init();
        CHECK(c != NULL);
        set_all_ordinary(c);
        evpl_global_config_set_buffer_size(c, MiB);
        evpl_init(c);   /* takes ownership */
    }

    /* A loop built from a thread config holding out-of-range values is
     * either refused (NULL) or usable; here only created and destroyed,
     * since a clamped wait_ms could legitimately block for a long time. */
    {
        struct evpl_thread_config *c = evpl_thread_config_init();
        CHECK(c != NULL);
        set_thread_extreme(c);
        struct evpl *evpl = evpl_create(c);
        evpl_thread_config_release(c);
        if (evpl) {
            evpl_destroy(evpl);
        }
    }

    /* buffer_size took effect: exactly 1 MiB fits one iovec, 1 MiB + 1 does
     * not, and with two iovecs 1 MiB + 1 is granted. */
    {
        struct evpl *evpl = test_loop();
        struct evpl_iovec iov[4];

        memset(iov, 0, sizeof(iov));
        CHECK_EQ(evpl_iovec_alloc(evpl, MiB, 0, 1, iov), 1);
        CHECK_EQ(iov[0].length, MiB);
        CHECK(iov[0].data != NULL);
        memset(iov[0].data, 0xa5, MiB);
        evpl_iovec_release(&iov[0]);

        CHECK_EQ(evpl_iovec_alloc(evpl, MiB + 1, 0, 1, iov), -1);

        memset(iov, 0, sizeof(iov));
        CHECK_EQ(evpl_iovec_alloc(evpl, MiB + 1, 0, 2, iov), 2);
        CHECK_EQ((uint64_t) iov[0].length + iov[1].length, MiB + 1);
        CHECK(iov[0].length <= MiB && iov[1].length <= MiB);
        evpl_iovec_release(&iov[0]);
        evpl_iovec_release(&iov[1]);

        /* 2 MiB (the default buffer size) now needs two iovecs. */
        CHECK_EQ(evpl_iovec_alloc(evpl, 2 * MiB, 0, 1, iov), -1);
        memset(iov, 0, sizeof(iov));
        CHECK_EQ(evpl_iovec_alloc(evpl, 2 * MiB, 0, 2, iov), 2);
        CHECK_EQ(iov[0].length, MiB);
        CHECK_EQ(iov[1].length, MiB);
        evpl_iovec_release(&iov[0]);
        evpl_iovec_release(&iov[1]);

        /* 1 MiB with 4 KiB alignment is still one iovec. */
        CHECK_EQ(evpl_iovec_alloc(evpl, MiB, 4096, 1, iov), 1);
        CHECK_EQ(iov[0].length, MiB);
        CHECK_EQ((uintptr_t) iov[0].data % 4096, 0);
        evpl_iovec_release(&iov[0]);

        evpl_destroy(evpl);
    }
    return 0;
}
