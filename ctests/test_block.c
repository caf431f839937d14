/*
 * Block I/O over io_uring (EVPL_BLOCK_PROTOCOL_IO_URING) on a temporary file:
 * random-offset writes and reads verified byte by byte (buffered and
 * O_DIRECT-aligned), flush, and errors through the callback (offset past
 * the end, a closed queue, a closed device's queue), never a crash.
 * VFIO reports unavailable with NULL.
 */
#include "harness.h"
#include <fcntl.h>
#include <unistd.h>

#define DEV_SIZE (8 << 20)

static int completed, failures;
static int last_status;

static void
done(struct evpl *evpl, int status, void *priv)
{
    (void) evpl;
    int *expect = priv;
    last_status = status;
    if (expect && status != *expect) {
        fprintf(stderr, "block callback: status %d, expected %d\n", status, *expect);
        failures++;
    }
    completed++;
}

static void
wait_for(struct evpl *evpl, int n)
{
    uint64_t end = now_ms() + 10000;
    while (completed < n && now_ms() < end) {
        evpl_continue(evpl);
    }
    CHECK_EQ(completed, n);
    CHECK_EQ(failures, 0);
}

static unsigned char
pattern(uint64_t offset)
{
    return (unsigned char) (offset * 2654435761u >> 13);
}

int
main(void)
{
    CHECK(evpl_block_open_device(EVPL_BLOCK_PROTOCOL_VFIO, "/dev/null") == NULL);
    CHECK(evpl_block_open_device(EVPL_BLOCK_PROTOCOL_IO_URING, "/nonexistent/evpl") == NULL);
    if (!evpl_protocol_available(EVPL_STREAM_IO_URING_TCP)) {
        SKIP("io_uring is not available on this machine");
    }

    /* A temporary file on a real file system (O_DIRECT needs one; /tmp may be tmpfs). */
    char path[] = "build/evpl-block-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        char alt[] = "/tmp/evpl-block-XXXXXX";
        memcpy(path, alt, sizeof(alt) <= sizeof(path) ? sizeof(alt) : sizeof(path));
        fd = mkstemp(path);
    }
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, DEV_SIZE) == 0);
    close(fd);

    struct evpl_block_device *dev = evpl_block_open_device(EVPL_BLOCK_PROTOCOL_IO_URING, path);
    CHECK(dev != NULL);
    CHECK_EQ(evpl_block_size(dev), DEV_SIZE);
    CHECK(evpl_block_max_request_size(dev) >= (1 << 20));

    struct evpl *evpl = test_loop();
    struct evpl_block_queue *q = evpl_block_open_queue(evpl, dev);
    CHECK(q != NULL);
    int ok = 0, einval = EINVAL, eshutdown = ESHUTDOWN;

    /* 64 random-offset writes of 1..64 KiB, some 4 KiB-aligned (O_DIRECT), then read back. */
    srand(7);
    struct { uint64_t off; unsigned len; } ops[64];
    for (int i = 0; i < 64; i++) {
        int aligned = i % 2 == 0;
        unsigned len = aligned ? (unsigned) (1 + rand() % 16) * 4096 : (unsigned) (1 + rand() % 65536);
        uint64_t off = aligned ? (uint64_t) (rand() % ((DEV_SIZE - len) / 4096)) * 4096
                               : (uint64_t) (rand() % (DEV_SIZE - len));
        ops[i].off = off;
        ops[i].len = len;
        struct evpl_iovec iov[2];
        int n = evpl_iovec_alloc(evpl, len, aligned ? 4096 : 0, 2, iov);
        CHECK(n >= 1);
        unsigned pos = 0;
        for (int k = 0; k < n; k++) {
            unsigned char *p = evpl_iovec_data(&iov[k]);
            for (unsigned j = 0; j < evpl_iovec_length(&iov[k]); j++, pos++) {
                p[j] = pattern(off + pos);
            }
        }
        /* Overlapping writes would make the check order-dependent: write one at a time. */
        evpl_block_write(evpl, q, iov, n, off, i % 8 == 0, done, &ok);
        wait_for(evpl, i + 1);
        for (int k = 0; k < n; k++) {
            evpl_iovec_release(&iov[k]);
        }
    }
    int base = completed;
    evpl_block_flush(evpl, q, done, &ok);
    wait_for(evpl, base + 1);

    /* Read each region back (the last writer wins where regions overlap: check
     * only bytes no later write covered). */
    for (int i = 0; i < 64; i++) {
        struct evpl_iovec iov[2];
        int aligned = i % 2 == 0;
        int n = evpl_iovec_alloc(evpl, ops[i].len, aligned ? 4096 : 0, 2, iov);
        CHECK(n >= 1);
        base = completed;
        evpl_block_read(evpl, q, iov, n, ops[i].off, done, &ok);
        wait_for(evpl, base + 1);
        unsigned pos = 0;
        for (int k = 0; k < n; k++) {
            unsigned char *p = evpl_iovec_data(&iov[k]);
            for (unsigned j = 0; j < evpl_iovec_length(&iov[k]); j++, pos++) {
                CHECK_EQ(p[j], pattern(ops[i].off + pos));  /* the pattern depends on the offset only */
            }
            evpl_iovec_release(&iov[k]);
        }
    }

    /* Errors arrive through the callback, after the call returns. */
    struct evpl_iovec iov;
    CHECK(evpl_iovec_alloc(evpl, 4096, 0, 1, &iov) == 1);
    base = completed;
    evpl_block_read(evpl, q, &iov, 1, DEV_SIZE - 100, done, &einval);   /* crosses the end */
    evpl_block_write(evpl, q, &iov, 1, (uint64_t) DEV_SIZE * 4, 0, done, &einval);
    CHECK_EQ(completed, base);  /* never from inside the call */
    wait_for(evpl, base + 2);

    /* Requests on a closed queue fail with ESHUTDOWN. */
    evpl_block_close_queue(evpl, q);
    base = completed;
    evpl_block_read(evpl, q, &iov, 1, 0, done, &eshutdown);
    evpl_block_flush(evpl, q, done, &eshutdown);
    wait_for(evpl, base + 2);
    evpl_iovec_release(&iov);

    /* Closing the device with a queue still open defers the descriptors' close. */
    struct evpl_block_queue *q2 = evpl_block_open_queue(evpl, dev);
    CHECK(q2 != NULL);
    evpl_block_close_device(dev);
    CHECK(evpl_iovec_alloc(evpl, 4096, 4096, 1, &iov) == 1);
    base = completed;
    evpl_block_read(evpl, q2, &iov, 1, 4096, done, &ok);
    wait_for(evpl, base + 1);
    evpl_iovec_release(&iov);
    evpl_block_close_queue(evpl, q2);

    evpl_destroy(evpl);
    unlink(path);
    printf("block: %d requests completed\n", completed);
    return 0;
}
