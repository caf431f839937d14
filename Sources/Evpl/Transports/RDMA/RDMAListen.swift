import CEvpl
import CEvplRDMA
import Glibc

/// RDMA listening: a listener's RC endpoint is an rdma_cm id on its own event
/// channel, whose descriptor is watched by every attached loop like a
/// listening socket.  The loop that reads a CONNECT_REQUEST hands it to the
/// next attached loop, round-robin, as with TCP; that loop moves the new id
/// to its own event channel and accepts (RDMAConnection.accept).
extension ListenSocket {
    static func isRDMA(_ proto: evpl_protocol_id) -> Bool {
        proto == EVPL_STREAM_RDMACM_RC || proto == EVPL_DATAGRAM_RDMACM_RC
    }

    /// evpl_listen on an RC protocol: nil (logged) when the address cannot be listened on.
    static func rdma(proto: evpl_protocol_id, address: UnsafeMutablePointer<sockaddr_storage>,
                     listener: Listener) -> ListenSocket? {
        let ops = RDMASupport.ops
        var fd: CInt = -1
        guard let channel = ops.pointee.create_event_channel(&fd) else {
            Log.error("listener", "evpl_listen: cannot create an rdma_cm event channel: \(Sys.errnoText(errno))")
            return nil
        }
        guard let id = ops.pointee.create_id(channel, nil, 0) else {
            Log.error("listener", "evpl_listen: cannot create an rdma_cm id: \(Sys.errnoText(errno))")
            ops.pointee.destroy_event_channel(channel)
            return nil
        }
        var rc = address.withMemoryRebound(to: sockaddr.self, capacity: 1) { ops.pointee.bind_addr(id, $0) }
        if rc == 0 { rc = ops.pointee.listen(id, CInt(clamping: Library.config.maxPending)) }
        if rc != 0 {
            Log.error("listener", "evpl_listen on \(Address.format(address)) (\(Protocols.name(proto))): \(Sys.errnoText(rc))")
            _ = ops.pointee.destroy_id(id)
            ops.pointee.destroy_event_channel(channel)
            return nil
        }
        let socket = ListenSocket(fd: fd, proto: proto, listener: listener)
        socket.rdmaChannel = channel
        socket.rdmaId = id
        return socket
    }

    /// Closes the socket, or the rdma_cm id and channel.
    func close() {
        if let id = rdmaId, let channel = rdmaChannel {
            let ops = RDMASupport.ops
            _ = ops.pointee.destroy_id(id)
            ops.pointee.destroy_event_channel(channel)
            rdmaId = nil
            rdmaChannel = nil
            return
        }
        Sys.close(api, fd)
    }
}
