import CEvpl

// ABI area: endpoints

/// Create an endpoint for `address` (IPv4 or IPv6 literal, host name, or
/// NULL / "0.0.0.0" for the wildcard) and `port` (0...65535; 0 on a
/// listen/bind endpoint lets the kernel pick). Host names are resolved
/// lazily and cached for resolve_timeout_ms. Returns NULL for a malformed
/// address or an out-of-range port. Thread-safe.
@_cdecl("evpl_endpoint_create")
public func evpl_endpoint_create(_ address: UnsafePointer<CChar>?, _ port: CInt) -> EndpointHandle? {
    _ = Library.config
    guard let ep = Endpoint(address: address.map { String(cString: $0) }, port: Int(port)) else { return nil }
    return Unmanaged.passRetained(ep).handle
}

/// Release an endpoint. NULL is ignored.
@_cdecl("evpl_endpoint_close")
public func evpl_endpoint_close(_ endpoint: EndpointHandle?) {
    guard let endpoint else { return }
    Unmanaged<Endpoint>.fromOpaque(UnsafeRawPointer(endpoint)).release()
}

/// The address string the endpoint was created with ("0.0.0.0" for the
/// wildcard); valid until evpl_endpoint_close. NULL for a NULL endpoint.
@_cdecl("evpl_endpoint_address")
public func evpl_endpoint_address(_ ep: ConstEndpointHandle?) -> UnsafePointer<CChar>? {
    guard let e = Unmanaged<Endpoint>.borrow(ep) else { return nil }
    return UnsafePointer(e.cAddress)
}

/// The endpoint's port; -1 for a NULL endpoint.
@_cdecl("evpl_endpoint_port")
public func evpl_endpoint_port(_ ep: ConstEndpointHandle?) -> CInt {
    guard let e = Unmanaged<Endpoint>.borrow(ep) else { return -1 }
    return CInt(e.port)
}
