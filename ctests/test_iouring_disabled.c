/*
 * io_uring_enabled 0 makes io_uring unavailable (issue: io_uring): the
 * protocol reports 0, connect/listen fail cleanly with a logged reason, and
 * io_uring block devices do not open.  Kernel sockets keep working.
 */
#include "harness.h"

int
main(void)
{
    struct evpl_global_config *g = evpl_global_config_init();
    evpl_global_config_set_io_uring_enabled(g, 0);
    evpl_init(g);

    CHECK_EQ(evpl_protocol_available(EVPL_STREAM_IO_URING_TCP), 0);
    CHECK_EQ(evpl_protocol_available(EVPL_STREAM_SOCKET_TCP), 1);

    struct evpl *evpl = test_loop();
    struct evpl_endpoint *ep = evpl_endpoint_create("127.0.0.1", 9);
    CHECK(evpl_connect(evpl, EVPL_STREAM_IO_URING_TCP, NULL, ep, (evpl_notify_callback_t) 0x1, NULL, NULL) == NULL);
    struct evpl_listener *listener = evpl_listener_create();
    CHECK_EQ(evpl_listen(listener, EVPL_STREAM_IO_URING_TCP, ep), -1);
    CHECK(evpl_block_open_device(EVPL_BLOCK_PROTOCOL_IO_URING, "/dev/null") == NULL);
    evpl_listener_destroy(listener);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
    return 0;
}
