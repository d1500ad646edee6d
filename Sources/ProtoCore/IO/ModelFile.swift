// A trained model on disk: a header, the model config as JSON, then every parameter in
// ParamLayout order (whole model), written atomically.
//
//   version 2: magic i32, version i32, json bytes i64, parameter count i64,
//              SHA-256 (32 bytes) of json + parameters, json, fp32 parameters
//   version 1 (read only): magic i32, version i32, json bytes i32, parameter count i32, json, parameters
//
// Everything the file says is checked against the file's own size and the config's own
// parameter count before anything is allocated.
import Foundation

public enum ModelFile {
    public static let magic: Int32 = 20261125
    public static let version: Int32 = 2
    static let headerBytes = 56
    static let maxConfigBytes = 1 << 20

    /// Saves the whole model's parameters (`params` in whole-model ParamLayout order).
    public static func save(config: ModelConfig, params: UnsafeBufferPointer<Float>, to url: URL) throws {
        let json = try JSONEncoder().encode(config)
        let body = Data(buffer: UnsafeBufferPointer(start: UnsafeRawPointer(params.baseAddress!).assumingMemoryBound(to: UInt8.self),
                                                    count: params.count * 4))
        var data = Data(capacity: headerBytes + json.count + body.count)
        withUnsafeBytes(of: magic) { data.append(contentsOf: $0) }
        withUnsafeBytes(of: version) { data.append(contentsOf: $0) }
        withUnsafeBytes(of: Int64(json.count)) { data.append(contentsOf: $0) }
        withUnsafeBytes(of: Int64(params.count)) { data.append(contentsOf: $0) }
        data.append(contentsOf: hexBytes(Digest.sha256(parts: [json, body])))
        data.append(json)
        data.append(body)
        try AtomicFile.write(data, to: url)
    }

    /// Loads a model file into a new whole-model stage with `batchSize` rows.
    public static func load(_ url: URL, batchSize: Int = 1) throws -> StageModel {
        let p = url.path
        func bad(_ why: String) -> IOError { IOError(path: p, problem: "\(why) — not a complete protomodel model file; re-run training to write it again") }
        var st = stat()
        guard stat(p, &st) == 0 else {
            throw IOError(path: p, problem: "not found — train a model first (`protomodel train --out DIR` writes DIR/model.bin)")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw IOError(path: p, problem: "is not a regular file") }
        let size = Int(st.st_size)
        guard size >= 16 else { throw bad("only \(size) bytes") }
        let data = try FileIO.read(url, mapped: true)
        func i32(_ o: Int) -> Int32 { data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: Int32.self) } }
        func i64(_ o: Int) -> Int64 { data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: Int64.self) } }
        guard i32(0) == magic else { throw bad("bad magic \(i32(0)), expected \(magic)") }
        let v = i32(4)
        let jsonLen: Int64, n: Int64, start: Int
        switch v {
        case 1: jsonLen = Int64(i32(8)); n = Int64(i32(12)); start = 16
        case 2:
            guard size >= headerBytes else { throw bad("only \(size) bytes") }
            jsonLen = i64(8); n = i64(16); start = headerBytes
        default: throw bad("version \(v), this protomodel reads versions 1 and 2")
        }
        guard jsonLen > 0, jsonLen <= Int64(maxConfigBytes), n > 0, n <= Int64(size / 4),
              Int64(start) + jsonLen + 4 * n == Int64(size) else {
            throw bad("size \(size) bytes disagrees with its header (\(jsonLen) config bytes and \(n) parameters)")
        }
        let json = data.subdata(in: start..<(start + Int(jsonLen)))
        let body = data.subdata(in: (start + Int(jsonLen))..<size)
        if v == 2 {
            let recorded = data.subdata(in: 24..<56)
            guard recorded == Data(hexBytes(Digest.sha256(parts: [json, body]))) else {
                throw bad("checksum mismatch (the file was altered or damaged)")
            }
        }
        let config: ModelConfig
        do { config = try JSONDecoder().decode(ModelConfig.self, from: json) } catch { throw bad("unreadable config") }
        do { try config.validate() } catch { throw bad("invalid config (\(error))") }
        // The config's own parameter count must be the file's, before the model is allocated.
        let expected = ParamLayout(config: config, stage: .whole(config)).count
        guard expected == Int(n) else { throw bad("\(n) parameters but its config needs \(expected)") }
        try StageModel.checkFits(config: config, stage: .whole(config), batchSize: batchSize, slots: 1)
        let model = StageModel(config: config, stage: .whole(config), batchSize: batchSize)
        body.withUnsafeBytes { b in _ = memcpy(model.params.ptr, b.baseAddress!, b.count) }
        return model
    }

    static func hexBytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = hex.utf8.makeIterator()
        while let a = it.next(), let b = it.next() {
            func v(_ c: UInt8) -> UInt8 { c >= 97 ? c - 87 : c - 48 }
            out.append(v(a) << 4 | v(b))
        }
        return out
    }
}
