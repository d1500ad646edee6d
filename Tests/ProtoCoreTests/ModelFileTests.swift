// Model files: round trip (dense and subspace), and every damaged form refused by name.
import XCTest
@testable import ProtoCore

final class ModelFileTests: XCTestCase {
    func testRoundTripAndDamage() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pm-model-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        for sub in [nil, SubspaceConfig(rank: 4, mode: .reparam)] {
            var cfg = try ModelConfig.preset("tiny")
            cfg.subspace = sub
            let m = StageModel(config: cfg, stage: .whole(cfg), batchSize: 1)
            let url = dir.appendingPathComponent("model.bin")
            try m.params.toArray().withUnsafeBufferPointer { try ModelFile.save(config: cfg, params: $0, to: url) }
            let back = try ModelFile.load(url)
            XCTAssertEqual(back.config, cfg)
            XCTAssertEqual(back.params.toArray(), m.params.toArray())
        }
        let url = dir.appendingPathComponent("model.bin")
        // Version-1 files (written by earlier protomodel) still load.
        do {
            let cfg = try ModelConfig.preset("tiny")
            let m = StageModel(config: cfg, stage: .whole(cfg), batchSize: 1)
            let json = try JSONEncoder().encode(cfg)
            var v1 = Data()
            for h: Int32 in [ModelFile.magic, 1, Int32(json.count), Int32(m.params.count)] { withUnsafeBytes(of: h) { v1.append(contentsOf: $0) } }
            v1.append(json)
            m.params.toArray().withUnsafeBytes { v1.append(contentsOf: $0) }
            try v1.write(to: url)
            XCTAssertEqual(try ModelFile.load(url).params.toArray(), m.params.toArray())
            try m.params.toArray().withUnsafeBufferPointer { try ModelFile.save(config: cfg, params: $0, to: url) }
        }
        let good = try Data(contentsOf: url)
        func refused(_ data: Data, _ text: String) throws {
            try data.write(to: url)
            XCTAssertThrowsError(try ModelFile.load(url)) { XCTAssert("\($0)".contains(text) && "\($0)".contains(url.path), "\($0)") }
        }
        try refused(good.prefix(good.count - 4), "disagrees with its header")
        var bad = good; bad[0] ^= 1
        try refused(bad, "bad magic")
        bad = good; bad[4] = 9
        try refused(bad, "version 9")
        try refused(Data([1, 2, 3]), "only 3 bytes")
        // Two flipped sign bits in different parameters: a real checksum sees them.
        bad = good; bad[good.count - 1] ^= 0x80; bad[good.count - 5] ^= 0x80
        try refused(bad, "checksum mismatch")
        // A header that claims more than the file holds, or a config that asks for more memory
        // than the machine has (a huge sequence length): refused before allocating.
        bad = good; bad.replaceSubrange(16..<24, with: withUnsafeBytes(of: Int64(1) << 40) { Data($0) })
        try refused(bad, "disagrees with its header")
        var cfg = try ModelConfig.preset("tiny")
        cfg.seqLen = 1 << 20; cfg.nHead = 2
        let m = ParamLayout(config: cfg, stage: .whole(cfg)).count
        try [Float](repeating: 0, count: m).withUnsafeBufferPointer { try ModelFile.save(config: cfg, params: $0, to: url) }
        XCTAssertThrowsError(try ModelFile.load(url)) { XCTAssert("\($0)".contains("would need") && "\($0)".contains("MiB"), "\($0)") }
        XCTAssertThrowsError(try ModelFile.load(dir.appendingPathComponent("none.bin"))) { XCTAssert("\($0)".contains("not found")) }
    }

    /// Shapes whose exact byte count would overflow an Int are refused with a size, not a
    /// trap; several stages in one process are summed; the limit is at most half the memory.
    func testMemoryCheckSurvivesAnyShape() throws {
        var cfg = try ModelConfig.preset("tiny")
        XCTAssertLessThanOrEqual(StageModel.memoryLimit(), Int(ProcessInfo.processInfo.physicalMemory / 2))
        XCTAssertNoThrow(try StageModel.checkFits(config: cfg, stage: .whole(cfg), batchSize: 8, slots: 1))
        cfg.seqLen = 1 << 20
        XCTAssertThrowsError(try StageModel.checkFits(config: cfg, stage: .whole(cfg), batchSize: 1 << 20, slots: 1)) {
            XCTAssert("\($0)".contains("would need") && "\($0)".contains("e+"), "\($0)")
        }
        cfg = try ModelConfig.preset("tiny")
        let one = StageModel.estimatedBytes(config: cfg, stage: .whole(cfg), batchSize: 8, slots: 2)
        let specs = try StageSpec.stages(split: [1, 1], nLayer: cfg.nLayer)
        let two = specs.reduce(0) { $0 + StageModel.estimatedBytes(config: cfg, stage: $1, batchSize: 8, slots: 2) }
        XCTAssertNoThrow(try StageModel.checkFits(config: cfg, stages: specs.map { ($0, 2) }, batchSize: 8, limit: two))
        XCTAssertThrowsError(try StageModel.checkFits(config: cfg, stages: specs.map { ($0, 2) }, batchSize: 8, limit: two - 1)) {
            XCTAssert("\($0)".contains("these 2 stages would need"), "\($0)")
        }
        XCTAssertThrowsError(try StageModel.checkFits(config: cfg, stage: .whole(cfg), batchSize: 8, slots: 2, limit: one - 1))
    }
}
