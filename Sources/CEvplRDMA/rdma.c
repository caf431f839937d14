/*
 * The RDMA seam's real implementation: cevpl_rdma_ops filled from
 * librdmacm.so.1 and libibverbs.so.1, opened with dlopen at run time.
 *
 * Approach.  libevpl.so must not need rdma-core to load, so nothing here is
 * linked against it: the rdma-core headers give the types and the
 * function-pointer types (__typeof__(rdma_create_id) * and so on), dlsym
 * gives the addresses, and every real function is called only as dl.NAME(...)
 * through the table `dl` below.  The header helpers that are static inline
 * over the provider's ops table (ibv_post_send, ibv_post_recv,
 * ibv_post_srq_recv, ibv_poll_cq, ibv_req_notify_cq, rdma_get_local_addr,
 * rdma_get_peer_addr, verbs_get_ctx_op) reference no symbol and are used as
 * they are.  Two names are function-like macros in <infiniband/verbs.h>
 * (ibv_reg_mr, ibv_query_port) that expand to inline code calling the
 * exported symbol; they are #undef'd so that dl.ibv_reg_mr(...) means the
 * member, and the inline logic they wrap is written out where it matters
 * (path_mtu).  Check: `nm -u` of the object lists libc symbols only.
 *
 * Each function translates between the seam's small structs
 * (include/CEvplRDMA.h) and the ibv_/rdma_ ones, and turns the libraries'
 * error conventions (librdmacm: -1 and errno; verbs: an errno value, or on
 * some providers a negative one) into the seam's: 0, or a positive errno.
 *
 * Without the rdma-core headers (libibverbs-dev, librdmacm-dev) at build
 * time the file still compiles and cevpl_rdma_ops_open fails with a reason.
 */
#include "CEvplRDMA.h"

#include <errno.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<infiniband/verbs.h>) && __has_include(<rdma/rdma_cma.h>)
#define CEVPL_RDMA_HAVE_HEADERS 1
#endif
#endif

#ifndef CEVPL_RDMA_HAVE_HEADERS

int cevpl_rdma_ops_open(cevpl_rdma_ops *ops, const char **error)
{
    memset(ops, 0, sizeof(*ops));
    *error = "built without the rdma-core headers (libibverbs-dev, librdmacm-dev)";
    return -1;
}

#else

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

/* Macros over inline wrappers that call the exported symbol directly; the
 * names below are struct members, reached only through dlsym. */
#undef ibv_reg_mr
#undef ibv_query_port

/* ------------------------------------------------------------------ */
/* Layout and numbering the seam relies on.                           */

_Static_assert(sizeof(cevpl_rdma_sge) == sizeof(struct ibv_sge), "cevpl_rdma_sge is struct ibv_sge");
_Static_assert(offsetof(cevpl_rdma_sge, addr) == offsetof(struct ibv_sge, addr), "sge addr");
_Static_assert(offsetof(cevpl_rdma_sge, length) == offsetof(struct ibv_sge, length), "sge length");
_Static_assert(offsetof(cevpl_rdma_sge, lkey) == offsetof(struct ibv_sge, lkey), "sge lkey");
_Static_assert(sizeof(struct ibv_ah_attr) <= sizeof(((cevpl_rdma_cm_event *)0)->ud_ah_attr),
               "struct ibv_ah_attr fits ud_ah_attr");
_Static_assert(_Alignof(struct ibv_ah_attr) <= _Alignof(uint64_t), "ud_ah_attr alignment");

_Static_assert((int)CEVPL_WC_SUCCESS == (int)IBV_WC_SUCCESS, "wc status");
_Static_assert((int)CEVPL_WC_LOC_LEN_ERR == (int)IBV_WC_LOC_LEN_ERR, "wc status");
_Static_assert((int)CEVPL_WC_LOC_PROT_ERR == (int)IBV_WC_LOC_PROT_ERR, "wc status");
_Static_assert((int)CEVPL_WC_WR_FLUSH_ERR == (int)IBV_WC_WR_FLUSH_ERR, "wc status");
_Static_assert((int)CEVPL_WC_REM_ACCESS_ERR == (int)IBV_WC_REM_ACCESS_ERR, "wc status");
_Static_assert((int)CEVPL_WC_RETRY_EXC_ERR == (int)IBV_WC_RETRY_EXC_ERR, "wc status");
_Static_assert((int)CEVPL_WC_RNR_RETRY_EXC_ERR == (int)IBV_WC_RNR_RETRY_EXC_ERR, "wc status");
_Static_assert((int)CEVPL_WC_GENERAL_ERR == (int)IBV_WC_GENERAL_ERR, "wc status");

/* ------------------------------------------------------------------ */
/* The symbols, looked up by cevpl_rdma_ops_open.                     */

#define CEVPL_RDMACM_SYMBOLS(X) \
    X(rdma_get_devices)           \
    X(rdma_free_devices)          \
    X(rdma_create_event_channel)  \
    X(rdma_destroy_event_channel) \
    X(rdma_create_id)             \
    X(rdma_destroy_id)            \
    X(rdma_bind_addr)             \
    X(rdma_listen)                \
    X(rdma_resolve_addr)          \
    X(rdma_resolve_route)         \
    X(rdma_connect)               \
    X(rdma_accept)                \
    X(rdma_reject)                \
    X(rdma_disconnect)            \
    X(rdma_set_option)            \
    X(rdma_get_cm_event)          \
    X(rdma_ack_cm_event)          \
    X(rdma_create_qp)             \
    X(rdma_destroy_qp)            \
    X(rdma_migrate_id)

#define CEVPL_IBVERBS_SYMBOLS(X)  \
    X(ibv_get_device_name)        \
    X(ibv_alloc_pd)               \
    X(ibv_dealloc_pd)             \
    X(ibv_reg_mr)                 \
    X(ibv_dereg_mr)               \
    X(ibv_create_comp_channel)    \
    X(ibv_destroy_comp_channel)   \
    X(ibv_create_cq)              \
    X(ibv_destroy_cq)             \
    X(ibv_get_cq_event)           \
    X(ibv_ack_cq_events)          \
    X(ibv_create_srq)             \
    X(ibv_destroy_srq)            \
    X(ibv_create_ah)              \
    X(ibv_destroy_ah)             \
    X(ibv_query_port)

/* ibv_reg_mr and ibv_query_port take their types from the exported
 * declarations (struct ibv_mr *(struct ibv_pd *, void *, size_t, int) and
 * int (struct ibv_context *, uint8_t, struct _compat_ibv_port_attr *)). */
#define CEVPL_RDMA_MEMBER(name) __typeof__(name) *name;
static struct {
    CEVPL_RDMACM_SYMBOLS(CEVPL_RDMA_MEMBER)
    CEVPL_IBVERBS_SYMBOLS(CEVPL_RDMA_MEMBER)
} dl;
#undef CEVPL_RDMA_MEMBER

/* ------------------------------------------------------------------ */
/* Error conventions.                                                 */

/* librdmacm: 0, or -1 with errno. */
static int cm_rc(int ret)
{
    if (ret == 0)
        return 0;
    return errno > 0 ? errno : EIO;
}

/* verbs: 0, or an errno value (negative on some providers, -1 with errno on
 * old ones). */
static int ibv_rc(int ret)
{
    if (ret == 0)
        return 0;
    if (ret == -1)
        return errno > 0 ? errno : EIO;
    return ret < 0 ? -ret : ret;
}

static int set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return errno;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Devices.                                                           */

/* rdma_get_devices returns NULL (and count 0) when there is no RDMA stack at
 * all; the seam promises a NULL-terminated list, so that case gets an empty
 * static one (free_devices knows it). */
static void *no_devices[1] = { NULL };

static int get_devices(void ***list)
{
    int n = 0;
    struct ibv_context **devs = dl.rdma_get_devices(&n);
    if (devs == NULL) {
        *list = no_devices;
        return 0;
    }
    *list = (void **)devs;
    return n;
}

static void free_devices(void **list)
{
    if (list != NULL && list != no_devices)
        dl.rdma_free_devices((struct ibv_context **)list);
}

static const char *device_name(void *device)
{
    struct ibv_context *ctx = device;
    if (ctx == NULL || ctx->device == NULL)
        return NULL;
    return dl.ibv_get_device_name(ctx->device);
}

/* ------------------------------------------------------------------ */
/* Protection domains and memory regions.                             */

static void *alloc_pd(void *device)
{
    return dl.ibv_alloc_pd(device);
}

static int dealloc_pd(void *pd)
{
    return ibv_rc(dl.ibv_dealloc_pd(pd));
}

static void *reg_mr(void *pd, void *addr, size_t length, uint32_t *lkey, uint32_t *rkey)
{
    struct ibv_mr *mr = dl.ibv_reg_mr(pd, addr, length,
                                      IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
                                          IBV_ACCESS_REMOTE_WRITE);
    if (mr == NULL)
        return NULL;
    *lkey = mr->lkey;
    *rkey = mr->rkey;
    return mr;
}

static int dereg_mr(void *mr)
{
    return ibv_rc(dl.ibv_dereg_mr(mr));
}

/* ------------------------------------------------------------------ */
/* Completion channels and completion queues.                         */

static void *create_comp_channel(void *device, int *fd)
{
    struct ibv_comp_channel *comp = dl.ibv_create_comp_channel(device);
    if (comp == NULL)
        return NULL;
    int err = set_nonblocking(comp->fd);
    if (err != 0) {
        dl.ibv_destroy_comp_channel(comp);
        errno = err;
        return NULL;
    }
    *fd = comp->fd;
    return comp;
}

static int destroy_comp_channel(void *comp)
{
    return ibv_rc(dl.ibv_destroy_comp_channel(comp));
}

static void *create_cq(void *device, int cqe, void *comp)
{
    return dl.ibv_create_cq(device, cqe, NULL, comp, 0);
}

static int destroy_cq(void *cq)
{
    return ibv_rc(dl.ibv_destroy_cq(cq));
}

static int req_notify_cq(void *cq)
{
    return ibv_rc(ibv_req_notify_cq(cq, 0));
}

/* The channel's fd is non-blocking, so "nothing pending" is -1/EAGAIN. */
static int get_cq_event(void *comp)
{
    struct ibv_cq *cq;
    void *cq_context;
    if (dl.ibv_get_cq_event(comp, &cq, &cq_context) != 0)
        return errno > 0 ? errno : EIO;
    dl.ibv_ack_cq_events(cq, 1);
    return 0;
}

static void convert_wc(const struct ibv_wc *in, cevpl_rdma_wc *out)
{
    out->wr_id = in->wr_id;
    out->status = (int)in->status;
    out->byte_len = in->byte_len;
    out->qp_num = in->qp_num;
    out->src_qp = in->src_qp;
    out->imm = 0;
    /* Not valid in error completions (the engine goes by wr_id there). */
    switch (in->opcode) {
    case IBV_WC_SEND:
        out->opcode = CEVPL_RDMA_SEND;
        break;
    case IBV_WC_RDMA_WRITE:
        out->opcode = CEVPL_RDMA_WRITE;
        break;
    case IBV_WC_RDMA_READ:
        out->opcode = CEVPL_RDMA_READ;
        break;
    case IBV_WC_RECV_RDMA_WITH_IMM:
        out->opcode = CEVPL_RDMA_RECV_WITH_IMM;
        break;
    default:
        if (in->opcode & IBV_WC_RECV)
            out->opcode = (in->wc_flags & IBV_WC_WITH_IMM) ? CEVPL_RDMA_RECV_WITH_IMM : CEVPL_RDMA_RECV;
        else
            out->opcode = CEVPL_RDMA_SEND;
        break;
    }
    if (out->opcode == CEVPL_RDMA_RECV_WITH_IMM)
        out->imm = ntohl(in->imm_data);
}

#define CEVPL_RDMA_BATCH 64

static int poll_cq(void *cq, int n, cevpl_rdma_wc *wc)
{
    struct ibv_wc batch[CEVPL_RDMA_BATCH];
    int done = 0;
    while (done < n) {
        int want = n - done < CEVPL_RDMA_BATCH ? n - done : CEVPL_RDMA_BATCH;
        int got = ibv_poll_cq(cq, want, batch);
        if (got < 0)
            return done > 0 ? done : -1;
        for (int i = 0; i < got; i++)
            convert_wc(&batch[i], &wc[done + i]);
        done += got;
        if (got < want)
            break;  /* the queue is empty */
    }
    return done;
}

/* ------------------------------------------------------------------ */
/* Shared receive queues and receive work requests.                   */

static void *create_srq(void *pd, uint32_t max_wr, uint32_t max_sge)
{
    struct ibv_srq_init_attr init;
    memset(&init, 0, sizeof(init));
    init.attr.max_wr = max_wr;
    init.attr.max_sge = max_sge;
    return dl.ibv_create_srq(pd, &init);
}

static int destroy_srq(void *srq)
{
    return ibv_rc(dl.ibv_destroy_srq(srq));
}

/* Builds chains of up to CEVPL_RDMA_BATCH receives; sg_list points at the
 * seam's sge (same layout), which verbs reads and does not keep. */
static int post_recv_chain(void *queue, int srq, const cevpl_rdma_recv_wr *wr, int n)
{
    struct ibv_recv_wr chain[CEVPL_RDMA_BATCH];
    while (n > 0) {
        int count = n < CEVPL_RDMA_BATCH ? n : CEVPL_RDMA_BATCH;
        for (int i = 0; i < count; i++) {
            chain[i].wr_id = wr[i].wr_id;
            chain[i].next = i + 1 < count ? &chain[i + 1] : NULL;
            chain[i].sg_list = (struct ibv_sge *)(uintptr_t)&wr[i].sge;
            chain[i].num_sge = 1;
        }
        struct ibv_recv_wr *bad = NULL;
        int ret = srq ? ibv_post_srq_recv(queue, chain, &bad) : ibv_post_recv(queue, chain, &bad);
        if (ret != 0)
            return ibv_rc(ret);
        wr += count;
        n -= count;
    }
    return 0;
}

static int post_srq_recv(void *srq, const cevpl_rdma_recv_wr *wr, int n)
{
    return post_recv_chain(srq, 1, wr, n);
}

static int post_recv(void *qp, const cevpl_rdma_recv_wr *wr, int n)
{
    return post_recv_chain(qp, 0, wr, n);
}

/* ------------------------------------------------------------------ */
/* Queue pairs, send work requests, address handles.                  */

/* rdma_create_qp brings an RC queue pair to INIT (connect/accept take it
 * further) and a UD one straight to RTS, with the qkey rdma_cm chose for the
 * id: RDMA_UDP_QKEY for RDMA_PS_UDP over IP addressing. */
static void *create_qp(void *id, void *pd, const cevpl_rdma_qp_attr *attr, uint32_t *qp_num)
{
    struct rdma_cm_id *cm = id;
    struct ibv_qp_init_attr init;
    memset(&init, 0, sizeof(init));
    init.send_cq = attr->send_cq;
    init.recv_cq = attr->recv_cq;
    init.srq = attr->srq;
    init.cap.max_send_wr = attr->max_send_wr;
    init.cap.max_recv_wr = attr->srq != NULL ? 0 : attr->max_recv_wr;
    init.cap.max_send_sge = attr->max_send_sge;
    init.cap.max_recv_sge = attr->srq != NULL ? 0 : attr->max_recv_sge;
    init.cap.max_inline_data = attr->max_inline;
    init.qp_type = attr->ud ? IBV_QPT_UD : IBV_QPT_RC;
    init.sq_sig_all = 0;
    if (dl.rdma_create_qp(cm, pd, &init) != 0) {
        if (errno == 0)
            errno = EIO;
        return NULL;
    }
    *qp_num = cm->qp->qp_num;
    return cm->qp;
}

static void destroy_qp(void *id)
{
    dl.rdma_destroy_qp(id);
}

static int send_opcode(int opcode, enum ibv_wr_opcode *out)
{
    switch (opcode) {
    case CEVPL_RDMA_SEND: *out = IBV_WR_SEND; return 0;
    case CEVPL_RDMA_SEND_WITH_IMM: *out = IBV_WR_SEND_WITH_IMM; return 0;
    case CEVPL_RDMA_WRITE: *out = IBV_WR_RDMA_WRITE; return 0;
    case CEVPL_RDMA_WRITE_WITH_IMM: *out = IBV_WR_RDMA_WRITE_WITH_IMM; return 0;
    case CEVPL_RDMA_READ: *out = IBV_WR_RDMA_READ; return 0;
    default: return EINVAL;
    }
}

/* Chains of up to CEVPL_RDMA_BATCH.  On an error the requests before the
 * failing one may have been posted (verbs' bad_wr semantics). */
static int post_send(void *qp, const cevpl_rdma_send_wr *wr, int n)
{
    struct ibv_send_wr chain[CEVPL_RDMA_BATCH];
    int ud = ((struct ibv_qp *)qp)->qp_type == IBV_QPT_UD;
    while (n > 0) {
        int count = n < CEVPL_RDMA_BATCH ? n : CEVPL_RDMA_BATCH;
        memset(chain, 0, sizeof(chain[0]) * (size_t)count);
        for (int i = 0; i < count; i++) {
            const cevpl_rdma_send_wr *w = &wr[i];
            struct ibv_send_wr *s = &chain[i];
            if (send_opcode(w->opcode, &s->opcode) != 0)
                return EINVAL;
            s->wr_id = w->wr_id;
            s->next = i + 1 < count ? &chain[i + 1] : NULL;
            s->sg_list = (struct ibv_sge *)(uintptr_t)w->sge;
            s->num_sge = w->nsge;
            if (w->flags & CEVPL_RDMA_SEND_SIGNALED)
                s->send_flags |= IBV_SEND_SIGNALED;
            if (w->flags & CEVPL_RDMA_SEND_INLINE)
                s->send_flags |= IBV_SEND_INLINE;
            if (w->opcode == CEVPL_RDMA_SEND_WITH_IMM || w->opcode == CEVPL_RDMA_WRITE_WITH_IMM)
                s->imm_data = htonl(w->imm);
            if (ud) {
                s->wr.ud.ah = w->ah;
                s->wr.ud.remote_qpn = w->remote_qpn;
                s->wr.ud.remote_qkey = w->remote_qkey;
            } else if (w->opcode == CEVPL_RDMA_WRITE || w->opcode == CEVPL_RDMA_WRITE_WITH_IMM ||
                       w->opcode == CEVPL_RDMA_READ) {
                s->wr.rdma.remote_addr = w->remote_addr;
                s->wr.rdma.rkey = w->rkey;
            }
        }
        struct ibv_send_wr *bad = NULL;
        int ret = ibv_post_send(qp, chain, &bad);
        if (ret != 0)
            return ibv_rc(ret);
        wr += count;
        n -= count;
    }
    return 0;
}

static void *create_ah(void *pd, const uint64_t *ah_attr)
{
    struct ibv_ah_attr attr;
    memcpy(&attr, ah_attr, sizeof(attr));
    return dl.ibv_create_ah(pd, &attr);
}

static int destroy_ah(void *ah)
{
    return ibv_rc(dl.ibv_destroy_ah(ah));
}

/* ------------------------------------------------------------------ */
/* rdma_cm: channels and ids.                                         */

static void *create_event_channel(int *fd)
{
    struct rdma_event_channel *ch = dl.rdma_create_event_channel();
    if (ch == NULL)
        return NULL;
    int err = set_nonblocking(ch->fd);
    if (err != 0) {
        dl.rdma_destroy_event_channel(ch);
        errno = err;
        return NULL;
    }
    *fd = ch->fd;
    return ch;
}

static void destroy_event_channel(void *channel)
{
    dl.rdma_destroy_event_channel(channel);
}

static void *create_id(void *channel, void *context, int ud)
{
    struct rdma_cm_id *id = NULL;
    if (dl.rdma_create_id(channel, &id, context, ud ? RDMA_PS_UDP : RDMA_PS_TCP) != 0) {
        if (errno == 0)
            errno = EIO;
        return NULL;
    }
    return id;
}

static int destroy_id(void *id)
{
    return cm_rc(dl.rdma_destroy_id(id));
}

static void *id_context(void *id)
{
    return ((struct rdma_cm_id *)id)->context;
}

static void set_id_context(void *id, void *context)
{
    ((struct rdma_cm_id *)id)->context = context;
}

static void *id_device(void *id)
{
    return ((struct rdma_cm_id *)id)->verbs;
}

static int bind_addr(void *id, const struct sockaddr *addr)
{
    return cm_rc(dl.rdma_bind_addr(id, (struct sockaddr *)(uintptr_t)addr));
}

static int cm_listen(void *id, int backlog)
{
    return cm_rc(dl.rdma_listen(id, backlog));
}

static int resolve_addr(void *id, const struct sockaddr *src, const struct sockaddr *dst, int timeout_ms)
{
    return cm_rc(dl.rdma_resolve_addr(id, (struct sockaddr *)(uintptr_t)src,
                                      (struct sockaddr *)(uintptr_t)dst, timeout_ms));
}

static int resolve_route(void *id, int timeout_ms)
{
    return cm_rc(dl.rdma_resolve_route(id, timeout_ms));
}

/* qp_num matters only when the id has no queue pair of its own (a UD accept
 * answering with another id's queue pair); rdma_cm uses id->qp otherwise.
 * The seam's qkey has no field in struct rdma_conn_param: the kernel
 * answers a UD (SIDR) request with the id's qkey, RDMA_UDP_QKEY. */
static void conn_param(const cevpl_rdma_conn_param *in, struct rdma_conn_param *out)
{
    memset(out, 0, sizeof(*out));
    out->private_data = in->private_data;
    out->private_data_len = in->private_data_len;
    out->responder_resources = in->responder_resources;
    out->initiator_depth = in->initiator_depth;
    out->retry_count = in->retry_count;
    out->rnr_retry_count = in->rnr_retry_count;
    out->qp_num = in->qp_num;
}

static int cm_connect(void *id, const cevpl_rdma_conn_param *param)
{
    struct rdma_conn_param p;
    conn_param(param, &p);
    return cm_rc(dl.rdma_connect(id, &p));
}

static int cm_accept(void *id, const cevpl_rdma_conn_param *param)
{
    struct rdma_conn_param p;
    conn_param(param, &p);
    return cm_rc(dl.rdma_accept(id, &p));
}

static int reject(void *id)
{
    return cm_rc(dl.rdma_reject(id, NULL, 0));
}

static int disconnect(void *id)
{
    return cm_rc(dl.rdma_disconnect(id));
}

static int migrate_id(void *id, void *channel)
{
    return cm_rc(dl.rdma_migrate_id(id, channel));
}

static int set_tos(void *id, uint8_t tos)
{
    return cm_rc(dl.rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_TOS, &tos, sizeof(tos)));
}

/* ------------------------------------------------------------------ */
/* rdma_cm: events.                                                   */

static int event_type(enum rdma_cm_event_type type)
{
    switch (type) {
    case RDMA_CM_EVENT_ADDR_RESOLVED: return CEVPL_CM_ADDR_RESOLVED;
    case RDMA_CM_EVENT_ADDR_ERROR: return CEVPL_CM_ADDR_ERROR;
    case RDMA_CM_EVENT_ROUTE_RESOLVED: return CEVPL_CM_ROUTE_RESOLVED;
    case RDMA_CM_EVENT_ROUTE_ERROR: return CEVPL_CM_ROUTE_ERROR;
    case RDMA_CM_EVENT_CONNECT_REQUEST: return CEVPL_CM_CONNECT_REQUEST;
    case RDMA_CM_EVENT_CONNECT_ERROR: return CEVPL_CM_CONNECT_ERROR;
    case RDMA_CM_EVENT_UNREACHABLE: return CEVPL_CM_CONNECT_ERROR;
    case RDMA_CM_EVENT_REJECTED: return CEVPL_CM_REJECTED;
    case RDMA_CM_EVENT_ESTABLISHED: return CEVPL_CM_ESTABLISHED;
    case RDMA_CM_EVENT_DISCONNECTED: return CEVPL_CM_DISCONNECTED;
    case RDMA_CM_EVENT_DEVICE_REMOVAL: return CEVPL_CM_DEVICE_REMOVAL;
    case RDMA_CM_EVENT_TIMEWAIT_EXIT: return CEVPL_CM_TIMEWAIT_EXIT;
    default: return CEVPL_CM_OTHER;
    }
}

/* The channel's fd is non-blocking, so "nothing pending" is -1/EAGAIN.
 * status: rdma_cm gives errors as negative errnos (made positive here) and a
 * REJECTED event's reason as a positive number (kept). */
static int get_event(void *channel, cevpl_rdma_cm_event *out)
{
    struct rdma_cm_event *ev = NULL;
    if (dl.rdma_get_cm_event(channel, &ev) != 0)
        return errno > 0 ? errno : EIO;

    memset(out, 0, sizeof(*out));
    out->type = event_type(ev->event);
    out->status = ev->status < 0 ? -ev->status : ev->status;
    out->id = ev->id;
    if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST)
        out->listen_id = ev->listen_id;

    int ud = ev->id != NULL && ev->id->ps == RDMA_PS_UDP;
    const void *data = ud ? ev->param.ud.private_data : ev->param.conn.private_data;
    size_t len = ud ? ev->param.ud.private_data_len : ev->param.conn.private_data_len;
    if (data == NULL)
        len = 0;
    if (len > CEVPL_RDMA_PRIVATE_DATA_MAX)
        len = CEVPL_RDMA_PRIVATE_DATA_MAX;
    if (len > 0)
        memcpy(out->private_data, data, len);
    out->private_data_len = (uint8_t)len;

    if (ud && ev->event == RDMA_CM_EVENT_ESTABLISHED) {
        out->ud_qp_num = ev->param.ud.qp_num;
        out->ud_qkey = ev->param.ud.qkey;
        memcpy(out->ud_ah_attr, &ev->param.ud.ah_attr, sizeof(ev->param.ud.ah_attr));
    }

    dl.rdma_ack_cm_event(ev);
    return 0;
}

/* ------------------------------------------------------------------ */
/* rdma_cm: addresses and path MTU.                                   */

/* An address that was never set (AF_UNSPEC) gives *len 0: local_addr
 * returns 0 (like getsockname), peer_addr ENOTCONN (like getpeername). */
static int copy_addr(const struct sockaddr *sa, struct sockaddr_storage *addr, socklen_t *len, int unset_error)
{
    socklen_t n;
    switch (sa->sa_family) {
    case AF_INET: n = sizeof(struct sockaddr_in); break;
    case AF_INET6: n = sizeof(struct sockaddr_in6); break;
    case AF_UNSPEC: n = 0; break;
    default: n = sizeof(struct sockaddr_storage); break;  /* AF_IB */
    }
    memset(addr, 0, sizeof(*addr));
    memcpy(addr, sa, n);
    *len = n;
    return n == 0 ? unset_error : 0;
}

static int local_addr(void *id, struct sockaddr_storage *addr, socklen_t *len)
{
    return copy_addr(rdma_get_local_addr(id), addr, len, 0);
}

static int peer_addr(void *id, struct sockaddr_storage *addr, socklen_t *len)
{
    return copy_addr(rdma_get_peer_addr(id), addr, len, ENOTCONN);
}

static uint32_t mtu_bytes(int mtu)
{
    return mtu >= IBV_MTU_256 && mtu <= IBV_MTU_4096 ? 128u << mtu : 0;
}

/* The resolved route's MTU, else the port's active MTU.  The port query is
 * what the ibv_query_port macro does: the extended provider entry when
 * there is one, else the exported (compat-layout) function on a zeroed
 * struct ibv_port_attr, which is the larger of the two. */
static uint32_t path_mtu(void *id)
{
    struct rdma_cm_id *cm = id;
    if (cm->route.path_rec != NULL && cm->route.num_paths > 0)
        return mtu_bytes(cm->route.path_rec[0].mtu);
    if (cm->verbs == NULL)
        return 0;
    struct ibv_port_attr attr;
    memset(&attr, 0, sizeof(attr));
    struct verbs_context *vctx = verbs_get_ctx_op(cm->verbs, query_port);
    int ret = vctx != NULL
                  ? vctx->query_port(cm->verbs, cm->port_num, &attr, sizeof(attr))
                  : dl.ibv_query_port(cm->verbs, cm->port_num, (struct _compat_ibv_port_attr *)&attr);
    return ret == 0 ? mtu_bytes((int)attr.active_mtu) : 0;
}

/* ------------------------------------------------------------------ */
/* Loader.                                                            */

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static int loaded;
static __thread char load_error[512];

static void fill(cevpl_rdma_ops *ops)
{
    memset(ops, 0, sizeof(*ops));
    ops->get_devices = get_devices;
    ops->free_devices = free_devices;
    ops->device_name = device_name;
    ops->alloc_pd = alloc_pd;
    ops->dealloc_pd = dealloc_pd;
    ops->reg_mr = reg_mr;
    ops->dereg_mr = dereg_mr;
    ops->create_comp_channel = create_comp_channel;
    ops->destroy_comp_channel = destroy_comp_channel;
    ops->create_cq = create_cq;
    ops->destroy_cq = destroy_cq;
    ops->req_notify_cq = req_notify_cq;
    ops->get_cq_event = get_cq_event;
    ops->poll_cq = poll_cq;
    ops->create_srq = create_srq;
    ops->destroy_srq = destroy_srq;
    ops->post_srq_recv = post_srq_recv;
    ops->create_qp = create_qp;
    ops->destroy_qp = destroy_qp;
    ops->post_send = post_send;
    ops->post_recv = post_recv;
    ops->create_ah = create_ah;
    ops->destroy_ah = destroy_ah;
    ops->create_event_channel = create_event_channel;
    ops->destroy_event_channel = destroy_event_channel;
    ops->create_id = create_id;
    ops->destroy_id = destroy_id;
    ops->id_context = id_context;
    ops->set_id_context = set_id_context;
    ops->id_device = id_device;
    ops->bind_addr = bind_addr;
    ops->listen = cm_listen;
    ops->resolve_addr = resolve_addr;
    ops->resolve_route = resolve_route;
    ops->connect = cm_connect;
    ops->accept = cm_accept;
    ops->reject = reject;
    ops->disconnect = disconnect;
    ops->set_tos = set_tos;
    ops->get_event = get_event;
    ops->local_addr = local_addr;
    ops->peer_addr = peer_addr;
    ops->path_mtu = path_mtu;
    ops->migrate_id = migrate_id;
}

static void *open_library(const char *env, const char *fallback, const char **error)
{
    const char *path = getenv(env);
    if (path == NULL || path[0] == '\0')
        path = fallback;
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *why = dlerror();
        snprintf(load_error, sizeof(load_error), "cannot open %s (%s): %s", path, env,
                 why != NULL ? why : "unknown error");
        *error = load_error;
    }
    return handle;
}

/* dlsym gives each name's default version (IBVERBS_1.1 and so on, not the
 * hidden 1.0 compat ones), the one a link against the library would bind. */
static int lookup(void *handle, const char *library, const char *name, void **out, const char **error)
{
    dlerror();
    *out = dlsym(handle, name);
    if (*out == NULL) {
        snprintf(load_error, sizeof(load_error), "%s has no symbol %s", library, name);
        *error = load_error;
        return -1;
    }
    return 0;
}

/* libibverbs first: librdmacm's own NEEDED libibverbs.so.1 then binds to the
 * copy already loaded (same SONAME), so EVPL_IBVERBS_LIBRARY applies to both
 * and the contexts rdma_cm hands out belong to the verbs we call. */
static int load(const char **error)
{
    void *verbs = open_library("EVPL_IBVERBS_LIBRARY", "libibverbs.so.1", error);
    if (verbs == NULL)
        return -1;
    void *cm = open_library("EVPL_RDMACM_LIBRARY", "librdmacm.so.1", error);
    if (cm == NULL) {
        dlclose(verbs);
        return -1;
    }
#define CEVPL_RDMA_LOOKUP(name) \
    if (lookup(handle, library, #name, (void **)&dl.name, error) != 0) \
        goto fail;
    {
        void *handle = verbs;
        const char *library = "libibverbs";
        CEVPL_IBVERBS_SYMBOLS(CEVPL_RDMA_LOOKUP)
    }
    {
        void *handle = cm;
        const char *library = "librdmacm";
        CEVPL_RDMACM_SYMBOLS(CEVPL_RDMA_LOOKUP)
    }
#undef CEVPL_RDMA_LOOKUP
    return 0;  /* both stay open for the life of the process */

fail:
    memset(&dl, 0, sizeof(dl));
    dlclose(cm);
    dlclose(verbs);
    return -1;
}

int cevpl_rdma_ops_open(cevpl_rdma_ops *ops, const char **error)
{
    pthread_mutex_lock(&load_lock);
    int ret = loaded ? 0 : load(error);
    if (ret == 0)
        loaded = 1;
    pthread_mutex_unlock(&load_lock);
    if (ret != 0) {
        memset(ops, 0, sizeof(*ops));
        return -1;
    }
    fill(ops);
    return 0;
}

#endif /* CEVPL_RDMA_HAVE_HEADERS */
