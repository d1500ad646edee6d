// A trained model on disk: header, the model config as JSON, then every parameter in
// ParamLayout order (whole model). Written atomically.
import Foundation

public enum ModelFile {
    public static let magic: Int32 = 20261125
    public static let version: Int32 = 1

    /// Saves the whole model's parameters (`params` in whole-model ParamLayout order).
    public static func save(config: ModelConfig, params: UnsafeBufferPointer<Float>, to url: URL) throws {
        let json = try JSONEncoder().encode(config)
        let header: [Int32] = [magic, version, Int32(json.count), Int32(params.count)]
        var data = Data()
        header.withUnsafeBytes { data.append(contentsOf: $0) }
        data.append(json)
        data.append(UnsafeBufferPointer(start: UnsafeRawPointer(params.baseAddress!).assumingMemoryBound(to: UInt8.self),
                                        count: params.count * 4))
        try AtomicFile.write(data, to: url)
    }

    /// Loads a model file into a new whole-model stage with `batchSize` rows.
    public static func load(_ url: URL, batchSize: Int = 1) throws -> StageModel {
        let p = url.path
        guard FileManager.default.fileExists(atPath: p) else {
            throw IOError(path: p, problem: "not found — train a model first (`protomodel train --out DIR` writes DIR/model.bin)")
        }
        let data = try Data(contentsOf: url)
        func bad(_ why: String) -> IOError { IOError(path: p, problem: "\(why) — not a complete protomodel model file; re-run training to write it again") }
        guard data.count >= 16 else { throw bad("only \(data.count) bytes") }
        let h = data.withUnsafeBytes { b in (0..<4).map { b.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self) } }
        guard h[0] == magic else { throw bad("bad magic \(h[0]), expected \(magic)") }
        guard h[1] == version else { throw bad("version \(h[1]), this protomodel reads version \(version)") }
        let jsonLen = Int(h[2]), n = Int(h[3])
        guard jsonLen > 0, n > 0, data.count == 16 + jsonLen + 4 * n else {
            throw bad("size \(data.count) bytes disagrees with its header (\(16 + jsonLen + 4 * max(n, 0)) expected)")
        }
        let config: ModelConfig
        do { config = try JSONDecoder().decode(ModelConfig.self, from: data.subdata(in: 16..<(16 + jsonLen))) }
        catch { throw bad("unreadable config") }
        try config.validate()
        let model = StageModel(config: config, stage: .whole(config), batchSize: batchSize)
        guard model.params.count == n else { throw bad("\(n) parameters but its config needs \(model.params.count)") }
        data.withUnsafeBytes { b in
            _ = memcpy(model.params.ptr, b.baseAddress! + 16 + jsonLen, 4 * n)
        }
        return model
    }
}
