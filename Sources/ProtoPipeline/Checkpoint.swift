// Checkpoints: every rank writes its stage (parameters, AdamW moments and step count),
// rank 0 writes the data-loader position; after a barrier rank 0 writes manifest.json,
// the DONE marker that makes the checkpoint complete. Every file is written atomically
// (temp file + rename), so a crash mid-write leaves the previous checkpoint usable.
//
//   DIR/step_000120/stage_000.bin ... stage_007.bin, loader.json, manifest.json
import Foundation
import ProtoCore

/// One file of a checkpoint with its size and checksum.
public struct CheckpointFile: Codable, Equatable, Sendable {
    public var name: String
    public var bytes: Int
    public var checksum: String  // SHA-256 of the file, hex (manifest version 2; version 1 held FNV-1a 64)
    public init(name: String, bytes: Int, checksum: String) { self.name = name; self.bytes = bytes; self.checksum = checksum }
}

/// The training data a run reads: shard files (name and size) and the tokenizer's content
/// hash. Resuming on other data would silently change what the run means.
public struct DataIdentity: Codable, Equatable, Sendable {
    public var shards: [String]       // "train_000.bin:2733572", in reading order
    public var tokenizerSHA256: String
    public init(shards: [String], tokenizerSHA256: String) { self.shards = shards; self.tokenizerSHA256 = tokenizerSHA256 }
}

/// What a run must agree with to resume from a checkpoint.
public struct CheckpointIdentity: Codable, Equatable, Sendable {
    public var worldSize: Int
    public var split: [Int]
    public var model: ModelConfig
    public var codec: String
    public var schedule: String
    public var batchSize: Int
    public var microbatches: Int
    public var totalSteps: Int
    public var dataSeed: UInt64
    /// The training data (nil in checkpoints of older protomodel versions: not compared).
    public var data: DataIdentity?
    /// Data-parallel replicas of the pipeline (nil: 1).
    public var replicas: Int?
    /// The settings that shape the updates (learning-rate schedule, AdamW, clipping, the
    /// replicas' cadence and format) as one line (nil in older checkpoints: not compared).
    public var optimization: String?
    public init(worldSize: Int, split: [Int], model: ModelConfig, codec: String, schedule: String,
                batchSize: Int, microbatches: Int, totalSteps: Int, dataSeed: UInt64, data: DataIdentity? = nil) {
        self.worldSize = worldSize; self.split = split; self.model = model; self.codec = codec; self.schedule = schedule
        self.batchSize = batchSize; self.microbatches = microbatches; self.totalSteps = totalSteps; self.dataSeed = dataSeed
        self.data = data
    }

    /// Human-readable differences between a checkpoint (self) and the current run.
    public func differences(from run: CheckpointIdentity) -> [String] {
        var d: [String] = []
        func cmp<T: Equatable>(_ what: String, _ a: T, _ b: T, _ fix: String) {
            if a != b { d.append("\(what): checkpoint has \(a), this run has \(b) (\(fix))") }
        }
        let rc = replicas ?? 1, rr = run.replicas ?? 1
        if rc != rr {
            d.append("replicas: checkpoint has \(rc), this run has \(rr) (run with -np \(worldSize) --stages \(worldSize / rc))")
        } else {
            cmp("world size", worldSize, run.worldSize, "run with -np \(worldSize)")
        }
        // A split only makes sense for the checkpoint's own depth (the model line names the rest).
        if model.nLayer == run.model.nLayer {
            cmp("split", split, run.split, "pass --split \(split.map(String.init).joined(separator: ","))")
        }
        if model != run.model {
            d.append("model shape: checkpoint has \(model.shapeSummary), this run has \(run.model.shapeSummary) (use the same preset and model flags)")
        }
        cmp("codec", codec, run.codec, "use the same --codec and its settings")
        cmp("schedule", schedule, run.schedule, "pass --schedule \(schedule)")
        cmp("batch size", batchSize, run.batchSize, "pass --batch-size \(batchSize)")
        cmp("micro-batches", microbatches, run.microbatches, "pass --microbatches \(microbatches)")
        cmp("total steps", totalSteps, run.totalSteps, "pass --steps \(totalSteps); the learning-rate schedule depends on it")
        cmp("data seed", dataSeed, run.dataSeed, "pass --data-seed \(dataSeed)")
        if let a = optimization, let b = run.optimization, a != b {
            d.append("training settings: checkpoint has \(a), this run has \(b) (pass the same flags; a resumed run must continue the same updates)")
        }
        if let a = data, let b = run.data {
            if a.tokenizerSHA256 != b.tokenizerSHA256 {
                d.append("tokenizer: checkpoint was trained with tokenizer sha256 \(a.tokenizerSHA256.prefix(12))…, this run's is \(b.tokenizerSHA256.prefix(12))… (use the --data folder it was trained on, or pass --resume-new-data to continue on this data on purpose)")
            }
            if a.shards != b.shards {
                d.append("training data: checkpoint read \(a.shards.joined(separator: ", ")), this run reads \(b.shards.joined(separator: ", ")) (use the --data folder it was trained on, or pass --resume-new-data to continue on this data on purpose)")
            }
        }
        return d
    }
}

extension ModelConfig {
    var shapeSummary: String {
        "d=\(dModel) L=\(nLayer) NH=\(nHead) T=\(seqLen) V=\(vocabSize) seed=\(seed)"
            + (subspace.map { " subspace k=\($0.rank) \($0.mode.rawValue)" } ?? "")
    }
}

public struct CheckpointManifest: Codable, Equatable, Sendable {
    public var format = "protomodel-checkpoint"
    public var version = 2
    /// Steps completed; training resumes at this step index.
    public var step: Int
    public var identity: CheckpointIdentity
    public var files: [CheckpointFile]
    public init(step: Int, identity: CheckpointIdentity, files: [CheckpointFile]) {
        self.step = step; self.identity = identity; self.files = files
    }
}

/// A failed checkpoint operation; names the file or the setting and the fix.
public struct CheckpointError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum Checkpoint {
    public static let stageMagic: Int64 = 20261126
    public static let stageVersion: Int64 = 1

    public static func stepDirectory(_ root: URL, step: Int) -> URL {
        root.appendingPathComponent(String(format: "step_%06d", step))
    }
    public static func stageFileName(rank: Int) -> String { String(format: "stage_%03d.bin", rank) }

    /// SHA-256 of the bytes, as 64 hex digits.
    public static func checksum(_ data: Data) -> String { Digest.sha256(data) }

    /// Whether `data` has the checksum a manifest of `version` recorded: SHA-256 (version 2),
    /// or the word-wise FNV-1a 64 of version-1 manifests (read so older checkpoints still
    /// resume; never written). A version-2 manifest accepts SHA-256 only.
    static func matches(_ data: Data, _ recorded: String, version: Int) -> Bool {
        if version >= 2 { return recorded.count == 64 && checksum(data) == recorded }
        guard version == 1, recorded.count == 16 else { return false }
        return versionOneChecksum(data) == recorded
    }

    /// The word-wise FNV-1a 64 version-1 manifests recorded, as 16 hex digits.
    static func versionOneChecksum(_ data: Data) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        data.withUnsafeBytes { b in
            let words = b.count / 8
            for i in 0..<words { h = (h ^ b.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) &* 0x100_0000_01B3 }
            for i in (8 * words)..<b.count { h = (h ^ UInt64(b[i])) &* 0x100_0000_01B3 }
        }
        return String(format: "%016llx", h)
    }

    /// Writes this rank's stage: parameters, AdamW moments and step count.
    public static func writeStage(_ stage: PipelineStage, rank: Int, to dir: URL) throws -> CheckpointFile {
        let model = stage.model, opt = stage.optimizer
        let n = model.params.count
        var data = Data(capacity: 40 + 12 * n)
        let header: [Int64] = [stageMagic, stageVersion, Int64(rank), Int64(n), Int64(opt.t)]
        header.withUnsafeBytes { data.append(contentsOf: $0) }
        for buf in [model.params, opt.m, opt.v] {
            data.append(UnsafeBufferPointer(start: UnsafeRawPointer(buf.ptr).assumingMemoryBound(to: UInt8.self), count: 4 * n))
        }
        let name = stageFileName(rank: rank)
        try AtomicFile.write(data, to: dir.appendingPathComponent(name))
        return CheckpointFile(name: name, bytes: data.count, checksum: checksum(data))
    }

    /// Reads this rank's stage back, checking it against the manifest's entry.
    /// `manifestVersion` says which checksum `expected` holds.
    public static func readStage(_ stage: PipelineStage, rank: Int, from dir: URL, expected: CheckpointFile, manifestVersion: Int) throws {
        let url = dir.appendingPathComponent(stageFileName(rank: rank))
        func bad(_ why: String) -> CheckpointError {
            CheckpointError("\(url.path): \(why)")
        }
        // Sizes first (from the file system and the model), so nothing is read or allocated
        // beyond what this stage needs.
        let n = stage.model.params.count
        guard let size = fileSize(url) else { throw bad("missing or unreadable") }
        guard size == expected.bytes else { throw bad("\(size) bytes, the manifest says \(expected.bytes) (truncated?)") }
        guard size == 40 + 12 * n else { throw bad("\(size) bytes, this stage's parameters and moments take \(40 + 12 * n) (another model or split?)") }
        guard let data = FileManager.default.contents(atPath: url.path), data.count == size else { throw bad("missing or unreadable") }
        guard matches(data, expected.checksum, version: manifestVersion) else { throw bad("checksum differs from the manifest's (the file was altered or damaged)") }
        let h = data.withUnsafeBytes { b in (0..<5).map { b.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self) } }
        guard h[0] == stageMagic else { throw bad("bad magic \(h[0])") }
        guard h[1] == stageVersion else { throw bad("format version \(h[1]), this protomodel reads \(stageVersion)") }
        guard h[2] == Int64(rank) else { throw bad("holds rank \(h[2])'s stage, not rank \(rank)'s") }
        guard h[3] == Int64(n) else { throw bad("\(h[3]) parameters, this stage has \(n)") }
        guard h[4] >= 0 && h[4] <= Int64(1) << 40 else { throw bad("optimizer step count \(h[4]) is out of range") }
        data.withUnsafeBytes { b in
            let base = b.baseAddress! + 40
            for (i, buf) in [stage.model.params, stage.optimizer.m, stage.optimizer.v].enumerated() {
                memcpy(buf.ptr, base + 4 * n * i, 4 * n)
            }
        }
        stage.optimizer.t = Int(h[4])
    }

    /// Writes an auxiliary file (e.g. the loader position) atomically.
    public static func writeFile(_ data: Data, name: String, to dir: URL) throws -> CheckpointFile {
        try AtomicFile.write(data, to: dir.appendingPathComponent(name))
        return CheckpointFile(name: name, bytes: data.count, checksum: checksum(data))
    }

    /// Reads an auxiliary file, checked against the manifest.
    public static func readFile(name: String, from dir: URL, manifest: CheckpointManifest) throws -> Data {
        let url = dir.appendingPathComponent(name)
        guard let entry = manifest.files.first(where: { $0.name == name }) else {
            throw CheckpointError("\(dir.path)/manifest.json lists no \(name) — the checkpoint is damaged; remove \(dir.path)")
        }
        guard let size = fileSize(url), size == entry.bytes, size <= 1 << 26,
              let data = FileManager.default.contents(atPath: url.path), data.count == entry.bytes, matches(data, entry.checksum, version: manifest.version) else {
            throw CheckpointError("\(url.path): missing, truncated or altered (size/checksum differ from the manifest)")
        }
        return data
    }

    /// Completes a checkpoint: the manifest is the DONE marker.
    public static func writeManifest(_ m: CheckpointManifest, to dir: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try enc.encode(m), to: dir.appendingPathComponent("manifest.json"))
    }

    public static func readManifest(_ dir: URL) throws -> CheckpointManifest {
        let url = dir.appendingPathComponent("manifest.json")
        guard let size = fileSize(url), let data = FileManager.default.contents(atPath: url.path) else {
            throw CheckpointError("\(url.path): missing — \(dir.path) is not a complete checkpoint")
        }
        guard size <= 1 << 24 else { throw CheckpointError("\(url.path): \(size) bytes is no manifest") }
        let m: CheckpointManifest
        do { m = try JSONDecoder().decode(CheckpointManifest.self, from: data) } catch {
            throw CheckpointError("\(url.path): not a readable manifest (\(error is DecodingError ? "damaged JSON" : "\(error)"))")
        }
        guard m.format == "protomodel-checkpoint", m.version == 1 || m.version == 2 else {
            throw CheckpointError("\(url.path): format \(m.format) version \(m.version), this protomodel reads protomodel-checkpoint versions 1 and 2")
        }
        return m
    }

    /// A regular file's size in bytes, or nil.
    static func fileSize(_ url: URL) -> Int? {
        var st = stat()
        guard stat(url.path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(st.st_size)
    }

    /// Complete checkpoints (those with a manifest) under `root`, oldest first.
    public static func complete(in root: URL) -> [(step: Int, dir: URL)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.compactMap { n -> (Int, URL)? in
            guard n.hasPrefix("step_"), let s = Int(n.dropFirst(5)) else { return nil }
            let dir = root.appendingPathComponent(n)
            return FileManager.default.fileExists(atPath: dir.appendingPathComponent("manifest.json").path) ? (s, dir) : nil
        }.sorted { $0.0 < $1.0 }
    }

    /// Removes all but the newest `keep` complete checkpoints, and incomplete ones older
    /// than the newest complete one (left by a crash mid-write).
    public static func prune(_ root: URL, keep: Int) {
        let done = complete(in: root)
        guard let newest = done.last?.step else { return }
        for (_, dir) in done.dropLast(max(1, keep)) { try? FileManager.default.removeItem(at: dir) }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        for n in names where n.hasPrefix("step_") {
            if let s = Int(n.dropFirst(5)), s < newest, !done.contains(where: { $0.step == s }) {
                try? FileManager.default.removeItem(at: root.appendingPathComponent(n))
            }
        }
    }
}
