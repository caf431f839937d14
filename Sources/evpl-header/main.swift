// evpl-header: writes include/evpl/evpl.h from the @_cdecl declarations.
//
//   evpl-header SRCROOT [OUTPUT]        (no OUTPUT: the header goes to stdout)
//
// The header is the C types block of Sources/CEvpl/include/CEvpl.h (between
// the EVPL-TYPES markers, copied verbatim) followed by one prototype per
// `@_cdecl` function in Sources/Evpl/ABI/*.swift, one section per file, each
// prototype under its `///` doc comment.  Swift types become C types through
// the fixed table below; a type that is not in it stops the generator, so the
// header can never silently disagree with the library.  Output is a pure
// function of the inputs (files sorted by name, declarations in file order).

import Foundation

// MARK: - Swift -> C type table

/// How a Swift type is written in C.  `nullable`: the Swift type may be an
/// Optional (`T?`) with the same C spelling (pointers, handles, callbacks).
/// `declarator`: the C declarator wraps the name (function pointers); `@`
/// stands for the parameter name.
struct CType {
    let spelling: String
    let nullable: Bool
    let declarator: Bool

    /// `TYPE NAME`, with no space after a `*`.
    func declare(_ name: String) -> String {
        if declarator { return spelling.replacingOccurrences(of: "@", with: name) }
        return spelling.hasSuffix("*") ? spelling + name : spelling + " " + name
    }
}

func pointer(_ c: String) -> CType { CType(spelling: c, nullable: true, declarator: false) }
func scalar(_ c: String) -> CType { CType(spelling: c, nullable: false, declarator: false) }

let typeTable: [String: CType] = {
    var t: [String: CType] = [
        "ConstEndpointHandle": pointer("const struct evpl_endpoint *"),
        "UnsafeMutablePointer<timespec>": pointer("struct timespec *"),
        "UnsafePointer<timespec>": pointer("const struct timespec *"),
        "UnsafeMutablePointer<evpl_protocol_id>": pointer("enum evpl_protocol_id *"),
        "evpl_protocol_id": scalar("enum evpl_protocol_id"),
        "evpl_block_protocol_id": scalar("enum evpl_block_protocol_id"),
        "UnsafePointer<CChar>": pointer("const char *"), "UnsafeMutablePointer<CChar>": pointer("char *"),
        "UnsafeRawPointer": pointer("const void *"), "UnsafeMutableRawPointer": pointer("void *"),
        "UnsafeMutablePointer<CInt>": pointer("int *"),
        "UnsafeMutablePointer<UInt32>": pointer("uint32_t *"),
        "UnsafeMutablePointer<UInt64>": pointer("uint64_t *"),
        "CInt": scalar("int"), "Int32": scalar("int"), "CUnsignedInt": scalar("unsigned int"),
        "UInt32": scalar("uint32_t"), "UInt64": scalar("uint64_t"), "UInt8": scalar("uint8_t"),
        "CLong": scalar("long"), "CUnsignedLong": scalar("unsigned long"),
        "Void": scalar("void"), "()": scalar("void"),
        // @_cdecl cannot take evpl_log_fn (Swift cannot represent its va_list
        // parameter), so the engine takes it as an alias (Handles.swift).
        "LogFunctionPointer": pointer("evpl_log_fn"),
        "RdmaCallback": CType(spelling: "void (*@)(int status, void *private_data)",
                              nullable: true, declarator: true),
    ]
    // Opaque handles (Sources/Evpl/ABI/Handles.swift): XHandle is `struct evpl_x *`.
    let handles = ["Loop": "evpl", "Bind": "evpl_bind", "Listener": "evpl_listener",
                   "ListenerBinding": "evpl_listener_binding", "Endpoint": "evpl_endpoint",
                   "Address": "evpl_address", "GlobalConfig": "evpl_global_config",
                   "ThreadConfig": "evpl_thread_config", "Thread": "evpl_thread",
                   "ThreadPool": "evpl_threadpool", "BlockDevice": "evpl_block_device",
                   "BlockQueue": "evpl_block_queue"]
    for (swift, c) in handles { t[swift + "Handle"] = pointer("struct \(c) *") }
    for s in ["evpl_iovec", "evpl_timer", "evpl_deferral", "evpl_doorbell", "evpl_notify"] {
        t["UnsafeMutablePointer<\(s)>"] = pointer("struct \(s) *")
        t["UnsafePointer<\(s)>"] = pointer("const struct \(s) *")
    }
    for cb in ["evpl_notify_callback_t", "evpl_segment_callback_t", "evpl_attach_callback_t",
               "evpl_timer_callback_t", "deferral_callback_t", "evpl_doorbell_callback_t",
               "evpl_thread_init_callback_t", "evpl_thread_shutdown_callback_t",
               "evpl_log_fn", "evpl_flush_fn", "evpl_block_callback_t"] {
        t[cb] = pointer(cb)
    }
    return t
}()

// MARK: - Parsing the ABI files

struct GenError: Error, CustomStringConvertible {
    let description: String
}

/// The C type for a Swift type written in a declaration (`T?` only for pointer-like T).
func cType(_ swiftType: String, _ context: String) throws -> CType {
    var name = swiftType.filter { !$0.isWhitespace }
    let optional = name.hasSuffix("?") || name.hasSuffix("!")
    if optional { name.removeLast() }
    guard let c = typeTable[name], !optional || c.nullable else {
        throw GenError(description: "\(context): no C type for Swift type '\(swiftType.trimmingCharacters(in: .whitespaces))'"
            + " (the table is in Sources/evpl-header/main.swift)")
    }
    return c
}

struct Function {
    let name: String
    let doc: [String]
    let params: [(name: String, type: CType)]
    let returnType: CType?          // nil: void
}

struct Area {
    let title: String
    let functions: [Function]
}

/// Parses `func NAME(_ a: A, _ b: B) -> R {` (the lines of a declaration, joined).
func parseSignature(_ text: String, cName: String, doc: [String], context: String) throws -> Function {
    // The parameter list: from the first "(" after "func" to its matching ")".
    guard let funcAt = text.range(of: "func "), let open = text[funcAt.upperBound...].firstIndex(of: "(") else {
        throw GenError(description: "\(context): no parameter list")
    }
    var depth = 0, close: String.Index?, parts: [String] = [], current = ""
    for i in text[open...].indices {
        let ch = text[i]
        if "<([".contains(ch) { depth += 1 }
        if ">)]".contains(ch) { depth -= 1 }
        if depth == 0 { close = i; break }
        if ch == "," && depth == 1 { parts.append(current); current = "" }
        else if i != open { current.append(ch) }
    }
    guard let close else { throw GenError(description: "\(context): unbalanced parameter list") }
    if !current.allSatisfy(\.isWhitespace) { parts.append(current) }

    var params: [(name: String, type: CType)] = []
    for p in parts {
        let pieces = p.split(separator: ":", maxSplits: 1)
        let labels = pieces.first?.split(separator: " ") ?? []
        guard pieces.count == 2, labels.count == 2, labels[0] == "_" else {
            throw GenError(description: "\(context): parameter '\(p.trimmingCharacters(in: .whitespaces))'"
                + " is not of the form '_ name: Type'")
        }
        params.append((String(labels[1]), try cType(String(pieces[1]), context)))
    }

    // The return type: between "->" and "{", if any.
    let rest = text[text.index(after: close)...].prefix { $0 != "{" }
    var returnType: CType?
    if let arrow = rest.range(of: "->") {
        let c = try cType(String(rest[arrow.upperBound...]), context)
        if c.declarator { throw GenError(description: "\(context): cannot return a function pointer") }
        returnType = c.spelling == "void" ? nil : c
    }
    return Function(name: cName, doc: doc, params: params, returnType: returnType)
}

/// The @_cdecl functions of one ABI file, with their doc comments, in file order.
func parseArea(path: String, fileName: String) throws -> Area? {
    let lines = try String(contentsOfFile: path, encoding: .utf8)
        .split(separator: "\n", omittingEmptySubsequences: false)
        .map { $0.trimmingCharacters(in: .whitespaces) }
    var title: String?, functions: [Function] = [], doc: [String] = [], i = 0
    while i < lines.count {
        let line = lines[i]
        i += 1
        if title == nil, line.hasPrefix("// ABI area:") {
            title = line.dropFirst("// ABI area:".count).trimmingCharacters(in: .whitespaces)
            if title!.hasSuffix(".") { title!.removeLast() }
        } else if line.hasPrefix("///") {
            doc.append(String(line.dropFirst(line.hasPrefix("/// ") ? 4 : 3)))
        } else if line.hasPrefix("@_cdecl(\"") {
            let cName = String(line.dropFirst("@_cdecl(\"".count).prefix { $0 != "\"" })
            let context = "\(fileName): \(cName)"
            // Skip further attributes; join the lines from `func` to the opening brace.
            var text = line.contains("func ") ? line : ""
            while i < lines.count && !text.contains("{") {
                let l = lines[i]
                i += 1
                if text.isEmpty && !l.contains("func ") {
                    if l.hasPrefix("@") || l.hasPrefix("//") || l.isEmpty { continue }
                    throw GenError(description: "\(context): expected a func after @_cdecl, got '\(l)'")
                }
                text += " " + l
            }
            functions.append(try parseSignature(text, cName: cName, doc: doc, context: context))
            doc = []
        } else if !line.hasPrefix("@") {
            doc = []    // a doc comment survives attributes only
        }
    }
    return functions.isEmpty ? nil : Area(title: title ?? fileName, functions: functions)
}

// MARK: - Writing the header

/// A `///` doc comment as a C block comment ("/*" and "*/" inside are defused).
func comment(_ doc: [String]) -> String {
    if doc.isEmpty { return "" }
    let body = doc.map { line -> String in
        let safe = line.replacingOccurrences(of: "*/", with: "* /")
            .replacingOccurrences(of: "/*", with: "/ *")
        return safe.isEmpty ? " *" : " * " + safe
    }
    return "/*\n" + body.joined(separator: "\n") + "\n */\n"
}

/// `RET name(PARAMS);`, wrapped after a comma where a line would pass 100 columns.
func prototype(_ f: Function) -> String {
    let head = (f.returnType?.declare(f.name) ?? "void " + f.name) + "("
    let params = f.params.isEmpty ? ["void"] : f.params.map { $0.type.declare($0.name) }
    var lines = [head]
    for (k, p) in params.enumerated() {
        let piece = p + (k == params.count - 1 ? ");" : ",")
        if k == 0 {
            lines[0] += piece
        } else if lines[lines.count - 1].count + 1 + piece.count > 100 {
            lines.append(String(repeating: " ", count: head.count) + piece)
        } else {
            lines[lines.count - 1] += " " + piece
        }
    }
    return lines.joined(separator: "\n") + "\n"
}

func typesBlock(srcRoot: String) throws -> String {
    let path = srcRoot + "/Sources/CEvpl/include/CEvpl.h"
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw GenError(description: "cannot read \(path)")
    }
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    guard let begin = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "/* EVPL-TYPES-BEGIN */" }),
          let end = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "/* EVPL-TYPES-END */" }),
          begin < end
    else { throw GenError(description: "\(path): no EVPL-TYPES-BEGIN/END block") }
    return lines[(begin + 1)..<end].joined(separator: "\n") + "\n"
}

func generate(srcRoot: String) throws -> String {
    let abiDir = srcRoot + "/Sources/Evpl/ABI"
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: abiDir) else {
        throw GenError(description: "cannot list \(abiDir)")
    }
    let files = entries.filter { $0.hasSuffix(".swift") }.sorted()
    var areas: [Area] = []
    var seen: [String: String] = [:]
    for file in files {
        guard let area = try parseArea(path: abiDir + "/" + file, fileName: "Sources/Evpl/ABI/" + file) else { continue }
        for f in area.functions {
            if let other = seen[f.name] {
                throw GenError(description: "\(file): \(f.name) is already declared in \(other)")
            }
            seen[f.name] = file
        }
        areas.append(area)
    }

    var out = """
    /*
     * evpl.h: the C interface of libevpl.
     *
     * GENERATED by `make header` (Sources/evpl-header) from the @_cdecl
     * declarations in the Swift files of Sources/Evpl/ABI and the C types in
     * Sources/CEvpl/include/CEvpl.h.  DO NOT EDIT: edit those and regenerate.
     */
    #ifndef EVPL_H
    #define EVPL_H


    """
    out += try typesBlock(srcRoot: srcRoot)
    out += "\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n"
    for area in areas {
        out += "\n/* ==== \(area.title) ==== */\n"
        for f in area.functions {
            out += "\n" + comment(f.doc) + prototype(f)
        }
    }
    out += "\n#ifdef __cplusplus\n}\n#endif\n\n#endif /* EVPL_H */\n"
    return out
}

// MARK: - Main

let args = CommandLine.arguments
guard args.count == 2 || args.count == 3 else {
    FileHandle.standardError.write("usage: evpl-header SRCROOT [OUTPUT]\n".data(using: .utf8)!)
    exit(2)
}
do {
    let header = try generate(srcRoot: args[1])
    if args.count == 3 {
        try header.write(toFile: args[2], atomically: true, encoding: .utf8)
    } else {
        FileHandle.standardOutput.write(header.data(using: .utf8)!)
    }
} catch {
    FileHandle.standardError.write("evpl-header: error: \(error)\n".data(using: .utf8)!)
    exit(1)
}
