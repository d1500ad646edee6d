// Token shards in llm.c's format: 256 little-endian int32 header words (magic 20240520,
// version 1, token count, rest 0), then the tokens as little-endian uint16.
import Foundation
import ProtoCore

public enum Shard {
    public static let magic: Int32 = 20240520
    public static let version: Int32 = 1
    public static let headerBytes = 256 * 4

    /// Writes `tokens` as a shard, atomically.
    public static func write(_ tokens: [UInt16], to url: URL) throws {
        guard tokens.count <= Int(Int32.max) else {
            throw DataError.io(path: url.path, problem: "\(tokens.count) tokens do not fit the llm.c header's 32-bit count; use a smaller --shard-tokens")
        }
        var header = [Int32](repeating: 0, count: 256)
        header[0] = magic; header[1] = version; header[2] = Int32(tokens.count)
        var data = Data(capacity: headerBytes + 2 * tokens.count)
        header.withUnsafeBytes { data.append(contentsOf: $0) }           // little-endian hosts only (x86_64, arm64)
        tokens.withUnsafeBytes { data.append(contentsOf: $0) }
        try AtomicFile.write(data, to: url)
    }

    /// The token count in a shard's header (12 bytes read; nil when the file is missing,
    /// shorter than that, or not a shard).
    public static func headerTokenCount(_ url: URL) -> Int? {
        guard let h = FileHandle(forReadingAtPath: url.path) else { return nil }
        defer { try? h.close() }
        guard let d = try? h.read(upToCount: 12), d.count == 12 else { return nil }
        let (m, n) = d.withUnsafeBytes { ($0.loadUnaligned(fromByteOffset: 0, as: Int32.self), $0.loadUnaligned(fromByteOffset: 8, as: Int32.self)) }
        return m == magic && n >= 0 ? Int(n) : nil
    }

    /// Reads and checks a shard: magic, version, size against the header, and every token
    /// below `vocabSize`.
    public static func read(_ url: URL, vocabSize: Int) throws -> [UInt16] {
        let p = url.path
        guard FileManager.default.fileExists(atPath: p) else {
            throw DataError.missing(path: p, fix: "run `protomodel prepare` to write the shards")
        }
        let data = try FileIO.read(url, mapped: true)
        guard data.count >= headerBytes else {
            throw DataError.badShard(path: p, problem: "\(data.count) bytes is shorter than the \(headerBytes)-byte header")
        }
        let (m, v, n) = data.withUnsafeBytes { b in
            (b.loadUnaligned(fromByteOffset: 0, as: Int32.self), b.loadUnaligned(fromByteOffset: 4, as: Int32.self),
             b.loadUnaligned(fromByteOffset: 8, as: Int32.self))
        }
        guard m == magic else { throw DataError.badShard(path: p, problem: "bad magic \(m), expected \(magic)") }
        guard v == version else { throw DataError.badShard(path: p, problem: "version \(v), expected \(version)") }
        let expected = headerBytes + 2 * Int(n)
        guard n >= 0, data.count == expected else {
            throw DataError.badShard(path: p, problem: "header says \(n) tokens (\(expected) bytes) but the file has \(data.count) bytes")
        }
        let tokens = data.withUnsafeBytes { b in
            [UInt16](UnsafeBufferPointer(start: (b.baseAddress! + headerBytes).assumingMemoryBound(to: UInt16.self), count: Int(n)))
        }
        if let bad = tokens.firstIndex(where: { Int($0) >= vocabSize }) {
            throw DataError.badShard(path: p, problem: "token \(tokens[bad]) at position \(bad) is ≥ the vocabulary size \(vocabSize) (shard and tokenizer do not belong together)")
        }
        return tokens
    }

    /// The shards of a split ("train" or "val") in `dir`, sorted by name.
    public static func list(in dir: URL, split: String) throws -> [URL] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else {
            throw DataError.missing(path: dir.path, fix: "run `protomodel prepare --out \(dir.path)` first")
        }
        let shards = names.filter { $0.hasPrefix("\(split)_") && $0.hasSuffix(".bin") }.sorted()
        guard !shards.isEmpty else {
            throw DataError.missing(path: dir.appendingPathComponent("\(split)_000.bin").path,
                                    fix: "run `protomodel prepare --out \(dir.path)` to write the \(split) shards")
        }
        return shards.map { dir.appendingPathComponent($0) }
    }
}
