/* abi_layout.c — compile-time check that the generated header has ABI.md's
 * layouts and constants (static assertions), plus a run-time check that the
 * three static-inline iovec accessors read and write the public fields.
 * Built and run by `make check-abi`. */
#include <evpl/evpl.h>
#include <stddef.h>
#include <stdio.h>

#define OFF(s, f, off) _Static_assert(offsetof(struct s, f) == (off), #s "." #f " offset")
OFF(evpl_notify, notify_type, 0);
OFF(evpl_notify, notify_status, 4);
OFF(evpl_notify, recv_msg.iovec, 8);
OFF(evpl_notify, recv_msg.niov, 16);
OFF(evpl_notify, recv_msg.length, 20);
OFF(evpl_notify, recv_msg.addr, 24);
OFF(evpl_notify, sent.bytes, 8);
OFF(evpl_notify, sent.msgs, 16);
_Static_assert(sizeof(struct evpl_notify) == 32, "evpl_notify size");
OFF(evpl_iovec, data, 0);
OFF(evpl_iovec, length, 8);
OFF(evpl_iovec, pad, 12);
OFF(evpl_iovec, private_data, 16);
_Static_assert(sizeof(struct evpl_iovec) == 24, "evpl_iovec size");
OFF(evpl_timer, callback, 0);
OFF(evpl_timer, interval, 8);
OFF(evpl_timer, deadline, 16);
_Static_assert(sizeof(struct evpl_timer) == 32, "evpl_timer size");
OFF(evpl_deferral, callback, 0);
OFF(evpl_deferral, private_data, 8);
OFF(evpl_deferral, armed, 16);
_Static_assert(sizeof(struct evpl_deferral) == 24, "evpl_deferral size");
_Static_assert(sizeof(struct evpl_doorbell) == 48, "evpl_doorbell size");

_Static_assert(EVPL_DATAGRAM_SOCKET_UDP == 0 && EVPL_DATAGRAM_RDMACM_RC == 1 &&
               EVPL_DATAGRAM_RDMACM_UD == 2 && EVPL_STREAM_SOCKET_TCP == 3 &&
               EVPL_STREAM_XLIO_TCP == 4 && EVPL_STREAM_IO_URING_TCP == 5 &&
               EVPL_STREAM_RDMACM_RC == 6 && EVPL_STREAM_SOCKET_TLS == 7 &&
               EVPL_NUM_PROTO == 8, "evpl_protocol_id values");
_Static_assert(EVPL_FRAMEWORK_RDMACM == 0 && EVPL_FRAMEWORK_XLIO == 1 &&
               EVPL_FRAMEWORK_IO_URING == 2 && EVPL_FRAMEWORK_VFIO == 3 &&
               EVPL_FRAMEWORK_TLS == 4 && EVPL_NUM_FRAMEWORK == 5, "evpl_framework_id values");
_Static_assert(EVPL_BLOCK_PROTOCOL_IO_URING == 0 && EVPL_BLOCK_PROTOCOL_VFIO == 1 &&
               EVPL_NUM_BLOCK_PROTOCOL == 2, "evpl_block_protocol_id values");
_Static_assert(EVPL_NOTIFY_CONNECTED == 1 && EVPL_NOTIFY_DISCONNECTED == 2 &&
               EVPL_NOTIFY_RECV_DATA == 3 && EVPL_NOTIFY_RECV_MSG == 4 &&
               EVPL_NOTIFY_SENT == 5, "notify types");
_Static_assert(EVPL_SEND_FLAG_TAKE_REF == 0x01 && EVPL_RECV_FLAG_ALL_OR_NONE == 0x1 &&
               EVPL_RDMA_FLAG_TAKE_REF == 0x01, "flags");

int
main(void)
{
    char byte = 0;
    struct evpl_iovec v = { .data = &byte, .length = 7, .pad = 0, .private_data = NULL };
    if (evpl_iovec_data(&v) != &byte || evpl_iovec_length(&v) != 7) {
        fprintf(stderr, "iovec accessors read the wrong fields\n");
        return 1;
    }
    evpl_iovec_set_length(&v, 3);
    if (v.length != 3) {
        fprintf(stderr, "evpl_iovec_set_length wrote the wrong field\n");
        return 1;
    }
    printf("abi_layout: layouts, constants and accessors match ABI.md\n");
    return 0;
}
