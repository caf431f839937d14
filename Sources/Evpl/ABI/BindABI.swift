import CEvpl
import Glibc

// ABI area: binds and connections (the user's "Binds & Connections" document)

/// A live bind of `loop`, or nil (with one log line) for NULL or a closed bind.
/// Unmanaged, so that callers bind it `unowned(unsafe)`: the loop keeps every
/// bind alive, and the per-message calls below then cost no reference counting.
@inline(__always)
private func liveBind(_ function: StaticString, _ evpl: LoopHandle?, _ bind: BindHandle?) -> Unmanaged<Bind>? {
    guard evpl != nil, let bind else {
        Log.misuse(function, "NULL loop or bind")
        return nil
    }
    let u = Unmanaged<Bind>.fromOpaque(UnsafeRawPointer(bind))
    guard u._withUnsafeGuaranteedRef({ $0.state != .free }) else {
        Log.misuse(function, "a closed bind")
        return nil
    }
    return u
}

/// The reason a protocol cannot be used for `use`, logged once per call; nil if it can.
private func refuse(_ function: StaticString, _ proto: evpl_protocol_id, stream: Bool) -> Bool {
    guard Protocols.isValid(proto) else {
        Log.error("bind", "\(function): unknown protocol id \(proto.rawValue)")
        return true
    }
    if let reason = Protocols.unavailableReason(proto) {
        Log.error("bind", "\(function): \(Protocols.name(proto)) is unavailable: \(reason)")
        return true
    }
    if Protocols.isConnected(proto) != stream {
        Log.error("bind", "\(function): \(Protocols.name(proto)) is \(stream ? "connectionless; use evpl_bind" : "connection-oriented; use evpl_connect or evpl_listen")")
        return true
    }
    return false
}

/// Create a listener: it accepts on any number of endpoints and protocols
/// and hands each connection to one attached loop, round-robin.
@_cdecl("evpl_listener_create")
public func evpl_listener_create() -> ListenerHandle? {
    _ = Library.config
    return Unmanaged.passRetained(Listener()).handle
}

/// Destroy a listener and close its listening sockets. Detach every loop
/// first; if some are still attached this logs an error and only closes the sockets.
@_cdecl("evpl_listener_destroy")
public func evpl_listener_destroy(_ listener: ListenerHandle?) {
    guard let listener, let l = Unmanaged<Listener>.borrow(listener) else {
        return Log.misuse("evpl_listener_destroy", "NULL listener")
    }
    if l.destroy() {
        Unmanaged<Listener>.fromOpaque(UnsafeRawPointer(listener)).release()
    } else {
        Log.error("listener", "evpl_listener_destroy: loops are still attached; detach them first")
    }
}

/// Attach `listener` to this loop: `attach_callback` runs on this loop for
/// each connection handed to it, before CONNECTED. Returns the binding for
/// evpl_listener_detach.
@_cdecl("evpl_listener_attach")
public func evpl_listener_attach(_ evpl: LoopHandle?, _ listener: ListenerHandle?,
                                 _ attach_callback: evpl_attach_callback_t?,
                                 _ private_data: UnsafeMutableRawPointer?) -> ListenerBindingHandle? {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl), let l = Unmanaged<Listener>.borrow(listener),
          attach_callback != nil else {
        Log.misuse("evpl_listener_attach", "NULL loop, listener or attach callback")
        return nil
    }
    let binding = ListenerBinding(listener: l, loop: loop, attach: attach_callback, privateData: private_data)
    loop.listenerBindings.append(binding)
    l.attach(binding)
    return Unmanaged.passRetained(binding).handle
}

/// Stop handing new connections to this loop; its existing connections stay.
@_cdecl("evpl_listener_detach")
public func evpl_listener_detach(_ evpl: LoopHandle?, _ binding: ListenerBindingHandle?) {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl), let binding, let b = Unmanaged<ListenerBinding>.borrow(binding) else {
        return Log.misuse("evpl_listener_detach", "NULL loop or binding")
    }
    b.listener.detach(b)
    loop.listenerBindings.removeAll { $0 === b }
    Unmanaged<ListenerBinding>.fromOpaque(UnsafeRawPointer(binding)).release()
}

/// Listen on `endpoint` with a stream `protocol`. Returns 0, or -1 with a
/// logged reason (port in use, unavailable protocol, unresolvable name).
@_cdecl("evpl_listen")
public func evpl_listen(_ listener: ListenerHandle?, _ protocol: evpl_protocol_id,
                        _ endpoint: EndpointHandle?) -> CInt {
    guard let l = Unmanaged<Listener>.borrow(listener), let ep = Unmanaged<Endpoint>.borrow(endpoint) else {
        Log.misuse("evpl_listen", "NULL listener or endpoint")
        return -1
    }
    if refuse("evpl_listen", `protocol`, stream: true) { return -1 }
    return CInt(l.listen(proto: `protocol`, endpoint: ep))
}

/// Connect to `remote_endpoint` (bound first to `local_endpoint` if not
/// NULL). Never blocks: CONNECTED, or DISCONNECTED with a positive errno,
/// follows from the loop. `segment_callback` (may be NULL) turns the stream
/// into messages (RECV_MSG). Returns NULL, with a logged reason, for an
/// unavailable or datagram protocol, NULL arguments or an unresolvable name.
@_cdecl("evpl_connect")
public func evpl_connect(_ evpl: LoopHandle?, _ protocol_id: evpl_protocol_id, _ local_endpoint: EndpointHandle?,
                         _ remote_endpoint: EndpointHandle?, _ notify_callback: evpl_notify_callback_t?,
                         _ segment_callback: evpl_segment_callback_t?,
                         _ private_data: UnsafeMutableRawPointer?) -> BindHandle? {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl), let remote = Unmanaged<Endpoint>.borrow(remote_endpoint) else {
        Log.misuse("evpl_connect", "NULL loop or remote endpoint")
        return nil
    }
    if refuse("evpl_connect", protocol_id, stream: true) { return nil }
    guard notify_callback != nil else {
        Log.misuse("evpl_connect", "NULL notify callback")
        return nil
    }
    if ListenSocket.isRDMA(protocol_id) {
        return RDMAConnection.connect(loop: loop, proto: protocol_id, local: Unmanaged<Endpoint>.borrow(local_endpoint),
                                      remote: remote, notify: notify_callback, segment: segment_callback,
                                      privateData: private_data)?.handle
    }
    return TCP.connect(loop: loop, proto: protocol_id, local: Unmanaged<Endpoint>.borrow(local_endpoint),
                       remote: remote, notify: notify_callback, segment: segment_callback,
                       privateData: private_data)?.handle
}

/// Create a datagram socket bound to `endpoint` (port 0: the kernel picks;
/// see evpl_bind_get_local_address). Returns NULL, with a logged reason, for
/// an unavailable or stream protocol or a bind failure.
@_cdecl("evpl_bind")
public func evpl_bind(_ evpl: LoopHandle?, _ protocol: evpl_protocol_id, _ endpoint: EndpointHandle?,
                      _ callback: evpl_notify_callback_t?, _ private_data: UnsafeMutableRawPointer?) -> BindHandle? {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl), let ep = Unmanaged<Endpoint>.borrow(endpoint) else {
        Log.misuse("evpl_bind", "NULL loop or endpoint")
        return nil
    }
    if refuse("evpl_bind", `protocol`, stream: false) { return nil }
    guard callback != nil else {
        Log.misuse("evpl_bind", "NULL notify callback")
        return nil
    }
    if `protocol` == EVPL_DATAGRAM_RDMACM_UD {
        return RDMADatagram.bind(loop: loop, endpoint: ep, notify: callback, privateData: private_data)?.handle
    }
    return UDP.bind(loop: loop, endpoint: ep, notify: callback, privateData: private_data)?.handle
}

/// Deliver EVPL_NOTIFY_SENT on this bind from now on: sent.bytes accepted by
/// the kernel and sent.msgs send calls completed since the previous SENT.
@_cdecl("evpl_bind_request_send_notifications")
public func evpl_bind_request_send_notifications(_ evpl: LoopHandle?, _ bind: BindHandle?) {
    liveBind("evpl_bind_request_send_notifications", evpl, bind)?._withUnsafeGuaranteedRef { $0.requestSendNotifications() }
}

/// Copy `length` bytes and queue them on a stream bind (any length). Sends
/// are flushed at the end of the iteration. On a datagram bind (which has no
/// default peer) this logs an error and sends nothing.
@_cdecl("evpl_send")
public func evpl_send(_ evpl: LoopHandle?, _ bind: BindHandle?, _ buffer: UnsafeRawPointer?, _ length: CUnsignedInt) {
    guard let u = liveBind("evpl_send", evpl, bind) else { return }
    unowned(unsafe) let b = u.takeUnretainedValue()
    guard length > 0 else { return }
    guard let buffer else { return Log.misuse("evpl_send", "NULL buffer") }
    guard b.kind == .stream else { return Log.misuse("evpl_send", "datagram bind has no default peer; use evpl_sendto") }
    b.send(buffer, Int(length))
}

/// Validates an iovec array argument; the total length of the iovecs or nil.
private func iovecTotal(_ function: StaticString, _ iovecs: UnsafeMutablePointer<evpl_iovec>?, _ n: CInt,
                        _ length: CInt) -> Int? {
    guard let iovecs, n > 0, length >= 0 else {
        Log.misuse(function, "NULL iovecs, nbufvecs < 1 or negative length")
        return nil
    }
    var total = 0
    for i in 0..<Int(n) { total += Int(iovecs[i].length) }
    guard Int(length) <= total else {
        Log.misuse(function, "length \(length) exceeds the iovecs' \(total) bytes")
        return nil
    }
    return total
}

/// Queue the first `length` bytes of `iovecs` on a stream bind without
/// copying. With EVPL_SEND_FLAG_TAKE_REF the library takes over the caller's
/// references; otherwise it adds its own. Bad arguments: nothing is sent,
/// one line is logged (with TAKE_REF the references are still released).
@_cdecl("evpl_sendv")
public func evpl_sendv(_ evpl: LoopHandle?, _ bind: BindHandle?, _ iovecs: UnsafeMutablePointer<evpl_iovec>?,
                       _ nbufvecs: CInt, _ length: CInt, _ flags: CUnsignedInt) {
    let takeRef = flags & CUnsignedInt(EVPL_SEND_FLAG_TAKE_REF) != 0
    guard let u = liveBind("evpl_sendv", evpl, bind), u._withUnsafeGuaranteedRef({ $0.kind == .stream }),
          iovecTotal("evpl_sendv", iovecs, nbufvecs, length) != nil, let iovecs else {
        if takeRef, let iovecs, nbufvecs > 0 { for i in 0..<Int(nbufvecs) { Iovec.release(iovecs + i) } }
        return
    }
    unowned(unsafe) let b = u.takeUnretainedValue()
    b.sendv(iovecs, Int(nbufvecs), Int(length), takeRef: takeRef)
}

/// Resolves a destination argument into `out`; false (logged) when it cannot.
@inline(__always)
private func destination(address: AddressHandle?, endpoint: EndpointHandle?,
                         _ out: UnsafeMutablePointer<sockaddr_storage>) -> socklen_t? {
    if let address {
        return Unmanaged<Address>.fromOpaque(UnsafeRawPointer(address))._withUnsafeGuaranteedRef { a in
            out.pointee = a.storage
            return a.length
        }
    }
    if let endpoint {
        return Unmanaged<Endpoint>.fromOpaque(UnsafeRawPointer(endpoint))._withUnsafeGuaranteedRef { $0.resolve(into: out) }
    }
    return nil
}

private func sendDatagram(_ function: StaticString, _ evpl: LoopHandle?, _ bind: BindHandle?,
                          address: AddressHandle?, endpoint: EndpointHandle?, _ buffer: UnsafeRawPointer?,
                          _ length: CUnsignedInt) {
    guard let u = liveBind(function, evpl, bind) else { return }
    u._withUnsafeGuaranteedRef { b in
        guard b.kind == .datagram else { return Log.misuse(function, "not a datagram bind") }
        guard buffer != nil || length == 0 else { return Log.misuse(function, "NULL buffer") }
        var to = sockaddr_storage()
        guard let toLength = destination(address: address, endpoint: endpoint, &to) else {
            return Log.misuse(function, "NULL or unresolvable destination")
        }
        withUnsafeBytes(of: UInt8(0)) { empty in
            b.sendTo(&to, toLength, buffer ?? empty.baseAddress!, Int(length))
        }
    }
}

private func sendDatagramv(_ function: StaticString, _ evpl: LoopHandle?, _ bind: BindHandle?,
                           address: AddressHandle?, endpoint: EndpointHandle?,
                           _ iovecs: UnsafeMutablePointer<evpl_iovec>?, _ nbufvecs: CInt, _ length: CInt,
                           _ flags: CUnsignedInt) {
    let takeRef = flags & CUnsignedInt(EVPL_SEND_FLAG_TAKE_REF) != 0
    func drop() {
        if takeRef, let iovecs, nbufvecs > 0 { for i in 0..<Int(nbufvecs) { Iovec.release(iovecs + i) } }
    }
    guard let u = liveBind(function, evpl, bind), iovecTotal(function, iovecs, nbufvecs, length) != nil,
          let iovecs else { return drop() }
    unowned(unsafe) let b = u.takeUnretainedValue()
    guard b.kind == .datagram else {
        Log.misuse(function, "not a datagram bind")
        return drop()
    }
    guard nbufvecs <= CInt(b.loop.global.maxNumIovec) else {
        Log.misuse(function, "\(nbufvecs) iovecs exceed max_num_iovec")
        return drop()
    }
    var to = sockaddr_storage()
    guard let toLength = destination(address: address, endpoint: endpoint, &to) else {
        Log.misuse(function, "NULL or unresolvable destination")
        return drop()
    }
    b.sendTov(&to, toLength, iovecs, Int(nbufvecs), Int(length), takeRef: takeRef)
}

/// Copy `length` bytes into one datagram to `address` (e.g. recv_msg.addr,
/// valid during the RECV_MSG callback). Longer than max_datagram_size:
/// logged and not sent.
@_cdecl("evpl_sendto")
public func evpl_sendto(_ evpl: LoopHandle?, _ bind: BindHandle?, _ address: AddressHandle?,
                        _ buffer: UnsafeRawPointer?, _ length: CUnsignedInt) {
    sendDatagram("evpl_sendto", evpl, bind, address: address, endpoint: nil, buffer, length)
}

/// Copy `length` bytes into one datagram to `endpoint`.
@_cdecl("evpl_sendtoep")
public func evpl_sendtoep(_ evpl: LoopHandle?, _ bind: BindHandle?, _ endpoint: EndpointHandle?,
                          _ buffer: UnsafeRawPointer?, _ length: CUnsignedInt) {
    sendDatagram("evpl_sendtoep", evpl, bind, address: nil, endpoint: endpoint, buffer, length)
}

/// One datagram to `address` from the first `length` bytes of `iovecs`,
/// without copying (flags as evpl_sendv).
@_cdecl("evpl_sendtov")
public func evpl_sendtov(_ evpl: LoopHandle?, _ bind: BindHandle?, _ address: AddressHandle?,
                         _ iovecs: UnsafeMutablePointer<evpl_iovec>?, _ nbufvecs: CInt, _ length: CInt,
                         _ flags: CUnsignedInt) {
    sendDatagramv("evpl_sendtov", evpl, bind, address: address, endpoint: nil, iovecs, nbufvecs, length, flags)
}

/// One datagram to `endpoint` from the first `length` bytes of `iovecs`,
/// without copying (flags as evpl_sendv).
@_cdecl("evpl_sendtoepv")
public func evpl_sendtoepv(_ evpl: LoopHandle?, _ bind: BindHandle?, _ endpoint: EndpointHandle?,
                           _ iovecs: UnsafeMutablePointer<evpl_iovec>?, _ nbufvecs: CInt, _ length: CInt,
                           _ flags: CUnsignedInt) {
    sendDatagramv("evpl_sendtoepv", evpl, bind, address: nil, endpoint: endpoint, iovecs, nbufvecs, length, flags)
}

/// Copy up to `length` received bytes without consuming them; returns the
/// number copied (-1 for bad arguments).
@_cdecl("evpl_peek")
public func evpl_peek(_ evpl: LoopHandle?, _ bind: BindHandle?, _ buffer: UnsafeMutableRawPointer?, _ length: CInt) -> CInt {
    guard let u = liveBind("evpl_peek", evpl, bind), length >= 0, buffer != nil || length == 0 else { return -1 }
    unowned(unsafe) let b = u.takeUnretainedValue()
    guard let buffer else { return 0 }
    return CInt(b.peek(buffer, Int(length)))
}

/// Point up to `maxiovecs` iovecs at the first `length` received bytes,
/// without consuming them or taking references; returns the count (-1 for bad arguments).
@_cdecl("evpl_peekv")
public func evpl_peekv(_ evpl: LoopHandle?, _ bind: BindHandle?, _ iovecs: UnsafeMutablePointer<evpl_iovec>?,
                       _ maxiovecs: CInt, _ length: CInt) -> CInt {
    guard let u = liveBind("evpl_peekv", evpl, bind), let iovecs, maxiovecs >= 0, length >= 0 else { return -1 }
    unowned(unsafe) let b = u.takeUnretainedValue()
    return CInt(b.peekv(iovecs, maxIovecs: Int(maxiovecs), length: Int(length)))
}

/// Discard `length` received bytes: 0, or -1 (nothing consumed) if fewer are buffered.
@_cdecl("evpl_consume")
public func evpl_consume(_ evpl: LoopHandle?, _ bind: BindHandle?, _ length: CInt) -> CInt {
    guard let u = liveBind("evpl_consume", evpl, bind), length >= 0 else { return -1 }
    unowned(unsafe) let b = u.takeUnretainedValue()
    return CInt(b.consume(Int(length)))
}

/// Copy out and consume up to `maxlength` received bytes; returns the count
/// (0 when none). With EVPL_RECV_FLAG_ALL_OR_NONE: 0 unless `maxlength`
/// bytes are buffered, then exactly `maxlength`. -1 for bad arguments.
@_cdecl("evpl_recv")
public func evpl_recv(_ evpl: LoopHandle?, _ bind: BindHandle?, _ buffer: UnsafeMutableRawPointer?,
                      _ maxlength: CInt, _ flags: CUnsignedInt) -> CInt {
    guard let u = liveBind("evpl_recv", evpl, bind), maxlength >= 0, buffer != nil || maxlength == 0 else { return -1 }
    unowned(unsafe) let b = u.takeUnretainedValue()
    guard let buffer else { return 0 }
    return CInt(b.recv(buffer, Int(maxlength), allOrNone: flags & CUnsignedInt(EVPL_RECV_FLAG_ALL_OR_NONE) != 0))
}

/// Zero-copy receive: up to `maxlength` bytes as iovecs whose references the
/// caller now owns. Returns the iovec count (0 when empty) and sets *length
/// (if not NULL), or -1 (nothing taken) when `maxiovecs` cannot hold them.
@_cdecl("evpl_recvv")
public func evpl_recvv(_ evpl: LoopHandle?, _ bind: BindHandle?, _ iovecs: UnsafeMutablePointer<evpl_iovec>?,
                       _ maxiovecs: CInt, _ maxlength: CInt, _ length: UnsafeMutablePointer<CInt>?) -> CInt {
    guard let u = liveBind("evpl_recvv", evpl, bind), let iovecs, maxiovecs >= 0, maxlength >= 0 else { return -1 }
    unowned(unsafe) let b = u.takeUnretainedValue()
    return CInt(b.recvv(iovecs, maxIovecs: Int(maxiovecs), maxLength: Int(maxlength), length: length))
}

/// Close now, asynchronously: unsent data may be dropped; DISCONNECTED
/// follows exactly once (status 0). Closing twice is harmless.
@_cdecl("evpl_close")
public func evpl_close(_ evpl: LoopHandle?, _ bind: BindHandle?) {
    guard Unmanaged<EventLoop>.borrow(evpl) != nil, let b = Unmanaged<Bind>.borrow(bind) else {
        return Log.misuse("evpl_close", "NULL loop or bind")
    }
    b.close(status: 0)
}

/// Close gracefully: no new sends, everything queued is delivered, then
/// DISCONNECTED follows exactly once (status 0).
@_cdecl("evpl_finish")
public func evpl_finish(_ evpl: LoopHandle?, _ bind: BindHandle?) {
    guard Unmanaged<EventLoop>.borrow(evpl) != nil, let b = Unmanaged<Bind>.borrow(bind) else {
        return Log.misuse("evpl_finish", "NULL loop or bind")
    }
    b.finish()
}

/// The bind's local address as "a.b.c.d:port" or "[v6]:port", always
/// NUL-terminated and truncated to `len` bytes.
@_cdecl("evpl_bind_get_local_address")
public func evpl_bind_get_local_address(_ bind: BindHandle?, _ str: UnsafeMutablePointer<CChar>?, _ len: CInt) {
    guard let str, len > 0 else { return }
    guard let b = Unmanaged<Bind>.borrow(bind) else { return Address.copy("", to: str, len: Int(len)) }
    let text = b.local.length > 0 ? withUnsafePointer(to: &b.local.storage) { Address.format($0) } : ""
    Address.copy(text, to: str, len: Int(len))
}

/// The bind's remote address (a server-side bind's peer), formatted as
/// evpl_bind_get_local_address; "" for a datagram bind.
@_cdecl("evpl_bind_get_remote_address")
public func evpl_bind_get_remote_address(_ bind: BindHandle?, _ str: UnsafeMutablePointer<CChar>?, _ len: CInt) {
    guard let str, len > 0 else { return }
    guard let b = Unmanaged<Bind>.borrow(bind) else { return Address.copy("", to: str, len: Int(len)) }
    let text = b.remote.length > 0 ? withUnsafePointer(to: &b.remote.storage) { Address.format($0) } : ""
    Address.copy(text, to: str, len: Int(len))
}

/// The protocol the bind was created with.
@_cdecl("evpl_bind_get_protocol")
public func evpl_bind_get_protocol(_ bind: BindHandle?) -> evpl_protocol_id {
    guard let b = Unmanaged<Bind>.borrow(bind) else { return evpl_protocol_id(rawValue: UInt32.max) }
    return b.proto
}
