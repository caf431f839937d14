#include "CEvplUring.h"
#include <liburing.h>
#include <poll.h>
#include <sys/socket.h>

_Static_assert(CEVPL_CQE_F_BUFFER == IORING_CQE_F_BUFFER, "IORING_CQE_F_BUFFER");
_Static_assert(CEVPL_CQE_F_MORE == IORING_CQE_F_MORE, "IORING_CQE_F_MORE");
_Static_assert(CEVPL_CQE_BUFFER_SHIFT == IORING_CQE_BUFFER_SHIFT, "IORING_CQE_BUFFER_SHIFT");
_Static_assert(CEVPL_RWF_DSYNC == RWF_DSYNC, "RWF_DSYNC");

size_t cevpl_uring_size(void) { return sizeof(struct io_uring); }

/* SINGLE_ISSUER | COOP_TASKRUN | SUBMIT_ALL help a ring owned by one thread;
 * kernels that do not know them refuse, and the caller retries without. */
int cevpl_uring_init(struct io_uring *ring, unsigned entries, int single_issuer)
{
    struct io_uring_params p = { 0 };
    if (single_issuer)
        p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL;
    return io_uring_queue_init_params(entries, ring, &p);
}

void cevpl_uring_exit(struct io_uring *ring) { io_uring_queue_exit(ring); }
int cevpl_uring_submit(struct io_uring *ring) { return io_uring_submit(ring); }
int cevpl_uring_register_eventfd(struct io_uring *ring, int fd) { return io_uring_register_eventfd(ring, fd); }
struct io_uring_sqe *cevpl_uring_get_sqe(struct io_uring *ring) { return io_uring_get_sqe(ring); }
unsigned cevpl_uring_sq_ready(const struct io_uring *ring) { return io_uring_sq_ready(ring); }

unsigned cevpl_uring_reap(struct io_uring *ring, cevpl_cqe *out, unsigned max)
{
    struct io_uring_cqe *cqes[64];
    unsigned n = io_uring_peek_batch_cqe(ring, cqes, max < 64 ? max : 64);
    for (unsigned i = 0; i < n; i++) {
        out[i].user_data = cqes[i]->user_data;
        out[i].res = cqes[i]->res;
        out[i].flags = cqes[i]->flags;
    }
    io_uring_cq_advance(ring, n);
    return n;
}

void cevpl_uring_prep_recv_multishot(struct io_uring_sqe *sqe, int fd, uint16_t group, uint64_t data)
{
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = group;
    io_uring_sqe_set_data64(sqe, data);
}

void cevpl_uring_prep_accept_multishot(struct io_uring_sqe *sqe, int fd, uint64_t data)
{
    io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, data);
}

void cevpl_uring_prep_cancel_data(struct io_uring_sqe *sqe, uint64_t target, uint64_t data)
{
    io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data64(sqe, data);
}

void cevpl_uring_prep_sendmsg(struct io_uring_sqe *sqe, int fd, const struct msghdr *msg, uint64_t data)
{
    io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, data);
}

void cevpl_uring_prep_poll_out(struct io_uring_sqe *sqe, int fd, uint64_t data)
{
    io_uring_prep_poll_add(sqe, fd, POLLOUT);
    io_uring_sqe_set_data64(sqe, data);
}

void cevpl_uring_prep_cancel_fd(struct io_uring_sqe *sqe, int fd, uint64_t data)
{
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, data);
}

void cevpl_uring_prep_nop(struct io_uring_sqe *sqe, uint64_t data)
{
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, data);
}

void cevpl_uring_prep_readv(struct io_uring_sqe *sqe, int fd, const struct iovec *iov, unsigned n, uint64_t offset, uint64_t data)
{
    io_uring_prep_readv(sqe, fd, iov, n, offset);
    io_uring_sqe_set_data64(sqe, data);
}

void cevpl_uring_prep_writev(struct io_uring_sqe *sqe, int fd, const struct iovec *iov, unsigned n, uint64_t offset, int flags, uint64_t data)
{
    io_uring_prep_writev2(sqe, fd, iov, n, offset, flags);
    io_uring_sqe_set_data64(sqe, data);
}

void cevpl_uring_prep_fsync(struct io_uring_sqe *sqe, int fd, uint64_t data)
{
    io_uring_prep_fsync(sqe, fd, 0);
    io_uring_sqe_set_data64(sqe, data);
}

size_t cevpl_buf_ring_size(unsigned entries) { return entries * sizeof(struct io_uring_buf); }
void cevpl_buf_ring_init(struct io_uring_buf_ring *br) { io_uring_buf_ring_init(br); }

void cevpl_buf_ring_add(struct io_uring_buf_ring *br, void *addr, unsigned len, uint16_t bid, unsigned entries, int offset)
{
    io_uring_buf_ring_add(br, addr, len, bid, io_uring_buf_ring_mask(entries), offset);
}

void cevpl_buf_ring_advance(struct io_uring_buf_ring *br, int count) { io_uring_buf_ring_advance(br, count); }

int cevpl_buf_ring_register(struct io_uring *ring, struct io_uring_buf_ring *br, unsigned entries, uint16_t group)
{
    struct io_uring_buf_reg reg = { .ring_addr = (unsigned long) br, .ring_entries = entries, .bgid = group };
    return io_uring_register_buf_ring(ring, &reg, 0);
}

int cevpl_buf_ring_unregister(struct io_uring *ring, uint16_t group) { return io_uring_unregister_buf_ring(ring, group); }
