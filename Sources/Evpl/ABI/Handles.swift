import CEvpl

// The C ABI's opaque handles.  Each is an OpaquePointer to an engine object
// (passed through Unmanaged); the alias names tell the header generator which
// C type to write: `LoopHandle?` is `struct evpl *`, and so on (the table is in
// Sources/evpl-header/main.swift).  A `Const` prefix adds `const`.

public typealias LoopHandle = OpaquePointer
public typealias BindHandle = OpaquePointer
public typealias ListenerHandle = OpaquePointer
public typealias ListenerBindingHandle = OpaquePointer
public typealias EndpointHandle = OpaquePointer
public typealias ConstEndpointHandle = OpaquePointer
public typealias AddressHandle = OpaquePointer
public typealias GlobalConfigHandle = OpaquePointer
public typealias ThreadConfigHandle = OpaquePointer
public typealias ThreadHandle = OpaquePointer
public typealias ThreadPoolHandle = OpaquePointer
public typealias BlockDeviceHandle = OpaquePointer
public typealias BlockQueueHandle = OpaquePointer

extension Unmanaged {
    /// The object behind a handle, without retaining it.  Valid because every
    /// handle given to C is kept at +1 by the engine until its documented end
    /// (evpl_destroy, DISCONNECTED returning, evpl_endpoint_close, ...).
    @inline(__always)
    static func borrow(_ handle: OpaquePointer?) -> Instance? {
        guard let handle else { return nil }
        return Unmanaged<Instance>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
    }

    @inline(__always)
    var handle: OpaquePointer { OpaquePointer(toOpaque()) }
}

/// `evpl_log_fn`: its `va_list` parameter has no @_cdecl-representable Swift
/// type, so the function pointer crosses as a raw pointer and is cast back.
public typealias LogFunctionPointer = UnsafeRawPointer

/// The completion callback of evpl_rdma_read / evpl_rdma_write: `void (*)(int status, void *private_data)`.
public typealias RdmaCallback = @convention(c) (CInt, UnsafeMutableRawPointer?) -> Void
