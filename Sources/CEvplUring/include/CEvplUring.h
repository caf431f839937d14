/*
 * liburing for the io_uring transport.  liburing's submission helpers are
 * static inline functions, which Swift cannot call, so each function here
 * forwards to one of them (or to a liburing function).  No state, no logic,
 * no allocation: the transport (Sources/Evpl/Transports/IoUring) owns the
 * rings and decides everything.  liburing (Debian's liburing-dev) is linked
 * statically, so libevpl.so needs no liburing.so at run time.
 *
 * This header includes no system headers and keeps liburing's types opaque:
 * textual copies of <sys/types.h> in two Clang modules (CEvpl and this one)
 * make the importer reject the duplicated definitions in some builds.
 * Prefix cevpl_, hidden visibility (the version script exports evpl_* only).
 */
#ifndef CEVPL_URING_H
#define CEVPL_URING_H

#include <stdint.h>
#include <stddef.h>

#define CEVPL_URING_HIDDEN __attribute__((visibility("hidden")))

struct io_uring;
struct io_uring_sqe;
struct io_uring_buf_ring;
struct msghdr;
struct iovec;

/* One completion, copied out of the shared ring. */
typedef struct {
    uint64_t user_data;
    int32_t  res;
    uint32_t flags;
} cevpl_cqe;

static const uint32_t CEVPL_CQE_F_BUFFER = 1u << 0;   /* IORING_CQE_F_BUFFER */
static const uint32_t CEVPL_CQE_F_MORE = 1u << 1;     /* IORING_CQE_F_MORE */
static const uint32_t CEVPL_CQE_BUFFER_SHIFT = 16;    /* IORING_CQE_BUFFER_SHIFT */
static const int CEVPL_RWF_DSYNC = 2;                 /* RWF_DSYNC */

/* Rings: `ring` points at cevpl_uring_size() bytes the caller allocated. */
CEVPL_URING_HIDDEN size_t cevpl_uring_size(void);
CEVPL_URING_HIDDEN int cevpl_uring_init(struct io_uring *ring, unsigned entries, int single_issuer);
CEVPL_URING_HIDDEN void cevpl_uring_exit(struct io_uring *ring);
CEVPL_URING_HIDDEN int cevpl_uring_submit(struct io_uring *ring);
CEVPL_URING_HIDDEN int cevpl_uring_register_eventfd(struct io_uring *ring, int fd);
CEVPL_URING_HIDDEN struct io_uring_sqe *cevpl_uring_get_sqe(struct io_uring *ring);
CEVPL_URING_HIDDEN unsigned cevpl_uring_sq_ready(const struct io_uring *ring);
/* Copies up to `max` ready completions into `out` and hands their slots back. */
CEVPL_URING_HIDDEN unsigned cevpl_uring_reap(struct io_uring *ring, cevpl_cqe *out, unsigned max);

/* Each prep_* fills `sqe` and sets its user data. */
CEVPL_URING_HIDDEN void cevpl_uring_prep_recv_multishot(struct io_uring_sqe *sqe, int fd, uint16_t group, uint64_t data);
CEVPL_URING_HIDDEN void cevpl_uring_prep_accept_multishot(struct io_uring_sqe *sqe, int fd, uint64_t data);
CEVPL_URING_HIDDEN void cevpl_uring_prep_cancel_data(struct io_uring_sqe *sqe, uint64_t target, uint64_t data);
CEVPL_URING_HIDDEN void cevpl_uring_prep_sendmsg(struct io_uring_sqe *sqe, int fd, const struct msghdr *msg, uint64_t data);
CEVPL_URING_HIDDEN void cevpl_uring_prep_poll_out(struct io_uring_sqe *sqe, int fd, uint64_t data);
CEVPL_URING_HIDDEN void cevpl_uring_prep_cancel_fd(struct io_uring_sqe *sqe, int fd, uint64_t data);
CEVPL_URING_HIDDEN void cevpl_uring_prep_nop(struct io_uring_sqe *sqe, uint64_t data);
CEVPL_URING_HIDDEN void cevpl_uring_prep_readv(struct io_uring_sqe *sqe, int fd, const struct iovec *iov, unsigned n, uint64_t offset, uint64_t data);
CEVPL_URING_HIDDEN void cevpl_uring_prep_writev(struct io_uring_sqe *sqe, int fd, const struct iovec *iov, unsigned n, uint64_t offset, int flags, uint64_t data);
CEVPL_URING_HIDDEN void cevpl_uring_prep_fsync(struct io_uring_sqe *sqe, int fd, uint64_t data);

/* Provided-buffer rings: `br` is page-aligned memory of cevpl_buf_ring_size(entries) bytes. */
CEVPL_URING_HIDDEN size_t cevpl_buf_ring_size(unsigned entries);
CEVPL_URING_HIDDEN void cevpl_buf_ring_init(struct io_uring_buf_ring *br);
CEVPL_URING_HIDDEN void cevpl_buf_ring_add(struct io_uring_buf_ring *br, void *addr, unsigned len, uint16_t bid, unsigned entries, int offset);
CEVPL_URING_HIDDEN void cevpl_buf_ring_advance(struct io_uring_buf_ring *br, int count);
CEVPL_URING_HIDDEN int cevpl_buf_ring_register(struct io_uring *ring, struct io_uring_buf_ring *br, unsigned entries, uint16_t group);
CEVPL_URING_HIDDEN int cevpl_buf_ring_unregister(struct io_uring *ring, uint16_t group);

#endif
