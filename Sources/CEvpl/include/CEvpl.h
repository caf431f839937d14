/*
 * The C-only types of the evpl ABI: structs, enums, callback typedefs,
 * constants and the three static-inline iovec accessors.  Nothing here has a
 * symbol.  The header generator copies the part between the EVPL-TYPES
 * markers verbatim into include/evpl/evpl.h; the opaque handles are
 * forward-declared there too, so C sees exactly one definition of each type.
 * Layouts are fixed by ../shared/spec/ABI.md (x86-64 offsets in comments).
 */
#ifndef CEVPL_H
#define CEVPL_H

/* EVPL-TYPES-BEGIN */
#include <stdint.h>
#include <stdarg.h>
#include <time.h>
#include <sched.h>   /* struct timespec also under strict -std=c99 */
#include <sys/uio.h>

/* ---- Opaque handles ----------------------------------------------------- */
struct evpl;
struct evpl_bind;
struct evpl_listener;
struct evpl_listener_binding;
struct evpl_endpoint;
struct evpl_address;
struct evpl_global_config;
struct evpl_thread_config;
struct evpl_thread;
struct evpl_threadpool;
struct evpl_block_device;
struct evpl_block_queue;

/* ---- Identifiers -------------------------------------------------------- */
enum evpl_framework_id {
    EVPL_FRAMEWORK_RDMACM   = 0,
    EVPL_FRAMEWORK_XLIO     = 1,
    EVPL_FRAMEWORK_IO_URING = 2,
    EVPL_FRAMEWORK_VFIO     = 3,
    EVPL_FRAMEWORK_TLS      = 4,
    EVPL_NUM_FRAMEWORK      = 5
};

enum evpl_protocol_id {
    EVPL_DATAGRAM_SOCKET_UDP  = 0,
    EVPL_DATAGRAM_RDMACM_RC   = 1,
    EVPL_DATAGRAM_RDMACM_UD   = 2,
    EVPL_STREAM_SOCKET_TCP    = 3,
    EVPL_STREAM_XLIO_TCP      = 4,
    EVPL_STREAM_IO_URING_TCP  = 5,
    EVPL_STREAM_RDMACM_RC     = 6,
    EVPL_STREAM_SOCKET_TLS    = 7,
    EVPL_NUM_PROTO            = 8
};

enum evpl_block_protocol_id {
    EVPL_BLOCK_PROTOCOL_IO_URING = 0,
    EVPL_BLOCK_PROTOCOL_VFIO     = 1,
    EVPL_NUM_BLOCK_PROTOCOL      = 2
};

#define EVPL_NOTIFY_CONNECTED    1
#define EVPL_NOTIFY_DISCONNECTED 2
#define EVPL_NOTIFY_RECV_DATA    3
#define EVPL_NOTIFY_RECV_MSG     4
#define EVPL_NOTIFY_SENT         5

#define EVPL_SEND_FLAG_TAKE_REF    0x01
#define EVPL_RECV_FLAG_ALL_OR_NONE 0x1
#define EVPL_RDMA_FLAG_TAKE_REF    0x01

/* ---- Memory ------------------------------------------------------------- */

/* A reference to a run of bytes inside one pooled buffer (24 bytes).
 * data, length: public (length may be trimmed before evpl_iovec_commit or a send).
 * pad: reserved.  private_data: private to the library (the owning buffer). */
struct evpl_iovec {
    void        *data;          /* @0  */
    unsigned int length;        /* @8  */
    unsigned int pad;           /* @12 */
    void        *private_data;  /* @16 */
};

static inline void *
evpl_iovec_data(const struct evpl_iovec *iovec)
{
    return iovec->data;
}

static inline unsigned int
evpl_iovec_length(const struct evpl_iovec *iovec)
{
    return iovec->length;
}

static inline void
evpl_iovec_set_length(struct evpl_iovec *iovec, unsigned int length)
{
    iovec->length = length;
}

/* ---- Notifications ------------------------------------------------------ */

/* What a notify callback is told (32 bytes).  recv_msg is valid for
 * EVPL_NOTIFY_RECV_MSG, sent for EVPL_NOTIFY_SENT. */
struct evpl_notify {
    unsigned int notify_type;    /* @0: EVPL_NOTIFY_* */
    int          notify_status;  /* @4: 0, or a positive errno */
    union {
        struct {
            struct evpl_iovec   *iovec;   /* @8  */
            unsigned int         niov;    /* @16 */
            unsigned int         length;  /* @20 */
            struct evpl_address *addr;    /* @24 */
        } recv_msg;
        struct {
            unsigned long bytes;          /* @8  */
            unsigned long msgs;           /* @16 */
        } sent;
    };
};

/* ---- Callbacks ---------------------------------------------------------- */
typedef void (*evpl_notify_callback_t)(struct evpl *evpl, struct evpl_bind *bind,
                                       struct evpl_notify *notify, void *private_data);
typedef int (*evpl_segment_callback_t)(struct evpl *evpl, struct evpl_bind *bind,
                                       void *private_data);
typedef void (*evpl_attach_callback_t)(struct evpl *evpl, struct evpl_bind *bind,
                                       evpl_notify_callback_t *notify_callback,
                                       evpl_segment_callback_t *segment_callback,
                                       void **conn_private_data, void *private_data);

struct evpl_timer;
typedef void (*evpl_timer_callback_t)(struct evpl *evpl, struct evpl_timer *timer);
typedef void (*deferral_callback_t)(struct evpl *evpl, void *private_data);
struct evpl_doorbell;
typedef void (*evpl_doorbell_callback_t)(struct evpl *evpl, struct evpl_doorbell *doorbell);
typedef void *(*evpl_thread_init_callback_t)(struct evpl *evpl, void *private_data);
typedef void (*evpl_thread_shutdown_callback_t)(struct evpl *evpl, void *private_data);
typedef void (*evpl_log_fn)(const char *level, const char *module, const char *srcfile,
                            int lineno, const char *fmt, va_list argp);
typedef void (*evpl_flush_fn)(void);
typedef void (*evpl_block_callback_t)(struct evpl *evpl, int status, void *private_data);

/* ---- User-allocated loop objects ---------------------------------------- */

/* A periodic timer (32 bytes), owned by the caller, armed by evpl_add_timer.
 * callback, interval: read-only while armed.  deadline: the next expiry
 * (CLOCK_MONOTONIC), kept current by the library. */
struct evpl_timer {
    evpl_timer_callback_t callback;  /* @0  */
    uint64_t              interval;  /* @8: microseconds */
    struct timespec       deadline;  /* @16 */
};

/* A deferred call (24 bytes), owned by the caller; evpl_deferral_init fills it.
 * callback, private_data: public.  armed: private to the library. */
struct evpl_deferral {
    deferral_callback_t callback;      /* @0  */
    void               *private_data;  /* @8  */
    uint64_t            armed;         /* @16 */
};

/* A cross-thread wake-up (48 bytes), owned by the caller; private to the library. */
struct evpl_doorbell {
    uint64_t opaque[6];
};
/* EVPL-TYPES-END */

#endif /* CEVPL_H */
