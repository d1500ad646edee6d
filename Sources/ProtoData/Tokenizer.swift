// Byte-level BPE: 256 byte tokens plus learned merges. Encode/decode round-trips any bytes.
import Foundation
import ProtoCore

/// A trained byte-level BPE tokenizer. Token i < 256 is byte i; token 256+m is merge m.
public final class Tokenizer: @unchecked Sendable {
    public static let format = "protomodel-bpe"
    public static let version = 1
    /// The longest token a tokenizer file may define (bytes).
    public static let maxTokenBytes = 4096

    /// merges[m] = (left, right) token pair that forms token 256+m.
    public let merges: [(Int32, Int32)]
    public var vocabSize: Int { 256 + merges.count }
    private let ranks: [UInt64: Int32]      // pair key → merge index
    private let bytesOf: [[UInt8]]          // token → its bytes
    private var cache: [[UInt8]: [UInt16]] = [:]
    private let cacheLock = NSLock()

    @inline(__always) static func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }

    public init(merges: [(Int32, Int32)]) {
        self.merges = merges
        var r: [UInt64: Int32] = [:]
        var bytes = (0..<256).map { [UInt8($0)] }
        for (m, (a, b)) in merges.enumerated() {
            r[Self.key(a, b)] = Int32(m)
            bytes.append(bytes[Int(a)] + bytes[Int(b)])
        }
        ranks = r; bytesOf = bytes
    }

    /// The bytes token `t` stands for.
    public func bytes(of t: Int) -> [UInt8] { bytesOf[t] }

    // MARK: encode / decode

    public func encode(_ text: String) -> [UInt16] { encode(Array(text.utf8)) }

    public func encode(_ data: [UInt8]) -> [UInt16] {
        var out: [UInt16] = []
        out.reserveCapacity(data.count / 3)
        data.withUnsafeBufferPointer { b in
            forEachChunk(b) { r in out.append(contentsOf: encodeChunk(Array(b[r]))) }
        }
        return out
    }

    /// True when both tokenizers make the same tokens from the same bytes (the same merges).
    public func isSame(as other: Tokenizer) -> Bool {
        merges.count == other.merges.count && zip(merges, other.merges).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    public func decode(_ tokens: [UInt16]) -> [UInt8] {
        var out: [UInt8] = []
        for t in tokens { out.append(contentsOf: bytesOf[Int(t)]) }
        return out
    }

    /// The length of the longest prefix of `bytes` that does not end inside a multi-byte UTF-8
    /// character (for writing decoded text as it is generated; invalid bytes count as whole).
    public static func completeUTF8Prefix(_ bytes: [UInt8]) -> Int {
        // Look back at most 3 bytes for the lead byte of an unfinished character.
        guard !bytes.isEmpty else { return 0 }
        for back in 1...min(3, bytes.count) {
            let b = bytes[bytes.count - back]
            if b & 0xC0 == 0x80 { continue }  // a continuation byte: keep looking
            let need = b >= 0xF8 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1  // 0xF8… never lead
            return need > back ? bytes.count - back : bytes.count
        }
        return bytes.count
    }

    /// Decoded text; invalid UTF-8 sequences become U+FFFD.
    public func decodeText(_ tokens: [UInt16]) -> String { String(decoding: decode(tokens), as: UTF8.self) }

    private func encodeChunk(_ chunk: [UInt8]) -> [UInt16] {
        cacheLock.lock()
        if let hit = cache[chunk] { cacheLock.unlock(); return hit }
        cacheLock.unlock()
        var sym = chunk.map { Int32($0) }
        // Repeatedly apply the earliest-learned merge present, as training did.
        while sym.count > 1 {
            var best = Int32.max, at = -1
            for i in 0..<(sym.count - 1) {
                if let r = ranks[Self.key(sym[i], sym[i + 1])], r < best { best = r; at = i }
            }
            if at < 0 { break }
            let (a, b) = merges[Int(best)]
            var merged: [Int32] = []
            merged.reserveCapacity(sym.count)
            var i = 0
            while i < sym.count {
                if i + 1 < sym.count && sym[i] == a && sym[i + 1] == b { merged.append(256 + best); i += 2 }
                else { merged.append(sym[i]); i += 1 }
            }
            sym = merged
        }
        let out = sym.map { UInt16($0) }
        cacheLock.lock(); cache[chunk] = out; cacheLock.unlock()
        return out
    }

    // MARK: training

    /// Learns `vocabSize − 256` merges from `data`. Ties break toward the smaller pair so
    /// the result is deterministic. `progress(done, total)` is called after each merge.
    public static func train(_ data: [UInt8], vocabSize: Int,
                             progress: ((Int, Int) -> Void)? = nil) throws -> Tokenizer {
        guard (257...65536).contains(vocabSize) else {
            throw ConfigError.invalid(field: "vocab-size", reason: "\(vocabSize) must be in 257...65536 (256 bytes plus at least one merge; tokens are uint16)")
        }
        // Unique chunks with their counts; merges only happen inside a chunk.
        var counts: [[UInt8]: Int] = [:]
        data.withUnsafeBufferPointer { b in forEachChunk(b) { r in counts[Array(b[r]), default: 0] += 1 } }
        var words: [[Int32]] = [], freq: [Int] = []
        for (w, c) in counts where w.count > 1 { words.append(w.map { Int32($0) }); freq.append(c) }

        // Pair counts, kept up to date incrementally: a merge only touches the words that
        // contain the merged pair (found through `where_`).
        var pairCount: [UInt64: Int] = [:]
        var where_: [UInt64: Set<Int>] = [:]
        for (wi, w) in words.enumerated() {
            for i in 0..<(w.count - 1) {
                let k = key(w[i], w[i + 1])
                pairCount[k, default: 0] += freq[wi]
                where_[k, default: []].insert(wi)
            }
        }
        var merges: [(Int32, Int32)] = []
        let target = vocabSize - 256
        while merges.count < target {
            var bestKey: UInt64 = 0, bestCount = 0
            for (k, c) in pairCount where c > bestCount || (c == bestCount && c > 0 && k < bestKey) {
                bestKey = k; bestCount = c
            }
            if bestCount < 2 { break }  // nothing left worth merging: a smaller vocabulary
            let a = Int32(truncatingIfNeeded: bestKey >> 32), b = Int32(truncatingIfNeeded: bestKey & 0xFFFF_FFFF)
            let newTok = Int32(256 + merges.count)
            merges.append((a, b))
            for wi in where_[bestKey] ?? [] {
                let w = words[wi], f = freq[wi]
                for i in 0..<(w.count - 1) {  // remove the word's old pairs
                    let k = key(w[i], w[i + 1])
                    pairCount[k, default: 0] -= f
                }
                var nw: [Int32] = []
                nw.reserveCapacity(w.count)
                var i = 0
                while i < w.count {
                    if i + 1 < w.count && w[i] == a && w[i + 1] == b { nw.append(newTok); i += 2 }
                    else { nw.append(w[i]); i += 1 }
                }
                for i in 0..<max(0, nw.count - 1) {  // add its new pairs
                    let k = key(nw[i], nw[i + 1])
                    pairCount[k, default: 0] += f
                    where_[k, default: []].insert(wi)
                }
                words[wi] = nw
            }
            pairCount[bestKey] = nil
            where_[bestKey] = nil
            progress?(merges.count, target)
        }
        return Tokenizer(merges: merges)
    }

    // MARK: file

    struct FileFormat: Codable {
        var format: String
        var version: Int
        var vocab_size: Int
        var merges: [[Int32]]
    }

    /// Writes the tokenizer as versioned JSON (atomically).
    public func save(to url: URL) throws {
        let f = FileFormat(format: Self.format, version: Self.version, vocab_size: vocabSize,
                           merges: merges.map { [$0.0, $0.1] })
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try AtomicFile.write(try enc.encode(f), to: url)
    }

    /// Loads and checks a tokenizer file.
    public static func load(from url: URL) throws -> Tokenizer {
        let p = url.path
        guard FileManager.default.fileExists(atPath: p) else {
            throw DataError.missing(path: p, fix: "run `protomodel prepare` to create the tokenizer and shards")
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: p)[.size] as? NSNumber)?.intValue ?? 0
        guard size <= 64 << 20 else { throw DataError.badTokenizer(path: p, problem: "\(size) bytes is far larger than any tokenizer of at most 65536 tokens") }
        let data: Data
        data = try FileIO.read(url)
        guard let f = try? JSONDecoder().decode(FileFormat.self, from: data) else {
            throw DataError.badTokenizer(path: p, problem: "not a protomodel tokenizer file (JSON with format/version/merges expected)")
        }
        guard f.format == format else { throw DataError.badTokenizer(path: p, problem: "format '\(f.format)', expected '\(format)'") }
        guard f.version == version else {
            throw DataError.badTokenizer(path: p, problem: "version \(f.version), this protomodel reads version \(version)")
        }
        guard f.merges.count <= 65536 - 256 else {
            throw DataError.badTokenizer(path: p, problem: "\(f.merges.count) merges; token ids are 16-bit (at most 65280 merges)")
        }
        // Every token's byte length, before any token is built: merges that keep doubling a
        // token would otherwise ask for gigabytes. Real tokens are short.
        var merges: [(Int32, Int32)] = []
        var lengths = [Int](repeating: 1, count: 256)
        var total = 256
        for (m, pair) in f.merges.enumerated() {
            guard pair.count == 2, pair.allSatisfy({ $0 >= 0 && $0 < 256 + m }) else {
                throw DataError.badTokenizer(path: p, problem: "merge \(m) is \(pair), which names a token not yet defined")
            }
            let len = lengths[Int(pair[0])] + lengths[Int(pair[1])]
            total += len
            guard len <= Self.maxTokenBytes, total <= 64 << 20 else {
                throw DataError.badTokenizer(path: p, problem: "merge \(m) makes a token of \(len) bytes (tokens up to \(Self.maxTokenBytes) bytes are accepted); the file is damaged or not from protomodel")
            }
            lengths.append(len)
            merges.append((pair[0], pair[1]))
        }
        guard f.vocab_size == 256 + merges.count else {
            throw DataError.badTokenizer(path: p, problem: "vocab_size \(f.vocab_size) but \(merges.count) merges (expected \(256 + merges.count))")
        }
        return Tokenizer(merges: merges)
    }
}
