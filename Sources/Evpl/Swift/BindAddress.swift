import CEvpl

/// A bind's addresses as strings (`a.b.c.d:port` or `[v6]:port`).
enum BindAddress {
    static func local(_ bind: BindHandle?) -> String {
        format(bind, evpl_bind_get_local_address)
    }

    static func remote(_ bind: BindHandle?) -> String {
        format(bind, evpl_bind_get_remote_address)
    }

    /// The port at the end of an address string, or nil.
    static func port(of address: String) -> Int? {
        guard let colon = address.lastIndex(of: ":") else { return nil }
        return Int(address[address.index(after: colon)...])
    }

    private static func format(_ bind: BindHandle?,
                               _ get: (BindHandle?, UnsafeMutablePointer<CChar>?, CInt) -> Void) -> String {
        guard let bind else { return "" }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { text in
            get(bind, text.baseAddress, 64)
            return String(cString: text.baseAddress!)
        }
    }
}
