/*
 * Shared helpers for the C tests.  Each ctests/NAME.c is one program, one
 * scenario family; it exits 0 when every check passed, 77 when it skipped
 * (with a line saying why), 1 on the first failed check.  The runner
 * (ctests/run.sh) gives each program a time limit.
 */
#ifndef EVPL_CTEST_HARNESS_H
#define EVPL_CTEST_HARNESS_H

#define _GNU_SOURCE
#include <evpl/evpl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* AddressSanitizer builds (make test-asan): it owns malloc and inflates RSS. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EVPL_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(EVPL_TEST_ASAN)
#define EVPL_TEST_ASAN 1
#endif

#define CHECK(cond) do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1); \
        } \
} while (0)

/* Both values are printed on failure. */
#define CHECK_EQ(a, b) do { \
        long long _a = (long long) (a), _b = (long long) (b); \
        if (_a != _b) { \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld != %lld)\n", \
                    __FILE__, __LINE__, #a, #b, _a, _b); \
            exit(1); \
        } \
} while (0)

#define SKIP(...) do { fprintf(stderr, "SKIP: " __VA_ARGS__); fputc('\n', stderr); exit(77); } while (0)

static inline uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static inline uint64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* A loop whose idle passes return within 10 ms, for run_until. */
static inline struct evpl *
test_loop(void)
{
    struct evpl_thread_config *cfg = evpl_thread_config_init();
    evpl_thread_config_set_wait_ms(cfg, 10);
    struct evpl *evpl = evpl_create(cfg);
    evpl_thread_config_release(cfg);
    CHECK(evpl != NULL);
    return evpl;
}

/* Drive the loop until *done is nonzero or timeout_ms passes; returns *done. */
static inline int
run_until(struct evpl *evpl, const volatile int *done, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t) timeout_ms;
    while (!*done && now_ms() < end) {
        evpl_continue(evpl);
    }
    return *done;
}

/* The protocol named by "-r NAME" in argv, or dflt. */
static inline enum evpl_protocol_id
test_protocol(int argc, char **argv, enum evpl_protocol_id dflt)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "-r") == 0) {
            enum evpl_protocol_id id;
            if (evpl_protocol_lookup(&id, argv[i + 1]) != 0) {
                fprintf(stderr, "unknown protocol %s\n", argv[i + 1]);
                exit(2);
            }
            if (!evpl_protocol_available(id)) {
                SKIP("%s is not available on this machine", argv[i + 1]);
            }
            return id;
        }
    }
    return dflt;
}

#endif
