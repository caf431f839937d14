/*
 * The RDMA seam: the only way the engine reaches rdma_cm and verbs.
 *
 * A table of plain C function pointers over opaque handles and a few small
 * structs of our own.  The shipped library fills it from librdmacm.so.1 and
 * libibverbs.so.1 opened at run time (cevpl_rdma_ops_open, rdma.c: never
 * linked, so libevpl.so has no NEEDED entry and no undefined ibv_/rdma_
 * symbol).  The tests fill it with a deterministic in-memory fabric
 * (Tests/EvplTests/RDMA/), which drives the same engine code.
 *
 * Handles: a `device` is a verbs context (struct ibv_context *), `id` an
 * rdma_cm id, `channel` an rdma_cm event channel, `comp` a completion
 * channel, `qp` a queue pair, and so on; the engine never looks inside them.
 * Functions returning int give 0 on success and a positive errno on failure
 * unless stated otherwise; functions returning a handle give NULL on failure
 * (errno set).
 *
 * Prefix cevpl_, never evpl_ (the version script exports evpl_* only).
 */
#ifndef CEVPL_RDMA_H
#define CEVPL_RDMA_H

#include <stdint.h>
#include <stddef.h>
#include <sys/socket.h>

#define CEVPL_RDMA_HIDDEN __attribute__((visibility("hidden")))

/* rdma_cm events, as the engine needs them. */
enum cevpl_rdma_cm_event_type {
    CEVPL_CM_ADDR_RESOLVED = 0,
    CEVPL_CM_ADDR_ERROR = 1,
    CEVPL_CM_ROUTE_RESOLVED = 2,
    CEVPL_CM_ROUTE_ERROR = 3,
    CEVPL_CM_CONNECT_REQUEST = 4,   /* id = the new id; listen_id = the listening one */
    CEVPL_CM_CONNECT_ERROR = 5,     /* also UNREACHABLE */
    CEVPL_CM_REJECTED = 6,
    CEVPL_CM_ESTABLISHED = 7,
    CEVPL_CM_DISCONNECTED = 8,
    CEVPL_CM_DEVICE_REMOVAL = 9,
    CEVPL_CM_TIMEWAIT_EXIT = 10,
    CEVPL_CM_OTHER = 11,            /* anything else: ignored */
};

#define CEVPL_RDMA_PRIVATE_DATA_MAX 56

/* One rdma_cm event, copied out (the real event is acknowledged before
 * cevpl_rdma_ops.get_event returns, except that a CONNECT_REQUEST's new id
 * stays valid until destroyed). */
typedef struct {
    int type;                       /* enum cevpl_rdma_cm_event_type */
    int status;                     /* the event's status (errno or reject reason) */
    void *id;
    void *listen_id;                /* CONNECT_REQUEST only */
    uint8_t private_data_len;
    uint8_t private_data[CEVPL_RDMA_PRIVATE_DATA_MAX];
    /* UD (RDMA_PS_UDP) ESTABLISHED: the peer's queue pair, its qkey, and the
     * address handle attributes for create_ah (opaque: struct ibv_ah_attr). */
    uint32_t ud_qp_num;
    uint32_t ud_qkey;
    uint64_t ud_ah_attr[8];
} cevpl_rdma_cm_event;

/* Same layout as struct ibv_sge (asserted in rdma.c). */
typedef struct {
    uint64_t addr;
    uint32_t length;
    uint32_t lkey;
} cevpl_rdma_sge;

enum cevpl_rdma_opcode {
    CEVPL_RDMA_SEND = 0,
    CEVPL_RDMA_SEND_WITH_IMM = 1,
    CEVPL_RDMA_WRITE = 2,
    CEVPL_RDMA_WRITE_WITH_IMM = 3,
    CEVPL_RDMA_READ = 4,
    CEVPL_RDMA_RECV = 5,            /* completions only */
    CEVPL_RDMA_RECV_WITH_IMM = 6,   /* completions only (RECV with imm_data) */
};

#define CEVPL_RDMA_SEND_SIGNALED 1u
#define CEVPL_RDMA_SEND_INLINE   2u

/* One send-queue work request. */
typedef struct {
    uint64_t wr_id;
    int opcode;                     /* CEVPL_RDMA_SEND .. CEVPL_RDMA_READ */
    uint32_t flags;                 /* CEVPL_RDMA_SEND_* */
    uint32_t imm;                   /* *_WITH_IMM: host order */
    int nsge;
    const cevpl_rdma_sge *sge;
    uint64_t remote_addr;           /* WRITE/READ */
    uint32_t rkey;                  /* WRITE/READ */
    void *ah;                       /* UD: address handle */
    uint32_t remote_qpn;            /* UD */
    uint32_t remote_qkey;           /* UD */
} cevpl_rdma_send_wr;

/* One receive work request (one buffer). */
typedef struct {
    uint64_t wr_id;
    cevpl_rdma_sge sge;
} cevpl_rdma_recv_wr;

/* Status values of a completion (the ibv_wc_status numbers that matter). */
enum cevpl_rdma_wc_status {
    CEVPL_WC_SUCCESS = 0,
    CEVPL_WC_LOC_LEN_ERR = 1,
    CEVPL_WC_LOC_PROT_ERR = 4,
    CEVPL_WC_WR_FLUSH_ERR = 5,
    CEVPL_WC_REM_ACCESS_ERR = 10,
    CEVPL_WC_RETRY_EXC_ERR = 12,
    CEVPL_WC_RNR_RETRY_EXC_ERR = 13,
    CEVPL_WC_GENERAL_ERR = 21,
};

/* One completion. */
typedef struct {
    uint64_t wr_id;
    int status;                     /* enum cevpl_rdma_wc_status (ibv numbering) */
    int opcode;                     /* enum cevpl_rdma_opcode */
    uint32_t byte_len;              /* receives: bytes received (UD: including the 40-byte GRH) */
    uint32_t qp_num;                /* the local queue pair */
    uint32_t src_qp;                /* UD receives: the sender's queue pair */
    uint32_t imm;                   /* RECV_WITH_IMM: host order */
} cevpl_rdma_wc;

/* Connection parameters for connect/accept. */
typedef struct {
    const void *private_data;
    uint8_t private_data_len;
    uint8_t responder_resources;
    uint8_t initiator_depth;
    uint8_t retry_count;
    uint8_t rnr_retry_count;
    uint32_t qp_num;                /* UD accept: our queue pair */
    uint32_t qkey;                  /* UD accept: our qkey */
} cevpl_rdma_conn_param;

/* Queue pair shape. */
typedef struct {
    int ud;                         /* 0: RC, 1: UD */
    void *send_cq;
    void *recv_cq;
    void *srq;                      /* RC: the shared receive queue; UD: NULL (own receive queue) */
    uint32_t max_send_wr;
    uint32_t max_recv_wr;           /* UD only */
    uint32_t max_send_sge;
    uint32_t max_recv_sge;
    uint32_t max_inline;
} cevpl_rdma_qp_attr;

#define CEVPL_RDMA_UD_QKEY 0x11111111u
#define CEVPL_RDMA_GRH_SIZE 40

typedef struct cevpl_rdma_ops {
    /* Devices: the open verbs contexts (rdma_get_devices); count returned,
     * *list NULL-terminated, released with free_devices. */
    int (*get_devices)(void ***list);
    void (*free_devices)(void **list);
    const char *(*device_name)(void *device);

    /* Protection domains and memory regions (access: local write, remote
     * read, remote write). */
    void *(*alloc_pd)(void *device);
    int (*dealloc_pd)(void *pd);
    void *(*reg_mr)(void *pd, void *addr, size_t length, uint32_t *lkey, uint32_t *rkey);
    int (*dereg_mr)(void *mr);

    /* Completion channels (fd non-blocking), completion queues. */
    void *(*create_comp_channel)(void *device, int *fd);
    int (*destroy_comp_channel)(void *comp);
    void *(*create_cq)(void *device, int cqe, void *comp);
    int (*destroy_cq)(void *cq);
    /* Arm the queue: the next completion makes comp's fd readable. */
    int (*req_notify_cq)(void *cq);
    /* Take and acknowledge one notification: 0, or EAGAIN when none. */
    int (*get_cq_event)(void *comp);
    /* Up to n completions into wc: the count (>= 0), or -1 on error. */
    int (*poll_cq)(void *cq, int n, cevpl_rdma_wc *wc);

    /* Shared receive queues. */
    void *(*create_srq)(void *pd, uint32_t max_wr, uint32_t max_sge);
    int (*destroy_srq)(void *srq);
    int (*post_srq_recv)(void *srq, const cevpl_rdma_recv_wr *wr, int n);

    /* Queue pairs, created on an id (rdma_create_qp); *qp_num set. */
    void *(*create_qp)(void *id, void *pd, const cevpl_rdma_qp_attr *attr, uint32_t *qp_num);
    void (*destroy_qp)(void *id);
    /* Posts n work requests as one chain. */
    int (*post_send)(void *qp, const cevpl_rdma_send_wr *wr, int n);
    int (*post_recv)(void *qp, const cevpl_rdma_recv_wr *wr, int n);

    /* UD address handles. */
    void *(*create_ah)(void *pd, const uint64_t *ah_attr);
    int (*destroy_ah)(void *ah);

    /* rdma_cm.  Event channel fd non-blocking. */
    void *(*create_event_channel)(int *fd);
    void (*destroy_event_channel)(void *channel);
    /* ud: 0 = RDMA_PS_TCP (RC), 1 = RDMA_PS_UDP. */
    void *(*create_id)(void *channel, void *context, int ud);
    int (*destroy_id)(void *id);
    void *(*id_context)(void *id);
    void (*set_id_context)(void *id, void *context);
    /* The verbs context the id is bound to (NULL before address resolution
     * or a bind to a specific address). */
    void *(*id_device)(void *id);
    int (*bind_addr)(void *id, const struct sockaddr *addr);
    int (*listen)(void *id, int backlog);
    int (*resolve_addr)(void *id, const struct sockaddr *src, const struct sockaddr *dst, int timeout_ms);
    int (*resolve_route)(void *id, int timeout_ms);
    int (*connect)(void *id, const cevpl_rdma_conn_param *param);
    int (*accept)(void *id, const cevpl_rdma_conn_param *param);
    int (*reject)(void *id);
    int (*disconnect)(void *id);
    int (*set_tos)(void *id, uint8_t tos);
    /* Next event, copied out: 0, or EAGAIN when none is pending. */
    int (*get_event)(void *channel, cevpl_rdma_cm_event *event);
    /* Addresses of an id (0, or an errno); *len set to the address size. */
    int (*local_addr)(void *id, struct sockaddr_storage *addr, socklen_t *len);
    int (*peer_addr)(void *id, struct sockaddr_storage *addr, socklen_t *len);
    /* The path MTU in bytes of a resolved id (route or port), 0 if unknown. */
    uint32_t (*path_mtu)(void *id);
    /* Moves an id (a CONNECT_REQUEST's new id) to another event channel:
     * its later events arrive there (rdma_migrate_id). */
    int (*migrate_id)(void *id, void *channel);
} cevpl_rdma_ops;

/* Opens librdmacm.so.1 and libibverbs.so.1 (overridable with
 * EVPL_RDMACM_LIBRARY / EVPL_IBVERBS_LIBRARY) and fills ops.  0, or -1 with
 * *error set to a static or thread-local reason (library missing, symbol
 * missing, built without the rdma-core headers). */
CEVPL_RDMA_HIDDEN int cevpl_rdma_ops_open(cevpl_rdma_ops *ops, const char **error);

#endif
